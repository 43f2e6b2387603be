"""Likelihood and quantile regression losses: hand-computed values, torch and scikit-learn
references, domains, numerics at the edges, and spec round trips."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_pinball_loss, mean_squared_log_error, mean_tweedie_deviance

import losslab
import losslab.functional as LF
from losslab import (
    GaussianNLLLoss,
    MSELoss,
    MSLELoss,
    PinballLoss,
    PoissonNLLLoss,
    TweedieDevianceLoss,
)

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ spec round trips
@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("msle", MSLELoss),
        ("pinball(quantiles=[0.1, 0.5, 0.9])", PinballLoss),
        ("poisson_nll(log_input=False, full=True, eps=0.001)", PoissonNLLLoss),
        ("gaussian_nll(full=True, eps=0.001)", GaussianNLLLoss),
        ("tweedie(power=2.0, log_input=True)", TweedieDevianceLoss),
    ],
)
def test_spec_round_trip(spec: str, cls: type) -> None:
    loss = losslab.parse(spec)
    assert type(loss) is cls
    assert loss.to_spec() == spec
    again = losslab.parse(loss.to_spec())
    assert again.to_spec() == spec
    assert losslab.parse(f"0.5*{spec} + 0.5*mse").to_spec() == f"0.5*{spec} + 0.5*mse"


def test_pinball_alias_and_default_spec() -> None:
    assert losslab.lookup("quantile") is PinballLoss
    assert losslab.parse("quantile").to_spec() == "pinball(quantiles=[0.5])"
    loss = losslab.parse("pinball(quantiles=[0.1, 0.5, 0.9])")
    assert loss.quantiles.dtype == F64 and loss.quantiles.tolist() == [0.1, 0.5, 0.9]
    assert "quantiles" in loss.state_dict()


# ------------------------------------------------------------------------------ msle
def test_msle_hand_value() -> None:
    pred, target = torch.tensor([0.0, math.e - 1, 3.0]), torch.tensor([0.0, 0.0, 1.0])
    # (0)^2, (1 - 0)^2, (log 4 - log 2)^2 = (log 2)^2
    want = [0.0, 1.0, math.log(2) ** 2]
    torch.testing.assert_close(LF.msle_loss(pred, target, reduction="none"), torch.tensor(want))
    assert LF.msle_loss(pred, target).item() == pytest.approx(sum(want) / 3, rel=1e-6)


def test_msle_matches_sklearn_2d_weighted() -> None:
    g = _gen(1)
    pred = torch.rand(7, 3, generator=g, dtype=F64) * 5 - 0.5
    target = torch.rand(7, 3, generator=g, dtype=F64) * 5 - 0.5
    w = torch.rand(7, generator=g, dtype=F64)
    got = LF.msle_loss(pred, target, sample_weight=w)
    want = mean_squared_log_error(target.numpy(), pred.numpy(), sample_weight=w.numpy())
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_msle_domain_follows_sklearn() -> None:
    # scikit-learn >= 1.5 accepts every value > -1 and refuses values <= -1.
    ok = torch.tensor([-0.5, 0.0, 2.0])
    assert LF.msle_loss(ok, ok.flip(0)).item() == pytest.approx(
        mean_squared_log_error(ok.flip(0).numpy(), ok.numpy()), rel=1e-6
    )
    bad = torch.tensor([-1.0, 0.0, 2.0])
    with pytest.raises(ValueError):
        mean_squared_log_error(bad.numpy(), ok.numpy())
    with pytest.raises(
        ValueError, match=r"msle_loss\(\): `target` must have values in \(-1, inf\)"
    ):
        LF.msle_loss(ok, bad)
    with pytest.raises(ValueError, match=r"`pred` must have values in \(-1, inf\)"):
        MSLELoss()(bad, ok)
    # validate=False skips the check (log1p(-1) = -inf, as torch would compute it).
    assert torch.isinf(LF.msle_loss(bad, ok, validate=False))


# ------------------------------------------------------------------------------ pinball
def test_pinball_hand_values() -> None:
    pred = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.5, 4.0]])
    target = torch.tensor([1.0, 3.0])
    none = LF.pinball_loss(pred, target, quantiles=(0.1, 0.5, 0.9), reduction="none")
    # row 0: e = (1, 0, -1) -> (0.1*1, 0, -0.1*-1); row 1: e = (2, 1.5, -1) -> (0.2, 0.75, 0.1)
    torch.testing.assert_close(none, torch.tensor([[0.1, 0.0, 0.1], [0.2, 0.75, 0.1]]))
    assert LF.pinball_loss(pred, target, quantiles=(0.1, 0.5, 0.9)).item() == pytest.approx(
        1.25 / 6
    )
    assert LF.pinball_loss(
        pred, target, quantiles=(0.1, 0.5, 0.9), reduction="sum"
    ).item() == pytest.approx(1.25)


def test_pinball_median_is_half_mae() -> None:
    g = _gen(2)
    pred, target = torch.randn(8, 1, generator=g, dtype=F64), torch.randn(8, generator=g, dtype=F64)
    got = LF.pinball_loss(pred, target)
    assert got.item() == pytest.approx(0.5 * (pred[:, 0] - target).abs().mean().item(), rel=1e-12)


def test_pinball_matches_sklearn_per_quantile() -> None:
    g = _gen(3)
    taus = (0.05, 0.25, 0.5, 0.75, 0.95)
    pred = torch.randn(9, len(taus), generator=g, dtype=F64)
    target = torch.randn(9, generator=g, dtype=F64)
    w = torch.rand(9, generator=g, dtype=F64)
    none = LF.pinball_loss(pred, target, quantiles=taus, reduction="none")
    for q, tau in enumerate(taus):
        plain = mean_pinball_loss(target.numpy(), pred[:, q].numpy(), alpha=tau)
        weighted = mean_pinball_loss(
            target.numpy(), pred[:, q].numpy(), alpha=tau, sample_weight=w.numpy()
        )
        assert none[:, q].mean().item() == pytest.approx(plain, rel=1e-12)
        single = LF.pinball_loss(pred[:, q : q + 1], target, quantiles=(tau,), sample_weight=w)
        assert single.item() == pytest.approx(weighted, rel=1e-12)


def test_pinball_module_buffer_and_tensor_quantiles() -> None:
    loss = PinballLoss(quantiles=[0.1, 0.9])
    assert (
        isinstance(loss.quantiles, torch.Tensor)
        and dict(loss.named_buffers())["quantiles"] is loss.quantiles
    )
    pred, target = torch.randn(4, 2), torch.randn(4)
    want = LF.pinball_loss(pred, target, quantiles=(0.1, 0.9))
    torch.testing.assert_close(loss(pred, target), want, rtol=0, atol=0)
    tau = torch.tensor([0.1, 0.9])
    module = PinballLoss(quantiles=tau)
    tau[0] = 0.3  # the module keeps its own copy
    assert module.quantiles.tolist() == pytest.approx([0.1, 0.9])
    assert "quantiles=[0.1, 0.9" in repr(loss)


def test_pinball_shapes() -> None:
    # One quantile: (N, 1) against (N,) is the documented layout, not a broadcast.
    assert LF.pinball_loss(torch.randn(6, 1), torch.randn(6)).shape == ()
    with pytest.raises(
        ValueError,
        match=r"`target` must have shape `pred`.shape\[:-1\] = \(6,\).*got \(6, 1\).*squeeze",
    ):
        LF.pinball_loss(torch.randn(6, 1), torch.randn(6, 1))
    with pytest.raises(ValueError, match=r"Q = len\(quantiles\) = 2"):
        LF.pinball_loss(torch.randn(6, 3), torch.randn(6), quantiles=(0.1, 0.9))
    # A single sample (Q,) against a 0-d target.
    assert LF.pinball_loss(
        torch.zeros(2), torch.tensor(1.0), quantiles=(0.25, 0.75)
    ).item() == pytest.approx(0.5)


def test_pinball_gradient_at_zero_error_is_tau_side() -> None:
    pred = torch.tensor([[1.0, 1.0]], requires_grad=True)
    LF.pinball_loss(pred, torch.tensor([1.0]), quantiles=(0.2, 0.7), reduction="sum").backward()
    # d/dpred of tau * (y - pred) at e = 0 is -tau (the e >= 0 branch).
    torch.testing.assert_close(pred.grad, torch.tensor([[-0.2, -0.7]]))


# ------------------------------------------------------------------------------ poisson_nll
@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_poisson_matches_torch(log_input: bool, full: bool, reduction: str) -> None:
    g = _gen(4)
    pred = torch.randn(6, 3, generator=g, dtype=F64)
    if not log_input:
        pred = pred.abs() + 0.05
    target = torch.randint(0, 6, (6, 3), generator=g).to(F64)
    target[0, 0] = 1.0  # exactly 1: no Stirling term there
    got = LF.poisson_nll_loss(pred, target, log_input=log_input, full=full, reduction=reduction)
    want = F.poisson_nll_loss(pred, target, log_input=log_input, full=full, reduction=reduction)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    module = torch.nn.PoissonNLLLoss(log_input=log_input, full=full, reduction=reduction)
    torch.testing.assert_close(
        PoissonNLLLoss(log_input=log_input, full=full, reduction=reduction)(pred, target),
        module(pred, target),
    )


def test_poisson_hand_values() -> None:
    pred, target = torch.tensor([0.0, 1.0, -1.0]), torch.tensor([1.0, 3.0, 0.0])
    want = torch.tensor([1.0, math.e - 3.0, math.exp(-1.0)])
    torch.testing.assert_close(LF.poisson_nll_loss(pred, target, reduction="none"), want)
    # Stirling only for y = 3 > 1: 3 log 3 - 3 + 0.5 log(6 pi).
    stirling = 3 * math.log(3) - 3 + 0.5 * math.log(6 * math.pi)
    full = LF.poisson_nll_loss(pred, target, full=True, reduction="none")
    torch.testing.assert_close(full, want + torch.tensor([0.0, stirling, 0.0]))
    rate = LF.poisson_nll_loss(torch.tensor([2.0]), torch.tensor([3.0]), log_input=False, eps=0.0)
    assert rate.item() == pytest.approx(2.0 - 3.0 * math.log(2.0))


def test_poisson_eps_survives_half_inputs() -> None:
    # log(0 + 1e-8): 1e-8 is 0 in fp16, so the rate is computed in float32.
    pred, target = torch.zeros(3, dtype=torch.float16), torch.ones(3, dtype=torch.float16)
    got = LF.poisson_nll_loss(pred, target, log_input=False)
    assert got.dtype == torch.float16
    assert got.item() == pytest.approx(-math.log(1e-8), rel=1e-3)


def test_poisson_rate_zero_has_finite_gradient() -> None:
    pred = torch.zeros(3, requires_grad=True)
    LF.poisson_nll_loss(
        pred, torch.tensor([0.0, 2.0, 5.0]), log_input=False, full=True, reduction="sum"
    ).backward()
    assert torch.isfinite(pred.grad).all()
    torch.testing.assert_close(pred.grad, 1 - torch.tensor([0.0, 2.0, 5.0]) / 1e-8)


# ------------------------------------------------------------------------------ gaussian_nll
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gaussian_matches_torch_values_and_gradients(full: bool, reduction: str) -> None:
    g = _gen(5)
    pred = torch.randn(5, 4, generator=g, dtype=F64)
    target = torch.randn(5, 4, generator=g, dtype=F64)
    var = torch.rand(5, 4, generator=g, dtype=F64) * 2
    var[0, :2] = torch.tensor([0.0, 1e-9])  # clamped at eps
    ours = [t.clone().requires_grad_(True) for t in (pred, var)]
    theirs = [t.clone().requires_grad_(True) for t in (pred, var)]
    got = LF.gaussian_nll_loss(ours[0], target, ours[1], full=full, eps=1e-6, reduction=reduction)
    want = F.gaussian_nll_loss(
        theirs[0], target, theirs[1], full=full, eps=1e-6, reduction=reduction
    )
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    got.sum().backward()
    want.sum().backward()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)
    # Straight-through: the clamped entries still get a (non-zero) gradient, as in torch.
    assert ours[1].grad[0, 0] != 0


def test_gaussian_hand_value() -> None:
    pred, target = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.0, 4.0])
    var = torch.tensor([1.0, 0.5, 2.0])
    want = [0.5 * 0.25, 0.5 * math.log(0.5), 0.5 * (math.log(2.0) + 2.0)]
    torch.testing.assert_close(
        LF.gaussian_nll_loss(pred, target, var, reduction="none"), torch.tensor(want)
    )
    full = LF.gaussian_nll_loss(pred, target, var, full=True)
    assert full.item() == pytest.approx(sum(want) / 3 + 0.5 * math.log(2 * math.pi), rel=1e-6)


def test_gaussian_var_is_per_call_positional_or_keyword() -> None:
    pred, target, var = torch.randn(4, 2), torch.randn(4, 2), torch.rand(4, 2) + 0.5
    loss = GaussianNLLLoss(full=True)
    want = LF.gaussian_nll_loss(pred, target, var, full=True)
    torch.testing.assert_close(loss(pred, target, var), want, rtol=0, atol=0)
    torch.testing.assert_close(loss(pred, target, var=var), want, rtol=0, atol=0)
    assert GaussianNLLLoss.call_arguments() == ("var", "sample_weight")
    # In a composition, var is routed by keyword to the terms that take it.
    total = 0.5 * GaussianNLLLoss(full=True) + 0.5 * MSELoss()
    out = total.evaluate(pred, target, var=var)
    torch.testing.assert_close(out.components["gaussian_nll"], want)
    torch.testing.assert_close(out.total, 0.5 * want + 0.5 * LF.mse_loss(pred, target))


def test_gaussian_refuses_homoscedastic_broadcast() -> None:
    pred, target = torch.randn(4, 3), torch.randn(4, 3)
    shared = torch.ones(4, 1)
    F.gaussian_nll_loss(pred, target, shared)  # torch broadcasts it
    with pytest.raises(
        ValueError,
        match=r"`var` must have the same shape as `pred` \(4, 3\); got \(4, 1\). .*var.expand_as\(pred\)",
    ):
        LF.gaussian_nll_loss(pred, target, shared)
    torch.testing.assert_close(
        LF.gaussian_nll_loss(pred, target, shared.expand_as(pred)),
        F.gaussian_nll_loss(pred, target, shared),
    )


def test_gaussian_var_zero_in_half_is_finite() -> None:
    pred = torch.tensor([0.0, 0.0], dtype=torch.float16, requires_grad=True)
    var = torch.zeros(2, dtype=torch.float16)
    loss = LF.gaussian_nll_loss(pred, torch.zeros(2, dtype=torch.float16), var)
    # eps = 1e-6 is below fp16's normals; the clamp runs in float32: 0.5 * log(1e-6).
    assert loss.dtype == torch.float16
    assert loss.item() == pytest.approx(0.5 * math.log(1e-6), rel=1e-3)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    # d/dvar = 0.5 / eps / 2 = 2.5e5 at var = 0 (straight-through): finite in float32, though
    # beyond fp16's range, so a half `var` leaf would receive inf there.
    var32 = torch.zeros(2, requires_grad=True)
    LF.gaussian_nll_loss(torch.zeros(2), torch.zeros(2), var32).backward()
    torch.testing.assert_close(var32.grad, torch.full((2,), 2.5e5))


# ------------------------------------------------------------------------------ tweedie
@pytest.mark.parametrize("power", [-1.0, -0.5, 0.0, 1.0, 1.2, 1.5, 1.8, 2.0, 2.5, 3.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_tweedie_matches_sklearn(power: float, weighted: bool) -> None:
    g = _gen(6)
    mu = torch.rand(12, generator=g, dtype=F64) * 3 + 0.1
    if power == 0.0:
        mu = torch.randn(12, generator=g, dtype=F64)
    if power < 1.0:
        y = torch.randn(12, generator=g, dtype=F64) * 2
    elif power < 2.0:
        y = torch.randint(0, 5, (12,), generator=g).to(F64) * 0.7
        y[:3] = 0.0
    else:
        y = torch.rand(12, generator=g, dtype=F64) * 3 + 0.05
    w = torch.rand(12, generator=g, dtype=F64) if weighted else None
    want = mean_tweedie_deviance(
        y.numpy(), mu.numpy(), power=power, sample_weight=None if w is None else w.numpy()
    )
    assert LF.tweedie_deviance_loss(mu, y, power=power, sample_weight=w).item() == pytest.approx(
        want, rel=1e-10
    )
    if power != 0.0:
        logged = LF.tweedie_deviance_loss(mu.log(), y, power=power, log_input=True, sample_weight=w)
        assert logged.item() == pytest.approx(want, rel=1e-10)


def test_tweedie_hand_values() -> None:
    mu, y = torch.tensor([2.0]), torch.tensor([1.0])
    # p = 0: (1 - 2)^2
    assert LF.tweedie_deviance_loss(mu, y, power=0).item() == pytest.approx(1.0)
    # p = 1: 2 (1 log(1/2) - 1 + 2) = 2 - 2 log 2
    assert LF.tweedie_deviance_loss(mu, y, power=1).item() == pytest.approx(2 - 2 * math.log(2))
    # p = 2: 2 (log 2 + 1/2 - 1) = 2 log 2 - 1
    assert LF.tweedie_deviance_loss(mu, y, power=2).item() == pytest.approx(2 * math.log(2) - 1)
    # p = 3: 2 (1/2 - 1 * 2^-2 / -2 + 2^-1 / -1) = 2 (0.5 + 0.125 - 0.5) = 0.25
    assert LF.tweedie_deviance_loss(mu, y, power=3).item() == pytest.approx(0.25)
    # p = 1.5, y = 0: 2 mu^0.5 / 0.5 = 4 sqrt(2)
    assert LF.tweedie_deviance_loss(mu, torch.zeros(1), power=1.5).item() == pytest.approx(
        4 * math.sqrt(2)
    )


def test_tweedie_p0_is_mse_and_p1_is_twice_poisson_excess() -> None:
    g = _gen(7)
    pred, target = torch.randn(10, generator=g, dtype=F64), torch.randn(10, generator=g, dtype=F64)
    torch.testing.assert_close(
        LF.tweedie_deviance_loss(pred, target, power=0.0), LF.mse_loss(pred, target)
    )
    # Poisson deviance = 2 (NLL(mu) - NLL(y)): the log-likelihood ratio against the saturated model.
    log_mu = torch.randn(10, generator=g, dtype=F64)
    y = torch.randint(1, 6, (10,), generator=g).to(F64)
    nll = LF.poisson_nll_loss(log_mu, y, reduction="none")
    saturated = LF.poisson_nll_loss(y.log(), y, reduction="none")
    dev = LF.tweedie_deviance_loss(log_mu, y, power=1.0, log_input=True, reduction="none")
    torch.testing.assert_close(dev, 2 * (nll - saturated))


def test_tweedie_log_input_is_stable_for_large_pred() -> None:
    pred = torch.tensor([-1e4, -50.0, 50.0], requires_grad=True)
    y = torch.tensor([0.0, 0.0, 2.0])
    loss = LF.tweedie_deviance_loss(pred, y, power=1.5, log_input=True, reduction="none")
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(pred.grad).all()
    # Against float64 evaluated where it is representable: y = 0 leaves 2 mu^0.5 / 0.5.
    mu = torch.tensor([-50.0, 50.0], dtype=F64).exp()
    want = torch.stack(
        [4 * mu[0].sqrt(), 2 * (2**0.5 / 0.25 - 2 * mu[1] ** -0.5 / -0.5 + mu[1] ** 0.5 / 0.5)]
    )
    torch.testing.assert_close(loss[1:].double(), want, rtol=1e-5, atol=1e-12)
    assert loss[0].item() == 0.0


def test_tweedie_rejects_power_between_0_and_1() -> None:
    with pytest.raises(ValueError, match=r"`power` must be <= 0 or >= 1"):
        TweedieDevianceLoss(power=0.5)
    with pytest.raises(ValueError):
        mean_tweedie_deviance([1.0], [1.0], power=0.5)
