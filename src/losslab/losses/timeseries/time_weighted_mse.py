"""Time-weighted mean squared error: each time step weighted by a decay or linear schedule."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._registry import register
from losslab.losses.timeseries._time_weights import (
    Schedule,
    TimeWeightedLoss,
    time_weighted_error,
)

__all__ = ["TimeWeightedMSELoss", "time_weighted_mse_loss"]


def _squared(diff: Tensor) -> Tensor:
    return diff * diff


def time_weighted_mse_loss(
    pred: Tensor,
    target: Tensor,
    *,
    time_dim: int = 1,
    schedule: Schedule = "exponential",
    decay: float = 0.9,
    reverse: bool = False,
    normalize: bool = True,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Squared error with one weight per time step (a forecast horizon or a history).

    .. math:: \ell_{b,t,f} = w_t \, (\hat y_{b,t,f} - y_{b,t,f})^2, \qquad
              t = 0, \dots, T-1 \text{ along } \texttt{time\_dim}

    Schedules (``t = 0`` is the first step): ``"exponential"``
    :math:`w_t = \text{decay}^t`, ``"linear"`` :math:`w_t = T - t` (both make the first step
    the heaviest, as for a forecast horizon), or explicit weights. ``reverse=True`` flips the
    schedule so that the last step is the heaviest (recent history). With ``normalize=True``
    the weights are scaled to mean 1 over ``T`` (:math:`w \leftarrow T w / \sum_s w_s`), so
    ``mean`` is a time-weighted average on the scale of the plain MSE; with ``decay=1`` or a
    schedule of ones the loss equals :func:`torch.nn.functional.mse_loss` exactly.
    With ``normalize=False`` the weights are used as given (keep ``decay**(T-1)`` finite).

    ``mean`` divides the weighted sum by the number of elements (by
    :math:`\sum_b s_b \cdot` elements per series with ``sample_weight`` :math:`s`).

    Args:
        pred: forecasts (B, T) or (B, T, F), floating point.
        target: same shape and device as ``pred``.
        time_dim: the time axis (negative counts from the end; never 0, the batch).
        schedule: ``"exponential" | "linear"``, or a 1-D tensor (or sequence) of ``T``
            non-negative finite weights, not all zero, on ``pred``'s device.
        decay: base of the exponential schedule, > 0 (< 1 decays, > 1 grows).
        reverse: flip the schedule (the last step heaviest).
        normalize: scale the weights to mean 1 over ``T``.
        sample_weight: (B,) non-negative weights of the series.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: discounted least squares, R. G. Brown, "Smoothing, Forecasting and Prediction
    of Discrete Time Series", Prentice-Hall, 1963 (exponential weights on the history).

    >>> import torch
    >>> pred, target = torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.zeros(1, 4)
    >>> time_weighted_mse_loss(pred, target, decay=0.5)
    tensor(3.8667)
    >>> time_weighted_mse_loss(pred, target, schedule="linear", normalize=False, reduction="none")
    tensor([[ 4., 12., 18., 16.]])
    """
    return time_weighted_error(
        "time_weighted_mse_loss",
        pred,
        target,
        _squared,
        time_dim=time_dim,
        schedule=schedule,
        decay=decay,
        reverse=reverse,
        normalize=normalize,
        sample_weight=sample_weight,
        validate=validate,
        reduction=reduction,
    )


@register
class TimeWeightedMSELoss(TimeWeightedLoss):
    """Time-weighted MSE: exponential, linear or given weights per time step."""

    key = "time_weighted_mse"
    function = staticmethod(time_weighted_mse_loss)
