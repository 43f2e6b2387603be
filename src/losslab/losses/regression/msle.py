"""Mean squared logarithmic error: squared error between log1p(pred) and log1p(target)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_pointwise, check_range, check_reduction
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = ["MSLELoss", "msle_loss"]


def msle_loss(
    pred: Tensor,
    target: Tensor,
    *,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Squared error between the logarithms of ``1 + pred`` and ``1 + target``.

    .. math:: \ell_i = \bigl(\log(1 + \hat y_i) - \log(1 + y_i)\bigr)^2

    The domain is scikit-learn's (1.5 and later): every value of ``pred`` and ``target``
    must be greater than -1, where :math:`\log(1 + x)` is defined. Values at or below -1
    raise ``ValueError`` (with ``validate=True``).

    Args:
        pred: predictions, any shape (N, ...), floating point, values in (-1, inf).
        target: same shape and device as ``pred``, values in (-1, inf).
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: scikit-learn's ``sklearn.metrics.mean_squared_log_error``.

    >>> import torch
    >>> msle_loss(torch.tensor([2.5, 5.0, 4.0, 8.0]), torch.tensor([3.0, 5.0, 2.5, 7.0]))
    tensor(0.0397)
    """
    fn = "msle_loss"
    check_pointwise(
        fn,
        "pred",
        pred,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    check_range(fn, "pred", pred, low=-1.0, low_open=True, validate=validate)
    check_range(fn, "target", target, low=-1.0, low_open=True, validate=validate)
    # log1p keeps full relative precision for small values (log(1 + x) would round 1 + x first).
    diff = torch.log1p(upcast(pred)) - torch.log1p(upcast(target))
    loss = diff * diff
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class MSLELoss(Loss):
    """Mean squared logarithmic error: squared error between log1p(pred) and log1p(target)."""

    key = "msle"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(msle_loss)

    def __init__(self, *, validate: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction("MSLELoss", reduction)
        self._store(validate=validate, reduction=reduction)
