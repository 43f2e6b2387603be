"""Reductions consistent with each other, for functions that take a ``reduction`` argument.

``reduction="none"`` returns the documented shape (one value per element for pointwise
tasks, per sample otherwise, never a scalar); ``none.sum()`` equals ``reduction="sum"``;
``reduction="mean"`` equals ``none.mean()`` or the mean over the valid (non-zero) values; for
per-sample values, a mean inside their range is taken as a weighted one (e.g. by the number of
pairs of each query: information); any other mismatch is a warning with both values; an unknown
reduction string (``"meen"``) raises instead of silently falling back to a mean.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._types import Context, Finding
from losslab.doctor.probes._util import (
    GuardedProbe,
    call,
    close,
    failed_finding,
    fresh,
    num,
    scalar,
    shape_of,
)

__all__ = ["PROBE", "ReductionsProbe"]

NAME = "reductions"
TYPO = "meen"
POINTWISE_TASKS = ("binary", "multiclass", "multilabel", "regression")
FIX_NONE = 'return the unreduced loss for reduction="none" (one value per element or per sample)'
FIX_RAISE = (
    'raise ValueError for a reduction other than "mean", "sum" or "none" '
    "(a typo must not silently become a mean)"
)


def _total(x: Tensor) -> float:
    return float(x.detach().to(torch.float64).sum())


class ReductionsProbe(GuardedProbe):
    name = NAME
    title = 'reduction="none" / "sum" / "mean" consistent; unknown values raise'

    def _run(self, ctx: Context) -> list[Finding]:
        if not ctx.has_reduction:
            return [Finding(NAME, "ok", "no reduction argument: nothing to check")]
        if not ctx.samples:
            return [Finding(NAME, "info", "not checked: no sample input for this task")]
        sample = ctx.samples[0]
        pred, target = sample.pred, sample.target
        base = {"sample": sample.note, "pred": shape_of(pred), "target": shape_of(target)}

        outs: dict[str, Any] = {}
        for reduction in ("none", "sum", "mean"):
            p, t, k = fresh(sample)
            out, failed = call(ctx, p, t, {**k, "reduction": reduction})
            if failed is not None:
                return [failed_finding(NAME, f'reduction="{reduction}"', failed, **base)]
            outs[reduction] = out
        findings: list[Finding] = []
        findings += self._typo(ctx, sample, base, outs["mean"])

        none, total, mean = outs["none"], scalar(outs["sum"]), scalar(outs["mean"])
        for label, value in (("sum", total), ("mean", mean)):
            if value is None:
                findings.append(
                    Finding(
                        NAME,
                        "warning",
                        f'reduction="{label}" does not return a scalar '
                        f"(got {shape_of(outs[label])})",
                        fix=f'reduce to a 0-d tensor for reduction="{label}"',
                        evidence={**base, "returned": shape_of(outs[label])},
                    )
                )
        if not isinstance(none, Tensor) or not none.is_floating_point():
            findings.append(
                Finding(
                    NAME,
                    "warning",
                    f'reduction="none" does not return a float tensor (got {type(none).__name__})',
                    fix=FIX_NONE,
                    evidence=base,
                )
            )
            return findings or [Finding(NAME, "ok", "reductions consistent", evidence=base)]

        batch = pred.shape[0] if pred.dim() else 1
        elements = max(pred.numel(), target.numel())
        per_element = list(none.shape) in (list(pred.shape), list(target.shape))
        ev = {**base, "none_shape": list(none.shape)}
        if none.dim() == 0 or (none.numel() == 1 and elements > 1):
            same_as = "mean" if mean is not None and close(_total(none), mean) else None
            findings.append(
                Finding(
                    NAME,
                    "warning",
                    'reduction="none" returns a scalar'
                    + (" (the mean): 'none' is ignored" if same_as else ""),
                    fix=FIX_NONE,
                    evidence={**ev, "none_value": num(_total(none)), "mean": num(mean)},
                )
            )
            return findings
        if not per_element and ctx.task in POINTWISE_TASKS and none.shape[:1] == (batch,):
            findings.append(
                Finding(
                    NAME,
                    "info",
                    f'reduction="none" returns {list(none.shape)} (one value per sample), '
                    f"not one per element {list(target.shape)}",
                    evidence=ev,
                )
            )
        elif not per_element and (none.dim() == 0 or none.shape[0] != batch):
            findings.append(
                Finding(
                    NAME,
                    "info",
                    f'reduction="none" returns {list(none.shape)}: neither per element nor '
                    "per sample",
                    evidence=ev,
                )
            )

        none_sum = _total(none)
        skip = self._unreliable(ctx, sample, mean, none_sum, total)
        if skip is not None:
            findings.append(Finding(NAME, "info", f"values not compared: {skip}", evidence=ev))
            total = mean = None
        if total is not None and not close(none_sum, total):
            findings.append(
                Finding(
                    NAME,
                    "warning",
                    f'reduction="none" sums to {none_sum:.6g} but reduction="sum" gives '
                    f"{total:.6g}",
                    fix='make reduction="sum" the sum of the reduction="none" values',
                    evidence={**ev, "none_sum": num(none_sum), "sum": num(total)},
                )
            )
        if mean is not None:
            expected = self._means(none)
            lo, hi = float(none.detach().min()), float(none.detach().max())
            if (
                not any(close(mean, e) for e in expected.values())
                and not per_element
                and (lo - 1e-6 * abs(lo) <= mean <= hi + 1e-6 * abs(hi))
            ):
                findings.append(
                    Finding(
                        NAME,
                        "info",
                        f'reduction="mean" ({mean:.6g}) is a weighted mean of the per-sample '
                        f"values (their plain mean is {expected['none.mean()']:.6g})",
                        evidence={
                            **ev,
                            "mean": num(mean),
                            **{k: num(v) for k, v in expected.items()},
                        },
                    )
                )
            elif not any(close(mean, e) for e in expected.values()):
                findings.append(
                    Finding(
                        NAME,
                        "warning",
                        f'reduction="mean" gives {mean:.6g}; the mean of reduction="none" is '
                        f"{expected['none.mean()']:.6g} (a weighted mean? then document it)",
                        fix='make reduction="mean" the mean of the reduction="none" values '
                        "(over the valid, weighted count)",
                        evidence={
                            **ev,
                            "mean": num(mean),
                            **{k: num(v) for k, v in expected.items()},
                        },
                    )
                )
        if not findings:
            findings.append(
                Finding(
                    NAME,
                    "ok",
                    'reduction="none", "sum" and "mean" agree; an unknown reduction raises',
                    evidence={**ev, "sum": num(total), "mean": num(mean)},
                )
            )
        return findings

    @staticmethod
    def _unreliable(
        ctx: Context, sample: Any, mean: Optional[float], none_sum: float, total: Optional[float]
    ) -> Optional[str]:
        """Why the reductions' values cannot be compared: not finite, or not reproducible."""
        values = [v for v in (mean, none_sum, total) if v is not None]
        if not all(math.isfinite(v) for v in values):
            return "a reduction is not finite (the extremes probe reports where)"
        if mean is None:
            return None
        p, t, k = fresh(sample)
        again = scalar(call(ctx, p, t, {**k, "reduction": "mean"})[0])
        if again is None or not close(again, mean):
            return "two identical calls gave different values (nondeterministic)"
        return None

    @staticmethod
    def _means(none: Tensor) -> dict[str, float]:
        """The means a documented ``mean`` may be: over all values, or over the valid ones
        (masked positions are 0 in ``none`` and do not count)."""
        x = none.detach().to(torch.float64)
        out = {"none.mean()": float(x.mean())}
        nonzero = int((x != 0).sum())
        if 0 < nonzero < x.numel():
            out["none.sum() / nonzero count"] = float(x.sum()) / nonzero
        return out

    @staticmethod
    def _typo(ctx: Context, sample: Any, base: dict[str, Any], mean: Any) -> list[Finding]:
        p, t, k = fresh(sample)
        out, failed = call(ctx, p, t, {**k, "reduction": TYPO})
        if failed is not None:
            return []
        v: Optional[float] = scalar(out)
        same = v is not None and scalar(mean) is not None and close(v, scalar(mean) or 0.0)
        return [
            Finding(
                NAME,
                "warning",
                f'reduction="{TYPO}" is accepted'
                + (" (it gives the mean)" if same else "")
                + ": an unknown reduction does not raise",
                fix=FIX_RAISE,
                evidence={
                    **base,
                    "reduction": TYPO,
                    "returned": num(v) if v is not None else shape_of(out),
                },
            )
        ]


PROBE = ReductionsProbe()
