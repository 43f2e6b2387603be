"""Autograd-aware collectives for losses built from global statistics.

Both helpers are no-ops (they return their input) when ``torch.distributed`` is not
available, not initialized, or has a single process, so a loss can call them
unconditionally.

**Gradient scaling.** When every rank computes the same global loss ``L`` from gathered or
reduced statistics and calls ``backward()``, the gradient that reaches a rank's local input is
the sum over ranks of ``dL/dx_local``, i.e. ``world_size`` times the single-process gradient
of its shard. DistributedDataParallel then *averages* parameter gradients over the ranks
(divides by ``world_size``), so after DDP's all-reduce every parameter holds exactly the
gradient of the single-process loss over the whole global batch.

**The ``sync`` option.** Losses whose metadata says ``needs_global_stats`` take
``sync="local" | "global"``. ``"local"`` (default) computes the statistics of this process's
shard only, as if it were the whole batch. ``"global"`` sums the statistics over the default
process group (:func:`sync_sum`) before any ratio or mean, so every rank returns the loss of the
whole global batch and the rule above makes DDP's averaged gradients exact. Every rank must
call the loss (an empty shard included: it contributes zero statistics) and backpropagate
through it, because the backward runs collectives too. Without a process group, ``"global"``
equals ``"local"``.

**Every rank raises or none does.** With ``"global"`` a rank that raises on its own inputs
(a bad class id, a NaN target) before a collective would leave the other ranks waiting in it
forever. A loss therefore runs its data-dependent input checks through
:func:`check_on_every_rank`: under ``sync="global"`` with ``validate=True`` and a process
group, one small all-reduce of a failure flag follows the checks; the failing rank raises its
own error, every other rank a ValueError saying that another rank's inputs failed. Without a
process group it is exactly ``checks()``. Checks on the *synchronized* statistics (every rank
holds the same values, so every rank raises or none does) need no such flag.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

import torch
from torch import Tensor

from losslab._checks import check_choice, check_tensor, fail, fmt, is_compiling

__all__ = [
    "SYNC_MODES",
    "all_gather_cat",
    "all_reduce_sum",
    "check_on_every_rank",
    "check_sync",
    "is_distributed",
    "sync_gather",
    "sync_sum",
    "world_size",
]

SYNC_MODES = ("local", "global")

_T = TypeVar("_T")

# Dtypes as numbers on the wire: a dtype is sent as its position here (all_gather_cat's
# metadata; the metrics' state sync). The order is a constant, so the same on every process.
WIRE_DTYPES: tuple[torch.dtype, ...] = (
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks; the backward sums the incoming gradients over the ranks too.

    (``torch.distributed.nn.functional.all_reduce`` does the same but is deprecated.)
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Optional[Any]) -> Tensor:
        import torch.distributed as dist

        ctx.group = group
        out = x.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        import torch.distributed as dist

        out = grad.contiguous().clone()
        dist.all_reduce(out, group=ctx.group)
        return out, None


class _AllGather(torch.autograd.Function):
    """Every rank's equally shaped ``x``; the backward returns this rank's slice of the summed
    gradients (each rank used every part)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Optional[Any]) -> tuple[Tensor, ...]:
        import torch.distributed as dist

        ctx.group = group
        ctx.rank = dist.get_rank(group)
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x, group=group)
        return tuple(parts)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> tuple[Tensor, None]:
        import torch.distributed as dist

        stacked = torch.stack([g.contiguous() for g in grads])
        dist.all_reduce(stacked, group=ctx.group)
        return stacked[ctx.rank].clone(), None


def is_distributed(group: Optional[Any] = None) -> bool:
    """True when a process group with more than one process is initialized."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def world_size(group: Optional[Any] = None) -> int:
    """The number of processes in ``group`` (1 without a process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return int(dist.get_world_size(group))


def all_reduce_sum(x: Tensor, *, group: Optional[Any] = None) -> Tensor:
    """The sum of ``x`` over the processes, differentiable (its backward sums the gradients).

    >>> all_reduce_sum(torch.tensor([1.0, 2.0]))  # no process group: unchanged
    tensor([1., 2.])
    """
    check_tensor("all_reduce_sum", "x", x)
    if not is_distributed(group):
        return x
    out: Tensor = _AllReduceSum.apply(x, group)
    return out


def all_gather_cat(x: Tensor, *, group: Optional[Any] = None) -> Tensor:
    """Every process's ``x`` concatenated along dim 0 in rank order, differentiable.

    Shards may differ in length along dim 0 (a rank may hold none); the other dimensions and
    the dtype must agree (a ValueError with every rank's trailing shape or dtype otherwise, on
    every rank, before any data moves: never a hang). Dtypes outside the usual bool, integer,
    floating and complex ones are not told apart by that check.
    The backward returns to each rank the gradient of its own rows, summed over the ranks.

    >>> all_gather_cat(torch.arange(3.0))  # no process group: unchanged
    tensor([0., 1., 2.])
    """
    fn = "all_gather_cat"
    check_tensor(fn, "x", x)
    if x.dim() == 0:
        fail(fn, "x", "have a batch dimension (dim >= 1)", "a 0-d tensor", raw_got=True)
    if not is_distributed(group):
        return x
    import torch.distributed as dist

    n = world_size(group)
    # Two small collectives agree on every rank's length, dtype and trailing shape before the
    # data: [length, ndim, dtype code, *trailing shape].
    code = WIRE_DTYPES.index(x.dtype) + 1 if x.dtype in WIRE_DTYPES else 0
    meta = torch.tensor(
        [x.shape[0], x.dim(), code, *x.shape[1:]], dtype=torch.int64, device=x.device
    )
    width = torch.tensor([meta.numel()], dtype=torch.int64, device=x.device)
    widths = [torch.zeros_like(width) for _ in range(n)]
    dist.all_gather(widths, width, group=group)
    longest = int(max(int(w) for w in widths))
    padded = torch.full((longest,), -1, dtype=torch.int64, device=x.device)
    padded[: meta.numel()] = meta
    metas = [torch.zeros_like(padded) for _ in range(n)]
    dist.all_gather(metas, padded, group=group)
    trailing = {tuple(int(v) for v in m[3 : 3 + int(m[1]) - 1]) for m in metas}
    if len(trailing) != 1 or len({int(m[1]) for m in metas}) != 1:
        shapes = [tuple(int(v) for v in m[3 : 3 + int(m[1]) - 1]) for m in metas]
        fail(
            fn,
            "x",
            "have the same shape after dim 0 on every rank",
            f"{shapes} by rank",
            raw_got=True,
        )
    codes = [int(m[2]) for m in metas]
    if len(set(codes)) != 1:
        names = [fmt(WIRE_DTYPES[c - 1]) if c else "other" for c in codes]
        fail(fn, "x", "have the same dtype on every rank", f"{names} by rank", raw_got=True)
    lengths = [int(m[0]) for m in metas]
    most = max(lengths)
    if most == 0:
        return x
    pad = x.new_zeros((most - x.shape[0], *x.shape[1:]))
    full = torch.cat([x, pad], dim=0) if pad.shape[0] else x
    parts: tuple[Tensor, ...] = _AllGather.apply(full, group)
    return torch.cat([p[:k] for p, k in zip(parts, lengths)], dim=0)


def check_sync(fn: str, sync: object) -> str:
    """Validate a loss's ``sync`` option: ``"local"`` or ``"global"``."""
    return check_choice(fn, "sync", sync, SYNC_MODES)


def sync_sum(x: Tensor, sync: str) -> Tensor:
    """``x`` summed over the processes when ``sync == "global"`` (differentiable), else ``x``.

    >>> sync_sum(torch.tensor([1.0, 2.0]), "global")  # no process group: unchanged
    tensor([1., 2.])
    """
    return all_reduce_sum(x) if sync == "global" else x


def sync_gather(x: Tensor, sync: str) -> Tensor:
    """Every process's rows of ``x`` in rank order when ``sync == "global"``, else ``x``."""
    return all_gather_cat(x) if sync == "global" else x


def check_on_every_rank(
    fn: str,
    checks: Callable[[], _T],
    *,
    sync: str,
    validate: bool = True,
    like: Optional[Tensor] = None,
) -> _T:
    """Run a loss's input checks ``checks()`` so that every rank raises or none does.

    Only when ``sync == "global"``, ``validate`` is true, a process group with more than one
    process is initialized and ``torch.compile`` is not tracing, one small all-reduce of a
    failure flag follows the checks (on ``like``'s device, the loss's input): a rank whose own
    checks raise re-raises that exception, the others raise a ValueError naming ``fn`` and
    saying that another rank's inputs failed, instead of waiting forever in the loss's next
    collective. Otherwise it is exactly ``checks()`` (no overhead, the same exceptions).
    Returns what ``checks()`` returns. Every rank must call it at the same point (the loss
    runs it before its first collective).

    >>> check_on_every_rank("dice_loss", lambda: 3, sync="global")  # no process group
    3
    """
    if not (sync == "global" and validate and is_distributed()) or is_compiling():
        return checks()
    import torch.distributed as dist

    error: Optional[Exception] = None
    result: Optional[_T] = None
    try:
        result = checks()
    except Exception as exc:  # any failure: a rank that raises alone leaves the others hanging
        error = exc
    if isinstance(like, Tensor):
        device = like.device
    elif dist.get_backend() == "nccl":  # the failing rank's `like` may not even be a tensor
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    failed = torch.tensor([float(error is not None)], device=device)
    dist.all_reduce(failed)  # a plain flag: no autograd, nothing to backpropagate
    if error is not None:
        raise error
    others = int(failed[0])
    if others > 0:
        fail(
            fn,
            "target",
            "pass the input checks on every rank (sync='global')",
            f"invalid inputs on {others} other rank(s)",
            raw_got=True,
        )
    return result  # type: ignore[return-value]
