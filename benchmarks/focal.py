"""Sigmoid focal loss: losslab (analytic backward) against torchvision's formula under autograd.

Forward + backward time (round-robin in one process, median of block means) and peak extra
memory (fresh subprocess, MALLOC_MMAP_THRESHOLD_=65536, VmHWM - VmRSS over one step, as a
multiple of the logits' size) at 2^16 and 2^22 float32 elements, alpha=0.25, gamma=2,
reduction="mean"; "losslab_novalidate" skips the target value check (validate=False). Values
and gradients of both are checked against float64 first.

Run: .venv/bin/python benchmarks/focal.py
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import measure_peak_here, peak_in_subprocess, print_table, step_fn, time_round_robin

from losslab.functional import sigmoid_focal_loss

SIZES = {"2^16": 2**16, "2^22": 2**22}
CLASSES = 16  # logits (n / 16, 16), about 10% positives, as in dense detection


def naive_focal(
    x: torch.Tensor, y: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss's formula, reduction="mean", plain autograd."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return (alpha_t * loss).mean()


IMPLS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "losslab": lambda x, y: sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0),
    "losslab_novalidate": lambda x, y: sigmoid_focal_loss(
        x, y, alpha=0.25, gamma=2.0, validate=False
    ),
    "naive": naive_focal,
}


def inputs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n // CLASSES, CLASSES, generator=g).mul_(3.0).requires_grad_()
    y = (torch.rand(n // CLASSES, CLASSES, generator=g) < 0.1).float()
    return x, y


def check(n: int) -> None:
    """Both implementations agree with the float64 formula, in value and gradient."""
    x, y = inputs(n)
    x64 = x.detach().double().requires_grad_()
    want = naive_focal(x64, y.double())
    (want_grad,) = torch.autograd.grad(want, x64)
    for name, fn in IMPLS.items():
        value = fn(x, y)
        (grad,) = torch.autograd.grad(value, x)
        torch.testing.assert_close(value.double(), want, rtol=1e-5, atol=0, msg=f"{name}: value")
        torch.testing.assert_close(
            grad.double(), want_grad, rtol=1e-4, atol=1e-12, msg=f"{name}: gradient"
        )


def peak_mode(case: str, impl: str) -> None:
    torch.set_num_threads(2)
    x, y = inputs(SIZES[case])
    print(json.dumps({"peak": measure_peak_here(step_fn(IMPLS[impl], x, y))}))


def main() -> None:
    rows = []
    for case, n in SIZES.items():
        check(n)
        x, y = inputs(n)
        times = time_round_robin({name: step_fn(fn, x, y) for name, fn in IMPLS.items()})
        input_bytes = x.numel() * x.element_size()
        peaks = {
            name: peak_in_subprocess(os.path.abspath(__file__), case, name) / input_bytes
            for name in IMPLS
        }
        base_time, base_peak = times["naive"][0], peaks["naive"]
        for name in IMPLS:
            t, spread = times[name]
            rows.append(
                [
                    case,
                    name,
                    f"{t * 1e3:.3f}",
                    f"{spread:.0%}",
                    f"{t / base_time:.2f}",
                    f"{peaks[name]:.2f}",
                    f"{peaks[name] / base_peak:.2f}",
                ]
            )
    print_table(
        "sigmoid focal loss, forward + backward, float32, 2 threads (ratios vs naive autograd)",
        ["size", "impl", "ms/step", "spread", "time ratio", "peak x input", "peak ratio"],
        rows,
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        peak_mode(sys.argv[2], sys.argv[3])
    else:
        main()
