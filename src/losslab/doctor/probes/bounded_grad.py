"""Bounded gradients at saturation: logits of +-30, probabilities of 1e-7 and 1 - 1e-7, and
probabilities exactly 0 and 1.

A loss may be finite at saturation and still hand the optimizer a gradient of 1e7 per
element: the classic ``log(p)`` has derivative ``1/p``, 1e7 at ``p = 1e-7`` and infinite at
0, and one such step wrecks the weights (SGD) or the optimizer's second moments (Adam).

Measure: the largest ``|d loss / d pred|`` times ``numel(pred) / numel(loss)``: the gradient
of one element's own loss when the function averages (a mean over ``N`` elements scales each
element's gradient by ``1/N``). For a function that sums, it over-estimates by ``N``.

Thresholds (per element):

* ``<= 5e6``: ok. A sound loss from logits stays below 1 (``sigmoid(x) - y``); a log clamped
  at ``eps`` stays below ``1/eps``: 1.7e4 at the fp16-safe ``eps = 6e-5``, 1e6 at
  ``eps = 1e-6`` (losslab's ``bce_probs`` default: float32 resolves ``1 - 1e-6`` but not
  much less, its spacing below 1 is 6e-8), a few times that with class or positive weights.
* ``> 5e6``: warning. ``log(p)`` at ``p = 1e-7`` gives 1e7 (8.4e6 on the ``1 - 1e-7`` side in
  float32): unclamped, or clamped at Keras's ``1e-7`` or below.
* ``> 1e8`` or non-finite: error. The gradient is dominated by rounding (``1/p`` at a
  denormal-sized ``p``) or infinite (``log(0)``; torch's ``binary_cross_entropy`` clamps the
  log at -100 and still reaches 1e12 at 0): a single step can overflow the weights.

Value inputs (regression, forecasting) have no saturation: the probe reports ok, not
applicable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import (
    FIX_LOGITS,
    FIX_PROBS,
    FIX_WHERE,
    GuardedProbe,
    at,
    call_loss,
    describe,
    first_bad,
    grad_of,
    num,
    prepare,
)

__all__ = ["PROBE", "BoundedGradProbe"]

NAME = "bounded_grad"

WARN = 5e6  # per-element |gradient| above which the gradient is a trap
ERROR = 1e8  # above which (or non-finite) it breaks training
LOGIT = 30.0  # sigmoid(30) rounds to 1 in float32 and float64 is 1 - 9e-14
TINY = 1e-7  # a probability a saturated sigmoid/softmax produces in float32


def is_distribution(p: Tensor) -> bool:
    """Whether ``p`` holds probability distributions along dim 1 (a softmax output)."""
    if p.dim() < 2 or p.shape[1] < 2 or p.numel() == 0 or not p.is_floating_point():
        return False
    with torch.no_grad():
        sums = p.detach().double().sum(1)
        return bool(((sums - 1).abs() < 1e-3).all()) and bool((p >= 0).all())


def saturated_preds(ctx: Context, sample: Sample) -> list[tuple[str, Tensor]]:
    """The saturated versions of ``sample.pred`` this probe evaluates (seeded, half of the
    elements saturated the right way round for a random target and half the wrong way)."""
    p = sample.pred.detach()
    if not p.is_floating_point() or p.numel() == 0:
        return []
    gen = torch.Generator().manual_seed(0)
    kind = ctx.input_kind
    if kind in ("logits", "scores"):
        sign = torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1
        return [(f"{kind} at +-{LOGIT:g}", sign * LOGIT)]
    if kind != "probs":
        return []
    out = []
    if is_distribution(p):
        # one-hot-like distributions along dim 1: the hot class is random
        n_classes = p.shape[1]
        hot_idx = torch.randint(0, n_classes, (p.shape[0], 1, *p.shape[2:]), generator=gen)
        hot = torch.zeros(p.shape, dtype=torch.bool).scatter_(1, hot_idx, True)
        for lo, note in ((TINY, "softmax probabilities 1e-7 / 1 - (C-1)e-7"), (0.0, "one-hot")):
            high = 1.0 - (n_classes - 1) * lo
            out.append((note + " probabilities", torch.where(hot, high, lo).to(p.dtype)))
        return out
    hot = torch.randint(0, 2, p.shape, generator=gen).bool()
    out.append(("probabilities 1e-7 / 1 - 1e-7", torch.where(hot, 1.0 - TINY, TINY).to(p.dtype)))
    out.append(("probabilities exactly 0 / 1", hot.to(p.dtype)))
    return out


class BoundedGradProbe(GuardedProbe):
    name = NAME
    title = "bounded gradients at saturation"

    def _run(self, ctx: Context) -> list[Finding]:
        if not ctx.samples:
            return [Finding(NAME, "ok", "no sample to saturate")]
        sample = ctx.samples[0]
        preds = saturated_preds(ctx, sample)
        if not preds:
            return [
                Finding(
                    NAME,
                    "ok",
                    f"not applicable: {ctx.input_kind} inputs have no saturation regime",
                )
            ]
        findings: list[Finding] = []
        seen: list[Any] = []
        for note, pred in preds:
            result = self._one(ctx, sample, note, pred)
            if isinstance(result, Finding):
                findings.append(result)
            elif result is not None:
                seen.append(result)
        if not findings and not seen:
            findings.append(
                Finding(
                    NAME,
                    "info",
                    "not checked: no floating-point loss with a gradient path at saturation",
                )
            )
        elif not findings:
            worst = max((s["per_element"] for s in seen), default=0.0)
            findings.append(
                Finding(
                    NAME,
                    "ok",
                    f"per-element gradient at most {worst:.3g} at saturation "
                    f"(warning above {WARN:g})",
                    evidence={"checked": seen, "warn_above": WARN, "error_above": ERROR},
                )
            )
        return findings

    def _one(self, ctx: Context, sample: Sample, note: str, sat: Tensor) -> Any:
        pred, target, kwargs = prepare(sample, pred=sat)
        base = {"sample": note, "pred": describe(pred), "target": describe(target)}
        out, failed = call_loss(ctx, pred, target, kwargs)
        if failed is not None:
            return Finding(
                NAME,
                "info",
                f"could not evaluate at {note}: {failed.reason}",
                evidence={**base, "error": failed.reason},
            )
        if not isinstance(out, Tensor) or not out.is_floating_point() or out.numel() == 0:
            return None  # the returns_tensor probe reports it
        g, reason = grad_of(ctx, out, pred)
        if reason is not None:
            return Finding(
                NAME,
                "error",
                f"the backward fails at {note}: {reason}",
                fix=self._fix(ctx),
                evidence={**base, "error": reason},
            )
        if g is None:
            return None
        scale = pred.numel() / out.numel()
        bad = first_bad(g)
        if bad is not None:
            index, value = bad
            return Finding(
                NAME,
                "error",
                f"non-finite gradient ({value}) at {note}",
                fix=self._fix(ctx),
                evidence={
                    **base,
                    "index": index,
                    "gradient": value,
                    "pred_at_index": at(pred, index),
                    "target_at_index": at(target, index),
                    "loss": num(out.detach().float().sum()),
                },
            )
        absg = g.detach().abs().double()
        flat = int(absg.reshape(-1).argmax()) if absg.numel() else 0
        peak = float(absg.reshape(-1)[flat]) if absg.numel() else 0.0
        per_element = peak * scale
        index = (
            [int(i) for i in torch.unravel_index(torch.tensor(flat), g.shape)] if g.dim() else []
        )
        evidence = {
            **base,
            "per_element": per_element,
            "max_abs_grad": peak,
            "scale": scale,
            "index": index,
            "pred_at_index": at(pred, index),
            "target_at_index": at(target, index),
        }
        if per_element <= WARN:
            return evidence
        severity = "error" if per_element > ERROR else "warning"
        return Finding(
            NAME,
            severity,
            f"per-element gradient of {per_element:.3g} at {note} "
            f"(threshold {WARN:g}; error above {ERROR:g})",
            fix=self._fix(ctx),
            evidence={**evidence, "warn_above": WARN, "error_above": ERROR},
        )

    @staticmethod
    def _fix(ctx: Context) -> str:
        if ctx.input_kind == "probs":
            return FIX_PROBS
        if ctx.input_kind in ("logits", "scores"):
            return FIX_LOGITS + "; or " + FIX_WHERE
        return FIX_WHERE


PROBE = BoundedGradProbe()
