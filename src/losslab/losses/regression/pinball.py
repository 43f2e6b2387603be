"""Multi-quantile pinball (quantile) loss: one prediction per quantile in the last dimension."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor

from losslab._checks import (
    check_floating,
    check_range,
    check_reduction,
    check_same_device,
    check_sample_weight,
    check_tensor,
    fail,
    fmt,
)
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = ["PinballLoss", "pinball_loss"]

Quantiles = Union[Sequence[float], Tensor]


def _check_options(
    fn: str, quantiles: Any, *, device: Optional[torch.device] = None, validate: bool = True
) -> Tensor:
    """``quantiles`` as a 1-D float tensor with values in (0, 1).

    A sequence becomes a float64 tensor: 0.1 keeps its float64 value for float64 inputs and
    rounds exactly as a float32 literal would for float32 inputs.
    """
    if isinstance(quantiles, Tensor):
        if not quantiles.is_floating_point():
            fail(
                fn,
                "quantiles",
                "be a floating-point tensor",
                f"dtype {fmt(quantiles.dtype)}",
                kind=TypeError,
                raw_got=True,
            )
        if quantiles.dim() != 1 or quantiles.numel() == 0:
            fail(
                fn,
                "quantiles",
                "be a non-empty 1-D tensor (Q,)",
                tuple(quantiles.shape),
                raw_got=True,
            )
        check_range(
            fn,
            "quantiles",
            quantiles,
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
            validate=validate,
        )
        return quantiles
    if isinstance(quantiles, (str, bytes)) or not isinstance(quantiles, Sequence):
        fail(
            fn,
            "quantiles",
            "be a sequence of floats or a 1-D tensor",
            type(quantiles).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if len(quantiles) == 0:
        fail(fn, "quantiles", "be non-empty", quantiles)
    values = []
    for q in quantiles:
        if isinstance(q, bool) or not isinstance(q, (int, float)):
            fail(fn, "quantiles", "hold real numbers", quantiles, kind=TypeError)
        if math.isnan(q) or not 0.0 < q < 1.0:
            fail(fn, "quantiles", "hold values in (0, 1)", quantiles)
        values.append(float(q))
    return torch.tensor(values, dtype=torch.float64, device=device)


def pinball_loss(
    pred: Tensor,
    target: Tensor,
    *,
    quantiles: Quantiles = (0.5,),
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Pinball (quantile) loss of Q quantile predictions per target value.

    With :math:`e_{iq} = y_i - \hat y_{iq}` and :math:`\tau_q` the q-th quantile:

    .. math:: \ell_{iq} = \max\bigl(\tau_q \, e_{iq},\; (\tau_q - 1)\, e_{iq}\bigr)

    ``mean`` divides by the number of elements of ``pred`` (N * ... * Q), weighted by
    ``sample_weight`` when given. The target is not broadcast: a target with a trailing
    dimension of 1 is refused, pass ``target.squeeze(-1)``.

    Args:
        pred: quantile predictions, shape (..., Q) with Q = ``len(quantiles)``, floating point.
        target: shape ``pred.shape[:-1]``, same device.
        quantiles: non-empty sequence of floats in (0, 1), or a 1-D float tensor (Q,).
        sample_weight: (N,) non-negative weights along dim 0 (needs ``pred`` of at least 2 dims).
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: R. Koenker and G. Bassett, "Regression Quantiles", Econometrica 46(1), 1978.

    >>> import torch
    >>> pred = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.5, 4.0]])
    >>> pinball_loss(pred, torch.tensor([1.0, 3.0]), quantiles=(0.1, 0.5, 0.9))
    tensor(0.2083)
    """
    fn = "pinball_loss"
    check_floating(fn, "pred", pred)
    check_floating(fn, "target", target)
    check_reduction(fn, reduction)
    tau = _check_options(fn, quantiles, device=pred.device, validate=validate)
    check_same_device(fn, "quantiles", tau, "pred", pred)
    q = tau.shape[0]
    if pred.dim() == 0 or pred.shape[-1] != q:
        fail(
            fn,
            "pred",
            f"have shape (..., Q) with Q = len(quantiles) = {q} in the last dimension",
            tuple(pred.shape),
            raw_got=True,
        )
    if target.shape != pred.shape[:-1]:
        hint = None
        if target.shape == pred.shape:
            hint = (
                "losslab never broadcasts: pass `target.squeeze(-1)`."
                if q == 1
                else "One target value serves all Q quantile predictions of a row."
            )
        fail(
            fn,
            "target",
            f"have shape `pred`.shape[:-1] = {tuple(pred.shape[:-1])} (one value per row of Q quantile predictions)",
            tuple(target.shape),
            raw_got=True,
            hint=hint,
        )
    check_same_device(fn, "target", target, "pred", pred)
    if sample_weight is not None:
        if pred.dim() < 2:
            check_tensor(fn, "sample_weight", sample_weight)
            fail(
                fn,
                "sample_weight",
                "be None for a 1-D `pred` (Q,) (a single sample)",
                sample_weight,
            )
        check_sample_weight(fn, sample_weight, pred.shape[0], pred, validate=validate)
    err = upcast(target).unsqueeze(-1) - upcast(pred)
    tau = tau.to(err.dtype)
    # One branch per sign of the error: the subgradient at e = 0 is tau (torch.maximum would split it).
    loss = torch.where(err >= 0, tau * err, (tau - 1.0) * err)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class PinballLoss(Loss):
    """Multi-quantile pinball (quantile) loss: one prediction per quantile in the last dimension."""

    key = "pinball"
    aliases = ("quantile",)
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(pinball_loss)

    quantiles: Tensor

    def __init__(
        self,
        *,
        quantiles: Quantiles = (0.5,),
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        tau = _check_options("PinballLoss", quantiles)
        check_reduction("PinballLoss", reduction)
        # A buffer: it follows .to() and state_dict; a tensor argument is copied, never aliased.
        self._store(quantiles=tau.detach().clone(), validate=validate, reduction=reduction)
