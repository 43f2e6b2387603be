"""Pairwise ranking losses: losslab's blocked pair sums against autograd, allRank and a naive loop.

Forward + backward time (round-robin in one process, median of block means, 2 threads) and
peak extra memory (fresh subprocess, MALLOC_MMAP_THRESHOLD_=65536, VmHWM - VmRSS over one
step, as a multiple of the scores' size; 1.0 is the new gradient itself) in float32,
reduction="mean". Timing runs under the allocator settings of the calling environment
(printed; glibc defaults unless MALLOC_* is set).

Cases: one list of n = 256 (hinge only) and n = 1024 items (relevance 0..4), and padded lists
[256 x 100] (lengths 20..100 under a mask).

Rows:

* ``losslab``: the public function (``pairwise_hinge_loss``, margin 1; ``ranknet_loss``,
  sigma 1; ``lambda_loss``, ndcg_loss2pp), ``validate=True`` (one relevance check);
* ``losslab_compiled``: ``torch.compile`` of a lambda calling the function with
  ``validate=False`` (the one-off compile time is printed apart from the table; its peak is not
  measured: a fresh process would compile again);
* ``autograd``: the usual vectorized formula, the whole (B, n, n) pair matrix under plain
  autograd (mean over all pairs of the batch);
* ``naive`` (hinge, n = 256 only): a Python double loop over the pairs, one autograd node per
  pair term. It takes seconds per step, so it is timed apart, round-robin with ``losslab`` in
  3 rounds (one call of the loop a round; losslab's block still lasts >= 25 ms); its speedup
  comes from that run;
* ``allrank`` (RankNet): ``allrank.models.losses.rankNet(y_pred, y_true)`` with its defaults
  (``weight_by_diff=False``, ``weight_by_diff_powed=False``) and its padding convention
  (``y_true == -1`` marks padded items). It is the mean of ``BCEWithLogits(s_i - s_j, 1)`` =
  ``softplus(-(s_i - s_j))`` over every pair of real items with ``y_i > y_j`` in the batch,
  which is ``ranknet_loss(scores, target, mask=target != -1, sigma=1.0,
  normalization="pairs", reduction="mean")`` (losslab's defaults). The two values are checked
  to agree to 1e-4 relative before timing.

Every row's value and gradient are checked against float64 autograd of the dense formula
first (value 1e-5 relative, gradient 1e-5 of its largest entry). Speedups are base time /
time, base = allRank for RankNet when it is importable (``make bench-anchors``), else plain
autograd; the ``vs autograd`` column is always there. LambdaLoss has no row but losslab's.

Run: .venv-anchors/bin/python benchmarks/ranking.py  (or .venv/bin/python: no allRank rows)
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import measure_peak_here, peak_in_subprocess, print_table, step_fn, time_round_robin

from losslab.losses.ranking.lambda_loss import lambda_loss
from losslab.losses.ranking.pairwise_hinge import pairwise_hinge_loss
from losslab.losses.ranking.ranknet import ranknet_loss

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # allRank imports pkg_resources
        from allrank.models.losses import rankNet as allrank_ranknet
except ImportError:  # the plain .venv: no anchor rows
    allrank_ranknet = None

Fn = Callable[[Tensor, Tensor, Tensor], Tensor]
CASES = {"n=256": (1, 256), "n=1024": (1, 1024), "padded 256x100": (256, 100)}
CASES_OF = {  # the targets: the hinge at n=256, RankNet at n=1024 and padded
    "hinge": ("n=256", "n=1024", "padded 256x100"),
    "ranknet": ("n=1024", "padded 256x100"),
    "lambda": ("n=1024", "padded 256x100"),
}
NAIVE_CASE = "n=256"
NAIVE_ROUNDS = 3
TARGETS = {
    "hinge": "target: losslab >= 2000x the naive loop at n=256",
    "ranknet": "target: losslab >= 10x allRank at padded 256x100, >= 200x at n=1024",
}


def _pairs(y: Tensor, mask: Tensor) -> Tensor:
    return (y[:, :, None] > y[:, None, :]) & mask[:, :, None] & mask[:, None, :]


def dense_hinge(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """The whole (B, n, n) pair matrix under autograd; mean over all pairs of the batch."""
    pairs = _pairs(y, mask)
    loss = torch.relu(1.0 - (x[:, :, None] - x[:, None, :]))
    return (loss * pairs).sum() / pairs.sum()


def dense_ranknet(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    pairs = _pairs(y, mask)
    loss = F.softplus(-(x[:, :, None] - x[:, None, :]))
    return (loss * pairs).sum() / pairs.sum()


def naive_hinge(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """A Python double loop over the pairs of each list."""
    terms = []
    yl, ml = y.tolist(), mask.tolist()
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            for j in range(x.shape[1]):
                if ml[b][i] and ml[b][j] and yl[b][i] > yl[b][j]:
                    terms.append(torch.relu(1.0 - (x[b, i] - x[b, j])))
    return torch.stack(terms).sum() / len(terms)


def allrank_fn(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    assert allrank_ranknet is not None
    return allrank_ranknet(x, torch.where(mask, y, torch.full_like(y, -1.0)))


_COMPILED: dict[str, Fn] = {}


def compiled(loss: str) -> Fn:
    if loss not in _COMPILED:
        fn = {"hinge": pairwise_hinge_loss, "ranknet": ranknet_loss}[loss]
        _COMPILED[loss] = torch.compile(lambda x, y, m: fn(x, y, mask=m, validate=False))
    return _COMPILED[loss]


def implementations(loss: str, case: str) -> dict[str, Fn]:
    if loss == "lambda":
        return {"losslab": lambda x, y, m: lambda_loss(x, y, mask=m)}
    fn = {"hinge": pairwise_hinge_loss, "ranknet": ranknet_loss}[loss]
    impls: dict[str, Fn] = {
        "losslab": lambda x, y, m: fn(x, y, mask=m),
        "losslab_compiled": compiled(loss),
        "autograd": dense_hinge if loss == "hinge" else dense_ranknet,
    }
    if loss == "hinge" and case == NAIVE_CASE:
        impls["naive"] = naive_hinge
    if loss == "ranknet" and allrank_ranknet is not None:
        impls["allrank"] = allrank_fn
    return impls


def inputs(case: str) -> tuple[Tensor, Tensor, Tensor]:
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


def _grad(fn: Fn, x: Tensor, y: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().clone().requires_grad_()
    value = fn(x, y, m)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach().double(), grad.double()


def check(loss: str, case: str) -> None:
    """Every row against float64 autograd of the dense formula; allRank against losslab."""
    x, y, m = inputs(case)
    if loss == "lambda":
        reference = implementations("lambda", case)["losslab"]
    else:
        reference = dense_hinge if loss == "hinge" else dense_ranknet
    want, want_grad = _grad(reference, x.double(), y.double(), m)
    scale = want_grad.abs().max().item()
    values = {}
    for name, fn in implementations(loss, case).items():
        value, grad = _grad(fn, x, y, m)
        values[name] = value.item()
        torch.testing.assert_close(value, want, rtol=1e-5, atol=0, msg=f"{loss} {name}: value")
        torch.testing.assert_close(
            grad, want_grad, rtol=0, atol=1e-5 * scale, msg=f"{loss} {name}: gradient"
        )
    if "allrank" in values:
        rel = abs(values["allrank"] - values["losslab"]) / abs(values["allrank"])
        assert rel < 1e-4, f"{case}: allRank {values['allrank']} vs losslab {values['losslab']}"


def peak_mode(loss: str, case: str, impl: str) -> None:
    torch.set_num_threads(2)
    x, y, m = inputs(case)
    fn = implementations(loss, case)[impl]
    print(json.dumps({"peak": measure_peak_here(step_fn(fn, x, y, m))}))


def allocator() -> str:
    names = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "LD_PRELOAD")
    set_ = [f"{k}={os.environ[k]}" for k in names if k in os.environ]
    return "glibc, " + (" ".join(set_) if set_ else "default settings (no MALLOC_* set)")


def measure(loss: str, case: str, rounds: int) -> list[list[str]]:
    x, y, m = inputs(case)
    impls = implementations(loss, case)
    steps = {name: step_fn(fn, x, y, m) for name, fn in impls.items() if name != "naive"}
    times = time_round_robin(steps, rounds)
    speedup_of: dict[str, Optional[float]] = {}
    if "naive" in impls:
        # seconds per call: one call a round, interleaved with losslab (see the docstring)
        pair = time_round_robin(
            {"losslab": steps["losslab"], "naive": step_fn(impls["naive"], x, y, m)},
            NAIVE_ROUNDS,
        )
        times["naive"] = pair["naive"]
        speedup_of["losslab"] = pair["naive"][0] / pair["losslab"][0]
        print(
            f"{loss} {case}: naive loop {pair['naive'][0]:.2f} s/step, losslab "
            f"{pair['losslab'][0] * 1e3:.3f} ms/step in the same {NAIVE_ROUNDS} rounds: "
            f"losslab {speedup_of['losslab']:.0f}x faster"
        )
    input_bytes = x.numel() * x.element_size()
    script = os.path.abspath(__file__)
    peaks = {
        n: peak_in_subprocess(script, f"{loss}:{case}", n) / input_bytes
        for n in impls
        if n != "losslab_compiled"  # a fresh process would compile again (seconds per case)
    }
    base = "allrank" if "allrank" in impls else ("autograd" if "autograd" in impls else None)
    rows = []
    for name in impls:
        t, spread = times[name]
        rows.append(
            [
                case,
                name,
                f"{t * 1e3:.3f}",
                f"{spread:.0%}",
                f"{times[base][0] / t:.2f}" if base else "-",
                f"{times['autograd'][0] / t:.2f}" if "autograd" in times else "-",
                f"{peaks[name]:.1f}" if name in peaks else "-",
                f"{peaks[name] / peaks[base]:.2f}"
                if name in peaks and base and peaks[base]
                else "-",
            ]
        )
    return rows


def main(rounds: int = 15) -> None:
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, 2 threads; allocator for timing: {allocator()}")
    if allrank_ranknet is None:
        print("anchor allrank not installed: run `make bench-anchors`")
    header = [
        "case",
        "impl",
        "ms/step",
        "spread",
        "speedup",
        "vs autograd",
        "peak x scores",
        "peak/base",
    ]
    tables: dict[str, list[list[str]]] = {}
    for loss in ("hinge", "ranknet", "lambda"):
        rows: list[list[str]] = []
        for case in CASES_OF[loss]:
            if loss != "lambda":
                x, y, m = inputs(case)
                t0 = time.perf_counter()
                compiled(loss)(x, y, m).backward()
                print(
                    f"{loss} {case}: losslab_compiled first call (compile) "
                    f"{time.perf_counter() - t0:.1f} s"
                )
            check(loss, case)
            rows += measure(loss, case, rounds)
        tables[loss] = rows
    ranknet_base = "allRank rankNet" if allrank_ranknet is not None else "plain autograd"
    titles = {
        "hinge": "pairwise hinge (margin 1)",
        "ranknet": "RankNet (sigma 1)",
        "lambda": "LambdaLoss (ndcg_loss2pp), losslab only",
    }
    bases = {"hinge": "plain autograd", "ranknet": ranknet_base, "lambda": "-"}
    for loss, rows in tables.items():
        target = f"; {TARGETS[loss]}" if loss in TARGETS else ""
        print_table(
            f"{titles[loss]}, forward + backward, float32, 2 threads (speedup = base time / "
            f"time, base = {bases[loss]}{target})",
            header,
            rows,
        )


def _peak_args(argv: list[str]) -> Optional[tuple[str, str, str]]:
    if len(argv) == 4 and argv[1] == "--peak":
        loss, case = argv[2].split(":", 1)
        return loss, case, argv[3]
    return None


if __name__ == "__main__":
    args: Any = _peak_args(sys.argv)
    if args is not None:
        peak_mode(*args)
    else:
        main(int(os.environ.get("BENCH_ROUNDS", "15")))
