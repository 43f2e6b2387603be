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

    The sort, the increments and the gradient are ``losslab._autograd.lovasz``: integer
    radix sorts on CPU, closed-form increments, an analytic backward (three elementwise
    passes; the forward saves one float per pixel).

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
    per_unit, _ = lovasz_per_class(
        "hinge",
        prep.logits,
        target=prep.dense,
        valid=prep.valid,
        pixel_weight=sample_weight if aggregate == "batch" else None,
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
