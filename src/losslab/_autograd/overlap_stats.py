r"""Soft overlap sums per (image, class) of every overlap loss, and their analytic backward.

Forward. With logits :math:`x` of shape (B, C, N), probabilities :math:`p = a(x)` (``a`` is the
softmax over C, the sigmoid, or the identity when ``x`` already holds probabilities), targets
:math:`t` (class ids, i.e. one-hot without ever building it, or a dense (B, C, N) tensor) and a
boolean mask :math:`m` of the positions that count, the Function returns the stacked sums

.. math::

    TP_{bc} = \sum_n m\,p\,t, \quad P_{bc} = \sum_n m\,p, \quad T_{bc} = \sum_n m\,t
    \quad [\,P^{(2)}_{bc} = \sum_n m\,p^2, \quad T^{(2)}_{bc} = \sum_n m\,t^2\,]

of shape (K, B, C), K = 3 (5 with ``squared``). Everything after them (class selection, sample
weights, the sum over the batch, the ratio, the average) is tiny and stays plain autograd; the
output is the local per-image sums, before anything crosses images (the place where a global
all-reduce goes). For class ids :math:`TP` is a gather of :math:`p` at the target class and a
``scatter_add`` into (B, C), and :math:`T` a ``scatter_add`` of the mask: no one-hot tensor.

Backward. Given the gradients :math:`g_{TP}, g_P, g_T, g_{P2}, g_{T2}` of shape (B, C), the
gradient wrt the probabilities is

.. math::

    v_{bcn} = m \,(g_{TP}\,t + g_P + 2\,g_{P2}\,p),

and through the activation :math:`\partial/\partial x = p\,(v - \sum_c p\,v)` (softmax),
:math:`v\,p\,(1 - p)` (sigmoid, as torch computes it: :math:`1 - p` rounds to 0 once :math:`p`
rounds to 1, where the true factor is below 6e-8 in float32) or :math:`v` (no activation). A dense target gets
:math:`\partial/\partial t = m\,(g_{TP}\,p + g_T + 2\,g_{T2}\,t)`, as plain autograd gives it.

For class ids through a softmax with a mask per position (the common case), :math:`v` is never
formed. With :math:`\tilde p = m\,p` and :math:`y` the target class,

.. math::

    s = \sum_c p\,v = \sum_c g_P\,\tilde p + g_{TP,y}\,\tilde p_y
        \;[+ \textstyle\sum_c 2\,g_{P2}\,\tilde p^2],
    \qquad
    \partial/\partial x_c = \tilde p_c\,(g_{P,c} [+ 2\,g_{P2,c}\,\tilde p_c] - s)
        + [c = y]\,\tilde p_y\,g_{TP,y}:

:math:`s` is a (B, 1, C) x (B, C, N) matrix product (C terms per position) plus the target
term, and the target term goes in with one ``scatter_add``.

Work and memory. Both passes run over a slice of whole images at a time (about 2^20 elements):
activation, masking, gathers and products of a slice run while it is in cache, in one
slice-sized workspace reused by every slice (a fresh buffer per slice costs page faults
whenever the allocator hands slice-sized blocks back to the OS). The ``scatter_add`` into
(B, C) runs on the whole batch (it is parallel over images only).

Saved: the logits, the ids or dense target and the mask, plus, for class ids through a
softmax with a mask per position (multiclass segmentation, the common case), :math:`\tilde p`
itself and :math:`\tilde p_y` (B, 1, N). The backward writes the gradient over the saved
:math:`\tilde p`, slice by slice (the factor :math:`g_P - s` in a slice workspace), and returns
that buffer: no softmax is recomputed and no gradient buffer is allocated. Keeping
:math:`\tilde p` holds the logits' size between the passes (as autograd of a softmax does),
but adds nothing to the peak of a step, whose gradient reuses it (1.5x the logits at
(8, 6, 256, 256), 1.0 being the gradient, against 3x for MONAI's Dice and 4x for plain
autograd of the one-hot formula). It is a ``ctx`` attribute, not a saved tensor: the backward
consumes it, and a second backward (``retain_graph``) recomputes the softmax from the logits.
Elsewhere the activation is recomputed in backward rather than kept alive between the passes.
The forward may be handed the probabilities the caller already computed (they must be
``a(x)``; they are used as constants, gradients flow to ``x``), sparing it that pass. Every
operation is shape-static, so ``torch.compile`` traces the Function (in one slice, without the
kept buffer). The backward is ``once_differentiable`` (``supports_double_backward = False``):
for Hessian-vector products use plain autograd of the sums (:func:`overlap_sums_plain`).

CPU contention: each slice costs a dozen multi-threaded operations, and an operation waits for
its slowest thread; when other processes occupy the cores (data-loader workers, a second
job), a descheduled thread stalls each operation for a scheduler time slice. Give torch no
more threads than free cores (``torch.set_num_threads``).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from losslab._checks import is_compiling

__all__ = ["OverlapSumsFunction", "activate", "overlap_sums", "overlap_sums_plain"]


def activate(x: Tensor, activation: Optional[str], out: Optional[Tensor] = None) -> Tensor:
    """a(x) over (B, C, N): softmax over C, sigmoid, or x itself for None (not a copy).

    ``out`` (x's shape), if given, receives the softmax or sigmoid (a reused workspace).
    """
    if activation == "softmax":
        return torch.softmax(x, 1) if out is None else torch.softmax(x, 1, out=out)
    if activation == "sigmoid":
        return torch.sigmoid(x) if out is None else torch.sigmoid(x, out=out)
    return x


# Images are processed a slice at a time, about this many elements per slice (4 MB in float32):
# the activation, the gathers and the products of a slice run on data still in L2/L3, in one
# reused workspace. Measured on (8, 6, 256, 256) logits, 2 threads, quiet machine, steps against
# MONAI's in one process: 2^19 1.60-1.73x, 2^20 1.69-1.84x, 2^21 1.69-1.78x, the whole batch
# 1.58-1.81x; fewer, longer operations also stall less when other processes share the cores.
_SLICE = 1 << 20


def _slices(x: Tensor) -> list[slice]:
    """Slices of whole images of ``x`` (B, C, N); one slice while compiling (fused anyway)."""
    batch = x.shape[0]
    if is_compiling() or batch <= 1:
        return [slice(0, batch)]
    step = max(1, _SLICE // max(1, x.shape[1] * x.shape[2]))
    return [slice(i, min(i + step, batch)) for i in range(0, batch, step)]


def _part(t: Optional[Tensor], sl: slice) -> Optional[Tensor]:
    return None if t is None else t[sl]


def _workspace(x: Tensor, slices: list[slice]) -> Tensor:
    """One buffer for the largest slice, reused by every slice (``ws[: hi - lo]``).

    A fresh buffer per slice costs page faults whenever the allocator hands slice-sized
    blocks back to the OS (glibc's default does, depending on what ran before): measured at
    (8, 6, 256, 256), 27 ms per step with every block returned against 8 ms with reuse.
    """
    rows = max(sl.stop - sl.start for sl in slices)
    return x.new_empty((rows, *x.shape[1:]))


def _dot_last(a: Tensor, b: Tensor) -> Tensor:
    """sum(a * b, -1) over (..., N) without a product buffer (a batched dot product).

    Autocast is off: it would run ``bmm`` in half precision on float32 probabilities.
    """
    n = a.shape[-1]
    lead = a.shape[:-1]
    with torch.autocast(a.device.type, enabled=False):
        out = torch.bmm(a.reshape(-1, 1, n), b.reshape(-1, n, 1))
    return out.view(lead)


# Position n adds into partial sum n mod _LANES of its (image, class): a label map has long runs
# of one class, and with one accumulator per class every add waits for the previous one
# (the two (B, C) scatters took 1.9 ms with one accumulator and 1.2 ms with 16 on the benchmark's
# blob labels; the partial sums also round less).
_LANES = 16  # a power of two (a bitwise and picks the lane)


def _id_sums(
    hit: Tensor, ids: Tensor, valid: Optional[Tensor], psum: Tensor, p2sum: Optional[Tensor]
) -> Tensor:
    """(K, B, C) for class ids from p~ at the target (B, 1, N) and the sums of p~ (and p~^2).

    TP and the counts are ``scatter_add`` of (B, N) values into (B, C): no one-hot. Ignored
    positions carry id 0 and mask 0, so they add nothing to class 0.
    """
    batch, num_classes = psum.shape
    if valid is None:  # a count per class: ones, as a stride-0 view (no buffer)
        ones = torch.ones((1, 1), dtype=hit.dtype, device=hit.device).expand_as(ids)
    else:
        ones = valid.squeeze(1).to(hit.dtype)
    lane = torch.arange(ids.shape[1], device=ids.device).bitwise_and_(_LANES - 1)
    index = ids + lane.mul_(num_classes)  # class c of lane l -> l * C + c
    tp, tsum = (
        psum.new_zeros((batch, _LANES * num_classes))
        .scatter_add(1, index, values)
        .view(batch, _LANES, num_classes)
        .sum(1)
        for values in (hit.squeeze(1), ones)
    )
    parts = [tp, psum, tsum]
    if p2sum is not None:
        parts += [p2sum, tsum]  # one-hot targets: t^2 == t
    return torch.stack(parts)


def _dense_sums(p: Tensor, t: Tensor, valid: Optional[Tensor], squared: bool) -> Tensor:
    """(K, B, C) for a dense target; ``p`` already masked."""
    if valid is not None:
        t = t * valid
    parts = [(p * t).sum(-1), p.sum(-1), t.sum(-1)]
    if squared:
        parts += [(p * p).sum(-1), (t * t).sum(-1)]
    return torch.stack(parts)


def overlap_sums_plain(
    p: Tensor,
    ids: Optional[Tensor],
    t: Optional[Tensor],
    valid: Optional[Tensor],
    squared: bool = False,
) -> Tensor:
    """The stacked sums (K, B, C) from probabilities, out-of-place (plain autograd works)."""
    if valid is not None:
        p = p * valid  # ignored positions predict nothing
    if ids is not None:
        hit = p.gather(1, ids.unsqueeze(1))
        return _id_sums(hit, ids, valid, p.sum(-1), (p * p).sum(-1) if squared else None)
    if t is None:
        raise ValueError("overlap sums need class ids or a dense target")
    return _dense_sums(p, t, valid, squared)


def _sliced_sums(
    x: Tensor,
    p: Optional[Tensor],
    ids: Optional[Tensor],
    t: Optional[Tensor],
    valid: Optional[Tensor],
    activation: Optional[str],
    squared: bool,
    hit: Optional[Tensor] = None,
    keep: Optional[Tensor] = None,
) -> Tensor:
    """The sums from ``x`` (activated a slice of images at a time) or given probabilities ``p``.

    ``keep`` (x's shape), if given, receives p~ = m a(x) of every slice (for the backward)
    instead of a reused slice workspace.

    For class ids, ``hit`` (B, 1, N), if given, receives p~ at the target class. The
    ``scatter_add`` into (B, C) runs once on the whole batch: it is parallel over images only.
    """
    if p is None and activation is None:
        p = x  # the probabilities themselves (constants here)
    slices = _slices(x)
    ws = keep
    if ws is None and (p is None or valid is not None):
        ws = _workspace(x, slices)

    def probs_of(sl: slice) -> Tensor:
        """p~ = m a(x) of the slice (in the workspace when it is computed or masked)."""
        if ws is None:
            assert p is not None
            return p[sl]
        rows = ws[sl] if ws is keep else ws[: sl.stop - sl.start]
        # (activation None set p = x above: its masked copy goes through the first branch)
        probs = rows.copy_(p[sl]) if p is not None else activate(x[sl], activation, out=rows)
        return probs if valid is None else probs.mul_(valid[sl])  # ignored: predict nothing

    if ids is None:
        assert t is not None, "overlap sums need class ids or a dense target"
        parts = [_dense_sums(probs_of(sl), t[sl], _part(valid, sl), squared) for sl in slices]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    target_p = x.new_empty((x.shape[0], 1, x.shape[2])) if hit is None else hit
    psum = x.new_empty(x.shape[:2])
    p2sum = x.new_empty(x.shape[:2]) if squared else None
    idx = ids.unsqueeze(1)
    for sl in slices:
        probs = probs_of(sl)
        torch.gather(probs, 1, idx[sl], out=target_p[sl])
        torch.sum(probs, -1, out=psum[sl])
        if p2sum is not None:
            p2sum[sl] = _dot_last(probs, probs)
    return _id_sums(target_p, ids, valid, psum, p2sum)


def _grad_probs(
    p: Tensor,
    ids: Optional[Tensor],
    t: Optional[Tensor],
    valid: Optional[Tensor],
    g: Tensor,
    squared: bool,
    out: Tensor,
) -> Tensor:
    """v = m (g_TP t + g_P + 2 g_P2 p), written into ``out`` (p's shape)."""
    g_tp, g_ps = g[0].unsqueeze(-1), g[1].unsqueeze(-1)
    if ids is not None:
        v = out.copy_(g_ps.expand_as(p))
        # + g_TP at the target class: a scatter of (B, 1, N) values, no one-hot.
        v.scatter_add_(1, ids.unsqueeze(1), g[0].gather(1, ids).unsqueeze(1))
    else:
        assert t is not None
        v = torch.mul(t, g_tp, out=out).add_(g_ps)
    if squared:
        v.addcmul_(p, g[3].unsqueeze(-1), value=2.0)
    if valid is not None:
        v.mul_(valid)
    return v


def _softmax_grad_ids(
    p: Tensor,
    ids: Tensor,
    at_target: Tensor,
    valid: Optional[Tensor],
    g: Tensor,
    squared: bool,
    out: Tensor,
    term: Optional[Tensor] = None,
    masked: bool = False,
    scatter: bool = True,
) -> None:
    """p (v - sum_c p v) into ``out``, for class ids and a per-position mask (``p`` is fresh).

    ``at_target`` (B, 1, N) is p~_y g_TP,y, the target-class term. ``out`` may be ``p``
    itself (the probabilities saved by the forward): then the factor goes through ``term``, a
    workspace of p's shape. ``masked``: p already holds m p. ``scatter=False`` leaves the
    target-class term to the caller (one ``scatter_add_`` over the whole batch).
    """
    if valid is not None and not masked:
        p.mul_(valid)  # p~ = m p: every term below carries the mask through it
    g_ps = g[1]
    # s = sum_c p~ v = sum_c g_P p~ + g_TP,y p~_y (+ sum_c 2 g_P2 p~^2): C terms per position,
    # one baddbmm (autocast off: it would run it in half precision).
    g_p2 = 2.0 * g[3] if squared else None
    with torch.autocast(p.device.type, enabled=False):
        s = torch.baddbmm(at_target, g_ps.unsqueeze(1), p)  # (B, 1, N)
        if g_p2 is not None:
            s.add_(torch.bmm(g_p2.unsqueeze(1), p * p))  # sum_c 2 g_P2 p~^2
    s = s.squeeze(1)
    # p~ (g_P [+ 2 g_P2 p~] - s), the factor built in ``out`` (or ``term`` when out is p).
    factor = out if out is not p else term
    assert factor is not None, "an in-place gradient needs a workspace"
    torch.sub(g_ps.unsqueeze(-1), s.unsqueeze(1), out=factor)
    if g_p2 is not None:
        factor.addcmul_(p, g_p2.unsqueeze(-1))
    if factor is out:
        out.mul_(p)
    else:
        out.mul_(factor)
    if scatter:
        out.scatter_add_(1, ids.unsqueeze(1), at_target)


def _softmax_grad_ids_kept(
    x: Tensor,
    kept: Tensor,
    ids: Tensor,
    hit: Tensor,
    valid: Optional[Tensor],
    grad: Tensor,
    squared: bool,
) -> tuple[Optional[Tensor], ...]:
    """The backward for class ids through a softmax from the forward's p~, written over it.

    No softmax is recomputed and no gradient buffer is allocated: ``kept`` becomes the
    gradient (its slices in turn), with one slice-sized workspace for the factor.
    """
    at_target = hit * grad[0].gather(1, ids).unsqueeze(1)  # p~_y g_TP,y
    slices = _slices(x)
    term = _workspace(x, slices)
    for sl in slices:
        p = kept[sl]
        rows = term[: sl.stop - sl.start]
        _softmax_grad_ids(
            p, ids[sl], at_target[sl], _part(valid, sl), grad[:, sl], squared, p, rows, True, False
        )
    kept.scatter_add_(1, ids.unsqueeze(1), at_target)  # + p~_y g_TP,y, the whole batch at once
    return kept, None, None, None, None, None, None


def _per_position(valid: Optional[Tensor]) -> bool:
    return valid is None or valid.shape[1] == 1


class OverlapSumsFunction(torch.autograd.Function):
    """``apply(x, p, ids, t, valid, activation, squared)`` -> (K, B, C) sums (see the module).

    ``x`` (B, C, N) floating; ``p`` = ``activate(x, activation)`` or None (computed here);
    exactly one of ``ids`` (B, N) int64 in [0, C) and ``t`` (B, C, N) floating; ``valid``
    (B, 1, N) or (B, C, N) bool or None. Gradients for ``x`` and ``t``.
    """

    supports_double_backward = False

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        p: Optional[Tensor],
        ids: Optional[Tensor],
        t: Optional[Tensor],
        valid: Optional[Tensor],
        activation: Optional[str],
        squared: bool,
    ) -> Tensor:
        hit = keep = None
        if ids is not None and activation == "softmax" and _per_position(valid):
            # p~ at the target class, kept for the backward (the only path that reads it)
            hit = x.new_empty((x.shape[0], 1, x.shape[2]))
            if p is None and not is_compiling():
                # p~ itself, kept: the backward writes the gradient into this buffer
                keep = torch.empty_like(x, memory_format=torch.contiguous_format)
        sums = _sliced_sums(x, p, ids, t, valid, activation, squared, hit, keep)
        # A ctx attribute, not a saved tensor: the backward consumes it (the gradient is
        # written over it), and a second backward (retain_graph) recomputes from x.
        ctx.probs = keep
        ctx.activation, ctx.squared = activation, squared
        ctx.has = tuple(v is not None for v in (ids, hit, t, valid))
        ctx.save_for_backward(x, *(v for v in (ids, hit, t, valid) if v is not None))
        return sums

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], ...]:
        x, *rest = ctx.saved_tensors
        saved = iter(rest)
        ids, hit, t, valid = (next(saved) if has else None for has in ctx.has)
        activation, squared = ctx.activation, ctx.squared
        need_x, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[3]
        kept, ctx.probs = ctx.probs, None  # consumed: the gradient goes into it
        if kept is not None and need_x and hit is not None and ids is not None:
            return _softmax_grad_ids_kept(x, kept, ids, hit, valid, grad, squared)
        grad_x = torch.empty_like(x) if need_x else None
        grad_t = torch.empty_like(t) if need_t and t is not None else None
        at_target = None
        if grad_x is not None and ids is not None and hit is not None:
            at_target = hit * grad[0].gather(1, ids).unsqueeze(1)  # p~_y g_TP,y
        slices = _slices(x)
        ws = None if activation is None else _workspace(x, slices)
        for sl in slices:
            g = grad[:, sl]
            ids_s, t_s, valid_s = _part(ids, sl), _part(t, sl), _part(valid, sl)
            # fresh values in the workspace, except for activation None (x itself, read only)
            p = x[sl] if ws is None else activate(x[sl], activation, out=ws[: sl.stop - sl.start])
            if grad_t is not None:
                assert t_s is not None
                # m (g_TP p + g_T + 2 g_T2 t)
                out_t = torch.mul(p, g[0].unsqueeze(-1), out=grad_t[sl])
                out_t.add_(g[2].unsqueeze(-1))
                if squared:
                    out_t.addcmul_(t_s, g[4].unsqueeze(-1), value=2.0)
                if valid_s is not None:
                    out_t.mul_(valid_s)
            if grad_x is None:
                continue
            if at_target is not None and ids_s is not None:  # softmax, a mask per position
                _softmax_grad_ids(p, ids_s, at_target[sl], valid_s, g, squared, grad_x[sl])
                continue
            v = _grad_probs(p, ids_s, t_s, valid_s, g, squared, out=grad_x[sl])
            if activation == "softmax":
                # p (v - sum_c p v); the C-term sum needs one product of the slice's size.
                v.sub_(torch.mul(p, v).sum(1, keepdim=True)).mul_(p)
            elif activation == "sigmoid":
                v.mul_(p).mul_(p.neg_().add_(1.0))  # v p (1 - p); p is fresh
        return grad_x, None, None, grad_t, None, None, None


def overlap_sums(
    x: Tensor,
    ids: Optional[Tensor],
    t: Optional[Tensor],
    valid: Optional[Tensor],
    *,
    activation: Optional[str],
    squared: bool = False,
    probs: Optional[Tensor] = None,
) -> Tensor:
    """The (K, B, C) sums, through :class:`OverlapSumsFunction` when a gradient is needed.

    ``probs``, when given, must be ``activate(x, activation)``: it spares the forward the
    activation and is used as a constant (the gradient flows to ``x``).
    """
    p = None if probs is None else probs.detach()
    needs_grad = x.requires_grad or (t is not None and t.requires_grad)
    if not (needs_grad and torch.is_grad_enabled()):
        return _sliced_sums(x, p, ids, t, valid, activation, squared)
    out: Tensor = OverlapSumsFunction.apply(x, p, ids, t, valid, activation, squared)
    return out
