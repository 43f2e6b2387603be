"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla 2018), with the positive variant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab._checks import check_choice, check_float, fail
from losslab.compose.output import LossOutput
from losslab.multitask._base import LossWeighting, check_task_losses

__all__ = ["UncertaintyWeighting"]

REGULARIZER = "uncertainty_regularizer"


class UncertaintyWeighting(LossWeighting):
    r"""Learned task weights from homoscedastic uncertainty (UW).

    Each task :math:`i` gets a learned :math:`s_i = \log \sigma_i^2` (an ``nn.Parameter``
    initialised to ``init``) and

    .. math:: L = \sum_i \tfrac12 e^{-s_i} L_i + \tfrac12 s_i

    (Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for
    Scene Geometry and Semantics", CVPR 2018; the regression form, used for every task
    as in their implementation and in LibMTL). For a fixed :math:`L_i > 0` the minimum
    is at :math:`s_i = \log L_i`, so tasks with a large loss get a small weight.

    **The total can be negative.** :math:`\tfrac12 s_i` is unbounded below: when a task
    loss becomes small, :math:`s_i` follows :math:`\log L_i` towards :math:`-\infty` and the
    total drops below zero (to :math:`-\infty` if a task loss reaches 0). A negative value
    is expected, not a bug; compare task losses (the components), not totals.

    ``positive=True`` uses the regulariser :math:`\log(1 + \sigma_i^2)` instead
    (Liebel & Koerner, "Auxiliary Tasks in Multi-task Learning", 2018):

    .. math:: L = \sum_i \tfrac12 e^{-s_i} L_i + \log(1 + e^{s_i})

    computed as ``softplus(s_i)``; it is bounded below by 0 when every task loss is
    non-negative. (Its minimiser differs: :math:`\sigma_i^2 \to` a finite value even
    as :math:`L_i \to 0`.)

    **The parameters must be optimised**: put this module's parameters in the optimizer
    (``MultiTaskLoss`` holds it as a submodule, so ``optimizer = SGD([*model.parameters(),
    *mtl.parameters()])`` does it); otherwise the weights stay at their initial value.

    :meth:`combine` reports the task losses plus one component ``"uncertainty_regularizer"``
    (the summed regulariser, weight ``1.0``); the task weights are
    :math:`\tfrac12 e^{-s_i}`, so ``total == sum(weights[k] * components[k])``.

    Distributed training: the total backpropagates normally, but DDP averages only the
    gradients of the module it wraps. Put the weighting inside that module (e.g. the model
    returns the total), or wrap it in its own ``DistributedDataParallel``; otherwise each
    process's :math:`s_i` follow the losses of its own shard and drift apart.

    Args:
        tasks: the task names (``"uncertainty_regularizer"`` is reserved).
        positive: use the bounded regulariser :math:`\log(1 + \sigma_i^2)`.
        init: initial value of every :math:`s_i` (``0.0``: :math:`\sigma_i = 1`, weight 1/2).

    >>> w = UncertaintyWeighting(["seg", "depth"])
    >>> out = w.combine({"seg": torch.tensor(2.0), "depth": torch.tensor(4.0)})
    >>> out.total
    tensor(3., grad_fn=<AddBackward0>)
    >>> dict(out.weights)
    {'seg': 0.5, 'depth': 0.5, 'uncertainty_regularizer': 1.0}
    >>> UncertaintyWeighting(["seg", "depth"], positive=True)(
    ...     {"seg": torch.tensor(2.0), "depth": torch.tensor(4.0)})
    tensor(4.3863, grad_fn=<AddBackward0>)
    """

    key: ClassVar[str] = "uncertainty"

    def __init__(self, tasks: Iterable[str], *, positive: bool = False, init: float = 0.0) -> None:
        super().__init__(tasks)
        fn = type(self).__name__
        if REGULARIZER in self.tasks:
            fail(
                fn,
                "tasks",
                f"not use the reserved name {REGULARIZER!r} (the regulariser's component)",
                list(self.tasks),
                raw_got=True,
            )
        self.positive = check_choice(fn, "positive", positive, (False, True))
        self.init = check_float(fn, "init", init)
        # s_i = log(sigma_i^2), one per task, in task order.
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), self.init))

    def _weights(self) -> Tensor:
        return 0.5 * torch.exp(-self.log_vars)

    def current_weights(self) -> dict[str, float]:
        with torch.no_grad():
            values = self._weights().tolist()
        return dict(zip(self.tasks, values))

    def combine(self, losses: Mapping[str, Tensor]) -> LossOutput:
        checked = check_task_losses(f"{type(self).__name__}.combine", self.tasks, losses)
        weights = self._weights()
        if self.positive:
            # log(1 + sigma^2) = log(1 + e^s) = softplus(s): no overflow for large s.
            regularizer = F.softplus(self.log_vars).sum()
        else:
            regularizer = 0.5 * self.log_vars.sum()
        total = regularizer
        for i, name in enumerate(self.tasks):
            total = total + weights[i] * checked[name]
        reported = weights.detach().tolist()
        return LossOutput(
            total=total,
            components={**checked, REGULARIZER: regularizer},
            weights={**dict(zip(self.tasks, reported)), REGULARIZER: 1.0},
        )

    def extra_repr(self) -> str:
        return f"tasks={list(self.tasks)}, positive={self.positive}, init={self.init:g}"
