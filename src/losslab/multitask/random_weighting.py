"""Random loss weighting (Lin et al. 2022): fresh random task weights at every step."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor

from losslab._checks import check_choice, fail
from losslab.compose.output import LossOutput
from losslab.multitask._base import LossWeighting, as_generator, check_task_losses
from losslab.multitask.fixed import weighted_total

__all__ = ["RandomLossWeighting"]

DISTRIBUTIONS = ("normal", "uniform", "dirichlet")


def _check_seed(fn: str, seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        fail(fn, "seed", "be an int or None", type(seed).__name__, kind=TypeError, raw_got=True)
    if not 0 <= seed < 2**64:
        fail(fn, "seed", "be an int in [0, 2**64) or None", seed)
    return seed


class RandomLossWeighting(LossWeighting):
    r"""Random loss weighting (RLW): task weights drawn afresh at every training step.

    .. math:: L = \sum_i w_i L_i, \qquad w = \operatorname{softmax}(z), \quad z \sim \mathcal N(0, I_T)

    (Lin, Ye, Xu, Shi & Zhang, "Reasonable Effectiveness of Random Weighting: A Litmus Test
    for Multi-Task Learning", TMLR 2022). The weights sum to 1. Other ``distribution``\ s
    (as in the paper's ablation and LibMTL): ``"uniform"``: :math:`w = \operatorname{softmax}(u)`,
    :math:`u \sim U[0, 1)^T`; ``"dirichlet"``: :math:`w \sim \operatorname{Dir}(1, \dots, 1)`,
    drawn as normalised :math:`\operatorname{Exp}(1)` variables (no softmax).

    The draws come from the weighting's own CPU generator (``seed``; the global RNG is
    untouched), in float64; its state is in ``state_dict``, so a restored run draws the same
    weights as the uninterrupted one. A draw happens at every :meth:`combine` in training
    mode; in eval mode ``combine`` uses the expected weights :math:`1/T` (exact by symmetry)
    and draws nothing, so validation does not shift the training stream.
    :meth:`current_weights` returns the last drawn weights (:math:`1/T` before the first draw).

    Distributed training: the total backpropagates through DDP like any loss; pass the same
    ``seed`` on every process so that every rank draws the same weights (with ``seed=None``
    each process seeds from the OS, the ranks weight their shards differently and DDP
    averages the gradients of different totals).

    Args:
        tasks: the task names.
        distribution: ``"normal" | "uniform" | "dirichlet"``.
        seed: seed of the generator; ``None`` seeds it from the OS.

    >>> rlw = RandomLossWeighting(["seg", "depth"], seed=0)
    >>> out = rlw.combine({"seg": torch.tensor(2.0), "depth": torch.tensor(4.0)})
    >>> {k: round(w, 4) for k, w in out.weights.items()}
    {'seg': 0.8623, 'depth': 0.1377}
    >>> sum(out.weights.values())
    1.0
    """

    key: ClassVar[str] = "random"

    def __init__(
        self, tasks: Iterable[str], *, distribution: str = "normal", seed: Optional[int] = None
    ) -> None:
        super().__init__(tasks)
        fn = type(self).__name__
        self.distribution = check_choice(fn, "distribution", distribution, DISTRIBUTIONS)
        self.seed = _check_seed(fn, seed)
        self._generator = as_generator(self.seed)
        self._last: Optional[list[float]] = None

    def _draw(self) -> list[float]:
        n = len(self.tasks)
        g = self._generator
        if self.distribution == "normal":
            w = torch.softmax(torch.randn(n, generator=g, dtype=torch.float64), dim=0)
        elif self.distribution == "uniform":
            w = torch.softmax(torch.rand(n, generator=g, dtype=torch.float64), dim=0)
        else:
            # Dir(1, ..., 1) = Exp(1) variables over their sum; a sum of 0 (every draw exactly
            # 0) has probability ~2^-53T, so the division is safe.
            e = torch.empty(n, dtype=torch.float64).exponential_(generator=g)
            w = e / e.sum()
        return w.tolist()

    def current_weights(self) -> dict[str, float]:
        if self._last is None:
            return dict.fromkeys(self.tasks, 1.0 / len(self.tasks))
        return dict(zip(self.tasks, self._last))

    def combine(self, losses: Mapping[str, Tensor]) -> LossOutput:
        checked = check_task_losses(f"{type(self).__name__}.combine", self.tasks, losses)
        if self.training:
            self._last = self._draw()
            weights = dict(zip(self.tasks, self._last))
        else:
            weights = dict.fromkeys(self.tasks, 1.0 / len(self.tasks))
        total = weighted_total(checked, weights)
        return LossOutput(total=total, components=checked, weights=weights)

    # The generator state (a CPU uint8 tensor) and the last draw travel in state_dict.
    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self._generator.get_state(), "last": self._last}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        last = state["last"]
        if last is not None and len(last) != len(self.tasks):
            fail(
                f"{type(self).__name__}.load_state_dict",
                "last",
                f"hold {len(self.tasks)} weights (one per task) or None",
                repr(last),
                raw_got=True,
            )
        self._generator.set_state(state["generator"].detach().cpu().to(torch.uint8))
        self._last = None if last is None else [float(w) for w in last]

    def extra_repr(self) -> str:
        return f"tasks={list(self.tasks)}, distribution={self.distribution!r}, seed={self.seed}"
