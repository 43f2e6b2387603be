"""Finite forward and backward at extreme inputs: saturated logits, probabilities exactly 0
and 1, values of magnitude 1e4.

Each of ``ctx.extreme_samples`` is called once with a gradient on the prediction; a NaN or
infinite value or gradient is an error (training would stop, or silently poison the weights).
The evidence names the sample, the first bad position and the value seen there (for a
reduced loss with a ``reduction`` argument, the first input element whose own loss is not
finite).

One exception, for value inputs: an infinite (not NaN) loss whose float64 value at 1/100 of
the magnitude already exceeds 1e30 grows exponentially with the prediction (a log link, as
in Poisson's ``exp(log_rate) - y * log_rate``): infinity is its true value at 1e4, so it is a
warning (the inputs are out of any useful range), not a numerical defect. A finite true
value lost to an overflowing intermediate (``log(cosh(x))``) stays an error.

This module also holds the small helpers the numerics probes share (``prepare``,
``call_loss``, ``grad_of``, ``first_bad``, ``num``, ``module_as``): copying a sample to a dtype/device,
calling the user's function and its backward without ever raising, and turning tensors
into JSON-able evidence.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import (
    FIX_GROWTH,
    FIX_LOGITS,
    FIX_PROBS,
    FIX_VALUES,
    FIX_WHERE,
    GROWTH,
    GuardedProbe,
    at,
    call_loss,
    describe,
    first_bad,
    grad_of,
    is_validation,
    num,
    prepare,
)

__all__ = ["PROBE", "ExtremesProbe"]

NAME = "extremes"


# ------------------------------------------------------------------------------ the probe
class ExtremesProbe(GuardedProbe):
    name = NAME
    title = "finite forward and backward at extreme inputs"

    def _run(self, ctx: Context) -> list[Finding]:
        samples = list(ctx.extreme_samples)
        if not samples:
            return [Finding(NAME, "ok", "no extreme inputs for this task")]
        if ctx.samples:
            pred, target, kwargs = prepare(ctx.samples[0], grad=False)
            _, failed = call_loss(ctx, pred, target, kwargs)
            if failed is not None:
                return [
                    Finding(
                        NAME,
                        "info",
                        "not checked: the function fails on the realistic sample already: "
                        + failed.reason,
                        evidence={"sample": ctx.samples[0].note, "error": failed.reason},
                    )
                ]
        findings: list[Finding] = []
        checked, no_grad = 0, 0
        for sample in samples:
            found = self._one(ctx, sample)
            if found is None:
                checked += 1
            elif found == "no_grad":
                checked += 1
                no_grad += 1
            elif isinstance(found, Finding):
                findings.append(found)
        if any(f.severity in ("warning", "error") for f in findings):
            return findings
        if checked:
            msg = f"value and gradient finite on {checked} extreme input(s)"
            if no_grad:
                msg += f" ({no_grad} without a gradient path: gradient not checked)"
            findings.append(
                Finding(NAME, "ok", msg, evidence={"samples": [s.note for s in samples]})
            )
        elif not findings:
            findings.append(
                Finding(NAME, "info", "not checked: the output is not a floating-point tensor")
            )
        return findings

    def _one(self, ctx: Context, sample: Sample) -> Any:
        pred, target, kwargs = prepare(sample)
        base = {"sample": sample.note, "pred": describe(pred), "target": describe(target)}
        out, failed = call_loss(ctx, pred, target, kwargs)
        if failed is not None:
            if is_validation(failed):
                return Finding(
                    NAME,
                    "info",
                    "rejects an extreme input: " + failed.reason,
                    evidence={**base, "error": failed.reason},
                )
            return Finding(
                NAME,
                "warning",
                f"fails on an extreme input ({sample.note}): {failed.reason}",
                fix="extreme but valid inputs should give a finite loss; " + _fix_value(ctx),
                evidence={**base, "error": failed.reason},
            )
        if not isinstance(out, Tensor) or not out.is_floating_point():
            return "skipped"  # not a float tensor: the returns_tensor probe reports it
        bad = first_bad(out)
        if bad is not None:
            index, value = bad
            evidence = {
                **base,
                "where": "value",
                "index": index,
                "value": value,
                "output": describe(out),
            }
            evidence.update(_locate(ctx, sample, out))
            growth = _exponential_growth(ctx, sample, out)
            if growth is not None:
                return Finding(
                    NAME,
                    "warning",
                    f"the loss overflows ({value}) on {sample.note or 'an extreme input'}: it "
                    f"grows exponentially with the prediction ({growth:.3g} at 1/100 of the "
                    "magnitude, in float64), so inf is its true value there",
                    fix=FIX_GROWTH,
                    evidence={**evidence, "value_at_1/100": growth},
                )
            return Finding(
                NAME,
                "error",
                f"non-finite loss ({value}) on {sample.note or 'an extreme input'}",
                fix=_fix_value(ctx),
                evidence=evidence,
            )
        g, reason = grad_of(ctx, out, pred)
        if reason is not None:
            return Finding(
                NAME,
                "error",
                f"the backward fails on {sample.note or 'an extreme input'}: {reason}",
                fix="make the backward handle saturated inputs; " + _fix_value(ctx),
                evidence={**base, "error": reason},
            )
        if g is None:
            return "no_grad"
        bad = first_bad(g)
        if bad is not None:
            index, value = bad
            return Finding(
                NAME,
                "error",
                f"non-finite gradient ({value}) on {sample.note or 'an extreme input'} "
                f"(the loss itself is finite: {num(out.detach().float().sum())})",
                fix=FIX_WHERE if ctx.input_kind != "probs" else FIX_PROBS + "; or " + FIX_WHERE,
                evidence={
                    **base,
                    "where": "gradient",
                    "index": index,
                    "gradient": value,
                    "pred_at_index": at(pred, index),
                    "target_at_index": at(target, index),
                    "value": num(out.detach().float().sum()),
                },
            )
        return None


def _locate(ctx: Context, sample: Sample, out: Tensor) -> dict[str, Any]:
    """For a reduced non-finite loss: the first input position whose element loss is
    non-finite, from one more call with ``reduction="none"`` (when the function has one)."""
    if not ctx.has_reduction or out.dim() != 0 or "reduction" in sample.kwargs:
        return {}
    pred, target, kwargs = prepare(sample, grad=False)
    kwargs["reduction"] = "none"
    none, failed = call_loss(ctx, pred, target, kwargs)
    if failed is not None or not isinstance(none, Tensor) or not none.is_floating_point():
        return {}
    bad = first_bad(none)
    if bad is None:
        return {}
    index, value = bad
    return {
        "element_index": index,
        "element_value": value,
        "pred_at_index": at(pred, index),
        "target_at_index": at(target, index),
    }


def _exponential_growth(ctx: Context, sample: Sample, out: Tensor) -> Optional[float]:
    """For value inputs and an infinite (not NaN) loss: the float64 loss at the sample scaled
    by 1/100 when it is already above GROWTH (an exponential link such as Poisson's
    ``exp(log_rate)``: the overflow at 1e4 is the true value, not a rounding defect); None
    otherwise (a finite true value lost to an overflowing intermediate is an error)."""
    if ctx.input_kind != "values" or bool(torch.isnan(out.detach()).any()):
        return None
    big = (sample.pred.detach().abs() > 100).any()
    if not big:
        return None

    def shrink(x: Any) -> Any:
        if isinstance(x, Tensor) and x.is_floating_point() and bool((x.abs() > 100).any()):
            return x * 1e-2
        return x

    small = Sample(shrink(sample.pred), shrink(sample.target), sample.kwargs, sample.note)
    pred, target, kwargs = prepare(small, dtype=torch.float64, grad=False)
    again, failed = call_loss(ctx, pred, target, kwargs)
    if failed is not None or not isinstance(again, Tensor) or not again.is_floating_point():
        return None
    if first_bad(again) is not None:
        return None
    peak = float(again.detach().abs().max()) if again.numel() else 0.0
    return peak if peak > GROWTH else None


def _fix_value(ctx: Context) -> str:
    if ctx.input_kind == "logits":
        return FIX_LOGITS
    if ctx.input_kind == "probs":
        return FIX_PROBS
    return FIX_VALUES


PROBE = ExtremesProbe()
