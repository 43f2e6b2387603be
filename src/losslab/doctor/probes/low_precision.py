"""Half precision: float16 and bfloat16 inputs, and float32 inputs under
``torch.autocast("cpu", dtype=torch.bfloat16)``.

For each mode the loss must be finite, its gradient finite, and its value close to the
float32 value. The float32 reference for half inputs is computed from the *same rounded*
inputs (the rounding of the inputs is the caller's choice; what is checked is the loss's own
arithmetic); under autocast the reference is the plain float32 call.

Tolerances: ``|half - float32| <= rtol * scale`` with ``scale = max(|float32 value|,
max |pred|, 0.1)``. A computation in a half dtype errs by about one unit roundoff times its
intermediate values, and those are at least as large as the inputs (``softplus(12) - 11.4``
loses the digits of 12, not of 0.6): scaling by the inputs as well as by the result keeps
sound code computed in half precision from being flagged for the cancellation it cannot
avoid, while a loss that drops whole terms (``log(1 - p + 1e-7)`` at ``p`` rounded to 1 is
-16 instead of -12) is still far outside. The floor keeps tiny losses from failing on noise.

* float16: 1e-3. Unit roundoff is 2**-11 = 4.9e-4: the rounding of the result itself costs
  up to one, a loss computed in float32 and cast back (what torch's losses do) stays within
  it, and a few float16 operations fit in about two.
* bfloat16 and autocast: 1e-2. Unit roundoff is 2**-8 = 3.9e-3, so 1e-2 is about 2.5 of
  them: the result's rounding plus a couple of bfloat16 operations.

A function that is not deterministic (its float32 value changes between two identical
calls) is only checked for finiteness: the determinism probe reports the randomness.

Beyond the tolerance: warning (evidence both values). NaN/inf where the float32 value (and
gradient) is finite and inside the dtype's range: error; NaN/inf in float32 as well on these
realistic inputs: error too (half precision cannot do better). A non-finite half result whose
float32 value does not fit the dtype (fp16 tops out at 65504) is info: any loss returning
the input's dtype overflows there. A torch operator without a CPU half kernel
("... not implemented for 'Half'") is info: a torch CPU limitation, not a defect.

Samples: the canonical sample and, for logits and scores, the same with its largest
magnitude scaled to 12 (and its negation, so that confident elements are both right and
wrong), where ``exp`` overflows float16 (exp(11.1) > 65504) and ``sigmoid`` rounds to
exactly 1 in float16 and bfloat16 but not in float32.
"""

from __future__ import annotations

import contextlib
import re
from typing import Optional, Union

import torch
from torch import Tensor

from losslab.doctor._call import CallFailed
from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import (
    FIX_LOGITS,
    FIX_VALUES,
    GuardedProbe,
    call_loss,
    describe,
    first_bad,
    grad_of,
    num,
    prepare,
)

__all__ = ["PROBE", "LowPrecisionProbe"]

NAME = "low_precision"

RTOL = {torch.float16: 1e-3, torch.bfloat16: 1e-2}
SKIPPED = "skipped"  # _one's verdict when a run cannot be judged
FLOOR = 0.1  # errors are taken relative to max(|float32 value|, max |pred|, FLOOR)
SATURATE = 12.0  # exp(12) = 1.6e5 > 65504; sigmoid(12) == 1 in fp16/bf16, 1 - 6e-6 in fp32

FIX_UPCAST = (
    "compute in float32 inside (x = x.float()) and return the input's dtype, "
    "as torch's own losses do"
)
_UNSUPPORTED = re.compile(
    r"not implemented for '(Half|BFloat16)'|not supported for (Half|BFloat16)"
    r"|Low precision dtypes not supported|Unsupported dtype (Half|BFloat16)"
    r"|must be either float or double|types other than float and double"
)


def _unsupported(exc: CallFailed) -> bool:
    """A torch operator without a CPU kernel for the half dtype."""
    return isinstance(exc.error, (RuntimeError, NotImplementedError)) and bool(
        _UNSUPPORTED.search(str(exc.error))
    )


def _input_scale(pred: Tensor) -> float:
    """The largest finite magnitude of the prediction (0 when there is none)."""
    p = pred.detach()
    if not p.is_floating_point() or p.numel() == 0:
        return 0.0
    finite = p[torch.isfinite(p)]
    return float(finite.abs().max()) if finite.numel() else 0.0


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


class LowPrecisionProbe(GuardedProbe):
    name = NAME
    title = "float16/bfloat16 inputs and bfloat16 autocast"

    def _samples(self, ctx: Context) -> list[tuple[str, Sample]]:
        if not ctx.samples:
            return []
        s = ctx.samples[0]
        out = [(s.note or "canonical sample", s)]
        p = s.pred
        if (
            ctx.input_kind in ("logits", "scores")
            and p.is_floating_point()
            and p.numel()
            and 0 < float(p.detach().abs().max()) < SATURATE
        ):
            scaled = p.detach() * (SATURATE / float(p.detach().abs().max()))
            note = f"{ctx.input_kind} scaled to |max| = {SATURATE:g}"
            out.append((note, Sample(scaled, s.target, s.kwargs, note)))
            # the same with the sign flipped: the confident elements that were right are wrong
            note = f"{ctx.input_kind} scaled to |max| = {SATURATE:g}, sign flipped"
            out.append((note, Sample(-scaled, s.target, s.kwargs, note)))
        return out

    def _run(self, ctx: Context) -> list[Finding]:
        samples = self._samples(ctx)
        if not samples:
            return [Finding(NAME, "ok", "no sample to check")]
        findings: list[Finding] = []
        checked: list[str] = []
        reported: set[tuple[str, str, str]] = set()
        for note, sample in samples:
            for mode in ("float16", "bfloat16", "autocast"):
                found = self._one(ctx, note, sample, mode)
                if found is None:
                    checked.append(f"{mode} / {note}")
                    continue
                if not isinstance(found, Finding):
                    continue
                # one finding per mode and kind of problem: a crash or a missing kernel
                # repeats on every sample, the first sample that shows it is evidence enough
                kind = "crash" if "error" in found.evidence else found.message.split(" ")[0]
                key = (mode, found.severity, kind)
                if key not in reported:
                    reported.add(key)
                    findings.append(found)
        if not checked and not findings:
            findings.append(
                Finding(
                    NAME,
                    "info",
                    "not checked: no finite float32 reference (the float32 call fails or "
                    "returns no floating-point tensor)",
                )
            )
        elif checked and not any(f.severity in ("warning", "error") for f in findings):
            findings.append(
                Finding(
                    NAME,
                    "ok",
                    f"finite and close to float32 in {len(checked)} half-precision run(s)",
                    evidence={"checked": checked},
                )
            )
        return findings

    # --------------------------------------------------------------------------- one run
    def _reference(
        self, ctx: Context, sample: Sample, dtype: Optional[torch.dtype]
    ) -> Optional[tuple[Tensor, Optional[Tensor], bool]]:
        """The float32 value and gradient for the sample's inputs rounded to ``dtype``, and
        whether a second identical call gives the same value."""
        if dtype is None:
            rounded = sample
        else:
            p, t, kw = prepare(sample, dtype=dtype, grad=False)
            rounded = Sample(p, t, kw, sample.note)
        pred, target, kwargs = prepare(rounded, dtype=torch.float32)
        out, failed = call_loss(ctx, pred, target, kwargs)
        if failed is not None or not isinstance(out, Tensor) or not out.is_floating_point():
            return None
        if first_bad(out) is not None:
            return out.detach().double(), None, True
        g, _ = grad_of(ctx, out, pred)
        pred2, target2, kwargs2 = prepare(rounded, dtype=torch.float32, grad=False)
        again, failed = call_loss(ctx, pred2, target2, kwargs2)
        same = (
            isinstance(again, Tensor)
            and again.shape == out.shape
            and torch.equal(again.detach(), out.detach())
        )
        return out.detach().double(), (g.detach().double() if g is not None else None), same

    def _one(self, ctx: Context, note: str, sample: Sample, mode: str) -> Union[Finding, str, None]:
        """A finding, None when the run is fine, SKIPPED when it could not be judged."""
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(mode)
        label = f"{mode} inputs" if dtype is not None else "float32 under autocast(cpu, bfloat16)"
        rtol = RTOL[dtype or torch.bfloat16]
        ref = self._reference(ctx, sample, dtype)
        if ref is None:
            return SKIPPED  # float32 itself fails: other probes report it
        ref_value, ref_grad, deterministic = ref
        ref_bad = first_bad(ref_value)
        pred, target, kwargs = prepare(sample, dtype=dtype or torch.float32)
        base = {
            "sample": note,
            "mode": label,
            "pred": describe(pred),
            "target": describe(target),
        }
        guard = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if dtype is None
            else contextlib.nullcontext()
        )
        try:
            with guard:
                out, failed = call_loss(ctx, pred, target, kwargs)
        except Exception as exc:  # entering/leaving autocast itself
            return Finding(
                NAME, "info", f"{label}: autocast unavailable: {exc}"[:200], evidence=base
            )
        if failed is not None:
            if _unsupported(failed):
                return Finding(
                    NAME,
                    "info",
                    f"{label}: a torch operator has no CPU kernel for this dtype (a torch CPU "
                    f"limitation, not a defect): {failed.reason}",
                    evidence={**base, "error": failed.reason},
                )
            return Finding(
                NAME,
                "warning",
                f"fails on {label}: {failed.reason}",
                fix=FIX_UPCAST + "; create constants with dtype=pred.dtype",
                evidence={**base, "error": failed.reason},
            )
        if not isinstance(out, Tensor) or not out.is_floating_point():
            return SKIPPED  # the returns_tensor probe reports it
        limit = torch.finfo(out.dtype).max
        fits = float(ref_value.abs().max()) <= limit if ref_value.numel() else True
        bad = first_bad(out)
        if ref_bad is not None:
            if bad is None:
                return SKIPPED
            # a realistic input, not an extreme one: NaN in float32 is NaN in half too
            return Finding(
                NAME,
                "error",
                f"non-finite loss ({bad[1]}) with {label} on {note}, and in float32 as well "
                f"({ref_bad[1]})",
                fix=FIX_LOGITS + "; " + FIX_VALUES,
                evidence={
                    **base,
                    "index": bad[0],
                    "value": bad[1],
                    "float32_value": num(ref_value.sum()),
                    "output": describe(out),
                },
            )
        if bad is not None:
            index, value = bad
            evidence = {
                **base,
                "index": index,
                "value": value,
                "float32_value": num(ref_value.sum()),
                "output": describe(out),
            }
            if not fits:
                return Finding(
                    NAME,
                    "info",
                    f"{label}: the loss ({num(ref_value.abs().max())} in float32) exceeds "
                    f"{_name(out.dtype)}'s range, so the {_name(out.dtype)} result overflows",
                    evidence=evidence,
                )
            return Finding(
                NAME,
                "error",
                f"non-finite loss ({value}) with {label} (float32 gives "
                f"{num(ref_value.sum())}) on {note}",
                fix=FIX_UPCAST + "; " + FIX_LOGITS,
                evidence=evidence,
            )
        got = out.detach().double()
        if got.shape == ref_value.shape:
            err = float((got - ref_value).abs().max()) if got.numel() else 0.0
            got_v, ref_v = num(got.sum()), num(ref_value.sum())
        else:
            err = abs(float(got.sum()) - float(ref_value.sum()))
            got_v, ref_v = num(got.sum()), num(ref_value.sum())
        scale = max(
            float(ref_value.abs().max()) if ref_value.numel() else 0.0,
            _input_scale(sample.pred),
            FLOOR,
        )
        rel = err / scale
        if deterministic and not rel <= rtol:
            return Finding(
                NAME,
                "warning",
                f"{label}: loss {got_v} against {ref_v} in float32 (relative error "
                f"{rel:.2g} > {rtol:g}) on {note}",
                fix=FIX_UPCAST,
                evidence={
                    **base,
                    "value": got_v,
                    "float32_value": ref_v,
                    "relative_error": num(rel),
                    "rtol": rtol,
                    "scale": num(scale),
                },
            )
        g, reason = grad_of(ctx, out, pred)
        if reason is not None:
            if _UNSUPPORTED.search(reason):
                return Finding(
                    NAME,
                    "info",
                    f"{label}: the backward needs a torch operator without a CPU kernel for "
                    f"this dtype (a torch CPU limitation): {reason}",
                    evidence={**base, "error": reason},
                )
            return Finding(
                NAME,
                "warning",
                f"the backward fails with {label}: {reason}",
                fix=FIX_UPCAST,
                evidence={**base, "error": reason},
            )
        if g is None:
            return None
        bad = first_bad(g)
        if bad is None:
            return None
        index, value = bad
        evidence = {**base, "index": index, "gradient": value, "value": got_v}
        g_limit = torch.finfo(g.dtype).max
        if ref_grad is None or first_bad(ref_grad) is not None:
            return None  # the float32 gradient is not finite either: extremes reports that
        if float(ref_grad.abs().max()) > g_limit:
            return Finding(
                NAME,
                "info",
                f"{label}: the gradient ({num(ref_grad.abs().max())} in float32) exceeds "
                f"{_name(g.dtype)}'s range",
                evidence=evidence,
            )
        return Finding(
            NAME,
            "error",
            f"non-finite gradient ({value}) with {label} on {note} (finite in float32)",
            fix=FIX_UPCAST + "; " + FIX_LOGITS,
            evidence=evidence,
        )


PROBE = LowPrecisionProbe()
