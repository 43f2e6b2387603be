"""Composition: weighted sums of named losses, their outputs, and safe specs."""

from losslab.compose.output import LossOutput
from losslab.compose.weighted_sum import WeightedSum
from losslab.compose.spec import SpecError, parse

__all__ = ["LossOutput", "SpecError", "WeightedSum", "parse"]
