"""Shared benchmark machinery, following ../shared/BENCHMARKING.md.

* Time: implementations of one case run round-robin in one process; in each of ``rounds``
  rounds (in a new seeded order each round) each runs a block of calls calibrated to last
  >= 25 ms; the median of the block means is reported with its spread. Only ratios within one
  run mean anything.
* Peak memory: each (case, implementation) runs in a fresh subprocess started with
  ``MALLOC_MMAP_THRESHOLD_=65536``; peak extra = VmHWM - VmRSS around one step, reported
  as a multiple of the input's size (1.0 is the floor: the gradient itself).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch

Step = Callable[[], None]


class TrainStep:
    """One training step: drop the gradient, forward, backward; ``reset()`` drops the gradient.

    ``measure_peak_here`` calls ``reset()`` before it takes its baseline, so the previous
    step's gradient is not counted as resident (it would hide up to 1.0x of the new one).
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor], x: torch.Tensor, *rest: object):
        self.loss_fn, self.x, self.rest = loss_fn, x, rest

    def reset(self) -> None:
        self.x.grad = None

    def __call__(self) -> None:
        self.x.grad = None
        self.loss_fn(self.x, *self.rest).backward()


def step_fn(loss_fn: Callable[..., torch.Tensor], x: torch.Tensor, *rest: object) -> TrainStep:
    """One training step of ``loss_fn(x, *rest)`` (see :class:`TrainStep`)."""
    return TrainStep(loss_fn, x, *rest)


def time_round_robin(
    steps: dict[str, Step], rounds: int = 15, block_ms: float = 25.0
) -> dict[str, tuple[float, float]]:
    """name -> (median seconds per call, relative spread (max-min)/median)."""
    torch.set_num_threads(2)
    sizes: dict[str, int] = {}
    for name, step in steps.items():
        step()
        step()  # warm up twice
        n, elapsed = 1, 0.0
        while True:
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            elapsed = time.perf_counter() - t0
            if elapsed * 1e3 >= block_ms:
                break
            n *= 2
        sizes[name] = n
    samples: dict[str, list[float]] = {name: [] for name in steps}
    # A new order every round (seeded): no implementation always runs right after the same
    # neighbour, whose allocations and cache traffic would bias it the same way each round.
    order = list(steps)
    shuffler = random.Random(0)
    for _ in range(rounds):
        shuffler.shuffle(order)
        for name in order:
            step = steps[name]
            n = sizes[name]
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            samples[name].append((time.perf_counter() - t0) / n)
    out = {}
    for name, values in samples.items():
        med = statistics.median(values)
        out[name] = (med, (max(values) - min(values)) / med)
    return out


def allocator() -> str:
    """The glibc allocator settings of this process, for the tables' notes."""
    names = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "LD_PRELOAD")
    set_ = [f"{k}={os.environ[k]}" for k in names if k in os.environ]
    return "glibc, " + (" ".join(set_) if set_ else "default settings (no MALLOC_* set)")


def _read_status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found")


def measure_peak_here(step: Step) -> int:
    """Peak extra resident bytes of one step (call in a fresh process)."""
    step()
    step()
    reset = getattr(step, "reset", None)
    if reset is not None:
        reset()  # the previous gradient is not part of the baseline
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _read_status("VmRSS")
    step()
    return _read_status("VmHWM") - before


def peak_in_subprocess(script: str, case: str, impl: str) -> int:
    """Run ``script --peak CASE IMPL`` in a fresh process with the mmap threshold set."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(
        [sys.executable, script, "--peak", case, impl],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak"])


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
