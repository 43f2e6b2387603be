"""``LossOutput``: a total and its named, unweighted components, ready for logging."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from torch import Tensor

__all__ = ["LossOutput"]


@dataclass(frozen=True)
class LossOutput:
    """What ``loss.evaluate(...)`` returns.

    ``total == sum(weights[k] * components[k] for k in components)``; ``total`` is
    differentiable, components are the unweighted term values.

    >>> out = LossOutput(torch.tensor(1.5), {"bce": torch.tensor(1.0), "dice": torch.tensor(2.0)},
    ...                  {"bce": 0.5, "dice": 0.5})
    >>> out.log_dict()
    {'loss/total': 1.5, 'loss/bce': 1.0, 'loss/dice': 2.0}
    """

    total: Tensor
    components: Mapping[str, Tensor] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.components) != set(self.weights):
            raise ValueError(
                "LossOutput(): `weights` must have the same names as `components` "
                f"{sorted(self.components)}; got {sorted(self.weights)}."
            )
        object.__setattr__(self, "components", MappingProxyType(dict(self.components)))
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))

    def log_dict(self, prefix: str = "loss/") -> dict[str, float]:
        """Detached Python floats ``{prefix + "total": ..., prefix + name: ...}`` (one host sync)."""
        values = [self.total, *self.components.values()]
        for name, v in zip(["total", *self.components], values):
            if v.dim() != 0:
                raise ValueError(
                    f"log_dict(): `{name}` must be a scalar (use reduction='mean' or 'sum'); "
                    f"got shape {tuple(v.shape)}."
                )
        numbers = torch.stack([v.detach().to(torch.float64) for v in values]).cpu().tolist()
        return {f"{prefix}{name}": x for name, x in zip(["total", *self.components], numbers)}

    def to_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "components": dict(self.components),
            "weights": dict(self.weights),
        }
