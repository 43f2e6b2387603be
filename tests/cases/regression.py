"""Cases for the regression losses: float64 references written from the formulas."""

from __future__ import annotations

import torch

from losslab.losses.regression import MSELoss
from tests.cases._base import Case, ErrorInput, Sample, generator, randn, ref_reduce


def pointwise_errors(fn: str, **good: object) -> list[ErrorInput]:
    """Bad inputs every pointwise (pred, target) regression loss must refuse.

    ``good`` holds hyperparameters that make an otherwise valid call.
    """
    p, t = torch.randn(4, 3), torch.randn(4, 3)
    col, flat = torch.randn(4, 1), torch.randn(4)
    return [
        ErrorInput(
            (col, flat),
            dict(good),
            ValueError,
            rf"{fn}\(\): `target` must have the same shape as `pred` \(4, 1\); got \(4,\)",
            "(B,1) vs (B,)",
        ),
        ErrorInput(
            (flat, col),
            dict(good),
            ValueError,
            r"`target` must have the same shape as `pred` \(4,\); got \(4, 1\)",
            "(B,) vs (B,1)",
        ),
        ErrorInput(
            (p, t[:2]),
            dict(good),
            ValueError,
            r"`target` must have the same shape",
            "batch mismatch",
        ),
        ErrorInput(
            (p.long(), t),
            dict(good),
            TypeError,
            r"`pred` must be a floating-point tensor; got dtype int64",
            "int pred",
        ),
        ErrorInput(
            (p, t.long()),
            dict(good),
            TypeError,
            r"`target` must be a floating-point tensor; got dtype int64",
            "int target",
        ),
        ErrorInput(
            (p.tolist(), t),
            dict(good),
            TypeError,
            r"`pred` must be a torch.Tensor; got list",
            "list pred",
        ),
        ErrorInput(
            (p, 1.0),
            dict(good),
            TypeError,
            r"`target` must be a torch.Tensor; got float",
            "float target",
        ),
        ErrorInput(
            (p, t),
            {**good, "reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. Did you mean 'mean'\?",
            "reduction typo",
        ),
        ErrorInput(
            (p, t),
            {**good, "reduction": None},
            ValueError,
            r"`reduction` must be one of",
            "reduction None",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": torch.ones(4, 1)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\).*got \(4, 1\)",
            "sample_weight (N,1)",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": -torch.ones(4)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": torch.ones(4, dtype=torch.long)},
            TypeError,
            r"`sample_weight` must be a floating-point tensor",
            "int sample_weight",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": torch.tensor([1.0, float("nan"), 1.0, 1.0])},
            ValueError,
            r"`sample_weight` must have values in",
            "NaN sample_weight",
        ),
    ]


# ---------------------------------------------------------------------------- mse
def _mse_ref(pred, target, *, weight=1.0, sample_weight=None, validate=True, reduction="mean"):
    return ref_reduce(weight * (pred - target) ** 2, reduction, sample_weight=sample_weight)


def _mse_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 6), randn(g, 6)), note="1d"),
        Sample((randn(g, 4, 3, 2), randn(g, 4, 3, 2)), {"weight": 2.5}, note="3d weight"),
        Sample(
            (randn(g, 5, 2), randn(g, 5, 2)),
            {"sample_weight": torch.rand(5, generator=g, dtype=torch.float64)},
            note="sample_weight",
        ),
        Sample(
            (randn(g, 3), randn(g, 3)),
            {"sample_weight": torch.zeros(3, dtype=torch.float64)},
            note="all-zero weights",
        ),
    ]


def _big_extremes() -> list[Sample]:
    x = torch.tensor([0.0, 1e4, -1e4, 30.0, -30.0, 1e-30])
    return [Sample((x.clone(), torch.zeros(6)), note="extreme")]


MSE = Case(
    key="mse",
    module=MSELoss,
    reference=_mse_ref,
    samples=_mse_samples,
    errors=lambda: [
        *pointwise_errors("mse_loss"),
        ErrorInput(
            (torch.randn(3), torch.randn(3)),
            {"weight": -1.0},
            ValueError,
            r"mse_loss\(\): `weight` must be in \[0, inf\); got -1.0",
            "negative weight",
        ),
        ErrorInput(
            (torch.randn(3), torch.randn(3)),
            {"weight": torch.tensor(1.0)},
            TypeError,
            r"`weight` must be a real number; got Tensor",
            "tensor weight",
        ),
    ],
    extremes=_big_extremes,
)

CASES = [MSE]

__all__ = ["CASES", "generator", "pointwise_errors"]
