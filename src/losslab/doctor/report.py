"""Rendering a :class:`~losslab.doctor.Report`: a rich table, plain text, JSON, a summary line.

Computation lives in ``check``; this module only formats. ``rich`` is imported inside
:func:`render_table` / :func:`print_report` (``import losslab`` stays free of it), and the
plain-text form (used by :func:`losslab.testing.assert_healthy`) needs nothing beyond the
standard library.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Mapping
from typing import IO, Any, Optional

from losslab.doctor._types import SEVERITIES, Finding, Report, severity_rank

__all__ = [
    "evidence_summary",
    "format_text",
    "print_report",
    "render_table",
    "summary",
    "to_json",
]

STYLES = {"ok": "green", "info": "cyan", "warning": "yellow", "error": "bold red"}
EVIDENCE_WIDTH = 90


def _short(value: Any, width: int = 40) -> str:
    if isinstance(value, Mapping):
        if set(value) == {"shape", "dtype"}:  # a described tensor
            return f"{tuple(value['shape'])} {value['dtype']}"
        text = "{" + ", ".join(f"{k}: {_short(v, width)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_short(v, width) for v in value) + "]"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def evidence_summary(evidence: Mapping[str, Any], width: int = EVIDENCE_WIDTH) -> str:
    """The evidence as one short line: ``input: ...; pred: (16,) float32; value: nan``.

    >>> evidence_summary({"input": "all targets negative", "value": float("nan")})
    'input: all targets negative; value: nan'
    """
    parts = [f"{k}: {_short(v)}" for k, v in evidence.items()]
    text = "; ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def _counts(report: Report) -> Counter:
    return Counter(f.severity for f in report.findings)


def summary(report: Report) -> str:
    """One line: what was checked, how many probes, the findings per severity, the worst.

    >>> from losslab.doctor._types import Finding, Report
    >>> summary(Report("my_loss", "regression", "values",
    ...                (Finding("inplace", "ok", "fine"), Finding("extremes", "error", "nan"))))
    'my_loss (regression, values): 2 probes, 1 error, 0 warnings, 0 info, 1 ok; worst: error'
    """
    n = _counts(report)
    probes = len(report.by_probe())
    errors = f"{n['error']} error{'' if n['error'] == 1 else 's'}"
    warnings = f"{n['warning']} warning{'' if n['warning'] == 1 else 's'}"
    return (
        f"{report.target} ({report.task}, {report.input_kind}): {probes} probe"
        f"{'' if probes == 1 else 's'}, {errors}, {warnings}, {n['info']} info, {n['ok']} ok; "
        f"worst: {report.worst}"
    )


def to_json(report: Report, *, indent: Optional[int] = 2) -> str:
    """The report as JSON (``Report.to_dict()`` plus the summary line)."""
    data = report.to_dict()
    data["summary"] = summary(report)
    return json.dumps(data, indent=indent, allow_nan=False, default=str)


def _at_least(findings: tuple[Finding, ...], min_severity: str) -> list[Finding]:
    floor = severity_rank(min_severity)
    return [f for f in findings if severity_rank(f.severity) >= floor]


def format_text(report: Report, *, min_severity: str = "ok") -> str:
    """Plain text: the summary line, then one block per finding at or above ``min_severity``
    (worst first), with its evidence and fix.

    >>> from losslab.doctor._types import Finding, Report
    >>> r = Report("my_loss", "binary", "logits", (Finding("returns_tensor", "error",
    ...     "returned a Python float (0.0)", "return pred.sum() * 0.0", {"input": "all negative"}),))
    >>> print(format_text(r))
    my_loss (binary, logits): 1 probe, 1 error, 0 warnings, 0 info, 0 ok; worst: error
    [error] returns_tensor: returned a Python float (0.0)
        evidence: input: all negative
        fix: return pred.sum() * 0.0
    """
    if min_severity not in SEVERITIES:
        raise ValueError(
            f"format_text(): `min_severity` must be one of {', '.join(SEVERITIES)}; got "
            f"{min_severity!r}."
        )
    lines = [summary(report)]
    shown = sorted(
        _at_least(report.findings, min_severity), key=lambda f: -severity_rank(f.severity)
    )
    for f in shown:
        lines.append(f"[{f.severity}] {f.probe}: {f.message}")
        if f.evidence:
            lines.append(f"    evidence: {evidence_summary(f.evidence, width=200)}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    return "\n".join(lines)


def render_table(report: Report) -> Any:
    """A ``rich.table.Table``: probe, verdict, message, evidence, fix (one row per finding)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"losslab check: {report.target}", show_lines=True)
    table.add_column("probe", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("message", overflow="fold", ratio=3)
    table.add_column("evidence", overflow="fold", ratio=2)
    table.add_column("fix", overflow="fold", ratio=2)
    for f in report.findings:
        table.add_row(
            f.probe,
            Text(f.severity, style=STYLES.get(f.severity, "")),
            Text(f.message),
            Text(evidence_summary(f.evidence) if f.severity != "ok" else ""),
            Text(f.fix),
        )
    return table


def print_report(report: Report, *, format: str = "table", file: Optional[IO[str]] = None) -> None:
    """Write the report: ``table`` (rich table and summary line) or ``json`` (only JSON)."""
    out = sys.stdout if file is None else file
    if format == "json":
        out.write(to_json(report) + "\n")
        return
    if format != "table":
        raise ValueError(f"print_report(): `format` must be 'table' or 'json'; got {format!r}.")
    from rich.console import Console

    console = Console(file=out, width=max(Console(file=out).width, 140))
    console.print(render_table(report))
    style = STYLES.get(report.worst, "")
    console.print(summary(report), style=style, highlight=False, markup=False)
