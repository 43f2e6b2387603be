r"""Segmentation metrics: Dice and IoU per class and averaged, from the losses' overlap statistics.

:class:`OverlapScores` streams hard (thresholded / argmax) predictions and keeps, per class,
the counts :math:`TP_c, FP_c, FN_c` summed over every image it has seen (int64 states,
``dist_reduce_fx="sum"``). From them

.. math::

    \mathrm{Dice}_c = \frac{2\,TP_c}{2\,TP_c + FP_c + FN_c}, \qquad
    \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c}.

The counts come from the same code as the overlap losses' statistics
(:func:`losslab.losses.segmentation._overlap.overlap_stats` on the inputs normalized by
:func:`losslab.losses.segmentation._inputs.prepare`, fed hard 0/1 predictions instead of
probabilities), so ``ignore_index`` (255 works) is masked before anything is indexed, and the
policy names for empty classes are the losses' ones. :func:`segmentation_metrics` wraps one
:class:`OverlapScores` in a ``MetricCollection`` (for ``losslab.metrics.for_task``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import replace
from typing import Any, Optional

import torch
from torch import Tensor
from torchmetrics import MetricCollection

from losslab._checks import (
    check_choice,
    check_float,
    check_ignore_index,
    check_int,
    check_int_option,
    check_range,
    check_same_device,
    check_same_shape,
    check_tensor,
    fail,
    fmt,
)
from losslab.losses.segmentation._inputs import MODES, Prepared, prepare
from losslab.losses.segmentation._overlap import EMPTY_POLICIES, overlap_stats, ratio
from losslab.metrics._base import LosslabMetric, check_prefix

__all__ = ["OverlapScores", "segmentation_metrics"]

INPUTS = ("logits", "probs")
AVERAGES = ("macro", "micro", "weighted")
AGGREGATES = ("dataset", "image")


def _check_options(
    fn: str,
    *,
    mode: Any,
    num_classes: Any,
    input: Any,
    threshold: Any,
    ignore_index: Any,
    empty: Any,
    average: Any,
    aggregate: Any,
) -> dict[str, Any]:
    """Options shared by :class:`OverlapScores` and :func:`segmentation_metrics`, normalized."""
    check_choice(fn, "mode", mode, MODES)
    if mode == "binary":
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes != 1
        ):
            fail(
                fn,
                "num_classes",
                "be None or 1 in mode='binary' (its one channel is the foreground)",
                num_classes,
                hint="Use mode='multiclass' for background + foreground channels.",
            )
        num_classes = 1
    else:
        if num_classes is None:
            fail(
                fn,
                "num_classes",
                f"be given in mode={mode!r} (every process needs the state shape before any batch)",
                None,
            )
        num_classes = check_int_option(
            fn, "num_classes", num_classes, low=2 if mode == "multiclass" else 1
        )
    check_choice(fn, "input", input, INPUTS)
    threshold = check_float(fn, "threshold", threshold, low=0.0, high=1.0)
    ignore_index = check_ignore_index(fn, ignore_index)
    check_choice(fn, "empty", empty, EMPTY_POLICIES)
    check_choice(fn, "average", average, AVERAGES)
    check_choice(fn, "aggregate", aggregate, AGGREGATES)
    return dict(
        mode=mode,
        num_classes=num_classes,
        input=input,
        threshold=threshold,
        ignore_index=ignore_index,
        empty=empty,
        average=average,
        aggregate=aggregate,
    )


def _logit(threshold: float) -> float:
    """log(t / (1 - t)) in float64, +-inf at the ends: sigmoid(x) >= t  <=>  x >= logit(t)."""
    if threshold <= 0.0:
        return -math.inf
    if threshold >= 1.0:
        return math.inf
    return math.log(threshold) - math.log1p(-threshold)


def _check_zero_one(fn: str, dense: Tensor, ignore_index: Optional[int]) -> None:
    """Dense targets must be hard 0/1 labels (one host sync); ignored positions are 0 already.

    prepare() accepts soft targets in [0, 1] (the losses use them); a hard count of true
    positives has no meaning for them, so the metric refuses instead of counting fractions.
    """
    if dense.numel() == 0:
        return
    with torch.no_grad():
        bad = (dense != 0) & (dense != 1)
        if bool(bad.any()):
            first = float(dense[bad][0])
            fail(
                fn,
                "target",
                "hold 0/1 labels"
                + (f" or ignore_index={ignore_index}" if ignore_index is not None else ""),
                f"{int(bad.sum())} value(s) otherwise, e.g. {first:g}",
                raw_got=True,
                hint="Hard TP/FP/FN need hard labels: threshold soft targets first.",
            )


def _shapes(
    fn: str, preds: Tensor, target: Tensor, mode: str, num_classes: int
) -> tuple[Tensor, Tensor]:
    """Check the pair's dtypes and shapes (naming `preds`) and bring it to prepare()'s layout.

    Binary inputs of one shape (B, *spatial) get the channel dimension prepare() expects.
    Bool masks and integer multilabel masks become float masks (values are checked later).
    """
    check_tensor(fn, "preds", preds)
    check_tensor(fn, "target", target)
    if not preds.is_floating_point():
        fail(
            fn,
            "preds",
            "be a floating-point tensor of logits or probabilities",
            f"dtype {fmt(preds.dtype)}",
            kind=TypeError,
            raw_got=True,
            hint="Convert it with `.float()`.",
        )
    if target.is_complex():
        fail(
            fn,
            "target",
            "be a real tensor",
            f"dtype {fmt(target.dtype)}",
            kind=TypeError,
            raw_got=True,
        )
    check_same_device(fn, "target", target, "preds", preds)
    batch = preds.shape[0] if preds.dim() else 0

    if mode == "binary":
        if preds.dim() < 2:
            fail(
                fn,
                "preds",
                "have shape (B, *spatial) or (B, 1, *spatial) with at least one spatial dimension",
                tuple(preds.shape),
                raw_got=True,
            )
        if target.dtype == torch.bool:
            target = target.to(torch.uint8)  # ids {0, 1}; prepare() refuses bool ids
        if target.shape == preds.shape:
            preds = preds.unsqueeze(1)  # (B, 1, *spatial)
            if target.is_floating_point():
                target = target.unsqueeze(1)  # dense mask of preds' shape
            return preds, target  # integer target: class ids (B, *spatial)
        ids_shape = (batch, *preds.shape[2:])
        if preds.dim() >= 3 and preds.shape[1] == 1 and tuple(target.shape) == ids_shape:
            if target.is_floating_point():
                fail(
                    fn,
                    "target",
                    f"be integer class ids when it has shape {ids_shape}",
                    f"dtype {fmt(target.dtype)}",
                    kind=TypeError,
                    raw_got=True,
                    hint=f"Or give a float mask `preds`' shape {tuple(preds.shape)}.",
                )
            return preds, target
        alt = (
            f" or the class-id shape {ids_shape}"
            if preds.dim() >= 3 and preds.shape[1] == 1
            else ""
        )
        fail(
            fn,
            "target",
            f"have `preds`' shape {tuple(preds.shape)}{alt}",
            tuple(target.shape),
            raw_got=True,
            hint="Nothing is broadcast: reshape explicitly.",
        )

    if preds.dim() < 3:
        fail(
            fn,
            "preds",
            "have shape (B, C, *spatial) with at least one spatial dimension",
            tuple(preds.shape),
            raw_got=True,
        )
    if preds.shape[1] != num_classes:
        fail(
            fn,
            "preds",
            f"have num_classes = {num_classes} channels, shape (B, {num_classes}, *spatial)",
            tuple(preds.shape),
            raw_got=True,
        )
    if mode == "multiclass":
        check_int(fn, "target", target)
        ids_shape = (batch, *preds.shape[2:])
        if tuple(target.shape) != ids_shape:
            fail(
                fn,
                "target",
                f"have the class-id shape {ids_shape} that `preds` {tuple(preds.shape)} implies",
                tuple(target.shape),
                raw_got=True,
                hint="Nothing is broadcast: reshape explicitly (one-hot targets: `.argmax(1)`).",
            )
        return preds, target
    # multilabel
    check_same_shape(fn, "target", target, "preds", preds)
    if not target.is_floating_point():
        target = target.to(torch.float32)  # a 0/1 (or ignore_index) mask given as int or bool
    return preds, target


def _hard_counts(
    fn: str,
    preds: Tensor,
    target: Tensor,
    *,
    mode: str,
    num_classes: int,
    input: str,
    threshold: float,
    ignore_index: Optional[int],
) -> Optional[tuple[Tensor, Tensor, Tensor]]:
    """Per (image, class) TP, FP, FN of hard predictions, float64 (B, C) holding exact integers.

    ``None`` for a batch without images or pixels (nothing to count; shapes were checked).
    """
    preds, target = _shapes(fn, preds, target, mode, num_classes)
    if input == "probs":
        check_range(fn, "preds", preds, low=0.0, high=1.0)
    if preds.numel() == 0:
        return None
    prep: Prepared = prepare(
        fn,
        preds,
        target,
        mode=mode,
        activation="auto",  # prep.probs is not used: decisions are taken on the raw inputs
        ignore_index=ignore_index,
        classes=None,
        include_background=True,
        validate=True,  # out-of-range class ids would index out of bounds
    )
    if prep.dense is not None and prep.ids is None and target.is_floating_point():
        _check_zero_one(fn, prep.dense, ignore_index)
    x = prep.logits  # (B, C, N) raw inputs in the compute dtype
    # Hard predictions in float64: the sums below are then exact integers up to 2**53 (float32
    # would round sums of ones above 2**24 = 16.7M pixels, reached by one 256**3 volume).
    if mode == "multiclass":
        # argmax of logits == argmax of softmax, without saturated ties (first index wins ties).
        top = x.argmax(1, keepdim=True)
        hard = torch.zeros(x.shape, dtype=torch.float64, device=x.device).scatter_(1, top, 1.0)
    else:
        # sigmoid(x) >= t taken as x >= logit(t): float32 sigmoid rounds to 1 above x ~ 17,
        # which would flip decisions for thresholds close to 1.
        cut = _logit(threshold) if input == "logits" else threshold
        hard = (x >= cut).to(torch.float64)
    stats = overlap_stats(fn, replace(prep, probs=hard), aggregate="image")
    return stats.tp, stats.fp, stats.fn


def _scores(numerator: Tensor, denominator: Tensor, empty: str) -> Tensor:
    """numerator / denominator for integer counts, 0/0 resolved by the ``empty`` policy.

    ``ratio()`` is the losses' function (0/0 counts as 1); denominators are integer counts,
    >= 1 whenever they are not 0, so its floor (eps = 1) never changes a value.
    """
    score = ratio(numerator, denominator, smooth=0.0, eps=1.0)
    undefined = denominator == 0
    if empty == "skip":
        return torch.where(undefined, torch.full_like(score, math.nan), score)
    if empty == "zero":
        return torch.where(undefined, torch.zeros_like(score), score)
    return score


class OverlapScores(LosslabMetric):
    r"""Streaming Dice and IoU (Jaccard index) of hard segmentation masks, per class and averaged.

    Per class :math:`c`, with the counts :math:`TP_c, FP_c, FN_c` of hard predictions over
    the valid (non-ignored) positions of **all the images seen** (``aggregate="dataset"``,
    the default: "micro over images, per class", as the PASCAL VOC and Cityscapes
    protocols accumulate them):

    .. math::

        \mathrm{Dice}_c = \frac{2\,TP_c}{2\,TP_c + FP_c + FN_c}, \qquad
        \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c}.

    With ``aggregate="image"`` the scores are computed per image and averaged over images
    instead (per class: over the images where the class is not skipped).

    Hard predictions: ``binary`` / ``multilabel`` predict a class where
    :math:`\sigma(x) \ge` ``threshold`` (``input="logits"``, evaluated as
    :math:`x \ge \log(t / (1 - t))`, so a saturated float32 sigmoid cannot flip it) or
    ``probs >= threshold`` (``input="probs"``, checked in [0, 1]); ``multiclass`` predicts
    ``argmax`` over the channels (the first one on ties; ``threshold`` is not used).

    Inputs (``update(preds, target)``), as the segmentation losses take them:

    * ``"binary"``: ``preds`` (B, 1, *spatial) with class ids (B, *spatial) in {0, 1} or a
      0/1 mask of ``preds``' shape; or ``preds`` (B, *spatial) with a target of that shape;
    * ``"multiclass"``: ``preds`` (B, C, *spatial), integer class ids (B, *spatial) in [0, C);
    * ``"multilabel"``: ``preds`` (B, C, *spatial), a 0/1 mask of ``preds``' shape (float,
      integer or bool).

    ``ignore_index`` (e.g. 255) marks target positions that count nowhere (for dense masks
    elementwise, per channel); it is masked before any index operation. Soft targets are
    refused: a hard metric needs 0/1 labels.

    **Empty classes** (``empty``): a class whose score is 0/0, i.e. no target **and** no
    prediction over the data seen (per image for ``aggregate="image"``). A class with
    predictions but no target scores 0 under every policy.

    * ``"skip"`` (default): reported NaN and left out of the macro average; the usual metric
      convention (torchmetrics' ``DiceScore``, MONAI's ``ignore_empty``): a class absent
      from the data gives no evidence, so it neither inflates nor deflates the average. The
      losses default to ``"ratio"`` because their smoothed ratio is always defined; a hard
      metric has no ``smooth``.
    * ``"ratio"``: 0/0 counts as 1, exactly as the losses' ``ratio()`` (a perfect "nothing").
    * ``"zero"``: 0/0 counts as 0. (The losses' ``"zero"`` sets the *loss* of a class without
      target to 0; here the *score* of a 0/0 class is 0.)

    Averages over classes (``average``), each for Dice and IoU:

    * ``"macro"`` (default): the mean of the per-class scores, NaN ones left out;
    * ``"micro"``: the counts pooled over classes first, :math:`2\sum TP / \sum(2TP+FP+FN)`
      (with ``aggregate="image"``: per image, then averaged over images); 0/0 follows
      ``empty``;
    * ``"weighted"``: the per-class scores weighted by their support :math:`TP_c + FN_c`
      (target pixels over the data); NaN when no class has any target.

    ``compute()`` returns a dict of 0-d tensors in the metric's dtype (float32 unless
    ``set_dtype``): ``"dice"``, ``"iou"`` (the average) and, when ``num_classes > 1``,
    ``"dice_<c>"``, ``"iou_<c>"`` per class ``c``. Before any image (no ``update``, or only
    empty batches) every value is NaN, whatever ``empty`` is, and torchmetrics warns.

    States (all persistent, ``dist_reduce_fx="sum"``): ``tp``, ``fp``, ``fn`` (C,) int64 and
    ``images`` (int64); with ``aggregate="image"`` also ``image_dice``, ``image_iou`` (C,)
    float64 sums of per-image scores, ``image_count`` (C,) int64, and the per-image micro
    scores ``image_micro_dice``, ``image_micro_iou`` (float64), ``image_micro_count``
    (int64). They keep their dtypes under ``.to()`` / ``set_dtype``. A non-persistent
    ``config_tag`` (:mod:`losslab.metrics._base`) keeps ``MetricCollection`` compute groups
    from merging metrics whose options change the counts (all but ``average``).

    Args:
        mode: ``"binary"`` | ``"multiclass"`` | ``"multilabel"``.
        num_classes: C (required for multiclass and multilabel; None or 1 for binary).
        input: ``"logits"`` (default) or ``"probs"``.
        threshold: the probability at or above which binary/multilabel predict a class.
        ignore_index: target value of positions that do not count (255 works).
        empty: ``"skip"`` | ``"ratio"`` | ``"zero"``, for 0/0 classes (see above).
        average: ``"macro"`` | ``"micro"`` | ``"weighted"``.
        aggregate: ``"dataset"`` (counts over all images) or ``"image"`` (mean of per-image
            scores).
        kwargs: torchmetrics ``Metric`` options (``sync_on_compute``, ...).

    References: L. R. Dice, "Measures of the amount of ecologic association between
    species", Ecology 1945; P. Jaccard, New Phytologist 1912; M. Everingham et al., "The
    PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010 (dataset-accumulated IoU).

    >>> import torch
    >>> metric = OverlapScores(mode="multiclass", num_classes=3, ignore_index=255)
    >>> predicted = torch.tensor([[[0, 1, 1, 2, 0]]])  # (B, H, W) = (1, 1, 5)
    >>> logits = 4.0 * torch.nn.functional.one_hot(predicted, 3).permute(0, 3, 1, 2).float()
    >>> target = torch.tensor([[[0, 1, 1, 255, 1]]])  # class 2 only predicted where ignored
    >>> metric.update(logits, target)
    >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}  # doctest: +NORMALIZE_WHITESPACE
    {'dice': 0.7333, 'iou': 0.5833, 'dice_0': 0.6667, 'dice_1': 0.8, 'dice_2': nan,
     'iou_0': 0.5, 'iou_1': 0.6667, 'iou_2': nan}
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    tp: Tensor
    fp: Tensor
    fn: Tensor
    images: Tensor
    image_dice: Tensor
    image_iou: Tensor
    image_count: Tensor
    image_micro_dice: Tensor
    image_micro_iou: Tensor
    image_micro_count: Tensor

    def __init__(
        self,
        *,
        mode: str,
        num_classes: Optional[int] = None,
        input: str = "logits",
        threshold: float = 0.5,
        ignore_index: Optional[int] = None,
        empty: str = "skip",
        average: str = "macro",
        aggregate: str = "dataset",
        **kwargs: Any,
    ) -> None:
        opts = _check_options(
            "OverlapScores",
            mode=mode,
            num_classes=num_classes,
            input=input,
            threshold=threshold,
            ignore_index=ignore_index,
            empty=empty,
            average=average,
            aggregate=aggregate,
        )
        super().__init__(**kwargs)
        self.mode: str = opts["mode"]
        self.num_classes: int = opts["num_classes"]
        self.input: str = opts["input"]
        self.threshold: float = opts["threshold"]
        self.ignore_index: Optional[int] = opts["ignore_index"]
        self.empty: str = opts["empty"]
        self.average: str = opts["average"]
        self.aggregate: str = opts["aggregate"]

        c = self.num_classes

        def state(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> None:
            self.add_exact_state(name, torch.zeros(shape, dtype=dtype))

        for name in ("tp", "fp", "fn"):
            state(name, (c,), torch.int64)
        state("images", (), torch.int64)
        if self.aggregate == "image":
            state("image_dice", (c,), torch.float64)
            state("image_iou", (c,), torch.float64)
            state("image_count", (c,), torch.int64)
            state("image_micro_dice", (), torch.float64)
            state("image_micro_iou", (), torch.float64)
            state("image_micro_count", (), torch.int64)
        self.add_config_tag()

    def _config(self) -> tuple[Hashable, ...]:
        # `average` is read by compute() only: metrics differing there may share their counts.
        return (
            self.mode,
            self.num_classes,
            self.input,
            self.threshold,
            self.ignore_index,
            self.empty,
            self.aggregate,
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch: ``preds`` (logits or probabilities) and ``target`` (see the class)."""
        counts = _hard_counts(
            "OverlapScores.update",
            preds,
            target,
            mode=self.mode,
            num_classes=self.num_classes,
            input=self.input,
            threshold=self.threshold,
            ignore_index=self.ignore_index,
        )
        if counts is None:
            return
        tp, fp, fn = counts  # (B, C) float64, exact integers
        self.tp += tp.sum(0).to(torch.int64)
        self.fp += fp.sum(0).to(torch.int64)
        self.fn += fn.sum(0).to(torch.int64)
        self.images += tp.shape[0]
        if self.aggregate == "image":
            self._add_images(tp, fp, fn)

    def _add_images(self, tp: Tensor, fp: Tensor, fn: Tensor) -> None:
        """Sums of per-image scores (NaN = skipped, counted nowhere)."""
        for name, score in (
            ("dice", _scores(2.0 * tp, 2.0 * tp + fp + fn, self.empty)),
            ("iou", _scores(tp, tp + fp + fn, self.empty)),
        ):
            setattr(self, f"image_{name}", getattr(self, f"image_{name}") + score.nansum(0))
        self.image_count += (~score.isnan()).sum(0)  # the same 0/0 pattern for both scores
        tp_i, fp_i, fn_i = tp.sum(1), fp.sum(1), fn.sum(1)  # pooled over classes, per image
        micro_dice = _scores(2.0 * tp_i, 2.0 * tp_i + fp_i + fn_i, self.empty)
        micro_iou = _scores(tp_i, tp_i + fp_i + fn_i, self.empty)
        self.image_micro_dice += micro_dice.nansum()
        self.image_micro_iou += micro_iou.nansum()
        self.image_micro_count += (~micro_dice.isnan()).sum()

    def per_class(self) -> tuple[Tensor, Tensor]:
        """(Dice, IoU) per class, (C,) float64 each, NaN where skipped or no image was seen."""
        if self.aggregate == "dataset":
            tp, fp, fn = (s.to(torch.float64) for s in (self.tp, self.fp, self.fn))
            dice = _scores(2.0 * tp, 2.0 * tp + fp + fn, self.empty)
            iou = _scores(tp, tp + fp + fn, self.empty)
        else:
            count = self.image_count.to(torch.float64)
            dice = self.image_dice / count  # 0/0 -> NaN: no image counted for the class
            iou = self.image_iou / count
        return self._if_seen(dice), self._if_seen(iou)

    def _if_seen(self, value: Tensor) -> Tensor:
        return torch.where(self.images > 0, value, torch.full_like(value, math.nan))

    def _average(self, per_class: Tensor, which: str) -> Tensor:
        if self.average == "macro":
            return per_class.nanmean()  # NaN when every class is NaN
        if self.average == "weighted":
            support = (self.tp + self.fn).to(torch.float64)
            counted = torch.where(support > 0, per_class, torch.zeros_like(per_class))
            return (counted * support).sum() / support.sum()  # 0/0 -> NaN: no target at all
        # micro
        if self.aggregate == "image":
            return getattr(self, f"image_micro_{which}") / self.image_micro_count.to(torch.float64)
        tp, fp, fn = (s.to(torch.float64).sum() for s in (self.tp, self.fp, self.fn))
        if which == "dice":
            return _scores(2.0 * tp, 2.0 * tp + fp + fn, self.empty)
        return _scores(tp, tp + fp + fn, self.empty)

    def compute(self) -> dict[str, Tensor]:
        """``{"dice", "iou"}`` averaged, plus ``"dice_<c>"``, ``"iou_<c>"`` when C > 1."""
        dice, iou = self.per_class()
        out = {
            "dice": self._if_seen(self._average(dice, "dice")),
            "iou": self._if_seen(self._average(iou, "iou")),
        }
        if self.num_classes > 1:
            for name, values in (("dice", dice), ("iou", iou)):
                for c in range(self.num_classes):
                    out[f"{name}_{c}"] = values[c]
        return {k: v.to(self.dtype) for k, v in out.items()}

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, num_classes={self.num_classes}, input={self.input!r}, "
            f"threshold={self.threshold:g}, ignore_index={self.ignore_index}, "
            f"empty={self.empty!r}, average={self.average!r}, aggregate={self.aggregate!r}"
        )


def segmentation_metrics(
    *,
    mode: str,
    num_classes: Optional[int] = None,
    input: str = "logits",
    threshold: float = 0.5,
    ignore_index: Optional[int] = None,
    empty: str = "skip",
    average: str = "macro",
    aggregate: str = "dataset",
    prefix: Optional[str] = None,
) -> MetricCollection:
    r"""The segmentation metric set: Dice and IoU, averaged over classes and per class.

    .. math::

        \mathrm{Dice}_c = \frac{2\,TP_c}{2\,TP_c + FP_c + FN_c}, \qquad
        \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c}

    with the counts of hard predictions accumulated over the whole dataset per class (or
    per image with ``aggregate="image"``); see :class:`OverlapScores` for the input
    shapes, the threshold / argmax rule, ``ignore_index`` and the ``empty`` policy (default
    ``"skip"``: a class with neither target nor prediction is NaN and left out of the
    average).

    Returns a ``MetricCollection`` holding one :class:`OverlapScores` (one update computes
    everything); ``compute()`` gives ``{prefix}dice``, ``{prefix}iou`` (the ``average``)
    and, for C > 1, ``{prefix}dice_<c>``, ``{prefix}iou_<c>`` per class: 0-d tensors, ready
    for a logger.

    Args:
        mode: ``"binary"`` | ``"multiclass"`` | ``"multilabel"``.
        num_classes: C (required for multiclass / multilabel).
        input: ``"logits"`` | ``"probs"``.
        threshold: decision threshold on probabilities (binary / multilabel).
        ignore_index: target value that counts nowhere (255 works).
        empty: ``"skip"`` | ``"ratio"`` | ``"zero"``.
        average: ``"macro"`` | ``"micro"`` | ``"weighted"``.
        aggregate: ``"dataset"`` | ``"image"``.
        prefix: prepended to every key (e.g. ``"val/"``).

    Reference: Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV
    2010; Cordts et al., "The Cityscapes Dataset", CVPR 2016 (dataset-accumulated IoU).

    >>> import torch
    >>> metrics = segmentation_metrics(mode="binary", prefix="val/")
    >>> logits = torch.tensor([[[2.0, -1.0, 3.0, -2.0]], [[-3.0, -1.0, 1.0, 2.0]]])
    >>> target = torch.tensor([[[1.0, 1.0, 1.0, 0.0]], [[0.0, 0.0, 1.0, 0.0]]])
    >>> metrics.update(logits, target)
    >>> {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    {'val/dice': 0.75, 'val/iou': 0.6}
    """
    opts = _check_options(
        "segmentation_metrics",
        mode=mode,
        num_classes=num_classes,
        input=input,
        threshold=threshold,
        ignore_index=ignore_index,
        empty=empty,
        average=average,
        aggregate=aggregate,
    )
    check_prefix("segmentation_metrics", prefix, noun="string")
    return MetricCollection({"overlap": OverlapScores(**opts)}, prefix=prefix)
