"""Charbonnier loss: a smooth L1, sqrt(e^2 + eps^2) - eps."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_float, check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual

__all__ = ["CharbonnierLoss", "charbonnier_loss"]


def _check_options(fn: str, eps: float) -> float:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return check_float(fn, "eps", eps, low=0.0, low_open=True)


def charbonnier_loss(
    pred: Tensor,
    target: Tensor,
    *,
    eps: float = 1e-3,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Charbonnier (pseudo-Huber) loss, shifted to be 0 at a perfect prediction.

    With :math:`e_i = \hat y_i - y_i`:

    .. math:: \ell_i = \sqrt{e_i^2 + \varepsilon^2} - \varepsilon

    It equals ``eps * barron_loss(alpha=1, scale=eps)``: about :math:`e^2 / (2\varepsilon)`
    near 0 and :math:`|e| - \varepsilon` far from it. Computed as
    :math:`e \cdot \bigl(e / (\operatorname{hypot}(e, \varepsilon) + \varepsilon)\bigr)`: no cancellation
    for :math:`|e| \ll \varepsilon` and no overflow of :math:`e^2` for :math:`|e|` up to the
    dtype's maximum.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        eps: smoothing width, > 0. Here it is a shape parameter of the loss, not a clamp floor.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: P. Charbonnier, L. Blanc-Feraud, G. Aubert, M. Barlaud, "Two deterministic
    half-quadratic regularization algorithms for computed imaging", ICIP 1994.

    >>> import torch
    >>> charbonnier_loss(torch.tensor([0.0, 3.0, -4.0]), torch.zeros(3), eps=1.0)
    tensor(1.7618)
    """
    fn = "charbonnier_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    eps = _check_options(fn, eps)
    # sqrt(e^2 + eps^2) - eps == e^2 / (hypot(e, eps) + eps); e / (hypot + eps) is in [0, 1),
    # so the product never overflows and nothing cancels.
    loss = e * (e / (torch.hypot(e, e.new_tensor(eps)) + eps))
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class CharbonnierLoss(Loss):
    """Charbonnier loss: a smooth L1, sqrt(e^2 + eps^2) - eps."""

    key = "charbonnier"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(charbonnier_loss)

    def __init__(
        self, *, eps: float = 1e-3, validate: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        eps = _check_options("CharbonnierLoss", eps)
        check_reduction("CharbonnierLoss", reduction)
        self._store(eps=eps, validate=validate, reduction=reduction)
