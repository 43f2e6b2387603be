"""Robust regression losses: torch built-ins, hand-computed values, Barron's limits, numerics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import losslab
from losslab.functional import (
    barron_loss,
    cauchy_loss,
    charbonnier_loss,
    geman_mcclure_loss,
    huber_loss,
    log_cosh_loss,
    mae_loss,
    smooth_l1_loss,
    welsch_loss,
    wing_loss,
)

F64 = torch.float64


def _e(*values: float, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _none(fn, e: torch.Tensor, **kw) -> torch.Tensor:
    return fn(e, torch.zeros_like(e), reduction="none", **kw)


def _errors(seed: int = 0, n: int = 64, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=F64) * scale


# ------------------------------------------------------------------------------ torch built-ins
@pytest.mark.parametrize(
    ("ours", "theirs", "kw", "theirs_kw"),
    [
        (mae_loss, F.l1_loss, {}, {}),
        (huber_loss, F.huber_loss, {}, {}),
        (huber_loss, F.huber_loss, {"delta": 0.3}, {"delta": 0.3}),
        (huber_loss, F.huber_loss, {"delta": 4.0}, {"delta": 4.0}),
        (smooth_l1_loss, F.smooth_l1_loss, {}, {}),
        (smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0}, {"beta": 0.0}),
        (smooth_l1_loss, F.smooth_l1_loss, {"beta": 2.5}, {"beta": 2.5}),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_matches_torch_builtins_value_and_gradient(ours, theirs, kw, theirs_kw, dtype) -> None:
    pred = torch.cat([_errors(1), _e(0.0, 0.3, -0.3, 1.0, -1.0, 2.5, 4.0, -4.0)]).to(dtype)
    target = torch.cat([_errors(2, scale=1.0), torch.zeros(8, dtype=F64)]).to(dtype)
    for reduction in ("none", "mean", "sum"):
        p1 = pred.clone().requires_grad_(True)
        p2 = pred.clone().requires_grad_(True)
        a = ours(p1, target, reduction=reduction, **kw)
        b = theirs(p2, target, reduction=reduction, **theirs_kw)
        torch.testing.assert_close(a, b)
        (ga,) = torch.autograd.grad(a.sum(), p1)
        (gb,) = torch.autograd.grad(b.sum(), p2)
        torch.testing.assert_close(ga, gb)


def test_mae_alias_and_sample_weight() -> None:
    assert losslab.lookup("l1_error") is losslab.MAELoss
    pred, target = _e(1.0, 2.0, 4.0), _e(1.0, 0.0, 1.0)
    got = mae_loss(pred, target, sample_weight=_e(1.0, 1.0, 2.0))
    assert got.item() == pytest.approx((0 + 2 + 2 * 3) / 4)


@pytest.mark.parametrize("beta", [0.1, 1.0, 2.5, 7.0])
def test_huber_is_beta_times_smooth_l1(beta: float) -> None:
    e = torch.cat([_errors(3), _e(beta, -beta, 0.0)])
    torch.testing.assert_close(
        _none(huber_loss, e, delta=beta), beta * _none(smooth_l1_loss, e, beta=beta)
    )


# ------------------------------------------------------------------------------ hand-computed values
def test_hand_computed_values() -> None:
    # huber, delta = 1: 0.5 * 0.5^2, 1 * (3 - 0.5), 1 * (2 - 0.5)
    torch.testing.assert_close(_none(huber_loss, _e(0.5, 3.0, -2.0)), _e(0.125, 2.5, 1.5))
    # smooth_l1, beta = 2: 0.5 * 0.25 / 2, 3 - 1, 2 - 1 (|e| == beta is linear)
    torch.testing.assert_close(
        _none(smooth_l1_loss, _e(0.5, 3.0, -2.0), beta=2.0), _e(0.0625, 2.0, 1.0)
    )
    # log cosh: cosh(1) = 1.5430806348152437
    torch.testing.assert_close(
        _none(log_cosh_loss, _e(0.0, 1.0, -1.0)), _e(0.0, 0.4337808304830271, 0.4337808304830271)
    )
    # charbonnier, eps = 1: sqrt(9 + 1) - 1, sqrt(16 + 1) - 1; eps = 0.5: sqrt(0.0625 + 0.25) - 0.5
    torch.testing.assert_close(
        _none(charbonnier_loss, _e(0.0, 3.0, -4.0), eps=1.0),
        _e(0.0, 3.1622776601683795 - 1, 4.123105625617661 - 1),
    )
    torch.testing.assert_close(
        _none(charbonnier_loss, _e(0.25), eps=0.5), _e(0.5590169943749475 - 0.5)
    )
    # cauchy: log(1 + 4/2) = log 3; scale 2: z = 3, log(1 + 4.5)
    torch.testing.assert_close(
        _none(cauchy_loss, _e(2.0, -6.0, 6.0), scale=2.0),
        _e(math.log(1.5), math.log(5.5), math.log(5.5)),
    )
    # geman_mcclure: 2*4/(4+4) = 1, 2*36/40 = 1.8; scale 2: z = 1, 2/5
    torch.testing.assert_close(_none(geman_mcclure_loss, _e(2.0, -6.0)), _e(1.0, 1.8))
    torch.testing.assert_close(_none(geman_mcclure_loss, _e(2.0), scale=2.0), _e(0.4))
    # welsch: 1 - e^{-2}; scale 2: 1 - e^{-1/2}
    torch.testing.assert_close(
        _none(welsch_loss, _e(2.0, 2.0)), _e(1 - math.exp(-2.0), 1 - math.exp(-2.0))
    )
    torch.testing.assert_close(_none(welsch_loss, _e(2.0), scale=2.0), _e(1 - math.exp(-0.5)))
    # barron alpha = 1 (default): sqrt(z^2 + 1) - 1; alpha = 4: |2|/4 ((z^2/2 + 1)^2 - 1) at z = 2: 0.5 * 8 = 4
    torch.testing.assert_close(_none(barron_loss, _e(2.0)), _e(math.sqrt(5.0) - 1))
    torch.testing.assert_close(_none(barron_loss, _e(2.0), alpha=4.0), _e(4.0))
    # alpha = -1 at z = 2: 3/(-1) * ((4/3 + 1)^(-1/2) - 1) = 3 (1 - sqrt(3/7))
    torch.testing.assert_close(
        _none(barron_loss, _e(2.0), alpha=-1.0), _e(3 * (1 - math.sqrt(3 / 7)))
    )
    # wing, w = 10, eps = 2: 10 ln 2 at |e| = 2; 20 - C with C = 10 - 10 ln 6
    torch.testing.assert_close(
        _none(wing_loss, _e(0.0, 2.0, -20.0)),
        _e(0.0, 10 * math.log(2.0), 20 - 10 + 10 * math.log(6.0)),
    )


def test_reductions_with_sample_weight() -> None:
    pred = torch.tensor([[1.0, -1.0], [3.0, 0.0]], dtype=F64)
    target = torch.zeros(2, 2, dtype=F64)
    sw = _e(1.0, 3.0)
    # huber: [[0.5, 0.5], [2.5, 0]] -> weighted sum 1 + 7.5 = 8.5, weighted count 2 + 6 = 8
    assert huber_loss(pred, target, sample_weight=sw).item() == pytest.approx(8.5 / 8)
    assert huber_loss(pred, target, sample_weight=sw, reduction="sum").item() == pytest.approx(8.5)


# ------------------------------------------------------------------------------ log-cosh numerics
def _log_cosh_f64(e: torch.Tensor) -> torch.Tensor:
    """log cosh in float64, from three textbook forms, each used where float64 is exact."""
    a = e.abs()
    series = a**2 / 2 - a**4 / 12 + a**6 / 45  # next term a^8 * 17/2520: < 1e-25 for a < 1e-3
    direct = torch.log(torch.cosh(a.clamp(max=20.0)))
    tail = a - math.log(2.0) + torch.log1p(torch.exp(-2 * a))
    return torch.where(a < 1e-3, series, torch.where(a < 20.0, direct, tail))


def test_log_cosh_float32_is_exact_up_to_1e4() -> None:
    mag = torch.logspace(-15, 4, 3001, dtype=F64)
    e32 = torch.cat([mag, -mag]).to(torch.float32)
    got = _none(log_cosh_loss, e32)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    want = _log_cosh_f64(e32.to(F64))
    rel = ((got.to(F64) - want).abs() / want).max().item()
    assert rel < 1e-6, rel


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_log_cosh_gradient_is_tanh(dtype: torch.dtype) -> None:
    mag = torch.logspace(-10, 4, 500, dtype=F64)
    e = torch.cat([mag, -mag, _e(0.0, 2.0, -2.0)]).to(dtype).requires_grad_(True)
    (g,) = torch.autograd.grad(log_cosh_loss(e, torch.zeros_like(e), reduction="sum"), e)
    tol = 2e-7 if dtype == torch.float32 else 1e-15
    torch.testing.assert_close(g, torch.tanh(e.detach()), rtol=tol, atol=tol)


# ------------------------------------------------------------------------------ charbonnier
@pytest.mark.parametrize("eps", [1e-3, 0.1, 1.0, 30.0])
def test_charbonnier_is_eps_times_barron_alpha_1(eps: float) -> None:
    e = torch.cat([_errors(4), _e(0.0, eps, -eps, 1e-9)])
    torch.testing.assert_close(
        _none(charbonnier_loss, e, eps=eps), eps * _none(barron_loss, e, alpha=1.0, scale=eps)
    )


def test_charbonnier_zero_at_zero_no_cancellation_no_overflow() -> None:
    assert _none(charbonnier_loss, _e(0.0)).item() == 0.0
    # |e| << eps: sqrt(e^2 + eps^2) - eps cancels completely in float32; ~ e^2 / (2 eps) here.
    small = _none(charbonnier_loss, _e(1e-8, dtype=torch.float32), eps=1e-3)
    assert small.item() == pytest.approx(1e-16 / 2e-3, rel=1e-6)
    big = _none(charbonnier_loss, _e(1e30, -1e30, 3e38, dtype=torch.float32)).to(F64)
    torch.testing.assert_close(big, _e(1e30, 1e30, 3e38), rtol=1e-6, atol=0)


# ------------------------------------------------------------------------------ Barron's limits
def _z_values() -> torch.Tensor:
    return torch.cat([_errors(5, scale=2.0), _e(0.0, 1e-6, 30.0, -300.0)])


@pytest.mark.parametrize("scale", [1.0, 0.3, 2.5])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_barron_special_cases(scale: float, as_tensor: bool) -> None:
    e = _z_values()
    z = e / scale

    def barron(alpha: float) -> torch.Tensor:
        a = torch.tensor(alpha, dtype=F64) if as_tensor else alpha
        return _none(barron_loss, e, alpha=a, scale=scale)

    torch.testing.assert_close(barron(2.0), 0.5 * z**2)
    torch.testing.assert_close(barron(1.0), _none(charbonnier_loss, e, eps=scale) / scale)
    torch.testing.assert_close(barron(1.0), torch.sqrt(z**2 + 1) - 1)
    torch.testing.assert_close(barron(0.0), _none(cauchy_loss, e, scale=scale), rtol=0, atol=0)
    torch.testing.assert_close(barron(-2.0), _none(geman_mcclure_loss, e, scale=scale))
    torch.testing.assert_close(
        barron(-math.inf), _none(welsch_loss, e, scale=scale), rtol=0, atol=0
    )


def test_barron_per_element_alpha_matches_scalar_calls() -> None:
    e = _errors(6, n=8)
    alphas = _e(2.0, 0.0, -math.inf, -2.0, 1.0, 0.5, 3.0, -1e3)
    got = barron_loss(e, torch.zeros(8, dtype=F64), alpha=alphas, reduction="none")
    for i, a in enumerate(alphas.tolist()):
        torch.testing.assert_close(got[i], _none(barron_loss, e[i : i + 1], alpha=a)[0])


@pytest.mark.parametrize(
    ("center", "special"), [(2.0, lambda z: 0.5 * z**2), (0.0, lambda z: torch.log1p(0.5 * z**2))]
)
def test_barron_is_continuous_at_the_limits(center, special) -> None:
    e = _z_values()
    for alpha in (center - 1e-6, center + 1e-6, center - 1e-9, center + 1e-9):
        torch.testing.assert_close(
            _none(barron_loss, e, alpha=alpha), special(e), rtol=1e-4, atol=1e-9
        )


def test_barron_large_negative_alpha_tends_to_welsch() -> None:
    e = _errors(7, n=16)
    torch.testing.assert_close(
        _none(barron_loss, e, alpha=-1e8), _none(welsch_loss, e), rtol=1e-6, atol=1e-8
    )


def test_barron_float_alpha_rounds_like_the_compute_dtype() -> None:
    # 2 - 1e-9 is 2.0 in float32: the exact L2 branch, not a 0/0.
    e = _e(0.5, 3.0, -1e4, dtype=torch.float32)
    torch.testing.assert_close(_none(barron_loss, e, alpha=2.0 - 1e-9), 0.5 * e * e)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(
    "alpha", [0.0, 1e-7, -1e-7, 1e-3, 2.0, 2.0 - 1e-6, 2.0 + 1e-6, 1.0, -math.inf]
)
def test_barron_gradients_finite_at_and_near_limits(alpha: float, dtype: torch.dtype) -> None:
    e = torch.cat([_z_values(), _e(1e4, -1e4)]).to(dtype).requires_grad_(True)
    a = torch.tensor(alpha, dtype=dtype, requires_grad=True)
    loss = barron_loss(e, torch.zeros_like(e), alpha=a, reduction="sum")
    ge, ga = torch.autograd.grad(loss, [e, a])
    assert torch.isfinite(loss) and torch.isfinite(ge).all() and torch.isfinite(ga)


def test_barron_alpha_gradient_at_zero_is_the_derivative() -> None:
    e = _z_values()
    a = torch.tensor(0.0, dtype=F64, requires_grad=True)
    (ga,) = torch.autograd.grad(barron_loss(e, torch.zeros_like(e), alpha=a, reduction="sum"), a)
    h = 1e-5
    plus = barron_loss(e, torch.zeros_like(e), alpha=h, reduction="sum")
    minus = barron_loss(e, torch.zeros_like(e), alpha=-h, reduction="sum")
    assert ga.item() == pytest.approx(((plus - minus) / (2 * h)).item(), rel=1e-7)
    # Analytically, d/dalpha at 0 is -L/2 + z^2 / (2 (2 + z^2)) + L^2 / 4, L = log1p(z^2 / 2).
    L = torch.log1p(0.5 * e**2)
    assert ga.item() == pytest.approx(
        (-L / 2 + e**2 / (2 * (2 + e**2)) + L**2 / 4).sum().item(), rel=1e-12
    )


@pytest.mark.parametrize("alpha", [1.0, 0.0, 0.5, -1.5, 3.0, 1.9, 2.1, -8.0, 1e-4])
def test_barron_gradcheck_pred_and_scalar_alpha(alpha: float) -> None:
    g = torch.Generator().manual_seed(11)
    pred = torch.randn(6, generator=g, dtype=F64).requires_grad_(True)
    target = torch.randn(6, generator=g, dtype=F64)
    a = torch.tensor(alpha, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda p, al: barron_loss(p, target, alpha=al, scale=0.8, reduction="sum"),
        (pred, a),
        eps=1e-6,
        atol=1e-5,
        rtol=1e-4,
    )


def test_barron_gradcheck_per_element_alpha() -> None:
    g = torch.Generator().manual_seed(12)
    pred = torch.randn(3, 3, generator=g, dtype=F64).requires_grad_(True)
    target = torch.randn(3, 3, generator=g, dtype=F64)
    alpha = torch.tensor(
        [[0.0, 1.0, -2.0], [0.5, 3.0, -0.5], [1.5, 1e-5, -50.0]], dtype=F64, requires_grad=True
    )
    sw = torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    assert torch.autograd.gradcheck(
        lambda p, al: barron_loss(p, target, alpha=al, sample_weight=sw),
        (pred, alpha),
        eps=1e-6,
        atol=1e-5,
        rtol=1e-4,
    )


def test_barron_learns_alpha_as_a_parameter() -> None:
    loss = losslab.BarronLoss(alpha=nn.Parameter(torch.tensor(1.0)), scale=0.5)
    params = dict(loss.named_parameters())
    assert set(params) == {"alpha"} and "alpha" in loss.state_dict()
    opt = torch.optim.SGD(loss.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(32, generator=g), torch.randn(32, generator=g)
    before = loss.alpha.item()
    value = loss(pred, target)
    value.backward()
    assert loss.alpha.grad is not None and torch.isfinite(loss.alpha.grad)
    opt.step()
    assert loss.alpha.item() != before
    # From exactly 0 (Cauchy) the gradient is not 0: alpha leaves the special point.
    at_zero = losslab.BarronLoss(alpha=nn.Parameter(torch.tensor(0.0)))
    at_zero(pred, target).backward()
    assert at_zero.alpha.grad.item() != 0.0


def test_barron_tensor_alpha_is_a_buffer_and_checked_at_call() -> None:
    loss = losslab.BarronLoss(alpha=torch.tensor([0.0, 1.0, 2.0]))
    assert "alpha" in dict(loss.named_buffers())
    assert loss.to(F64).alpha.dtype == F64
    loss(torch.randn(3), torch.randn(3))
    with pytest.raises(
        ValueError,
        match=r"`alpha` must be 0-d or have the same shape as `pred` \(3, 1\); got \(3,\)",
    ):
        loss(torch.randn(3, 1), torch.randn(3, 1))
    with pytest.raises(
        ValueError, match=r"BarronLoss\(\): `alpha` must be a finite number or -inf"
    ):
        losslab.BarronLoss(alpha=math.inf)
    with pytest.raises(
        ValueError, match=r"BarronLoss\(\): `alpha` must have values in \[-inf, inf\)"
    ):
        losslab.BarronLoss(alpha=torch.tensor(math.nan))
    losslab.BarronLoss(alpha=torch.tensor(math.nan), validate=False)  # value checks are opt-out


# ------------------------------------------------------------------------------ extremes
def test_huge_errors_float32_values() -> None:
    e = _e(1e30, -1e30, dtype=torch.float32)
    torch.testing.assert_close(_none(mae_loss, e), e.abs())
    torch.testing.assert_close(_none(huber_loss, e, delta=2.0), 2.0 * (e.abs() - 1.0))
    torch.testing.assert_close(_none(smooth_l1_loss, e), e.abs())
    torch.testing.assert_close(_none(log_cosh_loss, e), e.abs())
    want_cauchy = 2 * math.log(1e30) - math.log(2.0)
    torch.testing.assert_close(
        _none(cauchy_loss, e).to(F64), _e(want_cauchy, want_cauchy), rtol=1e-6, atol=0
    )
    torch.testing.assert_close(_none(barron_loss, e, alpha=0.0), _none(cauchy_loss, e))
    torch.testing.assert_close(_none(geman_mcclure_loss, e), torch.full((2,), 2.0))
    torch.testing.assert_close(_none(welsch_loss, e), torch.ones(2))
    torch.testing.assert_close(_none(barron_loss, e, alpha=-2.0), torch.full((2,), 2.0))
    # alpha = 1: sqrt(z^2 + 1) - 1 = 1e30; alpha = 0.5: (1.5 / 0.5) (z^2 / 1.5)^(1/4) for huge z
    torch.testing.assert_close(_none(barron_loss, e, alpha=1.0), e.abs())
    want = 3.0 * (1e60 / 1.5) ** 0.25
    torch.testing.assert_close(
        _none(barron_loss, e, alpha=0.5).to(F64), _e(want, want), rtol=1e-5, atol=0
    )
    torch.testing.assert_close(_none(wing_loss, e), e.abs() - (10 - 10 * math.log(6.0)))


def test_barron_no_spurious_overflow_near_alpha_two() -> None:
    # z = 1e18 at alpha = 2 - 1.2e-7: the loss ~ z^2/2 = 5e35 fits float32 although
    # expm1(alpha/2 * log1p(z^2/|alpha-2|)) alone (~1e43) would not.
    alpha = float(torch.tensor(2.0, dtype=torch.float32).nextafter(torch.tensor(0.0)))
    e = _e(1e18, dtype=torch.float32).requires_grad_(True)
    value = barron_loss(e, torch.zeros(1), alpha=alpha, reduction="sum")
    assert value.item() == pytest.approx(5e35, rel=1e-4)
    (g,) = torch.autograd.grad(value, e)
    assert torch.isfinite(g).all()


# ------------------------------------------------------------------------------ wing
@pytest.mark.parametrize(("width", "curvature"), [(10.0, 2.0), (1.0, 0.5), (3.0, 1e-3)])
def test_wing_is_continuous_at_the_width(width: float, curvature: float) -> None:
    e = _e(width * (1 - 1e-12), width, width * (1 + 1e-12))
    v = _none(wing_loss, e, width=width, curvature=curvature)
    torch.testing.assert_close(
        v, torch.full_like(v, width * math.log1p(width / curvature)), rtol=1e-9, atol=0
    )
    # Symmetric in e, slope w/(w + eps) just inside the width and 1 outside.
    torch.testing.assert_close(_none(wing_loss, -e, width=width, curvature=curvature), v)
    x = _e(0.5 * width).requires_grad_(True)
    (g,) = torch.autograd.grad(
        wing_loss(x, torch.zeros(1, dtype=F64), width=width, curvature=curvature), x
    )
    assert g.item() == pytest.approx(width / (curvature + 0.5 * width))


# ------------------------------------------------------------------------------ specs and modules
@pytest.mark.parametrize(
    ("spec", "cls", "hparams"),
    [
        ("mae", losslab.MAELoss, {}),
        ("l1_error", losslab.MAELoss, {}),
        ("huber(delta=2.0)", losslab.HuberLoss, {"delta": 2.0}),
        ("smooth_l1(beta=0)", losslab.SmoothL1Loss, {"beta": 0.0}),
        ("log_cosh", losslab.LogCoshLoss, {}),
        ("charbonnier(eps=0.01)", losslab.CharbonnierLoss, {"eps": 0.01}),
        ("cauchy(scale=0.5)", losslab.CauchyLoss, {"scale": 0.5}),
        ("geman_mcclure(scale=2)", losslab.GemanMcClureLoss, {"scale": 2.0}),
        ("welsch(scale=3.0)", losslab.WelschLoss, {"scale": 3.0}),
        ("barron(alpha=-0.5, scale=0.2)", losslab.BarronLoss, {"alpha": -0.5, "scale": 0.2}),
        ("wing(width=5, curvature=0.5)", losslab.WingLoss, {"width": 5.0, "curvature": 0.5}),
    ],
)
def test_builds_from_spec_string(spec: str, cls: type, hparams: dict) -> None:
    loss = losslab.parse(spec)
    assert type(loss) is cls
    for name, value in hparams.items():
        assert getattr(loss, name) == value
    assert losslab.parse(loss.to_spec()).to_spec() == loss.to_spec()
    pred, target = _errors(8, n=6), _errors(9, n=6)
    torch.testing.assert_close(loss(pred, target), cls.function(pred, target, **hparams))


def test_spec_errors_name_the_hyperparameter() -> None:
    with pytest.raises(ValueError, match=r"HuberLoss\(\): `delta` must be in \(0, inf\); got 0.0"):
        losslab.parse("huber(delta=0)")
    with pytest.raises(ValueError, match=r"WingLoss\(\): `curvature` must be in \(0, inf\)"):
        losslab.parse("wing(curvature=-1)")
