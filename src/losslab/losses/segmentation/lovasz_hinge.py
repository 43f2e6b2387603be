"""Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss for binary segmentation, from logits.

This file also holds the Lovasz machinery that ``lovasz_softmax.py`` shares: the increments
of the Jaccard loss along a sorted order (:func:`lovasz_increments`), the batched sort
(:func:`lovasz_extension`); units are reduced by ``_overlap.reduce_units``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import (
    check_choice,
    check_reduction,
    check_sample_weight,
    fail,
    is_compiling,
)
from losslab._reduce import output_dtype
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.segmentation._inputs import check_common_options, prepare
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


def lovasz_increments(gt: Tensor, w: Tensor) -> Tensor:
    r"""Increments :math:`J(S_i) - J(S_{i-1})` of the (weighted) Jaccard loss along the last dim.

    ``gt`` (0/1) and ``w`` (>= 0 pixel weights; 0 for ignored pixels) are already sorted by
    decreasing error; :math:`S_i` is the set of the first ``i`` pixels. With
    :math:`G = \sum_j w_j g_j`, the union :math:`a_i = G + \sum_{j \le i} w_j (1 - g_j)`, the
    mass :math:`W_i = \sum_{j \le i} w_j` and the remaining intersection
    :math:`I_{i-1} = \sum_{j \ge i} w_j g_j`, the Jaccard loss is :math:`J(S_i) = W_i / a_i`
    (:math:`J(\emptyset) = 0`) and its increment is, in closed form,

    .. math:: \Delta_i = \frac{w_i}{a_i} \cdot \frac{I_{i-1} + g_i W_{i-1}}{a_{i-1}}
              \quad (a_{i-1} > 0), \qquad \Delta_i = \frac{w_i}{a_i} \quad (a_{i-1} = 0).

    Numerics: the difference of two consecutive Jaccard values (Berman et al.'s code) loses
    all relative precision once the increments (~1/N) approach float32's epsilon; the closed
    form is a product of ratios, each with relative precision, and :math:`I` is a suffix sum
    (no ``G - cumsum`` cancellation). Pixels of weight 0 get increment 0 wherever they sort.
    """
    pos = w * gt
    neg = w - pos
    total_pos = pos.sum(-1, keepdim=True)
    union = total_pos + neg.cumsum(-1)  # a_i
    union_prev = (union - neg).clamp_min(0.0)  # a_{i-1}
    mass_prev = (w.cumsum(-1) - w).clamp_min(0.0)  # W_{i-1}
    inter_prev = pos.flip(-1).cumsum(-1).flip(-1)  # I_{i-1}: suffix sum from i
    started = union_prev > 0
    # Double where: the unselected branches divide by 1, never by 0.
    safe_union = torch.where(union > 0, union, torch.ones_like(union))
    safe_prev = torch.where(started, union_prev, torch.ones_like(union_prev))
    first = w / safe_union
    later = first * ((inter_prev + gt * mass_prev) / safe_prev)
    return torch.where(started, later, torch.where(union > 0, first, torch.zeros_like(first)))


def lovasz_extension(errors: Tensor, gt: Tensor, w: Tensor, *, hinge: bool) -> Tensor:
    """Lovasz extension of the Jaccard loss at ``errors`` (relu'd when ``hinge``), per leading index.

    ``errors``, ``gt``, ``w``: (U, K, M). One batched sort of the whole (U, K, M) tensor; the
    increments depend on the labels only, so they carry no gradient. Pixels of weight 0 sort
    last (key -inf) and their errors are replaced by 0, so they get neither value nor gradient.
    """
    counted = w > 0
    with torch.no_grad():
        key = torch.where(counted, errors, torch.full_like(errors, float("-inf")))
        order = torch.sort(key, dim=-1, descending=True, stable=True).indices
        increments = lovasz_increments(gt.gather(-1, order), w.gather(-1, order))
    value = torch.where(counted, errors, torch.zeros_like(errors))
    if hinge:
        value = torch.relu(value)
    return (value.gather(-1, order) * increments).sum(-1)


def to_units(x: Tensor, aggregate: str) -> Tensor:
    """(B, K, N) -> (U, K, M): per image (U = B), or the batch pooled into one unit."""
    if aggregate == "image":
        return x
    return x.transpose(0, 1).reshape(1, x.shape[1], -1)


def pixel_weights(
    valid: Optional[Tensor], like: Tensor, sample_weight: Optional[Tensor], aggregate: str
) -> Tensor:
    """(B, K, N) pixel weights: 0 where ignored; in "batch" each image's pixels carry its weight
    (an integer weight k is the image repeated k times)."""
    w = torch.ones_like(like) if valid is None else valid.to(like.dtype).expand_as(like)
    if sample_weight is not None and aggregate == "batch":
        w = w * sample_weight.to(like.dtype).reshape(-1, 1, 1)
    return w


# ---------------------------------------------------------------------------- the hinge
def _check_options(fn: str, ignore_index: Optional[int], aggregate: str, reduction: str) -> None:
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
    check_reduction(fn, reduction)


def lovasz_hinge_loss(
    logits: Tensor,
    target: Tensor,
    *,
    ignore_index: Optional[int] = None,
    aggregate: str = "image",
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

    The sort is one batched ``torch.sort`` over (units, pixels); the increments come from
    cumulative sums over all units at once (see :func:`lovasz_increments`).

    Args:
        logits: (B, 1, *spatial) raw scores, 1-3 spatial dims.
        target: (B, 1, *spatial) floating hard labels in {0, 1} (soft values are refused), or
            (B, *spatial) integer ids in {0, 1}.
        ignore_index: target value of pixels that do not count (255 works).
        aggregate: ``"image"`` (a loss per image, then averaged) or ``"batch"`` (all pixels of
            the batch as one set).
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
    _check_options(fn, ignore_index, aggregate, reduction)
    # activation="sigmoid" only so that prepare() does not range-check raw logits; the hinge
    # works on the logits themselves.
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
    x, t = prep.logits, prep.dense
    errors = 1.0 - x * (2.0 * t - 1.0)
    w = pixel_weights(prep.valid, errors, sample_weight, aggregate)
    per_unit = lovasz_extension(
        to_units(errors, aggregate), to_units(t, aggregate), to_units(w, aggregate), hinge=True
    ).squeeze(1)
    return reduce_units(
        per_unit,
        torch.ones_like(per_unit, dtype=torch.bool),
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=output_dtype(logits),
    )


@register
class LovaszHingeLoss(Loss):
    """Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss for binary segmentation, from logits."""

    key = "lovasz_hinge"
    family = "segmentation"
    input_kind = "logits"
    pointwise = False
    function = staticmethod(lovasz_hinge_loss)

    def __init__(
        self,
        *,
        ignore_index: Optional[int] = None,
        aggregate: str = "image",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("LovaszHingeLoss", ignore_index, aggregate, reduction)
        self._store(
            ignore_index=ignore_index, aggregate=aggregate, validate=validate, reduction=reduction
        )
