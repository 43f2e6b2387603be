"""Composition: weighted sums of named losses, their outputs, and safe specs."""

from losslab.compose.output import LossOutput
from losslab.compose.spec import SpecError, parse
from losslab.compose.weighted_sum import WeightedSum

__all__ = ["LossOutput", "SpecError", "WeightedSum", "parse"]
