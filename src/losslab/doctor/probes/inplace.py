"""The loss leaves its inputs alone: ``pred``, ``target`` and keyword tensors are unchanged.

Each realistic and edge sample is called on copies; the copies are compared with a snapshot
taken before the call, after the call and again after a backward pass (a custom backward can
write into saved inputs too). Also checked: ``pred.requires_grad`` is still set and
``pred.grad`` is still empty (a loss must not call ``backward()`` itself).

A change of values or shape (``target.mul_(0.9)``, ``pred.data.clamp_(0)``, ``resize_``) is a
warning: the caller's tensors, often a dataset's labels or a model's outputs, are silently
corrupted. An in-place write that happened to leave the values equal on the given input is
caught by the tensor's version counter and reported the same way. A backward that fails
because a saved tensor was modified in place is reported here too.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._types import Context, Finding
from losslab.doctor.probes._util import GuardedProbe
from losslab.doctor.probes.returns_tensor import (
    call,
    describe,
    fresh,
    gradient,
    is_timeout,
    sample_evidence,
    value_of,
)

__all__ = ["PROBE", "InplaceProbe"]

NAME = "inplace"

FIX = (
    "work on a copy: `target = target * 0.9 + 0.05` (or `x = x.clone()` before in-place ops); "
    "never write through .data"
)


def _snapshot(tensors: dict[str, Tensor]) -> dict[str, tuple[Tensor, tuple[int, ...], int]]:
    return {name: (t.detach().clone(), tuple(t.shape), t._version) for name, t in tensors.items()}


def _changed(before: tuple[Tensor, tuple[int, ...], int], now: Tensor) -> Optional[dict[str, Any]]:
    """What changed in one tensor (None when nothing did)."""
    old, shape, version = before
    if tuple(now.shape) != shape:
        return {"how": "resized", "shape_before": list(shape), "shape_after": list(now.shape)}
    cur = now.detach()
    same = torch.equal(cur, old) or (
        old.is_floating_point()
        and bool(((cur == old) | (torch.isnan(cur) & torch.isnan(old))).all())
    )
    if not same:
        diff: Any = None
        if old.is_floating_point():
            d = (cur.double() - old.double()).abs()
            diff = value_of(torch.nan_to_num(d, nan=float("inf")).max())
        n = int((cur != old).sum())
        return {"how": "values changed", "elements_changed": n, "max_abs_change": diff}
    if now._version != version:
        return {"how": "written in place (values unchanged on this input)"}
    return None


class InplaceProbe(GuardedProbe):
    name = NAME
    crash_severity = "warning"
    title = "inputs not modified in place"

    def _run(self, ctx: Context) -> list[Finding]:
        inputs = list(ctx.samples) + list(ctx.edge_samples)
        seen: dict[str, tuple[Finding, list[str]]] = {}
        called = 0

        def report(key: str, finding: Finding, note: str) -> None:
            seen.setdefault(key, (finding, []))[1].append(note)

        for sample in inputs:
            pred, target, kwargs = fresh(sample)
            tensors = {"pred": pred, "target": target}
            tensors.update({k: v for k, v in kwargs.items() if isinstance(v, Tensor)})
            snap = _snapshot(tensors)
            out, failed = call(ctx, pred, target, kwargs)
            if failed is not None:
                if is_timeout(failed):
                    break
            else:
                called += 1
            changes = {name: _changed(snap[name], t) for name, t in tensors.items()}
            stage = {name: "the call" for name, c in changes.items() if c is not None}
            if failed is None and isinstance(out, Tensor) and out.requires_grad:
                _, reason = gradient(ctx, out, pred)
                if reason and "inplace operation" in reason:
                    report(
                        "backward",
                        Finding(
                            NAME,
                            "warning",
                            "the backward fails: a tensor it needs was modified in place "
                            f"on {sample.note!r}",
                            "replace `x.op_(...)` by `x = x.op(...)` inside the loss",
                            {**sample_evidence(sample), "backward": reason[:200]},
                        ),
                        sample.note,
                    )
                for name, t in tensors.items():
                    if changes[name] is None:
                        changes[name] = _changed(snap[name], t)
                        if changes[name] is not None:
                            stage[name] = "the backward"
            for name, change in changes.items():
                if change is None:
                    continue
                report(
                    name,
                    Finding(
                        NAME,
                        "warning",
                        f"`{name}` was modified in place ({change['how']}) by {stage[name]} on "
                        f"{sample.note!r}",
                        FIX,
                        {**sample_evidence(sample), "argument": name, **change},
                    ),
                    sample.note,
                )
            if not pred.requires_grad:
                report(
                    "requires_grad",
                    Finding(
                        NAME,
                        "warning",
                        f"`pred.requires_grad` was switched off by the call on {sample.note!r}",
                        "do not call pred.requires_grad_(False) or detach_() on the input; "
                        "use pred.detach() for a non-differentiable copy",
                        {**sample_evidence(sample), "argument": "pred"},
                    ),
                    sample.note,
                )
            elif pred.grad is not None:
                report(
                    "grad",
                    Finding(
                        NAME,
                        "warning",
                        f"the call filled `pred.grad` (it runs backward() itself) on {sample.note!r}",
                        "return the loss and let the training loop call backward()",
                        {**sample_evidence(sample), "argument": "pred"},
                    ),
                    sample.note,
                )

        if seen:
            out_findings = []
            for finding, notes in seen.values():
                ev = dict(finding.evidence)
                if len(notes) > 1:
                    ev["inputs"] = notes
                out_findings.append(
                    Finding(finding.probe, finding.severity, finding.message, finding.fix, ev)
                )
            return out_findings
        if called == 0:
            return [
                Finding(
                    NAME,
                    "info",
                    "not checked: no call of the function returned (see returns_tensor)",
                )
            ]
        return [
            Finding(
                NAME,
                "ok",
                f"pred, target and keyword tensors unchanged after the call and backward "
                f"({called} inputs)",
                evidence={
                    "shapes": {
                        "pred": describe(inputs[0].pred),
                        "target": describe(inputs[0].target),
                    }
                },
            )
        ]


PROBE = InplaceProbe()
