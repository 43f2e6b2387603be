"""Cases for the time-series error losses: time-weighted MSE/MAE, MASE, sMAPE, WAPE.

References are written from the formulas in float64, independently of losslab: the time
weights by an explicit loop over t in Python floats, the elementwise weighting by a loop over
the time steps, the MASE scale with numpy, sMAPE and WAPE by loops over the series.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from losslab.losses.timeseries.mase import MASELoss
from losslab.losses.timeseries.smape import SMAPELoss
from losslab.losses.timeseries.time_weighted_mae import TimeWeightedMAELoss
from losslab.losses.timeseries.time_weighted_mse import TimeWeightedMSELoss
from losslab.losses.timeseries.wape import WAPELoss
from tests.cases._base import Case, ErrorInput, Sample, rand, randn, ref_reduce
from tests.cases.regression import pointwise_errors

F64 = torch.float64


def _w(g: torch.Generator, n: int) -> Tensor:
    return rand(g, n, low=0.1, high=2.0)


# ---------------------------------------------------------------------------- time weights
def ref_schedule(
    steps: int,
    schedule: Any = "exponential",
    decay: float = 0.9,
    reverse: bool = False,
    normalize: bool = True,
) -> list[float]:
    """The documented schedule, one Python float per step (t = 0 is the first step)."""
    if isinstance(schedule, str) and schedule == "exponential":
        w = [decay**t for t in range(steps)]
    elif isinstance(schedule, str) and schedule == "linear":
        w = [float(steps - t) for t in range(steps)]
    else:
        values = schedule.tolist() if isinstance(schedule, Tensor) else list(schedule)
        w = [float(v) for v in values]
    if reverse:
        w = w[::-1]
    if normalize:
        total = sum(w)
        w = [v * steps / total for v in w]
    return w


def _time_weighted_ref(error: str) -> Any:
    def ref(
        pred: Tensor,
        target: Tensor,
        *,
        time_dim: int = 1,
        schedule: Any = "exponential",
        decay: float = 0.9,
        reverse: bool = False,
        normalize: bool = True,
        sample_weight: Optional[Tensor] = None,
        validate: bool = True,
        reduction: str = "mean",
    ) -> Tensor:
        dim = time_dim % pred.dim()
        steps = pred.shape[dim]
        w = ref_schedule(steps, schedule, decay, reverse, normalize)
        diff = pred.to(F64) - target.to(F64)
        e = diff**2 if error == "mse" else diff.abs()
        loss = torch.empty_like(e)
        for t in range(steps):
            loss.select(dim, t).copy_(w[t] * e.select(dim, t))
        return ref_reduce(loss, reduction, sample_weight=sample_weight)

    return ref


def _time_weighted_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 4, 5), randn(g, 4, 5)), note="(B,T) exponential default"),
        Sample(
            (randn(g, 3, 6, 2), randn(g, 3, 6, 2)),
            {"schedule": "linear", "sample_weight": _w(g, 3)},
            note="(B,T,F) linear sample_weight",
        ),
        Sample(
            (randn(g, 3, 2, 5), randn(g, 3, 2, 5)),
            {"time_dim": 2, "decay": 1.3, "reverse": True, "normalize": False},
            note="(B,F,T) time_dim=2 growing reversed raw",
        ),
        Sample(
            (randn(g, 4, 5), randn(g, 4, 5)),
            {"time_dim": -1, "schedule": rand(g, 5, low=0.0, high=3.0), "reverse": True},
            note="tensor schedule time_dim=-1 reversed",
        ),
        Sample(
            (randn(g, 3, 4, 2), randn(g, 3, 4, 2)),
            {"schedule": [2.0, 0.0, 1.0, 0.5], "normalize": False, "decay": 0.5},
            note="list schedule raw",
        ),
        Sample(
            (randn(g, 3, 4), randn(g, 3, 4)),
            {"schedule": "linear", "reverse": True, "sample_weight": torch.zeros(3, dtype=F64)},
            note="all-zero sample weights",
        ),
    ]


def _time_weighted_extremes() -> list[Sample]:
    big = torch.tensor([[0.0, 1e4, -1e4, 30.0, -30.0, 1e-30], [1e4, 1e4, -1e4, -1e4, 0.5, 2.0]])
    g = torch.Generator().manual_seed(7)
    long_pred = torch.randn(2, 300, generator=g)
    return [
        Sample((big.clone(), torch.zeros(2, 6)), note="1e4 values"),
        # decay**299 overflows float32 for decay = 1.5 (1e52): the normalized weights do not.
        Sample((long_pred, torch.zeros(2, 300)), {"decay": 1.5}, note="growing decay, T=300"),
        # 0.5**299 underflows to 0 in float32: a zero weight, not a NaN.
        Sample(
            (long_pred.clone(), torch.zeros(2, 300)),
            {"decay": 0.5, "reverse": True},
            note="fast decay, T=300",
        ),
    ]


def _time_weighted_errors(fn: str) -> list[ErrorInput]:
    p, t = torch.randn(4, 3), torch.randn(4, 3)
    bad_schedules: list[tuple[Any, type[Exception], str, str]] = [
        ("expo", ValueError, r"`schedule` must be one of 'exponential' \| 'linear'", "typo"),
        (
            "Linear",
            ValueError,
            r"`schedule` must be one of .*; got 'Linear'. Did you mean 'linear'\?",
            "capital",
        ),
        (3, TypeError, r"`schedule` must be 'exponential', 'linear', a tensor.*; got int", "int"),
        (torch.ones(3, dtype=torch.long), TypeError, r"`schedule` must be a floating", "long"),
        (torch.ones(3, 1), ValueError, r"`schedule` must be a non-empty 1-D.*got \(3, 1\)", "2-D"),
        (torch.ones(4), ValueError, r"length T = 3; got length 4", "too long"),
        (torch.ones(2), ValueError, r"length T = 3; got length 2", "too short"),
        ([1.0, 1.0], ValueError, r"length T = 3; got length 2", "short list"),
        (
            torch.tensor([1.0, -1.0, 1.0]),
            ValueError,
            r"`schedule` must have values in \[0, inf\)",
            "negative",
        ),
        (
            torch.tensor([1.0, float("nan"), 1.0]),
            ValueError,
            r"`schedule` must have values in",
            "NaN",
        ),
        (
            torch.tensor([1.0, float("inf"), 1.0]),
            ValueError,
            r"`schedule` must have values in",
            "inf",
        ),
        (
            torch.zeros(3),
            ValueError,
            r"`schedule` must hold at least one positive weight",
            "all zero",
        ),
        ([0.0, 0.0, 0.0], ValueError, r"at least one positive weight", "all-zero list"),
        (
            [1.0, -2.0, 1.0],
            ValueError,
            r"`schedule` must hold non-negative finite weights; got -2",
            "negative list",
        ),
        ([], ValueError, r"`schedule` must hold at least one weight", "empty list"),
        ([1.0, "a", 1.0], TypeError, r"a sequence of numbers", "str in list"),
        (
            torch.ones(3, device="meta"),
            ValueError,
            r"`schedule` must be on the same device as "
            r"`pred` \(cpu\); got meta",
            "device",
        ),
    ]
    out = [
        *pointwise_errors(fn),
        ErrorInput(
            (torch.randn(5), torch.randn(5)),
            {},
            ValueError,
            rf"{fn}\(\): `pred` must have at least 2 dimensions \(B, T\) or \(B, T, F\); got \(5,\)",
            "1-D input",
        ),
        ErrorInput((p, t), {"time_dim": 0}, ValueError, r"`time_dim` must not be 0", "time_dim 0"),
        ErrorInput(
            (p, t),
            {"time_dim": 2},
            ValueError,
            r"`time_dim` must index a non-batch dimension of `pred` \(4, 3\): one of 1..1 or "
            r"-1..-1; got 2",
            "time_dim 2 on 2-D",
        ),
        ErrorInput(
            (p, t), {"time_dim": -2}, ValueError, r"non-batch dimension.*got -2", "time_dim -2"
        ),
        ErrorInput(
            (p, t),
            {"time_dim": True},
            TypeError,
            r"`time_dim` must be an int; got bool",
            "time_dim bool",
        ),
        ErrorInput(
            (p, t),
            {"time_dim": 1.0},
            TypeError,
            r"`time_dim` must be an int; got float",
            "time_dim float",
        ),
        ErrorInput(
            (p, t), {"decay": 0.0}, ValueError, r"`decay` must be in \(0, inf\); got 0.0", "decay 0"
        ),
        ErrorInput(
            (p, t), {"decay": -0.5}, ValueError, r"`decay` must be in \(0, inf\)", "decay < 0"
        ),
        ErrorInput(
            (p, t),
            {"decay": float("inf")},
            ValueError,
            r"`decay` must be a finite number",
            "decay inf",
        ),
        ErrorInput(
            (p, t),
            {"decay": torch.tensor(0.9)},
            TypeError,
            r"`decay` must be a real number; got Tensor",
            "decay tensor",
        ),
        ErrorInput(
            (p, t),
            {"reverse": "yes"},
            ValueError,
            r"`reverse` must be one of True \| False",
            "reverse str",
        ),
        ErrorInput(
            (p, t),
            {"normalize": 1},
            ValueError,
            r"`normalize` must be one of True \| False; got 1",
            "normalize int",
        ),
    ]
    for schedule, exc, match, note in bad_schedules:
        out.append(ErrorInput((p, t), {"schedule": schedule}, exc, match, f"schedule {note}"))
    return out


TIME_WEIGHTED_MSE = Case(
    key="time_weighted_mse",
    module=TimeWeightedMSELoss,
    reference=_time_weighted_ref("mse"),
    samples=_time_weighted_samples,
    errors=lambda: _time_weighted_errors("time_weighted_mse_loss"),
    extremes=_time_weighted_extremes,
)

TIME_WEIGHTED_MAE = Case(
    key="time_weighted_mae",
    module=TimeWeightedMAELoss,
    reference=_time_weighted_ref("mae"),
    samples=_time_weighted_samples,
    errors=lambda: _time_weighted_errors("time_weighted_mae_loss"),
    extremes=_time_weighted_extremes,
)


# ---------------------------------------------------------------------------- MASE
def ref_mase_scale(insample: Tensor, m: int, dim: int) -> np.ndarray:
    """mean over t of |x_t - x_{t-m}| along ``dim`` (numpy, float64), keeping the axis."""
    x = np.moveaxis(insample.detach().to(F64).numpy(), dim, -1)
    scale = np.abs(x[..., m:] - x[..., :-m]).mean(axis=-1, keepdims=True)
    return np.moveaxis(scale, -1, dim)


def _mase_ref(
    pred: Tensor,
    target: Tensor,
    *,
    insample: Tensor,
    m: int = 1,
    time_dim: int = 1,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    dim = time_dim % pred.dim()
    scale = torch.from_numpy(ref_mase_scale(insample, m, dim))
    loss = (pred.to(F64) - target.to(F64)).abs() / scale
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _mase_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 4, 5), randn(g, 4, 5)), {"insample": randn(g, 4, 8)}, note="(B,T) m=1"),
        Sample(
            (randn(g, 3, 4, 2), randn(g, 3, 4, 2)),
            {"insample": randn(g, 3, 10, 2, scale=3.0), "m": 4, "sample_weight": _w(g, 3)},
            note="(B,T,F) m=4 sample_weight",
        ),
        Sample(
            (randn(g, 3, 2, 6), randn(g, 3, 2, 6)),
            {"insample": randn(g, 3, 2, 9), "m": 2, "time_dim": -1},
            note="(B,F,T) time_dim=-1 m=2",
        ),
        Sample(
            (randn(g, 2, 3), randn(g, 2, 3)),
            {"insample": randn(g, 2, 3), "m": 2},
            note="T_in = m + 1: one naive error",
        ),
        Sample(
            (randn(g, 3, 4), randn(g, 3, 4)),
            {"insample": randn(g, 3, 6), "sample_weight": torch.zeros(3, dtype=F64)},
            note="all-zero sample weights",
        ),
    ]


def _mase_extremes() -> list[Sample]:
    pred = torch.tensor([[1e4, -1e4, 0.0, 30.0], [-1e4, 1e4, 5.0, 1e-30]])
    history = torch.tensor([[1e4, -1e4, 1e4, -1e4, 1e4], [0.0, 1e-3, 0.0, 1e-3, 0.0]])
    return [Sample((pred, torch.zeros(2, 4)), {"insample": history}, note="1e4 and tiny scales")]


def _mase_errors() -> list[ErrorInput]:
    fn = "mase_loss"
    p, t, h = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 6)
    constant = torch.randn(4, 6)
    constant[2] = 1.5
    feature = torch.randn(4, 6, 3)
    feature[1, :, 2] = -0.25
    return [
        *pointwise_errors(fn, insample=h),
        ErrorInput(
            (torch.randn(5), torch.randn(5)),
            {"insample": torch.randn(5)},
            ValueError,
            rf"{fn}\(\): `pred` must have at least 2 dimensions",
            "1-D input",
        ),
        ErrorInput(
            (p, t),
            {"insample": torch.randn(3, 6)},
            ValueError,
            r"`insample` must have `pred`'s shape \(4, 3\) except along time_dim=1: \(4, T_in\); "
            r"got \(3, 6\)",
            "insample batch mismatch",
        ),
        ErrorInput(
            (p, t),
            {"insample": torch.randn(4, 6, 1)},
            ValueError,
            r"`insample` must have `pred`'s shape.*got \(4, 6, 1\)",
            "insample extra dim",
        ),
        ErrorInput(
            (torch.randn(4, 3, 2), torch.randn(4, 3, 2)),
            {"insample": torch.randn(4, 6, 3)},
            ValueError,
            r"\(4, T_in, 2\); got \(4, 6, 3\)",
            "insample feature mismatch",
        ),
        ErrorInput(
            (p, t),
            {"insample": torch.randn(4, 2), "m": 2},
            ValueError,
            r"`insample` must have more than m = 2 steps along time_dim=1 \(T_in > m\); "
            r"got T_in = 2",
            "T_in == m",
        ),
        ErrorInput(
            (p, t),
            {"insample": torch.randn(4, 6).long()},
            TypeError,
            r"`insample` must be a floating-point tensor; got dtype int64",
            "int insample",
        ),
        ErrorInput(
            (p, t),
            {"insample": [[1.0] * 6] * 4},
            TypeError,
            r"`insample` must be a torch.Tensor; got list",
            "list insample",
        ),
        ErrorInput(
            (p, t),
            {"insample": torch.empty(4, 6, device="meta")},
            ValueError,
            r"`insample` must be on the same device as `pred` \(cpu\); got meta",
            "insample device",
        ),
        ErrorInput(
            (p, t),
            {"insample": constant},
            ValueError,
            rf"{fn}\(\): `insample` must vary within every series.*got scale 0 \(a constant "
            r"history\) for series 2; 1 zero scale\(s\) in all",
            "constant series",
        ),
        ErrorInput(
            (torch.randn(4, 2, 3), torch.randn(4, 2, 3)),
            {"insample": feature},
            ValueError,
            r"for series 1, feature 2;",
            "constant feature",
        ),
        ErrorInput(
            (p, t), {"insample": h, "m": 0}, ValueError, r"`m` must be an int >= 1; got 0", "m 0"
        ),
        ErrorInput(
            (p, t),
            {"insample": h, "m": 1.0},
            TypeError,
            r"`m` must be an int >= 1; got float",
            "m float",
        ),
        ErrorInput(
            (p, t),
            {"insample": h, "m": True},
            TypeError,
            r"`m` must be an int >= 1; got "
            r"bool",
            "m bool",
        ),
        ErrorInput(
            (p, t),
            {"insample": h, "time_dim": 0},
            ValueError,
            r"`time_dim` must not be 0",
            "time_dim 0",
        ),
        ErrorInput(
            (p, t),
            {"insample": h, "time_dim": 3},
            ValueError,
            r"`time_dim` must index a non-batch dimension",
            "time_dim 3",
        ),
        ErrorInput(
            (p, t),
            {},
            TypeError,
            r"missing 1 required keyword-only argument: 'insample'",
            "no insample",
        ),
    ]


MASE = Case(
    key="mase",
    module=MASELoss,
    reference=_mase_ref,
    samples=_mase_samples,
    errors=_mase_errors,
    extremes=_mase_extremes,
    shape_trap=lambda: ((torch.randn(6, 1), torch.randn(6)), {"insample": torch.randn(6, 4)}),
)


# ---------------------------------------------------------------------------- sMAPE
def _smape_ref(
    pred: Tensor,
    target: Tensor,
    *,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    p, y = pred.to(F64).flatten(), target.to(F64).flatten()
    terms = []
    for i in range(p.numel()):
        den = abs(float(y[i])) + abs(float(p[i]))
        terms.append(0.0 if den == 0 else 2.0 * abs(float(y[i]) - float(p[i])) / den)
    loss = torch.tensor(terms, dtype=F64).reshape(pred.shape)
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _smape_samples(g: torch.Generator) -> list[Sample]:
    zeros_t = randn(g, 3, 4)
    zeros_p = randn(g, 3, 4)
    zeros_t[0, :2] = 0.0
    zeros_p[0, :2] = 0.0  # 0/0: defined as 0
    zeros_t[1, 3] = 0.0  # only the target zero: the term is 2
    return [
        Sample((randn(g, 4, 5), randn(g, 4, 5)), note="(B,T)"),
        Sample(
            (rand(g, 3, 4, 2, low=0.5, high=3.0), rand(g, 3, 4, 2, low=0.5, high=3.0)),
            {"sample_weight": _w(g, 3)},
            note="(B,T,F) positive, sample_weight",
        ),
        Sample((zeros_p, zeros_t), note="zeros (0/0)", gradcheck=False),
        Sample(
            (randn(g, 5, 3, scale=100.0), randn(g, 5, 3, scale=0.01)),
            note="scales apart (terms near 2)",
        ),
        Sample(
            (randn(g, 3, 4), randn(g, 3, 4)),
            {"sample_weight": torch.zeros(3, dtype=F64)},
            note="all-zero sample weights",
        ),
    ]


def _smape_extremes() -> list[Sample]:
    pred = torch.tensor([[0.0, 0.0, 1e4, -1e4, 1e4, 30.0], [1e-3, 0.0, 1e4, 1e4, 0.0, -30.0]])
    target = torch.tensor([[0.0, 1e4, 0.0, 1e4, 1e4, -30.0], [0.0, 0.0, 1e4 + 1, 1e4, 0.0, 30.0]])
    return [Sample((pred, target), note="zeros, 1e4 and opposite signs")]


SMAPE = Case(
    key="smape",
    module=SMAPELoss,
    reference=_smape_ref,
    samples=_smape_samples,
    errors=lambda: [
        *pointwise_errors("smape_loss"),
        ErrorInput(
            (torch.randn(4, 3), torch.randn(4, 3)),
            {"aggregate": "batch"},
            TypeError,
            r"unexpected keyword argument 'aggregate'",
            "no such option",
        ),
    ],
    extremes=_smape_extremes,
)


# ---------------------------------------------------------------------------- WAPE
def _wape_ref(
    pred: Tensor,
    target: Tensor,
    *,
    aggregate: str = "series",
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    p, y = pred.to(F64), target.to(F64)
    num, den = [], []
    for b in range(p.shape[0]):
        num.append(sum(abs(float(v)) for v in (y[b] - p[b]).flatten()))
        den.append(sum(abs(float(v)) for v in y[b].flatten()))
    if aggregate == "series":
        loss = torch.tensor([n / d for n, d in zip(num, den)], dtype=F64)
        return ref_reduce(loss, reduction, sample_weight=sample_weight)
    s = [1.0] * len(num) if sample_weight is None else sample_weight.tolist()
    total = sum(w * n for w, n in zip(s, num)) / sum(w * d for w, d in zip(s, den))
    return torch.tensor(total, dtype=F64)


def _wape_samples(g: torch.Generator) -> list[Sample]:
    sparse = rand(g, 4, 6, low=0.0, high=5.0)
    sparse[1] = 0.0
    sparse[1, 3] = 2.0  # a mostly-zero (intermittent) series
    return [
        Sample((randn(g, 4, 5), randn(g, 4, 5)), note="(B,T) series"),
        Sample(
            (randn(g, 3, 4, 2), randn(g, 3, 4, 2)),
            {"sample_weight": _w(g, 3)},
            note="(B,T,F) series sample_weight",
        ),
        Sample(
            (randn(g, 4, 5), randn(g, 4, 5)),
            {"aggregate": "batch"},
            note="batch",
            none_shape=(),
        ),
        Sample(
            (randn(g, 3, 4, 2), randn(g, 3, 4, 2)),
            {"aggregate": "batch", "sample_weight": _w(g, 3)},
            note="(B,T,F) batch sample_weight",
            none_shape=(),
        ),
        Sample(
            (randn(g, 4, 3), randn(g, 4, 3)),
            {"aggregate": "batch", "sync": "global"},
            note="batch, sync global without a process group",
            none_shape=(),
        ),
        Sample((rand(g, 4, 6, low=0.0, high=5.0), sparse), note="intermittent demand"),
        Sample(
            (randn(g, 3, 4), randn(g, 3, 4)),
            {"sample_weight": torch.zeros(3, dtype=F64)},
            note="all-zero sample weights",
        ),
    ]


def _wape_extremes() -> list[Sample]:
    pred = torch.tensor([[1e4, -1e4, 0.0, 30.0], [0.0, 1e-3, 1e4, -1e4]])
    target = torch.tensor([[1e4, 1e4, 1e-30, -30.0], [0.0, 0.0, 0.0, 1e4]])
    return [
        Sample((pred, target), note="1e4 series"),
        Sample(
            (pred.clone(), torch.tensor([[1e4, 1e4, 0.0, -30.0], [0.0, 0.0, 0.0, 0.0]])),
            {"aggregate": "batch"},
            note="batch with an all-zero series",
            none_shape=(),
        ),
    ]


def _wape_errors() -> list[ErrorInput]:
    fn = "wape_loss"
    p, t = torch.randn(4, 3), torch.randn(4, 3)
    zero_series = torch.randn(4, 3)
    zero_series[3] = 0.0
    return [
        *pointwise_errors(fn),
        ErrorInput(
            (torch.randn(5), torch.randn(5)),
            {},
            ValueError,
            rf"{fn}\(\): `pred` must have at least 2 dimensions",
            "1-D input",
        ),
        ErrorInput(
            (p, t),
            {"aggregate": "serie"},
            ValueError,
            r"`aggregate` must be one of 'series' \| 'batch'; got 'serie'. Did you mean 'series'\?",
            "aggregate typo",
        ),
        ErrorInput(
            (p, t), {"aggregate": None}, ValueError, r"`aggregate` must be one of", "aggregate None"
        ),
        ErrorInput(
            (p, zero_series),
            {},
            ValueError,
            rf"{fn}\(\): `target` must have a non-zero sum \|target\| in every series "
            r"\(aggregate='series'\); got sum \|target\| = 0 for series 3; 1 such series",
            "zero series",
        ),
        ErrorInput(
            (p, torch.zeros(4, 3)),
            {"aggregate": "batch"},
            ValueError,
            r"`target` must have a non-zero sum \|target\| over the batch; got sum \|target\| = 0",
            "zero batch",
        ),
        ErrorInput(
            (p, t),
            {"sync": "all"},
            ValueError,
            rf"{fn}\(\): `sync` must be one of 'local' \| 'global'; got 'all'",
            "sync value",
        ),
    ]


WAPE = Case(
    key="wape",
    module=WAPELoss,
    reference=_wape_ref,
    samples=_wape_samples,
    errors=_wape_errors,
    extremes=_wape_extremes,
    none_shape=lambda pred, target: (pred.shape[0],),
)

CASES = [TIME_WEIGHTED_MSE, TIME_WEIGHTED_MAE, MASE, SMAPE, WAPE]

__all__ = ["CASES", "ref_mase_scale", "ref_schedule"]
