"""The two kinds of task weighting and what they share.

* :class:`LossWeighting` turns per-task losses into one differentiable total
  (fixed, equal, uncertainty, DWA, random). Its parameters, if any, are ordinary
  ``nn.Parameter``s: put the weighting in the optimizer and call ``total.backward()``.
* :class:`GradientWeighting` acts on the per-task gradients of the shared parameters
  (GradNorm, PCGrad, MGDA, CAGrad). Its :meth:`~GradientWeighting.backward` performs
  the backward step itself and leaves the combined gradient in ``.grad``.

Both keep every piece of state that affects the next step (learned weights, loss
history, random generator state) in ``state_dict()``, so a run restored at step k
continues exactly as the uninterrupted one.

**Distributed data parallel training.** A loss weighting's total backpropagates like any
loss, so DistributedDataParallel (DDP) averages its gradients as usual; a learned weighting
(uncertainty) must then be *inside* the module DDP wraps (or wrapped in its own DDP), since
DDP synchronizes only its own module's parameters; DWA needs ``sync="global"`` for its epoch
averages and random weighting the same ``seed`` on every rank. A gradient weighting takes its
per-task gradients with ``torch.autograd.grad``, which never fires DDP's gradient hooks: DDP
does *not* synchronize what it writes. With ``sync="local"`` (the default) each process
combines the gradients of its own shard and the ranks' ``.grad`` differ (replicas drift
apart; GradNorm and MGDA-UB end with an ordinary backward that DDP averages, but their task
weights remain each rank's own). With ``sync="global"`` and a process group of more than one process,
:meth:`~GradientWeighting.backward` averages the ``(T, P)`` per-task gradient matrix, the
task losses and the heads' gradients over the processes *before* the (nonlinear)
combination, so every rank runs the identical surgery on the gradients of the global batch
and writes identical ``.grad``: the step of one process over the global batch (exact for
equal shards; for uneven shards multiply each rank's losses by
``world_size * n_local / n_global`` first). Every rank must call ``backward`` at every step
(it runs collectives). Set-ups: the model without DDP (identical initial parameters on every
rank: same seed, or broadcast from rank 0) or a DDP model whose forward runs under
``ddp_model.no_sync()``; a plain DDP forward works too (no hook fires, nothing is averaged
twice), also with ``find_unused_parameters=True`` or ``static_graph=True``, except for
MGDA-UB (``representation=``): with those two options DDP returns its outputs through an
autograd function, so the returned representation is not the tensor the heads read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor, nn

from losslab._checks import fail, fmt
from losslab.compose.output import LossOutput
from losslab.distributed import is_distributed

__all__ = [
    "GradientWeighting",
    "LossWeighting",
    "Weighting",
    "as_generator",
    "check_scalar_loss",
    "check_task_keys",
    "check_task_losses",
    "check_tasks",
    "key_diff",
]


def check_tasks(fn: str, tasks: Any) -> tuple[str, ...]:
    """``tasks`` as a non-empty tuple of distinct non-empty strings."""
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Iterable):
        fail(
            fn,
            "tasks",
            "be a sequence of task names",
            type(tasks).__name__,
            kind=TypeError,
            raw_got=True,
        )
    names = tuple(tasks)
    if not names:
        fail(fn, "tasks", "name at least one task", "an empty sequence", raw_got=True)
    for name in names:
        if not isinstance(name, str) or not name:
            fail(fn, "tasks", "hold non-empty strings", fmt(name), kind=TypeError, raw_got=True)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        fail(fn, "tasks", "hold distinct names", f"duplicates {dupes}", raw_got=True)
    return names


def key_diff(expected: Sequence[str], given: Iterable[str]) -> str:
    """``"missing [...]; unexpected [...]"`` between two key sets, or ``""`` when they agree."""
    given = list(given)
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
    return "; ".join(parts)


def check_task_keys(fn: str, name: str, value: Any, tasks: Sequence[str]) -> None:
    """``value`` must be a mapping with exactly the task keys (none missing, none extra)."""
    if not isinstance(value, Mapping):
        fail(
            fn,
            name,
            "be a mapping {task: value}",
            type(value).__name__,
            kind=TypeError,
            raw_got=True,
        )
    diff = key_diff(tasks, value)
    if diff:
        fail(fn, name, f"have exactly the tasks {list(tasks)}", diff, raw_got=True)


def check_scalar_loss(fn: str, name: str, value: Any, *, verb: str = "be") -> Tensor:
    """A task loss must be a floating-point 0-d tensor (``verb="return"`` for a loss function)."""
    arg = f"losses[{name!r}]"
    if not isinstance(value, Tensor):
        fail(fn, arg, f"{verb} a Tensor", type(value).__name__, kind=TypeError, raw_got=True)
    if value.dim() != 0:
        fail(
            fn,
            arg,
            f"{verb} a scalar",
            f"shape {tuple(value.shape)}",
            raw_got=True,
            hint="Use reduction='mean' or 'sum' for task losses.",
        )
    if not value.is_floating_point():
        fail(
            fn,
            arg,
            f"{verb} a floating-point scalar",
            f"dtype {fmt(value.dtype)}",
            kind=TypeError,
            raw_got=True,
        )
    return value


def check_task_losses(fn: str, tasks: Sequence[str], losses: Any) -> dict[str, Tensor]:
    """``losses`` as ``{task: scalar tensor}`` with exactly the weighting's tasks.

    A sequence is accepted in task order. A missing or extra key, a non-tensor, or a
    non-scalar raises (nothing is silently dropped or broadcast).
    """
    if isinstance(losses, Mapping):
        check_task_keys(fn, "losses", losses, tasks)
        out = {t: losses[t] for t in tasks}
    elif isinstance(losses, Sequence) and not isinstance(losses, (str, bytes)):
        if len(losses) != len(tasks):
            fail(
                fn,
                "losses",
                f"hold one loss per task ({len(tasks)})",
                f"{len(losses)} losses",
                raw_got=True,
            )
        out = dict(zip(tasks, losses))
    else:
        fail(
            fn,
            "losses",
            "be a mapping {task: loss}",
            type(losses).__name__,
            kind=TypeError,
            raw_got=True,
        )
    for name, value in out.items():
        check_scalar_loss(fn, name, value)
    return out


class Weighting(nn.Module):
    """Base of every task weighting.

    Attributes:
        key: the name ``MultiTaskLoss(weighting="...")`` accepts.
        kind: ``"loss"`` or ``"gradient"``.
        tasks: the task names, in order.
    """

    key: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    tasks: tuple[str, ...]

    def __init__(self, tasks: Iterable[str]) -> None:
        super().__init__()
        self.tasks = check_tasks(type(self).__name__, tasks)

    def current_weights(self) -> dict[str, float]:
        """The weights the next (or last) step uses, as Python floats, for logging."""
        raise NotImplementedError

    def epoch_end(self) -> None:
        """Called once at the end of every epoch; weightings with a per-epoch history override it."""

    def extra_repr(self) -> str:
        return f"tasks={list(self.tasks)}"


class LossWeighting(Weighting):
    """A weighting whose total is an ordinary differentiable loss."""

    kind: ClassVar[str] = "loss"

    def combine(self, losses: Mapping[str, Tensor]) -> LossOutput:
        """``LossOutput(total, components=losses, weights=...)``; ``total`` backpropagates normally.

        ``weights`` are the effective multipliers of each component in ``total`` where the total
        is a weighted sum; weightings with additive terms (uncertainty) document what they report.
        """
        raise NotImplementedError

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        return self.combine(losses).total


class GradientWeighting(Weighting):
    """A weighting that combines per-task gradients of the shared parameters.

    ``backward(losses, shared_parameters)`` computes each task's gradient with respect to
    the shared parameters, combines them (projection, min-norm, ...), and *accumulates*
    the result into their ``.grad`` (as ``Tensor.backward`` does); every other parameter
    (task heads) receives the gradient of the plain sum of the task losses. Then call
    ``optimizer.step()``. In Lightning, use manual optimization and call it in place of
    ``self.manual_backward(loss)`` (a direct call bypasses Lightning's precision plugin and
    DDP's gradient hooks: see the distributed guide). GradNorm and MGDA's upper-bound
    variant scale each head's gradient by its task weight, as their papers do.

    ``sync`` (every subclass's constructor): ``"local"`` combines this process's gradients
    only; ``"global"`` averages them over the default process group first (see the module
    docstring), so that every process applies the update of the whole global batch.
    """

    kind: ClassVar[str] = "gradient"
    sync: str = "local"

    def syncs(self) -> bool:
        """True when ``sync="global"`` and a process group of more than one process is up."""
        return self.sync == "global" and is_distributed()

    def sync_repr(self) -> str:
        """``", sync='global'"`` for ``extra_repr`` (empty for the default)."""
        return "" if self.sync == "local" else f", sync={self.sync!r}"

    def backward(
        self,
        losses: Mapping[str, Tensor],
        shared_parameters: Optional[Iterable[Tensor]] = None,
        **kwargs: Any,
    ) -> LossOutput:
        raise NotImplementedError

    def forward(self, *args: Any, **kwargs: Any) -> Optional[Tensor]:  # pragma: no cover - guard
        raise TypeError(
            f"{type(self).__name__} acts on gradients: call "
            f"`{type(self).__name__.lower()}.backward(losses, shared_parameters)` instead of "
            "summing a total and calling `.backward()` on it."
        )


def as_generator(seed: Optional[int]) -> torch.Generator:
    """A CPU generator, seeded when ``seed`` is given (its state goes in ``state_dict``)."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
