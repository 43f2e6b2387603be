"""The analytic gradient matches finite differences: ``torch.autograd.gradcheck`` in float64.

The check runs on a small float64 sample, ``ctx.make_sample(batch=3, dtype=torch.float64)``
(``size`` stays at the task's default: it may be a class count the loss fixes), nudged away
from the places where a loss is legitimately not differentiable: ties (sorting, max, hinge
corners) are broken by a small seeded jitter, probabilities are kept inside [0.02, 0.98]
(clamps), and regression predictions are kept at least 0.05 away from their targets (``|r|``
at 0). Above 64 elements torch's fast (random-projection) mode is used.

Verdicts:

* the gradients match: ok;
* a mismatch where the function is smooth (the one-sided differences agree with each other,
  not with the analytic gradient): error, a wrong custom backward; the evidence gives the
  largest ``|analytic - numerical|``;
* a mismatch only where the one-sided differences disagree (a kink within the step), at two
  different nudged points: info, not differentiable at the sample;
* float64 inputs give a float32 output, or an output identical to the one for the inputs
  rounded to float32: warning, the function computes in float32 (gradcheck is meaningless
  at float32 precision, so it is skipped);
* two identical calls give different values (dropout, sampling inside): info, not checked
  (finite differences of a random function are noise; the determinism probe reports it).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import (
    GuardedProbe,
    call_loss,
    describe,
    grad_of,
    module_as,
    num,
    prepare,
)
from losslab.doctor.probes.bounded_grad import is_distribution

__all__ = ["PROBE", "GradcheckProbe"]

NAME = "gradcheck"

EPS = 1e-6  # finite-difference step (float64: truncation ~1e-12, rounding ~1e-10 * |loss|)
ATOL = 1e-5
RTOL = 1e-3
MAX_COORDS = 64  # coordinates examined one by one to diagnose a failed gradcheck
BATCH = 3  # make_sample(batch=...) for the small sample

FIX_WRONG = (
    "fix the custom backward (compare it with plain autograd on the forward formula), "
    "or drop the autograd.Function and let autograd differentiate"
)
FIX_FLOAT32 = "do not cast to float32 inside (no .float(), no float32 constants): follow pred.dtype"


class _Failed(Exception):
    """The user's function failed inside the finite differences."""


def small_sample(ctx: Context, seed: int) -> Optional[Sample]:
    """A small float64 sample from ``ctx.make_sample``; the canonical sample as a fallback."""
    # ``size`` stays at the task's default: it is the number of classes, the image side, the
    # list length or the horizon, which a loss may fix (class weights, time weights), and
    # for binary and regression it would add a trailing dimension
    tries: list[dict[str, Any]] = [
        {"batch": BATCH, "dtype": torch.float64, "seed": seed},
        {"dtype": torch.float64, "seed": seed},
    ]
    for kw in tries:
        try:
            s = ctx.make_sample(**kw)
        except Exception:
            continue
        if isinstance(s, Sample) and isinstance(s.pred, Tensor) and s.pred.is_floating_point():
            return s
    if ctx.samples:
        return ctx.samples[0]
    return None


def nudge(ctx: Context, sample: Sample, seed: int) -> Tensor:
    """``sample.pred`` in float64 moved off kinks and ties (see the module docstring)."""
    p = sample.pred.detach().to(torch.float64).clone()
    if p.numel() == 0:
        return p
    gen = torch.Generator().manual_seed(1000 + seed)
    jitter = torch.rand(p.shape, generator=gen, dtype=torch.float64) - 0.5  # in [-0.5, 0.5)
    if ctx.input_kind == "probs":
        dist = is_distribution(p)
        p = (p + 0.02 * jitter).clamp(0.02, 0.98)
        if dist:
            p = p / p.sum(1, keepdim=True)
        return p
    p = p + 0.05 * jitter
    t = sample.target
    if (
        ctx.input_kind == "values"
        and isinstance(t, Tensor)
        and t.is_floating_point()
        and t.shape == p.shape
    ):
        r = p - t.to(torch.float64)
        close = r.abs() < 0.05
        p = torch.where(
            close, t.to(torch.float64) + torch.where(r < 0, -0.05, 0.05) + 0.01 * jitter, p
        )
    return p


class GradcheckProbe(GuardedProbe):
    name = NAME
    title = "float64 gradcheck of the backward"

    def _run(self, ctx: Context) -> list[Finding]:
        ctx = module_as(ctx, torch.float64)  # a loss module's float buffers, as .double()
        kinks: list[dict[str, Any]] = []
        for attempt in range(2):
            sample = small_sample(ctx, seed=attempt)
            if sample is None:
                return [Finding(NAME, "info", "no sample to check")]
            p0 = nudge(ctx, sample, attempt)
            pred, target, kwargs = prepare(sample, dtype=torch.float64, pred=p0)
            base = {"sample": sample.note, "pred": describe(pred), "target": describe(target)}
            out, failed = call_loss(ctx, pred, target, kwargs)
            if failed is not None:
                return [
                    Finding(
                        NAME,
                        "info",
                        f"not checked: the function fails on float64 inputs: {failed.reason}",
                        evidence={**base, "error": failed.reason},
                    )
                ]
            if not isinstance(out, Tensor) or not out.is_floating_point() or out.numel() == 0:
                return [Finding(NAME, "info", "not checked: the output is not a float tensor")]
            if attempt == 0:
                if not self._deterministic(ctx, sample, p0, out):
                    return [
                        Finding(
                            NAME,
                            "info",
                            "not checked: two identical calls give different values (finite "
                            "differences of a random function are noise; see determinism)",
                            evidence=base,
                        )
                    ]
                f32 = self._float32(ctx, sample, p0, out, base)
                if f32 is not None:
                    return [f32]
            if not out.requires_grad:
                return [
                    Finding(
                        NAME,
                        "info",
                        "not checked: the output has no gradient path to the prediction",
                        evidence=base,
                    )
                ]
            g, reason = grad_of(ctx, out, pred)
            if reason is not None:
                return [
                    Finding(
                        NAME,
                        "error",
                        f"the backward fails on float64 inputs: {reason}",
                        fix=FIX_WRONG,
                        evidence={**base, "error": reason},
                    )
                ]
            if g is None:
                g = torch.zeros_like(pred)
            if self._torch_gradcheck(ctx, pred, target, kwargs):
                if attempt == 0:
                    return [
                        Finding(
                            NAME,
                            "ok",
                            "analytic gradient matches finite differences (float64)",
                            evidence=base,
                        )
                    ]
                return [
                    Finding(
                        NAME,
                        "info",
                        "not differentiable at the first sample (a kink within the "
                        "finite-difference step); the gradient matches at a second point",
                        evidence={**base, "first": kinks},
                    )
                ]
            try:
                diag = self._diagnose(ctx, pred, target, kwargs, g.detach())
            except _Failed as exc:
                return [
                    Finding(
                        NAME,
                        "info",
                        f"not checked: the function fails near the sample: {exc}",
                        evidence=base,
                    )
                ]
            if diag["smooth_mismatch"]:
                if not all(self._deterministic(ctx, sample, p0, out) for _ in range(4)):
                    # a random function that happened to repeat itself once
                    return [
                        Finding(
                            NAME,
                            "info",
                            "not checked: identical calls give different values (see determinism)",
                            evidence=base,
                        )
                    ]
                return [
                    Finding(
                        NAME,
                        "error",
                        "wrong gradient: the analytic gradient differs from finite differences "
                        f"by up to {diag['max_abs_diff']} where the function is smooth",
                        fix=FIX_WRONG,
                        evidence={**base, **diag},
                    )
                ]
            kinks.append(diag)
        if any(d["kinks"] for d in kinks):
            message = (
                "not differentiable at the sample: the one-sided differences disagree "
                "(kinks within the step) at two nudged points"
            )
        else:
            message = (
                "gradcheck failed at two nudged points, but no examined coordinate "
                "shows a mismatch (a kink or a difference outside the examined coordinates)"
            )
        return [Finding(NAME, "info", message, evidence={"diagnosis": kinks})]

    def _float32(
        self, ctx: Context, sample: Sample, p0: Tensor, out: Tensor, base: dict[str, Any]
    ) -> Optional[Finding]:
        """A warning when the function cannot compute in float64."""
        if out.dtype != torch.float64:
            return Finding(
                NAME,
                "warning",
                f"computes in {str(out.dtype).replace('torch.', '')}: float64 inputs give a "
                f"{str(out.dtype).replace('torch.', '')} loss (gradcheck skipped)",
                fix=FIX_FLOAT32,
                evidence={**base, "output": describe(out)},
            )
        # The same inputs rounded to float32: an identical float64 result means the
        # function rounded its inputs to float32 inside and cast the result back.
        rounded = p0.to(torch.float32).to(torch.float64)
        if torch.equal(rounded, p0):
            return None
        pred, target, kwargs = prepare(sample, dtype=torch.float64, pred=rounded, grad=False)
        out2, failed = call_loss(ctx, pred, target, kwargs)
        if failed is not None or not isinstance(out2, Tensor) or out2.shape != out.shape:
            return None
        same = torch.equal(out2.detach(), out.detach())
        if same and not self._constant(ctx, sample, p0, out):
            return Finding(
                NAME,
                "warning",
                "computes in float32: the float64 loss equals the loss of the inputs rounded "
                "to float32 (gradcheck skipped)",
                fix=FIX_FLOAT32,
                evidence={**base, "value": num(out.detach().sum())},
            )
        return None

    @staticmethod
    def _deterministic(ctx: Context, sample: Sample, p0: Tensor, out: Tensor) -> bool:
        pred, target, kwargs = prepare(sample, dtype=torch.float64, pred=p0, grad=False)
        again, failed = call_loss(ctx, pred, target, kwargs)
        return (
            failed is None
            and isinstance(again, Tensor)
            and again.shape == out.shape
            and bool(torch.equal(again.detach(), out.detach()))
        )

    @staticmethod
    def _constant(ctx: Context, sample: Sample, p0: Tensor, out: Tensor) -> bool:
        """Whether the loss does not move for a 1e-3 change of the prediction."""
        pred, target, kwargs = prepare(
            sample, dtype=torch.float64, pred=p0 * (1 + 1e-3), grad=False
        )
        out3, failed = call_loss(ctx, pred, target, kwargs)
        return (
            failed is not None
            or not isinstance(out3, Tensor)
            or out3.shape != out.shape
            or torch.equal(out3.detach(), out.detach())
        )

    @staticmethod
    def _scalar(ctx: Context, target: Tensor, kwargs: dict[str, Any]) -> Any:
        def f(p: Tensor) -> Tensor:
            # fresh copies of the other inputs: a function that modifies them in place must
            # not shift the point between two finite-difference evaluations
            kw = {k: v.clone() if isinstance(v, Tensor) else v for k, v in kwargs.items()}
            out, failed = call_loss(ctx, p, target.clone(), kw)
            if failed is not None:
                raise _Failed(failed.reason)
            if not isinstance(out, Tensor):
                raise _Failed(f"returned {type(out).__name__}")
            return out.sum()

        return f

    def _torch_gradcheck(
        self, ctx: Context, pred: Tensor, target: Tensor, kwargs: dict[str, Any]
    ) -> bool:
        f = self._scalar(ctx, target, kwargs)
        x = pred.detach().clone().requires_grad_(True)
        try:
            return bool(
                torch.autograd.gradcheck(
                    f,
                    (x,),
                    eps=EPS,
                    atol=ATOL,
                    rtol=RTOL,
                    raise_exception=False,
                    check_undefined_grad=False,
                    fast_mode=x.numel() > MAX_COORDS,
                )
            )
        except Exception:
            return False

    def _diagnose(
        self, ctx: Context, pred: Tensor, target: Tensor, kwargs: dict[str, Any], g: Tensor
    ) -> dict[str, Any]:
        """Per-coordinate central and one-sided differences on up to MAX_COORDS coordinates."""
        f = self._scalar(ctx, target, kwargs)
        x0 = pred.detach().clone()
        n = x0.numel()
        gen = torch.Generator().manual_seed(7)
        coords = (
            torch.randperm(n, generator=gen)[:MAX_COORDS].tolist()
            if n > MAX_COORDS
            else list(range(n))
        )
        with torch.no_grad():
            f0 = float(f(x0))
        worst: dict[str, Any] = {"max_abs_diff": 0.0}
        smooth_mismatch = kink = 0
        flat_g = g.reshape(-1).double()
        for i in coords:
            xp = x0.clone().reshape(-1)
            xm = x0.clone().reshape(-1)
            xp[i] += EPS
            xm[i] -= EPS
            with torch.no_grad():
                fp = float(f(xp.reshape(x0.shape)))
                fm = float(f(xm.reshape(x0.shape)))
            central = (fp - fm) / (2 * EPS)
            forward = (fp - f0) / EPS
            backward = (f0 - fm) / EPS
            analytic = float(flat_g[i])
            diff = abs(analytic - central)
            if not diff <= ATOL + RTOL * abs(central):  # also catches NaN
                if abs(forward - backward) >= max(diff, ATOL):
                    kink += 1
                else:
                    smooth_mismatch += 1
                    if not diff <= worst["max_abs_diff"]:
                        index = [int(j) for j in torch.unravel_index(torch.tensor(i), x0.shape)]
                        worst = {
                            "max_abs_diff": diff if diff == diff else float("inf"),
                            "index": index,
                            "analytic": num(analytic),
                            "numerical": num(central),
                        }
        return {
            **worst,
            "max_abs_diff": num(float(f"{worst['max_abs_diff']:.3g}")) if smooth_mismatch else 0.0,
            "coordinates_checked": len(coords),
            "smooth_mismatch": smooth_mismatch,
            "kinks": kink,
        }


PROBE = GradcheckProbe()
