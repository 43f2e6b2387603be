"""Dynamic Weight Average (Liu, Johns & Davison 2019): weights from each task's rate of descent."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from losslab._checks import check_float, fail, is_compiling
from losslab.compose.output import LossOutput
from losslab.distributed import all_reduce_sum, check_sync, is_distributed
from losslab.multitask._base import LossWeighting, check_task_losses
from losslab.multitask.fixed import weighted_total

__all__ = ["DynamicWeightAverage"]


class DynamicWeightAverage(LossWeighting):
    r"""Dynamic Weight Average (DWA): a task whose loss falls slowly gets more weight.

    .. math::

        w_i(t) = T \, \frac{\exp(r_i(t-1) / \tau)}{\sum_j \exp(r_j(t-1) / \tau)}, \qquad
        r_i(t-1) = \frac{\bar L_i(t-1)}{\bar L_i(t-2)}

    where :math:`T` is the number of tasks, :math:`\tau` the ``temperature`` and
    :math:`\bar L_i(t)` the average of task :math:`i`'s loss over the steps of epoch
    :math:`t`; :math:`w_i = 1` during the first two epochs (Liu, Johns & Davison,
    "End-to-End Multi-Task Learning with Attention", CVPR 2019, eq. 7). The weights sum
    to :math:`T`; a larger ``temperature`` makes them more equal.

    Usage: call :meth:`combine` (or ``forward``) every training step, and
    :meth:`epoch_end` once at the end of every epoch. ``combine`` adds the detached task
    losses to running float64 sums; ``epoch_end`` closes the epoch and recomputes the
    weights, so they are constant within an epoch. In eval mode (``.eval()``) ``combine``
    applies the current weights and records nothing, so validation batches do not enter the
    history. The sums, the step count and the two-epoch history are buffers (keep the
    module on the losses' device); the epoch counter and the weights are in ``state_dict``
    as extra state.

    Every recorded loss must be finite (checked in training mode, one host sync per step;
    skipped under ``torch.compile``), and every epoch average must be positive, since DWA
    divides consecutive averages.

    Distributed training: the total backpropagates normally (DDP averages its gradients), but
    each process records only its own shard's losses, so with ``sync="local"`` the epoch
    averages, hence the weights, differ across processes. ``sync="global"`` sums the recorded
    losses and step counts over the processes in :meth:`epoch_end` (one all-reduce per epoch;
    every rank must call it), so every rank gets the weights of one process that saw every
    step of every rank (the global batch's for equal shards).

    Args:
        tasks: the task names.
        temperature: :math:`\tau > 0` (2.0 in the paper).
        sync: ``"local" | "global"``: epoch averages of this process's losses, or of every
            process's.

    >>> dwa = DynamicWeightAverage(["seg", "depth"])
    >>> for seg, depth in [(4.0, 2.0), (2.0, 1.0), (1.0, 1.0)]:  # one step per epoch
    ...     _ = dwa({"seg": torch.tensor(seg), "depth": torch.tensor(depth)})
    ...     dwa.epoch_end()
    >>> {k: round(w, 4) for k, w in dwa.current_weights().items()}
    {'seg': 0.8756, 'depth': 1.1244}
    """

    key: ClassVar[str] = "dwa"
    loss_sums: Tensor
    step_count: Tensor
    loss_history: Tensor

    def __init__(
        self, tasks: Iterable[str], *, temperature: float = 2.0, sync: str = "local"
    ) -> None:
        super().__init__(tasks)
        fn = type(self).__name__
        self.temperature = check_float(fn, "temperature", temperature, low=0.0, low_open=True)
        self.sync = check_sync(fn, sync)
        n = len(self.tasks)
        # Running sums of the detached losses of the current epoch, and their step count.
        self.register_buffer("loss_sums", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("step_count", torch.zeros((), dtype=torch.int64))
        # Row 0: the average of epoch t-2, row 1: epoch t-1 (valid once `epochs` covers them).
        self.register_buffer("loss_history", torch.zeros(2, n, dtype=torch.float64))
        self.epochs = 0
        self.weights = dict.fromkeys(self.tasks, 1.0)

    def current_weights(self) -> dict[str, float]:
        return dict(self.weights)

    def combine(self, losses: Mapping[str, Tensor]) -> LossOutput:
        fn = f"{type(self).__name__}.combine"
        checked = check_task_losses(fn, self.tasks, losses)
        if self.training:
            values = torch.stack(
                [checked[t].detach().to(self.loss_sums.device, torch.float64) for t in self.tasks]
            )
            if not is_compiling():
                finite = torch.isfinite(values)
                if not bool(finite.all()):
                    name = self.tasks[int((~finite).nonzero()[0, 0])]
                    fail(
                        fn,
                        f"losses[{name!r}]",
                        "be finite (DWA averages it over the epoch)",
                        f"{checked[name].item()!r}",
                        raw_got=True,
                    )
            self.loss_sums.add_(values)
            self.step_count.add_(1)
        total = weighted_total(checked, self.weights)
        return LossOutput(total=total, components=checked, weights=dict(self.weights))

    def epoch_end(self) -> None:
        """Close the epoch: push its average losses into the history and update the weights."""
        fn = f"{type(self).__name__}.epoch_end"
        sums, count = self.loss_sums, int(self.step_count)
        if self.sync == "global" and is_distributed():
            # One all-reduce of (sums, count) in float64 (exact for any realistic count), before
            # any check, so that every rank raises the same error or none.
            packed = torch.cat([sums, self.step_count.to(torch.float64).reshape(1)])
            packed = all_reduce_sum(packed)
            sums, count = packed[:-1], int(packed[-1])
        if count == 0:
            fail(
                fn,
                "combine",
                "be called (in training mode) at least once since the last epoch_end()",
                "no step recorded",
                raw_got=True,
            )
        averages = sums / count
        values = averages.tolist()
        for name, value in zip(self.tasks, values):
            if not value > 0.0:
                fail(
                    fn,
                    f"losses[{name!r}]",
                    "have a positive average over the epoch (DWA divides consecutive averages)",
                    repr(value),
                    raw_got=True,
                )
        self.loss_history[0].copy_(self.loss_history[1])
        self.loss_history[1].copy_(averages)
        self.loss_sums.zero_()
        self.step_count.zero_()
        self.epochs += 1
        if self.epochs >= 2:
            ratio = (self.loss_history[1] / self.loss_history[0]).cpu()
            w = len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0)
            self.weights = dict(zip(self.tasks, w.tolist()))

    def _apply(self, fn: Any, recurse: bool = True) -> DynamicWeightAverage:
        # The float64 epoch sums and history follow `.to(device)` but never a dtype cast
        # (`.half()`, `.to(torch.float32)`): they would lose the precision DWA divides by.
        kept = {name: buf for name, buf in self._buffers.items() if buf is not None}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            new = self._buffers[name]
            if new is not None and new.dtype != old.dtype:
                self._buffers[name] = old.to(device=new.device)
        return self

    # The epoch counter and the weights (Python values) travel in state_dict as extra state.
    def get_extra_state(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "weights": [self.weights[t] for t in self.tasks]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        weights = [float(w) for w in state["weights"]]
        if len(weights) != len(self.tasks) or not all(math.isfinite(w) for w in weights):
            fail(
                f"{type(self).__name__}.load_state_dict",
                "weights",
                f"hold {len(self.tasks)} finite weights",
                repr(state["weights"]),
                raw_got=True,
            )
        self.epochs = int(state["epochs"])
        self.weights = dict(zip(self.tasks, weights))

    def extra_repr(self) -> str:
        text = f"tasks={list(self.tasks)}, temperature={self.temperature:g}"
        return text if self.sync == "local" else f"{text}, sync={self.sync!r}"
