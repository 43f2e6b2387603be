"""Soft Jaccard (IoU) loss, per image or over the batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from torch import Tensor

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

__all__ = ["JaccardLoss", "jaccard_loss"]


def jaccard_loss(
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
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Soft Jaccard (IoU) loss, per image or over the batch.

    .. math::

        J_c = \frac{TP_c + s}{TP_c + FP_c + FN_c + s}, \qquad
        \ell = \frac{\sum_c w_c (1 - J_c)}{\sum_c w_c}

    with soft :math:`TP = \sum p t`, :math:`FP = \sum p (1 - t)`, :math:`FN = \sum (1 - p) t`
    over the valid positions (so :math:`TP + FP + FN = \sum p + \sum t - TP`).

    Args:
        logits: (B, C, *spatial) with 1-3 spatial dims; an activation is applied inside.
        target: class ids (B, *spatial) or a dense mask of ``logits``' shape (see ``mode``).
        mode, activation, class_weight, ignore_index, classes, include_background,
            aggregate, smooth, eps, empty, sync: as in
            :func:`~losslab.losses.segmentation.dice.dice_loss`.
        sample_weight: (B,) image weights.
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"`` over images; ``none`` gives (B,) for
            ``aggregate="image"`` and a 0-d tensor for ``"batch"``.

    Reference: Rahman & Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
    Segmentation", ISVC 2016.

    >>> import torch
    >>> logits = torch.tensor([[[[3.0, -3.0], [2.0, -1.0]]]])
    >>> target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    >>> jaccard_loss(logits, target)
    tensor(0.2335)
    """
    fn = "jaccard_loss"
    smooth_f, eps_f = float(smooth), float(eps)

    def per_class(st: Stats) -> Tensor:
        return 1.0 - ratio(st.tp, st.psum + st.tsum - st.tp, smooth=smooth_f, eps=eps_f)

    return overlap_loss(
        fn,
        logits,
        target,
        per_class,
        **common(locals(), *PER_CALL),
    )


@register
class JaccardLoss(OverlapLoss):
    """Soft Jaccard (IoU) loss, per image or over the batch."""

    key = "jaccard"
    function = staticmethod(jaccard_loss)

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
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        opts = check_options("JaccardLoss", **common(locals(), "reduction"))
        self._store(**opts, validate=validate, reduction=reduction)
