"""Wing loss for landmark regression: logarithmic for small errors, L1 for large ones."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_float, check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual

__all__ = ["WingLoss", "wing_loss"]


def _check_options(fn: str, width: float, curvature: float) -> tuple[float, float]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return (
        check_float(fn, "width", width, low=0.0, low_open=True),
        check_float(fn, "curvature", curvature, low=0.0, low_open=True),
    )


def wing_loss(
    pred: Tensor,
    target: Tensor,
    *,
    width: float = 10.0,
    curvature: float = 2.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Wing loss (Feng et al., 2018).

    With :math:`e_i = \hat y_i - y_i`, width :math:`w` and curvature :math:`\epsilon`:

    .. math::

        \ell_i = \begin{cases}
            w \ln(1 + |e_i| / \epsilon) & |e_i| < w \\
            |e_i| - C & \text{otherwise}
        \end{cases}
        \qquad C = w - w \ln(1 + w / \epsilon)

    :math:`C` makes the two pieces meet at :math:`|e| = w`. The gradient has a jump at
    :math:`e = 0` (slope :math:`\pm w/\epsilon`), as in the paper.

    Args:
        pred: predictions, any shape (N, ...), floating point (landmark coordinates).
        target: same shape and device as ``pred``.
        width: :math:`w` > 0, the half-width of the logarithmic part (paper: 10).
        curvature: :math:`\epsilon` > 0, the curvature of the logarithmic part (paper: 2).
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: Z.-H. Feng, J. Kittler, M. Awais, P. Huber, X.-J. Wu, "Wing Loss for Robust
    Facial Landmark Localisation with Convolutional Neural Networks", CVPR 2018.

    >>> import torch
    >>> wing_loss(torch.tensor([0.0, 2.0, 20.0]), torch.zeros(3))
    tensor(11.6164)
    """
    fn = "wing_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    width, curvature = _check_options(fn, width, curvature)
    c = width - width * math.log1p(width / curvature)
    a = e.abs()
    # |e| clamped to the width in the logarithmic branch: the unselected branch stays bounded.
    log_part = width * torch.log1p(a.clamp(max=width) / curvature)
    loss = torch.where(a < width, log_part, a - c)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class WingLoss(Loss):
    """Wing loss for landmark regression: logarithmic for small errors, L1 for large ones."""

    key = "wing"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(wing_loss)

    def __init__(
        self,
        *,
        width: float = 10.0,
        curvature: float = 2.0,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        width, curvature = _check_options("WingLoss", width, curvature)
        check_reduction("WingLoss", reduction)
        self._store(width=width, curvature=curvature, validate=validate, reduction=reduction)
