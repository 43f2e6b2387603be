"""Focal losses: losslab's analytic backward passes against torchvision, the usual recipe and
plain autograd.

Forward + backward time (round-robin in one process, median of block means, 2 threads) and
peak extra memory (fresh subprocess, MALLOC_MMAP_THRESHOLD_=65536, VmHWM - VmRSS over one step,
as a multiple of the logits' size; 1.0 is the gradient itself), float32, reduction="mean".

Sigmoid focal loss, alpha=0.25, gamma=2, logits (n / 16, 16) with n = 2^16 and 2^22, hard
targets with about 10% positives:

* ``losslab``: ``sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0)`` (validate=True: one target
  range check);
* ``losslab_compiled``: ``torch.compile`` (dynamic=False) of a lambda calling it with
  validate=False; the one-off compile time is printed apart from the table;
* ``autograd``: torchvision's formula written out (sigmoid, BCE with logits, p_t, alpha_t)
  under plain autograd;
* ``torchvision``: ``torchvision.ops.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2,
  reduction="mean")``, the anchor (same quantity: p_t = p y + (1 - p)(1 - y));
* ``x*y floor``: ``(x * y).sum().backward()`` on the same size, the memory-traffic floor
  (timed only).

Softmax focal loss, alpha=None, gamma=2, logits (2^16, 64) and (8, 21, 128, 128)
(segmentation-shaped, classes along dim 1), random class ids:

* ``losslab``: ``softmax_focal_loss(x, t, gamma=2.0)`` (validate=True: one class-id check);
* ``losslab_compiled``: as above;
* ``autograd``: losslab's formula before the analytic backward (log(1 - p_y) as the
  log-sum-exp over the other classes minus the one over all) under plain autograd;
* ``usual``: the common recipe ``ce = F.cross_entropy(x, t, reduction="none");
  pt = exp(-ce); ((1 - pt) ** gamma * ce).mean()`` (torchvision has no softmax focal loss; this
  recipe's gradient is NaN at saturated logits for gamma < 1);
* ``x*y floor``: as above, with a fixed tensor of the logits' shape.

Ratios are against the anchor (``torchvision`` when importable, else ``autograd``; ``usual``
for the softmax cases) and against ``x*y floor``. Every implementation's value and gradient
are checked against a float64 formula first. Timing runs under the allocator settings of the
calling environment (printed; glibc defaults unless MALLOC_* is set).

Run: .venv-anchors/bin/python benchmarks/focal.py [--rounds N]   (also runs in .venv)
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import (
    allocator,
    measure_peak_here,
    peak_in_subprocess,
    print_table,
    step_fn,
    time_round_robin,
)

from losslab.functional import sigmoid_focal_loss, softmax_focal_loss

Impl = Callable[[Tensor, Tensor], Tensor]
ALPHA, GAMMA = 0.25, 2.0
FLOOR = "x*y floor"
# key -> (family, logits shape, label)
CASES: dict[str, tuple[str, tuple[int, ...], str]] = {
    "sigmoid16": ("sigmoid", (2**12, 16), "2^16"),
    "sigmoid22": ("sigmoid", (2**18, 16), "2^22"),
    "softmax2d": ("softmax", (2**16, 64), "(2^16, 64)"),
    "softmaxseg": ("softmax", (8, 21, 128, 128), "(8, 21, 128, 128)"),
}


# ------------------------------------------------------------------------------ sigmoid
def sigmoid_autograd(x: Tensor, y: Tensor) -> Tensor:
    """torchvision.ops.sigmoid_focal_loss's formula, reduction="mean", plain autograd."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** GAMMA)
    alpha_t = ALPHA * y + (1 - ALPHA) * (1 - y)
    return (alpha_t * loss).mean()


def sigmoid_reference(x: Tensor, y: Tensor) -> Tensor:
    """float64, from the paper's definition: -alpha_t (1 - p_t)^gamma log p_t, hard y."""
    p = torch.sigmoid(x)
    p_t = torch.where(y > 0.5, p, 1 - p)
    alpha_t = torch.where(y > 0.5, ALPHA, 1 - ALPHA)
    log_p_t = torch.where(y > 0.5, F.logsigmoid(x), F.logsigmoid(-x))
    return (-alpha_t * (1 - p_t) ** GAMMA * log_p_t).mean()


def sigmoid_impls() -> dict[str, Impl]:
    impls: dict[str, Impl] = {
        "losslab": lambda x, y: sigmoid_focal_loss(x, y, alpha=ALPHA, gamma=GAMMA),
        "losslab_compiled": torch.compile(
            lambda x, y: sigmoid_focal_loss(x, y, alpha=ALPHA, gamma=GAMMA, validate=False),
            dynamic=False,
        ),
        "autograd": sigmoid_autograd,
    }
    try:
        from torchvision.ops import sigmoid_focal_loss as tv_focal
    except ImportError:
        return impls
    impls["torchvision"] = lambda x, y: tv_focal(x, y, alpha=ALPHA, gamma=GAMMA, reduction="mean")
    return impls


# ------------------------------------------------------------------------------ softmax
def softmax_autograd(x: Tensor, t: Tensor) -> Tensor:
    """losslab's softmax focal formula before the analytic backward, plain autograd."""
    index = t.unsqueeze(1)
    lse = torch.logsumexp(x, dim=1)
    ce = lse - x.gather(1, index).squeeze(1)
    log_rest = torch.logsumexp(x.scatter(1, index, float("-inf")), dim=1) - lse
    return (ce * torch.exp(GAMMA * log_rest)).mean()


def softmax_usual(x: Tensor, t: Tensor) -> Tensor:
    ce = F.cross_entropy(x, t, reduction="none")
    pt = torch.exp(-ce)
    return ((1 - pt) ** GAMMA * ce).mean()


def softmax_reference(x: Tensor, t: Tensor) -> Tensor:
    """float64: -(1 - p_y)^gamma log p_y with log p_y from log_softmax."""
    log_p = torch.log_softmax(x, dim=1).gather(1, t.unsqueeze(1))
    return (-((1 - log_p.exp()) ** GAMMA) * log_p).mean()


def softmax_impls() -> dict[str, Impl]:
    return {
        "losslab": lambda x, t: softmax_focal_loss(x, t, gamma=GAMMA),
        "losslab_compiled": torch.compile(
            lambda x, t: softmax_focal_loss(x, t, gamma=GAMMA, validate=False), dynamic=False
        ),
        "autograd": softmax_autograd,
        "usual": softmax_usual,
    }


# ------------------------------------------------------------------------------ machinery
def impls_for(family: str) -> dict[str, Impl]:
    return sigmoid_impls() if family == "sigmoid" else softmax_impls()


def anchor_of(family: str, impls: dict[str, Impl]) -> str:
    if family == "softmax":
        return "usual"
    return "torchvision" if "torchvision" in impls else "autograd"


def inputs(case: str) -> tuple[Tensor, Tensor, Tensor]:
    """(logits, target, a fixed tensor of the logits' shape for the x*y floor)."""
    family, shape, _ = CASES[case]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g).mul_(3.0).requires_grad_()
    if family == "sigmoid":
        y = (torch.rand(*shape, generator=g) < 0.1).float()
        return x, y, y
    t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    return x, t, torch.rand(*shape, generator=g)


def floor(x: Tensor, z: Tensor) -> Tensor:
    return (x * z).sum()


def check(case: str, impls: dict[str, Impl]) -> dict[str, float]:
    """Every implementation's value (rtol 1e-5) and gradient against the float64 formula.

    Returns each one's largest gradient error relative to the largest gradient entry (the
    scale that matters in a sum; entries far below it are dominated by rounding anyway).
    """
    family = CASES[case][0]
    x, target, _ = inputs(case)
    x64 = x.detach().double().requires_grad_()
    t64 = target.double() if family == "sigmoid" else target
    want = (sigmoid_reference if family == "sigmoid" else softmax_reference)(x64, t64)
    (want_grad,) = torch.autograd.grad(want, x64)
    scale = want_grad.abs().max().item()
    errors = {}
    for name, fn in impls.items():
        value = fn(x, target)
        (grad,) = torch.autograd.grad(value, x)
        torch.testing.assert_close(value.double(), want, rtol=1e-5, atol=0, msg=f"{name}: value")
        err = (grad.double() - want_grad).abs().max().item() / scale
        # losslab's own rows are held to 1e-5; the baselines only have to be the same quantity
        bound = 1e-5 if name.startswith("losslab") else 1e-3
        assert err < bound, f"{case} {name}: gradient error {err:.1e} of the largest entry"
        errors[name] = err
    return errors


def peak_mode(case: str, impl: str) -> None:
    torch.set_num_threads(2)
    x, target, _ = inputs(case)
    step = step_fn(impls_for(CASES[case][0])[impl], x, target)
    print(json.dumps({"peak": measure_peak_here(step)}))


def main(rounds: int) -> None:
    print(f"torch {torch.__version__}, 2 threads; allocator for timing: {allocator()}")
    print("peak memory: fresh subprocess per row, glibc MALLOC_MMAP_THRESHOLD_=65536")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        print("anchor torchvision not installed: run `make bench-anchors`")
    tables: dict[str, list[list[str]]] = {"sigmoid": [], "softmax": []}
    anchors: dict[str, str] = {}
    script = os.path.abspath(__file__)
    for case, (family, _, label) in CASES.items():
        impls = impls_for(family)
        anchor = anchors[family] = anchor_of(family, impls)
        x, target, z = inputs(case)
        t0 = time.perf_counter()
        impls["losslab_compiled"](x, target).backward()
        print(
            f"{family} {label}: losslab_compiled first call (compile) {time.perf_counter() - t0:.1f} s"
        )
        errors = check(case, impls)
        print(
            f"{family} {label}: max |grad - float64| / max |grad|: "
            + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        )
        steps = {name: step_fn(fn, x, target) for name, fn in impls.items()}
        steps[FLOOR] = step_fn(floor, x, z)
        times = time_round_robin(steps, rounds=rounds)
        size = x.numel() * x.element_size()
        peaks = {name: peak_in_subprocess(script, case, name) / size for name in impls}
        for name in steps:
            t, spread = times[name]
            peak = peaks.get(name)
            tables[family].append(
                [
                    label,
                    name,
                    f"{t * 1e3:.3f}",
                    f"{spread:.0%}",
                    f"{t / times[anchor][0]:.2f}",
                    f"{t / times[FLOOR][0]:.1f}",
                    "-" if peak is None else f"{peak:.2f}",
                    "-" if peak is None else f"{peak / peaks[anchor]:.2f}",
                ]
            )
    for family, title in (
        ("sigmoid", f"sigmoid focal loss, alpha={ALPHA}, gamma={GAMMA:g}"),
        ("softmax", f"softmax focal loss, alpha=None, gamma={GAMMA:g}"),
    ):
        anchor = anchors[family]
        print_table(
            f"{title}, forward + backward, float32, 2 threads, glibc allocator "
            f"(ratios vs {anchor} and vs {FLOOR})",
            [
                "size",
                "impl",
                "ms/step",
                "spread",
                f"time/{anchor}",
                "time/floor",
                "peak x input",
                f"peak/{anchor}",
            ],
            tables[family],
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        peak_mode(sys.argv[2], sys.argv[3])
    else:
        rounds = int(sys.argv[2]) if len(sys.argv) == 3 and sys.argv[1] == "--rounds" else 15
        main(rounds)
