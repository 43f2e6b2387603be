"""The shared start of a pointwise regression loss: checks, then the residual."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._checks import check_pointwise
from losslab._reduce import upcast


def residual(
    fn: str,
    pred: Tensor,
    target: Tensor,
    *,
    sample_weight: Optional[Tensor],
    validate: bool,
    reduction: str,
) -> Tensor:
    """Check (pred, target) as a pointwise loss does; return ``pred - target`` in the compute dtype
    (float32 for half inputs)."""
    check_pointwise(
        fn,
        "pred",
        pred,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    return upcast(pred) - upcast(target)
