"""BCE (logits and probabilities), cross-entropy and Poly-1: hand values, torch built-ins, the paper's formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab import BCEProbsLoss, BCEWithLogitsLoss, CrossEntropyLoss, PolyCrossEntropyLoss
from losslab._autograd.bce_probs import bce_probs
from losslab.functional import (
    bce_probs_loss,
    bce_with_logits_loss,
    cross_entropy_loss,
    poly_cross_entropy_loss,
)

F64 = torch.float64
LOG2 = math.log(2.0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ============================================================================ BCE from logits
def test_bce_hand_values() -> None:
    zero, one = torch.zeros(1), torch.ones(1)
    assert bce_with_logits_loss(zero, one).item() == pytest.approx(LOG2)
    assert bce_with_logits_loss(zero, one, pos_weight=3.0).item() == pytest.approx(3 * LOG2)
    assert bce_with_logits_loss(zero, zero, pos_weight=3.0).item() == pytest.approx(
        LOG2
    )  # negatives unweighted
    # Keras' smoothing: y' = y (1 - eps) + eps / 2 = 0.9 for y = 1, eps = 0.2.
    x = torch.tensor([2.0], dtype=F64)
    want = 0.9 * math.log1p(math.exp(-2.0)) + 0.1 * math.log1p(math.exp(2.0))
    assert bce_with_logits_loss(
        x, torch.ones(1, dtype=F64), label_smoothing=0.2
    ).item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_matches_torch_2d(reduction: str) -> None:
    g = _gen(1)
    x = torch.randn(7, 3, generator=g, dtype=F64) * 3
    y = torch.rand(7, 3, generator=g, dtype=F64)
    pw = torch.tensor([0.5, 2.0, 4.0], dtype=F64)
    want = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction=reduction)
    torch.testing.assert_close(
        bce_with_logits_loss(x, y, pos_weight=pw, reduction=reduction), want, rtol=1e-12, atol=1e-14
    )


def test_bce_pos_weight_aligns_with_dim1_not_the_last_dim() -> None:
    g = _gen(2)
    x = torch.randn(2, 3, 4, 3, generator=g, dtype=F64)  # (B, C, H, W) with W == C
    y = (torch.rand(2, 3, 4, 3, generator=g) > 0.5).to(F64)
    pw = torch.tensor([0.2, 1.0, 5.0], dtype=F64)
    got = bce_with_logits_loss(x, y, pos_weight=pw)
    along_dim1 = F.binary_cross_entropy_with_logits(x, y, pos_weight=pw.view(3, 1, 1))
    torch_default = F.binary_cross_entropy_with_logits(
        x, y, pos_weight=pw
    )  # silently aligns with W
    torch.testing.assert_close(got, along_dim1, rtol=1e-12, atol=0)
    assert not torch.allclose(got, torch_default)


def test_bce_auto_pos_weight_hand_computed() -> None:
    x = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.5, 1.5], [1.0, 0.2]], dtype=F64)
    y = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [0.0, -1.0]], dtype=F64)
    # class 0: 1 positive, 3 negatives -> 3; class 1 (one ignored): 2 positives, 1 negative -> 1/2
    auto = bce_with_logits_loss(x, y, pos_weight="auto", ignore_index=-1, label_smoothing=0.1)
    explicit = bce_with_logits_loss(
        x, y, pos_weight=[3.0, 0.5], ignore_index=-1, label_smoothing=0.1
    )
    torch.testing.assert_close(
        auto, explicit.to(F64), rtol=1e-7, atol=0
    )  # the list becomes float32
    flat_x, flat_y = (
        torch.tensor([0.1, -0.2, 0.3, 0.4, -0.5]),
        torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0]),
    )
    torch.testing.assert_close(
        bce_with_logits_loss(flat_x, flat_y, pos_weight="auto"),
        bce_with_logits_loss(flat_x, flat_y, pos_weight=4.0),
    )


def test_bce_auto_degenerate_classes_get_one() -> None:
    x = torch.randn(5, 3, generator=_gen(3))
    y = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]] + [[1.0, 0.0, 0.0]] * 3)
    # class 0: no negative; class 1: no positive; class 2: 1 positive, 4 negatives
    torch.testing.assert_close(
        bce_with_logits_loss(x, y, pos_weight="auto"),
        bce_with_logits_loss(x, y, pos_weight=[1.0, 1.0, 4.0]),
    )


def test_bce_auto_is_detached_and_gradients_match_explicit() -> None:
    x = torch.randn(6, 2, generator=_gen(4), requires_grad=True)
    y = torch.tensor(
        [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]], requires_grad=True
    )
    auto = bce_with_logits_loss(x, y, pos_weight="auto")
    ga = torch.autograd.grad(auto, [x, y])
    explicit = bce_with_logits_loss(x, y, pos_weight=[2.0, 2.0])
    ge = torch.autograd.grad(explicit, [x, y])
    for a, e in zip(ga, ge):
        torch.testing.assert_close(a, e)


def test_bce_mean_is_not_divided_by_pos_weight() -> None:
    x, y = torch.zeros(4, 2, dtype=F64), torch.ones(4, 2, dtype=F64)
    assert bce_with_logits_loss(x, y, pos_weight=[2.0, 6.0]).item() == pytest.approx(4 * LOG2)
    sw = torch.tensor([1.0, 0.0, 3.0, 0.0], dtype=F64)
    assert bce_with_logits_loss(x, y, sample_weight=sw).item() == pytest.approx(LOG2)


def test_bce_ignore_index_masks_values_and_gradients() -> None:
    g = _gen(5)
    x = torch.randn(4, 3, 5, generator=g, dtype=F64, requires_grad=True)
    y = (torch.rand(4, 3, 5, generator=g) > 0.5).to(F64)
    ignored = torch.rand(4, 3, 5, generator=g) < 0.3
    y_ign = torch.where(ignored, torch.full_like(y, 255.0), y)
    got = bce_with_logits_loss(x, y_ign, ignore_index=255)
    want = F.binary_cross_entropy_with_logits(x[~ignored], y[~ignored])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    (grad,) = torch.autograd.grad(got, x)
    assert (grad[ignored] == 0).all() and (grad[~ignored] != 0).all()


def test_bce_all_ignored_is_zero_with_zero_gradient() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    loss = bce_with_logits_loss(x, torch.full((3, 2), -1.0), ignore_index=-1, pos_weight="auto")
    (grad,) = torch.autograd.grad(loss, x)
    assert loss.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


def test_bce_extremes_are_exact_in_float32() -> None:
    x = torch.tensor([1e4, -1e4, 1e4, -1e4, -30.0, 30.0], requires_grad=True)
    y = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    loss = bce_with_logits_loss(x, y, reduction="none")
    want = torch.tensor([1e4, 0.0, 0.0, 1e4, math.exp(-30.0), math.exp(-30.0)])
    torch.testing.assert_close(
        loss, want, rtol=1e-6, atol=0
    )  # torch's (1 - y) x + ... form gives 0 for exp(-30)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    torch.testing.assert_close(
        grad,
        torch.tensor([1.0, 0.0, 0.0, -1.0, math.exp(-30.0), -math.exp(-30.0)]),
        rtol=1e-5,
        atol=0,
    )


def test_bce_soft_target_gradient_matches_torch() -> None:
    g = _gen(6)
    x = torch.randn(5, 2, generator=g, dtype=F64)
    y = torch.rand(5, 2, generator=g, dtype=F64, requires_grad=True)
    ours = torch.autograd.grad(bce_with_logits_loss(x, y, pos_weight=[1.5, 0.5]), y)[0]
    theirs = torch.autograd.grad(
        F.binary_cross_entropy_with_logits(x, y, pos_weight=torch.tensor([1.5, 0.5], dtype=F64)), y
    )[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-12)


def test_bce_module_stores_pos_weight() -> None:
    tensor_pw = BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0]))
    assert "pos_weight" in dict(tensor_pw.named_buffers())
    listed = BCEWithLogitsLoss(pos_weight=[1.0, 2.0])
    assert isinstance(listed.pos_weight, torch.Tensor) and "pos_weight" in listed.state_dict()
    auto = BCEWithLogitsLoss(pos_weight="auto", ignore_index=255)
    assert auto.pos_weight == "auto" and "pos_weight" not in auto.state_dict()
    assert BCEWithLogitsLoss(pos_weight=2).pos_weight == 2.0
    for module in (listed, auto):
        assert losslab.parse(module.to_spec()).to_spec() == module.to_spec()
    with pytest.raises(
        ValueError, match=r"BCEWithLogitsLoss\(\): `pos_weight` .*Did you mean 'auto'\?"
    ):
        BCEWithLogitsLoss(pos_weight="Auto")
    with pytest.raises(ValueError, match=r"`ignore_index` must be None or an int outside \[0, 1\]"):
        BCEWithLogitsLoss(ignore_index=0)


# ============================================================================ BCE from probabilities
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_probs_matches_torch_inside(reduction: str) -> None:
    g = _gen(7)
    p = (0.01 + 0.98 * torch.rand(6, 4, generator=g, dtype=F64)).requires_grad_(True)
    y = torch.rand(6, 4, generator=g, dtype=F64)
    ours = bce_probs_loss(p, y, reduction=reduction)
    theirs = F.binary_cross_entropy(p, y, reduction=reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    g1 = torch.autograd.grad(ours.sum(), p)[0]
    g2 = torch.autograd.grad(theirs.sum(), p)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-14)


def test_bce_probs_gradcheck_inside() -> None:
    g = _gen(8)
    p = (0.05 + 0.9 * torch.rand(4, 3, generator=g, dtype=F64)).requires_grad_(True)
    y = torch.rand(4, 3, generator=g, dtype=F64, requires_grad=True)
    sw = torch.rand(4, generator=g, dtype=F64)
    assert torch.autograd.gradcheck(
        lambda p_, y_: bce_probs_loss(p_, y_, label_smoothing=0.1, sample_weight=sw, eps=1e-3),
        (p, y),
    )


def test_bce_probs_backward_equals_the_plain_formula_inside() -> None:
    eps = 1e-6
    p = torch.tensor([eps, 2e-6, 0.3, 0.5, 0.9, 1 - 2e-6, 1 - eps], dtype=F64, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.7, 1.0, 0.0, 1.0, 0.0], dtype=F64, requires_grad=True)
    ours = torch.autograd.grad(bce_probs(p, y, eps).sum(), [p, y])
    plain = torch.autograd.grad((-(y * torch.log(p) + (1 - y) * torch.log1p(-p))).sum(), [p, y])
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=0)


@pytest.mark.parametrize("eps", [1e-6, 1e-3, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_bce_probs_gradient_at_exact_0_and_1(eps: float, dtype: torch.dtype) -> None:
    p = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=dtype, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=dtype)
    loss = bce_probs_loss(p, y, eps=eps, reduction="none")
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(
        loss, torch.tensor([0.0, -math.log(eps), -math.log(eps), 0.0], dtype=dtype)
    )
    (grad,) = torch.autograd.grad(loss.sum(), p)
    # The floor eps (1 - eps) bounds |grad| by 1 / (eps (1 - eps)) = (1/eps)(1 + eps + eps^2 + ...):
    # for eps = 1e-6 that is 1/eps * (1 + 1e-6) up to the eps^2 = 1e-12 term (visible in float64).
    bound = 1.0 / (eps * (1.0 - eps))
    assert grad.abs().max().item() <= bound * (1 + 1e-12)
    if eps == 1e-6:
        assert grad.abs().max().item() <= (1.0 / eps) * (1.0 + 1e-6) * (1 + 2e-12)
    assert grad[0] == 0 and grad[3] == 0  # right and saturated: at rest
    assert grad[1] < 0 and grad[2] > 0  # wrong and saturated: still pushed back
    assert grad[1].abs().item() == pytest.approx(bound, rel=1e-6)


def test_bce_probs_beats_plain_clamp_and_torch_at_the_ends() -> None:
    p = torch.tensor([0.0], requires_grad=True)
    y = torch.tensor([1.0])
    clamped = -(y * torch.log(p.clamp(1e-6, 1 - 1e-6)))
    assert torch.autograd.grad(clamped.sum(), p)[0].item() == 0.0  # a plain clamp stops learning
    torch_grad = torch.autograd.grad(F.binary_cross_entropy(p, y), p)[0].item()
    assert abs(torch_grad) >= 1e11  # torch: 1e12
    ours = torch.autograd.grad(bce_probs_loss(p, y), p)[0].item()
    assert ours == pytest.approx(-1e6, rel=1e-5)


def test_bce_probs_saves_only_its_inputs() -> None:
    p = torch.rand(8, 3, requires_grad=True)
    y = torch.rand(8, 3)
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = bce_probs(p, y, 1e-6)
    assert len(saved) == 2
    assert {t.data_ptr() for t in saved} == {p.data_ptr(), y.data_ptr()}
    loss.sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()


def test_bce_probs_under_autocast_returns_float32() -> None:
    p = torch.tensor([[0.0, 0.25], [1.0, 0.75]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = bce_probs_loss(p.bfloat16(), y.bfloat16())
        loss32 = BCEProbsLoss()(p, y)
    assert loss.dtype == torch.float32 and loss32.dtype == torch.float32
    assert torch.isfinite(loss)
    loss.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    half = bce_probs_loss(p.detach().half(), y.half())
    assert half.dtype == torch.float16 and torch.isfinite(half)


def test_bce_probs_small_probabilities_keep_their_digits() -> None:
    p = torch.tensor([1e-5, 3e-7])  # float32; 1 - p would round away most of p
    loss = bce_probs_loss(p, torch.zeros(2), reduction="none")
    torch.testing.assert_close(loss, -torch.log1p(-p.double()).float(), rtol=1e-6, atol=0)


# ============================================================================ cross-entropy
def _ce_cases(g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor, dict, dict]]:
    """(logits, target, our kwargs, torch kwargs)."""
    w = torch.tensor([0.3, 1.0, 2.0, 0.7], dtype=F64)
    ids4d = torch.randint(0, 4, (2, 3, 5), generator=g)
    ids4d[0, 0, :2] = 255
    soft = torch.softmax(torch.randn(6, 4, generator=g, dtype=F64), 1)
    return [
        (torch.randn(6, 4, generator=g, dtype=F64), torch.randint(0, 4, (6,), generator=g), {}, {}),
        (
            torch.randn(6, 4, generator=g, dtype=F64),
            torch.randint(0, 4, (6,), generator=g),
            {"class_weight": w, "label_smoothing": 0.2},
            {"weight": w, "label_smoothing": 0.2},
        ),
        (
            torch.randn(2, 4, 3, 5, generator=g, dtype=F64),
            ids4d,
            {"class_weight": w, "ignore_index": 255, "label_smoothing": 0.1},
            {"weight": w, "ignore_index": 255, "label_smoothing": 0.1},
        ),
        (
            torch.randn(6, 4, generator=g, dtype=F64),
            soft,
            {"class_weight": w, "label_smoothing": 0.3},
            {"weight": w, "label_smoothing": 0.3},
        ),
        (
            torch.randn(2, 4, 7, generator=g, dtype=F64),
            torch.rand(2, 4, 7, generator=g, dtype=F64),
            {},
            {},
        ),
    ]


@pytest.mark.parametrize("index", range(5))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ce_matches_torch(index: int, reduction: str) -> None:
    logits, target, ours, theirs = _ce_cases(_gen(10))[index]
    logits.requires_grad_(True)
    got = cross_entropy_loss(logits, target, **ours, reduction=reduction)
    want = F.cross_entropy(logits, target, **theirs, reduction=reduction)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    g1 = torch.autograd.grad(got.sum(), logits)[0]
    g2 = torch.autograd.grad(want.sum(), logits)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-14)


def test_ce_hand_values_and_sample_weight() -> None:
    logits = torch.zeros(2, 4, dtype=F64)
    target = torch.tensor([1, 3])
    assert cross_entropy_loss(logits, target).item() == pytest.approx(math.log(4))
    w = torch.tensor([1.0, 2.0, 1.0, 4.0], dtype=F64)
    sw = torch.tensor([3.0, 1.0], dtype=F64)
    # sum_i s_i w_{y_i} log 4 / sum_i s_i w_{y_i} = log 4 for uniform logits
    assert cross_entropy_loss(
        logits, target, class_weight=w, sample_weight=sw
    ).item() == pytest.approx(math.log(4))
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]], dtype=F64)
    nll0 = math.log1p(math.exp(-2.0))
    got = cross_entropy_loss(
        logits, torch.tensor([0, 1]), sample_weight=torch.tensor([3.0, 1.0], dtype=F64)
    )
    assert got.item() == pytest.approx((3 * nll0 + LOG2) / 4, rel=1e-12)


def test_ce_all_ignored_is_zero_where_torch_gives_nan() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    target = torch.full((3,), 255)
    assert torch.isnan(F.cross_entropy(logits, target, ignore_index=255))
    for kwargs in ({}, {"class_weight": [1.0, 2.0, 3.0, 4.0], "label_smoothing": 0.1}):
        loss = cross_entropy_loss(logits, target, ignore_index=255, **kwargs)
        (grad,) = torch.autograd.grad(loss, logits)
        assert loss.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


def test_ce_ignore_255_with_narrow_integer_dtypes() -> None:
    logits = torch.randn(4, 3, 2, generator=_gen(11), dtype=F64)
    target = torch.tensor([[0, 255], [2, 1], [255, 255], [1, 0]])
    want = F.cross_entropy(logits, target, ignore_index=255)
    for dtype in (torch.uint8, torch.int32, torch.int64):
        torch.testing.assert_close(
            cross_entropy_loss(logits, target.to(dtype), ignore_index=255), want, rtol=1e-12, atol=0
        )
    with pytest.raises(ValueError, match=r"Set ignore_index=255"):
        cross_entropy_loss(logits, target)


def test_ce_soft_mean_divides_by_positions_not_weights() -> None:
    logits = torch.zeros(3, 2, dtype=F64)
    soft = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=F64)
    w = torch.tensor([2.0, 4.0], dtype=F64)
    # per row: -sum_c w_c t_c log(1/2) = (2, 4, 3) * log 2; mean over 3 positions
    assert cross_entropy_loss(logits, soft, class_weight=w).item() == pytest.approx(3 * LOG2)


def test_ce_keeps_no_log_softmax_or_one_hot_for_backward() -> None:
    n, c = 64, 50
    logits = torch.randn(n, c, requires_grad=True)
    target = torch.randint(0, c, (n,))
    target[:5] = 255
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = cross_entropy_loss(
            logits, target, class_weight=torch.rand(c), ignore_index=255, label_smoothing=0.1
        )
    big = [t for t in saved if t.numel() >= n * c]
    assert big and all(t.data_ptr() == logits.data_ptr() for t in big), [
        tuple(t.shape) for t in big
    ]
    loss.backward()


def test_ce_large_logits_float32() -> None:
    logits = torch.tensor([[1e4, -1e4, 0.0], [30.0, -30.0, 30.0]], requires_grad=True)
    loss = cross_entropy_loss(logits, torch.tensor([0, 1]), reduction="none")
    torch.testing.assert_close(loss, torch.tensor([0.0, 60.0 + LOG2]))
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert torch.isfinite(grad).all()


def test_ce_registry_and_module() -> None:
    assert (
        losslab.lookup("cross_entropy") is CrossEntropyLoss
        and losslab.lookup("ce") is CrossEntropyLoss
    )
    module = CrossEntropyLoss(class_weight=[1.0, 2.0, 0.5], ignore_index=255, label_smoothing=0.1)
    assert "class_weight" in module.state_dict()
    rebuilt = losslab.parse(module.to_spec())
    logits, target = torch.randn(5, 3, generator=_gen(12)), torch.tensor([0, 255, 2, 1, 1])
    torch.testing.assert_close(rebuilt(logits, target), module(logits, target))
    torch.testing.assert_close(
        module(logits, target),
        cross_entropy_loss(
            logits, target, class_weight=[1.0, 2.0, 0.5], ignore_index=255, label_smoothing=0.1
        ),
    )


# ============================================================================ Poly-1
def _paper_poly1(
    logits: torch.Tensor, labels: torch.Tensor, epsilon: float, smoothing: float
) -> torch.Tensor:
    """The paper's Poly-1 (its Listing 1, with label-smoothed one-hot labels), in torch."""
    c = logits.shape[-1]
    one_hot = F.one_hot(labels, c).to(logits.dtype) * (1 - smoothing) + smoothing / c
    pt = (one_hot * torch.softmax(logits, -1)).sum(-1)
    ce = -(one_hot * torch.log_softmax(logits, -1)).sum(-1)
    return (ce + epsilon * (1 - pt)).mean()


@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 1.0, 2.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_poly_matches_the_paper(epsilon: float, smoothing: float) -> None:
    g = _gen(13)
    logits = torch.randn(9, 5, generator=g, dtype=F64) * 2
    labels = torch.randint(0, 5, (9,), generator=g)
    got = poly_cross_entropy_loss(logits, labels, epsilon=epsilon, label_smoothing=smoothing)
    torch.testing.assert_close(
        got, _paper_poly1(logits, labels, epsilon, smoothing), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("epsilon", [-1.0, 1.0, 2.5])
def test_poly_hand_value(epsilon: float) -> None:
    # Uniform logits over 2 classes: CE = log 2, p_t = 1/2.
    got = poly_cross_entropy_loss(torch.zeros(1, 2, dtype=F64), torch.tensor([0]), epsilon=epsilon)
    assert got.item() == pytest.approx(LOG2 + epsilon * 0.5, rel=1e-12)


def test_poly_gradient_is_the_papers() -> None:
    # Poly-1 = -log p_t + eps (1 - p_t); for 2 classes dL/dx_y = -(1 - p_t) - eps p_t (1 - p_t).
    x = torch.tensor([[0.7, -0.4]], dtype=F64, requires_grad=True)
    eps = 2.0
    (grad,) = torch.autograd.grad(poly_cross_entropy_loss(x, torch.tensor([0]), epsilon=eps), x)
    pt = torch.softmax(x.detach(), 1)[0, 0].item()
    assert grad[0, 0].item() == pytest.approx(-(1 - pt) - eps * pt * (1 - pt), rel=1e-12)


def test_poly_epsilon_zero_is_cross_entropy() -> None:
    g = _gen(14)
    logits = torch.randn(4, 3, 6, generator=g, dtype=F64)
    target = torch.randint(0, 3, (4, 6), generator=g)
    target[1, :3] = 255
    kwargs = {
        "class_weight": [0.5, 2.0, 1.0],
        "ignore_index": 255,
        "label_smoothing": 0.2,
        "sample_weight": torch.rand(4, generator=g, dtype=F64),
    }
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            poly_cross_entropy_loss(logits, target, epsilon=0.0, reduction=reduction, **kwargs),
            cross_entropy_loss(logits, target, reduction=reduction, **kwargs),
            rtol=1e-14,
            atol=0,
        )


def test_poly_module_and_soft_targets_refused() -> None:
    module = PolyCrossEntropyLoss(epsilon=2.0, class_weight=torch.tensor([1.0, 2.0]))
    assert module.epsilon == 2.0 and "class_weight" in module.state_dict()
    with pytest.raises(
        ValueError, match=r"PolyCrossEntropyLoss\(\): `epsilon` must be in \[-1, inf\)"
    ):
        PolyCrossEntropyLoss(epsilon=-2.0)
    with pytest.raises(ValueError, match=r"Pass class ids"):
        module(torch.randn(3, 2), torch.softmax(torch.randn(3, 2), 1))
