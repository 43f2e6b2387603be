"""Mean squared error with a scalar weight and per-sample weights."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._checks import check_float, check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual

__all__ = ["MSELoss", "mse_loss"]


def _check_options(fn: str, weight: float) -> float:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return check_float(fn, "weight", weight, low=0.0)


def mse_loss(
    pred: Tensor,
    target: Tensor,
    *,
    weight: float = 1.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Squared error, optionally scaled and weighted per sample.

    .. math:: \ell_i = w \, (\hat y_i - y_i)^2

    ``mean`` divides by the weighted count :math:`\sum_n s_n \cdot (\text{elements per sample})`
    when ``sample_weight`` :math:`s` is given.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        weight: non-negative scalar multiplying every term.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    >>> import torch
    >>> mse_loss(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0]))
    tensor(4.3333)
    """
    fn = "mse_loss"
    diff = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    weight = _check_options(fn, weight)
    loss = diff * diff
    if weight != 1.0:
        loss = loss * weight
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class MSELoss(Loss):
    """Mean squared error with a scalar weight and per-sample weights."""

    key = "mse"
    aliases = ("l2_error",)
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(mse_loss)

    def __init__(
        self, *, weight: float = 1.0, validate: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        _check_options("MSELoss", weight)
        check_reduction("MSELoss", reduction)
        self._store(weight=weight, validate=validate, reduction=reduction)
