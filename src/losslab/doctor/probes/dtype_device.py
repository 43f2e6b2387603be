"""The output follows the inputs' dtype and device.

Dtype: float64 inputs must give a float64 loss and float32 inputs a float32 one; float16
inputs may give float16 or float32 (torch's own losses return the input's dtype; float32
is what a loss computing in float32 returns). Anything else means a tensor created inside
with a fixed dtype (``torch.tensor(weights)`` is float32; a NumPy array becomes float64)
promoted the computation: warning. So is a dtype-mismatch failure on float64 inputs when
float32 inputs work (``F.cross_entropy(x, t, weight=torch.tensor(w))``); float16 failures
are the low_precision probe's.

Device: the sample is moved to the ``meta`` device (shapes and dtypes without data, so no
GPU is needed) and the function called once. Tensors created inside without ``device=``
land on the CPU: mixing them with the inputs fails with a device error, or the loss comes
back on the CPU: warning (on a GPU this is a crash or a silent host round trip). A failure
for another reason (``.item()``, boolean masks and other data-dependent operations cannot
run without data) is info with the reason; for losslab-style functions with a ``validate``
argument (or a module with a boolean ``validate`` attribute, as losslab's) the call is
retried with validation off (value checks need data).
An ``nn.Module`` with parameters or buffers is moved to the meta device first (a copy), as
a user moves the loss with ``.to(device)``. Factory calls without ``device=`` seen during the
meta call (``torch.ones(...)`` in the
user's code, not in torch's) are listed in the evidence.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import os
import re
import sys
from typing import Any, Callable, Optional

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from losslab.doctor._call import CallFailed
from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import GuardedProbe, call_loss, describe, module_as, prepare

__all__ = ["PROBE", "DtypeDeviceProbe"]

NAME = "dtype_device"

FIX_DTYPE = (
    "create tensors inside with dtype=pred.dtype (torch.as_tensor(w, dtype=pred.dtype, "
    "device=pred.device)); no NumPy float64 arrays, no .float()/.double() casts"
)
FIX_DEVICE = "tensor created on the CPU inside the loss: pass device=pred.device"
FIX_NUMPY = (
    "do not leave torch inside the loss (no .numpy()/.cpu()): it fails on a GPU and cuts the graph"
)

_DEVICE_ERROR = re.compile(
    r"on device cpu|expected device|same device|two devices|device type|devices"
)
_NUMPY_ERROR = re.compile(r"to numpy|numpy\(\)")
_COPY_OUT = re.compile(r"Cannot copy out of meta tensor")
_DTYPE_ERROR = re.compile(
    r"expected scalar type|same dtype|expected both|dtype mismatch|but found (Float|Double)"
    r"|Found dtype|can't be cast|!= float|!= double",
    re.IGNORECASE,
)
_NEEDS_DATA = re.compile(
    r"meta tensor|Meta tensor|Meta kernel|'Meta' backend|data-dependent|register_meta|nonzero"
)
_FACTORIES = frozenset(
    {
        "tensor",
        "as_tensor",
        "ones",
        "zeros",
        "full",
        "empty",
        "arange",
        "linspace",
        "logspace",
        "eye",
        "rand",
        "randn",
        "randint",
        "randperm",
        "from_numpy",
    }
)
_TORCH_DIR = os.path.dirname(torch.__file__)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


class _Factories(TorchFunctionMode):
    """Records factory calls made from outside torch that create a CPU tensor of more than
    one element (a scalar on the CPU mixes with any device)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: Optional[dict[str, Any]] = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if (
            name in _FACTORIES
            and len(self.seen) < 5
            and isinstance(out, Tensor)
            and out.device.type == "cpu"
            and out.numel() > 1
        ):
            where = self._caller()
            if where is not None:
                self.seen.append(f"{where}: torch.{name}(...) without device=")
        return out

    @staticmethod
    def _caller() -> Optional[str]:
        frame = sys._getframe(2)
        here = os.path.abspath(__file__)
        while frame is not None:
            path = os.path.abspath(frame.f_code.co_filename)
            if path != here and not path.startswith(os.path.join(_TORCH_DIR, "")):
                return f"{os.path.basename(path)}:{frame.f_lineno}"
            if path.startswith(os.path.join(_TORCH_DIR, "")):
                return None  # created by torch itself
            frame = frame.f_back  # type: ignore[assignment]
        return None


def _module_on_meta(ctx: Context) -> Context:
    """For an ``nn.Module`` with parameters or buffers (class weights, ...): the context with
    a copy of it moved to the meta device, as a user moves the loss with ``.to(device)``."""
    fn = ctx.fn
    if not isinstance(fn, torch.nn.Module):
        return ctx
    if not any(True for _ in itertools.chain(fn.parameters(), fn.buffers())):
        return ctx
    try:
        return dataclasses.replace(ctx, fn=copy.deepcopy(fn).to("meta"))
    except Exception:  # not copyable: checked as it is
        return ctx


def _validating_module(fn: Any) -> bool:
    """A module with a boolean ``validate`` attribute (losslab's losses): its value checks
    can be switched off on a copy."""
    return isinstance(fn, torch.nn.Module) and isinstance(getattr(fn, "validate", None), bool)


def _accepts_validate(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "validate" in params


class DtypeDeviceProbe(GuardedProbe):
    name = NAME
    title = "output dtype and device follow the inputs"

    def _run(self, ctx: Context) -> list[Finding]:
        if not ctx.samples:
            return [Finding(NAME, "ok", "no sample to check")]
        sample = ctx.samples[0]
        findings = self._dtypes(ctx, sample)
        findings.append(self._device(ctx, sample))
        problems = [f for f in findings if f.severity != "ok"]
        if not problems:
            return [
                Finding(
                    NAME,
                    "ok",
                    "output dtype follows the input (float64, float32, float16) and the "
                    "output stays on the input's device (meta)",
                    evidence={"checked": [f.message for f in findings]},
                )
            ]
        return problems

    # ----------------------------------------------------------------------------- dtype
    def _dtypes(self, ctx: Context, sample: Sample) -> list[Finding]:
        out: list[Finding] = []
        float32_runs = False
        for dtype, allowed in (
            (torch.float32, (torch.float32,)),
            (torch.float64, (torch.float64,)),
            (torch.float16, (torch.float16, torch.float32)),
        ):
            pred, target, kwargs = prepare(sample, dtype=dtype, grad=False)
            # a module's float buffers (class weights) follow a .double() of the module, as
            # a user would cast it; half precision leaves loss modules alone (autocast does)
            run_ctx = module_as(ctx, dtype) if dtype == torch.float64 else ctx
            got, failed = call_loss(run_ctx, pred, target, kwargs)
            if (
                failed is not None
                and dtype == torch.float64
                and float32_runs
                and _DTYPE_ERROR.search(failed.reason)
            ):
                out.append(
                    Finding(
                        NAME,
                        "warning",
                        "float64 inputs fail with a dtype mismatch (float32 inputs work): a "
                        f"tensor created inside in float32: {failed.reason}",
                        fix=FIX_DTYPE,
                        evidence={"input": "float64", "error": failed.reason},
                    )
                )
                continue
            if failed is not None or not isinstance(got, Tensor) or not got.is_floating_point():
                # crashes and non-tensors are reported by other probes (returns_tensor,
                # low_precision for float16); nothing to say about the dtype here
                continue
            float32_runs = float32_runs or dtype == torch.float32
            evidence = {"input": _name(dtype), "output": _name(got.dtype), "pred": describe(pred)}
            if got.dtype in allowed:
                out.append(Finding(NAME, "ok", f"{_name(dtype)} in, {_name(got.dtype)} out"))
                continue
            if dtype == torch.float64 and got.dtype == torch.float32:
                message = (
                    "float64 inputs give a float32 loss: a tensor created inside in float32 "
                    "(or a .float() cast)"
                )
            elif got.dtype == torch.float64:
                message = (
                    f"{_name(dtype)} inputs give a float64 loss: a float64 tensor created "
                    "inside (a NumPy array, or dtype=torch.float64) promotes the computation"
                )
            else:
                message = (
                    f"{_name(dtype)} inputs give a {_name(got.dtype)} loss: the output does "
                    "not follow the input's dtype"
                )
            out.append(Finding(NAME, "warning", message, fix=FIX_DTYPE, evidence=evidence))
        return out

    # ---------------------------------------------------------------------------- device
    def _meta_call(
        self, ctx: Context, sample: Sample, validate_off: bool = False
    ) -> tuple[Any, Optional[CallFailed], list[str]]:
        pred, target, kwargs = prepare(sample, device="meta", grad=False)
        if validate_off:
            if _validating_module(ctx.fn):
                off = copy.deepcopy(ctx.fn)
                setattr(off, "validate", False)  # noqa: B010 - a module attribute
                ctx = dataclasses.replace(ctx, fn=off)
            else:
                kwargs["validate"] = False
        ctx = _module_on_meta(ctx)
        mode = _Factories()
        try:
            with mode:
                out, failed = call_loss(ctx, pred, target, kwargs)
        except Exception as exc:  # entering/leaving the mode itself
            return None, CallFailed(f"raised {type(exc).__name__}: {exc}"[:300], exc), []
        return out, failed, mode.seen

    def _device(self, ctx: Context, sample: Sample) -> Finding:
        out, failed, seen = self._meta_call(ctx, sample)
        base: dict[str, Any] = {"device": "meta", "pred": describe(sample.pred)}
        if (
            failed is not None
            and not _DEVICE_ERROR.search(failed.reason)
            and "validate" not in sample.kwargs
            and (_accepts_validate(ctx.fn) or _validating_module(ctx.fn))
        ):
            # value checks need data: try again without them
            out2, failed2, seen2 = self._meta_call(ctx, sample, validate_off=True)
            if failed2 is None or _DEVICE_ERROR.search(failed2.reason):
                out, failed, seen = out2, failed2, seen2
                base["validate"] = False
        if seen:
            base["created_without_device"] = seen
        if failed is not None:
            reason = failed.reason
            if _NUMPY_ERROR.search(reason):
                return Finding(
                    NAME,
                    "warning",
                    f"the loss converts a tensor to NumPy: {reason}",
                    fix=FIX_NUMPY,
                    evidence={**base, "error": reason},
                )
            if _DEVICE_ERROR.search(reason):
                return Finding(
                    NAME,
                    "warning",
                    f"mixes devices with inputs on the meta device: {reason}",
                    fix=FIX_DEVICE,
                    evidence={**base, "error": reason},
                )
            if seen and _COPY_OUT.search(reason):
                # meta data copied into a tensor created on the CPU (``buf[:] = x``)
                return Finding(
                    NAME,
                    "warning",
                    f"copies the inputs into a tensor created on the CPU: {seen[0]} ({reason})",
                    fix=FIX_DEVICE,
                    evidence={**base, "error": reason},
                )
            created = f" (created without device=: {'; '.join(seen)})" if seen else ""
            why = (
                "it needs data, e.g. .item() or a boolean mask"
                if _NEEDS_DATA.search(reason)
                else "for a reason unrelated to devices"
            )
            return Finding(
                NAME,
                "info",
                f"device not checked: the call fails on the meta device ({why}): {reason}{created}",
                evidence={**base, "error": reason},
            )
        if isinstance(out, Tensor) and out.device.type != "meta":
            return Finding(
                NAME,
                "warning",
                f"inputs on the meta device give a loss on {out.device}: a tensor created "
                "inside without device= carries the result",
                fix=FIX_DEVICE,
                evidence={**base, "output_device": str(out.device)},
            )
        if not isinstance(out, Tensor):
            return Finding(NAME, "ok", "device not checked: the output is not a tensor")
        return Finding(NAME, "ok", "the output stays on the inputs' device", evidence=base)


PROBE = DtypeDeviceProbe()
