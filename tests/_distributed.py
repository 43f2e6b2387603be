"""Run a function in N spawned CPU processes joined by a gloo process group.

``run_workers(2, fn, *args)`` returns ``[fn(0, 2, *args), fn(1, 2, *args)]``. ``fn`` must be
defined at module level (spawn pickles it by name). A worker's exception is re-raised in the
test with its traceback; a hang fails the test after ``timeout`` seconds (the processes are
killed), so a deadlocked collective can never stall the suite.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["run_workers"]


def _worker(
    rank: int, world: int, init_file: str, out_dir: str, fn: Callable[..., Any], args: tuple
) -> None:
    torch.set_num_threads(1)
    result: dict[str, Any]
    try:
        dist.init_process_group(
            "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
        )
        try:
            result = {"ok": fn(rank, world, *args)}
        finally:
            dist.destroy_process_group()
    except BaseException:  # report everything, including assertion errors, to the parent
        result = {"error": traceback.format_exc()}
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))


def run_workers(world: int, fn: Callable[..., Any], *args: Any, timeout: float = 60.0) -> list[Any]:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        procs = [
            ctx.Process(target=_worker, args=(rank, world, init_file, tmp, fn, args), daemon=True)
            for rank in range(world)
        ]
        for p in procs:
            p.start()
        import time

        deadline = time.monotonic() + timeout
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        hung = [rank for rank, p in enumerate(procs) if p.is_alive()]
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        if hung:
            raise AssertionError(
                f"ranks {hung} of {world} did not finish within {timeout:g} s (a hang)"
            )
        results = []
        for rank in range(world):
            path = os.path.join(tmp, f"rank{rank}.pt")
            if not os.path.exists(path):
                raise AssertionError(
                    f"rank {rank} exited with code {procs[rank].exitcode} and no result"
                )
            result = torch.load(path, weights_only=False)
            if "error" in result:
                raise AssertionError(f"rank {rank} failed:\n{result['error']}")
            results.append(result["ok"])
        return results
