"""Cases for the listwise ranking losses: float64 double-loop references from the papers."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from losslab.losses.ranking.approx_ndcg import ApproxNDCGLoss
from losslab.losses.ranking.listmle import ListMLELoss
from losslab.losses.ranking.listnet import ListNetLoss
from losslab.losses.ranking.neural_ndcg import NeuralNDCGLoss
from tests.cases._base import Case, ErrorInput, Sample, randn, ref_reduce


# ---------------------------------------------------------------------------- layouts (reference)
def ref_lists(
    scores: torch.Tensor,
    target: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    group: Optional[torch.Tensor] = None,
) -> list[list[tuple[int, float, float]]]:
    """Per list, its real items as (column in the padded lists, score, target), in order.

    Flat layout: groups in ascending id order, items in input order (column = position).
    """
    s, t = scores.tolist(), target.tolist()
    if group is not None:
        ids = group.tolist()
        out = []
        for gid in sorted(set(ids)):
            items = [(s[i], t[i]) for i in range(len(ids)) if ids[i] == gid]
            out.append([(c, a, b) for c, (a, b) in enumerate(items)])
        return out
    m = mask.tolist() if mask is not None else [[True] * len(row) for row in s]
    return [[(j, s[b][j], t[b][j]) for j in range(len(s[b])) if m[b][j]] for b in range(len(s))]


def _finish(losses, counts, reduction, sample_weight):
    loss = torch.tensor(losses, dtype=torch.float64)
    mask = torch.tensor(counts, dtype=torch.bool)
    return ref_reduce(loss, reduction, sample_weight=sample_weight, mask=mask)


def _has_pair(items) -> bool:
    return any(a[2] > b[2] for a in items for b in items)


def _gain(rel: float) -> float:
    return 2.0**rel - 1.0


def _ideal_dcg(items, k) -> float:
    gains = sorted((_gain(t) for _, _, t in items), reverse=True)
    return sum(g / math.log2(r + 2) for r, g in enumerate(gains) if k is None or r < k)


# ---------------------------------------------------------------------------- references
def _listnet_ref(
    scores,
    target,
    *,
    mask=None,
    group=None,
    sync="local",
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    losses, counts = [], []
    for items in ref_lists(scores, target, mask, group):
        if not _has_pair(items):
            losses.append(0.0)
            counts.append(False)
            continue
        zs = sum(math.exp(s) for _, s, _ in items)
        zt = sum(math.exp(t) for _, _, t in items)
        loss = 0.0
        for _, s, t in items:
            loss -= math.exp(t) / zt * (s - math.log(zs))
        losses.append(loss)
        counts.append(True)
    return _finish(losses, counts, reduction, sample_weight)


def _listmle_ref(
    scores,
    target,
    *,
    mask=None,
    group=None,
    seed=None,
    sync="local",
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    lists = ref_lists(scores, target, mask, group)
    keys = None
    if seed is not None:
        b = len(lists) if group is not None else scores.shape[0]
        n = max((len(x) for x in lists), default=0) if group is not None else scores.shape[1]
        keys = torch.rand(
            (b, n), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        ).tolist()
    losses, counts = [], []
    for b, items in enumerate(lists):
        if not _has_pair(items):
            losses.append(0.0)
            counts.append(False)
            continue
        # ties: the seeded key of the item's column, or the column itself (position order)
        row = keys[b] if keys is not None else None

        def sort_key(it: tuple[int, float, float], row: Optional[list[float]] = row) -> tuple:
            return (-it[2], it[0] if row is None else row[it[0]])

        ordered = sorted(items, key=sort_key)
        loss = 0.0
        for r in range(len(ordered)):
            loss += math.log(sum(math.exp(it[1]) for it in ordered[r:])) - ordered[r][1]
        losses.append(loss)
        counts.append(True)
    return _finish(losses, counts, reduction, sample_weight)


def _approx_ndcg_ref(
    scores,
    target,
    *,
    mask=None,
    group=None,
    alpha=10.0,
    k=None,
    sync="local",
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    losses, counts = [], []
    for items in ref_lists(scores, target, mask, group):
        idcg = _ideal_dcg(items, k)
        if idcg == 0:
            losses.append(0.0)
            counts.append(False)
            continue
        dcg = 0.0
        for i, (_, si, ti) in enumerate(items):
            rank = 1.0
            for j, (_, sj, _) in enumerate(items):
                if j != i:
                    rank += 1.0 / (1.0 + math.exp(alpha * (si - sj)))
            w = 1.0 / math.log2(1.0 + rank)
            if k is not None:
                w *= 1.0 / (1.0 + math.exp(-alpha * (k + 0.5 - rank)))
            dcg += _gain(ti) * w
        losses.append(-dcg / idcg)
        counts.append(True)
    return _finish(losses, counts, reduction, sample_weight)


def _neural_ndcg_ref(
    scores,
    target,
    *,
    mask=None,
    group=None,
    temperature=1.0,
    k=None,
    sinkhorn_iterations=50,
    sync="local",
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    losses, counts = [], []
    for items in ref_lists(scores, target, mask, group):
        idcg = _ideal_dcg(items, k)
        if idcg == 0:
            losses.append(0.0)
            counts.append(False)
            continue
        s = [it[1] for it in items]
        n = len(s)
        p = [[0.0] * n for _ in range(n)]
        for r in range(n):  # rank r + 1
            logits = [
                ((n + 1 - 2 * (r + 1)) * s[j] - sum(abs(s[j] - s[q]) for q in range(n)))
                / temperature
                for j in range(n)
            ]
            top = max(logits)
            row = [math.exp(x - top) for x in logits]
            p[r] = [x / sum(row) for x in row]
        for _ in range(sinkhorn_iterations):
            for j in range(n):
                col = sum(p[r][j] for r in range(n))
                for r in range(n):
                    p[r][j] /= col
            for r in range(n):
                row_sum = sum(p[r])
                p[r] = [x / row_sum for x in p[r]]
        dcg = 0.0
        for r in range(n):
            if k is None or r < k:
                dcg += sum(p[r][j] * _gain(items[j][2]) for j in range(n)) / math.log2(r + 2)
        losses.append(-dcg / idcg)
        counts.append(True)
    return _finish(losses, counts, reduction, sample_weight)


# ---------------------------------------------------------------------------- samples
def _relevance(g: torch.Generator, *shape: int, high: int = 4) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=g).to(torch.float64)


def _flat(g: torch.Generator, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat items of groups with ids 10, 20, ... of the given sizes, shuffled."""
    ids = torch.cat([torch.full((m,), 10 * (i + 1), dtype=torch.long) for i, m in enumerate(sizes)])
    perm = torch.randperm(ids.numel(), generator=g)
    n = ids.numel()
    return randn(g, n), _relevance(g, n), ids[perm]


def _common_samples(g: torch.Generator, opts: dict[str, Any]) -> list[Sample]:
    mask = torch.tensor(
        [
            [True, False, True, True, True],  # padding in the middle
            [True, True, True, False, False],
            [False, False, False, False, False],  # fully masked
            [True, False, False, False, False],
        ],  # one item
    )
    target_masked = _relevance(g, 4, 5)
    target_masked[0] = torch.tensor([2.0, 9.0, 0.0, 2.0, 1.0])  # a tie; 9 sits in padding
    fs, ft, fg = _flat(g, [3, 5, 1, 4])
    ft[fg == 10] = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    return [
        Sample((randn(g, 3, 5), _relevance(g, 3, 5)), dict(opts), note="padded ties"),
        Sample(
            (randn(g, 4, 5), target_masked),
            {
                **opts,
                "mask": mask,
                "sample_weight": torch.rand(4, generator=g, dtype=torch.float64),
            },
            note="mask, empty list, sample_weight",
        ),
        Sample(
            (fs, ft),
            {
                **opts,
                "group": fg,
                "sample_weight": torch.tensor([0.5, 1.0, 2.0, 0.0], dtype=torch.float64),
            },
            note="flat shuffled groups",
            none_shape=(4,),
        ),
        Sample(
            (randn(g, 2, 4), torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])),
            dict(opts),
            note="degenerate lists only",
        ),
        Sample(
            (fs, ft),
            {**opts, "group": fg, "sync": "global"},
            note="sync=global (no process group: as local)",
            none_shape=(4,),
        ),
    ]


def _extremes(opts: dict[str, Any]):
    def make() -> list[Sample]:
        s = torch.tensor(
            [[1e4, -1e4, 30.0, -30.0, 0.0], [1e4, 1e4, -1e4, 5.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]
        )
        t = torch.tensor(
            [[3.0, 0.0, 2.0, 1.0, 0.0], [0.0, 2.0, 1.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]]
        )
        m = torch.tensor([[True] * 5, [True, True, True, False, True], [False] * 5])
        return [
            Sample((s, t), {**opts, "mask": m}, note="scores +-1e4, +-30, empty list"),
            Sample((-s, t.flip(1)), dict(opts), note="negated, no mask"),
        ]

    return make


# ---------------------------------------------------------------------------- errors
def ranking_errors(fn: str, **good: Any) -> list[ErrorInput]:
    """Bad inputs every listwise loss must refuse (``good`` makes an otherwise valid call)."""
    s, t = torch.randn(2, 4), torch.rand(2, 4)
    fs, ft, fg = torch.randn(5), torch.rand(5), torch.tensor([1, 1, 2, 2, 2])
    return [
        ErrorInput(
            (torch.randn(6, 1), torch.rand(6)),
            dict(good),
            ValueError,
            rf"{fn}\(\): `target` must have the same shape as `scores` \(6, 1\); got \(6,\)",
            "(B,1) vs (B,)",
        ),
        ErrorInput(
            (s, t[:, :3]),
            dict(good),
            ValueError,
            r"`target` must have the same shape as `scores` \(2, 4\)",
            "list length",
        ),
        ErrorInput(
            (s.long(), t),
            dict(good),
            TypeError,
            r"`scores` must be a floating-point tensor; got dtype int64",
            "int scores",
        ),
        ErrorInput(
            (s, t.long()),
            dict(good),
            TypeError,
            r"`target` must be a floating-point tensor; got dtype int64",
            "int target",
        ),
        ErrorInput(
            (s.tolist(), t),
            dict(good),
            TypeError,
            r"`scores` must be a torch.Tensor; got list",
            "list scores",
        ),
        ErrorInput(
            (torch.randn(2, 3, 4), torch.rand(2, 3, 4)),
            dict(good),
            ValueError,
            r"`scores` must have shape \(B, n\)",
            "3-D scores",
        ),
        ErrorInput(
            (s, t),
            {**good, "mask": torch.ones(2, 4)},
            TypeError,
            r"`mask` must be a boolean tensor",
            "float mask",
        ),
        ErrorInput(
            (s, t),
            {**good, "mask": torch.ones(2, 3, dtype=torch.bool)},
            ValueError,
            r"`mask` must have the same shape as `scores` \(2, 4\)",
            "mask shape",
        ),
        ErrorInput(
            (fs, ft),
            {**good, "group": fg, "mask": torch.ones(5, dtype=torch.bool)},
            ValueError,
            r"`mask` must be None when `group` is given",
            "mask + group",
        ),
        ErrorInput(
            (fs, ft),
            {**good, "group": fg.double()},
            TypeError,
            r"`group` must be an integer tensor",
            "float group",
        ),
        ErrorInput(
            (fs, ft),
            {**good, "group": fg[:4]},
            ValueError,
            r"`group` must have the same shape as `scores` \(5,\)",
            "group length",
        ),
        ErrorInput(
            (s, t),
            {**good, "group": torch.zeros(2, 4, dtype=torch.long)},
            ValueError,
            r"`scores` must be 1-D",
            "2-D scores with group",
        ),
        ErrorInput(
            (s, t),
            {**good, "reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. "
            r"Did you mean 'mean'\?",
            "reduction typo",
        ),
        ErrorInput(
            (s, t),
            {**good, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(2,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (fs, ft),
            {**good, "group": fg, "sample_weight": torch.ones(5)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(2,\)",
            "sample_weight per item",
        ),
        ErrorInput(
            (s, t),
            {**good, "sync": "globl"},
            ValueError,
            r"`sync` must be one of 'local' \| 'global'; got 'globl'",
            "sync typo",
        ),
        ErrorInput(
            (s, t),
            {**good, "sample_weight": -torch.ones(2)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
        ErrorInput(
            (s, torch.tensor([[0.0, float("nan"), 1.0, 1.0]] * 2)),
            dict(good),
            ValueError,
            r"`target` must have values in",
            "NaN target",
        ),
    ]


def _negative_relevance(fn: str) -> ErrorInput:
    return ErrorInput(
        (torch.randn(2, 3), torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, 2.0]])),
        {},
        ValueError,
        rf"{fn}\(\): `target` must have values in \[0, inf\)",
        "negative relevance",
    )


def _k_errors(fn: str) -> list[ErrorInput]:
    s, t = torch.randn(2, 3), torch.rand(2, 3)
    return [
        ErrorInput((s, t), {"k": 0}, ValueError, r"`k` must be an int >= 1 or None; got 0", "k 0"),
        ErrorInput(
            (s, t), {"k": 2.0}, TypeError, r"`k` must be an int >= 1 or None; got float", "float k"
        ),
        ErrorInput(
            (s, t), {"k": True}, TypeError, r"`k` must be an int >= 1 or None; got bool", "bool k"
        ),
    ]


_S, _T = torch.randn(2, 3), torch.rand(2, 3)

LISTNET = Case(
    key="listnet",
    module=ListNetLoss,
    reference=_listnet_ref,
    samples=lambda g: _common_samples(g, {}),
    errors=lambda: ranking_errors("listnet_loss"),
    extremes=_extremes({}),
    none_shape=lambda scores, target: (scores.shape[0],),
)

LISTMLE = Case(
    key="listmle",
    module=ListMLELoss,
    reference=_listmle_ref,
    samples=lambda g: [
        *_common_samples(g, {}),
        *[
            Sample(
                x.args, {**x.kwargs, "seed": 7}, note=f"seed 7, {x.note}", none_shape=x.none_shape
            )
            for x in _common_samples(g, {})[:3]
        ],
    ],
    errors=lambda: [
        *ranking_errors("listmle_loss"),
        ErrorInput(
            (_S, _T),
            {"seed": 1.5},
            TypeError,
            r"`seed` must be an int or None; got float",
            "float seed",
        ),
        ErrorInput(
            (_S, _T),
            {"seed": True},
            TypeError,
            r"`seed` must be an int or None; got bool",
            "bool seed",
        ),
    ],
    extremes=_extremes({}),
    none_shape=lambda scores, target: (scores.shape[0],),
)

APPROX_NDCG = Case(
    key="approx_ndcg",
    module=ApproxNDCGLoss,
    reference=_approx_ndcg_ref,
    samples=lambda g: [
        *_common_samples(g, {}),
        *_common_samples(g, {"alpha": 2.5, "k": 2})[:3],
    ],
    errors=lambda: [
        *ranking_errors("approx_ndcg_loss"),
        _negative_relevance("approx_ndcg_loss"),
        *_k_errors("approx_ndcg_loss"),
        ErrorInput(
            (_S, _T),
            {"alpha": 0.0},
            ValueError,
            r"`alpha` must be in \(0, inf\); got 0.0",
            "alpha 0",
        ),
        ErrorInput(
            (_S, _T),
            {"alpha": torch.tensor(1.0)},
            TypeError,
            r"`alpha` must be a real number; got Tensor",
            "tensor alpha",
        ),
        ErrorInput(
            (_S, _T), {"alpha": float("inf")}, ValueError, r"`alpha` must be a finite", "inf alpha"
        ),
    ],
    extremes=_extremes({}),
    none_shape=lambda scores, target: (scores.shape[0],),
)

NEURAL_NDCG = Case(
    key="neural_ndcg",
    module=NeuralNDCGLoss,
    reference=_neural_ndcg_ref,
    samples=lambda g: [
        *_common_samples(g, {}),
        *_common_samples(g, {"temperature": 0.5, "k": 2, "sinkhorn_iterations": 5})[:3],
        Sample(
            (randn(g, 2, 4), _relevance(g, 2, 4)), {"sinkhorn_iterations": 0}, note="no sinkhorn"
        ),
    ],
    errors=lambda: [
        *ranking_errors("neural_ndcg_loss"),
        _negative_relevance("neural_ndcg_loss"),
        *_k_errors("neural_ndcg_loss"),
        ErrorInput(
            (_S, _T),
            {"temperature": 0.0},
            ValueError,
            r"`temperature` must be in \(0, inf\); got 0.0",
            "temperature 0",
        ),
        ErrorInput(
            (_S, _T),
            {"temperature": "1"},
            TypeError,
            r"`temperature` must be a real number; got str",
            "str temperature",
        ),
        ErrorInput(
            (_S, _T),
            {"sinkhorn_iterations": -1},
            ValueError,
            r"`sinkhorn_iterations` must be an int >= 0; got -1",
            "negative iterations",
        ),
        ErrorInput(
            (_S, _T),
            {"sinkhorn_iterations": 2.5},
            TypeError,
            r"`sinkhorn_iterations` must be an int >= 0; got float",
            "float iterations",
        ),
    ],
    extremes=_extremes({}),
    none_shape=lambda scores, target: (scores.shape[0],),
)

CASES = [LISTNET, LISTMLE, APPROX_NDCG, NEURAL_NDCG]

__all__ = ["CASES", "ranking_errors", "ref_lists"]
