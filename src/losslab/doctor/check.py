"""``check(fn, ...)``: run the doctor's probes on a loss function and collect a :class:`Report`.

Probes are discovered at call time: every non-underscore module of
``losslab.doctor.probes`` that defines ``PROBE`` (sorted by probe name). ``check`` never
crashes because of the checked function or of a probe: a probe that raises (it should not:
each one turns the function's failures into findings itself) becomes a warning finding
"the doctor's probe failed: ...", and torch's global state (grad mode, default dtype,
autocast, anomaly mode, the RNG) is restored after every probe, whatever the function or the
probe did to it. Only ``KeyboardInterrupt`` goes through (the user's Ctrl-C stops the doctor),
and with ``LOSSLAB_DEBUG=1`` a failing probe raises, for a traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Callable, Optional, Union

import torch

from losslab._checks import suggest
from losslab.doctor._types import Context, Finding, Probe, Report
from losslab.doctor.inputs import build_context

__all__ = ["PROBE_CRASH", "available_probes", "check", "target_name"]

PROBE_CRASH = "the doctor's probe failed"
PROBE_CRASH_FIX = "a bug in losslab's doctor: please report it (LOSSLAB_DEBUG=1 shows a traceback)"


# ------------------------------------------------------------------------------- discovery
def _discover() -> tuple[dict[str, Probe], list[Finding]]:
    """``{name: probe}`` over ``losslab.doctor.probes``; modules that fail to import become
    findings instead of errors."""
    import losslab.doctor.probes as package

    probes: dict[str, Probe] = {}
    broken: list[Finding] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
        except Exception as exc:
            if os.environ.get("LOSSLAB_DEBUG") == "1":
                raise
            broken.append(_crash(info.name, exc, "import"))
            continue
        probe = getattr(module, "PROBE", None)
        if probe is None or not callable(getattr(probe, "run", None)):
            continue
        probes[str(getattr(probe, "name", info.name))] = probe
    return dict(sorted(probes.items())), broken


def available_probes() -> tuple[str, ...]:
    """The names of the probes ``check`` runs by default, sorted."""
    return tuple(_discover()[0])


def _select(
    probes: Optional[Union[str, Sequence[str]]], found: dict[str, Probe], broken: list[Finding]
) -> tuple[list[str], list[Finding]]:
    if probes is None:
        return list(found), broken
    names = [probes] if isinstance(probes, str) else list(probes)
    if not names:
        raise ValueError("check(): `probes` must name at least one probe (or be None for all).")
    known = set(found) | {f.probe for f in broken}
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"check(): `probes` must be probe names; got {name!r}.")
        if name not in known:
            hint = suggest(name, sorted(known))
            raise ValueError(
                f"check(): `probes` must name known probes ({', '.join(sorted(known))}); got "
                f"{name!r}." + (f" {hint}" if hint else "")
            )
    wanted = set(names)
    return [n for n in found if n in wanted], [f for f in broken if f.probe in wanted]


# ----------------------------------------------------------------------------- global state
def _autocast_state() -> list[tuple[str, bool, Any]]:
    out = []
    for device in ("cpu", "cuda"):
        try:
            out.append(
                (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
            )
        except Exception:  # older torch or a device type this build does not know
            continue
    return out


@contextmanager
def _restored_torch_state() -> Iterator[None]:
    """Put grad mode, default dtype, autocast, anomaly mode and the RNG back afterwards."""
    grad = torch.is_grad_enabled()
    dtype = torch.get_default_dtype()
    anomaly = torch.is_anomaly_enabled()
    autocast = _autocast_state()
    rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        torch.set_grad_enabled(grad)
        torch.set_default_dtype(dtype)
        torch.autograd.set_detect_anomaly(anomaly)
        for device, enabled, amp_dtype in autocast:
            try:
                torch.set_autocast_enabled(device, enabled)
                torch.set_autocast_dtype(device, amp_dtype)
            except Exception:
                pass
        torch.random.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


# ---------------------------------------------------------------------------------- running
def _crash(name: str, exc: BaseException, where: str = "run") -> Finding:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    first = text[0][:300] if text else type(exc).__name__
    verb = "could not be imported" if where == "import" else "raised"
    return Finding(
        name,
        "warning",
        f"{PROBE_CRASH}: it {verb} {first}",
        PROBE_CRASH_FIX,
        {"exception": type(exc).__name__, "where": where},
    )


def _run_probe(name: str, probe: Probe, ctx: Context) -> list[Finding]:
    try:
        with _restored_torch_state():
            result = probe.run(ctx)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit and the timeout's BaseException included
        if os.environ.get("LOSSLAB_DEBUG") == "1":
            raise
        return [_crash(name, exc)]
    findings = list(result) if isinstance(result, (list, tuple)) else None
    if findings is None or not all(isinstance(f, Finding) for f in findings):
        bad = type(result).__name__ if findings is None else "a non-Finding item"
        return [Finding(name, "warning", f"{PROBE_CRASH}: it returned {bad}", PROBE_CRASH_FIX)]
    if not findings:
        return [Finding(name, "warning", f"{PROBE_CRASH}: it returned no finding", PROBE_CRASH_FIX)]
    return findings


def target_name(fn: Any) -> str:
    """A readable name for the checked callable: ``module.qualname`` or the module's class."""
    if isinstance(fn, torch.nn.Module):
        cls = type(fn)
        return f"{cls.__module__}.{cls.__qualname__}()"
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and callable(inner) and hasattr(fn, "keywords"):
        kw = ", ".join(f"{k}={v!r}" for k, v in fn.keywords.items())
        return f"partial({target_name(inner)}, {kw})" if kw else f"partial({target_name(inner)})"
    qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if qual is None:
        return type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{module}.{qual}" if module and module != "builtins" else str(qual)


def check(
    fn: Callable[..., Any],
    *,
    task: str = "regression",
    input_kind: Optional[str] = None,
    sample: Any = None,
    probes: Optional[Union[str, Sequence[str]]] = None,
    timeout: float = 10.0,
    target: Optional[str] = None,
) -> Report:
    """Examine a loss function the way training will use it, and report what breaks.

    Args:
        fn: the loss: a function or an ``nn.Module`` called as ``fn(pred, target)``.
        task: ``binary | multiclass | multilabel | regression | segmentation | ranking |
            forecasting``: the shapes and dtypes of the generated inputs
            (see :mod:`losslab.doctor.inputs`).
        input_kind: what ``pred`` is (``logits | probs`` for classification and
            segmentation, ``values``, ``scores``); default: the task's usual kind.
        sample: an optional ``(pred, target)`` of your own; every input derives from it.
        probes: probe names to run (default: all of them, sorted by name).
        timeout: seconds one call of ``fn`` may take before it counts as hanging.
        target: the name the report gives ``fn`` (default: its qualified name).

    Returns:
        A :class:`~losslab.doctor.Report`: each probe's findings, in probe order.

    Raises:
        ValueError: unknown task, input kind or probe name (with a did-you-mean).
        TypeError: ``fn`` not callable, ``sample`` of the wrong type.

    >>> import torch
    >>> from losslab.functional import mse_loss
    >>> report = check(mse_loss, task="regression", probes=["returns_tensor", "inplace"])
    >>> [(f.probe, f.severity) for f in report.findings]
    [('inplace', 'ok'), ('returns_tensor', 'ok')]
    >>> def float_when_empty(pred, target):
    ...     if pred.numel() < 2:
    ...         return 0.0
    ...     return ((pred - target) ** 2).mean()
    >>> check(float_when_empty, probes=["returns_tensor"]).worst
    'error'
    """
    ctx = build_context(fn, task=task, input_kind=input_kind, sample=sample, timeout=timeout)
    found, broken = _discover()
    names, broken = _select(probes, found, broken)
    findings: list[Finding] = list(broken)
    # The function's own warnings would repeat once per call; the findings say what matters.
    with _restored_torch_state(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            # A fresh context per probe: what one probe (or the function) did to the
            # samples cannot leak into the next.
            if name != names[0]:
                ctx = build_context(
                    fn, task=task, input_kind=input_kind, sample=sample, timeout=timeout
                )
            findings.extend(_run_probe(name, found[name], ctx))
    return Report(
        target=target if target is not None else target_name(fn),
        task=ctx.task,
        input_kind=ctx.input_kind,
        findings=tuple(findings),
    )
