"""Helpers for users' own test suites: :func:`assert_healthy` runs ``losslab check`` in a test.

>>> import torch
>>> from losslab.testing import assert_healthy
>>> def my_mse(pred, target):
...     return ((pred - target) ** 2).mean()
>>> report = assert_healthy(my_mse, task="regression", probes=["returns_tensor", "inplace"])
>>> report.worst
'ok'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from losslab.doctor._types import Report

__all__ = ["assert_healthy"]

FAIL_ON = ("info", "warning", "error")


def assert_healthy(
    fn: Callable[..., Any],
    *,
    task: str,
    input_kind: Optional[str] = None,
    sample: Any = None,
    fail_on: str = "error",
    probes: Optional[Union[str, Sequence[str]]] = None,
) -> Report:
    """Run ``losslab.check`` on ``fn`` and fail the test on any finding at or above ``fail_on``.

    Args:
        fn: the loss, a function or an ``nn.Module`` taking ``(pred, target)``.
        task: ``binary | multiclass | multilabel | regression | segmentation | ranking |
            forecasting``.
        input_kind: what ``pred`` is (default: the task's usual kind).
        sample: an optional ``(pred, target)`` of your own to build the inputs from.
        fail_on: ``"error"`` (default), ``"warning"`` or ``"info"``.
        probes: the probes to run (default: all).

    Returns:
        The :class:`~losslab.doctor.Report` when nothing reaches ``fail_on``.

    Raises:
        AssertionError: with the summary and every finding at or above ``fail_on`` (message,
            evidence, fix).
        ValueError: unknown task, input kind, probe or ``fail_on``.

    >>> def float_when_empty(pred, target):
    ...     if pred.numel() < 2:  # "nothing to compare": a Python float cannot backpropagate
    ...         return 0.0
    ...     return ((pred - target) ** 2).mean()
    >>> assert_healthy(float_when_empty, task="regression", probes=["returns_tensor"])
    Traceback (most recent call last):
    ...
    AssertionError: losslab check found problems (fail_on='error'):
    ... (regression, values): 1 probe, 1 error, 0 warnings, 0 info, 0 ok; worst: error
    [error] returns_tensor: returned a Python float (0.0), not a tensor: ...
    ...
    """
    from losslab.doctor.check import check
    from losslab.doctor.report import format_text

    if fail_on not in FAIL_ON:
        raise ValueError(
            f"assert_healthy(): `fail_on` must be one of {', '.join(FAIL_ON)}; got {fail_on!r}."
        )
    report = check(fn, task=task, input_kind=input_kind, sample=sample, probes=probes)
    if report.failed(fail_on):
        raise AssertionError(
            f"losslab check found problems (fail_on={fail_on!r}):\n"
            + format_text(report, min_severity=fail_on)
        )
    return report
