"""Generalized Dice loss (Sudre et al.): one ratio over classes weighted by target volume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from losslab._checks import as_class_weight, check_choice, fail
from losslab._reduce import output_dtype
from losslab._registry import register
from losslab.losses.segmentation._family import (
    ClassWeight,
    OverlapLoss,
    check_options,
    common,
)
from losslab.losses.segmentation._inputs import prepare_inputs
from losslab.losses.segmentation._overlap import Stats, finish, overlap_stats, ratio

__all__ = ["GeneralizedDiceLoss", "generalized_dice_loss"]

WEIGHTINGS = ("square", "simple", "uniform")


def _check_options(fn: str, weighting: str, empty: str) -> None:
    check_choice(fn, "weighting", weighting, WEIGHTINGS)
    if empty == "zero":
        fail(
            fn,
            "empty",
            "be 'ratio' or 'skip' (one ratio over all classes has no per-class loss to zero)",
            empty,
        )


def generalized_dice_loss(
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
    weighting: str = "square",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Generalized Dice loss: a single Dice ratio over classes, each weighted by its volume.

    .. math::

        \ell = 1 - \frac{2 \sum_c w_c \sum_i p_{ic} t_{ic} + s}
                        {\sum_c w_c \sum_i (p_{ic} + t_{ic}) + s},
        \qquad w_c = \frac{v_c}{(\sum_i t_{ic})^2} \ (\text{square}),\
                     \frac{v_c}{\sum_i t_{ic}} \ (\text{simple}),\ v_c \ (\text{uniform})

    with :math:`v_c` the ``class_weight`` (1 by default), per unit (image or batch).
    A class with no target has an infinite volume weight: with ``empty="ratio"`` it gets the
    largest finite weight of its unit (MONAI's convention; 1 if no class has a target), with
    ``empty="skip"`` it is left out of both sums. ``empty="zero"`` is refused.

    Args:
        logits, target, mode, activation, class_weight, ignore_index, classes,
            include_background, aggregate, smooth, eps: as in
            :func:`~losslab.losses.segmentation.dice.dice_loss`.
        empty: ``"ratio"`` or ``"skip"`` (see above).
        weighting: ``"square"`` (the paper's), ``"simple"`` or ``"uniform"``.
        sample_weight: (B,) image weights.
        sync: ``"local"`` or ``"global"``: the class volumes and sums over every process
            (as in :func:`~losslab.losses.segmentation.dice.dice_loss`).
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"`` over images; ``none`` gives (B,) for
            ``aggregate="image"`` and a 0-d tensor for ``"batch"``.

    Reference: Sudre et al., "Generalised Dice overlap as a deep learning loss function for
    highly unbalanced segmentations", DLMIA 2017.

    >>> import torch
    >>> logits = torch.tensor([[[[3.0, -3.0], [2.0, -1.0]], [[-3.0, 3.0], [-2.0, 1.0]]]])
    >>> target = torch.tensor([[[0, 1], [0, 0]]])
    >>> generalized_dice_loss(logits, target, mode="multiclass")
    tensor(0.2249)
    """
    fn = "generalized_dice_loss"
    opts = check_options(fn, **common(locals(), "reduction"))
    _check_options(fn, weighting, empty)
    prep = prepare_inputs(
        fn,
        logits,
        target,
        mode=opts["mode"],
        activation=opts["activation"],
        ignore_index=opts["ignore_index"],
        classes=opts["classes"],
        include_background=include_background,
        validate=validate,
    )
    stats = overlap_stats(
        fn,
        prep,
        aggregate=aggregate,
        sample_weight=sample_weight,
        validate=validate,
        sync=opts["sync"],
    )
    volume = stats.tsum
    if weighting == "square":
        raw = 1.0 / (volume * volume)
    elif weighting == "simple":
        raw = 1.0 / volume
    else:
        raw = torch.ones_like(volume)
    empty_class = volume <= 0
    finite = torch.where(empty_class, torch.zeros_like(raw), raw)
    if empty == "skip":
        weights = finite
    else:
        largest = finite.amax(1, keepdim=True)
        fill = torch.where(largest > 0, largest, torch.ones_like(largest))
        weights = torch.where(empty_class, fill.expand_as(finite), finite)
    v = as_class_weight(
        fn, "class_weight", opts["class_weight"], prep.num_classes, logits, validate=validate
    )
    if v is not None:
        v = v.to(weights.dtype)
        weights = weights * (v if prep.selected is None else v.index_select(0, prep.selected))
    weights = weights.detach()  # the weights are constants of the target, as in the paper
    numerator = 2.0 * (weights * stats.tp).sum(1, keepdim=True)
    denominator = (weights * (stats.psum + stats.tsum)).sum(1, keepdim=True)
    loss = 1.0 - ratio(numerator, denominator, smooth=float(smooth), eps=float(eps))
    unit = Stats(tp=numerator, psum=denominator, tsum=volume.sum(1, keepdim=True))
    return finish(
        fn,
        loss,
        unit,
        empty=empty,
        class_weight=None,
        num_classes=1,
        selected=None,
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=output_dtype(logits),
        validate=validate,
        sync=opts["sync"],
    )


@register
class GeneralizedDiceLoss(OverlapLoss):
    """Generalized Dice loss (Sudre et al.): one ratio over classes weighted by target volume."""

    key = "generalized_dice"
    function = staticmethod(generalized_dice_loss)

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
        weighting: str = "square",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        opts = check_options("GeneralizedDiceLoss", **common(locals(), "reduction"))
        _check_options("GeneralizedDiceLoss", weighting, empty)
        self._store(**opts, weighting=weighting, validate=validate, reduction=reduction)
