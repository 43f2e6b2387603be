"""Soft Dice loss (plain or squared denominator), per image or over the batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from torch import Tensor

from losslab._checks import check_choice
from losslab._registry import register
from losslab.losses.segmentation._family import (
    PER_CALL,
    ClassWeight,
    OverlapLoss,
    check_options,
    common,
    overlap_loss,
)
from losslab.losses.segmentation._overlap import Stats, ratio

__all__ = ["DiceLoss", "dice_loss", "dice_score"]


def dice_score(stats: Stats, *, smooth: float, eps: float, squared: bool = False) -> Tensor:
    """Soft Dice per (unit, class): (2 TP + s) / (sum p + sum t + s), or with p^2 and t^2."""
    if squared:
        assert stats.p2sum is not None and stats.t2sum is not None
        denominator = stats.p2sum + stats.t2sum
    else:
        denominator = stats.psum + stats.tsum
    return ratio(2.0 * stats.tp, denominator, smooth=smooth, eps=eps)


def dice_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    activation: Optional[str] = "auto",
    class_weight: ClassWeight = None,
    ignore_index: Optional[int] = None,
    classes: Optional[Sequence[int]] = None,
    include_background: bool = True,
    aggregate: str = "image",
    smooth: float = 1.0,
    eps: float = 1e-6,
    empty: str = "ratio",
    sync: str = "local",
    squared: bool = False,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Soft Dice loss: one minus the smoothed soft Dice coefficient, averaged over classes.

    Per class :math:`c` and unit (an image, or the whole batch):

    .. math::

        D_c = \frac{2 \sum_i p_{ic} t_{ic} + s}{\sum_i p_{ic} + \sum_i t_{ic} + s},
        \qquad \ell = \frac{\sum_c w_c (1 - D_c)}{\sum_c w_c}

    over the valid (non-ignored) positions; ``squared=True`` uses
    :math:`\sum p^2 + \sum t^2` in the denominator (Milletari et al., V-Net, 2016). For the
    usual multiclass recipe (softmax, one-hot, per-class ratio, mean over classes) this is
    exactly that formula, computed with a gather and a scatter instead of a one-hot tensor.

    Args:
        logits: (B, C, *spatial) with 1-3 spatial dims; an activation is applied inside.
        target: class ids (B, *spatial) or a dense mask of ``logits``' shape (see ``mode``).
        mode: ``"binary"`` (C = 1), ``"multiclass"`` (softmax) or ``"multilabel"``.
        activation: ``"auto"`` (sigmoid, or softmax for multiclass), ``"sigmoid"``,
            ``"softmax"`` or ``None`` (``logits`` already are probabilities in [0, 1]).
        class_weight: (C,) weights of the classes in the average.
        ignore_index: target value of positions that do not count (255 works).
        classes: the class channels to average over (default all).
        include_background: ``False`` leaves channel 0 out (not in binary mode).
        aggregate: ``"image"`` (a Dice per image, then averaged: independent of how the
            batch is split) or ``"batch"`` (one Dice over all pixels of the batch: depends on
            the batch composition, by design).
        smooth: added to numerator and denominator (>= 0).
        eps: floor of the denominator.
        empty: what a class with no target contributes: ``"ratio"`` | ``"skip"`` |
            ``"zero"`` (see :mod:`losslab.losses.segmentation._overlap`).
        sync: ``"local"`` (default) or ``"global"``: under ``torch.distributed``, sum the
            ``aggregate="batch"`` statistics over every process before the ratio, and take the
            mean over images (``"image"``) over every process's images, so each rank returns
            the loss of the global batch (:mod:`losslab.distributed`; ``reduction="none"``
            stays local).
        squared: squared terms in the denominator.
        sample_weight: (B,) image weights (weighted mean over images; for "batch" they
            weight each image's statistics).
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"`` over images; ``none`` gives (B,) for
            ``aggregate="image"`` and a 0-d tensor for ``"batch"``.

    Reference: Milletari et al., "V-Net", 3DV 2016; Sudre et al., DLMIA 2017.

    >>> import torch
    >>> logits = torch.tensor([[[[3.0, -3.0], [2.0, -1.0]]]])
    >>> target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    >>> dice_loss(logits, target)
    tensor(0.1537)
    """
    fn = "dice_loss"
    check_choice(fn, "squared", squared, (False, True))
    return overlap_loss(
        fn,
        logits,
        target,
        lambda st: 1.0 - dice_score(st, smooth=float(smooth), eps=float(eps), squared=squared),
        squared=squared,
        **common(locals(), *PER_CALL),
    )


@register
class DiceLoss(OverlapLoss):
    """Soft Dice loss (plain or squared denominator), per image or over the batch."""

    key = "dice"
    function = staticmethod(dice_loss)

    def __init__(
        self,
        *,
        mode: str = "binary",
        activation: Optional[str] = "auto",
        class_weight: ClassWeight = None,
        ignore_index: Optional[int] = None,
        classes: Optional[Sequence[int]] = None,
        include_background: bool = True,
        aggregate: str = "image",
        smooth: float = 1.0,
        eps: float = 1e-6,
        empty: str = "ratio",
        sync: str = "local",
        squared: bool = False,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        opts = check_options("DiceLoss", **common(locals(), "reduction"))
        check_choice("DiceLoss", "squared", squared, (False, True))
        self._store(**opts, squared=squared, validate=validate, reduction=reduction)
