"""Soft overlap statistics (TP / FP / FN) and the one policy for empty and ignored classes.

Every overlap loss (Dice, Jaccard, Tversky, ...) is ``1 - score`` (or a function of it)
where ``score = (numerator + smooth) / (denominator + smooth)`` is computed per class and per
*unit*: per image (``aggregate="image"``) or once over the whole batch (``"batch"``).

Statistics are soft: with probabilities :math:`p` and targets :math:`t` over the valid
positions, :math:`TP = \\sum p t`, :math:`FP = \\sum p (1 - t)`, :math:`FN = \\sum (1 - p) t`.
For class-id targets they come from a gather and a ``scatter_add`` (no one-hot tensor).
Ignored positions contribute nothing to any statistic.

**Empty classes.** A class is *empty* in a unit when it has no target there (its valid target
mass is 0). What it contributes is the ``empty`` option:

* ``"ratio"`` (default): nothing special; the class counts with its smoothed score. With
  ``smooth > 0`` an empty class predicted empty scores ~1 (loss ~0) and false positives on it
  are penalized. A score of 0/0 (no target, no prediction, ``smooth == 0``) counts as 1.
* ``"skip"``: the class is left out of the average over classes (false positives on it are
  not penalized by this term). A unit whose classes are all skipped is left out of the
  average over units; if nothing is left the loss is 0 with zero gradient.
* ``"zero"``: the class counts with loss 0 (it still counts in the average).

An all-ignored batch has no target anywhere: every policy gives 0 with zero gradient.
The metrics use the same names and meanings for hard predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from losslab._autograd.overlap_stats import overlap_sums, overlap_sums_plain
from losslab._checks import as_class_weight, check_choice, check_float, check_sample_weight
from losslab.distributed import check_on_every_rank, sync_sum
from losslab.losses.segmentation._inputs import Inputs, Prepared

__all__ = [
    "AGGREGATES",
    "EMPTY_POLICIES",
    "Stats",
    "check_overlap_options",
    "finish",
    "overlap_stats",
    "ratio",
]

AGGREGATES = ("image", "batch")
EMPTY_POLICIES = ("ratio", "skip", "zero")


@dataclass(frozen=True)
class Stats:
    """Per (unit, class) sums, shape (U, C'): U = B for "image", 1 for "batch"."""

    tp: Tensor
    psum: Tensor  # sum of p over valid positions (TP + FP)
    tsum: Tensor  # sum of t over valid positions (TP + FN)
    p2sum: Optional[Tensor] = None  # sum of p^2 (squared denominators)
    t2sum: Optional[Tensor] = None  # sum of t^2

    @property
    def fp(self) -> Tensor:
        return self.psum - self.tp

    @property
    def fn(self) -> Tensor:
        return self.tsum - self.tp

    @property
    def empty(self) -> Tensor:
        return self.tsum <= 0


def check_overlap_options(
    fn: str, *, aggregate: str, smooth: float, eps: float, empty: str
) -> tuple[float, float]:
    check_choice(fn, "aggregate", aggregate, AGGREGATES)
    check_choice(fn, "empty", empty, EMPTY_POLICIES)
    smooth = check_float(fn, "smooth", smooth, low=0.0)
    # eps floors denominators; computations run in float32, where 1e-6 is far from underflow.
    eps = check_float(fn, "eps", eps, low=0.0, low_open=True, high=1.0)
    return smooth, eps


def overlap_stats(
    fn: str,
    prep: Inputs,
    *,
    aggregate: str,
    squared: bool = False,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    sync: str = "local",
) -> Stats:
    """TP, sum p and sum t per (unit, selected class); sample weights pool images in "batch".

    With ``aggregate="batch"`` and ``sync="global"`` the (1, C') sums are summed over the
    processes in one collective (:mod:`losslab.distributed`): every rank then holds the
    statistics of the global batch.

    ``prep`` comes from :func:`prepare_inputs` (the sums activate the logits themselves, a
    slice of images at a time) or :func:`prepare` (its ``probs`` are used). The full-size work
    runs in :class:`~losslab._autograd.overlap_stats.OverlapSumsFunction` (analytic backward)
    whenever a gradient is needed; it recomputes the activation of ``prep.logits`` in
    backward, so ``probs`` that carry a gradient must be that activation (as :func:`prepare`
    makes them). ``probs`` without a gradient (e.g. the metrics' hard predictions) are summed
    as they are, under plain autograd. Everything after the per-image sums (class selection,
    weights, the batch sum) is plain autograd on (B, C) tensors.

    First, the value checks :func:`prepare_inputs` left in ``prep.check_values`` and the
    ``sample_weight`` check run together; under ``sync="global"`` they agree over the ranks
    (:func:`~losslab.distributed.check_on_every_rank`), before this function's collective
    (``"batch"``) or the reduction's (``"image"``), so every rank raises or none does.
    """

    def checks() -> None:
        prep.check_values()
        check_sample_weight(fn, sample_weight, prep.batch, prep.logits, validate=validate)

    check_on_every_rank(fn, checks, sync=sync, validate=validate, like=prep.logits)
    probs = prep.probs if isinstance(prep, Prepared) else None
    if probs is not None and not probs.requires_grad:
        sums = overlap_sums_plain(probs, prep.ids, prep.dense, prep.valid, squared)
    else:
        sums = overlap_sums(
            prep.logits,
            prep.ids,
            prep.dense,
            prep.valid,
            activation=prep.activation,
            squared=squared,
            probs=probs,
        )
    parts = list(sums.unbind(0))
    tp = parts[0]
    if prep.selected is not None:
        parts = [x.index_select(1, prep.selected) for x in parts]
    if sample_weight is not None and aggregate == "batch":
        sw = sample_weight.to(tp.dtype).unsqueeze(1)
        parts = [x * sw for x in parts]
    if aggregate == "batch":
        parts = [x.sum(0, keepdim=True) for x in parts]
        if sync == "global":
            parts = list(sync_sum(torch.stack(parts), sync).unbind(0))
    return Stats(*parts)


def ratio(numerator: Tensor, denominator: Tensor, *, smooth: float, eps: float) -> Tensor:
    """(numerator + smooth) / (denominator + smooth); 0/0 (nothing anywhere) counts as 1.

    The denominator is floored at eps; the unselected branch stays finite so the selected
    branch's gradient is never NaN.
    """
    den = denominator + smooth
    nothing = den <= 0
    safe = torch.where(nothing, torch.ones_like(den), den).clamp_min(eps)
    return torch.where(nothing, torch.ones_like(den), (numerator + smooth) / safe)


def finish(
    fn: str,
    loss: Tensor,
    stats: Stats,
    *,
    empty: str,
    class_weight: Optional[Tensor],
    num_classes: int,
    selected: Optional[Tensor],
    aggregate: str,
    sample_weight: Optional[Tensor],
    reduction: str,
    out_dtype: torch.dtype,
    validate: bool,
    sync: str = "local",
) -> Tensor:
    """Average a per (unit, class) loss over classes, then reduce over units.

    ``class_weight`` (C,) weights classes in the average (the selected ones). ``none`` returns
    per-image losses (B,) for ``aggregate="image"`` and a 0-d tensor for ``"batch"``.
    """
    weights = torch.ones(loss.shape[1], dtype=loss.dtype, device=loss.device)
    if class_weight is not None:
        w = as_class_weight(fn, "class_weight", class_weight, num_classes, loss, validate=validate)
        w = class_weight.new_ones(num_classes) if w is None else w.to(loss.dtype)
        weights = w if selected is None else w.index_select(0, selected)
    keep = weights.expand_as(loss)
    if empty == "skip":
        keep = torch.where(stats.empty, torch.zeros_like(keep), keep)
    elif empty == "zero":
        loss = torch.where(stats.empty, torch.zeros_like(loss), loss)
    total_w = keep.sum(1)
    per_unit = (loss * keep).sum(1) / total_w.clamp_min(torch.finfo(loss.dtype).tiny)
    return reduce_units(
        per_unit,
        total_w > 0,
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=out_dtype,
        sync=sync,
    )


def reduce_units(
    per_unit: Tensor,
    counted: Tensor,
    *,
    aggregate: str,
    sample_weight: Optional[Tensor],
    reduction: str,
    out_dtype: torch.dtype,
    sync: str = "local",
) -> Tensor:
    """Reduce (U,) unit losses; ``counted`` (U,) marks the units that count in the mean.

    "batch": the single value (0-d) for every reduction (its sample weights are pixel weights).
    "image": ``none`` gives ``loss * sample_weight`` (B,), ``sum`` its sum, ``mean`` its sum over
    the weights of the counted images (0 with zero gradient when none counts).
    """
    per_unit = torch.where(counted, per_unit, torch.zeros_like(per_unit))
    if aggregate == "batch":
        return per_unit[0].to(out_dtype)
    weights = counted.to(per_unit.dtype)
    if sample_weight is not None:
        sw = sample_weight.to(per_unit.dtype)
        per_unit = per_unit * sw
        weights = weights * sw
    if reduction == "none":
        return per_unit.to(out_dtype)
    # sync="global": the images' total and weight over every process (one collective), so
    # the mean is the one of the global batch; "batch" units are global already.
    total, weight = sync_sum(torch.stack([per_unit.sum(), weights.sum()]), sync).unbind(0)
    if reduction == "sum":
        return total.to(out_dtype)
    return (total / weight.clamp_min(torch.finfo(total.dtype).tiny)).to(out_dtype)
