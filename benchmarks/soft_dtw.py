"""Soft-DTW: losslab's Function (analytic backward) against plain autograd through the same
anti-diagonal forward.

Both walk the N + M - 1 anti-diagonals with one vectorized step each. The baseline keeps each
diagonal as a fresh tensor (torch.cat of +inf borders and the new cells) and lets autograd
record every step; losslab's Function writes the diagonals into preallocated buffers, saves
one (B, N + 2, M + 2) buffer and runs Algorithm 2 of Cuturi & Blondel (2017) backwards.

Forward + backward with respect to the cost matrix D (B, N, M), float32, gamma = 1,
B = 8, N = M = 128 and 512. Time: round-robin in one process, median of block means. Memory,
as multiples of D's size:

* "saved": bytes autograd keeps between forward and backward (saved_tensors_hooks, distinct
  storages other than D's own), exact and machine-independent;
* "peak": fresh subprocess, VmHWM - VmRSS over one step. The step drops the previous
  gradient first, so an implementation that saved nothing and allocated only its gradient
  would read about 0. The baseline's per-step tensors are small (3 x B x diagonal floats,
  < 64 KiB), so with _harness's MALLOC_MMAP_THRESHOLD_=65536 they stay on glibc's heap, whose
  memory kept from the warm-up steps hides them (it reads 1.0-1.8 there). The subprocess here
  sets MALLOC_MMAP_THRESHOLD_=4096, MALLOC_TRIM_THRESHOLD_=0 and MALLOC_TOP_PAD_=0: buffers of
  a page or more get their own mappings and go back to the OS when freed. Buffers under a page
  (the short diagonals near the corners, most of them at N = 128) are still not seen, so the
  baseline's peak is a lower bound, tighter at 512.

Values and gradients of both are checked against float64 first.

Run: .venv/bin/python benchmarks/soft_dtw.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import measure_peak_here, print_table, step_fn, time_round_robin

from losslab._autograd.soft_dtw import diagonal_range, soft_dtw_values

BATCH = 8
SIZES = {"N=M=128": 128, "N=M=512": 512}
GAMMA = 1.0


def autograd_soft_dtw(cost: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """Soft-DTW values (B,) by anti-diagonals, every step recorded by autograd."""
    b, n, m = cost.shape
    flipped = cost.flip(-1)  # anti-diagonals of D are diagonals of D flipped left-right
    inf = float("inf")
    prev2 = cost.new_full((b, n + 1), inf)
    prev2[:, 0] = 0.0  # diagonal 0: R[0, 0]
    prev1 = cost.new_full((b, n + 1), inf)  # diagonal 1: R[0, 1], R[1, 0]
    for d in range(2, n + m + 1):
        lo, hi = diagonal_range(d, n, m, None)
        preds = torch.stack((prev2[:, lo - 1 : hi], prev1[:, lo - 1 : hi], prev1[:, lo : hi + 1]))
        softmin = -gamma * torch.logsumexp(preds / -gamma, 0)
        # cells (i, d - i), i = lo..hi, are D[i - 1, d - i - 1]: flipped offset m + 1 - d
        diag = torch.diagonal(flipped, offset=m + 1 - d, dim1=1, dim2=2)
        cur = torch.cat(
            (cost.new_full((b, lo), inf), softmin + diag, cost.new_full((b, n - hi), inf)), 1
        )
        prev2, prev1 = prev1, cur
    return prev1[:, n]


IMPLS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "losslab": lambda cost: soft_dtw_values(cost, GAMMA).sum(),
    "autograd": lambda cost: autograd_soft_dtw(cost).sum(),
}


def inputs(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, n, 1, generator=g).cumsum(1) * 0.1
    y = torch.randn(BATCH, n, 1, generator=g).cumsum(1) * 0.1
    return ((x - y.transpose(1, 2)) ** 2).requires_grad_()


def check(n: int) -> None:
    """Both implementations agree with float64 plain autograd, in value and gradient.

    The gradient (a matrix of probabilities) is compared with an absolute tolerance: in
    float32 the cells of R (~2.5e4 per series at 512) carry rounding errors of ~1e-3, which
    enter the weights exp((R_s - D_s - R_ij) / gamma) directly; both implementations show the
    same ~2e-3 deviation from float64 there.
    """
    cost = inputs(n)
    c64 = cost.detach().double().requires_grad_()
    want = IMPLS["autograd"](c64)
    (want_grad,) = torch.autograd.grad(want, c64)
    for name, fn in IMPLS.items():
        value = fn(cost)
        (grad,) = torch.autograd.grad(value, cost)
        torch.testing.assert_close(value.double(), want, rtol=1e-5, atol=0, msg=f"{name}: value")
        torch.testing.assert_close(
            grad.double(), want_grad, rtol=0, atol=1e-2, msg=f"{name}: gradient"
        )


def saved_bytes(impl: str, cost: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for backward, other than ``cost``'s."""
    seen: dict[int, int] = {}
    own = cost.untyped_storage().data_ptr()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() != own:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = IMPLS[impl](cost)
    loss.backward()
    cost.grad = None
    return sum(seen.values())


def peak_in_subprocess(case: str, impl: str) -> int:
    """Run this script with ``--peak CASE IMPL`` in a fresh process (see the module docstring)."""
    env = dict(
        os.environ,
        MALLOC_MMAP_THRESHOLD_="4096",
        MALLOC_TRIM_THRESHOLD_="0",
        MALLOC_TOP_PAD_="0",
    )
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--peak", case, impl],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak"])


def peak_mode(case: str, impl: str) -> None:
    torch.set_num_threads(2)
    cost = inputs(SIZES[case])
    print(json.dumps({"peak": measure_peak_here(step_fn(IMPLS[impl], cost))}))


def main() -> None:
    rows = []
    for case, n in SIZES.items():
        check(n)
        cost = inputs(n)
        times = time_round_robin({name: step_fn(fn, cost) for name, fn in IMPLS.items()}, rounds=7)
        input_bytes = cost.numel() * cost.element_size()
        saved = {name: saved_bytes(name, cost) / input_bytes for name in IMPLS}
        peaks = {name: peak_in_subprocess(case, name) / input_bytes for name in IMPLS}
        base_time, base_saved, base_peak = (
            times["autograd"][0],
            saved["autograd"],
            peaks["autograd"],
        )
        for name in IMPLS:
            t, spread = times[name]
            rows.append(
                [
                    case,
                    name,
                    f"{t * 1e3:.1f}",
                    f"{spread:.0%}",
                    f"{t / base_time:.2f}",
                    f"{saved[name]:.2f}",
                    f"{saved[name] / base_saved:.2f}",
                    f"{peaks[name]:.2f}",
                    f"{peaks[name] / base_peak:.2f}",
                ]
            )
    print_table(
        f"soft-DTW, forward + backward over D (B={BATCH}), float32, gamma={GAMMA}, 2 threads "
        "(ratios vs plain autograd)",
        [
            "size",
            "impl",
            "ms/step",
            "spread",
            "time ratio",
            "saved x D",
            "saved ratio",
            "peak x D",
            "peak ratio",
        ],
        rows,
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        peak_mode(sys.argv[2], sys.argv[3])
    else:
        main()
