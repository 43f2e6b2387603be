"""Cauchy (Lorentzian) loss: log(1 + (e/c)^2 / 2), Barron's alpha = 0."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._checks import check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual
from losslab.losses.regression.barron import _check_scale, _log1p_sq

__all__ = ["CauchyLoss", "cauchy_loss"]


def cauchy_loss(
    pred: Tensor,
    target: Tensor,
    *,
    scale: float = 1.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Cauchy (Lorentzian) loss, Barron's loss at :math:`\alpha = 0`.

    With :math:`z_i = (\hat y_i - y_i) / c`:

    .. math:: \ell_i = \log\left(\tfrac12 z_i^2 + 1\right)

    The scale :math:`c` enters only through :math:`z` (no :math:`c^2` prefactor). Computed with
    ``log1p``; for :math:`|z| > 10^{15}` as :math:`\operatorname{softplus}(2\log|z| - \log 2)`,
    so :math:`z^2` never overflows.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        scale: :math:`c` > 0.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: J. T. Barron, "A General and Adaptive Robust Loss Function", CVPR 2019 (alpha = 0);
    M. J. Black, P. Anandan, "The robust estimation of multiple motions", CVIU 1996.

    >>> import torch
    >>> cauchy_loss(torch.tensor([0.0, 2.0, -6.0]), torch.zeros(3))
    tensor(1.3477)
    """
    fn = "cauchy_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    scale = _check_scale(fn, scale)
    z = e / scale
    loss = _log1p_sq(z, 2.0)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class CauchyLoss(Loss):
    """Cauchy (Lorentzian) loss: log(1 + (e/c)^2 / 2), Barron's alpha = 0."""

    key = "cauchy"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(cauchy_loss)

    def __init__(
        self, *, scale: float = 1.0, validate: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        scale = _check_scale("CauchyLoss", scale)
        check_reduction("CauchyLoss", reduction)
        self._store(scale=scale, validate=validate, reduction=reduction)
