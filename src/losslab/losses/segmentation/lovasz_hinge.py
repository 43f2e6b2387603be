"""Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss for binary segmentation, from logits.

The Lovasz extension itself (the sort, the increments of the Jaccard loss along it and the
analytic backward pass) is ``losslab._autograd.lovasz``, shared with ``lovasz_softmax.py``;
:func:`lovasz_increments` is re-exported here. Units are reduced by ``_overlap.reduce_units``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._autograd.lovasz import lovasz_increments as lovasz_increments  # re-export
from losslab._autograd.lovasz import lovasz_per_class
from losslab._checks import (
    check_choice,
    check_reduction,
    check_sample_weight,
    fail,
    is_compiling,
)
from losslab._reduce import output_dtype
from losslab._registry import register
from losslab.distributed import all_gather_cat, check_on_every_rank, check_sync, is_distributed
from losslab.losses.base import Loss
from losslab.losses.segmentation._inputs import Prepared, check_common_options, prepare
from losslab.losses.segmentation._overlap import reduce_units

__all__ = ["LovaszHingeLoss", "lovasz_hinge_loss"]

AGGREGATES = ("image", "batch")


# ---------------------------------------------------------------------------- shared machinery
def check_hard_labels(fn: str, target: Tensor, valid: Optional[Tensor], *, validate: bool) -> None:
    """A dense target must hold hard labels {0, 1} at the valid positions (one host sync).

    The Lovasz extension is the extension of a *set* function (the Jaccard loss of the set of
    mispredicted pixels); a soft label defines no set.
    """
    if not validate or is_compiling() or target.numel() == 0:
        return
    with torch.no_grad():
        soft = (target != 0) & (target != 1)
        if valid is not None:
            soft &= valid.expand_as(soft)
        if bool(soft.any()):
            first = float(target[soft][0])
            fail(
                fn,
                "target",
                "hold hard labels in {0, 1} (the Lovasz extension is defined on sets)",
                f"{int(soft.sum())} soft value(s), e.g. {first:g}",
                raw_got=True,
                hint="Threshold the target, or pass validate=False to skip this check.",
            )


def gather_batch(
    x: Tensor,
    *,
    target: Optional[Tensor],
    ids: Optional[Tensor],
    valid: Optional[Tensor],
    pixel_weight: Optional[Tensor],
) -> tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Every rank's rows of the Lovasz inputs, concatenated in rank order (``sync="global"``).

    ``x`` (B, C, N) in the compute dtype, ``target`` (B, C, N) dense labels, ``ids`` (B, N),
    ``valid`` (B, 1 or C, N) and the batch's ``pixel_weight`` (B,) travel as channels of one
    tensor in ``x``'s dtype: one differentiable gather (gradients reach ``x``, and ``target``
    when it requires one). Class ids and the 0/1 mask are exact there (integers below 2^24);
    the weights are the values the Lovasz Function reads anyway (it casts them to ``x``'s
    dtype). The concatenation is the batch of one process, pixel for pixel, so the sort (ties
    in pixel order) and every count are those of one process. Without a process group the
    inputs come back unchanged.
    """
    if not is_distributed():
        return x, target, ids, valid, pixel_weight
    b, c, n = x.shape
    dtype = x.dtype
    parts = [x]
    if target is not None:
        parts.append(target.to(dtype))
    if ids is not None:
        parts.append(ids.to(dtype).unsqueeze(1))
    if valid is not None:
        parts.append(valid.to(dtype).expand(b, valid.shape[1], n))
    if pixel_weight is not None:
        parts.append(pixel_weight.to(dtype).view(b, 1, 1).expand(b, 1, n))
    packed = all_gather_cat(torch.cat(parts, 1))
    x_all, at = packed[:, :c], c
    t_all = ids_all = valid_all = w_all = None
    if target is not None:
        t_all = packed[:, at : at + c]
        # Only a target that asks for a gradient gets one (the Function then computes it).
        t_all, at = (t_all if target.requires_grad else t_all.detach()), at + c
    if ids is not None:
        ids_all, at = packed[:, at].detach().to(ids.dtype), at + 1
    if valid is not None:
        k = valid.shape[1]
        valid_all, at = packed[:, at : at + k].detach() > 0.5, at + k
    if pixel_weight is not None:
        w_all = packed[:, at, 0].detach() if n else packed.new_zeros(packed.shape[0])
    return x_all, t_all, ids_all, valid_all, w_all


# ---------------------------------------------------------------------------- the hinge
def _check_options(
    fn: str, ignore_index: Optional[int], aggregate: str, sync: str, reduction: str
) -> None:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    check_common_options(
        fn,
        mode="binary",
        activation="auto",
        ignore_index=ignore_index,
        classes=None,
        include_background=True,
    )
    check_choice(fn, "aggregate", aggregate, AGGREGATES)
    check_sync(fn, sync)
    check_reduction(fn, reduction)


def lovasz_hinge_loss(
    logits: Tensor,
    target: Tensor,
    *,
    ignore_index: Optional[int] = None,
    aggregate: str = "image",
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Lovasz hinge loss: the Lovasz extension of the Jaccard loss at the hinge errors.

    With signs :math:`s_i = 2 t_i - 1` and errors :math:`e_i = 1 - x_i s_i`, sorted so that
    :math:`e_{\pi_1} \ge e_{\pi_2} \ge \dots` over the valid pixels of a unit (an image, or
    the whole batch):

    .. math::

        \ell = \sum_i \max(e_{\pi_i}, 0)\,\bigl(J(\{\pi_1..\pi_i\}) - J(\{\pi_1..\pi_{i-1}\})\bigr),
        \qquad J(S) = 1 - \frac{|y \setminus S|}{|y| + |S \setminus y|}

    where :math:`y` is the set of foreground pixels and :math:`J(S)` the Jaccard loss when the
    pixels of :math:`S` are mispredicted (:math:`J(\emptyset) = 0`). A unit without foreground
    still penalizes its false positives (:math:`J` is 1 as soon as one negative is in
    :math:`S`). Ignored pixels count nowhere; an all-ignored image is 0 and counts as 0 in the
    mean over images (as in the paper's code); an all-ignored batch gives 0 with zero gradient.

    The sort, the increments and the gradient are ``losslab._autograd.lovasz``: integer
    radix sorts on CPU, closed-form increments, an analytic backward (three elementwise
    passes; the forward saves one float per pixel).

    Under ``torch.distributed``, ``sync="global"`` gives every rank the loss of the global
    batch: with ``aggregate="batch"`` every rank gathers all ranks' logits, labels, ignore mask
    and batch weights (one differentiable all-gather, O(global pixels) memory and sort work per
    rank) and sorts the global set exactly as one process would; with ``"image"`` only the mean
    (or sum) over images is taken over every rank (one all-reduce). Each rank's pixels then get
    ``world_size`` x their single-process gradient, which DDP's averaging divides back (see
    :mod:`losslab.distributed`).

    Args:
        logits: (B, 1, *spatial) raw scores, 1-3 spatial dims.
        target: (B, 1, *spatial) floating hard labels in {0, 1} (soft values are refused), or
            (B, *spatial) integer ids in {0, 1}.
        ignore_index: target value of pixels that do not count (255 works).
        aggregate: ``"image"`` (a loss per image, then averaged) or ``"batch"`` (all pixels of
            the batch as one set).
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
    >>> logits = torch.tensor([[[2.0, -1.0, 0.5, -3.0]]])
    >>> target = torch.tensor([[[1.0, 0.0, 0.0, 1.0]]])
    >>> lovasz_hinge_loss(logits, target)
    tensor(2.2500)
    """
    fn = "lovasz_hinge_loss"
    _check_options(fn, ignore_index, aggregate, sync, reduction)

    def checked() -> Prepared:
        # activation="sigmoid" only so that prepare() does not range-check raw logits; the
        # hinge works on the logits themselves.
        prep = prepare(
            fn,
            logits,
            target,
            mode="binary",
            activation="sigmoid",
            ignore_index=ignore_index,
            classes=None,
            include_background=True,
            validate=validate,
        )
        assert prep.dense is not None  # binary mode always gives a dense (B, 1, N) indicator
        check_hard_labels(fn, prep.dense, prep.valid, validate=validate)
        check_sample_weight(fn, sample_weight, prep.batch, logits, validate=validate)
        return prep

    prep = check_on_every_rank(fn, checked, sync=sync, validate=validate, like=logits)
    x, dense, valid = prep.logits, prep.dense, prep.valid
    pixel_weight = sample_weight if aggregate == "batch" else None
    if aggregate == "batch" and sync == "global":
        x, dense, _, valid, pixel_weight = gather_batch(
            x, target=dense, ids=None, valid=valid, pixel_weight=pixel_weight
        )
    per_unit, _ = lovasz_per_class(
        "hinge",
        x,
        target=dense,
        valid=valid,
        pixel_weight=pixel_weight,
        aggregate=aggregate,
    )
    per_unit = per_unit.squeeze(1)
    return reduce_units(
        per_unit,
        torch.ones_like(per_unit, dtype=torch.bool),
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=output_dtype(logits),
        sync=sync,
    )


@register
class LovaszHingeLoss(Loss):
    """Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss for binary segmentation, from logits."""

    key = "lovasz_hinge"
    family = "segmentation"
    input_kind = "logits"
    pointwise = False
    needs_global_stats = (
        True  # aggregate="batch" sorts the whole batch; sync="global" makes it exact
    )
    function = staticmethod(lovasz_hinge_loss)

    def __init__(
        self,
        *,
        ignore_index: Optional[int] = None,
        aggregate: str = "image",
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("LovaszHingeLoss", ignore_index, aggregate, sync, reduction)
        self._store(
            ignore_index=ignore_index,
            aggregate=aggregate,
            sync=sync,
            validate=validate,
            reduction=reduction,
        )
