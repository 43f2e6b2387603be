"""The loss returns a tensor with a gradient path to ``pred``, on every input, edge cases included.

Every realistic sample and every edge sample (all-negative targets, a single-element batch,
no valid pair, an empty mask, every target ignored, ...) is called once with ``pred``
requiring a gradient. Errors (each breaks training):

* the call raises, or does not return within the timeout (a hang stops the probe: the
  remaining inputs are not tried);
* the result is not a tensor: a Python or NumPy number (``.item()``, ``float()``, a
  ``return 0.0`` for the empty case), ``None``, a tuple, a list, a dict, a string;
* an integer, boolean or complex tensor; a tensor with more than one element under the
  default reduction (a vector where a scalar is expected);
* no gradient path to ``pred`` (``no_grad``, ``.detach()``, ``torch.tensor(x)``, ``argmax``),
  or a backward that raises;
* a NaN or infinite value or gradient (an empty selection averaged: 0 / 0).

Warnings: a deliberate ``ValueError``/``TypeError`` on an edge case (a batch like it would stop
training), a 1-element tensor of shape ``(1,)`` instead of a 0-d one, a gradient that is zero
everywhere on a realistic sample. Identical problems on several inputs are reported once,
with the inputs listed in the evidence.

This module also holds the small helpers the core probes share (``fresh``, ``call``,
``gradient``, ``describe``, ``sample_evidence``).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._call import CallFailed, bounded_call
from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.inputs import default_of
from losslab.doctor.probes._util import GuardedProbe, call_loss

__all__ = [
    "PROBE",
    "ReturnsTensorProbe",
    "call",
    "describe",
    "fresh",
    "gradient",
    "sample_evidence",
]

NAME = "returns_tensor"

FIX_EMPTY = (
    "return a tensor connected to pred in the empty case too, e.g. `return pred.sum() * 0.0`"
)
FIX_ITEM = "return the tensor itself; call .item() / float() only when logging"
FIX_NO_GRAD = (
    "compute the loss from pred with differentiable torch ops (no torch.no_grad, .detach(), "
    "torch.tensor(...) re-wrapping, argmax or .item())"
)


# --------------------------------------------------------------------------- shared helpers
def describe(x: Any) -> Any:
    """JSON-able shape and dtype of a tensor; the type name of anything else."""
    if isinstance(x, Tensor):
        return {"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", "")}
    return type(x).__name__


def value_of(x: Any) -> Any:
    """A short JSON-able rendering of a value: numbers as numbers (NaN/inf as strings)."""
    if isinstance(x, Tensor):
        if x.numel() == 1 and not x.is_complex():
            return value_of(float(x.detach().reshape(())))
        return f"tensor of shape {tuple(x.shape)}"
    if isinstance(x, (bool, int)) and abs(x) < 2**53:
        return x
    try:
        v = float(x)
    except (TypeError, ValueError, OverflowError):
        return repr(x)[:80]
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def sample_evidence(sample: Sample, pred: Optional[Tensor] = None) -> dict[str, Any]:
    """The sample's note, shapes and dtypes (JSON-able)."""
    kwargs = {
        k: describe(v) if isinstance(v, Tensor) else value_of(v) for k, v in sample.kwargs.items()
    }
    ev: dict[str, Any] = {
        "input": sample.note,
        "pred": describe(sample.pred if pred is None else pred),
        "target": describe(sample.target),
    }
    if kwargs:
        ev["kwargs"] = kwargs
    return ev


def fresh(sample: Sample, *, grad: bool = True) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Copies of a sample's ``(pred, target, kwargs)``; ``pred`` a leaf requiring a gradient."""
    pred = sample.pred.detach().clone()
    if grad and pred.is_floating_point():
        pred.requires_grad_(True)
    target = sample.target.detach().clone()
    kwargs = {
        k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in sample.kwargs.items()
    }
    return pred, target, kwargs


call = call_loss


def gradient(ctx: Context, out: Tensor, pred: Tensor) -> tuple[Optional[Tensor], Optional[str]]:
    """The gradient of ``out.sum()`` with respect to ``pred``, bounded in time like a call:
    ``(grad, None)``, ``(None, None)`` when ``out`` does not depend on ``pred``, ``(None,
    reason)`` when the backward failed."""
    try:
        total = out.sum() if out.dim() else out
        (g,) = bounded_call(
            torch.autograd.grad, (total, pred), {"allow_unused": True}, timeout=ctx.timeout
        )
    except CallFailed as exc:
        return None, f"backward {exc.reason}"
    except Exception as exc:
        return None, f"backward raised {type(exc).__name__}: {exc}".splitlines()[0][:300]
    return g, None


def is_timeout(exc: CallFailed) -> bool:
    return exc.error is None and "within" in exc.reason


def is_validation(exc: CallFailed) -> bool:
    """A deliberate rejection of the input (the function's own ValueError or TypeError)."""
    return isinstance(exc.error, (ValueError, TypeError))


# ------------------------------------------------------------------------------- the probe
class _Problem:
    """One thing wrong with one output; ``key`` groups the same problem across inputs."""

    def __init__(
        self, severity: str, message: str, fix: str, extra: dict[str, Any], key: str = ""
    ) -> None:
        self.severity, self.message, self.fix, self.extra = severity, message, fix, extra
        self.key = key or message


def _not_a_tensor(out: Any, edge: bool) -> _Problem:
    kind = type(out).__name__
    if isinstance(out, (bool, int, float)) or (
        type(out).__module__ == "numpy" and getattr(out, "ndim", 1) == 0
    ):
        what = "a Python" if isinstance(out, (bool, int, float)) else "a NumPy"
        return _Problem(
            "error",
            f"returned {what} {kind} ({value_of(out)}), not a tensor: nothing to backpropagate",
            FIX_EMPTY if edge else FIX_ITEM,
            {"value": value_of(out), "type": kind},
            key="number",
        )
    if out is None:
        return _Problem(
            "error",
            "returned None, not a tensor",
            "return the loss tensor (a missing `return`?)",
            {"type": "NoneType"},
        )
    if isinstance(out, (tuple, list, dict)):
        return _Problem(
            "error",
            f"returned a {kind}, not a tensor: training code calls loss.backward() on it",
            "return the loss tensor alone (log the components apart), or wrap the function: "
            "`lambda p, t: fn(p, t)[0]`",
            {"type": kind, "length": len(out)},
        )
    if type(out).__module__ == "numpy":
        return _Problem(
            "error",
            f"returned a NumPy {kind}, not a tensor: nothing to backpropagate",
            "compute the loss with torch ops on pred, not with NumPy",
            {"type": kind},
        )
    return _Problem(
        "error",
        f"returned a {kind} ({repr(out)[:40]}), not a tensor",
        "return the loss as a 0-d torch.Tensor computed from pred",
        {"type": kind, "value": repr(out)[:80]},
    )


def _examine(ctx: Context, out: Any, pred: Tensor, edge: bool, scalar: bool) -> list[_Problem]:
    """Everything wrong with one output (empty when it is a healthy loss value)."""
    if not isinstance(out, Tensor):
        return [_not_a_tensor(out, edge)]
    ev: dict[str, Any] = {"output": describe(out), "value": value_of(out)}
    if out.is_complex():
        return [
            _Problem(
                "error",
                f"returned a complex tensor ({describe(out)['dtype']}): a loss must be real",
                "return a real value (.abs() or .real of the complex result)",
                ev,
            )
        ]
    if not out.is_floating_point():
        return [
            _Problem(
                "error",
                f"returned a {describe(out)['dtype']} tensor: integers and booleans carry no gradient",
                FIX_NO_GRAD,
                ev,
            )
        ]
    problems: list[_Problem] = []
    if scalar and out.dim() != 0:
        if out.numel() == 1:
            problems.append(
                _Problem(
                    "warning",
                    f"returned shape {tuple(out.shape)} instead of a 0-d tensor",
                    "reduce to a 0-d tensor (.sum() / .mean(), or .reshape(())): shape (1,) "
                    "breaks stacking and logging",
                    ev,
                    key="shape (1,)",
                )
            )
        else:
            problems.append(
                _Problem(
                    "error",
                    f"returned shape {tuple(out.shape)} under the default reduction, not a "
                    "0-d tensor",
                    "reduce it (.mean()), or take a `reduction` argument that defaults to 'mean'",
                    ev,
                    key="not reduced",
                )
            )
    if not out.requires_grad:
        problems.append(
            _Problem(
                "error",
                "the result has no gradient path to pred (torch.no_grad, .detach(), "
                "torch.tensor(...) or argmax inside?)",
                FIX_NO_GRAD,
                ev,
            )
        )
        return problems
    finite = bool(torch.isfinite(out.detach()).all())
    if not finite:
        problems.append(
            _Problem(
                "error",
                f"returned a non-finite value ({value_of(out) if out.numel() == 1 else 'in the output'})",
                "guard empty selections (a mean over nothing is 0 / 0): divide by "
                "count.clamp_min(1), and keep logs and divisions away from 0",
                ev,
                key="value not finite",
            )
        )
    g, failed = gradient(ctx, out, pred)
    if failed is not None:
        problems.append(
            _Problem(
                "error", f"the {failed}", "make the backward work on this input", ev, key="backward"
            )
        )
    elif g is None:
        problems.append(
            _Problem(
                "error",
                "the result requires a gradient but none reaches pred (it depends on other "
                "tensors only)",
                FIX_NO_GRAD,
                ev,
            )
        )
    elif finite and not bool(torch.isfinite(g).all()):
        problems.append(
            _Problem(
                "error",
                "the gradient with respect to pred is not finite",
                "keep the backward finite: clamp before log/sqrt/division, or use the "
                "double-where trick (mask the input of the unsafe op as well as its output)",
                {**ev, "grad_nonfinite": int((~torch.isfinite(g)).sum())},
                key="grad not finite",
            )
        )
    elif not edge and bool((g == 0).all()):
        problems.append(
            _Problem(
                "warning",
                "the gradient with respect to pred is zero everywhere on a realistic input: "
                "training would not move",
                "check for a non-differentiable step (round, sign, comparisons) between pred "
                "and the loss",
                ev,
            )
        )
    return problems


class ReturnsTensorProbe(GuardedProbe):
    name = NAME
    crash_severity = "warning"
    title = "returns a 0-d tensor with a gradient path, edge cases included"

    def _run(self, ctx: Context) -> list[Finding]:
        default = default_of(ctx.fn, "reduction")
        scalar = not (ctx.has_reduction and default in ("none", None))
        inputs = [(s, False) for s in ctx.samples] + [(s, True) for s in ctx.edge_samples]
        groups: dict[tuple[str, str], tuple[_Problem, list[tuple[Sample, Tensor]]]] = {}
        tried = 0
        for sample, edge in inputs:
            try:
                pred, target, kwargs = fresh(sample)
            except Exception:
                continue
            tried += 1
            out, failed = call(ctx, pred, target, kwargs)
            if failed is not None:
                if is_timeout(failed):
                    problem = _Problem(
                        "error",
                        f"the call {failed.reason}: it hangs or is far too slow",
                        "look for an endless loop or a Python loop over elements",
                        {"timeout_s": ctx.timeout},
                    )
                    groups.setdefault(("timeout", ""), (problem, []))[1].append((sample, pred))
                    break  # every further call would cost the timeout again
                soft = edge and is_validation(failed)
                problem = _Problem(
                    "warning" if soft else "error",
                    f"{'rejects an edge case: ' if soft else ''}the call {failed.reason}",
                    "handle this case, e.g. return a zero loss connected to pred (a batch like "
                    "it stops training)"
                    if edge
                    else "make the function accept valid (pred, target) inputs of this task",
                    {"exception": type(failed.error).__name__ if failed.error else None},
                )
                # one group per exception type: the realistic samples come first, so an
                # exception raised everywhere is one error, not an error plus warnings
                key = ("raised", type(failed.error).__name__)
                groups.setdefault(key, (problem, []))[1].append((sample, pred))
                continue
            for problem in _examine(ctx, out, pred, edge, scalar):
                key = (problem.severity, problem.key)
                groups.setdefault(key, (problem, []))[1].append((sample, pred))

        if not groups:
            n_edge = sum(1 for _, edge in inputs if edge)
            return [
                Finding(
                    NAME,
                    "ok",
                    f"a {'0-d ' if scalar else ''}tensor with a finite gradient path on all "
                    f"{tried} inputs ({n_edge} edge cases)",
                    evidence={"inputs": [s.note for s, _ in inputs]},
                )
            ]
        findings = []
        for problem, seen in groups.values():
            first, pred = seen[0]
            where = f"on {first.note!r}"
            if len(seen) > 1:
                where += f" and {len(seen) - 1} other input{'s' if len(seen) > 2 else ''}"
            evidence = {**sample_evidence(first, pred), **problem.extra}
            if len(seen) > 1:
                evidence["inputs"] = [s.note for s, _ in seen]
            findings.append(
                Finding(
                    NAME, problem.severity, f"{problem.message} ({where})", problem.fix, evidence
                )
            )
        order = {"error": 0, "warning": 1, "info": 2, "ok": 3}
        return sorted(findings, key=lambda f: order.get(f.severity, 4))


PROBE = ReturnsTensorProbe()
