"""``make_weighting``: what ``MultiTaskLoss(weighting=...)`` accepts, turned into a Weighting."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any, Union

from losslab._checks import fail, suggest
from losslab.multitask._base import Weighting, check_tasks, key_diff

__all__ = ["KEYS", "make_weighting"]

# key -> (module, class). Modules are imported on first use, so a weighting's module is
# only loaded when it is asked for.
KEYS: dict[str, tuple[str, str]] = {
    "fixed": ("losslab.multitask.fixed", "FixedWeighting"),
    "equal": ("losslab.multitask.fixed", "EqualWeighting"),
    "uncertainty": ("losslab.multitask.uncertainty", "UncertaintyWeighting"),
    "dwa": ("losslab.multitask.dwa", "DynamicWeightAverage"),
    "random": ("losslab.multitask.random_weighting", "RandomLossWeighting"),
    "gradnorm": ("losslab.multitask.gradnorm", "GradNorm"),
    "pcgrad": ("losslab.multitask.pcgrad", "PCGrad"),
    "mgda": ("losslab.multitask.mgda", "MGDA"),
    "cagrad": ("losslab.multitask.cagrad", "CAGrad"),
}


def weighting_class(key: str) -> type[Weighting]:
    """The class registered in :data:`KEYS` under ``key`` (imported on demand)."""
    module, name = KEYS[key]
    cls: type[Weighting] = getattr(importlib.import_module(module), name)
    return cls


def make_weighting(
    weighting: Union[str, Mapping[str, float], Weighting], tasks: Iterable[str]
) -> Weighting:
    """A :class:`~losslab.multitask._base.Weighting` for ``tasks``.

    Args:
        weighting: a key of :data:`KEYS` (the weighting is built with its defaults), a
            mapping ``{task: weight}`` (a :class:`~losslab.multitask.fixed.FixedWeighting`),
            or a Weighting instance (returned as is).
        tasks: the task names; the weighting's tasks must be the same (in any order).

    >>> make_weighting("dwa", ["seg", "depth"])
    DynamicWeightAverage(tasks=['seg', 'depth'], temperature=2)
    >>> make_weighting({"seg": 1.0, "depth": 0.1}, ["seg", "depth"])
    FixedWeighting(weights={'seg': 1, 'depth': 0.1})
    >>> make_weighting("uncertainy", ["seg", "depth"])
    Traceback (most recent call last):
    ...
    ValueError: make_weighting(): `weighting` must be one of 'fixed' | 'equal' | ...; got 'uncertainy'. Did you mean 'uncertainty'?
    """
    fn = "make_weighting"
    names = check_tasks(fn, tasks)
    if isinstance(weighting, Weighting):
        result = weighting
    elif isinstance(weighting, str):
        if weighting not in KEYS:
            options = " | ".join(repr(k) for k in KEYS)
            fail(fn, "weighting", f"be one of {options}", weighting, hint=suggest(weighting, KEYS))
        if weighting == "fixed":
            fail(
                fn,
                "weighting",
                "be a mapping {task: weight} for fixed weights, not the string 'fixed'",
                weighting,
                hint="Pass e.g. weighting={"
                + ", ".join(f"{t!r}: 1.0" for t in names)
                + "} (or weighting='equal').",
            )
        result = weighting_class(weighting)(names)
    elif isinstance(weighting, Mapping):
        result = weighting_class("fixed")(weighting)
    else:
        is_class = isinstance(weighting, type) and issubclass(weighting, Weighting)
        fail(
            fn,
            "weighting",
            "be a key such as 'uncertainty', a mapping {task: weight} or a Weighting instance",
            f"the class {weighting.__name__}" if is_class else type(weighting).__name__,
            kind=TypeError,
            raw_got=True,
            hint=f"Pass an instance: {weighting.__name__}(tasks)." if is_class else None,
        )
    _check_same_tasks(fn, result, names)
    return result


def _check_same_tasks(fn: str, weighting: Any, tasks: tuple[str, ...]) -> None:
    if set(weighting.tasks) != set(tasks):
        fail(
            fn,
            "weighting",
            f"have the tasks of the losses {list(tasks)}",
            f"{type(weighting).__name__} with tasks {list(weighting.tasks)} ("
            + key_diff(tasks, weighting.tasks)
            + ")",
            raw_got=True,
        )
