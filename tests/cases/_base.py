"""The structures of the loss-case database (after PyTorch's OpInfo).

A ``Case`` holds, for one registered loss: seeded sample inputs in float64, a float64
reference written independently of the implementation, extreme inputs, and error
inputs with the exception type and message each must raise. ``tests/test_contract.py``
runs the same checks over every case.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from losslab.losses.base import Loss


@dataclass
class Sample:
    """One call: positional inputs and keyword arguments (hyperparameters + per-call)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    grad: tuple[int, ...] = (0,)  # positions of the inputs that receive gradients
    gradcheck: bool = True  # differentiable at the sample's points
    batch_split: bool = True  # reduction="sum" is additive over splits along dim 0
    low_precision: bool = True  # meaningful in fp16/bf16
    none_shape: Optional[tuple[int, ...]] = None  # overrides the case's none_shape for this sample

    def __repr__(self) -> str:
        return self.note or "sample"


@dataclass
class ErrorInput:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    exc: type[Exception]
    match: str  # a regex the message must contain
    note: str = ""

    def __repr__(self) -> str:
        return self.note or self.match


@dataclass
class Case:
    key: str
    module: type[Loss]
    reference: Callable[..., Tensor]  # (*args, **kwargs, reduction=...) -> float64 tensor
    samples: Callable[[torch.Generator], list[Sample]]
    errors: Callable[[], list[ErrorInput]]
    extremes: Callable[[], list[Sample]] = lambda: []
    # `none` output shape from the positional inputs (pointwise losses: per element).
    none_shape: Callable[..., tuple[int, ...]] = lambda *args: tuple(args[0].shape)
    # a (pred, target)-like pair with (B, 1) against (B,), which must raise ValueError
    shape_trap: Optional[Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]] = None
    low_precision_rtol: float = 2e-3

    @property
    def function(self) -> Callable[..., Tensor]:
        fn = self.module.function
        assert fn is not None
        return fn


def split_kwargs(
    module: type[Loss], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor kwargs, per-call kwargs) of a sample for the module form."""
    init = set(inspect.signature(module.__init__).parameters)
    return (
        {k: v for k, v in kwargs.items() if k in init},
        {k: v for k, v in kwargs.items() if k not in init},
    )


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def rand(g: torch.Generator, *shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
    return low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)


def ref_reduce(
    loss: Tensor,
    reduction: str,
    *,
    sample_weight: Optional[Tensor] = None,
    weight: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """The documented reduction, written out plainly in float64 (independent of losslab._reduce).

    none: loss * w (0 where masked); sum: its sum; mean: its sum / sum of the weights of
    the valid positions (0 when that is 0).
    """
    loss = loss.to(torch.float64)
    w = torch.ones_like(loss)
    if weight is not None:
        w = w * weight.to(torch.float64)
    if sample_weight is not None:
        w = w * sample_weight.to(torch.float64).reshape([-1] + [1] * (loss.dim() - 1))
    if mask is not None:
        w = w * mask.to(torch.float64)
        loss = torch.where(mask, loss, torch.zeros_like(loss))
    weighted = loss * w
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    denominator = w.sum()
    return weighted.sum() / denominator if denominator > 0 else weighted.sum() * 0.0
