"""Boundary loss (Kervadec et al.): probabilities times the target's signed distance map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from torch import Tensor

from losslab._reduce import output_dtype
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.segmentation.distance import (
    _check_dt_options,
    _finish_dt,
    _maps,
    _prepare_dt,
    dt_options,
)

__all__ = ["BoundaryLoss", "boundary_loss"]


def boundary_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    activation: Optional[str] = "auto",
    ignore_index: Optional[int] = None,
    classes: Optional[Sequence[int]] = None,
    include_background: bool = True,
    aggregate: str = "image",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Boundary loss: the mean over pixels of each class probability times the signed
    distance map of that class in the target, averaged over the selected classes.

    .. math:: \ell_{b} = \frac{1}{|K|} \sum_{c \in K} \frac{1}{|\Omega_b|}
              \sum_{x \in \Omega_b} p_{b,c}(x) \, \phi_{b,c}(x)

    with :math:`\phi_{b,c}` the :func:`~losslab.losses.segmentation.distance.signed_distance`
    of the target's class-:math:`c` mask in image :math:`b` (negative inside, positive
    outside; pixels just inside the contour get 0, just outside 1) and :math:`\Omega_b` the
    valid (not ignored) pixels. Distance maps are computed from the target, per image and in
    pixel units, under ``torch.no_grad``; the loss is linear in the probabilities.

    Empty and full masks: a class absent from an image (or covering all of its valid pixels)
    has no contour there; its map is 0 (the authors' code), so it contributes 0. The loss can
    be negative (its minimum is the sum of the negative :math:`\phi` values); the paper pairs it
    with a regional loss (generalized Dice) whose weight decreases during training. Ignored
    pixels contribute 0, do not count in the mean, and are neither inside nor outside when the
    distance maps are built. Dense targets are thresholded at 0.5 for the maps.

    The paper applies it to the foreground classes: in ``mode="multiclass"`` pass
    ``include_background=False`` to follow it (``True`` is the default so that the single
    channel of ``mode="binary"`` works).

    Args:
        logits: (B, C, H, W) or (B, C, D, H, W) raw scores (probabilities if
            ``activation=None``).
        target: class ids (B, *spatial) or dense (B, C, *spatial), as ``mode`` implies.
        mode: ``"binary" | "multiclass" | "multilabel"``.
        activation: ``"auto"`` (sigmoid, or softmax in multiclass), ``"sigmoid"``,
            ``"softmax"`` or ``None``.
        ignore_index: target value marking pixels that do not count.
        classes: class channels to average over (default all).
        include_background: keep channel 0 (must be True in binary mode).
        aggregate: ``"image"`` (per image, then averaged) or ``"batch"`` (one pixel mean over
            the batch per class).
        sample_weight: (B,) non-negative per-image weights.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` gives (B,) for ``aggregate="image"``
            (each image's loss times its weight) and a 0-d tensor for ``"batch"``. An image
            without valid pixels is left out of ``mean``; an all-ignored batch gives 0.

    Kervadec, Bouchtiba, Desrosiers, Granger, Dolz, Ben Ayed, "Boundary loss for highly
    unbalanced segmentation", MIDL 2019.

    >>> import torch
    >>> target = torch.zeros(1, 5, 5, dtype=torch.long)
    >>> target[0, 1:4, 1:4] = 1
    >>> logits = torch.full((1, 1, 5, 5), -2.0)
    >>> logits[0, 0, 2, 2] = 2.0
    >>> boundary_loss(logits, target)
    tensor(0.0490)
    """
    fn = "boundary_loss"
    opts = _check_dt_options(fn, **dt_options(locals(), "reduction"))
    prep, p, _, fg, valid = _prepare_dt(fn, logits, target, opts, sample_weight, validate)
    phi = _maps("signed", fg, valid, prep.spatial, p.dtype)
    return _finish_dt(
        p * phi,
        valid,
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=output_dtype(logits),
    )


@register
class BoundaryLoss(Loss):
    """Boundary loss (Kervadec et al.): probabilities times the target's signed distance map."""

    key = "boundary"
    family = "segmentation"
    input_kind = "logits"
    pointwise = False
    function = staticmethod(boundary_loss)

    def __init__(
        self,
        *,
        mode: str = "binary",
        activation: Optional[str] = "auto",
        ignore_index: Optional[int] = None,
        classes: Optional[Sequence[int]] = None,
        include_background: bool = True,
        aggregate: str = "image",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_dt_options("BoundaryLoss", **dt_options(locals(), "reduction"))
        self._store(**dt_options(locals(), "validate", "reduction"))
