"""The doctor never crashes, whatever the checked function does.

Every function below misbehaves in one way: it raises, returns garbage, hangs past the
timeout, exits, or changes global torch state. ``check`` must return a Report whose findings
say so (at least one finding >= warning where the function is unusable), never raise, stay
bounded in time, and leave torch's global state as it found it.

Decisions recorded here:
- ``KeyboardInterrupt`` is not contained (the user's Ctrl-C must stop the doctor).
- ``SystemExit`` raised by the checked function SHOULD be contained and reported: a loss
  function that calls ``sys.exit()`` is a bug to report, and ``losslab check`` must keep its
  exit-code contract (0 / 1 / 2). See ``test_sys_exit_is_contained``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pytest
import torch

check_module = pytest.importorskip("losslab.doctor.check")
check = check_module.check

from losslab.doctor._types import Report, severity_rank  # noqa: E402

WARNING = severity_rank("warning")
ERROR = severity_rank("error")

# cheap probes that call the function on the canonical sample; the full probe set runs in a
# few selected tests below (it costs seconds per function)
QUICK = ["returns_tensor", "extremes", "gradcheck", "minimum"]


def _probes_available(names: list[str]) -> list[str]:
    from tests.doctor.test_zoo import AVAILABLE  # the same discovery as the zoo test

    return [n for n in names if n in AVAILABLE]


def _check(
    fn: Any, *, probes: list[str] | None = QUICK, task: str = "regression", **kw: Any
) -> Report:
    if probes is not None:
        probes = _probes_available(probes)
        if not probes:
            pytest.skip("none of the probes is written yet")
    report = check(fn, task=task, probes=probes, **kw)
    assert isinstance(report, Report)
    assert report.findings, "a report always has findings"
    for finding in report.findings:
        assert finding.severity in ("ok", "info", "warning", "error")
        finding.to_dict()  # JSON-able
    import json

    json.dumps(report.to_dict())
    return report


def _worst_rank(report: Report) -> int:
    return severity_rank(report.worst)


# --- raises -------------------------------------------------------------------------------------


class CustomLossError(Exception):
    pass


def raises_value_error(pred, target):
    raise ValueError("pred and target disagree")


def raises_runtime_error(pred, target):
    raise RuntimeError("CUDA error: device-side assert triggered")


def raises_custom(pred, target):
    raise CustomLossError("something odd")


def raises_type_error_signature(pred):  # one parameter: the doctor calls it with two
    return pred.sum()


def raises_sometimes(pred, target):
    if pred.numel() < 4:  # fails on the single-element edge sample only
        raise IndexError("index 3 is out of bounds")
    return ((pred - target) ** 2).mean()


@pytest.mark.parametrize(
    "fn", [raises_value_error, raises_runtime_error, raises_custom, raises_type_error_signature]
)
def test_function_that_raises(fn) -> None:
    report = _check(fn)
    assert _worst_rank(report) >= ERROR, report.to_dict()


def test_function_that_raises_on_one_edge_case() -> None:
    report = _check(raises_sometimes, probes=["returns_tensor"])
    assert _worst_rank(report) >= WARNING, report.to_dict()


def test_all_probes_on_a_raising_function() -> None:
    report = _check(raises_value_error, probes=None)
    probes_seen = {f.probe for f in report.findings}
    from tests.doctor.test_zoo import AVAILABLE

    assert probes_seen == AVAILABLE, "every probe reports, even when nothing can be called"


# --- returns garbage ------------------------------------------------------------------------------


def returns_string(pred, target):
    return "loss"


def returns_none(pred, target):
    return None


def returns_list(pred, target):
    return [((pred - target) ** 2).mean()]


def returns_numpy_float(pred, target):
    return np.float64(((pred - target) ** 2).mean().item())


def returns_vector(pred, target):
    return (pred - target) ** 2


def returns_no_grad_tensor(pred, target):
    return ((pred.detach() - target) ** 2).mean()


def returns_int_tensor(pred, target):
    return (pred > target).sum()


def returns_nan(pred, target):
    return (pred - target).mean() * float("nan")


def returns_dict(pred, target):
    return {"loss": ((pred - target) ** 2).mean()}


def returns_tuple(pred, target):
    loss = ((pred - target) ** 2).mean()
    return loss, {"mse": loss.detach()}


def returns_complex(pred, target):
    return torch.complex(pred, target).abs().mean() * (1 + 0j)


GARBAGE = [
    returns_string,
    returns_none,
    returns_list,
    returns_numpy_float,
    returns_vector,
    returns_no_grad_tensor,
    returns_int_tensor,
    returns_nan,
    returns_dict,
    returns_tuple,
    returns_complex,
]


@pytest.mark.parametrize("fn", GARBAGE, ids=[f.__name__ for f in GARBAGE])
def test_function_that_returns_garbage(fn) -> None:
    report = _check(fn)
    assert _worst_rank(report) >= ERROR, report.to_dict()


@pytest.mark.parametrize(
    "fn", [returns_string, returns_none, returns_vector, returns_nan], ids=lambda f: f.__name__
)
def test_all_probes_on_garbage(fn) -> None:
    report = _check(fn, probes=None)
    assert _worst_rank(report) >= ERROR


# --- hangs ------------------------------------------------------------------------------------------


def sleeps(pred, target):
    time.sleep(30)
    return ((pred - target) ** 2).mean()


def busy_loops(pred, target):
    while True:
        pass


def slow_on_large_inputs(pred, target):
    if pred.numel() > 100:
        time.sleep(30)
    return ((pred - target) ** 2).mean()


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("fn", [sleeps, busy_loops], ids=lambda f: f.__name__)
def test_function_that_hangs_is_bounded(fn) -> None:
    start = time.perf_counter()
    report = _check(fn, probes=["returns_tensor", "extremes"], timeout=1.0)
    elapsed = time.perf_counter() - start
    assert _worst_rank(report) >= ERROR
    text = " ".join(f.message for f in report.findings).lower()
    assert "1 s" in text or "time" in text, text
    assert elapsed < 30, f"check took {elapsed:.1f} s with timeout=1"


@pytest.mark.slow
@pytest.mark.timeout(300, method="thread")
def test_every_probe_on_a_hanging_function_is_bounded() -> None:
    """A function that never returns, through every probe: each call costs the timeout; the
    whole check must stay bounded (this measures how many calls the doctor makes)."""
    start = time.perf_counter()
    report = _check(sleeps, probes=None, timeout=1.0)
    elapsed = time.perf_counter() - start
    assert _worst_rank(report) >= ERROR
    assert elapsed < 120, f"check took {elapsed:.1f} s with timeout=1"


@pytest.mark.timeout(120, method="thread")
def test_slow_only_on_large_inputs() -> None:
    probes = ["performance"]
    report = _check(slow_on_large_inputs, probes=probes, timeout=1.0)
    assert report.findings


# --- exits and interrupts -----------------------------------------------------------------------


def calls_sys_exit(pred, target):
    sys.exit(3)


def raises_keyboard_interrupt(pred, target):
    raise KeyboardInterrupt


def test_sys_exit_is_contained() -> None:
    report = _check(calls_sys_exit, probes=None)
    assert _worst_rank(report) >= ERROR
    text = " ".join(f.message for f in report.findings)
    assert "sys.exit" in text, text


def test_keyboard_interrupt_propagates() -> None:
    with pytest.raises(KeyboardInterrupt):
        _check(raises_keyboard_interrupt, probes=["returns_tensor"])


# --- global torch state -------------------------------------------------------------------------


def sets_default_dtype(pred, target):
    torch.set_default_dtype(torch.float64)
    return ((pred - target) ** 2).mean()


def disables_grad(pred, target):
    torch.set_grad_enabled(False)
    return ((pred - target) ** 2).mean()


def reseeds(pred, target):
    torch.manual_seed(1234)
    return ((pred - target) ** 2).mean()


def enables_anomaly_detection(pred, target):
    torch.autograd.set_detect_anomaly(True)
    return ((pred - target) ** 2).mean()


def changes_state_then_raises(pred, target):
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    raise RuntimeError("half-way")


def _state() -> dict[str, Any]:
    return {
        "default_dtype": torch.get_default_dtype(),
        "grad_enabled": torch.is_grad_enabled(),
        "anomaly": torch.is_anomaly_enabled(),
    }


@pytest.mark.parametrize(
    "fn",
    [sets_default_dtype, disables_grad, enables_anomaly_detection, changes_state_then_raises],
    ids=lambda f: f.__name__,
)
def test_global_state_restored(fn) -> None:
    before = _state()
    try:
        _check(fn, probes=None)
    finally:
        after = _state()
        # leave the process clean for the next tests whatever happened
        torch.set_default_dtype(before["default_dtype"])
        torch.set_grad_enabled(before["grad_enabled"])
        torch.autograd.set_detect_anomaly(before["anomaly"])
    assert after == before


def test_rng_state_restored() -> None:
    before = torch.random.get_rng_state().clone()
    _check(reseeds, probes=None)
    assert torch.equal(torch.random.get_rng_state(), before)


PROBE_CRASH = "the doctor's probe failed"

CRASH_SUSPECTS = [*GARBAGE, raises_value_error, raises_runtime_error, raises_type_error_signature]


def test_no_probe_crashes_on_misbehaving_functions() -> None:
    """check() contains a probe that raises (turning it into a warning), but a probe should
    never need that: each handles a failed call itself. Lists every probe x function crash."""
    crashes = []
    for fn in CRASH_SUSPECTS:
        report = _check(fn, probes=None)
        for f in report.findings:
            if f.message.startswith(PROBE_CRASH):
                crashes.append(f"{f.probe} on {fn.__name__}: {f.message[:160]}")
    assert not crashes, "\n".join(crashes)


# --- the function attacks the inputs --------------------------------------------------------------


def zeroes_target(pred, target):
    target.zero_()
    return ((pred - target) ** 2).mean()


def nans_target(pred, target):
    target.fill_(float("nan"))
    return ((pred - target) ** 2).mean()


def resizes_target(pred, target):
    target.resize_(0)
    return pred.sum() * 0


@pytest.mark.parametrize(
    "fn", [zeroes_target, nans_target, resizes_target], ids=lambda f: f.__name__
)
def test_function_that_mangles_its_inputs(fn) -> None:
    report = _check(fn, probes=None)
    flagged = {f.probe for f in report.findings if severity_rank(f.severity) >= WARNING}
    from tests.doctor.test_zoo import AVAILABLE

    if "inplace" in AVAILABLE:
        assert "inplace" in flagged, report.to_dict()


# --- modules and other callables ------------------------------------------------------------------


class StatefulModule(torch.nn.Module):
    """Counts its calls: a loss with hidden state (not a crash)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, pred, target):
        self.calls += 1
        return ((pred - target) ** 2).mean() * self.calls


class ModuleThatRaises(torch.nn.Module):
    def forward(self, pred, target):
        raise ValueError("nope")


@pytest.mark.parametrize(
    "fn", [StatefulModule(), ModuleThatRaises()], ids=lambda m: type(m).__name__
)
def test_modules(fn) -> None:
    _check(fn, probes=None)


@pytest.mark.parametrize(
    "task", ["binary", "multiclass", "multilabel", "segmentation", "ranking", "forecasting"]
)
def test_garbage_on_every_task(task) -> None:
    report = _check(returns_string, task=task)
    assert _worst_rank(report) >= ERROR
