"""Lovasz-softmax and Lovasz hinge: losslab (radix sorts, analytic backward) against smp.

Forward + backward time (round-robin in one process, median of block means, 2 threads) and
peak extra memory (fresh subprocess, MALLOC_MMAP_THRESHOLD_=65536, VmHWM - VmRSS over one
step, as a multiple of the logits' size), float32:

* ``softmax batch``: logits 8 x 6 x 128 x 128, class ids, against
  ``segmentation_models_pytorch.losses.LovaszLoss(mode="multiclass", per_image=False)``.
  smp applies a softmax, pools the whole batch per class and averages over the classes
  present in the target (the paper's ``classes="present"``): that is losslab's
  ``lovasz_softmax_loss(aggregate="batch", present_only=True)`` (the default
  ``mode="multiclass"``, ``activation="auto"`` = softmax, all classes, no ignore_index).
* ``softmax image``: the same input per image, losslab's defaults (``aggregate="image"``),
  against ``LovaszLoss(mode="multiclass", per_image=True)``. smp averages an image without
  any present class in as 0 where losslab leaves it out (``present_only`` is the family's
  ``empty="skip"``); every image of this input has all six classes, so both agree.
* ``hinge batch``: logits 8 x 1 x 256 x 256, hard float targets (30% foreground), against
  ``LovaszLoss(mode="binary")`` (``per_image=False``: the whole batch as one set), which is
  losslab's ``lovasz_hinge_loss(aggregate="batch")``.

Rows: ``losslab`` (the public function, eager, with its default ``validate=True``),
``losslab_compiled`` (``torch.compile`` of a lambda calling it with ``validate=False``: the
same integer-key radix sorts, traced out of place; the one-off compile time is printed
apart), ``autograd`` (the same formula written plainly: one batched stable ``torch.sort``
of the float errors, the increments of the Jaccard loss in closed form under ``no_grad``, a
gather and a dot under autograd; losslab's previous implementation) and ``smp`` when
segmentation-models-pytorch is importable (run ``make bench-anchors``). Speed-ups and peak
ratios are against smp when present, else against ``autograd``. Issue 9's target: softmax
batch at least 2.8x faster than smp, at no more peak memory.
Values and gradients of losslab and ``autograd`` are checked first against ``autograd`` in
float64, sorted in the float32 errors' order (float32 rounding reorders near-tied errors of
confident pixels, which moves their increments by a few ranks in every float32
implementation alike): value rtol 1e-5, gradient rtol 1e-5 with atol 1e-6 x the largest
gradient (elements far below it lose relative precision in the softmax's backward, in
autograd's too); smp's value against losslab's (rtol 1e-4; its gradient is not compared: it
differences consecutive Jaccard values in float32).
Timing runs under glibc's default allocator settings (printed).

Run: .venv-anchors/bin/python benchmarks/lovasz.py   (or .venv/bin/python, without smp)
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable, Optional

import torch
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

from losslab.functional import lovasz_hinge_loss, lovasz_softmax_loss

try:
    import segmentation_models_pytorch as smp
except ImportError:  # the anchor environment is optional
    smp = None

Fn = Callable[[Tensor, Tensor], Tensor]
CASES = {
    "softmax batch": ("softmax", (8, 6, 128, 128), "batch"),
    "softmax image": ("softmax", (8, 6, 128, 128), "image"),
    "hinge batch": ("hinge", (8, 1, 256, 256), "batch"),
}


# ---------------------------------------------------------------------------- plain autograd
def _increments(gt: Tensor) -> Tensor:
    """J(first i) - J(first i - 1) along the last dim of sorted hard labels, closed form."""
    pos_total = gt.sum(-1, keepdim=True)
    union = pos_total + (1.0 - gt).cumsum(-1)
    union_prev = union - (1.0 - gt)
    rank_prev = torch.arange(gt.shape[-1], dtype=gt.dtype, device=gt.device)
    inter_prev = pos_total - gt.cumsum(-1) + gt
    first = 1.0 / union
    later = first * (inter_prev + gt * rank_prev) / union_prev.clamp_min(1.0)
    return torch.where(union_prev > 0, later, first)


def _extension(errors: Tensor, gt: Tensor, key: Optional[Tensor] = None) -> Tensor:
    """Lovasz extension per leading index of (..., M) errors: sort, increments, dot.

    ``key`` (the errors of another precision) sorts instead of ``errors`` when given.
    """
    key = errors if key is None else key
    order = torch.sort(key.detach(), dim=-1, descending=True, stable=True).indices
    with torch.no_grad():
        inc = _increments(gt.gather(-1, order))
    return (errors.gather(-1, order) * inc).sum(-1)


def _softmax_errors(x: Tensor, ids: Tensor, aggregate: str) -> tuple[Tensor, Tensor]:
    b, c = x.shape[:2]
    p = torch.softmax(x.reshape(b, c, -1), 1)
    fg = ids.reshape(b, 1, -1) == torch.arange(c, device=x.device).view(1, c, 1)
    errors = torch.where(fg, 1.0 - p, p)
    gt = fg.to(p.dtype)
    if aggregate == "batch":
        errors = errors.transpose(0, 1).reshape(1, c, -1)
        gt = gt.transpose(0, 1).reshape(1, c, -1)
    return errors, gt


def autograd_softmax(
    x: Tensor, ids: Tensor, aggregate: str, order_of: Optional[Tensor] = None
) -> Tensor:
    """Lovasz-softmax, present classes, no ignore: the formula under autograd.

    ``order_of``: logits whose errors give the sort order (float32 ones for a float64 check).
    """
    errors, gt = _softmax_errors(x, ids, aggregate)
    key = None if order_of is None else _softmax_errors(order_of, ids, aggregate)[0]
    per_class = _extension(errors, gt, key)
    keep = (gt.sum(-1) > 0).to(errors.dtype)
    per_unit = (per_class * keep).sum(1) / keep.sum(1).clamp_min(1.0)
    return per_unit.mean()


def _hinge_errors(x: Tensor, t: Tensor, aggregate: str) -> tuple[Tensor, Tensor]:
    shape = (1, -1) if aggregate == "batch" else (x.shape[0], -1)
    xs, ts = x.reshape(shape), t.reshape(shape).to(x.dtype)
    return 1.0 - xs * (2.0 * ts - 1.0), ts


def autograd_hinge(
    x: Tensor, t: Tensor, aggregate: str, order_of: Optional[Tensor] = None
) -> Tensor:
    """Lovasz hinge, no ignore: the formula under autograd (``order_of`` as above)."""
    errors, ts = _hinge_errors(x, t, aggregate)
    key = errors if order_of is None else _hinge_errors(order_of, t, aggregate)[0]
    order = torch.sort(key.detach(), dim=-1, descending=True, stable=True).indices
    with torch.no_grad():
        inc = _increments(ts.gather(-1, order))
    return (torch.relu(errors).gather(-1, order) * inc).sum(-1).mean()


# ---------------------------------------------------------------------------- implementations
_COMPILED: dict[str, Fn] = {}


def impls(case: str) -> dict[str, Fn]:
    kind, _, aggregate = CASES[case]
    out: dict[str, Fn]
    if kind == "softmax":

        def eager(x: Tensor, y: Tensor, validate: bool = True) -> Tensor:
            return lovasz_softmax_loss(x, y, aggregate=aggregate, validate=validate)

        out = {"losslab": eager}
        if case not in _COMPILED:
            _COMPILED[case] = torch.compile(lambda x, y: eager(x, y, validate=False))
        out["losslab_compiled"] = _COMPILED[case]
        out["autograd"] = lambda x, y: autograd_softmax(x, y, aggregate)
        if smp is not None:
            out["smp"] = smp.losses.LovaszLoss(mode="multiclass", per_image=aggregate == "image")
    else:

        def eager(x: Tensor, y: Tensor, validate: bool = True) -> Tensor:
            return lovasz_hinge_loss(x, y, aggregate=aggregate, validate=validate)

        out = {"losslab": eager}
        if case not in _COMPILED:
            _COMPILED[case] = torch.compile(lambda x, y: eager(x, y, validate=False))
        out["losslab_compiled"] = _COMPILED[case]
        out["autograd"] = lambda x, y: autograd_hinge(x, y, aggregate)
        if smp is not None:
            out["smp"] = smp.losses.LovaszLoss(mode="binary", per_image=aggregate == "image")
    return out


def inputs(case: str) -> tuple[Tensor, Tensor]:
    kind, shape, _ = CASES[case]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g).mul_(2.0).requires_grad_()
    if kind == "softmax":
        y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    else:
        y = (torch.rand(*shape, generator=g) < 0.3).float()
    return x, y


def check(case: str) -> dict[str, float]:
    """losslab's rows match the float64 formula; smp's value matches losslab's.

    Returns each implementation's largest gradient error (vs float64) relative to the
    largest gradient.
    """
    kind, _, aggregate = CASES[case]
    x, y = inputs(case)
    x64 = x.detach().double().requires_grad_()
    y64 = y if kind == "softmax" else y.double()
    reference = autograd_softmax if kind == "softmax" else autograd_hinge
    # The float32 order: float32 rounding reorders near-tied errors, which moves a pixel's
    # increment by a few ranks (3e-5 of the largest gradient at 8x6x128x128), in every
    # float32 implementation alike; the check is about the arithmetic.
    want = reference(x64, y64, aggregate, order_of=x.detach())
    (want_grad,) = torch.autograd.grad(want, x64)
    scale = want_grad.abs().max().item()
    errors = {}
    values = {}
    grads = {}
    for name, fn in impls(case).items():
        value = fn(x, y)
        values[name] = value.item()
        if name == "smp":
            continue
        (grad,) = torch.autograd.grad(value, x)
        grads[name] = grad
        torch.testing.assert_close(value.double(), want, rtol=1e-5, atol=0, msg=f"{name}: value")
        torch.testing.assert_close(
            grad.double(), want_grad, rtol=1e-5, atol=1e-6 * scale, msg=f"{name}: gradient"
        )
        errors[name] = (grad.double() - want_grad).abs().max().item() / scale
    if "smp" in values:
        rel = abs(values["smp"] - values["losslab"]) / abs(values["losslab"])
        if rel > 1e-4:
            raise AssertionError(f"{case}: smp {values['smp']} vs losslab {values['losslab']}")
        errors["smp value"] = rel
    return errors


def peak_mode(case: str, impl: str) -> None:
    torch.set_num_threads(2)
    x, y = inputs(case)
    print(json.dumps({"peak": measure_peak_here(step_fn(impls(case)[impl], x, y))}))


def main(rounds: int = 15, only: Optional[list[str]] = None) -> None:
    torch.set_num_threads(2)
    if smp is None:
        print("anchor segmentation-models-pytorch not installed: run `make bench-anchors`")
    print(f"torch {torch.__version__}, 2 threads; allocator for timing: {allocator()}")
    rows = []
    anchor = "smp" if smp is not None else "autograd"
    for case in only or list(CASES):
        x, y = inputs(case)
        fns = impls(case)
        t0 = time.perf_counter()
        fns["losslab_compiled"](x, y).backward()
        print(f"{case}: losslab_compiled first call (compile) {time.perf_counter() - t0:.1f} s")
        errors = check(case)
        print(
            f"{case}: largest gradient error / largest gradient vs float64: "
            + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        )
        times = time_round_robin({name: step_fn(fn, x, y) for name, fn in fns.items()}, rounds)
        input_bytes = x.numel() * x.element_size()
        script = os.path.abspath(__file__)
        peaks = {name: peak_in_subprocess(script, case, name) / input_bytes for name in fns}
        base_time, base_peak = times[anchor][0], peaks[anchor]
        for name in fns:
            t, spread = times[name]
            rows.append(
                [
                    case,
                    name,
                    f"{t * 1e3:.2f}",
                    f"{spread:.0%}",
                    f"{base_time / t:.2f}",
                    f"{peaks[name]:.2f}",
                    f"{peaks[name] / base_peak:.2f}",
                ]
            )
    print_table(
        f"Lovasz losses, forward + backward, float32, 2 threads (speed-up and peak vs {anchor}; "
        "softmax 8x6x128x128, hinge 8x1x256x256)",
        [
            "case",
            "impl",
            "ms/step",
            "spread",
            f"speed-up vs {anchor}",
            "peak x input",
            "peak ratio",
        ],
        rows,
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        peak_mode(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 2 and sys.argv[1] == "--rounds":
        main(int(sys.argv[2]), sys.argv[3:] or None)
    else:
        main()
