r"""Lovasz hinge and Lovasz-softmax per (unit, class), with an analytic backward pass.

**Forward.** A *row* is one (unit, class) pair: a unit is an image (``aggregate="image"``)
or the whole batch (``"batch"``), and its row holds the unit's :math:`M` pixels. Per row,
with errors :math:`e_j \ge 0`, labels :math:`g_j` and pixel weights :math:`w_j`, the errors
are sorted decreasingly (:math:`\pi`) and

.. math::

    \ell = \sum_i e_{\pi_i}\,\Delta_i, \qquad
    \Delta_i = J(\{\pi_1..\pi_i\}) - J(\{\pi_1..\pi_{i-1}\}), \qquad
    J(S) = \frac{|S|_w}{G + |S \setminus y|_w}

(the Jaccard loss of the mispredicted set :math:`S`, :math:`G = \sum_j w_j g_j`). The errors
are :math:`|t - p|` for the Lovasz-softmax (class ids: :math:`1 - p` on the class's pixels,
:math:`p` elsewhere) and :math:`\max(1 - x (2t - 1), 0)` for the hinge.

With unit weights (the usual case: ignored pixels are sorted last and weigh 0) the
increments are closed forms in the cumulative label count :math:`C_i = \sum_{j \le i} g_{\pi_j}`
and the union :math:`a_i = G + i - C_i`:

.. math::

    \Delta_i = \frac{G - C_i + g_{\pi_i}\, i}{a_i\,(a_i - 1 + g_{\pi_i})}
    \quad\Bigl(= \tfrac{1}{a_i} \text{ on a label, } \tfrac{G - C_i}{a_i (a_i - 1)}
    \text{ off it}\Bigr),

and :math:`\Delta_1 = 1` when :math:`G = 0` (the 0/0 there). Every count is an exact integer
in floating point (below :math:`2^{24}` pixels per row in float32), so each increment keeps
full relative precision (the paper's difference of consecutive Jaccard values loses every
digit once the increments, ~1/M, approach the epsilon). Rows with per-pixel weights (batch
sample weights) use :func:`lovasz_increments`, the weighted closed form with suffix sums.

**Backward.** The sort is locally constant, so :math:`\ell` is linear in the errors with
:math:`\partial\ell/\partial e_{\pi_i} = \Delta_i`: the increments scattered back through the
permutation. Then :math:`\partial e/\partial p = \pm 1` (class ids: :math:`-1` on the class's
pixels, :math:`+1` elsewhere; dense targets: :math:`\operatorname{sgn}(p - t)`, 0 where they
are equal, as autograd of ``abs`` gives), :math:`\partial e/\partial t = -\partial e/\partial p`,
and for the hinge :math:`\partial e/\partial x = 1 - 2t`, :math:`\partial e/\partial t = -2x`
where :math:`e > 0` (0 elsewhere, as autograd of ``relu``). Through the activation:
softmax :math:`p \odot (g - \sum_c p_c g_c)`, sigmoid :math:`g\,p(1 - p)`. The forward
saves one float per (row, pixel), :math:`\Delta` times the sign, already scattered to pixel
order (plus the probabilities the activation's backward needs, and the target for dense
targets); the backward is three elementwise passes, no sort and no gather.

**Sorting.** Ties keep pixel order (a stable descending sort), as the plain formula did; the
value does not depend on the order of ties, the gradient does (a different subgradient). On
CPU a float32 error :math:`e \ge 0` is sorted by the integer key ``~bits(e)`` (the bit
pattern of a non-negative float is monotone in its value, so ascending keys are descending
errors); ignored pixels get the largest key and sort last. torch sorts a 1-D integer CPU
tensor of at least 32768 elements with fbgemm's radix sort (stable, parallel), 5-10x
faster than its comparison sort of floats with indices. Rows that long are sorted one at a
time and their errors decoded from the sorted keys. Shorter rows share one 1-D sort with
the row's index above the key: groups of four rows as int32 when the errors lie in [0, 1]
(the 30-bit key ``0x3F800000 - bits`` leaves two bits; the errors are then gathered), else
all rows of a block as int64. Elsewhere (CUDA, float64) one batched
``torch.sort(stable=True)`` of the floats gives the same permutation. The pipeline runs over
blocks of about :math:`2^{17}` pixels (whole images, or whole classes of the batch) whose
temporaries live in one set of reused buffers: they are block-sized, and the page faults of
fresh memory are paid once per call, not once per block. While ``torch.compile`` traces,
the same steps run out of place (``out=`` through transposed views does not survive
functionalization); Inductor keeps the sorts as calls to the same radix sort.

The target's gradient is the one autograd of the plain formula gives (the errors' term: the
increments are constants of the labels there as here); so is the batch sample weights'
(none: they only enter the increments).

``supports_double_backward = False``: the backward is ``once_differentiable``; for
Hessian-vector products use plain autograd of the formula (the sort's permutation is then a
constant, exactly as here).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from losslab._checks import is_compiling

__all__ = ["LovaszFunction", "lovasz_increments", "lovasz_per_class"]

_BLOCK = 1 << 17  # pixels per block of rows
# torch sorts a 1-D integer CPU tensor with fbgemm's radix sort from at::internal::GRAIN_SIZE.
_RADIX_MIN = 32768
_LAST = 0x7FFFFFFF  # key of an ignored pixel: after every ~bits(e) (all negative)


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


def _unit_increments(
    g: Tensor, valid_count: Optional[Tensor], ws: _Workspace
) -> tuple[Tensor, Tensor]:
    """(increments, G) of rows (rows, M) of sorted labels with unit weights (module docstring).

    ``valid_count`` (rows, 1): the first ``valid_count`` pixels of a row count, the rest
    (ignored, sorted last, label 0) get increment 0. The increments are returned in the
    workspace's ``"count"`` buffer; its ``"union"`` buffer is spent.
    """
    rows, m = g.shape
    count = torch.cumsum(g, -1, out=ws.get("count", rows, m))  # C_i
    total = count[:, -1:].clone()  # G
    ranks = ws.get("union", rows, m)
    torch.arange(1, m + 1, dtype=g.dtype, device=g.device, out=ranks[0])
    ranks[1:] = ranks[0]
    tail = None
    if valid_count is not None:
        tail = torch.gt(ranks, valid_count, out=ws.get("mask", rows, m, torch.bool))
        torch.minimum(ranks, valid_count, out=ranks)  # i, counted pixels only
    # G - C_i + g_i i, exact integers for hard labels; in count's buffer.
    delta = count.neg_().add_(total).addcmul_(g, ranks)
    # The union a_i = G + i - C_i = (G - C_i + g_i i) + i (1 - g_i), in the ranks' buffer.
    union = ranks.addcmul_(g, ranks, value=-1.0).add_(delta)
    delta.div_(union)
    delta.div_(union.add_(g).sub_(1.0))  # a_{i-1} = a_i - (1 - g_i)
    # G == 0: the first counted pixel carries the whole jump of J from 0 to 1 (0/0 above).
    first = torch.ones_like(total) if valid_count is None else (valid_count > 0).to(g.dtype)
    delta[:, :1] = torch.where(total > 0, delta[:, :1], first)
    if tail is not None:
        delta.masked_fill_(tail, 0.0)  # the ignored tail (0/0 where a = 0)
    return delta, total.squeeze(1)


class _Workspace:
    """Block-sized buffers that every block reuses, by name.

    A fresh buffer costs its page faults on first touch (glibc returns large blocks to the
    system); one set per call is touched once, not once per block. ``fresh=True`` (CUDA,
    tracing) hands out new tensors instead.
    """

    def __init__(self, size: int, dtype: torch.dtype, device: torch.device, fresh: bool) -> None:
        self.size, self.dtype, self.device, self.fresh = size, dtype, device, fresh
        self.buffers: dict[tuple[str, torch.dtype], Tensor] = {}

    def get(self, name: str, rows: int, m: int, dtype: Optional[torch.dtype] = None) -> Tensor:
        dtype = self.dtype if dtype is None else dtype
        if self.fresh:
            return torch.empty(rows, m, dtype=dtype, device=self.device)
        buf = self.buffers.get((name, dtype))
        if buf is None:
            buf = torch.empty(self.size, dtype=dtype, device=self.device)
            self.buffers[(name, dtype)] = buf
        return buf[: rows * m].view(rows, m)


class _Rows:
    """Row r = u * K + k (unit u, class k) of M pixels; blocks of whole images or classes.

    The (B, C, N) inputs are read through views: ``take`` cuts a block (and the selected
    classes) out of an input, ``view`` shows a (rows, M) buffer as the block's (B', K', N).
    """

    def __init__(
        self, batch: int, classes: int, pixels: int, aggregate: str, selected: Optional[Tensor]
    ) -> None:
        self.B, self.K, self.N = batch, classes, pixels
        self.image = aggregate == "image"
        self.U, self.M = (batch, pixels) if self.image else (1, batch * pixels)
        self.R = self.U * classes
        self.selected = selected

    def blocks(self) -> Iterator[tuple[int, int, int, int]]:
        """(lo, hi, first row, end row): images [lo, hi) or classes [lo, hi)."""
        if self.image:
            step = max(1, _BLOCK // max(1, self.K * self.N))
            for lo in range(0, self.B, step):
                hi = min(self.B, lo + step)
                yield lo, hi, lo * self.K, hi * self.K
        else:
            step = max(1, _BLOCK // max(1, self.M))
            for lo in range(0, self.K, step):
                hi = min(self.K, lo + step)
                yield lo, hi, lo, hi

    def block_size(self) -> int:
        """Pixels of the largest block."""
        # default: no block at all for an empty batch (a rank's empty shard, sync="global")
        return max(((r1 - r0) * self.M for _, _, r0, r1 in self.blocks()), default=0)

    def take(self, t: Tensor, lo: int, hi: int) -> Tensor:
        """The block of a (B, C or 1, N) input, selected classes only; one channel broadcasts."""
        sel = self.selected
        if self.image:
            t = t[lo:hi]
            return t if sel is None or t.shape[1] == 1 else t.index_select(1, sel)
        if t.shape[1] == 1:
            return t
        return t[:, lo:hi] if sel is None else t.index_select(1, sel[lo:hi])

    def view(self, rows: Tensor, lo: int, hi: int) -> Tensor:
        """A (rows, M) buffer of the block as (B', K', N)."""
        if self.image:
            return rows.view(hi - lo, self.K, self.N)
        return rows.view(hi - lo, self.B, self.N).transpose(0, 1)

    def as_rows(self, t: Tensor, lo: int, hi: int) -> Tensor:
        """A block (B', K', N) as (rows, M) (a copy in batch mode unless K' == 1)."""
        if self.image:
            return t.reshape(-1, self.N)
        return t.transpose(0, 1).reshape(-1, self.M)

    def count(self, valid: Tensor, lo: int, hi: int, dtype: torch.dtype) -> Tensor:
        """(rows, 1) number of counted pixels per row of a block."""
        if self.image:
            counts = valid.sum(-1, dtype=dtype).expand(hi - lo, self.K)
        else:
            counts = valid.sum((0, 2), dtype=dtype).expand(hi - lo)
        return counts.reshape(-1, 1)

    def full(self, rows: Tensor) -> Tensor:
        """The (R, M) buffer as (B, K, N)."""
        return self.view(rows, 0, self.B if self.image else self.K)


def _sort_keys(
    keys: Tensor, ws: _Workspace, narrow: bool, in_place: bool
) -> tuple[Tensor, Optional[Tensor]]:
    """Stable ascending sort of each row of int32 keys: (permutation, bits).

    Rows of at least ``_RADIX_MIN`` keys are sorted one at a time. Shorter rows are sorted
    together, as one 1-D tensor in which a row's index sits above its keys: groups of four
    rows as int32 when the keys fit in 30 bits (``narrow``), else all rows as int64.
    ``bits``: the sorted errors' bits decoded from keys ``~bits(e)`` (the ignored pixels'
    key decodes to -0.0), or None for 30-bit keys. ``in_place``: sort in ``keys``' buffer
    and the workspace (eager), else out of place (traced).
    """
    rows, m = keys.shape
    device = keys.device
    if rows == 1 or m >= _RADIX_MIN:
        if in_place:
            perm = ws.get("perm", rows, m, torch.int64)
            for r in range(rows):
                torch.sort(keys[r], stable=True, out=(keys[r], perm[r]))
            return perm, keys.bitwise_not_()
        parts = [torch.sort(keys[r], stable=True) for r in range(rows)]
        perm = torch.stack([part.indices for part in parts])
        return perm, torch.bitwise_not(torch.stack([part.values for part in parts]))
    if narrow:
        # (r << 30) - 2^31 + key for the r-th row of a group: int32 without overflow.
        offsets = (torch.arange(4, dtype=torch.int64, device=device) << 30) - (1 << 31)
        offsets = offsets.to(torch.int32).view(4, 1)  # -2^31, -2^30, 0, 2^30
        base = torch.arange(4, dtype=torch.int64, device=device).view(4, 1) * m
        perms = []
        for g0 in range(0, rows, 4):
            g1 = min(rows, g0 + 4)
            if in_place:
                perm = ws.get("perm", rows, m, torch.int64)
                group = keys[g0:g1].add_(offsets[: g1 - g0]).view(-1)
                torch.sort(group, stable=True, out=(group, perm[g0:g1].view(-1)))
                perm[g0:g1].sub_(base[: g1 - g0])
            else:
                group = (keys[g0:g1] + offsets[: g1 - g0]).view(-1)
                order = torch.sort(group, stable=True).indices.view(g1 - g0, m)
                perms.append(order - base[: g1 - g0])
        return (perm if in_place else torch.cat(perms)), None
    base = torch.arange(rows, dtype=torch.int64, device=device).view(rows, 1)
    if in_place:
        wide = ws.get("wide", rows, m, torch.int64)
        wide.copy_(keys).add_(base << 32)
        perm = ws.get("perm", rows, m, torch.int64)
        torch.sort(wide.view(-1), stable=True, out=(wide.view(-1), perm.view(-1)))
        perm = perm.sub_(base * m)
    else:
        wide, flat_perm = torch.sort((keys.to(torch.int64) + (base << 32)).view(-1), stable=True)
        perm = flat_perm.view(rows, m) - base * m
    # The low word of (r << 32) + key is the key itself.
    low = wide.view(torch.int32).view(rows, m, 2)[..., 0 if sys.byteorder == "little" else 1]
    return perm, torch.bitwise_not(low, out=keys) if in_place else torch.bitwise_not(low)


def _sorted_errors(
    e: Tensor,
    invalid: Optional[Tensor],
    as_block: Callable[[Tensor], Tensor],
    int_keys: bool,
    in_place: bool,
    narrow: bool,
    ws: _Workspace,
) -> tuple[Tensor, Tensor]:
    """Rows of ``e`` (>= 0, (rows, M)) sorted decreasingly, stably, ignored pixels last as 0.

    ``invalid`` is the block's mask in the layout that ``as_block`` gives a (rows, M) buffer.
    ``int_keys``: sort float32 errors by integer keys (CPU); ``in_place``: in ``e``'s buffer
    and the workspace. ``narrow``: the errors lie in [0, 1] (NaN aside). Returns (sorted
    errors, permutation); ``e`` is 0 at ignored pixels afterwards, and its buffer may hold
    the sorted errors.
    """
    if invalid is not None:
        as_block(e).masked_fill_(invalid, 0.0)  # nothing of an ignored pixel (NaN, inf) counts
    if not int_keys:
        key = e
        if invalid is not None:
            key = e.clone()
            as_block(key).masked_fill_(invalid, -1.0)  # after every error
        perm = torch.sort(key, dim=-1, descending=True, stable=True).indices
        return torch.gather(e, 1, perm), perm
    # The bits of a float >= 0 are monotone in its value: ~bits ascending is e descending
    # (e is never -0.0 here: abs, or 1 - y, which rounds to +0.0). For e in [0, 1] the key
    # 0x3F800000 - bits fits in 30 bits, which lets short rows share int32 keys; the errors
    # are then gathered, else decoded from the sorted keys.
    rows, m = e.shape
    narrow = narrow and rows > 1 and m < _RADIX_MIN
    bits = e.view(torch.int32)
    if narrow:
        if in_place:
            keys = torch.bitwise_not(bits, out=ws.get("keys", rows, m, torch.int32))
        else:
            keys = torch.bitwise_not(bits)
        keys = keys.add_(0x3F800001).bitwise_and_(0x3FFFFFFF)  # the mask only matters for NaN
    else:
        keys = bits.bitwise_not_() if in_place else torch.bitwise_not(bits)
    if invalid is not None:
        as_block(keys).masked_fill_(invalid, 0x3FFFFFFF if narrow else _LAST)
    perm, sorted_bits = _sort_keys(keys, ws, narrow, in_place)
    if sorted_bits is not None:
        return sorted_bits.view(torch.float32), perm
    if in_place:
        return torch.gather(e, 1, perm, out=ws.get("e_sorted", rows, m)), perm
    return torch.gather(e, 1, perm), perm


def _block_in_place(
    kind: str,
    layout: _Rows,
    lo: int,
    hi: int,
    ws: _Workspace,
    x: Tensor,
    target: Optional[Tensor],
    probs: Optional[Tensor],
    ids: Optional[Tensor],
    valid: Optional[Tensor],
    invalid: Optional[Tensor],
    chans: Optional[Tensor],
    pixel_weight: Optional[Tensor],
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """A block's errors (rows, M), labels (rows, M), ignore mask and pixel weights.

    The errors are written through a (B', K', N) view of a workspace buffer; the ignore mask
    is in that layout. Errors are rounded as the formulas read (see the module docstring).
    """
    rows, m = (hi - lo) * (layout.K if layout.image else 1), layout.M
    e = ws.get("e", rows, m)
    view = layout.view(e, lo, hi)
    bad = None if invalid is None else layout.take(invalid, lo, hi)
    if kind == "ids":
        assert ids is not None and probs is not None and chans is not None
        labels = ws.get("labels", rows, m, torch.bool)
        labels_view = layout.view(labels, lo, hi)
        if layout.image:
            torch.eq(ids[lo:hi].unsqueeze(1), chans.view(1, -1, 1), out=labels_view)
        else:
            torch.eq(ids.reshape(1, -1), chans[lo:hi].view(-1, 1), out=labels)
        if valid is not None:
            labels_view &= layout.take(valid, lo, hi)
        # |1{class} - p|: one subtraction and abs, exact (1 - p on the class's pixels).
        torch.sub(layout.take(probs, lo, hi), labels_view.view(torch.uint8), out=view)
        e.abs_()
    else:
        assert target is not None
        t_blk = layout.take(target, lo, hi)
        if kind == "dense":
            assert probs is not None
            torch.sub(t_blk, layout.take(probs, lo, hi), out=view).abs_()
        else:  # hinge: max(1 - x (2t - 1), 0)
            torch.mul(t_blk, 2.0, out=view).sub_(1.0).mul_(layout.take(x, lo, hi))
            e.neg_().add_(1.0).clamp_min_(0.0)
        labels = layout.as_rows(t_blk, lo, hi)
    weights = None
    if pixel_weight is not None:
        weights = ws.get("weights", rows, m)
        w_view = layout.view(weights, lo, hi)
        w_view.copy_(pixel_weight.to(e.dtype).view(-1, 1, 1).expand_as(w_view))
        if bad is not None:
            w_view.masked_fill_(bad, 0.0)
        bad = w_view <= 0  # weight-0 images count nowhere: sorted last too
    return e, labels, bad, weights


def _block_plain(
    kind: str,
    layout: _Rows,
    lo: int,
    hi: int,
    x: Tensor,
    target: Optional[Tensor],
    probs: Optional[Tensor],
    ids: Optional[Tensor],
    valid: Optional[Tensor],
    invalid: Optional[Tensor],
    chans: Optional[Tensor],
    pixel_weight: Optional[Tensor],
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """:func:`_block_in_place` out of place, everything in the (rows, M) layout (for tracing:
    ``out=`` through transposed views does not survive functionalization)."""
    if kind == "ids":
        assert ids is not None and probs is not None and chans is not None
        if layout.image:
            fg = ids[lo:hi].unsqueeze(1) == chans.view(1, -1, 1)
        else:
            fg = ids.unsqueeze(1) == chans[lo:hi].view(1, -1, 1)
        if valid is not None:
            fg = fg & layout.take(valid, lo, hi)
        p_blk = layout.take(probs, lo, hi)
        e_blk = (p_blk - fg.to(p_blk.dtype)).abs()
        labels = layout.as_rows(fg, lo, hi)
    else:
        assert target is not None
        t_blk = layout.take(target, lo, hi)
        if kind == "dense":
            assert probs is not None
            e_blk = (t_blk - layout.take(probs, lo, hi)).abs()
        else:
            e_blk = ((t_blk * 2.0 - 1.0) * layout.take(x, lo, hi)).neg().add(1.0).clamp_min(0.0)
        labels = layout.as_rows(t_blk, lo, hi)
    bad = None
    if invalid is not None:
        bad = layout.as_rows(layout.take(invalid, lo, hi).expand(e_blk.shape), lo, hi)
    weights = None
    if pixel_weight is not None:
        w_blk = pixel_weight.to(e_blk.dtype).view(-1, 1, 1).expand(e_blk.shape)
        weights = layout.as_rows(w_blk, lo, hi)
        if bad is not None:
            weights = weights.masked_fill(bad, 0.0)
        bad = weights <= 0
    return layout.as_rows(e_blk, lo, hi).clone(), labels, bad, weights


class LovaszFunction(torch.autograd.Function):
    """Per (unit, class) Lovasz losses and their labels' mass; gradients for x and target.

    Inputs: ``x`` (B, C, N) logits (the hinge's scores, or what the activation was applied
    to), ``target`` (B, C, N) dense labels or None, ``probs`` (B, C, N) activated ``x``
    (detached; None for the hinge), ``ids`` (B, N) class ids or None, ``valid`` (B, 1 or C, N)
    or None, ``selected`` (K,) channels or None, ``pixel_weight`` (B,) or None (batch
    sample weights). Outputs: losses (U, K) and G (U, K), the labels' weighted mass (no
    gradient).
    """

    supports_double_backward = False

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        target: Optional[Tensor],
        probs: Optional[Tensor],
        ids: Optional[Tensor],
        valid: Optional[Tensor],
        selected: Optional[Tensor],
        pixel_weight: Optional[Tensor],
        kind: str,
        activation: Optional[str],
        aggregate: str,
        bounded: bool,
        need_x: bool,
        need_t: bool,
    ) -> tuple[Tensor, Tensor]:
        src = x if probs is None else probs
        batch, channels, pixels = src.shape
        k = channels if selected is None else selected.numel()
        layout = _Rows(batch, k, pixels, aggregate, selected)
        dtype, device = src.dtype, src.device
        # float32 on CPU: integer sort keys; eagerly, in reused buffers (module docstring).
        int_keys = dtype == torch.float32 and device.type == "cpu"
        fast = int_keys and not is_compiling()
        narrow = bounded and kind != "hinge"
        losses = torch.zeros(layout.R, dtype=dtype, device=device)
        mass = torch.zeros(layout.R, dtype=dtype, device=device)
        need_grad = need_x or need_t
        slope = torch.empty(layout.R, layout.M, dtype=dtype, device=device) if need_grad else None
        # The hinge's target gradient needs the unsigned slope too (-2x, not 1 - 2t, times it).
        slope_t = None
        if need_t and kind == "hinge":
            slope_t = torch.empty(layout.R, layout.M, dtype=dtype, device=device)
        invalid = None if valid is None else valid.logical_not()
        ws = _Workspace(layout.block_size(), dtype, device, fresh=not fast)
        chans = None
        if kind == "ids":
            chans = torch.arange(channels, device=device) if selected is None else selected
        for lo, hi, r0, r1 in layout.blocks() if layout.M > 0 else ():
            rows, m = r1 - r0, layout.M
            if fast:
                e, labels, bad, weights = _block_in_place(
                    kind,
                    layout,
                    lo,
                    hi,
                    ws,
                    x,
                    target,
                    probs,
                    ids,
                    valid,
                    invalid,
                    chans,
                    pixel_weight,
                )

                def as_block(t: Tensor, lo: int = lo, hi: int = hi) -> Tensor:
                    return layout.view(t, lo, hi)

            else:
                e, labels, bad, weights = _block_plain(
                    kind,
                    layout,
                    lo,
                    hi,
                    x,
                    target,
                    probs,
                    ids,
                    valid,
                    invalid,
                    chans,
                    pixel_weight,
                )

                def as_block(t: Tensor, lo: int = lo, hi: int = hi) -> Tensor:
                    return t

            e_sorted, perm = _sorted_errors(e, bad, as_block, int_keys, fast, narrow, ws)
            g = ws.get("g", rows, m)
            if labels.dtype == torch.bool:
                g.copy_(torch.gather(labels, 1, perm, out=ws.get("gathered", rows, m, torch.bool)))
            else:
                torch.gather(labels, 1, perm, out=g)
            if weights is not None:
                w_sorted = torch.gather(weights, 1, perm)
                delta = lovasz_increments(g, w_sorted)
                total = (g * w_sorted).sum(-1)
            else:
                count = None
                if valid is not None:
                    count = layout.count(layout.take(valid, lo, hi), lo, hi, dtype)
                delta, total = _unit_increments(g, count, ws)
            losses[r0:r1] = torch.mul(e_sorted, delta, out=ws.get("union", rows, m)).sum(-1)
            mass[r0:r1] = total
            if slope is None:
                continue
            if kind == "hinge":
                positive = torch.gt(e_sorted, 0.0, out=ws.get("mask", rows, m, torch.bool))
                delta.mul_(positive)  # relu's gradient: 0 where e <= 0
                if slope_t is not None:
                    slope_t[r0:r1].scatter_(1, perm, delta)
            if kind != "dense":  # de/dp = 1 - 2 * label (ids), de/dx = 1 - 2t (hinge)
                delta.addcmul_(g, delta, value=-2.0)
            slope[r0:r1].scatter_(1, perm, delta)

        ctx.dims = (batch, k, pixels, channels)
        ctx.kind, ctx.activation, ctx.aggregate = kind, activation, aggregate
        saved = [slope, slope_t, selected]
        saved.append(probs if kind != "hinge" and activation is not None and need_x else None)
        saved.append(probs if kind == "dense" else None)
        saved.append(target if kind == "dense" else None)
        saved.append(x if slope_t is not None else None)
        ctx.save_for_backward(*saved)
        ctx.mark_non_differentiable(mass)
        return losses.view(layout.U, k), mass.view(layout.U, k)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, _grad_mass: Tensor) -> tuple[Optional[Tensor], ...]:
        slope, slope_t, selected, act_probs, probs, target, x = ctx.saved_tensors
        batch, k, pixels, channels = ctx.dims
        layout = _Rows(batch, k, pixels, ctx.aggregate, selected)
        need_x, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        nones = (None,) * 11
        if slope is None:
            return (None, None, *nones)
        if layout.M == 0:  # no pixel at all (an empty batch): zero gradients, not undefined ones
            zero = slope.new_zeros((batch, channels, pixels))
            return (zero if need_x else None, zero if need_t else None, *nones)
        scale = grad.view(layout.U, k, 1)  # (B, K, 1) or (1, K, 1)
        per_pixel = layout.full(slope)  # (B, K, N) view of the pixel-order slopes
        if ctx.kind == "hinge":
            grad_x = torch.mul(per_pixel, scale) if need_x else None
            grad_t = None
            if need_t:
                grad_t = torch.mul(layout.full(slope_t), scale).mul_(x).mul_(-2.0)
            return (grad_x, grad_t, *nones)

        g = torch.empty((batch, channels, pixels), dtype=slope.dtype, device=slope.device)
        if selected is None:
            torch.mul(per_pixel, scale, out=g)
        else:  # unselected channels: no error, but softmax still couples them
            g.zero_().index_copy_(1, selected, per_pixel * scale)
        grad_t = None
        if ctx.kind == "dense":
            g.mul_(torch.sub(probs, target).sgn_())  # abs' gradient: 0 where p == t
            if need_t:
                grad_t = g.neg()
        if not need_x:
            return (None, grad_t, *nones)
        if ctx.activation == "softmax":
            # p (g - sum_c p_c g_c), the channel sum accumulated in one (B, 1, N) buffer.
            p = act_probs
            dot = g[:, :1] * p[:, :1]
            for c in range(1, channels):
                dot.addcmul_(g[:, c : c + 1], p[:, c : c + 1])
            g.sub_(dot).mul_(p)
        elif ctx.activation == "sigmoid":
            g.mul_(act_probs)
            g.addcmul_(g, act_probs, value=-1.0)  # g p (1 - p)
        return (g, grad_t, *nones)


def lovasz_per_class(
    kind: str,
    x: Tensor,
    *,
    target: Optional[Tensor] = None,
    probs: Optional[Tensor] = None,
    ids: Optional[Tensor] = None,
    valid: Optional[Tensor] = None,
    selected: Optional[Tensor] = None,
    pixel_weight: Optional[Tensor] = None,
    activation: Optional[str] = None,
    aggregate: str = "image",
    bounded: bool = False,
) -> tuple[Tensor, Tensor]:
    """Lovasz losses (U, K) per (unit, selected class) and the labels' mass G (U, K).

    ``kind``: ``"ids"`` (class ids, errors |1{class} - p|), ``"dense"`` (errors |t - p|) or
    ``"hinge"`` (errors max(1 - x (2t - 1), 0), ``x`` (B, 1, N)). ``probs`` is ``x``
    activated by ``activation``; gradients reach ``x`` (through the activation) and a
    ``target`` that requires one. ``bounded``: the errors are known to lie in [0, 1] (checked
    targets and probabilities), which lets short rows share 32-bit sort keys.
    """
    grad_on = torch.is_grad_enabled()
    need_x = grad_on and x.requires_grad
    need_t = grad_on and target is not None and target.requires_grad
    out: tuple[Tensor, Tensor] = LovaszFunction.apply(
        x,
        target,
        None if probs is None else probs.detach(),
        ids,
        valid,
        selected,
        pixel_weight,
        kind,
        activation,
        aggregate,
        bounded,
        need_x,
        need_t,
    )
    return out
