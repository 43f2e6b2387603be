"""Hausdorff DT loss (Karimi & Salcudean): squared errors weighted by boundary distances."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor

from losslab._checks import check_float
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

__all__ = ["HausdorffDTLoss", "hausdorff_dt_loss"]

# Distances reach the grid diagonal (~222 for 128^3); 222^8 * 2 ~ 1e19 keeps every term and a
# sum over millions of pixels far inside float32's range (3.4e38).
_MAX_ALPHA = 8.0


def _check_options(fn: str, *, alpha: float, **options: Any) -> tuple[dict[str, Any], float]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    opts = _check_dt_options(fn, **options)
    alpha = check_float(fn, "alpha", alpha, low=0.0, low_open=True, high=_MAX_ALPHA)
    return opts, alpha


def hausdorff_dt_loss(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "binary",
    activation: Optional[str] = "auto",
    ignore_index: Optional[int] = None,
    classes: Optional[Sequence[int]] = None,
    include_background: bool = True,
    aggregate: str = "image",
    alpha: float = 2.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Hausdorff distance-transform loss: squared errors weighted by the distances of each
    pixel to the target's and the prediction's boundaries.

    .. math:: \ell_{b} = \frac{1}{|K|} \sum_{c \in K} \frac{1}{|\Omega_b|}
              \sum_{x \in \Omega_b} (p_{b,c}(x) - t_{b,c}(x))^2
              \left(d_{t}(x)^{\alpha} + d_{p}(x)^{\alpha}\right)

    :math:`d_t` is the distance map of the target's class-:math:`c` mask and :math:`d_p` that
    of the thresholded prediction :math:`p > 0.5`: the unsigned distance of each pixel to the
    mask's boundary, measured (as in the paper's reference implementations) as the distance to
    the nearest background pixel for pixels inside and to the nearest foreground pixel for
    pixels outside. Both are computed under ``torch.no_grad`` (the prediction's map is a
    piecewise-constant weight); the gradient flows through :math:`(p - t)^2`.

    Empty and full masks: a mask with no boundary in an image (empty, or covering all valid
    pixels) has distance map 0 there, so an empty target met by an empty prediction costs 0
    and false positives on an empty target are weighted by :math:`d_p` alone. Ignored pixels
    contribute 0, do not count in the mean, and are neither inside nor outside when the maps are
    built. Dense targets enter :math:`(p - t)^2` as they are and are thresholded at 0.5 for
    :math:`d_t`.

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
        alpha: exponent of the distances, in (0, 8] (the paper uses 2).
        sample_weight: (B,) non-negative per-image weights.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` gives (B,) for ``aggregate="image"``
            (each image's loss times its weight) and a 0-d tensor for ``"batch"``. An image
            without valid pixels is left out of ``mean``; an all-ignored batch gives 0.

    Karimi, Salcudean, "Reducing the Hausdorff Distance in Medical Image Segmentation with
    Convolutional Neural Networks", IEEE TMI 2020 (the distance-transform loss, HD_DT).

    >>> import torch
    >>> target = torch.zeros(1, 5, 5, dtype=torch.long)
    >>> target[0, 1:4, 1:4] = 1
    >>> logits = torch.full((1, 1, 5, 5), -2.0)
    >>> logits[0, 0, 2, 2] = 2.0
    >>> hausdorff_dt_loss(logits, target)
    tensor(0.6849)
    """
    fn = "hausdorff_dt_loss"
    opts, alpha = _check_options(fn, **dt_options(locals(), "alpha", "reduction"))
    prep, p, t, fg, valid = _prepare_dt(fn, logits, target, opts, sample_weight, validate)
    with torch.no_grad():
        d_t = _maps("unsigned", fg, valid, prep.spatial, p.dtype)
        d_p = _maps("unsigned", (p > 0.5) & valid, valid, prep.spatial, p.dtype)
        weight = d_t.pow(alpha) + d_p.pow(alpha)
    diff = p - t
    return _finish_dt(
        diff * diff * weight,
        valid,
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=output_dtype(logits),
    )


@register
class HausdorffDTLoss(Loss):
    """Hausdorff DT loss (Karimi & Salcudean): squared errors weighted by boundary distances."""

    key = "hausdorff_dt"
    family = "segmentation"
    input_kind = "logits"
    pointwise = False
    function = staticmethod(hausdorff_dt_loss)

    def __init__(
        self,
        *,
        mode: str = "binary",
        activation: Optional[str] = "auto",
        ignore_index: Optional[int] = None,
        classes: Optional[Sequence[int]] = None,
        include_background: bool = True,
        aggregate: str = "image",
        alpha: float = 2.0,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("HausdorffDTLoss", **dt_options(locals(), "alpha", "reduction"))
        self._store(**dt_options(locals(), "alpha", "validate", "reduction"))
