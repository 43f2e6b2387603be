"""PCGrad: project each task gradient off the gradients it conflicts with (Yu et al. 2020)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor

from losslab._checks import check_choice, fail
from losslab.compose.output import LossOutput
from losslab.distributed import check_sync
from losslab.multitask._base import GradientWeighting, as_generator, check_task_losses
from losslab.multitask._gradients import (
    check_shared_parameters,
    finish,
    loss_output,
    sync_task_gradients,
    task_gradients,
)

__all__ = ["PCGrad"]

_REDUCTIONS = ("sum", "mean")


def _check_seed(fn: str, seed: Any) -> Optional[int]:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        fail(fn, "seed", "be an int or None", type(seed).__name__, kind=TypeError, raw_got=True)
    return seed


def project_conflicting(grads: Tensor, orders: list[list[int]]) -> Tensor:
    r"""The projected gradients :math:`g_i'` (rows), without host synchronisation.

    For each task ``i`` and each ``j`` in ``orders[i]``: if :math:`g_i' \cdot g_j < 0`,
    :math:`g_i' \leftarrow g_i' - \frac{g_i' \cdot g_j}{\|g_j\|^2} g_j`, with :math:`g_j` the
    *original* gradient; a zero :math:`g_j` is skipped.
    """
    sq_norms = (grads * grads).sum(dim=1)
    # Zero-norm rows never project (their coefficient is forced to 0); dividing by 1 there
    # keeps the branch-free form free of 0/0.
    safe = torch.where(sq_norms > 0, sq_norms, torch.ones_like(sq_norms))
    projected = grads.clone()
    for i, order in enumerate(orders):
        row = projected[i]
        for j in order:
            dot = row @ grads[j]
            coef = torch.where((dot < 0) & (sq_norms[j] > 0), dot / safe[j], torch.zeros_like(dot))
            row.sub_(coef * grads[j])
    return projected


class PCGrad(GradientWeighting):
    r"""Projecting conflicting gradients ("gradient surgery") over the shared parameters.

    For every task :math:`i`, :math:`g_i' = g_i`; then, for :math:`j` running over the other
    tasks in a random order (drawn from this weighting's own generator at every step),

    .. math::
        g_i' \leftarrow g_i' - \frac{\min(g_i' \cdot g_j,\, 0)}{\|g_j\|^2}\, g_j ,

    where :math:`g_j` are the *original* task gradients (a zero :math:`g_j` is skipped). The
    shared parameters receive :math:`\sum_i g_i'` (``reduction="sum"``, as in the paper) or
    its mean; every other parameter reachable from the losses (the task heads) receives the
    gradient of the plain sum of the task losses, so each head sees only its own task.

    Reference: T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman, C. Finn, "Gradient Surgery
    for Multi-Task Learning", NeurIPS 2020.

    Args:
        tasks: the task names, in order.
        reduction: ``"sum" | "mean"`` of the projected gradients; the reported weights are
            1 (or 1/T).
        seed: seed of the generator drawing the projection orders (``None``: random). Its
            state is in ``state_dict()``, so a restored run draws the same orders.
        sync: ``"local" | "global"``: project the gradients of this process's shard, or of
            the global batch (averaged over the processes first).

    Distributed training: DDP does not synchronize the projected gradient (it is written
    into ``.grad`` outside DDP's hooks). With ``sync="global"`` every rank averages the task
    gradients (and the heads' gradients) over the processes before projecting, and the
    generator state is broadcast from rank 0 at the first step, so every rank draws the same
    orders (``seed=None`` included) and writes the same ``.grad``: the single-process step
    over the global batch.

    >>> import torch
    >>> theta = torch.nn.Parameter(torch.zeros(2))
    >>> losses = {"a": theta @ torch.tensor([1.0, 0.0]), "b": theta @ torch.tensor([-1.0, 1.0])}
    >>> out = PCGrad(["a", "b"], seed=0).backward(losses, [theta])
    >>> theta.grad
    tensor([0.5000, 1.5000])
    >>> out.weights
    mappingproxy({'a': 1.0, 'b': 1.0})
    """

    key: ClassVar[str] = "pcgrad"

    def __init__(
        self,
        tasks: Iterable[str],
        *,
        reduction: str = "sum",
        seed: Optional[int] = None,
        sync: str = "local",
    ) -> None:
        super().__init__(tasks)
        fn = type(self).__name__
        self.reduction = check_choice(fn, "reduction", reduction, _REDUCTIONS)
        self.seed = _check_seed(fn, seed)
        self.sync = check_sync(fn, sync)
        self._generator = as_generator(seed)
        # Set once rank 0's generator state has been broadcast (sync="global").
        self._generator_synced = False

    def _weight(self) -> float:
        return 1.0 if self.reduction == "sum" else 1.0 / len(self.tasks)

    def current_weights(self) -> dict[str, float]:
        return {t: self._weight() for t in self.tasks}

    def draw_orders(self) -> list[list[int]]:
        """For each task, a random order of the other tasks (advances the generator)."""
        orders = []
        for i in range(len(self.tasks)):
            others = [j for j in range(len(self.tasks)) if j != i]
            perm = torch.randperm(len(others), generator=self._generator).tolist()
            orders.append([others[k] for k in perm])
        return orders

    def backward(  # type: ignore[override]
        self, losses: Mapping[str, Tensor], shared_parameters: Iterable[Tensor]
    ) -> LossOutput:
        """Accumulate the projected gradient into the shared parameters' ``.grad``.

        Returns a detached :class:`~losslab.compose.output.LossOutput` (total = sum or mean
        of the losses). Then call ``optimizer.step()``.
        """
        fn = f"{type(self).__name__}.backward"
        losses = check_task_losses(fn, self.tasks, losses)
        shared = check_shared_parameters(fn, shared_parameters)
        grads = task_gradients(fn, losses, shared)
        if self.syncs():
            values = torch.stack([v.detach() for v in losses.values()])
            grads, _ = sync_task_gradients(fn, grads, values)
            if not self._generator_synced:
                self._broadcast_generator()
        with torch.no_grad():
            projected = project_conflicting(grads.matrix, self.draw_orders())
            combined = projected.sum(0) if self.reduction == "sum" else projected.mean(0)
        finish(shared, combined, grads)
        return loss_output(losses, self.current_weights())

    def _broadcast_generator(self) -> None:
        import torch.distributed as dist

        holder = [self._generator.get_state()]
        dist.broadcast_object_list(holder, src=0)
        self._generator.set_state(holder[0])
        self._generator_synced = True

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self._generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._generator.set_state(state["generator"])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reduction={self.reduction!r}{self.sync_repr()}"
