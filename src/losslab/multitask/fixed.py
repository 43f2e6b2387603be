"""Constant task weights: a fixed weighted sum, and the equal-weight (EW) baseline."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from torch import Tensor

from losslab._checks import check_float, fail
from losslab.compose.output import LossOutput
from losslab.multitask._base import LossWeighting, check_task_losses, check_tasks

__all__ = ["EqualWeighting", "FixedWeighting"]


def weighted_total(losses: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """``sum_i weights[i] * losses[i]`` over the tasks of ``losses``, in their order.

    Python-float weights keep each term in its loss's dtype; mixed dtypes promote as torch does.
    """
    total = None
    for name, value in losses.items():
        part = weights[name] * value
        total = part if total is None else total + part
    if total is None:  # pragma: no cover - check_tasks guarantees at least one task
        raise ValueError("weighted_total(): `losses` must name at least one task; got none.")
    return total


def _check_weights(fn: str, weights: Any) -> dict[str, float]:
    """``weights`` as ``{task: finite float >= 0}``, not all zero."""
    if not isinstance(weights, Mapping):
        fail(
            fn,
            "weights",
            "be a mapping {task: weight}",
            type(weights).__name__,
            kind=TypeError,
            raw_got=True,
        )
    check_tasks(fn, weights.keys())
    out = {name: check_float(fn, f"weights[{name!r}]", w, low=0.0) for name, w in weights.items()}
    if out and not any(w > 0.0 for w in out.values()):
        fail(fn, "weights", "have at least one positive weight", "all zero", raw_got=True)
    return out


class FixedWeighting(LossWeighting):
    r"""A constant weighted sum of the task losses.

    .. math:: L = \sum_i w_i \, L_i

    Distributed training: nothing to do; the total backpropagates through DDP like any loss
    (for equal shards DDP's averaged gradient is the single-process gradient of the global
    batch).

    Args:
        weights: ``{task: weight}``; the tasks are the mapping's keys (in its order); every
            weight finite and ``>= 0``, not all zero.

    >>> import torch
    >>> w = FixedWeighting({"seg": 1.0, "depth": 0.5})
    >>> w({"seg": torch.tensor(2.0), "depth": torch.tensor(4.0)})
    tensor(4.)
    """

    key: ClassVar[str] = "fixed"

    def __init__(self, weights: Mapping[str, float]) -> None:
        checked = _check_weights(type(self).__name__, weights)
        super().__init__(checked)
        self.weights = checked

    def current_weights(self) -> dict[str, float]:
        return dict(self.weights)

    def combine(self, losses: Mapping[str, Tensor]) -> LossOutput:
        checked = check_task_losses(f"{type(self).__name__}.combine", self.tasks, losses)
        total = weighted_total(checked, self.weights)
        return LossOutput(total=total, components=checked, weights=dict(self.weights))

    def extra_repr(self) -> str:
        return "weights={" + ", ".join(f"{k!r}: {w:g}" for k, w in self.weights.items()) + "}"


class EqualWeighting(FixedWeighting):
    r"""Equal weighting (EW): the plain sum of the task losses, every weight 1.

    .. math:: L = \sum_i L_i

    The baseline every adaptive weighting is compared with (it is also what
    ``MultiTaskLoss`` uses by default). Distributed training: as :class:`FixedWeighting`,
    nothing to do.

    Args:
        tasks: the task names.

    >>> import torch
    >>> w = EqualWeighting(["seg", "depth"])
    >>> out = w.combine({"seg": torch.tensor(2.0), "depth": torch.tensor(4.0)})
    >>> out.total, dict(out.weights)
    (tensor(6.), {'seg': 1.0, 'depth': 1.0})
    """

    key: ClassVar[str] = "equal"

    def __init__(self, tasks: Iterable[str]) -> None:
        LossWeighting.__init__(self, tasks)
        self.weights = dict.fromkeys(self.tasks, 1.0)

    def extra_repr(self) -> str:
        return f"tasks={list(self.tasks)}"
