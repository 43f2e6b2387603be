"""GradNorm: learn task weights that balance the tasks' gradient norms (Chen et al. 2018)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor, nn

from losslab._checks import check_float, fail
from losslab.compose.output import LossOutput
from losslab.distributed import check_sync
from losslab.multitask._base import GradientWeighting, check_task_losses
from losslab.multitask._gradients import (
    accumulate,
    average_over_ranks,
    check_shared_parameters,
    graph_leaves,
    loss_output,
    task_gradients,
    write_flat,
)

__all__ = ["GradNorm"]

# A weight the optimizer pushed to or below zero is lifted to this floor before the
# renormalization (a negative weight would make its task's loss ascend).
_WEIGHT_FLOOR = 1e-6


def _check_initial_weights(fn: str, weights: Any, tasks: Sequence[str]) -> list[float]:
    if weights is None:
        return [1.0] * len(tasks)
    if isinstance(weights, Mapping):
        missing = [t for t in tasks if t not in weights]
        extra = [k for k in weights if k not in tasks]
        if missing or extra:
            fail(
                fn,
                "initial_weights",
                f"have exactly the tasks {list(tasks)}",
                f"missing {missing}, unexpected {extra}",
                raw_got=True,
            )
        values = [weights[t] for t in tasks]
    elif isinstance(weights, (str, bytes)) or not isinstance(weights, Iterable):
        fail(
            fn,
            "initial_weights",
            "be None, a mapping {task: weight} or a sequence of weights",
            type(weights).__name__,
            kind=TypeError,
            raw_got=True,
        )
    else:
        values = list(weights)
        if len(values) != len(tasks):
            fail(
                fn,
                "initial_weights",
                f"hold one weight per task ({len(tasks)})",
                f"{len(values)} weights",
                raw_got=True,
            )
    return [
        check_float(fn, f"initial_weights[{t!r}]", v, low=0.0, low_open=True)
        for t, v in zip(tasks, values)
    ]


class GradNorm(GradientWeighting):
    r"""Learnable task weights that equalize the tasks' relative training rates.

    At each :meth:`backward`, with :math:`W` the shared parameters passed in (the paper uses
    the **last shared layer**: pass that layer's parameters, e.g.
    ``model.trunk[-1].parameters()``) and :math:`w` the task weights:

    1. renormalize :math:`w \leftarrow T\, w / \sum_j w_j` (under ``no_grad``), so the
       weights used always sum to :math:`T`;
    2. at the first call, record the initial losses :math:`L_i(0)` (a buffer);
    3. :math:`G_i = \|\nabla_W\, w_i L_i\|`, :math:`\tilde L_i = L_i / L_i(0)`,
       :math:`r_i = \tilde L_i / \operatorname{mean}_j \tilde L_j`;
    4. :math:`L_{grad} = \sum_i \big|G_i - \operatorname{mean}_j(G_j)\, r_i^{\alpha}\big|`
       with the target treated as a constant, and :math:`\partial L_{grad}/\partial w` is
       accumulated into ``w.grad`` (only there);
    5. :math:`\sum_i w_i L_i` (with :math:`w` detached) is backpropagated into every
       parameter, shared ones included: unlike the other gradient weightings, the task
       heads receive :math:`w_i \nabla L_i`, as in the paper.

    **The weights are an ``nn.Parameter`` (``task_weights``) that must be in the
    optimizer**, e.g. ``SGD([*model.parameters(), *gradnorm.parameters()])`` (or as a
    submodule of the LightningModule). The paper renormalizes right after the optimizer
    step; renormalizing at the start of the next backward instead uses the same weights
    for every step and needs no hook on the optimizer; only the stored parameter may sum to
    something else between ``optimizer.step()`` and the next backward (:meth:`current_weights`
    reports the renormalized values). A weight driven to or below zero is lifted to
    ``1e-6`` before renormalizing. The initial losses must be positive.

    Reference: Z. Chen, V. Badrinarayanan, C.-Y. Lee, A. Rabinovich, "GradNorm: Gradient
    Normalization for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.

    Args:
        tasks: the task names, in order.
        alpha: non-negative strength of the restoring force toward equal training rates
            (0: equal gradient norms).
        initial_weights: positive starting weights (a sequence in task order or a mapping),
            renormalized to sum to T; ``None``: all 1.
        sync: ``"local" | "global"``: balance the gradient norms and loss ratios of this
            process's shard, or of the global batch (averaged over the processes first).

    The reported weights are the renormalized :math:`w` used by the step.

    Distributed training: ``task_weights`` is not a parameter of the DDP-wrapped model and its
    gradient comes from this process's norms, so with ``sync="local"`` the weights drift apart
    across processes. With ``sync="global"`` the gradients of :math:`W`, the losses (hence
    :math:`L_i(0)`, the ratios and the norms) and the gradient of :math:`\sum_i w_i L_i` in
    every other parameter are averaged over the processes (by the weighting, outside DDP's
    hooks), so ``task_weights.grad`` and every ``.grad`` are identical on every rank: the
    single-process step over the global batch.

    >>> import torch
    >>> theta = torch.nn.Parameter(torch.ones(2))
    >>> gradnorm = GradNorm(["a", "b"], alpha=1.5)
    >>> losses = {"a": theta @ torch.tensor([1.0, 0.0]), "b": theta @ torch.tensor([0.0, 3.0])}
    >>> out = gradnorm.backward(losses, [theta])
    >>> theta.grad
    tensor([1., 3.])
    >>> gradnorm.task_weights.grad  # task b's gradient is 3x larger: its weight must shrink
    tensor([-1.,  3.])
    """

    key: ClassVar[str] = "gradnorm"
    initial_losses: Tensor

    def __init__(
        self,
        tasks: Iterable[str],
        *,
        alpha: float = 1.5,
        initial_weights: Optional[Any] = None,
        sync: str = "local",
    ) -> None:
        super().__init__(tasks)
        fn = type(self).__name__
        self.alpha = check_float(fn, "alpha", alpha, low=0.0)
        self.sync = check_sync(fn, sync)
        values = _check_initial_weights(fn, initial_weights, self.tasks)
        scale = len(values) / math.fsum(values)
        self.task_weights = nn.Parameter(torch.tensor([v * scale for v in values]))
        self.register_buffer("initial_losses", torch.zeros(len(self.tasks)))
        self._recorded = False

    def _normalized(self) -> Tensor:
        w = self.task_weights.detach().clamp(min=_WEIGHT_FLOOR)
        return w * (len(self.tasks) / w.sum())

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self._normalized().tolist()))

    def backward(  # type: ignore[override]
        self, losses: Mapping[str, Tensor], shared_parameters: Iterable[Tensor]
    ) -> LossOutput:
        """One GradNorm step: ``w.grad += dL_grad/dw`` and ``sum_i w_i L_i`` backpropagated.

        Returns a detached :class:`~losslab.compose.output.LossOutput` with the weights used.
        Then call ``optimizer.step()`` (with ``task_weights`` in the optimizer).
        """
        fn = f"{type(self).__name__}.backward"
        losses = check_task_losses(fn, self.tasks, losses)
        shared = check_shared_parameters(fn, shared_parameters)
        w = self.task_weights
        with torch.no_grad():
            w.copy_(self._normalized())
        grads = task_gradients(fn, losses, shared, with_others=False, retain_graph=True)
        matrix = grads.matrix
        current = torch.stack([v.detach() for v in losses.values()]).to(w)
        used = w.detach().clone()  # the step's weights (only w.grad changes below)
        values = list(losses.values())
        # The gradient of sum_i w_i L_i (w detached): each loss seeded with its weight.
        seeds = [weight.to(v) for weight, v in zip(used.unbind(), values)]
        syncs = self.syncs()
        if syncs:
            # Every other parameter's gradient of sum_i w_i L_i is taken now (autograd.grad:
            # outside DDP's hooks) and averaged with G and the losses in one all-reduce; the
            # shared parameters' is w @ G, formed from the averaged G below.
            shared_ids = {id(p) for p in shared}
            others = [leaf for leaf in graph_leaves(values) if id(leaf) not in shared_ids]
            found = (
                torch.autograd.grad(values, others, grad_outputs=seeds, allow_unused=True)
                if others
                else ()
            )
            dense = [g if g is not None else torch.zeros_like(p) for p, g in zip(others, found)]
            stacked = torch.stack([v.detach() for v in values])
            averaged = average_over_ranks(fn, [matrix, stacked, *dense])
            matrix, current, other_grads = averaged[0], averaged[1].to(w), averaged[2:]
        if not self._recorded:
            first = current.tolist()
            for task, value in zip(self.tasks, first):
                if not (math.isfinite(value) and value > 0):
                    fail(
                        fn,
                        f"losses[{task!r}]",
                        "be positive and finite at the first step (GradNorm divides by the "
                        "initial loss)",
                        value,
                    )
            self.initial_losses.copy_(current)
            self._recorded = True
        norms = torch.linalg.vector_norm(matrix, dim=1).to(w)
        ratios = current / self.initial_losses
        rates = ratios / ratios.mean()
        grad_norms = w * norms  # G_i = ||grad_W (w_i L_i)|| for w_i > 0, differentiable in w
        target = (grad_norms.mean() * rates.pow(self.alpha)).detach()
        gradnorm_loss = (grad_norms - target).abs().sum()
        (dw,) = torch.autograd.grad(gradnorm_loss, w)
        accumulate([w], [dw])
        if syncs:
            with torch.no_grad():
                write_flat(shared, used.to(matrix) @ matrix)
            accumulate(others, other_grads)
        else:
            torch.autograd.backward(values, grad_tensors=seeds)
        return loss_output(losses, dict(zip(self.tasks, used.tolist())))

    def get_extra_state(self) -> dict[str, Any]:
        return {"recorded": self._recorded}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._recorded = bool(state["recorded"])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha:g}{self.sync_repr()}"
