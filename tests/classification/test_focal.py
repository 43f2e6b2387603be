"""Focal family, ASL, Poly-1 focal and class-balanced loss: hand values, torch built-ins, the
authors' formulas, and the analytic backward pass of the sigmoid focal loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab.functional import (
    asymmetric_loss,
    class_balanced_loss,
    poly_focal_loss,
    sigmoid_focal_loss,
    softmax_focal_loss,
)

EXTREME = torch.tensor([30.0, -30.0, 1e4, -1e4, 0.0] * 2)
EXTREME_Y = torch.tensor([1.0] * 5 + [0.0] * 5)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tv_focal(
    x: torch.Tensor, y: torch.Tensor, alpha: float | None = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """torchvision's sigmoid_focal_loss formula, elementwise, plain autograd (the naive form)."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = loss * (alpha * y + (1 - alpha) * (1 - y))
    return loss


# ------------------------------------------------------------------------------ sigmoid focal
def test_focal_hand_value() -> None:
    # x = 0, y = 1: p_t = 1/2, ce = log 2 -> 0.25 * (1/2)^2 * log 2
    got = sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]))
    assert got.item() == pytest.approx(0.25 * 0.25 * math.log(2.0), rel=1e-6)
    # x = 2, y = 0, alpha = None, gamma = 1: sigma(2) * softplus(2)
    got = sigmoid_focal_loss(torch.tensor([2.0]), torch.tensor([0.0]), alpha=None, gamma=1.0)
    s = 1 / (1 + math.exp(-2.0))
    assert got.item() == pytest.approx(s * math.log1p(math.exp(2.0)), rel=1e-6)


def test_focal_gamma0_is_bce() -> None:
    x = torch.randn(3, 4, 5, 2, generator=_g(), dtype=torch.float64)
    y = torch.rand(3, 4, 5, 2, generator=_g(1), dtype=torch.float64)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            sigmoid_focal_loss(x, y, alpha=None, gamma=0.0, reduction=reduction),
            F.binary_cross_entropy_with_logits(x, y, reduction=reduction),
        )


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25, "per-class"])
def test_focal_analytic_backward_matches_autograd(gamma: float, alpha: object) -> None:
    """Values and both gradients (logits and soft targets) against float64 autograd of the
    torchvision formula on interior points; gradcheck of the analytic backward."""
    x = torch.randn(4, 3, 5, generator=_g(2), dtype=torch.float64, requires_grad=True)
    y = torch.rand(4, 3, 5, generator=_g(3), dtype=torch.float64, requires_grad=True)
    a = torch.tensor([0.1, 0.5, 0.8], dtype=torch.float64) if alpha == "per-class" else alpha
    got = sigmoid_focal_loss(x, y, alpha=a, gamma=gamma, reduction="none")
    a_view = a.reshape(1, 3, 1) if isinstance(a, torch.Tensor) else a
    want = _tv_focal(x, y, a_view, gamma)  # type: ignore[arg-type]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    w = torch.rand(4, 3, 5, generator=_g(4), dtype=torch.float64)
    torch.testing.assert_close(
        torch.autograd.grad((got * w).sum(), [x, y]),
        torch.autograd.grad((want * w).sum(), [x, y]),
        rtol=1e-10,
        atol=1e-14,
    )
    assert torch.autograd.gradcheck(
        lambda x, y: sigmoid_focal_loss(x, y, alpha=a, gamma=gamma, reduction="sum"), (x, y)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 2.0, 5.0])
def test_focal_finite_at_saturation_where_autograd_is_nan(dtype: torch.dtype, gamma: float) -> None:
    x = EXTREME.to(dtype).requires_grad_()
    y = EXTREME_Y.to(dtype).requires_grad_()
    loss = sigmoid_focal_loss(x, y, gamma=gamma, reduction="sum")
    gx, gy = torch.autograd.grad(loss, [x, y])
    assert torch.isfinite(loss) and torch.isfinite(gx).all() and torch.isfinite(gy).all()
    if 0 < gamma < 1:  # kornia #918: the formula's autograd gives inf * 0 = NaN there
        naive = _tv_focal(x, y.detach(), 0.25, gamma).sum()
        assert torch.isnan(torch.autograd.grad(naive, x)[0]).any()


def test_focal_gradient_limits_at_saturation() -> None:
    """Exact limits: met hard targets have zero gradient (gamma > 0); a confidently wrong one
    has gradient -alpha_t * (1 - 2 p... ) = -alpha for y = 1 and +(1 - alpha) for y = 0."""
    x = torch.tensor([1e4, -1e4, -1e4, 1e4], requires_grad=True)
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    for gamma in (0.25, 0.5, 2.0):
        (g,) = torch.autograd.grad(sigmoid_focal_loss(x, y, gamma=gamma, reduction="sum"), x)
        torch.testing.assert_close(g, torch.tensor([0.0, -0.25, 0.0, 0.75]))
    # gamma = 0 in float32 at x = 30: the gradient -alpha * sigma(-30) keeps its digits
    # (sigma(x) - y would round to 0).
    x30 = torch.tensor([30.0], requires_grad=True)
    (g,) = torch.autograd.grad(
        sigmoid_focal_loss(x30, torch.tensor([1.0]), gamma=0.0, reduction="sum"), x30
    )
    assert g.item() == pytest.approx(-0.25 / (1 + math.exp(30.0)), rel=1e-5)


def test_focal_saves_only_its_inputs() -> None:
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    x = torch.randn(64, 16, requires_grad=True)
    y = (torch.rand(64, 16) > 0.5).float()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        sigmoid_focal_loss(x, y)
    assert sum(saved) == 2 * x.numel()
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _tv_focal(x, y).mean()
    assert sum(saved) >= 6 * x.numel()  # the naive autograd graph keeps many full-size tensors


def test_focal_per_class_alpha_multiplies_dim1() -> None:
    x = torch.randn(2, 3, 4, 4, generator=_g(5))
    y = (torch.rand(2, 3, 4, 4, generator=_g(6)) > 0.7).float()
    alpha = [0.1, 0.5, 0.9]
    got = sigmoid_focal_loss(x, y, alpha=alpha, reduction="none")
    for c, a in enumerate(alpha):
        torch.testing.assert_close(
            got[:, c], sigmoid_focal_loss(x[:, c], y[:, c], alpha=a, reduction="none")
        )
    # the same list as a tensor, and the module form
    torch.testing.assert_close(
        losslab.SigmoidFocalLoss(alpha=torch.tensor(alpha), reduction="none")(x, y), got
    )


def test_focal_ignore_index_masks_value_count_and_gradient() -> None:
    x = torch.randn(4, 6, generator=_g(7), requires_grad=True)
    y = (torch.rand(4, 6, generator=_g(8)) > 0.5).float()
    y[0, :3] = 255.0
    keep = y != 255
    got = sigmoid_focal_loss(x, y, ignore_index=255)
    want = _tv_focal(x[keep], y[keep]).mean()
    torch.testing.assert_close(got, want)
    (g,) = torch.autograd.grad(got, x)
    assert torch.all(g[~keep] == 0)
    everything = torch.full((4, 6), 255.0)
    loss = sigmoid_focal_loss(x, everything, ignore_index=255)
    assert loss.item() == 0.0
    assert torch.all(torch.autograd.grad(loss, x)[0] == 0)


def test_focal_normalize_is_retinanet_normalization() -> None:
    x = torch.randn(8, 5, generator=_g(9), dtype=torch.float64, requires_grad=True)
    y = torch.zeros(8, 5, dtype=torch.float64)
    y[torch.arange(8), torch.arange(8) % 5] = 1.0
    y[:2] = 0.0  # 6 positives
    got = sigmoid_focal_loss(x, y, normalize=True, reduction="sum")
    torch.testing.assert_close(got, _tv_focal(x, y).sum() / 6)
    # the normalizer is a constant: the gradient is that of sum / 6
    torch.testing.assert_close(
        torch.autograd.grad(got, x)[0], torch.autograd.grad(_tv_focal(x, y).sum() / 6, x)[0]
    )
    # no positives: divided by 1, not by 0
    torch.testing.assert_close(
        sigmoid_focal_loss(x, torch.zeros_like(y), normalize=True, reduction="sum"),
        _tv_focal(x, torch.zeros_like(y)).sum(),
    )


def test_focal_half_precision_at_saturation() -> None:
    x = EXTREME.half().requires_grad_()
    loss = sigmoid_focal_loss(x, EXTREME_Y.half(), gamma=0.5)
    assert loss.dtype == torch.float16 and torch.isfinite(loss)
    assert torch.isfinite(torch.autograd.grad(loss, x)[0]).all()


def test_focal_module_checks_alpha_without_knowing_c() -> None:
    with pytest.raises(
        ValueError, match=r"SigmoidFocalLoss\(\): `alpha` must be 1-D; got \(1, 2\)"
    ):
        losslab.SigmoidFocalLoss(alpha=torch.tensor([[0.2, 0.3]]))
    with pytest.raises(ValueError, match=r"`alpha` must have values in \[0, 1\]"):
        losslab.SigmoidFocalLoss(alpha=[0.2, 1.5])
    with pytest.raises(
        ValueError, match=r"SoftmaxFocalLoss\(\): `alpha` must be in \(0, inf\); got 0.0"
    ):
        losslab.SoftmaxFocalLoss(alpha=0.0)


def test_focal_registry_and_alias() -> None:
    assert losslab.lookup("sigmoid_focal") is losslab.lookup("focal") is losslab.SigmoidFocalLoss
    loss = losslab.parse("focal(alpha=[0.2, 0.8], gamma=0.5)")
    x, y = torch.randn(3, 2), torch.rand(3, 2)
    torch.testing.assert_close(loss(x, y), sigmoid_focal_loss(x, y, alpha=[0.2, 0.8], gamma=0.5))


# ------------------------------------------------------------------------------ softmax focal
def test_softmax_focal_gamma0_is_cross_entropy_with_ignore_255() -> None:
    x = torch.randn(2, 5, 4, 3, generator=_g(10), dtype=torch.float64)
    t = torch.randint(0, 5, (2, 4, 3), generator=_g(11))
    t[0, 0] = 255
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            softmax_focal_loss(x, t, gamma=0.0, ignore_index=255, reduction=reduction),
            F.cross_entropy(x, t, ignore_index=255, reduction=reduction),
        )


def test_softmax_focal_alpha_is_not_in_the_denominator() -> None:
    x = torch.randn(6, 3, generator=_g(12), dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 2, 1, 0])
    w = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    got = softmax_focal_loss(x, t, alpha=w, gamma=0.0)
    torch.testing.assert_close(got, F.cross_entropy(x, t, weight=w, reduction="sum") / 6)
    assert not torch.allclose(got, F.cross_entropy(x, t, weight=w))  # torch divides by sum w_y


def test_softmax_focal_hand_value() -> None:
    z = math.exp(2.0) + 1.0 + math.exp(-1.0)
    p = math.exp(2.0) / z
    want = -((1 - p) ** 2) * math.log(p) * 0.5
    got = softmax_focal_loss(torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0]), alpha=0.5)
    assert got.item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.25, 0.5])
def test_softmax_focal_finite_gradient_at_saturation(gamma: float) -> None:
    x = torch.tensor([[1e4, -1e4, 0.0], [60.0, 0.0, -60.0]], requires_grad=True)
    t = torch.tensor([0, 0])
    loss = softmax_focal_loss(x, t, gamma=gamma)
    (g,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(g).all() and torch.isfinite(loss)
    p = torch.softmax(x, dim=1).gather(1, t[:, None])
    naive = (-((1 - p) ** gamma) * torch.log(p)).mean()
    assert torch.isnan(torch.autograd.grad(naive, x)[0]).any()


def test_softmax_focal_matches_one_hot_formula_for_many_gammas() -> None:
    x = torch.randn(7, 4, generator=_g(13), dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 4, (7,), generator=_g(14))
    for gamma in (0.5, 1.0, 2.0, 3.5):
        onehot = F.one_hot(t, 4).double()
        p = torch.softmax(x, dim=1)
        want = (-(onehot * (1 - p) ** gamma * torch.log(p)).sum(1)).mean()
        got = softmax_focal_loss(x, t, gamma=gamma)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_integer_class_id_dtypes(dtype: torch.dtype) -> None:
    x = torch.randn(4, 3, generator=_g(30))
    t = torch.tensor([0, 1, 2, 1])
    t_ignored = torch.tensor([0, 255, 2, 1])
    torch.testing.assert_close(softmax_focal_loss(x, t.to(dtype)), softmax_focal_loss(x, t))
    torch.testing.assert_close(
        softmax_focal_loss(x, t_ignored.to(dtype), ignore_index=255),
        softmax_focal_loss(x, t_ignored, ignore_index=255),
    )
    for base in ("ce", "bce", "focal"):
        torch.testing.assert_close(
            class_balanced_loss(x, t.to(dtype), samples_per_class=[3, 2, 1], base=base),
            class_balanced_loss(x, t, samples_per_class=[3, 2, 1], base=base),
        )


# ------------------------------------------------------------------------------ ASL
def _asl_official_formula(
    x: torch.Tensor, y: torch.Tensor, gamma_pos: float, gamma_neg: float, clip: float
) -> torch.Tensor:
    """The authors' semantics: eps-clamped logs, p_t and an interpolated exponent, summed."""
    p = torch.sigmoid(x)
    neg = (1 - p + clip).clamp(max=1)
    ce = y * torch.log(p.clamp(min=1e-8)) + (1 - y) * torch.log(neg.clamp(min=1e-8))
    p_t = p * y + neg * (1 - y)
    return -(ce * (1 - p_t) ** (gamma_pos * y + gamma_neg * (1 - y))).sum()


@pytest.mark.parametrize(
    ("gamma_pos", "gamma_neg", "clip"), [(0.0, 4.0, 0.05), (1.0, 4.0, 0.05), (0.0, 2.0, 0.0)]
)
def test_asl_matches_the_official_semantics_on_hard_targets(
    gamma_pos: float, gamma_neg: float, clip: float
) -> None:
    x = torch.randn(8, 6, generator=_g(15), dtype=torch.float64) * 2
    y = (torch.rand(8, 6, generator=_g(16), dtype=torch.float64) > 0.7).double()
    got = asymmetric_loss(
        x, y, gamma_pos=gamma_pos, gamma_neg=gamma_neg, clip=clip, reduction="sum"
    )
    torch.testing.assert_close(got, _asl_official_formula(x, y, gamma_pos, gamma_neg, clip))


def test_asl_without_focusing_or_clip_is_bce() -> None:
    x = torch.randn(5, 4, generator=_g(17), dtype=torch.float64)
    y = torch.rand(5, 4, generator=_g(18), dtype=torch.float64)
    torch.testing.assert_close(
        asymmetric_loss(x, y, gamma_pos=0.0, gamma_neg=0.0, clip=0.0),
        F.binary_cross_entropy_with_logits(x, y),
    )


def test_asl_gradient_is_exact_not_detached() -> None:
    x = torch.randn(6, 5, generator=_g(19), dtype=torch.float64, requires_grad=True)
    y = (torch.rand(6, 5, generator=_g(20), dtype=torch.float64) > 0.6).double()
    (got,) = torch.autograd.grad(asymmetric_loss(x, y, gamma_pos=1.0, reduction="sum"), x)

    def formula(detach: bool) -> torch.Tensor:
        p = torch.sigmoid(x)
        p_m = (p - 0.05).clamp(min=0)
        pos_w, neg_w = (1 - p) ** 1.0, p_m**4
        if detach:
            pos_w, neg_w = pos_w.detach(), neg_w.detach()
        return (-y * pos_w * torch.log(p) - (1 - y) * neg_w * torch.log(1 - p_m)).sum()

    torch.testing.assert_close(got, torch.autograd.grad(formula(False), x)[0])
    assert not torch.allclose(got, torch.autograd.grad(formula(True), x)[0])


@pytest.mark.parametrize("gamma_neg", [0.25, 0.5])
def test_asl_gamma_below_one_has_finite_gradients(gamma_neg: float) -> None:
    # clip > 0: p <= clip for the first three negatives, which are discarded (zero gradient)
    x = torch.tensor([-5.0, -3.0, -1e4, 30.0, 1e4], requires_grad=True)
    y = torch.zeros(5)
    (g,) = torch.autograd.grad(
        asymmetric_loss(x, y, gamma_neg=gamma_neg, clip=0.1, reduction="sum"), x
    )
    assert torch.isfinite(g).all()
    assert torch.all(g[:3] == 0)
    # clip = 0: p underflows to 0 at x = -1e4, where autograd of p^gamma log(1 - p) is NaN
    x = torch.tensor([-1e4, -200.0, 0.0], requires_grad=True)
    y = torch.zeros(3)
    (g,) = torch.autograd.grad(
        asymmetric_loss(x, y, gamma_neg=gamma_neg, clip=0.0, reduction="sum"), x
    )
    assert torch.isfinite(g).all()
    p = torch.sigmoid(x)
    naive = (-(p**gamma_neg) * torch.log(1 - p)).sum()
    assert torch.isnan(torch.autograd.grad(naive, x)[0]).any()


def test_asl_float32_keeps_precision_on_both_log_branches() -> None:
    x = torch.tensor([-2.0, -1.0, 0.5, 2.0, 3.0, 5.0, 20.0])
    y = torch.zeros(7)
    got = asymmetric_loss(x, y, gamma_neg=1.0, clip=0.05, reduction="none")
    xd = x.double()
    p_m = (torch.sigmoid(xd) - 0.05).clamp(min=0)
    want = -p_m * torch.log1p(-p_m)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-12)


def test_asl_alias() -> None:
    assert losslab.lookup("asymmetric") is losslab.lookup("asl") is losslab.AsymmetricLoss


# ------------------------------------------------------------------------------ Poly-1 focal
def test_poly_focal_hand_value_and_reduction_to_focal() -> None:
    # x = 0, y = 1: alpha_t = 0.25, 1 - p_t = 1/2: 0.25 * (1/2)^2 log 2 + (1/2)^3
    got = poly_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]))
    assert got.item() == pytest.approx(0.25 * 0.25 * math.log(2.0) + 0.125, rel=1e-6)
    x = torch.randn(4, 3, generator=_g(21))
    y = torch.rand(4, 3, generator=_g(22))
    torch.testing.assert_close(poly_focal_loss(x, y, epsilon=0.0), sigmoid_focal_loss(x, y))


def test_poly_focal_poly_term_is_not_alpha_weighted() -> None:
    """As in the PolyLoss paper's code: Poly1 = alpha_t * FL + epsilon * (1 - pt)^(gamma + 1)."""
    x = torch.randn(5, 3, generator=_g(23), dtype=torch.float64)
    y = (torch.rand(5, 3, generator=_g(24), dtype=torch.float64) > 0.5).double()
    m = 1 - (torch.sigmoid(x) * y + torch.sigmoid(-x) * (1 - y))
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    diff = poly_focal_loss(x, y, epsilon=2.0, reduction="none") - sigmoid_focal_loss(
        x, y, reduction="none"
    )
    torch.testing.assert_close(diff, 2.0 * m**3)
    assert not torch.allclose(diff, 2.0 * alpha_t * m**3)
    diff = poly_focal_loss(x, y, epsilon=2.0, alpha=None, reduction="none") - sigmoid_focal_loss(
        x, y, alpha=None, reduction="none"
    )
    torch.testing.assert_close(diff, 2.0 * m**3)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5])
def test_poly_focal_gradients_match_autograd_and_stay_finite(gamma: float) -> None:
    x = torch.randn(3, 4, generator=_g(25), dtype=torch.float64, requires_grad=True)
    y = torch.rand(3, 4, generator=_g(26), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, y: poly_focal_loss(x, y, epsilon=-1.0, gamma=gamma, reduction="sum"), (x, y)
    )
    xe = EXTREME.clone().requires_grad_()
    (g,) = torch.autograd.grad(poly_focal_loss(xe, EXTREME_Y, epsilon=-1.0, gamma=gamma), xe)
    assert torch.isfinite(g).all()


# ------------------------------------------------------------------------------ class-balanced
def test_class_balanced_weights_by_hand() -> None:
    # beta = 0.5, n = (1, 2, 4): (1 - beta) / (1 - beta^n) = 1, 2/3, 8/15; sum 11/5; times C / sum
    want = torch.tensor([1.0, 2 / 3, 8 / 15], dtype=torch.float64) * 3 / (11 / 5)
    torch.testing.assert_close(want, torch.tensor([15 / 11, 10 / 11, 8 / 11], dtype=torch.float64))
    x = torch.randn(6, 3, generator=_g(27), dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 2, 1, 0])
    got = class_balanced_loss(
        x, t, samples_per_class=[1, 2, 4], beta=0.5, base="ce", reduction="none"
    )
    torch.testing.assert_close(got / F.cross_entropy(x, t, reduction="none"), want[t])


def test_class_balanced_beta0_is_the_plain_base_loss() -> None:
    x = torch.randn(6, 4, generator=_g(28), dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 3, 1, 0])
    counts = [100, 10, 5, 1]
    torch.testing.assert_close(
        class_balanced_loss(x, t, samples_per_class=counts, beta=0.0, base="ce"),
        F.cross_entropy(x, t),
    )
    onehot = F.one_hot(t, 4).double()
    bce = F.binary_cross_entropy_with_logits(x, onehot, reduction="none").sum(1).mean()
    torch.testing.assert_close(
        class_balanced_loss(x, t, samples_per_class=counts, beta=0.0, base="bce"), bce
    )
    focal = sigmoid_focal_loss(x, onehot, alpha=None, gamma=2.0, reduction="none").sum(1).mean()
    torch.testing.assert_close(class_balanced_loss(x, t, samples_per_class=counts, beta=0.0), focal)


def test_class_balanced_mean_is_the_average_of_weighted_losses() -> None:
    x = torch.randn(5, 3, generator=_g(29), dtype=torch.float64)
    t = torch.tensor([0, 0, 1, 2, 2])
    kw = dict(samples_per_class=[300, 30, 3], beta=0.99, base="ce")
    per_sample = class_balanced_loss(x, t, **kw, reduction="none")
    torch.testing.assert_close(class_balanced_loss(x, t, **kw), per_sample.sum() / 5)
    sw = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(
        class_balanced_loss(x, t, **kw, sample_weight=sw), (per_sample * sw).sum() / sw.sum()
    )


def test_class_balanced_beta_near_one_approaches_inverse_frequency() -> None:
    x = torch.zeros(2, 2, dtype=torch.float64)
    t = torch.tensor([0, 1])
    got = class_balanced_loss(
        x, t, samples_per_class=[10, 100], beta=1 - 1e-9, base="ce", reduction="none"
    )
    ratio = (got / math.log(2.0)).tolist()
    torch.testing.assert_close(
        torch.tensor(ratio), torch.tensor([2 * 10 / 11, 2 * 1 / 11]), rtol=1e-6, atol=0
    )


def test_class_balanced_zero_count_explains_itself() -> None:
    with pytest.raises(ValueError, match=r"effective number .* infinite weight"):
        losslab.ClassBalancedLoss(samples_per_class=[10, 0, 3])


def test_class_balanced_module_keeps_counts_as_a_buffer() -> None:
    loss = losslab.ClassBalancedLoss(samples_per_class=torch.tensor([50.0, 5.0]), base="bce")
    assert "samples_per_class" in loss.state_dict()
    x, t = torch.randn(4, 2, dtype=torch.float64), torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(
        loss.to(torch.float64)(x, t),
        class_balanced_loss(x, t, samples_per_class=[50, 5], base="bce"),
    )
