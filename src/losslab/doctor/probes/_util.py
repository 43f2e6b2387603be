"""Helpers shared by the probes: safe calls, fresh copies of samples, JSON-able evidence.

Every helper that touches the user's function goes through ``ctx.call`` / ``bounded_call`` and
never raises: failures come back as values for the probe to report.
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

# Fix hints shared by the numerics probes.
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


RTOL = 1e-4  # float32 sums in a different order agree to ~1e-6 relative; bugs differ by >1 %
ATOL = 1e-7


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
        return None, CallFailed(f"raised {type(exc).__name__}: {exc}".splitlines()[0][:300], exc)


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


def shape_of(x: Any) -> Any:
    """A tensor's shape as a list; the type name of anything else."""
    if isinstance(x, Tensor):
        return list(x.shape)
    return type(x).__name__


def scalar(out: Any) -> Optional[float]:
    """The value of a one-element float tensor or a Python number (float64); None otherwise."""
    if isinstance(out, Tensor):
        if out.numel() != 1 or not (out.is_floating_point() or out.is_complex()):
            return None
        return float(out.detach().reshape(()).to(torch.float64).real)
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return float(out)
    return None


def close(a: float, b: float, *scale: float, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """``|a - b|`` within ``rtol`` of the largest magnitude among ``a``, ``b`` and ``scale``."""
    if a != a or b != b:  # NaN never agrees (the extremes probe reports where it comes from)
        return False
    if a == b:
        return True
    ref = max([abs(a), abs(b), *[abs(s) for s in scale]])
    return abs(a - b) <= rtol * ref + atol


def take_rows(
    pred: Tensor, target: Tensor, kwargs: Mapping[str, Any], index: Tensor
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Rows ``index`` of the batch: ``pred``, ``target`` and every tensor keyword argument
    whose first dimension is the batch (a ranking mask, per-sample data)."""
    n = pred.shape[0]
    idx = index.to(pred.device)

    def rows(x: Any) -> Any:
        if isinstance(x, Tensor) and x.dim() >= 1 and x.shape[0] == n:
            return x.index_select(0, idx.to(x.device)).clone()
        return x

    return rows(pred), rows(target), {k: rows(v) for k, v in kwargs.items()}


def failed_finding(probe: str, what: str, exc: CallFailed, **evidence: Any) -> Finding:
    """Info: the probe could not assess its property because the function failed (the
    returns_tensor probe reports crashes on valid inputs)."""
    return Finding(
        probe,
        "info",
        f"not checked: the function failed on {what}: {exc.reason}"[:300],
        evidence={**evidence, "error": exc.reason},
    )


def fresh(
    sample: Sample, *, pred: Optional[Tensor] = None, grad: bool = False
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Copies of a sample's ``(pred, target, kwargs)`` in their own dtype and device."""
    return prepare(sample, pred=pred, grad=grad)


call = call_loss


class GuardedProbe:
    """Base of the probes: ``run`` calls the subclass's ``_run`` and turns any exception of
    the probe itself into an info finding (a probe never raises)."""

    name: str = ""
    title: str = ""
    crash_severity: str = "info"  # the core probes (a tensor, in place, determinism): "warning"

    def run(self, ctx: Context) -> list[Finding]:
        try:
            return self._run(ctx)
        except Exception as exc:  # the probe itself must never raise
            message = f"probe could not run: {type(exc).__name__}: {exc}".splitlines()[0][:200]
            return [Finding(self.name, self.crash_severity, message)]

    def _run(self, ctx: Context) -> list[Finding]:
        raise NotImplementedError
