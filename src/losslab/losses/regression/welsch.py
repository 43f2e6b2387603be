"""Welsch (Leclerc) loss: 1 - exp(-z^2 / 2), bounded by 1, Barron's alpha = -inf."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._checks import check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual
from losslab.losses.regression.barron import _check_scale, _welsch_rho

__all__ = ["WelschLoss", "welsch_loss"]


def welsch_loss(
    pred: Tensor,
    target: Tensor,
    *,
    scale: float = 1.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Welsch (Leclerc) loss, Barron's loss in the limit :math:`\alpha \to -\infty`.

    With :math:`z_i = (\hat y_i - y_i) / c`:

    .. math:: \ell_i = 1 - \exp\left(-\tfrac12 z_i^2\right)

    About :math:`z^2/2` near 0 and bounded by 1. The scale :math:`c` enters only through
    :math:`z` (no :math:`c^2` prefactor). Computed as ``-expm1(-z^2/2)`` (exact for small
    :math:`z`), with :math:`|z|` clamped at :math:`10^{15}` where the value is 1 and the slope 0.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        scale: :math:`c` > 0.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: J. E. Dennis, R. E. Welsch, "Techniques for nonlinear least squares and robust
    regression", Commun. Stat. Simul. Comput. 1978; J. T. Barron, "A General and Adaptive
    Robust Loss Function", CVPR 2019 (alpha = -inf).

    >>> import torch
    >>> welsch_loss(torch.tensor([0.0, 2.0, -6.0]), torch.zeros(3))
    tensor(0.6216)
    """
    fn = "welsch_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    scale = _check_scale(fn, scale)
    z = e / scale
    loss = _welsch_rho(z)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class WelschLoss(Loss):
    """Welsch (Leclerc) loss: 1 - exp(-z^2 / 2), bounded by 1, Barron's alpha = -inf."""

    key = "welsch"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(welsch_loss)

    def __init__(
        self, *, scale: float = 1.0, validate: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        scale = _check_scale("WelschLoss", scale)
        check_reduction("WelschLoss", reduction)
        self._store(scale=scale, validate=validate, reduction=reduction)
