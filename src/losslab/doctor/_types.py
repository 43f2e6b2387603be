"""The data structures of ``losslab check``: findings, the report, the probe contract.

A *probe* examines one property of a user's loss function and returns findings. ``check``
(check.py) builds a :class:`Context` (the function, the task, realistic inputs) and runs every
probe in ``losslab.doctor.probes`` (one file per probe, each exposing ``PROBE``); the report
renders apart (report.py, cli/check.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from torch import Tensor

__all__ = [
    "SEVERITIES",
    "Context",
    "Finding",
    "Probe",
    "Report",
    "Sample",
    "severity_rank",
]

# ok: the property holds; info: worth knowing, not a defect (e.g. not batch-invariant by
# design); warning: likely a bug or a trap; error: a defect that breaks training.
SEVERITIES = ("ok", "info", "warning", "error")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Finding:
    probe: str  # the probe's name, e.g. "extremes"
    severity: str  # one of SEVERITIES
    message: str  # one line: what was seen
    fix: str = ""  # one line: how to fix it ("" for ok/info)
    evidence: Mapping[str, Any] = field(default_factory=dict)  # JSON-able: input, value seen, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class Report:
    target: str  # what was checked ("path/to/file.py:my_loss", or the function's qualified name)
    task: str
    input_kind: str
    findings: tuple[Finding, ...]

    @property
    def worst(self) -> str:
        return max((f.severity for f in self.findings), key=severity_rank, default="ok")

    def failed(self, fail_on: str = "error") -> bool:
        """True when a finding reaches ``fail_on`` ("warning" or "error")."""
        return severity_rank(self.worst) >= severity_rank(fail_on)

    def by_probe(self) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = {}
        for f in self.findings:
            out.setdefault(f.probe, []).append(f)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "task": self.task,
            "input_kind": self.input_kind,
            "worst": self.worst,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class Sample:
    """One realistic call: ``fn(pred, target, **kwargs)``.

    ``pred`` is what the function's first argument is (logits, probs, values, scores);
    ``note`` says what makes the sample special ("saturated logits", "all ignored", ...).
    """

    pred: Tensor
    target: Tensor
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class Context:
    """Everything a probe needs. Probes never call ``fn`` directly: they use :meth:`call`,
    which bounds the time, catches every exception and records it as evidence."""

    fn: Callable[..., Any]
    task: (
        str  # binary | multiclass | multilabel | regression | segmentation | ranking | forecasting
    )
    input_kind: str  # logits | probs | values | scores
    samples: Sequence[Sample]  # realistic inputs for the task (the first is the canonical one)
    edge_samples: Sequence[Sample]  # edge cases: empty masks, all ignored, no valid pairs, ...
    extreme_samples: Sequence[
        Sample
    ]  # saturated logits, probabilities exactly 0 and 1, huge values
    make_sample: Callable[
        ..., Sample
    ]  # make_sample(batch=..., size=..., dtype=..., device=..., seed=...)
    has_reduction: bool  # fn accepts reduction="none" | "sum" | "mean"
    batch_invariant: bool  # the task says a mean loss must not depend on the batch split / order
    perfect: Callable[
        [Sample], Tensor
    ]  # a perfect prediction for a sample's target (minimum probe)
    baseline: Optional[Callable[..., Any]] = None  # the task's built-in loss (performance probe)
    timeout: float = 10.0  # seconds per call

    def call(self, pred: Tensor, target: Tensor, **kwargs: Any) -> Any:
        """``fn(pred, target, **kwargs)``, bounded in time; raises :class:`CallFailed` on any
        exception or timeout (probes turn it into a finding)."""
        from losslab.doctor._call import bounded_call

        return bounded_call(self.fn, (pred, target), kwargs, timeout=self.timeout)


class Probe(Protocol):
    name: str  # short, stable: "extremes", "gradcheck", ...
    title: str  # one line for the report

    def run(self, ctx: Context) -> list[Finding]: ...
