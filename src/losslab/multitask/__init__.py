"""Multi-task learning: ``MultiTaskLoss`` and task weightings.

Loss weightings (their total backpropagates normally): :class:`FixedWeighting`,
:class:`EqualWeighting`, :class:`UncertaintyWeighting`, :class:`DynamicWeightAverage`,
:class:`RandomLossWeighting`. Gradient weightings (they perform the backward step over the
shared parameters): :class:`GradNorm`, :class:`PCGrad`, :class:`MGDA`, :class:`CAGrad`.
``MultiTaskLoss(losses, weighting="pcgrad")`` accepts the keys of :data:`WEIGHTINGS`.
"""

from losslab.multitask._base import GradientWeighting, LossWeighting, Weighting
from losslab.multitask._factory import KEYS as _KEYS
from losslab.multitask._factory import make_weighting
from losslab.multitask.cagrad import CAGrad
from losslab.multitask.dwa import DynamicWeightAverage
from losslab.multitask.fixed import EqualWeighting, FixedWeighting
from losslab.multitask.gradnorm import GradNorm
from losslab.multitask.mgda import MGDA
from losslab.multitask.multitask_loss import MultiTaskLoss
from losslab.multitask.pcgrad import PCGrad
from losslab.multitask.random_weighting import RandomLossWeighting
from losslab.multitask.uncertainty import UncertaintyWeighting

WEIGHTINGS: tuple[str, ...] = tuple(_KEYS)
"""The names ``MultiTaskLoss(weighting=...)`` accepts."""

__all__ = [
    "MGDA",
    "WEIGHTINGS",
    "CAGrad",
    "DynamicWeightAverage",
    "EqualWeighting",
    "FixedWeighting",
    "GradNorm",
    "GradientWeighting",
    "LossWeighting",
    "MultiTaskLoss",
    "PCGrad",
    "RandomLossWeighting",
    "UncertaintyWeighting",
    "Weighting",
    "make_weighting",
]
