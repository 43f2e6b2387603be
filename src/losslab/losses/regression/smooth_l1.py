"""Smooth L1 loss: quadratic below `beta`, L1 above (torch.nn.functional.smooth_l1_loss)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_float, check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual

__all__ = ["SmoothL1Loss", "smooth_l1_loss"]


def _check_options(fn: str, beta: float) -> float:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return check_float(fn, "beta", beta, low=0.0)


def smooth_l1_loss(
    pred: Tensor,
    target: Tensor,
    *,
    beta: float = 1.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Smooth L1 loss, with the semantics of ``torch.nn.functional.smooth_l1_loss``.

    With :math:`e_i = \hat y_i - y_i`:

    .. math::

        \ell_i = \begin{cases}
            \tfrac12 e_i^2 / \beta & |e_i| < \beta \\
            |e_i| - \tfrac12 \beta & \text{otherwise}
        \end{cases}

    ``beta = 0`` is the L1 loss; ``beta * smooth_l1_loss(beta=beta) == huber_loss(delta=beta)``.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        beta: threshold between the quadratic and the linear part, >= 0.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: R. Girshick, "Fast R-CNN", ICCV 2015.

    >>> import torch
    >>> smooth_l1_loss(torch.tensor([0.5, 3.0, -2.0]), torch.zeros(3), beta=2.0)
    tensor(1.0208)
    """
    fn = "smooth_l1_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    beta = _check_options(fn, beta)
    a = e.abs()
    if beta == 0.0:
        loss = a
    else:
        # e clamped to [-beta, beta] in the quadratic branch: no overflow of e^2 for huge |e|.
        q = e.clamp(-beta, beta)
        loss = torch.where(a < beta, 0.5 * q * q / beta, a - 0.5 * beta)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class SmoothL1Loss(Loss):
    """Smooth L1 loss: quadratic below `beta`, L1 above (torch.nn.functional.smooth_l1_loss)."""

    key = "smooth_l1"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(smooth_l1_loss)

    def __init__(
        self, *, beta: float = 1.0, validate: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        beta = _check_options("SmoothL1Loss", beta)
        check_reduction("SmoothL1Loss", reduction)
        self._store(beta=beta, validate=validate, reduction=reduction)
