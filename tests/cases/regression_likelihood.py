"""Cases for the likelihood and quantile regression losses: msle, pinball, poisson_nll,
gaussian_nll, tweedie.

References are float64 and independent of losslab: scikit-learn for the means of msle,
pinball and tweedie, torch's own losses for poisson_nll and gaussian_nll, and the
formulas written out plainly for ``none`` and ``sum``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_pinball_loss, mean_squared_log_error, mean_tweedie_deviance

from losslab.losses.regression import (
    GaussianNLLLoss,
    MSLELoss,
    PinballLoss,
    PoissonNLLLoss,
    TweedieDevianceLoss,
)
from tests.cases._base import Case, ErrorInput, Sample, rand, randn, ref_reduce
from tests.cases.regression import pointwise_errors

F64 = torch.float64


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to(F64).cpu().numpy()


def _weights_count(sample_weight, n: int) -> float:
    return float(sample_weight.sum()) if sample_weight is not None else float(n)


def _counts(g: torch.Generator, *shape: int, high: int = 6) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=g).to(F64)


# ---------------------------------------------------------------------------- msle
def _msle_ref(pred, target, *, sample_weight=None, validate=True, reduction="mean"):
    if reduction == "mean" and pred.dim() >= 1 and _weights_count(sample_weight, pred.shape[0]) > 0:
        n = pred.shape[0]
        sw = None if sample_weight is None else _np(sample_weight)
        value = mean_squared_log_error(
            _np(target).reshape(n, -1), _np(pred).reshape(n, -1), sample_weight=sw
        )
        return torch.tensor(value, dtype=F64)
    loss = (torch.log(1.0 + pred.to(F64)) - torch.log(1.0 + target.to(F64))) ** 2
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _msle_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((rand(g, 6, high=5.0), rand(g, 6, high=5.0)), note="1d"),
        Sample(
            (rand(g, 4, 3, 2, low=-0.9, high=3.0), rand(g, 4, 3, 2, low=-0.9, high=3.0)),
            note="3d with negatives",
        ),
        Sample(
            (rand(g, 5, 2, high=10.0), rand(g, 5, 2, high=10.0)),
            {"sample_weight": rand(g, 5)},
            note="sample_weight",
        ),
        Sample(
            (
                torch.tensor([0.0, 0.3, -0.99, 50.0], dtype=F64),
                torch.tensor([0.0, 0.0, 0.5, 1e3], dtype=F64),
            ),
            note="zeros, near -1, large",
        ),
        Sample(
            (rand(g, 3, 2, high=2.0), rand(g, 3, 2, high=2.0)),
            {"sample_weight": torch.tensor([0.0, 2.0, 0.0], dtype=F64)},
            note="some zero weights",
        ),
    ]


def _msle_extremes() -> list[Sample]:
    pred = torch.tensor([0.0, 1e4, 1e30, -0.999, 30.0, 1e-30, -0.5])
    target = torch.tensor([0.0, 0.0, 1e30, 0.0, -0.999, 1e-30, 1e4])
    return [Sample((pred, target), note="large and near -1")]


def _msle_errors() -> list[ErrorInput]:
    fn = "msle_loss"
    ok = torch.rand(4)
    return [
        *pointwise_errors(fn),
        ErrorInput(
            (torch.tensor([0.0, -1.0]), torch.zeros(2)),
            {},
            ValueError,
            rf"{fn}\(\): `pred` must have values in \(-1, inf\); got 1 value\(s\) outside, e.g. -1",
            "pred = -1",
        ),
        ErrorInput(
            (ok, torch.tensor([0.0, -2.0, 1.0, 3.0])),
            {},
            ValueError,
            r"`target` must have values in \(-1, inf\); got 1 value\(s\) outside, e.g. -2. Pass validate=False",
            "target < -1",
        ),
        ErrorInput(
            (torch.tensor([float("nan"), 0.0]), torch.zeros(2)),
            {},
            ValueError,
            r"`pred` must have values in \(-1, inf\)",
            "NaN pred",
        ),
        ErrorInput(
            (ok, ok),
            {"weight": 2.0},
            TypeError,
            r"unexpected keyword argument 'weight'",
            "no weight option",
        ),
    ]


MSLE = Case(
    key="msle",
    module=MSLELoss,
    reference=_msle_ref,
    samples=_msle_samples,
    errors=_msle_errors,
    extremes=_msle_extremes,
)


# ---------------------------------------------------------------------------- pinball
def _tau(quantiles) -> torch.Tensor:
    if isinstance(quantiles, torch.Tensor):
        return quantiles.to(F64)
    return torch.tensor([float(q) for q in quantiles], dtype=F64)


def _pinball_ref(
    pred, target, *, quantiles=(0.5,), sample_weight=None, validate=True, reduction="mean"
):
    tau = _tau(quantiles)
    pred, target = pred.to(F64), target.to(F64)
    if (
        reduction == "mean"
        and _weights_count(sample_weight, pred.shape[0] if pred.dim() > 1 else 1) > 0
    ):
        # Every quantile has the same count and weights: the mean over pred's elements is the
        # plain average over quantiles of scikit-learn's per-quantile weighted means.
        n = pred.shape[0] if pred.dim() > 1 else 1
        sw = None if sample_weight is None else _np(sample_weight)
        per_q = [
            mean_pinball_loss(
                _np(target).reshape(n, -1),
                _np(pred[..., q]).reshape(n, -1),
                alpha=float(tau[q]),
                sample_weight=sw,
            )
            for q in range(tau.shape[0])
        ]
        return torch.tensor(float(np.mean(per_q)), dtype=F64)
    e = target.unsqueeze(-1) - pred
    loss = torch.maximum(tau * e, (tau - 1.0) * e)
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _pinball_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 6, 1), randn(g, 6)), note="one quantile (median)"),
        Sample(
            (randn(g, 5, 3), randn(g, 5)),
            {"quantiles": (0.1, 0.5, 0.9), "sample_weight": rand(g, 5)},
            note="three quantiles, sample_weight",
        ),
        Sample(
            (randn(g, 4, 2, 3, scale=3.0), randn(g, 4, 2)),
            {"quantiles": torch.tensor([0.05, 0.5, 0.95], dtype=F64)},
            note="3d, tensor quantiles",
        ),
        Sample(
            (randn(g, 4), randn(g, 1).reshape(())),
            {"quantiles": [0.2, 0.4, 0.6, 0.8]},
            note="one sample (Q,) vs 0-d target",
            batch_split=False,
        ),
        Sample(
            (randn(g, 3, 2), randn(g, 3)),
            {"quantiles": (0.01, 0.99), "sample_weight": torch.tensor([0.0, 1.0, 3.0], dtype=F64)},
            note="tail quantiles, a zero weight",
        ),
    ]


def _pinball_extremes() -> list[Sample]:
    pred = torch.tensor([[1e4, -1e4], [-1e4, 1e4], [0.0, 30.0]])
    return [
        Sample((pred, torch.tensor([-1e4, 1e4, 1e-30])), {"quantiles": (0.01, 0.99)}, note="+-1e4")
    ]


def _pinball_errors() -> list[ErrorInput]:
    fn = "pinball_loss"
    p3, t = torch.randn(4, 3), torch.randn(4)
    q3 = {"quantiles": (0.1, 0.5, 0.9)}
    return [
        ErrorInput(
            (torch.randn(6, 1), torch.randn(6, 1)),
            {},
            ValueError,
            rf"{fn}\(\): `target` must have shape `pred`.shape\[:-1\] = \(6,\) .*; got \(6, 1\). .*target.squeeze\(-1\)",
            "target with trailing 1",
        ),
        ErrorInput(
            (torch.randn(4, 2), t),
            q3,
            ValueError,
            r"`pred` must have shape \(..., Q\) with Q = len\(quantiles\) = 3 in the last dimension; got \(4, 2\)",
            "Q mismatch",
        ),
        ErrorInput(
            (torch.tensor(1.0), torch.tensor(1.0)),
            {},
            ValueError,
            r"`pred` must have shape \(..., Q\) .*; got \(\)",
            "0-d pred",
        ),
        ErrorInput(
            (p3, torch.randn(2)),
            q3,
            ValueError,
            r"`target` must have shape `pred`.shape\[:-1\] = \(4,\)",
            "batch mismatch",
        ),
        ErrorInput(
            (p3, torch.randn(4, 3)),
            q3,
            ValueError,
            r"`target` must have shape `pred`.shape\[:-1\] = \(4,\) .*; got \(4, 3\). One target value serves all Q",
            "target of pred's shape",
        ),
        ErrorInput(
            (p3.long(), t),
            q3,
            TypeError,
            r"`pred` must be a floating-point tensor; got dtype int64",
            "int pred",
        ),
        ErrorInput(
            (p3, t.long()),
            q3,
            TypeError,
            r"`target` must be a floating-point tensor; got dtype int64",
            "int target",
        ),
        ErrorInput(
            (p3.tolist(), t), q3, TypeError, r"`pred` must be a torch.Tensor; got list", "list pred"
        ),
        ErrorInput(
            (p3, 1.0), q3, TypeError, r"`target` must be a torch.Tensor; got float", "float target"
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": ()},
            ValueError,
            r"`quantiles` must be non-empty; got \(\)",
            "empty quantiles",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": (0.0, 0.5, 0.9)},
            ValueError,
            r"`quantiles` must hold values in \(0, 1\); got \(0.0, 0.5, 0.9\)",
            "quantile 0",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": (0.1, 0.5, 1.0)},
            ValueError,
            r"`quantiles` must hold values in \(0, 1\)",
            "quantile 1",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": (0.1, float("nan"), 0.9)},
            ValueError,
            r"`quantiles` must hold values in \(0, 1\)",
            "NaN quantile",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": 0.5},
            TypeError,
            r"`quantiles` must be a sequence of floats or a 1-D tensor; got float",
            "scalar quantile",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": "0.5"},
            TypeError,
            r"`quantiles` must be a sequence of floats or a 1-D tensor; got str",
            "string quantiles",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": (True, 0.5, 0.9)},
            TypeError,
            r"`quantiles` must hold real numbers",
            "bool quantile",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": torch.tensor([1, 2, 3])},
            TypeError,
            r"`quantiles` must be a floating-point tensor; got dtype int64",
            "int tensor quantiles",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": torch.full((1, 3), 0.5)},
            ValueError,
            r"`quantiles` must be a non-empty 1-D tensor \(Q,\); got \(1, 3\)",
            "2-D tensor quantiles",
        ),
        ErrorInput(
            (p3, t),
            {"quantiles": torch.tensor([0.1, 0.5, 1.5])},
            ValueError,
            r"`quantiles` must have values in \(0, 1\); got 1 value\(s\) outside, e.g. 1.5",
            "tensor quantile 1.5",
        ),
        ErrorInput(
            (p3, t),
            {**q3, "reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. Did you mean 'mean'\?",
            "reduction typo",
        ),
        ErrorInput(
            (p3, t),
            {**q3, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (p3, t),
            {**q3, "sample_weight": -torch.ones(4)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
        ErrorInput(
            (p3, t),
            {**q3, "sample_weight": torch.ones(4, dtype=torch.long)},
            TypeError,
            r"`sample_weight` must be a floating-point tensor",
            "int sample_weight",
        ),
        ErrorInput(
            (torch.randn(3), torch.tensor(0.0)),
            {**q3, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must be None for a 1-D `pred` \(Q,\)",
            "sample_weight with one sample",
        ),
    ]


PINBALL = Case(
    key="pinball",
    module=PinballLoss,
    reference=_pinball_ref,
    samples=_pinball_samples,
    errors=_pinball_errors,
    extremes=_pinball_extremes,
    # (6, 1) against (6,) is a valid call with one quantile; the trap is a target of pred's full shape.
    shape_trap=lambda: ((torch.randn(6, 1), torch.randn(6, 1)), {"quantiles": (0.5,)}),
)


# ---------------------------------------------------------------------------- poisson_nll
def _poisson_ref(
    pred,
    target,
    *,
    log_input=True,
    full=False,
    eps=1e-8,
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    loss = F.poisson_nll_loss(
        pred.to(F64), target.to(F64), log_input=log_input, full=full, eps=eps, reduction="none"
    )
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _poisson_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 6), _counts(g, 6)), note="log-rate"),
        Sample(
            (
                rand(g, 4, 3, low=0.1, high=4.0),
                torch.tensor(
                    [[0.0, 1.0, 2.0], [5.0, 0.0, 3.0], [1.0, 7.0, 0.5], [2.5, 1.0, 4.0]], dtype=F64
                ),
            ),
            {"log_input": False, "full": True},
            note="rate, full (y in {0, 0.5, 1} and > 1)",
        ),
        Sample(
            (randn(g, 5, 2), _counts(g, 5, 2)),
            {"full": True, "sample_weight": rand(g, 5)},
            note="log-rate, full, sample_weight",
        ),
        Sample(
            (
                torch.tensor([0.02, 0.5, 1.0, 3.0, 0.05], dtype=F64),
                torch.tensor([0.0, 1.0, 2.0, 0.0, 4.0], dtype=F64),
            ),
            {"log_input": False, "eps": 0.1},
            note="rate near 0, eps=0.1",
        ),
        Sample(
            (randn(g, 3, 2, 2), rand(g, 3, 2, 2, high=3.0)),
            {"sample_weight": torch.tensor([1.0, 0.0, 2.0], dtype=F64)},
            note="non-integer counts",
        ),
    ]


def _poisson_extremes() -> list[Sample]:
    return [
        Sample(
            (
                torch.tensor([-1e4, -1e4, -30.0, 30.0, 0.0, 80.0]),
                torch.tensor([0.0, 3.0, 0.0, 2.0, 1.0, 0.0]),
            ),
            note="log-rate +-1e4",
        ),
        Sample(
            (torch.tensor([0.0, 0.0, 1e-30, 1e4]), torch.tensor([0.0, 5.0, 2.0, 1e4])),
            {"log_input": False, "full": True},
            note="rate 0 and 1e4, full",
        ),
    ]


def _poisson_errors() -> list[ErrorInput]:
    fn = "poisson_nll_loss"
    x, c = torch.randn(4), torch.ones(4)
    return [
        *pointwise_errors(fn),
        ErrorInput(
            (x, torch.tensor([0.0, -1.0, 2.0, 3.0])),
            {},
            ValueError,
            rf"{fn}\(\): `target` must have values in \[0, inf\); got 1 value\(s\) outside, e.g. -1",
            "negative count",
        ),
        ErrorInput(
            (x, torch.tensor([0.0, float("nan"), 2.0, 3.0])),
            {},
            ValueError,
            r"`target` must have values in \[0, inf\)",
            "NaN count",
        ),
        ErrorInput(
            (torch.tensor([1.0, -0.5, 2.0, 3.0]), c),
            {"log_input": False},
            ValueError,
            r"`pred` must have values in \[0, inf\); got 1 value\(s\) outside, e.g. -0.5",
            "negative rate",
        ),
        ErrorInput(
            (x, c),
            {"eps": -1e-8},
            ValueError,
            r"`eps` must be in \[0, inf\); got -1e-08",
            "negative eps",
        ),
        ErrorInput(
            (x, c), {"eps": float("inf")}, ValueError, r"`eps` must be a finite number", "inf eps"
        ),
        ErrorInput(
            (x, c),
            {"eps": "1e-8"},
            TypeError,
            r"`eps` must be a real number; got str",
            "string eps",
        ),
        ErrorInput(
            (x, c),
            {"log_input": 1},
            ValueError,
            r"`log_input` must be one of True \| False; got 1",
            "int log_input",
        ),
        ErrorInput(
            (x, c),
            {"full": "yes"},
            ValueError,
            r"`full` must be one of True \| False; got 'yes'",
            "string full",
        ),
    ]


POISSON = Case(
    key="poisson_nll",
    module=PoissonNLLLoss,
    reference=_poisson_ref,
    samples=_poisson_samples,
    errors=_poisson_errors,
    extremes=_poisson_extremes,
)


# ---------------------------------------------------------------------------- gaussian_nll
def _gaussian_ref(
    pred,
    target,
    var=None,
    *,
    full=False,
    eps=1e-6,
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    loss = F.gaussian_nll_loss(
        pred.to(F64), target.to(F64), var.to(F64), full=full, eps=eps, reduction="none"
    )
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _gaussian_samples(g: torch.Generator) -> list[Sample]:
    return [
        # var as a keyword: what a composition routes (a WeightedSum passes two positional inputs).
        Sample(
            (randn(g, 6), randn(g, 6)), {"var": rand(g, 6, low=0.2, high=2.0)}, note="var keyword"
        ),
        Sample(
            (randn(g, 4, 3), randn(g, 4, 3), rand(g, 4, 3, low=0.1, high=3.0)),
            {"full": True},
            grad=(0, 2),
            note="full, var positional",
        ),
        Sample(
            (randn(g, 5, 2), randn(g, 5, 2), rand(g, 5, 2, low=0.05, high=4.0)),
            {"sample_weight": rand(g, 5)},
            grad=(0, 2),
            note="sample_weight",
        ),
        Sample(
            (randn(g, 2, 3, 2), randn(g, 2, 3, 2, scale=2.0), rand(g, 2, 3, 2, low=1.0, high=20.0)),
            {"eps": 1e-3},
            grad=(0, 2),
            note="3d, large variances",
        ),
        # Variances at or below eps are clamped: the value no longer depends on them, while the
        # gradient passes through (torch's semantics), so gradcheck covers pred only here.
        Sample(
            (
                torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=F64),
                torch.tensor([0.5, -0.9, 2.5, 1.0], dtype=F64),
                torch.tensor([0.0, 1e-4, 0.5, 2.0], dtype=F64),
            ),
            {"eps": 1e-3},
            grad=(0,),
            note="var 0 and below eps (clamped)",
        ),
    ]


def _gaussian_extremes() -> list[Sample]:
    pred = torch.tensor([1e2, 0.0, 1.0, 1e4, 0.0, 1.0])
    target = torch.tensor([0.0, 0.0, 0.0, 0.0, 1e-30, 0.0])
    var = torch.tensor([0.0, 1e-30, 1e-8, 1e4, 1e30, 1e-6])
    return [Sample((pred, target, var), grad=(0, 2), note="var 0 and tiny, huge errors")]


def _gaussian_errors() -> list[ErrorInput]:
    fn = "gaussian_nll_loss"
    p, t, v = torch.randn(4, 3), torch.randn(4, 3), torch.rand(4, 3) + 0.1
    col, flat = torch.randn(4, 1), torch.randn(4)
    return [
        ErrorInput(
            (p, t, torch.ones(4)),
            {},
            ValueError,
            rf"{fn}\(\): `var` must have the same shape as `pred` \(4, 3\); got \(4,\). .*expand .*var.expand_as\(pred\)",
            "homoscedastic var (N,)",
        ),
        ErrorInput(
            (p, t, torch.ones(4, 1)),
            {},
            ValueError,
            r"`var` must have the same shape as `pred` \(4, 3\); got \(4, 1\)",
            "var (N, 1)",
        ),
        ErrorInput(
            (p, t, torch.ones(())),
            {},
            ValueError,
            r"`var` must have the same shape as `pred` \(4, 3\); got \(\)",
            "0-d var",
        ),
        ErrorInput(
            (p, t, 1.0), {}, TypeError, r"`var` must be a torch.Tensor; got float", "float var"
        ),
        ErrorInput(
            (p, t, torch.ones(4, 3, dtype=torch.long)),
            {},
            TypeError,
            r"`var` must be a floating-point tensor; got dtype int64",
            "int var",
        ),
        ErrorInput(
            (p, t, -v),
            {},
            ValueError,
            r"`var` must have values in \[0, inf\); got 12 value\(s\) outside",
            "negative var",
        ),
        ErrorInput(
            (p, t, torch.full((4, 3), float("nan"))),
            {},
            ValueError,
            r"`var` must have values in \[0, inf\)",
            "NaN var",
        ),
        ErrorInput(
            (p, t, torch.full((4, 3), float("inf"))),
            {},
            ValueError,
            r"`var` must have values in \[0, inf\); got 12 value\(s\) outside, e.g. inf",
            "inf var",
        ),
        ErrorInput(
            (p, t, v), {"eps": 0.0}, ValueError, r"`eps` must be in \(0, inf\); got 0.0", "eps 0"
        ),
        ErrorInput(
            (p, t, v), {"eps": -1.0}, ValueError, r"`eps` must be in \(0, inf\)", "negative eps"
        ),
        ErrorInput(
            (p, t, v),
            {"eps": None},
            TypeError,
            r"`eps` must be a real number; got NoneType",
            "eps None",
        ),
        ErrorInput(
            (p, t, v),
            {"full": 1},
            ValueError,
            r"`full` must be one of True \| False; got 1",
            "int full",
        ),
        ErrorInput(
            (col, flat, torch.ones(4, 1)),
            {},
            ValueError,
            r"`target` must have the same shape as `pred` \(4, 1\); got \(4,\)",
            "(B,1) vs (B,)",
        ),
        ErrorInput(
            (p.long(), t, v),
            {},
            TypeError,
            r"`pred` must be a floating-point tensor; got dtype int64",
            "int pred",
        ),
        ErrorInput(
            (p, t.tolist(), v),
            {},
            TypeError,
            r"`target` must be a torch.Tensor; got list",
            "list target",
        ),
        ErrorInput(
            (p, t, v),
            {"reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. Did you mean 'mean'\?",
            "reduction typo",
        ),
        ErrorInput(
            (p, t, v),
            {"sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (p, t, v),
            {"sample_weight": -torch.ones(4)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
        ErrorInput(
            (p, t), {}, TypeError, r"missing 1 required positional argument: 'var'", "no var"
        ),
    ]


GAUSSIAN = Case(
    key="gaussian_nll",
    module=GaussianNLLLoss,
    reference=_gaussian_ref,
    samples=_gaussian_samples,
    errors=_gaussian_errors,
    extremes=_gaussian_extremes,
    shape_trap=lambda: ((torch.randn(6, 1), torch.randn(6), torch.ones(6, 1)), {}),
)


# ---------------------------------------------------------------------------- tweedie
def _tweedie_unit(mu: torch.Tensor, y: torch.Tensor, p: float) -> torch.Tensor:
    """The unit deviance written out from the textbook cases (plain float64 powers)."""
    if p == 0:
        return (y - mu) ** 2
    if p == 1:
        return 2 * (torch.special.xlogy(y, y) - torch.special.xlogy(y, mu) - y + mu)
    if p == 2:
        return 2 * (torch.log(mu / y) + y / mu - 1)
    return 2 * (
        torch.clamp(y, min=0) ** (2 - p) / ((1 - p) * (2 - p))
        - y * mu ** (1 - p) / (1 - p)
        + mu ** (2 - p) / (2 - p)
    )


def _tweedie_ref(
    pred, target, *, power=1.5, log_input=False, sample_weight=None, validate=True, reduction="mean"
):
    pred, target = pred.to(F64), target.to(F64)
    mu = torch.exp(pred) if log_input else pred
    if reduction == "mean" and _weights_count(sample_weight, pred.shape[0]) > 0:
        per_sample = pred[0].numel() if pred.dim() else 1
        sw = None if sample_weight is None else np.repeat(_np(sample_weight), per_sample)
        value = mean_tweedie_deviance(
            _np(target).ravel(), _np(mu).ravel(), sample_weight=sw, power=power
        )
        return torch.tensor(value, dtype=F64)
    return ref_reduce(
        _tweedie_unit(mu, target, float(power)), reduction, sample_weight=sample_weight
    )


def _tweedie_samples(g: torch.Generator) -> list[Sample]:
    y15 = rand(g, 6, high=3.0)
    y15[::2] = 0.0
    y1 = _counts(g, 5, 2)
    y1[0, 0] = 0.0
    return [
        Sample((rand(g, 6, low=0.2, high=3.0), y15), note="p=1.5, zeros in target"),
        Sample(
            (randn(g, 5, 2), y1),
            {"power": 1.0, "log_input": True, "sample_weight": rand(g, 5)},
            note="p=1 log_input, sample_weight",
        ),
        Sample(
            (randn(g, 4, 3), rand(g, 4, 3, low=0.1, high=4.0)),
            {"power": 2, "log_input": True},
            note="p=2 (int) log_input",
        ),
        Sample((randn(g, 6), randn(g, 6)), {"power": 0.0}, note="p=0 squared error"),
        Sample(
            (rand(g, 3, 2, 2, low=0.3, high=3.0), rand(g, 3, 2, 2, low=0.2, high=3.0)),
            {"power": 3.0, "sample_weight": torch.tensor([0.5, 0.0, 2.0], dtype=F64)},
            note="p=3 3d",
        ),
        Sample(
            (randn(g, 5, scale=0.5), randn(g, 5)),
            {"power": -0.5, "log_input": True},
            note="p=-0.5 log_input, negative y",
        ),
    ]


def _tweedie_extremes() -> list[Sample]:
    return [
        Sample(
            (torch.tensor([-1e4, -30.0, 30.0, 0.0, 50.0]), torch.tensor([0.0, 0.0, 0.0, 2.0, 1.0])),
            {"log_input": True},
            note="p=1.5 log +-1e4, y=0",
        ),
        Sample(
            (torch.tensor([-1e4, -30.0, 30.0]), torch.tensor([0.0, 0.0, 1.0])),
            {"power": 1.0, "log_input": True},
            note="p=1 log, y=0",
        ),
        Sample(
            (torch.tensor([1e4, 30.0, -30.0]), torch.tensor([1.0, 2.0, 0.5])),
            {"power": 2.0, "log_input": True},
            note="p=2 log 1e4",
        ),
        Sample(
            (torch.tensor([1e4, 30.0, 0.0]), torch.tensor([1.0, 2.0, 0.5])),
            {"power": 3.0, "log_input": True},
            note="p=3 log 1e4",
        ),
        Sample(
            (torch.tensor([-1e4, 20.0, 0.0]), torch.tensor([-2.0, 3.0, 0.0])),
            {"power": -1.0, "log_input": True},
            note="p=-1 log",
        ),
        Sample(
            (torch.tensor([1e-30, 1e4, 1.0]), torch.tensor([0.0, 0.0, 0.0])),
            note="p=1.5 mean 1e-30, y=0",
        ),
        Sample(
            (torch.tensor([1e-30, 1e4, 1.0]), torch.tensor([0.0, 0.0, 3.0])),
            {"power": 1.0},
            note="p=1 mean 1e-30, y=0",
        ),
    ]


def _tweedie_errors() -> list[ErrorInput]:
    fn = "tweedie_deviance_loss"
    mu, y = torch.rand(4) + 0.1, torch.rand(4)
    return [
        *pointwise_errors(fn),
        ErrorInput(
            (mu, y),
            {"power": 0.5},
            ValueError,
            rf"{fn}\(\): `power` must be <= 0 or >= 1 \(no Tweedie distribution has 0 < power < 1\); got 0.5",
            "power 0.5",
        ),
        ErrorInput(
            (mu, y),
            {"power": float("nan")},
            ValueError,
            r"`power` must be a finite number; got nan",
            "NaN power",
        ),
        ErrorInput(
            (mu, y),
            {"power": "1.5"},
            TypeError,
            r"`power` must be a real number; got str",
            "string power",
        ),
        ErrorInput(
            (mu, y),
            {"power": True},
            TypeError,
            r"`power` must be a real number; got bool",
            "bool power",
        ),
        ErrorInput(
            (mu, y),
            {"log_input": "no"},
            ValueError,
            r"`log_input` must be one of True \| False; got 'no'",
            "string log_input",
        ),
        ErrorInput(
            (torch.tensor([1.0, 0.0, 2.0]), torch.ones(3)),
            {},
            ValueError,
            r"`pred` must have values in \(0, inf\); got 1 value\(s\) outside, e.g. 0",
            "mean 0 (p=1.5)",
        ),
        ErrorInput(
            (torch.tensor([1.0, -1.0]), torch.ones(2)),
            {"power": -1.0},
            ValueError,
            r"`pred` must have values in \(0, inf\)",
            "negative mean (p<0)",
        ),
        ErrorInput(
            (mu, torch.tensor([1.0, -0.5, 0.0, 2.0])),
            {"power": 1.0},
            ValueError,
            r"`target` must have values in \[0, inf\); got 1 value\(s\) outside, e.g. -0.5",
            "negative y (p=1)",
        ),
        ErrorInput(
            (mu, torch.tensor([1.0, 0.0, 2.0, 3.0])),
            {"power": 2.0},
            ValueError,
            r"`target` must have values in \(0, inf\); got 1 value\(s\) outside, e.g. 0",
            "y=0 (p=2)",
        ),
        ErrorInput(
            (torch.randn(4), torch.tensor([1.0, 0.0, 2.0, 3.0])),
            {"power": 3.0, "log_input": True},
            ValueError,
            r"`target` must have values in \(0, inf\)",
            "y=0 (p=3, log_input)",
        ),
    ]


TWEEDIE = Case(
    key="tweedie",
    module=TweedieDevianceLoss,
    reference=_tweedie_ref,
    samples=_tweedie_samples,
    errors=_tweedie_errors,
    extremes=_tweedie_extremes,
)

CASES = [MSLE, PINBALL, POISSON, GAUSSIAN, TWEEDIE]

__all__ = ["CASES"]
