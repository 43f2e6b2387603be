"""Multiclass (softmax) focal loss over class ids, finite at saturated logits."""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from losslab._autograd.softmax_focal import softmax_focal_elementwise
from losslab._checks import (
    check_float,
    check_ignore_index,
    check_reduction,
)
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.classification._common import check_class_target
from losslab.losses.classification.focal import PerClass, check_alpha

__all__ = ["SoftmaxFocalLoss", "softmax_focal_loss"]


def _check_options(
    fn: str, alpha: object, gamma: float, *, logits: Optional[Tensor] = None, validate: bool = True
) -> tuple[Union[float, Tensor, None], float]:
    """Hyperparameter checks, shared by the function and the module's constructor.

    Returns ``(alpha, gamma)``: alpha as None, a number > 0 or a (1, C, 1, ...) per-class view.
    """
    return (
        check_alpha(fn, alpha, logits, high=None, positive=True, validate=validate),
        check_float(fn, "gamma", gamma, low=0.0),
    )


def softmax_focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: Union[float, PerClass, None] = None,
    gamma: float = 2.0,
    ignore_index: Optional[int] = None,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Multiclass focal loss over the softmax of the logits.

    .. math::

        p = \mathrm{softmax}(x)_{\,\cdot\,\text{along dim 1}}, \qquad
        \ell_i = -\alpha_{y_i}\,(1 - p_{i, y_i})^\gamma \log p_{i, y_i}

    :math:`1 - p_y` is computed as the sum of the other classes' exponentials over the sum
    of all (never as ``1 - p_y``), and the backward pass is analytic
    (``losslab._autograd.softmax_focal``: it recomputes the softmax from the logits), so the
    loss and its gradient stay finite at saturated logits even for :math:`\gamma < 1`, where
    autograd of the formula gives NaN. Double backward is not supported. With ``gamma=0`` and
    ``alpha=None`` this is ``torch.nn.functional.cross_entropy``.

    ``mean`` divides by the number of valid (non-ignored) positions, weighted by
    ``sample_weight``; ``alpha`` does **not** enter the denominator, unlike the ``weight`` of
    ``cross_entropy`` (which divides by the sum of the class weights of the targets).

    Args:
        logits: (N, C, ...) floating point, C >= 2, classes along dim 1.
        target: (N, ...) integer class ids in [0, C), or ``ignore_index``.
        alpha: ``None``, a number > 0 (a uniform factor) or a per-class (C,) tensor or
            sequence of non-negative factors.
        gamma: focusing exponent, >= 0.
        ignore_index: a label (any int, 255 works) whose positions are excluded; they are
            masked before any gather.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check the class ids (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``target``'s shape.

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (the softmax
    variant is mentioned there; this follows its formula term for term).

    >>> import torch
    >>> softmax_focal_loss(torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 2]))
    tensor(0.4838)
    """
    fn = "softmax_focal_loss"
    ignore_index = check_ignore_index(fn, ignore_index)
    check_class_target(
        fn,
        logits,
        target,
        ignore_index=ignore_index,
        sample_weight=sample_weight,
        validate=validate,
        reduction=reduction,
    )
    x = upcast(logits)
    alpha_arg, gamma = _check_options(fn, alpha, gamma, logits=x, validate=validate)
    mask = None
    ids = target.long()  # gather and indexing need int64 (uint8 would index as a mask)
    if ignore_index is not None:
        mask = target != ignore_index
        ids = torch.where(mask, ids, torch.zeros_like(ids))  # 255 must never reach a gather
    loss = softmax_focal_elementwise(x, ids, gamma)  # analytic backward
    if isinstance(alpha_arg, Tensor):
        loss = loss * alpha_arg.reshape(-1)[ids]
    elif alpha_arg is not None:
        loss = loss * alpha_arg
    return reduce(
        loss, reduction, sample_weight=sample_weight, mask=mask, out_dtype=output_dtype(logits)
    )


@register
class SoftmaxFocalLoss(Loss):
    """Multiclass (softmax) focal loss over class ids, with ignore_index."""

    key = "softmax_focal"
    family = "classification"
    input_kind = "logits"
    pointwise = True
    function = staticmethod(softmax_focal_loss)

    def __init__(
        self,
        *,
        alpha: Union[float, PerClass, None] = None,
        gamma: float = 2.0,
        ignore_index: Optional[int] = None,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = "SoftmaxFocalLoss"
        _check_options(fn, alpha, gamma, validate=validate)
        check_ignore_index(fn, ignore_index)
        check_reduction(fn, reduction)
        self._store(
            alpha=alpha,
            gamma=gamma,
            ignore_index=ignore_index,
            validate=validate,
            reduction=reduction,
        )
