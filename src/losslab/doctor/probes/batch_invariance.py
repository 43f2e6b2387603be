"""Invariance to the batch split and to the order of the samples.

A mean loss over a batch must equal the mean of the losses of its parts (the batch cut in the
middle, then at a quarter) weighted by their sizes (for a function with a ``reduction``
argument that divides by its own count, valid elements say, weighted by that count,
``sum / mean``); with ``reduction="sum"`` it must equal the sum of the parts' sums; and it must
not change when the batch is permuted. A divisor fixed in the code (``sum() / 32``), a
normalization by a batch statistic (the number of positives, the batch's max or std) or a
weight that depends on the row position all break it: the loss, and so the gradient scale,
then depend on how the data happens to be batched. When the task says the property must hold
(``ctx.batch_invariant``) a failure is a warning; otherwise (a non-decomposable loss by
design) it is information. A function whose sums add up and whose mean lies between its
parts' means (a mean over the pairs of every query, documented as such) gets information,
not a warning.

This module also holds the small helpers the semantics probes share (``num``, ``shape_of``,
``fresh``, ``call``, ``scalar``, ``close``, ``take_rows``, ``grad_of``): copying a sample,
calling the user's function without ever raising, and turning values into JSON-able evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._types import Context, Finding
from losslab.doctor.probes._util import (
    RTOL,
    GuardedProbe,
    call,
    close,
    failed_finding,
    fresh,
    num,
    scalar,
    shape_of,
    take_rows,
)

__all__ = ["PROBE", "BatchInvarianceProbe"]

NAME = "batch_invariance"


# ----------------------------------------------------------------------------- the probe
def _split_point(kwargs: Mapping[str, Any], n: int) -> int:
    """Half the batch; for a flat ranking batch with ``group`` ids, the group boundary
    nearest to the middle (a query must not be cut in two)."""
    group = kwargs.get("group")
    if isinstance(group, Tensor) and group.dim() == 1 and group.shape[0] == n:
        change = (group[1:] != group[:-1]).nonzero().reshape(-1) + 1
        if change.numel():
            return int(change[(change - n / 2).abs().argmin()])
    return n // 2


def _counted_mean(
    v: float, fa: float, fb: float, sums: Optional[tuple[float, float, float]]
) -> Optional[float]:
    """The whole batch's mean from its parts when the function divides by its own count
    (``count = sum / mean``): ``(sum_a + sum_b) / (count_a + count_b)``; None when the
    counts cannot be told (no sums, a zero mean)."""
    if sums is None or fa == 0 or fb == 0:
        return None
    _, s_a, s_b = sums
    count = s_a / fa + s_b / fb
    if not count > 0:
        return None
    return (s_a + s_b) / count


def _split_finding(
    v: float,
    fa: float,
    fb: float,
    cut: int,
    n: int,
    sums: Optional[tuple[float, float, float]],
    bad: str,
    why: str,
    base: dict[str, Any],
) -> Optional[Finding]:
    """None when the whole batch's mean agrees with its parts' (weighted by their sizes, or
    by the function's own counts); a finding otherwise."""
    expected = (cut * fa + (n - cut) * fb) / n
    counted = _counted_mean(v, fa, fb, sums)
    if close(v, expected, fa, fb) or (counted is not None and close(v, counted, fa, fb)):
        return None
    evidence = {
        **base,
        "split": [cut, n - cut],
        "value_whole": num(v),
        "value_parts": [num(fa), num(fb)],
        "expected_from_parts": num(expected),
    }
    if counted is not None:
        evidence["expected_from_parts_own_counts"] = num(counted)
    # With a reduction argument whose sums add up, a mean between the parts' means is a mean
    # weighted by a count of the function's own (the pairs of each query, documented as the
    # mean's denominator): worth knowing only.
    weighted = (
        sums is not None
        and close(sums[0], sums[1] + sums[2], sums[1], sums[2])
        and min(fa, fb) - RTOL * abs(v) <= v <= max(fa, fb) + RTOL * abs(v)
    )
    if weighted:
        return Finding(
            NAME,
            "info",
            f"the loss of the whole batch ({v:.6g}) is a mean of its two parts' losses "
            f"({fa:.6g}, {fb:.6g}) weighted by a count of the function's own (pairs, valid "
            "elements), not by their sizes",
            evidence=evidence,
        )
    return Finding(
        NAME,
        bad,
        f"the loss of the whole batch ({v:.6g}) is not the size-weighted mean of the losses of "
        f"its parts of {cut} and {n - cut} rows ({expected:.6g}): it depends on the batch "
        f"split ({why})",
        fix="average per element with .mean() (or divide by the valid count), not by a fixed "
        "number or a batch statistic"
        if bad == "warning"
        else "",
        evidence=evidence,
    )


class BatchInvarianceProbe(GuardedProbe):
    name = NAME
    title = "invariance to the batch split and to the order of the samples"

    def _run(self, ctx: Context) -> list[Finding]:
        if not ctx.samples:
            return [Finding(NAME, "info", "not checked: no sample input for this task")]
        sample = ctx.samples[0]
        pred, target, kwargs = fresh(sample)
        # Per-sample weights make the mean a weighted one: the split identity is checked
        # without them (the shape_traps probe checks the weights).
        kwargs.pop("sample_weight", None)
        n = pred.shape[0] if pred.dim() else 0
        base = {"sample": sample.note, "pred": shape_of(pred), "target": shape_of(target)}
        if n < 2:
            return [Finding(NAME, "ok", "a batch of one: nothing to split", evidence=base)]

        full, failed = call(ctx, *fresh_rows(pred, target, kwargs))
        if failed is not None:
            return [failed_finding(NAME, "the sample input", failed, **base)]
        again, _ = call(ctx, *fresh_rows(pred, target, kwargs))
        v, v2 = scalar(full), scalar(again)
        if v is None:
            return [
                Finding(
                    NAME,
                    "info",
                    f"not checked: the function does not return a scalar (got {shape_of(full)})",
                    evidence=base,
                )
            ]
        if v != v or v in (float("inf"), float("-inf")):
            return [
                Finding(
                    NAME,
                    "info",
                    f"not checked: the loss is not finite ({num(v)}; the extremes probe reports "
                    "where)",
                    evidence=base,
                )
            ]
        if v2 is None or not close(v, v2):
            return [
                Finding(
                    NAME,
                    "info",
                    "not checked: two identical calls gave different values (nondeterministic)",
                    evidence={**base, "values": [num(v), num(v2)]},
                )
            ]

        bad = "warning" if ctx.batch_invariant else "info"
        why = (
            "the task says a mean loss must not depend on the batching"
            if ctx.batch_invariant
            else "may be by design for this task (a non-decomposable loss)"
        )
        findings: list[Finding] = []

        # 1. split: mean(all) == size-weighted mean of the parts' means. With a reduction
        # argument the function may divide by its own count (valid elements, pairs, weights):
        # count = sum / mean, and that count must add up over the parts. Two cuts (the middle,
        # and a quarter): a normalization by a batch count can balance out in equal halves.
        s_all: Optional[float] = None
        if ctx.has_reduction:
            s_all = scalar(call(ctx, *fresh_rows(pred, target, {**kwargs, "reduction": "sum"}))[0])
        cuts = [_split_point(kwargs, n)]
        if n >= 4 and "group" not in kwargs and n // 4 not in cuts:
            cuts.append(n // 4)
        checked_cuts: list[list[int]] = []
        for cut in cuts:
            found = self._split(ctx, pred, target, kwargs, v, s_all, cut, bad, why, base)
            checked_cuts.append([cut, n - cut])
            if found:
                findings.extend(found)
                break

        # 2. permutation of the samples
        gen = torch.Generator().manual_seed(0)
        perm = torch.randperm(n, generator=gen)
        if bool((perm == torch.arange(n)).all()):
            perm = torch.roll(torch.arange(n), 1)
        fp = scalar(call(ctx, *take_rows(pred, target, kwargs, perm))[0])
        if fp is not None and not close(v, fp):
            findings.append(
                Finding(
                    NAME,
                    bad,
                    f"permuting the samples changes the loss from {v:.6g} to {fp:.6g} ({why})",
                    fix="do not weight or normalize by the position of a sample in the batch"
                    if bad == "warning"
                    else "",
                    evidence={
                        **base,
                        "value": num(v),
                        "value_permuted": num(fp),
                        "permutation": [int(i) for i in perm[:32]],
                    },
                )
            )

        if not findings:
            checked = ["split in two parts", "permutation"]
            if ctx.has_reduction:
                checked.insert(1, 'split with reduction="sum"')
            findings.append(
                Finding(
                    NAME,
                    "ok",
                    "invariant to the batch split and to the order of the samples",
                    evidence={**base, "checked": checked, "splits": checked_cuts},
                )
            )
        return findings

    @staticmethod
    def _split(
        ctx: Context,
        pred: Tensor,
        target: Tensor,
        kwargs: Mapping[str, Any],
        v: float,
        s_all: Optional[float],
        cut: int,
        bad: str,
        why: str,
        base: dict[str, Any],
    ) -> list[Finding]:
        """The findings of one cut of the batch into rows ``[0, cut)`` and ``[cut, n)``."""
        n = pred.shape[0]
        first, second = torch.arange(0, cut), torch.arange(cut, n)
        fa = scalar(call(ctx, *take_rows(pred, target, kwargs, first))[0])
        fb = scalar(call(ctx, *take_rows(pred, target, kwargs, second))[0])
        sums: Optional[tuple[float, float, float]] = None
        if s_all is not None:
            sk = {**kwargs, "reduction": "sum"}
            s_a = scalar(call(ctx, *take_rows(pred, target, sk, first))[0])
            s_b = scalar(call(ctx, *take_rows(pred, target, sk, second))[0])
            if s_a is not None and s_b is not None:
                sums = (s_all, s_a, s_b)
        out: list[Finding] = []
        if fa is not None and fb is not None:
            split = _split_finding(v, fa, fb, cut, n, sums, bad, why, base)
            if split is not None:
                out.append(split)
        # reduction="sum": sum(all) == sum(first) + sum(second)
        if sums is not None and not close(sums[0], sums[1] + sums[2], sums[1], sums[2]):
            out.append(
                Finding(
                    NAME,
                    bad,
                    f'reduction="sum" over the batch ({sums[0]:.6g}) differs from the sum over '
                    f"its two parts ({sums[1] + sums[2]:.6g}) ({why})",
                    fix='make reduction="sum" add the per-element (or per-sample) losses, '
                    "with no batch-level normalization"
                    if bad == "warning"
                    else "",
                    evidence={
                        **base,
                        "split": [cut, n - cut],
                        "sum_whole": num(sums[0]),
                        "sum_parts": [num(sums[1]), num(sums[2])],
                    },
                )
            )
        return out


def fresh_rows(
    pred: Tensor, target: Tensor, kwargs: Mapping[str, Any]
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Copies of the whole batch (the function may modify its inputs in place)."""
    return take_rows(pred, target, kwargs, torch.arange(pred.shape[0]))


PROBE = BatchInvarianceProbe()
