"""Check that a loss with ``sync="global"`` is exact across processes.

A :class:`SyncCase` is a loss function, a float64 global batch and the per-call arguments.
``check_sync_cases(world, cases)`` splits every batch along dim 0 into uneven shards (one
rank may hold none), runs all cases in one set of ``world`` spawned gloo processes (one
spawn for the whole list keeps the suite fast), and asserts, for each case:

* every rank returns the single-process value of the whole batch (1e-10 relative);
* each rank's gradient of its own rows, divided by ``world`` (DDP's averaging), equals the
  single-process gradient of those rows (1e-10);
* with ``sync="local"`` some rank returns a different value (so the case really exercises
  a global statistic), unless ``local_may_agree`` says the split cannot show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from tests._distributed import run_workers


# Uneven shards by world size for a batch of B rows (the middle rank of 3 holds nothing).
def shard_sizes(batch: int, world: int) -> list[int]:
    if world == 2:
        return [batch - batch // 3, batch // 3]
    if world == 3:
        first = batch // 2
        return [first, 0, batch - first]
    raise ValueError(world)


@dataclass
class SyncCase:
    name: str
    fn: Callable[..., torch.Tensor]
    inputs: tuple[torch.Tensor, ...]  # split along dim 0; the first gets the gradient
    kwargs: dict[str, Any] = field(default_factory=dict)
    split_kwargs: tuple[str, ...] = ()  # per-call tensors split along dim 0 too
    local_may_agree: bool = False
    sizes: Optional[dict[int, list[int]]] = None  # override shard_sizes per world

    def shards(self, world: int) -> list[tuple[int, int]]:
        batch = self.inputs[0].shape[0]
        sizes = (self.sizes or {}).get(world) or shard_sizes(batch, world)
        assert sum(sizes) == batch, (self.name, sizes, batch)
        bounds, lo = [], 0
        for n in sizes:
            bounds.append((lo, lo + n))
            lo += n
        return bounds

    def call(self, lo: int, hi: int, sync: str) -> tuple[torch.Tensor, torch.Tensor]:
        args = [a[lo:hi].clone() for a in self.inputs]
        args[0].requires_grad_(True)
        kw = {k: (v[lo:hi] if k in self.split_kwargs else v) for k, v in self.kwargs.items()}
        value = self.fn(*args, **kw, sync=sync)
        (grad,) = torch.autograd.grad(value, args[0])
        return value.detach(), grad


def _worker(rank: int, world: int, cases: list[SyncCase]) -> list[dict[str, Any]]:
    out = []
    for case in cases:
        lo, hi = case.shards(world)[rank]
        value, grad = case.call(lo, hi, "global")
        try:  # a shard alone may be refused (an empty shard's WAPE is 0/0): that is a difference
            local: Optional[torch.Tensor] = case.call(lo, hi, "local")[0]
        except ValueError:
            local = None
        out.append({"value": value, "grad": grad, "local": local})
    return out


def _prefixed(prefix: str) -> Callable[[str], str]:
    """assert_close's ``msg``: its message after ``prefix``."""

    def message(m: str) -> str:
        return f"{prefix}: {m}"

    return message


def check_sync_cases(world: int, cases: list[SyncCase], timeout: float = 90.0) -> None:
    results = run_workers(world, _worker, cases, timeout=timeout)
    for i, case in enumerate(cases):
        batch = case.inputs[0].shape[0]
        want, want_grad = case.call(0, batch, "global")  # no process group here: one process
        locals_ = []
        for rank, per_case in enumerate(results):
            got = per_case[i]
            lo, hi = case.shards(world)[rank]
            torch.testing.assert_close(
                got["value"], want, rtol=1e-10, atol=1e-12, msg=_prefixed(case.name)
            )
            torch.testing.assert_close(
                got["grad"] / world,
                want_grad[lo:hi],
                rtol=1e-10,
                atol=1e-12,
                msg=_prefixed(f"{case.name} rank {rank} gradient"),
            )
            locals_.append(got["local"])
        if not case.local_may_agree:
            assert any(
                v is None or not torch.allclose(v, want, rtol=1e-9, atol=0) for v in locals_
            ), (
                f"{case.name}: sync='local' gives the global value on every rank; the case "
                "does not exercise a global statistic"
            )
