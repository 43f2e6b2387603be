"""Overlap losses (Dice, Jaccard, Tversky): losslab's analytic backward against autograd and MONAI.

Forward + backward time (round-robin in one process, median of block means, 2 threads) and
peak extra memory (fresh subprocess, MALLOC_MMAP_THRESHOLD_=65536, VmHWM - VmRSS over one
step, as a multiple of the logits' size; 1.0 is the new gradient itself). Timing runs under the
allocator settings of the calling environment (printed; glibc defaults unless MALLOC_* is set).

Cases (float32 logits, per-image scores averaged over images and classes):

* ``dice``: multiclass soft Dice, logits (8, 6, 256, 256), class-id target (8, 256, 256).
* ``jaccard``, ``tversky`` (alpha 0.3 on FP, beta 0.7 on FN): the same input.
* ``dice_binary``: binary Dice with a sigmoid, logits (8, 1, 512, 512), float 0/1 target.

Rows:

* ``losslab``: the public function (``mode``, ``smooth`` below, everything else default:
  ``aggregate="image"``, ``empty="ratio"``, all classes, ``validate=True``: one class-id check);
  ``losslab_novalidate`` skips that check.
* ``losslab_compiled``: ``torch.compile`` of a lambda calling the function with
  ``validate=False`` (the one-off compile time is printed apart from the table).
* ``autograd``: the same formula written straightforwardly (softmax or sigmoid, a one-hot
  target, three sums, the ratio) under plain autograd.
* ``monai``: ``monai.losses.DiceLoss(softmax=True, to_onehot_y=True)`` with the target as
  (B, 1, H, W) ids, as MONAI wants it (``jaccard=True`` for the Jaccard case,
  ``TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7)`` for Tversky,
  ``DiceLoss(sigmoid=True)`` for the binary case), all other options at MONAI's defaults:
  ``smooth_nr = smooth_dr = 1e-5``, ``include_background=True``, ``batch=False``,
  ``reduction="mean"`` over images and classes. losslab computes the same quantity with
  ``smooth=1e-5`` (its ``aggregate="image"`` with ``reduction="mean"`` is MONAI's mean over
  (B, C), every class counting; its ``eps=1e-6`` floor never acts, the denominators being at
  least ``smooth``) and, for Jaccard, ``smooth=5e-6``: MONAI's Jaccard is
  (2 TP + s) / (2 (TP + FP + FN) + s), i.e. ours with s / 2. The values are checked to agree
  to 1e-4 relative before timing (all rows are also checked against float64, value and
  gradient).

Ratios are against MONAI when it is importable (``make bench-anchors``), else against
``autograd``; the ``vs autograd`` column is always there.

Run: .venv-anchors/bin/python benchmarks/dice.py  (or .venv/bin/python: no MONAI rows)
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Optional

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

from losslab.functional import dice_loss, jaccard_loss, tversky_loss

try:
    import monai.losses as monai_losses
except ImportError:  # the plain .venv: no anchor rows
    monai_losses = None

SMOOTH = 1e-5  # MONAI's smooth_nr = smooth_dr
ALPHA, BETA = 0.3, 0.7
LossFn = Callable[[Tensor, Tensor], Tensor]


def _ratio(numerator: Tensor, denominator: Tensor, smooth: float) -> Tensor:
    return (numerator + smooth) / (denominator + smooth)


def plain_scores(case: str, x: Tensor, y: Tensor) -> Tensor:
    """The straightforward formula (one-hot target), per (image, class) loss, any dtype."""
    if case == "dice_binary":
        p, t = torch.sigmoid(x), y
    else:
        p = torch.softmax(x, dim=1)
        t = F.one_hot(y, x.shape[1]).permute(0, 3, 1, 2).to(x.dtype)
    dims = tuple(range(2, x.dim()))
    tp = (p * t).sum(dims)
    psum, tsum = p.sum(dims), t.sum(dims)
    if case == "jaccard":
        return 1.0 - _ratio(tp, psum + tsum - tp, SMOOTH / 2)
    if case == "tversky":
        return 1.0 - _ratio(tp, tp + ALPHA * (psum - tp) + BETA * (tsum - tp), SMOOTH)
    return 1.0 - _ratio(2.0 * tp, psum + tsum, SMOOTH)


def autograd_loss(case: str) -> LossFn:
    return lambda x, y: plain_scores(case, x, y).mean()


def losslab_loss(case: str, validate: bool = True) -> LossFn:
    if case == "dice_binary":
        return lambda x, y: dice_loss(x, y, mode="binary", smooth=SMOOTH, validate=validate)
    if case == "jaccard":  # MONAI's (2 TP + s) / (2 (TP + FP + FN) + s): ours with s / 2
        return lambda x, y: jaccard_loss(
            x, y, mode="multiclass", smooth=SMOOTH / 2, validate=validate
        )
    if case == "tversky":
        return lambda x, y: tversky_loss(
            x, y, mode="multiclass", alpha=ALPHA, beta=BETA, smooth=SMOOTH, validate=validate
        )
    return lambda x, y: dice_loss(x, y, mode="multiclass", smooth=SMOOTH, validate=validate)


def monai_loss(case: str) -> Optional[LossFn]:
    if monai_losses is None:
        return None
    if case == "dice_binary":
        binary = monai_losses.DiceLoss(sigmoid=True)
        return lambda x, y: binary(x, y)
    if case == "tversky":
        module: Any = monai_losses.TverskyLoss(
            softmax=True, to_onehot_y=True, alpha=ALPHA, beta=BETA
        )
    else:
        module = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, jaccard=case == "jaccard")
    return lambda x, y: module(x, y.unsqueeze(1))  # ids as (B, 1, H, W)


CASES = {
    "dice": (8, 6, 256, 256),
    "jaccard": (8, 6, 256, 256),
    "tversky": (8, 6, 256, 256),
    "dice_binary": (8, 1, 512, 512),
}
_COMPILED: dict[str, LossFn] = {}


def implementations(case: str) -> dict[str, LossFn]:
    if case not in _COMPILED:
        _COMPILED[case] = torch.compile(losslab_loss(case, validate=False))
    impls = {
        "losslab": losslab_loss(case),
        "losslab_novalidate": losslab_loss(case, validate=False),
        "losslab_compiled": _COMPILED[case],
        "autograd": autograd_loss(case),
    }
    anchor = monai_loss(case)
    if anchor is not None:
        impls["monai"] = anchor
    return impls


def inputs(case: str) -> tuple[Tensor, Tensor]:
    """Logits of scale 2 (confident but not saturated); targets with blobs of classes."""
    shape = CASES[case]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).mul_(2.0)
    b, c, h, w = shape
    # Piecewise-constant regions (16 x 16 tiles) with some noise, like label maps.
    tiles = torch.randint(0, max(c, 2), (b, h // 16, w // 16), generator=g)
    y = tiles.repeat_interleave(16, 1).repeat_interleave(16, 2)
    flip = torch.rand(b, h, w, generator=g) < 0.05
    y = torch.where(flip, torch.randint(0, max(c, 2), (b, h, w), generator=g), y)
    if c == 1:
        return x.requires_grad_(), y.unsqueeze(1).float()
    return x.requires_grad_(), y


def check(case: str) -> dict[str, float]:
    """Every row agrees with the float64 formula (value 1e-5, gradient 1e-4 relative to its
    largest entry); MONAI also with losslab to 1e-4 relative. Returns the gradient errors."""
    x, y = inputs(case)
    x64 = x.detach().double().requires_grad_()
    y64 = y.double() if y.is_floating_point() else y
    want = autograd_loss(case)(x64, y64)
    (want_grad,) = torch.autograd.grad(want, x64)
    scale = want_grad.abs().max().item()
    errors = {}
    values = {}
    for name, fn in implementations(case).items():
        value = fn(x, y)
        (grad,) = torch.autograd.grad(value, x)
        values[name] = value.item()
        torch.testing.assert_close(value.double(), want, rtol=1e-5, atol=0, msg=f"{name}: value")
        torch.testing.assert_close(
            grad.double(), want_grad, rtol=0, atol=1e-4 * scale, msg=f"{name}: gradient"
        )
        errors[name] = (grad.double() - want_grad).abs().max().item() / scale
    if "monai" in values:
        rel = abs(values["monai"] - values["losslab"]) / abs(values["monai"])
        assert rel < 1e-4, f"{case}: MONAI {values['monai']} vs losslab {values['losslab']}"
    return errors


def peak_mode(case: str, impl: str) -> None:
    torch.set_num_threads(2)
    x, y = inputs(case)
    print(json.dumps({"peak": measure_peak_here(step_fn(implementations(case)[impl], x, y))}))


def main(rounds: int = 15) -> None:
    print(f"torch {torch.__version__}, 2 threads; allocator for timing: {allocator()}")
    print("allocator for peak memory: glibc, MALLOC_MMAP_THRESHOLD_=65536 (fresh subprocess)")
    if monai_losses is None:
        print("anchor monai not installed: run `make bench-anchors`")
    rows = []
    for case in CASES:
        x, y = inputs(case)
        t0 = time.perf_counter()
        implementations(case)["losslab_compiled"](x, y).backward()
        compile_s = time.perf_counter() - t0
        errors = check(case)
        print(
            f"{case}: losslab_compiled first call (compile) {compile_s:.1f} s; max gradient "
            "error / max |gradient| vs float64: "
            + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        )
        impls = implementations(case)
        times = time_round_robin({n: step_fn(fn, x, y) for n, fn in impls.items()}, rounds)
        input_bytes = x.numel() * x.element_size()
        script = os.path.abspath(__file__)
        # losslab_novalidate allocates what losslab does (the check's buffers are (B, H, W) bools)
        peaks = {
            n: peak_in_subprocess(script, case, n) / input_bytes
            for n in impls
            if n != "losslab_novalidate"
        }
        base = "monai" if "monai" in impls else "autograd"
        for name in impls:
            t, spread = times[name]
            rows.append(
                [
                    case,
                    name,
                    f"{t * 1e3:.2f}",
                    f"{spread:.0%}",
                    f"{times[base][0] / t:.2f}",
                    f"{times['autograd'][0] / t:.2f}",
                    f"{peaks[name]:.2f}" if name in peaks else "-",
                    f"{peaks[name] / peaks[base]:.2f}" if name in peaks else "-",
                ]
            )
    base = "MONAI" if monai_losses is not None else "plain autograd"
    print_table(
        "Overlap losses, forward + backward, float32, 2 threads (speedup = base time / time, "
        f"base = {base}; target: dice >= 1.4x MONAI with peak <= 2.5x the logits)",
        [
            "case",
            "impl",
            "ms/step",
            "spread",
            "speedup",
            "vs autograd",
            "peak x logits",
            "peak/base",
        ],
        rows,
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        peak_mode(sys.argv[2], sys.argv[3])
    else:
        main()
