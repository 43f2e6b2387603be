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

import copy
import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._call import CallFailed, bounded_call
from losslab.doctor._types import Context, Finding, Sample

__all__ = ["PROBE", "ExtremesProbe"]

NAME = "extremes"

FIX_LOGITS = "work from logits with logsigmoid/softplus (log_softmax/logsumexp for classes)"
FIX_PROBS = "clamp inside the log with eps >= 6e-5 (or take logits and use logsigmoid/softplus)"
FIX_VALUES = "use stable forms (log1p/expm1, logsumexp, hypot) and clamp before exp/log/pow"
FIX_GROWTH = (
    "clamp what goes into exp (e.g. log_rate.clamp(max=80)) or check the scale of the "
    "predictions: a loss that is truly infinite here cannot train on such inputs"
)
# At 1/100 of |values| 1e4 (|values| 100) polynomial losses stay far below this (x**10 at
# 200 is 1e23); exp(100) is 2.7e43.
GROWTH = 1e30
FIX_WHERE = (
    "use the double-where trick: mask the input of the unsafe op as well as its output "
    "(torch.where(ok, f(torch.where(ok, x, 1)), 0))"
)


# ------------------------------------------------------------------ helpers shared by probes
def num(x: Any) -> Any:
    """A JSON-able number: finite floats as floats, NaN/inf as the strings "nan"/"inf"/"-inf"."""
    try:
        v = float(x)
    except (TypeError, ValueError, RuntimeError):
        return repr(x)[:80]
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return v


def describe(x: Any) -> Any:
    """Shape and dtype of a tensor (JSON-able), the type name of anything else."""
    if isinstance(x, Tensor):
        return {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", "")}
    return type(x).__name__


def _move(x: Tensor, dtype: Optional[torch.dtype], device: Any) -> Tensor:
    x = x.detach()
    if dtype is not None and x.is_floating_point():
        x = x.to(dtype)
    if device is not None:
        x = x.to(device)
    # Always a copy: the user's function may modify its inputs in place.
    return x.clone()


def prepare(
    sample: Sample,
    *,
    dtype: Optional[torch.dtype] = None,
    device: Any = None,
    grad: bool = True,
    pred: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Fresh copies of a sample's ``(pred, target, kwargs)``; floating tensors cast to ``dtype``
    (targets and tensor kwargs too, as a caller would), everything moved to ``device``; ``pred``
    (or the given replacement) becomes a leaf that requires a gradient when ``grad``."""
    p = _move(sample.pred if pred is None else pred, dtype, device)
    if grad and p.is_floating_point():
        p.requires_grad_(True)
    target = _move(sample.target, dtype, device)
    kwargs = {
        k: _move(v, dtype, device) if isinstance(v, Tensor) else v for k, v in sample.kwargs.items()
    }
    return p, target, kwargs


def call_loss(
    ctx: Context, pred: Tensor, target: Tensor, kwargs: Mapping[str, Any]
) -> tuple[Any, Optional[CallFailed]]:
    """``(output, None)`` or ``(None, CallFailed)``: the user's function never raises here."""
    try:
        return ctx.call(pred, target, **kwargs), None
    except CallFailed as exc:
        return None, exc
    except Exception as exc:  # a broken ctx.call must not take the probe down
        return None, CallFailed(f"raised {type(exc).__name__}: {exc}"[:300], exc)


def grad_of(ctx: Context, out: Tensor, pred: Tensor) -> tuple[Optional[Tensor], Optional[str]]:
    """Gradient of ``out.sum()`` with respect to ``pred``, the backward bounded in time like
    the forward. ``(grad, None)``; ``(None, None)`` without a gradient path; ``(None, reason)``
    when the backward raised."""
    if not (isinstance(out, Tensor) and out.requires_grad and pred.requires_grad):
        return None, None
    try:
        total = out.sum() if out.dtype == torch.float64 else out.float().sum()
        (g,) = bounded_call(
            torch.autograd.grad, (total, pred), {"allow_unused": True}, timeout=ctx.timeout
        )
    except CallFailed as exc:
        return None, f"backward {exc.reason}"
    except Exception as exc:
        return None, f"backward raised {type(exc).__name__}: {exc}".splitlines()[0][:300]
    return g, None


def first_bad(t: Tensor) -> Optional[tuple[list[int], Any]]:
    """Index and value of the first non-finite element of ``t`` (None when all are finite)."""
    bad = ~torch.isfinite(t.detach())
    if not bool(bad.any()):
        return None
    flat = int(bad.reshape(-1).to(torch.uint8).argmax())
    index = [int(i) for i in torch.unravel_index(torch.tensor(flat), t.shape)] if t.dim() else []
    return index, num(t.detach().reshape(-1)[flat])


def at(x: Any, index: list[int]) -> Any:
    """``x[index]`` as a JSON-able number when ``x`` is a tensor that has that position."""
    if not isinstance(x, Tensor) or x.dim() != len(index):
        return None
    if any(i >= s for i, s in zip(index, x.shape)):
        return None
    return num(x.detach()[tuple(index)])


def module_as(ctx: Context, dtype: torch.dtype) -> Context:
    """For an ``nn.Module`` with floating parameters or buffers of another dtype (class
    weights): the context with a copy of it cast to ``dtype``, as a user casts the loss with
    ``.double()`` before feeding it float64 inputs. Anything else: ``ctx`` unchanged."""
    fn = ctx.fn
    if not isinstance(fn, torch.nn.Module):
        return ctx
    tensors = itertools.chain(fn.parameters(), fn.buffers())
    if not any(t.is_floating_point() and t.dtype != dtype for t in tensors):
        return ctx
    try:
        return dataclasses.replace(ctx, fn=copy.deepcopy(fn).to(dtype))
    except Exception:  # not copyable: checked as it is
        return ctx


def is_validation(exc: CallFailed) -> bool:
    """A deliberate rejection of the input (the function's own ValueError/TypeError)."""
    return isinstance(exc.error, (ValueError, TypeError))


# ------------------------------------------------------------------------------ the probe
class ExtremesProbe:
    name = NAME
    title = "finite forward and backward at extreme inputs"

    def run(self, ctx: Context) -> list[Finding]:
        try:
            return self._run(ctx)
        except Exception as exc:  # the probe itself must never raise
            return [
                Finding(
                    NAME,
                    "info",
                    f"probe could not run: {type(exc).__name__}: {exc}".splitlines()[0][:200],
                )
            ]

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
