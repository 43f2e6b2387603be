"""Mean absolute error (L1) with per-sample weights."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._checks import check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual

__all__ = ["MAELoss", "mae_loss"]


def mae_loss(
    pred: Tensor,
    target: Tensor,
    *,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Absolute error, optionally weighted per sample (``torch.nn.functional.l1_loss``).

    .. math:: \ell_i = |\hat y_i - y_i|

    The gradient at :math:`\hat y_i = y_i` is 0, as in ``torch.nn.functional.l1_loss``.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    >>> import torch
    >>> mae_loss(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0]))
    tensor(1.6667)
    """
    fn = "mae_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    loss = e.abs()
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class MAELoss(Loss):
    """Mean absolute error (L1) with per-sample weights."""

    key = "mae"
    aliases = ("l1_error",)
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(mae_loss)

    def __init__(self, *, validate: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction("MAELoss", reduction)
        self._store(validate=validate, reduction=reduction)
