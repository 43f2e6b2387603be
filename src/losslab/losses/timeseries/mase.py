"""Mean absolute scaled error (MASE): errors scaled by the in-sample naive forecast's error."""

from __future__ import annotations

from typing import Any, Optional, cast

import torch
from torch import Tensor

from losslab._checks import (
    check_floating,
    check_int_option,
    check_pointwise,
    check_reduction,
    check_same_device,
    fail,
    is_compiling,
)
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.timeseries._time_weights import check_time_dim, resolve_time_dim

__all__ = ["MASELoss", "check_scale", "mase_loss", "naive_scale", "scaled_errors"]


def _check_options(fn: str, m: Any, time_dim: Any) -> tuple[int, int]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    m = cast(int, check_int_option(fn, "m", m, low=1))
    return m, check_time_dim(fn, time_dim)


def naive_scale(
    fn: str,
    insample: Tensor,
    ref: Tensor,
    dim: int,
    m: int,
    *,
    ref_name: str = "pred",
    shown_dim: Optional[int] = None,
) -> Tensor:
    """mean_t |x_t - x_{t-m}| over the in-sample history, keeping a size-1 time axis.

    ``insample`` must be floating, on ``ref``'s device and shaped like ``ref`` (named
    ``ref_name`` in errors) except along ``dim``, with more than ``m`` steps there; errors
    show ``shown_dim`` (the caller's ``time_dim``; default ``dim``).
    """
    shown = dim if shown_dim is None else shown_dim
    check_floating(fn, "insample", insample)
    check_same_device(fn, "insample", insample, ref_name, ref)
    same_series = insample.dim() == ref.dim() and all(
        insample.shape[d] == ref.shape[d] for d in range(ref.dim()) if d != dim
    )
    if not same_series:
        expected = ", ".join("T_in" if d == dim else str(n) for d, n in enumerate(ref.shape))
        fail(
            fn,
            "insample",
            f"have `{ref_name}`'s shape {tuple(ref.shape)} except along time_dim={shown}: "
            f"({expected})",
            tuple(insample.shape),
            raw_got=True,
        )
    steps = insample.shape[dim]
    if steps <= m:
        fail(
            fn,
            "insample",
            f"have more than m = {m} steps along time_dim={shown} (T_in > m)",
            f"T_in = {steps}",
            raw_got=True,
        )
    x = upcast(insample)
    lagged = x.narrow(dim, m, steps - m) - x.narrow(dim, 0, steps - m)
    return lagged.abs().mean(dim, keepdim=True)


def check_scale(fn: str, scale: Tensor, dim: int, validate: bool) -> None:
    """A constant in-sample series has scale 0: refused under ``validate``, naming it."""
    if not validate or is_compiling():
        return
    with torch.no_grad():
        zero = scale == 0
        if not bool(zero.any()):
            return
        first = [int(i) for i in zero.nonzero()[0].tolist()]
        where = f"series {first[0]}"
        # the remaining non-time axes are the features
        feature = [i for d, i in enumerate(first) if d not in (0, dim)]
        if feature:
            where += f", feature {feature[0] if len(feature) == 1 else tuple(feature)}"
        fail(
            fn,
            "insample",
            "vary within every series: the naive scale mean |x_t - x_{t-m}| must be > 0",
            f"scale 0 (a constant history) for {where}; {int(zero.sum())} zero scale(s) in all",
            raw_got=True,
            hint="Drop constant series, or pass validate=False (their errors then scale to inf).",
        )


def mase_loss(
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
    r"""Absolute forecast error divided by the in-sample error of the seasonal naive forecast.

    .. math:: \ell_{b,t,f} = \frac{|\hat y_{b,t,f} - y_{b,t,f}|}{q_{b,f}}, \qquad
              q_{b,f} = \frac{1}{T_{in} - m} \sum_{s=m}^{T_{in}-1} |x_{b,s,f} - x_{b,s-m,f}|

    where :math:`x` is the in-sample history of each series (and feature) and :math:`m` the
    seasonal period (``m=1``: the random-walk naive forecast). ``mean`` is the overall mean,
    which equals the mean of the per-series MASE since all horizons have the same length;
    a value below 1 beats the in-sample naive forecast.

    A constant in-sample series has :math:`q = 0`: with ``validate=True`` this raises
    ``ValueError`` naming the series; with ``validate=False`` its terms are ``inf`` (0 where
    the forecast error is exactly 0; never NaN, with zero gradient there).

    Args:
        pred: forecasts (B, T) or (B, T, F), floating point.
        target: same shape and device as ``pred``.
        insample: (B, T_in) or (B, T_in, F) history of each series, ``T_in > m``; same shape
            as ``pred`` except along ``time_dim`` (per call; the module's ``forward`` takes it
            as a keyword).
        m: seasonal period of the naive forecast, an int >= 1.
        time_dim: the time axis of ``pred``, ``target`` and ``insample`` (never 0).
        sample_weight: (B,) non-negative weights of the series.
        validate: check values (one host sync): refuse zero scales.
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: R. J. Hyndman and A. B. Koehler, "Another look at measures of forecast
    accuracy", International Journal of Forecasting 22(4), 2006.

    >>> import torch
    >>> history = torch.tensor([[1.0, 3.0, 2.0, 4.0]])  # naive scale (2 + 1 + 2) / 3
    >>> mase_loss(torch.tensor([[5.0, 5.0]]), torch.tensor([[4.0, 7.0]]), insample=history)
    tensor(0.9000)
    """
    fn = "mase_loss"
    check_pointwise(
        fn,
        "pred",
        pred,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    m, time_dim = _check_options(fn, m, time_dim)
    dim = resolve_time_dim(fn, time_dim, pred)
    scale = naive_scale(fn, insample, pred, dim, m)
    check_scale(fn, scale, dim, validate)
    loss = scaled_errors(pred, target, scale)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


def scaled_errors(pred: Tensor, target: Tensor, scale: Tensor) -> Tensor:
    """Per element |pred - target| / scale (computed in float32 for half inputs)."""
    err = (upcast(pred) - upcast(target)).abs()
    # Double where: a zero scale (validate=False) gives inf, or 0 for a zero error, with no
    # 0/0 in the forward pass and no inf * 0 in the backward pass.
    zero = scale == 0
    safe = torch.where(zero, torch.ones_like(scale), scale)
    at_zero = torch.where(err == 0, torch.zeros_like(err), torch.full_like(err, float("inf")))
    return torch.where(zero, at_zero, err / safe)


@register
class MASELoss(Loss):
    """Mean absolute scaled error (MASE) against the in-sample seasonal naive forecast.

    ``forward(pred, target, insample=history)``: the history is per call.
    """

    key = "mase"
    family = "timeseries"
    input_kind = "values"
    pointwise = True
    function = staticmethod(mase_loss)

    def __init__(
        self,
        *,
        m: int = 1,
        time_dim: int = 1,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("MASELoss", m, time_dim)
        check_reduction("MASELoss", reduction)
        self._store(m=m, time_dim=time_dim, validate=validate, reduction=reduction)
