"""Pairwise ranking losses: losslab's row-blocked pair sums against dense and naive pair code.

Forward + backward time (round-robin in one process, median of block means) and peak extra
memory (fresh subprocess, MALLOC_MMAP_THRESHOLD_=65536, VmHWM - VmRSS over one step, as a
multiple of the scores' size) in float32, reduction="mean":

* one list of n = 64, 256, 1024 items (relevance 0..4), and padded lists [256 x 100] (lengths
  20..100 under a mask);
* implementations: losslab's ``pairwise_hinge``, ``ranknet`` and ``lambda_loss`` (ndcg_loss2pp);
  ``dense_hinge``, the usual vectorized (B, n, n) pair-matrix hinge under autograd (as allRank
  writes pairwise losses); ``naive_hinge``, a Python double loop over the pairs (n = 64 only:
  it takes seconds per step beyond that).

Values are checked first: every hinge against float64 dense code, RankNet against its float64
dense formula, LambdaLoss in float32 against its float64 value and (n = 64) against the
double-loop reference of the test cases.

Run: .venv/bin/python benchmarks/ranking.py
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, Optional

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.cases

from _harness import measure_peak_here, peak_in_subprocess, print_table, step_fn, time_round_robin

from losslab.losses.ranking.lambda_loss import lambda_loss
from losslab.losses.ranking.pairwise_hinge import pairwise_hinge_loss
from losslab.losses.ranking.ranknet import ranknet_loss

Fn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
CASES = {"n=64": (1, 64), "n=256": (1, 256), "n=1024": (1, 1024), "padded 256x100": (256, 100)}
NAIVE_UP_TO = 64


def _pair_mask(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (y[:, :, None] > y[:, None, :]) & mask[:, :, None] & mask[:, None, :]


def dense_hinge(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The whole (B, n, n) pair matrix under autograd; mean over all pairs of the batch."""
    pairs = _pair_mask(y, mask)
    loss = torch.relu(1.0 - (x[:, :, None] - x[:, None, :]))
    return (loss * pairs).sum() / pairs.sum()


def dense_ranknet(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pairs = _pair_mask(y, mask)
    loss = F.softplus(-(x[:, :, None] - x[:, None, :]))
    return (loss * pairs).sum() / pairs.sum()


def naive_hinge(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A Python double loop over the pairs of each list."""
    terms = []
    yl, ml = y.tolist(), mask.tolist()
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            for j in range(x.shape[1]):
                if ml[b][i] and ml[b][j] and yl[b][i] > yl[b][j]:
                    terms.append(torch.relu(1.0 - (x[b, i] - x[b, j])))
    return torch.stack(terms).sum() / len(terms)


IMPLS: dict[str, Fn] = {
    "pairwise_hinge": lambda x, y, m: pairwise_hinge_loss(x, y, mask=m),
    "ranknet": lambda x, y, m: ranknet_loss(x, y, mask=m),
    "lambda_loss": lambda x, y, m: lambda_loss(x, y, mask=m),
    "dense_hinge": dense_hinge,
    "naive_hinge": naive_hinge,
}


def impls_for(case: str) -> dict[str, Fn]:
    n = CASES[case][1]
    return {k: v for k, v in IMPLS.items() if k != "naive_hinge" or n <= NAIVE_UP_TO}


def inputs(case: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, n = CASES[case]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, n, generator=g).requires_grad_()
    y = torch.randint(0, 5, (b, n), generator=g).float()
    if b == 1:
        mask = torch.ones(b, n, dtype=torch.bool)
    else:
        lengths = torch.randint(20, n + 1, (b,), generator=g)
        mask = torch.arange(n)[None, :] < lengths[:, None]
    return x, y, mask


def _grad(fn: Fn, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_()
    value = fn(x, y, m)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach().double(), grad.double()


def check(case: str) -> None:
    x, y, m = inputs(case)
    x64, y64 = x.detach().double(), y.double()
    references: dict[str, tuple[torch.Tensor, ...]] = {}
    references["hinge"] = _grad(dense_hinge, x64, y64, m)
    references["ranknet"] = _grad(dense_ranknet, x64, y64, m)
    references["lambda"] = _grad(IMPLS["lambda_loss"], x64, y64, m)
    which = {"pairwise_hinge": "hinge", "dense_hinge": "hinge", "naive_hinge": "hinge"}
    which.update(ranknet="ranknet", lambda_loss="lambda")
    for name, fn in impls_for(case).items():
        value, grad = _grad(fn, x, y, m)
        want_value, want_grad = references[which[name]]
        torch.testing.assert_close(value, want_value, rtol=1e-5, atol=0, msg=f"{name}: value")
        torch.testing.assert_close(grad, want_grad, rtol=1e-4, atol=1e-7, msg=f"{name}: gradient")
    if CASES[case][1] <= NAIVE_UP_TO:
        from tests.cases.ranking_pairwise import lambda_reference

        want = lambda_reference(x64, y64, mask=m)
        torch.testing.assert_close(references["lambda"][0], want, rtol=1e-10, atol=0)


def peak_mode(case: str, impl: str) -> None:
    torch.set_num_threads(2)
    x, y, m = inputs(case)
    print(json.dumps({"peak": measure_peak_here(step_fn(IMPLS[impl], x, y, m))}))


def main(cases: Optional[list[str]] = None) -> None:
    rows = []
    for case in cases or list(CASES):
        check(case)
        impls = impls_for(case)
        x, y, m = inputs(case)
        times = time_round_robin({name: step_fn(fn, x, y, m) for name, fn in impls.items()})
        input_bytes = x.numel() * x.element_size()
        peaks = {
            name: peak_in_subprocess(os.path.abspath(__file__), case, name) / input_bytes
            for name in impls
        }
        base_time, base_peak = times["dense_hinge"][0], peaks["dense_hinge"]
        for name in impls:
            t, spread = times[name]
            rows.append(
                [
                    case,
                    name,
                    f"{t * 1e3:.3f}",
                    f"{spread:.0%}",
                    f"{t / base_time:.2f}",
                    f"{peaks[name]:.1f}",
                    f"{peaks[name] / base_peak:.2f}" if base_peak > 0 else "-",  # below page size
                ]
            )
    print_table(
        "pairwise ranking losses, forward + backward, float32, 2 threads "
        "(ratios vs dense_hinge, the (B, n, n) pair matrix under autograd)",
        ["case", "impl", "ms/step", "spread", "time ratio", "peak x input", "peak ratio"],
        rows,
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        peak_mode(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1:] or None)
