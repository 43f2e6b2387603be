"""Log-cosh Dice loss: log(cosh(1 - Dice)) per class, averaged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
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
from losslab.losses.segmentation._overlap import Stats
from losslab.losses.segmentation.dice import dice_score

__all__ = ["LogCoshDiceLoss", "log_cosh_dice_loss"]


def log_cosh_dice_loss(
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
    r"""Log-cosh Dice loss: log(cosh(1 - Dice)) per class, averaged.

    .. math::

        \ell = \frac{\sum_c w_c \log\cosh(1 - D_c)}{\sum_c w_c}

    with :math:`D_c` the smoothed soft Dice (:math:`1 - D_c \in [0, 1]`, so ``cosh`` cannot
    overflow).

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

    Reference: Jadon, "A survey of loss functions for semantic segmentation", CIBCB 2020.

    >>> import torch
    >>> logits = torch.tensor([[[[3.0, -3.0], [2.0, -1.0]]]])
    >>> target = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    >>> log_cosh_dice_loss(logits, target)
    tensor(0.0118)
    """
    fn = "log_cosh_dice_loss"
    smooth_f, eps_f = float(smooth), float(eps)

    def per_class(st: Stats) -> Tensor:
        return torch.log(torch.cosh(1.0 - dice_score(st, smooth=smooth_f, eps=eps_f)))

    return overlap_loss(
        fn,
        logits,
        target,
        per_class,
        **common(locals(), *PER_CALL),
    )


@register
class LogCoshDiceLoss(OverlapLoss):
    """Log-cosh Dice loss: log(cosh(1 - Dice)) per class, averaged."""

    key = "log_cosh_dice"
    function = staticmethod(log_cosh_dice_loss)

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
        opts = check_options("LogCoshDiceLoss", **common(locals(), "reduction"))
        self._store(**opts, validate=validate, reduction=reduction)
