"""Shared code of the time-series losses: the time axis and the time-weight schedules.

A schedule gives one weight per time step ``t = 0 .. T-1`` (``t = 0`` the first step):

* ``"exponential"``: :math:`w_t = \\text{decay}^t`;
* ``"linear"``: :math:`w_t = T - t` (the first step heaviest);
* a 1-D tensor (or a sequence of numbers) of ``T`` non-negative finite weights, not all zero.

``reverse`` flips it (the last step heaviest), ``normalize`` scales it so that the mean
weight over ``T`` is 1. The weights are created on the input's device in its compute dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor

from losslab._checks import (
    check_choice,
    check_float,
    check_ndim_at_least,
    check_pointwise,
    check_range,
    check_reduction,
    check_same_device,
    fail,
    fmt,
    is_compiling,
    is_sequence,
)
from losslab._reduce import compute_dtype, output_dtype, reduce, upcast
from losslab.losses.base import Loss

__all__ = [
    "SCHEDULES",
    "Schedule",
    "TimeWeightedLoss",
    "check_schedule",
    "check_time_dim",
    "check_time_options",
    "resolve_time_dim",
    "time_weighted_error",
    "time_weights",
]

SCHEDULES = ("exponential", "linear")
Schedule = Union[str, Tensor, Sequence[float]]


# ---------------------------------------------------------------------------- time axis
def check_time_dim(fn: str, time_dim: Any) -> int:
    """``time_dim`` must be an int (not bool) and not 0: dim 0 is the batch (series) dim."""
    if isinstance(time_dim, bool) or not isinstance(time_dim, int):
        fail(fn, "time_dim", "be an int", type(time_dim).__name__, kind=TypeError, raw_got=True)
    if time_dim == 0:
        fail(
            fn,
            "time_dim",
            "not be 0, the batch (series) dimension",
            time_dim,
            hint="Inputs are (B, T) or (B, T, F): time_dim=1 by default.",
        )
    return time_dim


def resolve_time_dim(fn: str, time_dim: int, x: Tensor, name: str = "pred") -> int:
    """The non-negative index of ``time_dim`` in ``x`` (which must have >= 2 dims)."""
    check_ndim_at_least(fn, name, x, 2, "(B, T) or (B, T, F)")
    n = x.dim()
    dim = time_dim + n if time_dim < 0 else time_dim
    if not 1 <= dim < n:
        fail(
            fn,
            "time_dim",
            f"index a non-batch dimension of `{name}` {tuple(x.shape)}: "
            f"one of 1..{n - 1} or -{n - 1}..-1",
            time_dim,
        )
    return dim


# ---------------------------------------------------------------------------- schedules
def check_schedule(
    fn: str, schedule: Any, *, validate: bool, ref: Optional[Tensor] = None
) -> Union[str, Tensor, list[float]]:
    """A schedule name, or explicit weights: a floating 1-D tensor or a sequence of numbers.

    Returns the name, the tensor, or the numbers as a list of floats. Values (non-negative,
    finite, not all zero) are checked under ``validate``; sequences are always checked (no
    host sync is needed). With ``ref`` a tensor must be on ``ref``'s device.
    """
    if isinstance(schedule, str):
        return check_choice(fn, "schedule", schedule, SCHEDULES)
    if is_sequence(schedule):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in schedule):
            fail(
                fn,
                "schedule",
                "be 'exponential', 'linear', a tensor or a sequence of numbers",
                schedule,
                kind=TypeError,
            )
        values = [float(v) for v in schedule]
        if not values:
            fail(fn, "schedule", "hold at least one weight", "an empty sequence", raw_got=True)
        if not all(math.isfinite(v) and v >= 0.0 for v in values):
            bad = next(v for v in values if not (math.isfinite(v) and v >= 0.0))
            fail(fn, "schedule", "hold non-negative finite weights", f"{bad:g}", raw_got=True)
        if not any(v > 0.0 for v in values):
            fail(fn, "schedule", "hold at least one positive weight", "all zeros", raw_got=True)
        return values
    if not isinstance(schedule, Tensor):
        fail(
            fn,
            "schedule",
            "be 'exponential', 'linear', a tensor or a sequence of numbers",
            type(schedule).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if not schedule.is_floating_point():
        fail(
            fn,
            "schedule",
            "be a floating-point tensor",
            f"dtype {fmt(schedule.dtype)}",
            kind=TypeError,
            raw_got=True,
        )
    if schedule.dim() != 1 or schedule.numel() == 0:
        fail(
            fn,
            "schedule",
            "be a non-empty 1-D tensor of T weights",
            tuple(schedule.shape),
            raw_got=True,
        )
    if ref is not None:
        check_same_device(fn, "schedule", schedule, "pred", ref)
    # check_range refuses NaN; the upper bound `inf)` is open so that inf is refused too.
    check_range(fn, "schedule", schedule, low=0.0, high=math.inf, high_open=True, validate=validate)
    if validate and not is_compiling() and not bool((schedule > 0).any()):
        fail(fn, "schedule", "hold at least one positive weight", "all zeros", raw_got=True)
    return schedule


def check_time_options(
    fn: str,
    *,
    time_dim: Any,
    schedule: Any,
    decay: Any,
    reverse: Any,
    normalize: Any,
    validate: bool,
    ref: Optional[Tensor] = None,
) -> tuple[int, Union[str, Tensor, list[float]], float]:
    """Hyperparameter checks of the time-weighted losses (function and module alike)."""
    time_dim = check_time_dim(fn, time_dim)
    schedule = check_schedule(fn, schedule, validate=validate, ref=ref)
    decay = check_float(fn, "decay", decay, low=0.0, low_open=True)
    check_choice(fn, "reverse", reverse, (True, False))
    check_choice(fn, "normalize", normalize, (True, False))
    return time_dim, schedule, decay


def time_weights(
    fn: str,
    schedule: Union[str, Tensor, list[float]],
    steps: int,
    *,
    decay: float,
    reverse: bool,
    normalize: bool,
    ref: Tensor,
) -> Tensor:
    """The (T,) weights of an already checked schedule, on ``ref``'s device in its compute dtype.

    The normalized exponential schedule never forms ``decay**t`` for ``decay > 1`` (which
    overflows float32 past ``t = 88 / log(decay)``): it uses powers of ``1 / decay`` counted
    from the last step, so every power is in (0, 1] and the sum is >= 1.
    """
    dtype, device = compute_dtype(ref), ref.device
    if isinstance(schedule, str):
        t = torch.arange(steps, device=device, dtype=dtype)
        if schedule == "linear":
            w = steps - t
        elif normalize and decay > 1.0:
            # decay**t / sum_s decay**s == (1/decay)**(T-1-t) / sum_s (1/decay)**(T-1-s)
            w = torch.pow(torch.tensor(1.0 / decay, device=device, dtype=dtype), (steps - 1) - t)
        else:
            w = torch.pow(torch.tensor(decay, device=device, dtype=dtype), t)
    else:
        if isinstance(schedule, list):
            w = torch.tensor(schedule, device=device, dtype=dtype)
        else:
            w = schedule.to(dtype)
        if w.shape[0] != steps:
            fail(
                fn,
                "schedule",
                f"have one weight per time step, length T = {steps}",
                f"length {w.shape[0]}",
                raw_got=True,
            )
    if reverse:
        w = torch.flip(w, (0,))
    if normalize:
        # steps / sum(w) first: a schedule of ones gives exactly 1.0 (T / T), so decay=1 or
        # ones equal the plain loss bit for bit.
        w = w * (steps / w.sum())
    return w


def time_weighted_error(
    fn: str,
    pred: Tensor,
    target: Tensor,
    error: Callable[[Tensor], Tensor],
    *,
    time_dim: int,
    schedule: Schedule,
    decay: float,
    reverse: bool,
    normalize: bool,
    sample_weight: Optional[Tensor],
    validate: bool,
    reduction: str,
) -> Tensor:
    """``w_t * error(pred - target)`` per element, reduced; shared by the MSE and MAE forms."""
    check_pointwise(
        fn,
        "pred",
        pred,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    time_dim, schedule, decay = check_time_options(
        fn,
        time_dim=time_dim,
        schedule=schedule,
        decay=decay,
        reverse=reverse,
        normalize=normalize,
        validate=validate,
        ref=pred,
    )
    dim = resolve_time_dim(fn, time_dim, pred)
    steps = pred.shape[dim]
    w = time_weights(
        fn, schedule, steps, decay=decay, reverse=reverse, normalize=normalize, ref=pred
    )
    loss = error(upcast(pred) - upcast(target))
    shape = [1] * pred.dim()
    shape[dim] = steps
    loss = loss * w.reshape(shape)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


class TimeWeightedLoss(Loss):
    """Base of the time-weighted error modules: one constructor, checked like the functions.

    A tensor ``schedule`` is stored as a buffer (it follows ``.to()`` and ``state_dict``).
    """

    family = "timeseries"
    input_kind = "values"
    pointwise = True

    def __init__(
        self,
        *,
        time_dim: int = 1,
        schedule: Schedule = "exponential",
        decay: float = 0.9,
        reverse: bool = False,
        normalize: bool = True,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        _, schedule, _ = check_time_options(
            fn,
            time_dim=time_dim,
            schedule=schedule,
            decay=decay,
            reverse=reverse,
            normalize=normalize,
            validate=validate,
        )
        check_reduction(fn, reduction)
        self._store(
            time_dim=time_dim,
            schedule=schedule,
            decay=decay,
            reverse=reverse,
            normalize=normalize,
            validate=validate,
            reduction=reduction,
        )
