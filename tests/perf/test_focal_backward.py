"""Analytic backward passes of the focal losses (issue 9): exactness against float64 autograd of
the plain formulas, gradcheck with extreme logits and every option, the CPU blocking, what gets
a gradient, and torch.compile against eager."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import losslab._autograd.sigmoid_focal as sf
from losslab._autograd.sigmoid_focal import SigmoidFocalFunction, sigmoid_focal_elementwise
from losslab._autograd.softmax_focal import SoftmaxFocalFunction, softmax_focal_elementwise
from losslab.functional import poly_focal_loss, sigmoid_focal_loss, softmax_focal_loss

EXTREMES = torch.tensor([30.0, -30.0, 1e4, -1e4, 0.0, 15.0, -15.0, 3.0])


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ references
def sigmoid_formula(
    x: torch.Tensor, y: torch.Tensor, alpha: Any, gamma: float, epsilon: float = 0.0
) -> torch.Tensor:
    """torchvision's formula (+ the PolyLoss term), elementwise, plain autograd."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss + epsilon * (1 - p_t) ** (gamma + 1)


def softmax_formula(x: torch.Tensor, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """-(1 - p_y)^gamma log p_y per position, plain autograd (float64 only: NaN gradient at
    saturation for gamma < 1, which float64 interior points never reach)."""
    log_p = torch.log_softmax(x, dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
    return -((1 - log_p.exp()) ** gamma) * log_p


def _scale_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-5) -> None:
    """float32 against float64: relative 1e-5 with an absolute floor of 1e-6 of the largest
    entry. Entries many orders below the largest carry no weight in any sum of gradients and
    are dominated by float32 rounding of the inputs' own arithmetic (e.g. sigma(x) near 1)."""
    atol = 1e-6 * want.abs().max().item()
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------ sigmoid
ALPHAS = [None, 0.25, "per-class"]


def _alpha(alpha: Any, dtype: torch.dtype) -> Any:
    if alpha == "per-class":
        return torch.tensor([0.1, 0.5, 0.9], dtype=dtype).reshape(1, 3, 1)
    return alpha


@pytest.mark.parametrize("epsilon", [0.0, 1.0, -1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 2.5])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_sigmoid_float32_gradients_match_float64_formula(
    alpha: Any, gamma: float, epsilon: float
) -> None:
    """Value and both gradients (logits, soft targets) in float32 against float64 autograd of
    the formula, on interior points and hard targets (including saturated logits where the
    formula's own gradient is finite)."""
    x = torch.cat(
        [torch.randn(6, 3, 4, generator=_g(1)) * 4, EXTREMES[:6].reshape(2, 3, 1).expand(2, 3, 4)]
    )
    y = torch.rand(8, 3, 4, generator=_g(2))
    y[::2] = (y[::2] > 0.5).float()  # hard targets in half of the rows
    w = torch.rand(8, 3, 4, generator=_g(3))
    x64, y64 = x.double().requires_grad_(), y.double().requires_grad_()
    want = sigmoid_formula(x64, y64, _alpha(alpha, torch.float64), gamma, epsilon)
    want_gx, want_gy = torch.autograd.grad((want * w.double()).sum(), [x64, y64])
    x32, y32 = x.clone().requires_grad_(), y.clone().requires_grad_()
    got = sigmoid_focal_elementwise(x32, y32, _alpha(alpha, torch.float32), gamma, epsilon)
    gx, gy = torch.autograd.grad((got * w).sum(), [x32, y32])
    finite = torch.isfinite(want_gx) & torch.isfinite(want_gy)  # the formula's NaNs (gamma < 1)
    _scale_close(got, want.detach())
    _scale_close(gx[finite], want_gx[finite])
    _scale_close(gy[finite], want_gy[finite])
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()


@pytest.mark.parametrize("epsilon", [0.0, 1.0])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_sigmoid_gradcheck_of_the_function(alpha: Any, gamma: float, epsilon: float) -> None:
    """float64 gradcheck of the Function: x with hard targets at extreme logits; x and y
    together, and y alone, at soft targets (a finite difference across a hard target leaves
    [0, 1], where m < 0 and m ** gamma is not real for gamma < 1)."""
    x = torch.cat([torch.randn(2, 3, 2, generator=_g(4)) * 3, EXTREMES[:6].reshape(1, 3, 2)])
    x = x.double().requires_grad_()
    soft = torch.rand(3, 3, 2, generator=_g(5), dtype=torch.float64) * 0.9 + 0.05
    hard = soft.detach().clone()
    hard[2] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # met and missed extremes
    a = _alpha(alpha, torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: SigmoidFocalFunction.apply(x, hard, a, gamma, epsilon), (x,)
    )
    y = soft.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, y: SigmoidFocalFunction.apply(x, y, a, gamma, epsilon), (x, y)
    )
    assert torch.autograd.gradcheck(
        lambda y: SigmoidFocalFunction.apply(x.detach(), y, a, gamma, epsilon), (y,)
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_gradcheck_of_the_public_functions(reduction: str) -> None:
    """ignore_index, sample_weight (itself differentiable), normalize, per-class alpha, Poly-1."""
    x = torch.randn(4, 3, 2, generator=_g(6), dtype=torch.float64)
    x[0, :, 0] = torch.tensor([30.0, -1e4, 1e4], dtype=torch.float64)
    y = (torch.rand(4, 3, 2, generator=_g(7), dtype=torch.float64) > 0.5).double()
    y[1, 1] = 255.0
    sw = torch.rand(4, generator=_g(8), dtype=torch.float64) + 0.5
    alpha = [0.2, 0.5, 0.7]

    def focal(x: torch.Tensor, sw: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(
            x,
            y,
            alpha=alpha,
            gamma=0.5,
            ignore_index=255,
            sample_weight=sw,
            normalize=True,
            reduction=reduction,
        )

    def poly(x: torch.Tensor, sw: torch.Tensor) -> torch.Tensor:
        return poly_focal_loss(
            x,
            y,
            epsilon=-1.0,
            alpha=0.25,
            gamma=1.5,
            ignore_index=255,
            sample_weight=sw,
            reduction=reduction,
        )

    for fn in (focal, poly):
        inputs = (x.clone().requires_grad_(), sw.clone().requires_grad_())
        assert torch.autograd.gradcheck(fn, inputs)


def test_sigmoid_blocks_match_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU blocking (rows per block, a ragged last block, per-class alpha broadcasting over
    a block) gives the one-block result, value and both gradients."""
    x = (torch.randn(37, 3, 5, generator=_g(9)) * 5).requires_grad_()
    y = torch.rand(37, 3, 5, generator=_g(10)).requires_grad_()
    alpha = torch.tensor([0.2, 0.6, 0.9]).reshape(1, 3, 1)
    w = torch.rand(37, 3, 5, generator=_g(11))

    def run() -> list[torch.Tensor]:
        loss = sigmoid_focal_elementwise(x, y, alpha, 2.0, 0.5)
        return [loss, *torch.autograd.grad((loss * w).sum(), [x, y])]

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(sf, "_BLOCK_BYTES", 4 * 15 * 4)  # 4 rows of 15 elements: 10 blocks
    assert sf._block_rows(x) == 4
    blocked = run()
    monkeypatch.setattr(sf, "_BLOCK_BYTES", 1 << 30)
    assert sf._block_rows(x) >= 37  # one block
    for got, want in zip(blocked, run()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)


def test_sigmoid_scalar_and_empty_inputs() -> None:
    x = torch.tensor(2.0, requires_grad=True)
    got = sigmoid_focal_elementwise(x, torch.tensor(1.0), 0.25, 2.0)
    want = sigmoid_formula(x, torch.tensor(1.0), 0.25, 2.0)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])
    empty = torch.zeros(0, 4, requires_grad=True)
    out = sigmoid_focal_elementwise(empty, torch.zeros(0, 4), 0.25, 2.0)
    assert out.shape == (0, 4)
    assert torch.autograd.grad(out.sum(), empty)[0].shape == (0, 4)


def test_sigmoid_log_term_keeps_its_digits_at_large_logits() -> None:
    """L = log(1 + e^-|x|) from the two sigmoids keeps relative precision where a plain
    -log(sigmoid(|x|)) rounds to 0: gamma = 0, alpha = None is BCE with logits. (The float64
    reference is written out: torch's own BCE-with-logits formula, log(1 + e^-25) as a log of
    a rounded sum, loses 3e-5 of it even in float64.)"""
    x = torch.tensor([-80.0, -25.0, -16.0, -9.0, 0.5, 9.0, 16.0, 25.0, 80.0])
    x64 = x.double()
    for target in (0.0, 1.0):
        y = torch.full_like(x, target)
        got = sigmoid_focal_elementwise(x, y, None, 0.0).double()
        want = x64.clamp_min(0) - x64 * target + torch.log1p(torch.exp(-x64.abs()))
        torch.testing.assert_close(got, want, rtol=3e-7, atol=0)


def test_sigmoid_soft_target_semantics_are_torchvision_p_t() -> None:
    """Soft targets: m = 1 - p_t with p_t = p y + (1 - p)(1 - y), torchvision's formula; the
    exp(-bce) variant (p_t = p^y (1 - p)^(1 - y), a weighted geometric mean) agrees for hard
    targets only and gives a larger modulating factor for soft ones."""
    x = torch.randn(64, generator=_g(12), dtype=torch.float64) * 2
    y = torch.rand(64, generator=_g(13), dtype=torch.float64)
    got = sigmoid_focal_loss(x, y, alpha=None, gamma=2.0, reduction="none")
    torch.testing.assert_close(got, sigmoid_formula(x, y, None, 2.0))
    bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    exp_variant = bce * (1 - torch.exp(-bce)) ** 2
    assert (exp_variant > got).all()  # weighted AM-GM: exp(-bce) <= p y + (1 - p)(1 - y)
    hard = (y > 0.5).double()
    bce = F.binary_cross_entropy_with_logits(x, hard, reduction="none")
    torch.testing.assert_close(
        sigmoid_focal_loss(x, hard, alpha=None, gamma=2.0, reduction="none"),
        bce * (1 - torch.exp(-bce)) ** 2,
    )


def test_poly_focal_uses_the_analytic_backward() -> None:
    x = torch.randn(5, 3, generator=_g(14), requires_grad=True)
    y = (torch.rand(5, 3, generator=_g(15)) > 0.5).float()
    loss = poly_focal_loss(x, y, reduction="none")
    names: list[str] = []
    stack = [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.append(type(node).__name__)
            stack.extend(n for n, _ in node.next_functions)
    assert any("SigmoidFocalFunction" in n for n in names), names


# ------------------------------------------------------------------------------ softmax
@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0, 3.5])
def test_softmax_float32_gradient_matches_float64_formula(gamma: float) -> None:
    x = torch.randn(16, 5, 3, generator=_g(20)) * 4
    x[0, :, 0] = torch.tensor([30.0, -30.0, 0.0, 5.0, 1.0])  # saturated rows
    x[1, :, 0] = torch.tensor([-1e4, 1e4, 0.0, 2.0, -3.0])
    t = torch.randint(0, 5, (16, 3), generator=_g(21))
    t[0, 0], t[1, 0] = 1, 1  # a confidently wrong row, a confidently right one
    w = torch.rand(16, 3, generator=_g(22))
    x64 = x.double().requires_grad_()
    want = softmax_formula(x64, t, gamma)
    (want_g,) = torch.autograd.grad((want * w.double()).sum(), x64)
    x32 = x.clone().requires_grad_()
    got = softmax_focal_elementwise(x32, t, gamma)
    (g,) = torch.autograd.grad((got * w).sum(), x32)
    _scale_close(got, want.detach())
    finite = torch.isfinite(want_g)
    _scale_close(g[finite], want_g[finite])
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("gamma", [0.0, 0.25, 2.0])
def test_softmax_gradcheck_of_the_function(gamma: float) -> None:
    x = torch.randn(4, 4, 2, generator=_g(23), dtype=torch.float64) * 3
    x[0, :, 0] = torch.tensor([30.0, -30.0, 1e4, -1e4], dtype=torch.float64)
    x[1, :, 1] = torch.tensor([25.0, 0.0, -25.0, 1.0], dtype=torch.float64)
    t = torch.tensor([[2, 0], [1, 0], [3, 3], [0, 1]])
    assert torch.autograd.gradcheck(
        lambda x: SoftmaxFocalFunction.apply(x, t, gamma), (x.requires_grad_(),)
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_gradcheck_of_the_public_function(reduction: str) -> None:
    """ignore_index (255), per-class alpha and sample_weight (both differentiable, as under
    plain autograd before), trailing dims."""
    x = torch.randn(3, 4, 2, 2, generator=_g(24), dtype=torch.float64) * 3
    x[0, :, 0, 0] = torch.tensor([1e4, -1e4, 0.0, 30.0], dtype=torch.float64)
    t = torch.randint(0, 4, (3, 2, 2), generator=_g(25))
    t[1, 0, 1] = 255
    alpha = torch.tensor([0.5, 1.0, 2.0, 0.25], dtype=torch.float64)
    sw = torch.rand(3, generator=_g(26), dtype=torch.float64) + 0.5

    def fn(x: torch.Tensor, alpha: torch.Tensor, sw: torch.Tensor) -> torch.Tensor:
        return softmax_focal_loss(
            x, t, alpha=alpha, gamma=0.5, ignore_index=255, sample_weight=sw, reduction=reduction
        )

    inputs = tuple(v.clone().requires_grad_() for v in (x, alpha, sw))
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("gamma", [0.25, 0.5, 2.0])
def test_softmax_saturation_limits(gamma: float) -> None:
    """A met target saturated beyond float32's range: loss and gradient exactly 0 (where the
    formula's autograd is NaN for gamma < 1); a confidently wrong one: the CE gradient."""
    x = torch.tensor([[1e4, -1e4, 0.0], [200.0, 0.0, -200.0], [0.0, 60.0, 0.0]])
    x.requires_grad_()
    t = torch.tensor([0, 0, 0])
    loss = softmax_focal_elementwise(x, t, gamma)
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert loss[0].item() == 0.0 and loss[1].item() == 0.0
    assert (g[:2] == 0).all()
    # row 2: p_0 = e^-60 / (2 + e^-60): the gradient is w (p - onehot) with w -> 1 + gamma ...
    p = torch.softmax(x[2].double().detach(), 0)
    want = (1 - p[0]) ** gamma * (1 - gamma * p[0] * torch.log(p[0]) / (1 - p[0]))
    torch.testing.assert_close(g[2].double(), want * (p - torch.tensor([1.0, 0, 0]).double()))


def test_softmax_ce_keeps_its_digits_when_the_target_dominates() -> None:
    """gamma = 0 is cross-entropy: at a dominant target, ce = log(1 + sum of e^(x_j - x_y))
    keeps its digits where lse - x_y rounds to 0 in float32."""
    x = torch.tensor([[20.0, 0.0, -1.0], [12.0, 3.0, 1.0], [9.0, 8.5, 0.0]])
    t = torch.tensor([0, 0, 0])
    got = softmax_focal_elementwise(x, t, 0.0).double()
    want = F.cross_entropy(x.double(), t, reduction="none")
    torch.testing.assert_close(got, want, rtol=3e-7, atol=0)


def test_softmax_blocks_match_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    x = (torch.randn(13, 4, 3, generator=_g(27)) * 4).requires_grad_()
    t = torch.randint(0, 4, (13, 3), generator=_g(28))
    w = torch.rand(13, 3, generator=_g(29))

    def run() -> list[torch.Tensor]:
        loss = softmax_focal_elementwise(x, t, 0.5)
        return [loss, *torch.autograd.grad((loss * w).sum(), x)]

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(sf, "_BLOCK_BYTES", 3 * 12 * 4)  # 3 rows per block, a ragged last one
    assert sf._block_rows(x) == 3
    blocked = run()
    monkeypatch.setattr(sf, "_BLOCK_BYTES", 1 << 30)
    for got, want in zip(blocked, run()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)


def test_softmax_saves_logits_ids_and_two_small_statistics() -> None:
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    x = torch.randn(32, 10, 4, requires_grad=True)
    t = torch.randint(0, 10, (32, 4))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        softmax_focal_elementwise(x, t, 2.0)
    assert sum(saved) == x.numel() + 3 * t.numel()


# ------------------------------------------------------------------------------ both
def test_no_double_backward() -> None:
    assert SigmoidFocalFunction.supports_double_backward is False
    assert SoftmaxFocalFunction.supports_double_backward is False
    x = torch.randn(4, 3, requires_grad=True)
    for loss in (
        sigmoid_focal_loss(x, torch.rand(4, 3)),
        softmax_focal_loss(x, torch.tensor([0, 1, 2, 0])),
    ):
        (g,) = torch.autograd.grad(loss, x, create_graph=True)
        with pytest.raises(RuntimeError):
            torch.autograd.grad(g.sum(), x)


def _compiled_matches_eager(fn: Any, x: torch.Tensor, *rest: Any) -> None:
    compiled = torch.compile(fn, fullgraph=True, dynamic=False)
    xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
    want = fn(xe, *rest)
    got = compiled(xc, *rest)
    (want_g,) = torch.autograd.grad(want, xe)
    (got_g,) = torch.autograd.grad(got, xc)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_g, want_g, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_compile_matches_eager() -> None:
    """torch.compile traces both Functions in one graph (one block: no Python loop over rows)."""
    g = _g(30)
    x = torch.cat(
        [torch.randn(6, 3, 4, generator=g) * 4, EXTREMES[:6].reshape(2, 3, 1).expand(2, 3, 4)]
    )
    y = (torch.rand(8, 3, 4, generator=g) > 0.6).float()
    t = torch.randint(0, 3, (8, 4), generator=g)
    _compiled_matches_eager(
        lambda x: sigmoid_focal_loss(x, y, alpha=[0.2, 0.5, 0.8], gamma=0.5, validate=False), x
    )
    _compiled_matches_eager(
        lambda x: poly_focal_loss(x, y, epsilon=1.0, gamma=2.0, validate=False), x
    )
    _compiled_matches_eager(
        lambda x: softmax_focal_loss(x, t, alpha=[1.0, 0.5, 2.0], gamma=0.5, validate=False), x
    )


def test_reference_sanity() -> None:
    """The test's own references: torchvision's formula at a hand value."""
    got = sigmoid_formula(torch.tensor([0.0]), torch.tensor([1.0]), 0.25, 2.0)
    assert got.item() == pytest.approx(0.25 * 0.25 * math.log(2.0))
