"""Lovasz-softmax: the Lovasz extension of the per-class Jaccard loss at the probability errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from losslab._autograd.lovasz import lovasz_per_class
from losslab._autograd.overlap_stats import activate
from losslab._checks import check_choice, check_reduction, check_sample_weight
from losslab._reduce import output_dtype
from losslab._registry import register
from losslab.distributed import check_on_every_rank, check_sync
from losslab.losses.base import Loss
from losslab.losses.segmentation._inputs import Prepared, check_common_options, prepare
from losslab.losses.segmentation._overlap import reduce_units
from losslab.losses.segmentation.lovasz_hinge import (
    AGGREGATES,
    check_hard_labels,
    gather_batch,
)

__all__ = ["LovaszSoftmaxLoss", "lovasz_softmax_loss"]


def _check_options(
    fn: str,
    *,
    mode: str,
    activation: Optional[str],
    ignore_index: Optional[int],
    classes: Optional[Sequence[int]],
    include_background: bool,
    aggregate: str,
    present_only: bool,
    sync: str,
    reduction: str,
) -> Optional[tuple[int, ...]]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    _, _, _, classes_t = check_common_options(
        fn,
        mode=mode,
        activation=activation,
        ignore_index=ignore_index,
        classes=classes,
        include_background=include_background,
    )
    check_choice(fn, "aggregate", aggregate, AGGREGATES)
    check_choice(fn, "present_only", present_only, (True, False))
    check_sync(fn, sync)
    check_reduction(fn, reduction)
    return classes_t


def lovasz_softmax_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "multiclass",
    activation: Optional[str] = "auto",
    ignore_index: Optional[int] = None,
    classes: Optional[Sequence[int]] = None,
    include_background: bool = True,
    aggregate: str = "image",
    present_only: bool = True,
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Lovasz-softmax loss: per class, the Lovasz extension of the Jaccard loss at :math:`|t - p|`.

    Per unit (an image, or the whole batch) and class :math:`c`, with errors
    :math:`e_{ic} = |t_{ic} - p_{ic}|` over the valid pixels sorted decreasingly
    (:math:`\pi`):

    .. math::

        \ell_c = \sum_i e_{\pi_i c}\,\bigl(J_c(\{\pi_1..\pi_i\}) - J_c(\{\pi_1..\pi_{i-1}\})\bigr),
        \qquad \ell = \frac{1}{|K|} \sum_{c \in K} \ell_c

    with :math:`J_c(S) = 1 - |y_c \setminus S| / (|y_c| + |S \setminus y_c|)` the Jaccard
    loss of class :math:`c` when the pixels of :math:`S` are mispredicted. :math:`K` holds the
    selected classes (``classes``, ``include_background``); with ``present_only=True`` (the
    paper's ``classes="present"``) only those with foreground in the unit. That is the
    family's ``empty="skip"`` policy: an absent class is left out of the class average (its
    false positives are not penalized by this loss), and a unit with no present class (an
    all-ignored image, for instance) is left out of the mean over images; the paper's code
    averages such an image in as 0 instead. ``present_only=False`` averages over all of
    :math:`K` (the paper's ``"all"``): an absent class then costs its largest error.

    Mode ``"binary"`` (one channel, sigmoid) reports the foreground class only: it equals
    ``mode="multiclass"`` on the logits ``(0, x)`` with ``classes=[1]``.

    Class-id targets are never one-hot encoded as floats: each block of (unit, class) rows
    compares the ids with its classes (a boolean indicator), its errors are one subtraction.
    The sort, the increments and the gradient are ``losslab._autograd.lovasz`` (integer
    radix sorts on CPU, closed-form increments, an analytic backward that saves one float
    per (pixel, class) and fuses the softmax's backward).

    Under ``torch.distributed``, ``sync="global"`` gives every rank the loss of the global
    batch: with ``aggregate="batch"`` every rank gathers all ranks' logits, labels (class ids
    or dense), ignore mask and batch weights (one differentiable all-gather: O(global pixels x
    C) memory and sort work per rank) and sorts the global set per class exactly as one
    process would; with ``"image"`` only the mean (or sum) over images is taken over every rank
    (one all-reduce). Each rank's pixels then get ``world_size`` x their single-process
    gradient, which DDP's averaging divides back (see :mod:`losslab.distributed`).

    Args:
        logits: (B, C, *spatial) with 1-3 spatial dims; an activation is applied inside.
        target: class ids (B, *spatial) (binary / multiclass) or a dense hard {0, 1} mask of
            ``logits``' shape (soft values are refused: the Lovasz extension is defined on sets).
        mode: ``"multiclass"`` (softmax), ``"multilabel"`` or ``"binary"`` (sigmoid).
        activation: ``"auto"``, ``"sigmoid"``, ``"softmax"`` or ``None`` (``logits`` already
            are probabilities in [0, 1]).
        ignore_index: target value of pixels that do not count (255 works).
        classes: the class channels to average over (default all).
        include_background: ``False`` leaves channel 0 out (not in binary mode).
        aggregate: ``"image"`` (per image, then averaged) or ``"batch"`` (all pixels of the
            batch as one set per class).
        present_only: average only over the classes present in the unit's target.
        sync: ``"local"`` (default) or ``"global"``: the loss of every process's batch together
            (see above); every rank must call the loss, an empty shard included, and
            backpropagate through it.
        sample_weight: (B,) image weights: a weighted mean over images for ``"image"``; pixel
            weights of a weighted Jaccard for ``"batch"`` (weight k == the image k times).
        validate: check target values (host syncs).
        reduction: ``"mean" | "sum" | "none"`` over images; ``none`` gives (B,) (times
            ``sample_weight``) for ``"image"`` and a 0-d tensor for ``"batch"``.

    Reference: Berman, Rannen Triki, Blaschko, "The Lovasz-Softmax loss: A tractable surrogate
    for the optimization of the intersection-over-union measure in neural networks", CVPR 2018.

    >>> import torch
    >>> probs = torch.tensor([[[0.9, 0.2, 0.6, 0.3]]])
    >>> target = torch.tensor([[[1.0, 0.0, 0.0, 1.0]]])
    >>> lovasz_softmax_loss(probs, target, mode="binary", activation=None)
    tensor(0.4917)
    """
    fn = "lovasz_softmax_loss"
    classes_t = _check_options(
        fn,
        mode=mode,
        activation=activation,
        ignore_index=ignore_index,
        classes=classes,
        include_background=include_background,
        aggregate=aggregate,
        present_only=present_only,
        sync=sync,
        reduction=reduction,
    )

    def checked() -> Prepared:
        prep = prepare(
            fn,
            logits,
            target,
            mode=mode,
            activation=activation,
            ignore_index=ignore_index,
            classes=classes_t,
            include_background=include_background,
            validate=validate,
        )
        check_sample_weight(fn, sample_weight, prep.batch, logits, validate=validate)
        if prep.ids is None and validate:
            assert prep.dense is not None  # prepare() always sets ids or dense
            gt, valid = prep.dense, prep.valid
            if prep.selected is not None:
                gt = gt.index_select(1, prep.selected)
                if valid is not None and valid.shape[1] > 1:
                    valid = valid.index_select(1, prep.selected)
            check_hard_labels(fn, gt, valid, validate=validate)
        return prep

    prep = check_on_every_rank(fn, checked, sync=sync, validate=validate, like=logits)
    x, dense, ids, valid, probs = prep.logits, prep.dense, prep.ids, prep.valid, prep.probs
    pixel_weight = sample_weight if aggregate == "batch" else None
    if aggregate == "batch" and sync == "global":
        x, dense, ids, valid, pixel_weight = gather_batch(
            x, target=dense, ids=ids, valid=valid, pixel_weight=pixel_weight
        )
        if x is not prep.logits:  # gathered: the global batch's probabilities, as one process
            probs = activate(x.detach(), prep.activation)
    per_class, mass = lovasz_per_class(
        "ids" if ids is not None else "dense",
        x,
        target=dense,
        probs=probs,
        ids=ids,
        valid=valid,
        selected=prep.selected,
        pixel_weight=pixel_weight,
        activation=prep.activation,
        aggregate=aggregate,
        # Errors in [0, 1]: probabilities (activated, or checked) against checked labels.
        bounded=validate if ids is None else validate or prep.activation is not None,
    )  # (U, K)
    keep = (mass > 0).to(per_class.dtype) if present_only else torch.ones_like(per_class)
    count = keep.sum(1)
    per_unit = (per_class * keep).sum(1) / count.clamp_min(1.0)
    return reduce_units(
        per_unit,
        count > 0,
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=output_dtype(logits),
        sync=sync,
    )


@register
class LovaszSoftmaxLoss(Loss):
    """Lovasz-softmax: the Lovasz extension of the per-class Jaccard loss at the probability errors."""

    key = "lovasz_softmax"
    family = "segmentation"
    input_kind = "logits"
    pointwise = False
    needs_global_stats = (
        True  # aggregate="batch" sorts the whole batch; sync="global" makes it exact
    )
    function = staticmethod(lovasz_softmax_loss)

    def __init__(
        self,
        *,
        mode: str = "multiclass",
        activation: Optional[str] = "auto",
        ignore_index: Optional[int] = None,
        classes: Optional[Sequence[int]] = None,
        include_background: bool = True,
        aggregate: str = "image",
        present_only: bool = True,
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options(
            "LovaszSoftmaxLoss",
            mode=mode,
            activation=activation,
            ignore_index=ignore_index,
            classes=classes,
            include_background=include_background,
            aggregate=aggregate,
            present_only=present_only,
            sync=sync,
            reduction=reduction,
        )
        self._store(
            mode=mode,
            activation=activation,
            ignore_index=ignore_index,
            classes=classes,
            include_background=include_background,
            aggregate=aggregate,
            present_only=present_only,
            sync=sync,
            validate=validate,
            reduction=reduction,
        )
