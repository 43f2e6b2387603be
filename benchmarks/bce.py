"""BCE with logits and pos_weight: losslab (analytic backward) against torch and the old losslab path.

Forward + backward time (round-robin in one process, median of block means) and peak extra
memory (fresh subprocess, MALLOC_MMAP_THRESHOLD_=65536, VmHWM - VmRSS over one step, as a
multiple of the logits' size) at 2^16 and 2^22 float32 elements, pos_weight=2.0,
reduction="mean", hard targets with about 10% positives.

* ``losslab``: ``bce_with_logits_loss(pos_weight=2.0)`` (validate=True: one target range check);
  ``losslab_novalidate`` skips that check.
* ``losslab_old``: the same public function with the elementwise term swapped back to the
  formula it used before the analytic backward (two ``logsigmoid`` calls under autograd),
  kept here as the baseline: every check and the reduction are unchanged.
* ``losslab_compiled``: ``losslab.BCEWithLogitsLoss(pos_weight=2.0, compile=True)`` (the
  opt-in compiled path: Inductor fuses each pass into one kernel; the one-off compile time is
  printed apart from the table).
* ``torch``: ``torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(2.0))``.
* ``x * y``: one elementwise product of the same size, forward only: the memory-traffic floor.

Values and gradients are checked against float64 first. Timing runs under the allocator
settings of the calling environment (printed); compare e.g. with
``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824`` (freed memory reused).

Run: .venv/bin/python benchmarks/bce.py
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Callable, Optional, Union

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

import losslab
import losslab.losses.classification.bce as bce_module
from losslab.functional import bce_with_logits_loss

SIZES = {"2^16": 2**16, "2^22": 2**22}
CLASSES = 16  # logits (n / 16, 16), about 10% positives (multi-label tagging)
POS_WEIGHT = 2.0


def old_elementwise(x: Tensor, y: Tensor, w: Union[float, Tensor, None]) -> Tensor:
    """losslab's elementwise BCE before the analytic backward, verbatim (plain autograd)."""
    positive = -F.logsigmoid(x)
    negative = -F.logsigmoid(-x)
    if w is not None and not (isinstance(w, float) and w == 1.0):
        positive = positive * w
    return y * positive + (1.0 - y) * negative


@contextlib.contextmanager
def _old_path() -> Iterator[None]:
    saved = bce_module.bce_logits_elementwise
    bce_module.bce_logits_elementwise = old_elementwise  # type: ignore[assignment]
    try:
        yield
    finally:
        bce_module.bce_logits_elementwise = saved


def losslab_old(x: Tensor, y: Tensor) -> Tensor:
    with _old_path():
        return bce_with_logits_loss(x, y, pos_weight=POS_WEIGHT)


_TORCH_LOSS: Optional[torch.nn.BCEWithLogitsLoss] = None


def torch_bce(x: Tensor, y: Tensor) -> Tensor:
    global _TORCH_LOSS
    if _TORCH_LOSS is None:
        _TORCH_LOSS = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(POS_WEIGHT))
    out: Tensor = _TORCH_LOSS(x, y)
    return out


IMPLS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "losslab": lambda x, y: bce_with_logits_loss(x, y, pos_weight=POS_WEIGHT),
    "losslab_novalidate": lambda x, y: bce_with_logits_loss(
        x, y, pos_weight=POS_WEIGHT, validate=False
    ),
    "losslab_compiled": losslab.BCEWithLogitsLoss(pos_weight=POS_WEIGHT, compile=True),
    "losslab_old": losslab_old,
    "torch": torch_bce,
}
FLOOR = "x * y"


def inputs(n: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n // CLASSES, CLASSES, generator=g).mul_(3.0).requires_grad_()
    y = (torch.rand(n // CLASSES, CLASSES, generator=g) < 0.1).float()
    return x, y


def reference(x: Tensor, y: Tensor) -> Tensor:
    """float64 formula, written independently: w y softplus(-x) + (1 - y) softplus(x), mean."""
    return (POS_WEIGHT * y * F.softplus(-x) + (1.0 - y) * F.softplus(x)).mean()


def check(n: int) -> dict[str, float]:
    """Every implementation agrees with the float64 formula, in value and gradient.

    Returns each one's largest relative gradient error. torch's backward,
    (1 + (w - 1) y) sigmoid(x) - w y, cancels for y = 1 and large x (relative errors
    near 1e-2 at x = 3.5), so it is held to an absolute tolerance of 1e-6 of the largest
    gradient instead of the relative one.
    """
    x, y = inputs(n)
    x64 = x.detach().double().requires_grad_()
    want = reference(x64, y.double())
    (want_grad,) = torch.autograd.grad(want, x64)
    errors = {}
    for name, fn in IMPLS.items():
        value = fn(x, y)
        (grad,) = torch.autograd.grad(value, x)
        torch.testing.assert_close(value.double(), want, rtol=1e-5, atol=0, msg=f"{name}: value")
        rtol, atol = (0.0, 1e-6 * want_grad.abs().max().item()) if name == "torch" else (1e-4, 0.0)
        torch.testing.assert_close(
            grad.double(), want_grad, rtol=rtol, atol=atol, msg=f"{name}: gradient"
        )
        errors[name] = ((grad.double() - want_grad).abs() / want_grad.abs()).max().item()
    return errors


def floor_step(x: Tensor, y: Tensor) -> Callable[[], None]:
    xd = x.detach()

    def step() -> None:
        torch.mul(xd, y)

    return step


def peak_mode(case: str, impl: str) -> None:
    torch.set_num_threads(2)
    x, y = inputs(SIZES[case])
    print(json.dumps({"peak": measure_peak_here(step_fn(IMPLS[impl], x, y))}))


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} -> 2 threads")
    print(f"allocator for timing: {allocator()}")
    print("allocator for peak memory: glibc, MALLOC_MMAP_THRESHOLD_=65536 (fresh subprocess)")
    rows = []
    for case, n in SIZES.items():
        t0 = time.perf_counter()
        IMPLS["losslab_compiled"](*inputs(n)).backward()
        print(f"{case}: losslab_compiled first call (compile) {time.perf_counter() - t0:.1f} s")
        errors = check(n)
        print(
            f"{case}: max relative gradient error vs float64: "
            + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        )
        x, y = inputs(n)
        steps = {name: step_fn(fn, x, y) for name, fn in IMPLS.items()}
        steps[FLOOR] = floor_step(x, y)
        times = time_round_robin(steps)
        input_bytes = x.numel() * x.element_size()
        peaks = {
            name: peak_in_subprocess(os.path.abspath(__file__), case, name) / input_bytes
            for name in IMPLS
        }
        base_time, base_peak = times["torch"][0], peaks["torch"]
        floor_time = times[FLOOR][0]
        for name in [*IMPLS, FLOOR]:
            t, spread = times[name]
            peak = peaks.get(name)
            rows.append(
                [
                    case,
                    name,
                    f"{t * 1e3:.3f}",
                    f"{spread:.0%}",
                    f"{t / base_time:.2f}",
                    f"{t / floor_time:.1f}",
                    "-" if peak is None else f"{peak:.2f}",
                    "-" if peak is None else f"{peak / base_peak:.2f}",
                ]
            )
    print_table(
        f"BCE with logits, pos_weight={POS_WEIGHT}, forward + backward, float32, 2 threads "
        "(ratios vs torch.nn.BCEWithLogitsLoss and vs x * y)",
        [
            "size",
            "impl",
            "ms/step",
            "spread",
            "time/torch",
            "time/(x*y)",
            "peak x input",
            "peak/torch",
        ],
        rows,
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        peak_mode(sys.argv[2], sys.argv[3])
    else:
        main()
