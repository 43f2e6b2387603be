"""Cases for soft-DTW and the soft-DTW divergence: a plain double-loop float64 DP as reference.

The reference walks the cost matrix row by row with Python floats (the implementation walks
anti-diagonals with tensors): masks truncate each series to its valid prefix, the band skips
cells with |i - j| > bandwidth.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from losslab.losses.timeseries.soft_dtw import SoftDTWLoss
from losslab.losses.timeseries.soft_dtw_divergence import SoftDTWDivergenceLoss
from tests.cases._base import Case, ErrorInput, Sample, generator, randn, ref_reduce


# ---------------------------------------------------------------------------- reference
def ref_series(t: torch.Tensor, b: int, mask: Optional[torch.Tensor]) -> list[list[float]]:
    """Series ``b`` of ``t`` (B, T) or (B, T, F) as a list of feature vectors, valid steps only."""
    rows = t[b].tolist()
    steps = [[v] for v in rows] if t.dim() == 2 else rows
    if mask is not None:
        steps = steps[: int(mask[b].sum())]
    return steps


def ref_soft_dtw(
    x: list[list[float]], y: list[list[float]], gamma: float, bandwidth: Optional[int] = None
) -> float:
    """R[N][M] of the soft-DTW recursion, one cell at a time (gamma = 0: hard-min DTW)."""
    n, m = len(x), len(y)
    r = [[math.inf] * (m + 1) for _ in range(n + 1)]
    r[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if bandwidth is not None and abs(i - j) > bandwidth:
                continue
            cost = sum((a - c) ** 2 for a, c in zip(x[i - 1], y[j - 1]))
            prev = (r[i - 1][j - 1], r[i - 1][j], r[i][j - 1])
            low = min(prev)
            if gamma == 0.0:
                r[i][j] = cost + low
            else:
                total = sum(math.exp(-(p - low) / gamma) for p in prev)
                r[i][j] = cost + low - gamma * math.log(total)
    return r[n][m]


def _per_series(pred, target, mask, target_mask, fn) -> torch.Tensor:
    return torch.tensor(
        [
            fn(ref_series(pred, b, mask), ref_series(target, b, target_mask))
            for b in range(pred.shape[0])
        ],
        dtype=torch.float64,
    )


def _soft_dtw_ref(
    pred,
    target,
    *,
    gamma=1.0,
    bandwidth=None,
    sample_weight=None,
    mask=None,
    target_mask=None,
    validate=True,
    reduction="mean",
):
    def one(x, y):
        return ref_soft_dtw(x, y, gamma, bandwidth)

    loss = _per_series(pred, target, mask, target_mask, one)
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _divergence_ref(
    pred,
    target,
    *,
    gamma=1.0,
    bandwidth=None,
    sample_weight=None,
    mask=None,
    target_mask=None,
    validate=True,
    reduction="mean",
):
    def one(x, y):
        xy = ref_soft_dtw(x, y, gamma, bandwidth)
        return xy - 0.5 * (
            ref_soft_dtw(x, x, gamma, bandwidth) + ref_soft_dtw(y, y, gamma, bandwidth)
        )

    loss = _per_series(pred, target, mask, target_mask, one)
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


# ---------------------------------------------------------------------------- samples
def prefix_mask(lengths: list[int], steps: int) -> torch.Tensor:
    return torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]


def _padded(x: torch.Tensor, mask: torch.Tensor, fill: float) -> torch.Tensor:
    """``x`` with its padded steps set to ``fill`` (they must not matter)."""
    m = mask if x.dim() == 2 else mask.unsqueeze(-1)
    return torch.where(m, x, torch.full_like(x, fill))


def _samples(g: torch.Generator) -> list[Sample]:
    both = (0, 1)
    m1, t1 = prefix_mask([5, 3, 1], 5), prefix_mask([6, 2, 4], 6)
    m2, t2 = prefix_mask([6, 3], 6), prefix_mask([5, 4], 5)
    return [
        Sample((randn(g, 3, 5), randn(g, 3, 4)), grad=both, note="2d N != M"),
        Sample(
            (randn(g, 4, 4, 2), randn(g, 4, 6, 2)),
            {"gamma": 0.1, "sample_weight": torch.rand(4, generator=g, dtype=torch.float64)},
            grad=both,
            note="3d gamma=0.1 sample_weight",
        ),
        Sample(
            (randn(g, 3, 5, 2), randn(g, 3, 4, 2)),
            {"gamma": 0.5, "bandwidth": 1},
            grad=both,
            note="bandwidth=1",
        ),
        Sample(
            (_padded(randn(g, 3, 5), m1, 1e3), _padded(randn(g, 3, 6), t1, -1e3)),
            {
                "gamma": 0.7,
                "mask": m1,
                "target_mask": t1,
                "sample_weight": torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
            },
            grad=both,
            note="masks, variable lengths",
        ),
        Sample(
            (_padded(randn(g, 2, 6, 2), m2, 50.0), randn(g, 2, 5, 2)),
            {"gamma": 0.3, "bandwidth": 1, "mask": m2, "target_mask": t2},
            grad=both,
            note="band + masks",
        ),
        Sample(
            (randn(g, 2, 1), randn(g, 2, 3)),
            {"gamma": 2.0, "sample_weight": torch.zeros(2, dtype=torch.float64)},
            grad=both,
            note="length one, zero weights",
        ),
    ]


def _extremes() -> list[Sample]:
    g = generator(7)
    m, t = prefix_mask([30, 12], 30), prefix_mask([9, 25], 25)
    return [
        Sample(
            (randn(g, 2, 30, 2, scale=100.0), randn(g, 2, 25, 2, scale=100.0)),
            {"gamma": 1e-3},
            grad=(0, 1),
            note="gamma=1e-3, values ~100",
        ),
        Sample(
            (1e4 + randn(g, 2, 12), -1e4 + randn(g, 2, 9)),
            {"gamma": 1e-2, "bandwidth": 3},
            grad=(0, 1),
            note="|x| = 1e4, band",
        ),
        Sample(
            (_padded(randn(g, 2, 30), m, math.nan), _padded(randn(g, 2, 25), t, math.inf)),
            {"gamma": 1e-3, "mask": m, "target_mask": t},
            grad=(0, 1),
            note="NaN / inf padding",
        ),
        Sample((randn(g, 2, 40, 3).clone(),) * 2, {"gamma": 1e-3}, grad=(0, 1), note="x == y"),
    ]


# ---------------------------------------------------------------------------- errors
def _errors(fn: str) -> list[ErrorInput]:
    p, t = torch.randn(4, 5), torch.randn(4, 6)
    p3, t3 = torch.randn(4, 5, 2), torch.randn(4, 6, 2)
    good_mask = prefix_mask([5, 2, 4, 1], 5)
    holey = good_mask.clone()
    holey[1, 3] = True  # 11010: not a prefix
    empty = good_mask.clone()
    empty[2] = False

    def err(args: tuple[Any, ...], kwargs: dict[str, Any], exc: type, match: str, note: str):
        return ErrorInput(args, kwargs, exc, match, note)

    return [
        err(
            (torch.randn(6, 1), torch.randn(6)),
            {},
            ValueError,
            rf"{fn}\(\): `target` must have as many dimensions as `pred` \(6, 1\).*; got \(6,\)",
            "(B,1) vs (B,)",
        ),
        err(
            (torch.randn(6), torch.randn(6)),
            {},
            ValueError,
            r"`pred` must have shape \(B, N\) or \(B, N, F\); got \(6,\)",
            "1-d pred",
        ),
        err(
            (torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)),
            {},
            ValueError,
            r"`pred` must have shape \(B, N\) or \(B, N, F\); got \(2, 3, 4, 5\)",
            "4-d pred",
        ),
        err(
            (p3, t),
            {},
            ValueError,
            r"`target` must have as many dimensions as `pred` \(4, 5, 2\)",
            "(B, N, F) vs (B, M)",
        ),
        err(
            (p, t[:3]),
            {},
            ValueError,
            r"`target` must have the batch size of `pred` \(4, 5\) in dim 0; got \(3, 6\)",
            "batch mismatch",
        ),
        err(
            (p3, t3[..., :1]),
            {},
            ValueError,
            r"`target` must have the feature size of `pred` \(4, 5, 2\) in dim 2; got \(4, 6, 1\)",
            "feature mismatch",
        ),
        err(
            (p[:, :0], t),
            {},
            ValueError,
            r"`pred` must have at least one time step \(dim 1\); got \(4, 0\)",
            "empty series",
        ),
        err(
            (p.long(), t),
            {},
            TypeError,
            r"`pred` must be a floating-point tensor; got dtype int64",
            "int pred",
        ),
        err(
            (p, t.int()),
            {},
            TypeError,
            r"`target` must be a floating-point tensor; got dtype int32",
            "int target",
        ),
        err((p.tolist(), t), {}, TypeError, r"`pred` must be a torch.Tensor; got list", "list"),
        err(
            (p, t), {"gamma": 0.0}, ValueError, r"`gamma` must be in \(0, inf\); got 0.0", "gamma=0"
        ),
        err((p, t), {"gamma": -1.0}, ValueError, r"`gamma` must be in \(0, inf\)", "gamma<0"),
        err(
            (p, t),
            {"gamma": math.nan},
            ValueError,
            r"`gamma` must be a finite number; got nan",
            "gamma nan",
        ),
        err((p, t), {"gamma": "1"}, TypeError, r"`gamma` must be a real number; got str", "str"),
        err(
            (p, t),
            {"bandwidth": -1},
            ValueError,
            r"`bandwidth` must be an int >= 0 or None; got -1",
            "bandwidth<0",
        ),
        err(
            (p, t),
            {"bandwidth": 1.5},
            TypeError,
            r"`bandwidth` must be an int >= 0 or None; got float",
            "float bandwidth",
        ),
        err(
            (p, t),
            {"bandwidth": True},
            TypeError,
            r"`bandwidth` must be an int >= 0 or None; got bool",
            "bool bandwidth",
        ),
        err(
            (torch.randn(4, 7), torch.randn(4, 3)),
            {"bandwidth": 3},
            ValueError,
            r"`bandwidth` must be >= \|N - M\| = 4 so that the band reaches the end cell "
            r"\(N, M\) = \(7, 3\); got 3",
            "bandwidth < |N - M|",
        ),
        err(
            (p, t),
            {"bandwidth": 2, "mask": good_mask},
            ValueError,
            r"`bandwidth` must be >= \|n_b - m_b\| for every series.*got 2 with "
            r"\|n_b - m_b\| = 5 for series 3",
            "bandwidth < |n_b - m_b|",
        ),
        err(
            (p, t),
            {"mask": holey},
            ValueError,
            r"`mask` must be a prefix mask: True for the valid steps of a series, then only "
            r"False; got series 1 = 11010",
            "non-prefix mask",
        ),
        err(
            (p, t),
            {"mask": empty},
            ValueError,
            r"`mask` must have at least one True \(valid step\) per series; got series 2 all False",
            "all-False mask row",
        ),
        err(
            (p, t),
            {"mask": good_mask[:, :4]},
            ValueError,
            r"`mask` must have shape \(B, T\) = \(4, 5\), one flag per step of `pred` \(4, 5\); "
            r"got \(4, 4\)",
            "mask shape",
        ),
        err(
            (p, t),
            {"mask": good_mask.float()},
            TypeError,
            r"`mask` must be a boolean tensor \(True at the valid steps\); got dtype float32",
            "float mask",
        ),
        err(
            (p, t),
            {"target_mask": prefix_mask([6, 6, 6, 6], 6).flip(1) & (torch.arange(6) > 2)},
            ValueError,
            r"`target_mask` must be a prefix mask.*got series 0 = 000111",
            "left-padded target_mask",
        ),
        err(
            (p, t),
            {"target_mask": good_mask},
            ValueError,
            r"`target_mask` must have shape \(B, T\) = \(4, 6\), one flag per step of `target`",
            "target_mask shaped like pred",
        ),
        err(
            (p, t),
            {"reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. Did you mean 'mean'\?",
            "reduction typo",
        ),
        err(
            (p, t),
            {"sample_weight": torch.ones(5)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\)",
            "sample_weight length",
        ),
        err(
            (p, t),
            {"sample_weight": -torch.ones(4)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
    ]


def _none_shape(pred: torch.Tensor, target: torch.Tensor) -> tuple[int, ...]:
    return (pred.shape[0],)


SOFT_DTW = Case(
    key="soft_dtw",
    module=SoftDTWLoss,
    reference=_soft_dtw_ref,
    samples=_samples,
    errors=lambda: _errors("soft_dtw_loss"),
    extremes=_extremes,
    none_shape=_none_shape,
)

SOFT_DTW_DIVERGENCE = Case(
    key="soft_dtw_divergence",
    module=SoftDTWDivergenceLoss,
    reference=_divergence_ref,
    samples=_samples,
    errors=lambda: _errors("soft_dtw_divergence_loss"),
    extremes=_extremes,
    none_shape=_none_shape,
)

CASES = [SOFT_DTW, SOFT_DTW_DIVERGENCE]

__all__ = ["CASES", "prefix_mask", "ref_series", "ref_soft_dtw"]
