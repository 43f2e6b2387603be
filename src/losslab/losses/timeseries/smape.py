"""Symmetric mean absolute percentage error (sMAPE) as a fraction in [0, 2]."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_pointwise, check_reduction
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = ["SMAPELoss", "smape_loss"]


def smape_loss(
    pred: Tensor,
    target: Tensor,
    *,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Symmetric absolute percentage error per element, a fraction in [0, 2] (not percent).

    .. math:: \ell_i = \frac{2\,|y_i - \hat y_i|}{|y_i| + |\hat y_i|}, \qquad
              \ell_i = 0 \text{ when } y_i = \hat y_i = 0

    Multiply by 100 for the percentage of the M4 competition. The 0/0 case (both zero) is
    defined as 0 with a zero gradient: neither the forward nor the backward pass forms 0/0.

    The measure is not symmetric in the sense its name suggests: for the same absolute error
    an over-forecast is penalized less than an under-forecast (:math:`y = 100`:
    :math:`\hat y = 110` gives 0.095, :math:`\hat y = 90` gives 0.105), and any forecast of
    the opposite sign, or a zero forecast of a non-zero value, scores the maximum 2.

    Args:
        pred: forecasts, any shape (B, ...) such as (B, T) or (B, T, F), floating point.
        target: same shape and device as ``pred``.
        sample_weight: (B,) non-negative weights of the series along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: S. Makridakis, "Accuracy measures: theoretical and practical concerns",
    International Journal of Forecasting 9(4), 1993; the M4 competition's definition
    (Makridakis, Spiliotis and Assimakopoulos, International Journal of Forecasting 36(1), 2020).

    >>> import torch
    >>> smape_loss(torch.tensor([[110.0, 90.0, 0.0]]), torch.tensor([[100.0, 100.0, 0.0]]),
    ...            reduction="none")
    tensor([[0.0952, 0.1053, 0.0000]])
    """
    fn = "smape_loss"
    check_pointwise(
        fn,
        "pred",
        pred,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    p, y = upcast(pred), upcast(target)
    den = y.abs() + p.abs()
    # Double where: 0/0 (both zero) is never formed, so its gradient is 0, not NaN.
    # |y - p| / (|y| + |p|) <= 1, so the ratio is taken before the factor 2 (no overflow).
    zero = den == 0
    safe = torch.where(zero, torch.ones_like(den), den)
    loss = torch.where(zero, torch.zeros_like(den), 2.0 * ((y - p).abs() / safe))
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class SMAPELoss(Loss):
    """Symmetric mean absolute percentage error (sMAPE), a fraction in [0, 2]."""

    key = "smape"
    family = "timeseries"
    input_kind = "values"
    pointwise = True
    function = staticmethod(smape_loss)

    def __init__(self, *, validate: bool = True, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction("SMAPELoss", reduction)
        self._store(validate=validate, reduction=reduction)
