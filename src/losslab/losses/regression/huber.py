"""Huber loss: quadratic below `delta`, linear above (torch.nn.functional.huber_loss)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_float, check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual

__all__ = ["HuberLoss", "huber_loss"]


def _check_options(fn: str, delta: float) -> float:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return check_float(fn, "delta", delta, low=0.0, low_open=True)


def huber_loss(
    pred: Tensor,
    target: Tensor,
    *,
    delta: float = 1.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Huber loss, with the semantics of ``torch.nn.functional.huber_loss``.

    With :math:`e_i = \hat y_i - y_i`:

    .. math::

        \ell_i = \begin{cases}
            \tfrac12 e_i^2 & |e_i| < \delta \\
            \delta \, (|e_i| - \tfrac12 \delta) & \text{otherwise}
        \end{cases}

    ``huber_loss(delta=b) == b * smooth_l1_loss(beta=b)``.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        delta: threshold between the quadratic and the linear part, > 0.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: P. J. Huber, "Robust Estimation of a Location Parameter", Ann. Math. Statist. 1964.

    >>> import torch
    >>> huber_loss(torch.tensor([0.5, 3.0, -2.0]), torch.zeros(3), delta=1.0)
    tensor(1.3750)
    """
    fn = "huber_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    delta = _check_options(fn, delta)
    a = e.abs()
    # The quadratic branch sees e clamped to [-delta, delta]: no overflow of e^2 at |e| = 1e30,
    # and its (unselected) gradient stays finite.
    q = e.clamp(-delta, delta)
    loss = torch.where(a < delta, 0.5 * q * q, delta * (a - 0.5 * delta))
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class HuberLoss(Loss):
    """Huber loss: quadratic below `delta`, linear above (torch.nn.functional.huber_loss)."""

    key = "huber"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(huber_loss)

    def __init__(
        self, *, delta: float = 1.0, validate: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        delta = _check_options("HuberLoss", delta)
        check_reduction("HuberLoss", reduction)
        self._store(delta=delta, validate=validate, reduction=reduction)
