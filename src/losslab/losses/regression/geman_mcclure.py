"""Geman-McClure loss: 2 z^2 / (z^2 + 4), bounded by 2, Barron's alpha = -2."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._checks import check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual
from losslab.losses.regression.barron import _check_scale

__all__ = ["GemanMcClureLoss", "geman_mcclure_loss"]

# |z| beyond which the loss is 2 to every float64 digit; clamping there keeps z^2 finite.
_BIG = 1e15


def geman_mcclure_loss(
    pred: Tensor,
    target: Tensor,
    *,
    scale: float = 1.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Geman-McClure loss in Barron's parametrisation (:math:`\alpha = -2`).

    With :math:`z_i = (\hat y_i - y_i) / c`:

    .. math:: \ell_i = \frac{2 z_i^2}{z_i^2 + 4}

    About :math:`z^2/2` near 0 and bounded by 2. The scale :math:`c` enters only through
    :math:`z` (no :math:`c^2` prefactor). :math:`|z|` is clamped at :math:`10^{15}`, where the
    value is already 2 and the slope 0, so :math:`z^2` never overflows.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        scale: :math:`c` > 0.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: S. Geman, D. E. McClure, "Bayesian image analysis: an application to single
    photon emission tomography", Proc. Am. Stat. Assoc. 1985; J. T. Barron, "A General and
    Adaptive Robust Loss Function", CVPR 2019 (alpha = -2).

    >>> import torch
    >>> geman_mcclure_loss(torch.tensor([0.0, 2.0, -6.0]), torch.zeros(3))
    tensor(0.9333)
    """
    fn = "geman_mcclure_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    scale = _check_scale(fn, scale)
    z = (e / scale).clamp(-_BIG, _BIG)
    z2 = z * z
    loss = 2.0 * z2 / (z2 + 4.0)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class GemanMcClureLoss(Loss):
    """Geman-McClure loss: 2 z^2 / (z^2 + 4), bounded by 2, Barron's alpha = -2."""

    key = "geman_mcclure"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(geman_mcclure_loss)

    def __init__(
        self, *, scale: float = 1.0, validate: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        scale = _check_scale("GemanMcClureLoss", scale)
        check_reduction("GemanMcClureLoss", reduction)
        self._store(scale=scale, validate=validate, reduction=reduction)
