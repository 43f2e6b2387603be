r"""Exact Euclidean distance transforms of 2-D and 3-D masks, batched on the tensor's device.

``distance_transform(mask)`` is the distance of every position to the nearest ``True``
position of its own image, as ``scipy.ndimage.distance_transform_edt(~mask)`` (scipy measures
the distance to the nearest *zero*). ``signed_distance(mask)`` is the level-set map of Kervadec
et al.'s boundary loss: negative inside, positive outside.

The squared transform is separable: starting from :math:`f = 0` on the mask and :math:`+\infty`
elsewhere, one min-plus pass per axis :math:`g(i) = \min_j f(j) + (i - j)^2` gives the exact
squared distance after the last axis. Each pass is a broadcast minimum over an axis line,
O(n^2) per line, taken in chunks of lines to bound memory; squared distances are integers,
exact in float32 up to :math:`2^{24}`. Nothing here is differentiable: distance maps are
targets, computed under ``torch.no_grad``.

This module also holds the private pipeline the distance-map losses share (``boundary``,
``hausdorff_dt``): class masks from the prepared target, and the reduction over pixels,
classes and images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor

from losslab._checks import (
    check_choice,
    check_reduction,
    check_sample_weight,
    check_tensor,
    fail,
    fmt,
)
from losslab.losses.segmentation._inputs import Prepared, check_common_options, prepare
from losslab.losses.segmentation._overlap import reduce_units

__all__ = ["distance_transform", "signed_distance"]

# Elements of one broadcast (lines x n x n) block of a min-plus pass: 2^24 float32 = 64 MiB.
_BLOCK = 1 << 24
_AGGREGATES = ("image", "batch")


def _check_mask(fn: str, mask: Any) -> Tensor:
    check_tensor(fn, "mask", mask)
    if mask.dtype != torch.bool:
        fail(
            fn,
            "mask",
            "be a boolean tensor",
            f"dtype {fmt(mask.dtype)}",
            kind=TypeError,
            raw_got=True,
            hint="Build it with a comparison, e.g. `target == 1`.",
        )
    if mask.dim() not in (3, 4):
        fail(
            fn,
            "mask",
            "have shape (B, H, W) or (B, D, H, W) (2 or 3 spatial dimensions)",
            tuple(mask.shape),
            raw_got=True,
        )
    return mask


def _squared_edt(mask: Tensor) -> Tensor:
    """Squared distance to the nearest True per image (dims 1..): float32, +inf where none."""
    with torch.no_grad():
        f = torch.full(mask.shape, math.inf, dtype=torch.float32, device=mask.device)
        f = f.masked_fill(mask, 0.0)
        for axis in range(1, mask.dim()):
            n = f.shape[axis]
            moved = f.movedim(axis, -1)
            lines = moved.reshape(-1, n)
            idx = torch.arange(n, dtype=torch.float32, device=mask.device)
            offsets = (idx.unsqueeze(1) - idx.unsqueeze(0)).square()  # (i, j) -> (i - j)^2
            # inf + finite stays inf (never inf - inf): no NaN can appear here.
            step = max(1, _BLOCK // (n * n))
            if lines.shape[0] <= step:
                out = (lines.unsqueeze(1) + offsets).amin(-1)
            else:
                out = torch.cat(
                    [(part.unsqueeze(1) + offsets).amin(-1) for part in lines.split(step)]
                )
            f = out.reshape(moved.shape).movedim(-1, axis)
        return f


def _diagonal(spatial: Sequence[int]) -> float:
    return math.sqrt(sum(float(n) * float(n) for n in spatial))


def _edt(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Distance to the nearest True; the grid diagonal where an image has none."""
    sq = _squared_edt(mask)
    far = _diagonal(mask.shape[1:])
    sq = torch.where(torch.isinf(sq), sq.new_full((), far * far), sq)
    return sq.to(dtype).sqrt()


def distance_transform(mask: Tensor, *, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Exact Euclidean distance of every position to the nearest ``True`` position.

    .. math:: d(x) = \min_{y:\ \text{mask}(y)} \lVert x - y \rVert_2

    per image, in pixel units; ``True`` positions get 0. An image with no ``True`` at all gets
    the length of its grid's diagonal :math:`\sqrt{\sum_k n_k^2}` everywhere (larger than any
    real distance, and finite so nothing downstream becomes NaN). Equal to
    ``scipy.ndimage.distance_transform_edt(~mask[b])`` per image. Not differentiable (runs under
    ``torch.no_grad``).

    Args:
        mask: boolean (B, H, W) or (B, D, H, W).
        dtype: floating dtype of the result (squared distances are exact integers; the square
            root is taken in this dtype).

    Returns:
        Distances of ``mask``'s shape.

    >>> m = torch.zeros(1, 3, 4, dtype=torch.bool)
    >>> m[0, 0, 0] = True
    >>> distance_transform(m)
    tensor([[[0.0000, 1.0000, 2.0000, 3.0000],
             [1.0000, 1.4142, 2.2361, 3.1623],
             [2.0000, 2.2361, 2.8284, 3.6056]]])
    """
    fn = "distance_transform"
    _check_mask(fn, mask)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        fail(fn, "dtype", "be a floating torch.dtype", dtype, kind=TypeError)
    return _edt(mask, dtype)


def _signed(fg: Tensor, bg: Tensor, dtype: torch.dtype) -> Tensor:
    """Kervadec's signed map with positions that are neither fg nor bg (ignored) set to 0.

    phi = d(., fg) outside, -(d(., bg) - 1) inside; 0 in an image with no boundary (no fg or
    no bg), as in the authors' code for absent classes.
    """
    to_fg, to_bg = _edt(torch.cat([fg, bg]), dtype).chunk(2)  # one batched pass for both
    zero = to_fg.new_zeros(())
    phi = torch.where(fg, 1.0 - to_bg, torch.where(bg, to_fg, zero))
    return torch.where(_has_boundary(fg, bg), phi, zero)


def _unsigned(fg: Tensor, bg: Tensor, dtype: torch.dtype) -> Tensor:
    """Distance to the other side of the boundary (d(., bg) inside, d(., fg) outside); 0 when
    an image has no boundary (no fg or no bg) and at positions that are neither."""
    to_fg, to_bg = _edt(torch.cat([fg, bg]), dtype).chunk(2)  # one batched pass for both
    zero = to_fg.new_zeros(())
    d = torch.where(fg, to_bg, torch.where(bg, to_fg, zero))
    return torch.where(_has_boundary(fg, bg), d, zero)


def _has_boundary(fg: Tensor, bg: Tensor) -> Tensor:
    dims = tuple(range(1, fg.dim()))
    shape = (fg.shape[0],) + (1,) * (fg.dim() - 1)
    return (fg.any(dim=dims) & bg.any(dim=dims)).reshape(shape)


def signed_distance(mask: Tensor, *, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Signed distance map of Kervadec et al. (boundary loss): negative inside, positive outside.

    .. math:: \phi = d(\cdot, \text{mask}) \, (1 - \text{mask}) - (d(\cdot, \lnot\text{mask}) - 1) \, \text{mask}

    with :math:`d(\cdot, S)` the :func:`distance_transform` to the set :math:`S`. This is the
    convention of the authors' code (``one_hot2dist``): pixels just outside the contour get 1,
    pixels just inside get 0, deeper pixels negative values. An image whose mask is empty or
    full has no contour: its map is 0 everywhere (the authors' code gives 0 for an absent
    class), so a boundary loss built on it is 0 there.

    Kervadec, Bouchtiba, Desrosiers, Granger, Dolz, Ben Ayed, "Boundary loss for highly
    unbalanced segmentation", MIDL 2019.

    Args:
        mask: boolean (B, H, W) or (B, D, H, W).
        dtype: floating dtype of the result.

    >>> m = torch.zeros(1, 1, 6, dtype=torch.bool)
    >>> m[0, 0, 1:4] = True
    >>> signed_distance(m)
    tensor([[[ 1.,  0., -1.,  0.,  1.,  2.]]])
    """
    fn = "signed_distance"
    _check_mask(fn, mask)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        fail(fn, "dtype", "be a floating torch.dtype", dtype, kind=TypeError)
    return _signed(mask, ~mask, dtype)


# ---------------------------------------------------------------------------- loss pipeline
DT_OPTIONS = ("mode", "activation", "ignore_index", "classes", "include_background", "aggregate")


def dt_options(namespace: dict[str, Any], *extra: str) -> dict[str, Any]:
    """The shared options of the distance-map losses out of a caller's ``locals()``, in order."""
    return {name: namespace[name] for name in (*DT_OPTIONS, *extra)}


def _check_dt_options(
    fn: str,
    *,
    mode: str,
    activation: Optional[str],
    ignore_index: Optional[int],
    classes: Optional[Sequence[int]],
    include_background: bool,
    aggregate: str,
    reduction: str,
) -> dict[str, Any]:
    """The options the distance-map losses share (function and constructor)."""
    mode, activation, ignore_index, classes_t = check_common_options(
        fn,
        mode=mode,
        activation=activation,
        ignore_index=ignore_index,
        classes=classes,
        include_background=include_background,
    )
    check_choice(fn, "aggregate", aggregate, _AGGREGATES)
    check_reduction(fn, reduction)
    return dict(
        mode=mode,
        activation=activation,
        ignore_index=ignore_index,
        classes=classes_t,
        include_background=include_background,
    )


def _prepare_dt(
    fn: str,
    logits: Tensor,
    target: Tensor,
    opts: dict[str, Any],
    sample_weight: Optional[Tensor],
    validate: bool,
) -> tuple[Prepared, Tensor, Tensor, Tensor, Tensor]:
    """prepare() plus what the distance-map losses need, over the selected classes.

    Returns ``(prep, p, t, fg, valid)``, each (B, C', N): probabilities, float targets, the
    target masks (targets > 0.5 for dense targets) and the valid positions. Ignored positions
    are in neither the class mask nor its complement.
    """
    prep = prepare(fn, logits, target, validate=validate, **opts)
    if len(prep.spatial) not in (2, 3):
        fail(
            fn,
            "logits",
            "have 2 or 3 spatial dimensions: (B, C, H, W) or (B, C, D, H, W)",
            tuple(logits.shape),
            raw_got=True,
        )
    if sample_weight is not None:
        check_sample_weight(fn, sample_weight, prep.batch, prep.probs, validate=validate)
    p = prep.probs
    batch, channels, n = p.shape
    sel = prep.selected
    if sel is not None:
        p = p.index_select(1, sel)
    if prep.ids is not None:
        chosen = sel if sel is not None else torch.arange(channels, device=p.device)
        fg = prep.ids.unsqueeze(1) == chosen.view(1, -1, 1)
        t = fg.to(p.dtype)
    else:
        if prep.dense is None:  # pragma: no cover - prepare() always sets ids or dense
            raise AssertionError("prepare() returned no target")
        t = prep.dense if sel is None else prep.dense.index_select(1, sel)
        fg = t > 0.5
    valid = prep.valid
    if valid is None:
        valid = torch.ones((batch, 1, n), dtype=torch.bool, device=p.device)
    elif valid.shape[1] != 1 and sel is not None:
        valid = valid.index_select(1, sel)
    valid = valid.expand(p.shape)
    return prep, p, t, fg & valid, valid


def _maps(
    kind: str, fg: Tensor, valid: Tensor, spatial: tuple[int, ...], dtype: torch.dtype
) -> Tensor:
    """Per (image, class) distance maps of the masks ``fg`` (B, C', N) among ``valid``."""
    b, c, n = fg.shape
    shape = (b * c, *spatial)
    inside = fg.reshape(shape)
    outside = (valid & ~fg).reshape(shape)
    out = _signed(inside, outside, dtype) if kind == "signed" else _unsigned(inside, outside, dtype)
    return out.reshape(b, c, n)


def _finish_dt(
    elementwise: Tensor,
    valid: Tensor,
    *,
    aggregate: str,
    sample_weight: Optional[Tensor],
    reduction: str,
    out_dtype: torch.dtype,
) -> Tensor:
    """Mean over valid pixels per (unit, class), mean over classes, then over units.

    A (unit, class) without valid pixels is left out of the class mean, a unit without any out
    of the image mean; nothing valid anywhere gives 0 with zero gradient. ``none`` returns
    ``sample_weight[b] * loss[b]`` (B,) for ``"image"`` and the 0-d loss for ``"batch"``.
    """
    # torch.where, not a product: a masked position never leaks into the sum or its gradient.
    elementwise = torch.where(valid, elementwise, elementwise.new_zeros(()))
    num = elementwise.sum(-1)  # (B, C')
    den = valid.sum(-1).to(num.dtype)
    if aggregate == "batch":
        if sample_weight is not None:
            sw = sample_weight.to(num.dtype).unsqueeze(1)
            num, den = num * sw, den * sw
        num, den = num.sum(0, keepdim=True), den.sum(0, keepdim=True)
    tiny = torch.finfo(num.dtype).tiny
    has = den > 0
    per_class = torch.where(has, num / den.clamp_min(tiny), num.new_zeros(()))
    n_classes = has.sum(1).to(num.dtype)
    per_unit = per_class.sum(1) / n_classes.clamp_min(1.0)
    return reduce_units(
        per_unit,
        n_classes > 0,
        aggregate=aggregate,
        sample_weight=sample_weight,
        reduction=reduction,
        out_dtype=out_dtype,
    )
