"""Cases for the pairwise ranking losses (hinge, RankNet, LambdaLoss): double-loop float64 references."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from losslab.losses.ranking.lambda_loss import LambdaLoss
from losslab.losses.ranking.pairwise_hinge import PairwiseHingeLoss
from losslab.losses.ranking.ranknet import RankNetLoss
from tests.cases._base import Case, ErrorInput, Sample, randn

# ---------------------------------------------------------------------------- references


def ref_lists(
    scores: Tensor, target: Tensor, mask: Optional[Tensor], group: Optional[Tensor]
) -> list[list[tuple[float, float, int]]]:
    """Each list as [(score, relevance, flat index)], groups in ascending id order."""
    s, t = scores.tolist(), target.tolist()
    if group is not None:
        ids = group.tolist()
        return [[(s[i], t[i], i) for i in range(len(ids)) if ids[i] == g] for g in sorted(set(ids))]
    m = mask.tolist() if mask is not None else [[True] * len(row) for row in s]
    n = len(s[0]) if s else 0
    return [[(s[b][i], t[b][i], b * n + i) for i in range(n) if m[b][i]] for b in range(len(s))]


def ref_reduce_lists(
    per_list: list[float],
    counts: list[bool],
    reduction: str,
    sample_weight: Optional[Tensor],
    denominators: Optional[list[float]] = None,
) -> Tensor:
    """none: w_b L_b; sum: their sum; mean: sum_b w_b L_b d_b / sum_b w_b d_b over counting lists.

    ``d_b`` is 1 (mean over lists) or the list's number of pairs (mean over pairs).
    """
    w = sample_weight.tolist() if sample_weight is not None else [1.0] * len(per_list)
    values = [w[b] * per_list[b] for b in range(len(per_list))]
    if reduction == "none":
        return torch.tensor(values, dtype=torch.float64)
    if reduction == "sum":
        return torch.tensor(math.fsum(values), dtype=torch.float64)
    d = denominators if denominators is not None else [1.0] * len(per_list)
    num = math.fsum(w[b] * per_list[b] * d[b] for b in range(len(per_list)) if counts[b])
    den = math.fsum(w[b] * d[b] for b in range(len(per_list)) if counts[b])
    return torch.tensor(num / den if den > 0 else 0.0, dtype=torch.float64)


def pairwise_reference(
    pair_loss: Callable[[float, dict[str, Any]], float],
) -> Callable[..., Tensor]:
    def reference(
        scores: Tensor,
        target: Tensor,
        *,
        mask: Optional[Tensor] = None,
        group: Optional[Tensor] = None,
        normalization: str = "pairs",
        sample_weight: Optional[Tensor] = None,
        validate: bool = True,
        reduction: str = "mean",
        **hp: Any,
    ) -> Tensor:
        per_list, pairs = [], []
        for items in ref_lists(scores, target, mask, group):
            total, count = 0.0, 0
            for si, ti, _ in items:
                for sj, tj, _ in items:
                    if ti > tj:
                        total += pair_loss(si - sj, hp)
                        count += 1
            per_list.append(total / count if count else 0.0)
            pairs.append(float(count))
        counts = [p > 0 for p in pairs]
        return ref_reduce_lists(
            per_list,
            counts,
            reduction,
            sample_weight,
            denominators=pairs if normalization == "pairs" else None,
        )

    return reference


def hinge(d: float, hp: dict[str, Any]) -> float:
    return max(0.0, hp.get("margin", 1.0) - d)


def logistic(d: float, hp: dict[str, Any]) -> float:
    z = -hp.get("sigma", 1.0) * d
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))  # log(1 + e^z), stably


# ---------------------------------------------------------------------------- inputs


def relevance(g: torch.Generator, *shape: int, levels: int = 3) -> Tensor:
    return torch.randint(0, levels, shape, generator=g).to(torch.float64)


def pairwise_samples(
    option: dict[str, Any], other: Optional[dict[str, Any]] = None
) -> Callable[[torch.Generator], list[Sample]]:
    """Samples shared by the pairwise losses; ``option`` and ``other`` set hyperparameters."""
    other = dict(normalization="lists", **option) if other is None else other

    def samples(g: torch.Generator) -> list[Sample]:
        mask = torch.ones(4, 6, dtype=torch.bool)
        mask[0, 4:] = False  # padding
        mask[1, 1:] = False  # one real item: no pair
        mask[2, :] = False  # fully masked list
        target = relevance(g, 4, 6)
        target[3] = 2.0  # all relevances equal: no pair
        target[3, 5] = 0.0  # ... but one: pairs with one item
        scores = randn(g, 4, 6, scale=2.0)
        group = torch.tensor([7, 2, 7, 9, 2, 2, 7, 9, 9, 2, 7])  # shuffled, ascending ids 2, 7, 9
        ties = torch.tensor([[1.0, 1.0, 1.0], [0.0, 3.0, 0.0]], dtype=torch.float64)
        return [
            Sample((randn(g, 3, 5), relevance(g, 3, 5)), note="default"),
            Sample((randn(g, 3, 5), relevance(g, 3, 5)), dict(option), note="option"),
            Sample(
                (scores, target),
                dict(mask=mask, sample_weight=rand_weight(g, 4)),
                note="padding+empty+weights",
            ),
            Sample(
                (scores, target),
                dict(mask=mask, sample_weight=rand_weight(g, 4), **other),
                note="padding+other-option",
            ),
            Sample(
                (randn(g, 11), relevance(g, 11, levels=4)),
                dict(group=group, sample_weight=rand_weight(g, 3)),
                note="flat-shuffled-groups",
                none_shape=(3,),
            ),
            Sample(
                (randn(g, 11), relevance(g, 11, levels=4)),
                dict(group=group, sync="global", **option),
                note="sync=global (no process group: as local)",
                none_shape=(3,),
            ),
            Sample((randn(g, 2, 3), ties), note="ties+one-degenerate"),
            Sample((randn(g, 2, 3), torch.ones(2, 3, dtype=torch.float64)), note="all-degenerate"),
        ]

    return samples


def rand_weight(g: torch.Generator, n: int) -> Tensor:
    return 0.25 + torch.rand(n, generator=g, dtype=torch.float64)


def pairwise_extremes() -> list[Sample]:
    big = torch.tensor([[1e4, -1e4, 0.0, 3e4], [-30.0, 30.0, 0.0, 0.0]], dtype=torch.float64)
    rel = torch.tensor([[0.0, 2.0, 1.0, 1.0], [0.0, 1.0, 2.0, 0.0]], dtype=torch.float64)
    pad = torch.tensor([[1.0, float("nan"), float("inf")]], dtype=torch.float64)
    return [
        Sample((big, rel), note="|s|=1e4"),
        Sample(
            (pad, torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64)),
            dict(mask=torch.tensor([[True, False, False]])),
            note="nan/inf in padding",
        ),
    ]


def pairwise_errors(
    fn: str, bad_options: list[tuple[dict[str, Any], type, str]]
) -> list[ErrorInput]:
    s, t = torch.randn(3, 4), torch.rand(3, 4)
    flat_s, flat_t = torch.randn(5), torch.rand(5)
    grp = torch.tensor([0, 0, 1, 1, 1])
    out = [
        ErrorInput(
            (torch.randn(6, 1), torch.randn(6)),
            {},
            ValueError,
            rf"{fn}\(\): `target` must have the same shape as `scores` \(6, 1\); got \(6,\)",
            "(B,1) vs (B,)",
        ),
        ErrorInput((s, t[:2]), {}, ValueError, r"`target` must have the same shape", "B mismatch"),
        ErrorInput(
            (s.long(), t), {}, TypeError, r"`scores` must be a floating-point tensor", "int scores"
        ),
        ErrorInput(
            (s, t.long()), {}, TypeError, r"`target` must be a floating-point tensor", "int target"
        ),
        ErrorInput((s.tolist(), t), {}, TypeError, r"`scores` must be a torch.Tensor", "list"),
        ErrorInput(
            (flat_s, flat_t), {}, ValueError, r"`scores` must have shape \(B, n\)", "1-D, no group"
        ),
        ErrorInput(
            (flat_s, flat_t),
            dict(group=grp.double()),
            TypeError,
            r"`group` must be an integer tensor",
            "float group",
        ),
        ErrorInput(
            (flat_s, flat_t),
            dict(group=grp[:4]),
            ValueError,
            r"`group` must have the same shape as `scores` \(5,\); got \(4,\)",
            "group shape",
        ),
        ErrorInput(
            (s, t),
            dict(group=torch.zeros(3, 4, dtype=torch.long)),
            ValueError,
            r"`scores` must be 1-D",
            "2-D + group",
        ),
        ErrorInput(
            (flat_s, flat_t),
            dict(group=grp, mask=torch.ones(5, dtype=torch.bool)),
            ValueError,
            r"`mask` must be None when `group` is given",
            "mask + group",
        ),
        ErrorInput(
            (s, t),
            dict(mask=torch.ones(3, 4)),
            TypeError,
            r"`mask` must be a boolean tensor",
            "float mask",
        ),
        ErrorInput(
            (s, t),
            dict(mask=torch.ones(3, 3, dtype=torch.bool)),
            ValueError,
            r"`mask` must have the same shape as `scores` \(3, 4\)",
            "mask shape",
        ),
        ErrorInput(
            (s, torch.full((3, 4), float("nan"))),
            {},
            ValueError,
            r"`target` must have values in",
            "nan target",
        ),
        ErrorInput(
            (s, t),
            dict(sample_weight=torch.ones(4)),
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(3,\)",
            "weight shape",
        ),
        ErrorInput(
            (flat_s, flat_t),
            dict(group=grp, sample_weight=torch.ones(5)),
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(2,\)",
            "weight per item, not per group",
        ),
        ErrorInput(
            (s, t),
            dict(sample_weight=-torch.ones(3)),
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative weight",
        ),
        ErrorInput(
            (s, t),
            dict(reduction="meen"),
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'",
            "reduction typo",
        ),
        ErrorInput(
            (s, t),
            dict(sync="globl"),
            ValueError,
            r"`sync` must be one of 'local' \| 'global'; got 'globl'",
            "sync typo",
        ),
    ]
    negative = t.clone()
    negative[1, 2] = -1.0
    for kwargs, exc, match in bad_options:
        if "target" in kwargs:  # a bad relevance value, not a keyword
            out.append(ErrorInput((s, negative), {}, exc, match, "negative relevance"))
        else:
            out.append(ErrorInput((s, t), kwargs, exc, match, f"bad {next(iter(kwargs))}"))
    return out


NORMALIZATION_TYPO = (
    dict(normalization="pair"),
    ValueError,
    r"`normalization` must be one of 'pairs' \| 'lists'; got 'pair'. Did you mean 'pairs'\?",
)


def lambda_reference(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Optional[Tensor] = None,
    group: Optional[Tensor] = None,
    weighting: str = "ndcg_loss2pp",
    k: Optional[int] = None,
    sigma: float = 1.0,
    mu: float = 10.0,
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """LambdaLoss from the paper's formulas, one list and one pair at a time."""
    per_list, counts = [], []
    for items in ref_lists(scores, target, mask, group):
        size = len(items)
        order = sorted(range(size), key=lambda i: -items[i][0])  # stable: ties by position
        rank = [0] * size
        for position, i in enumerate(order):
            rank[i] = position + 1
        ideal = sorted((2.0**t - 1.0 for _, t, _ in items), reverse=True)
        cut = size if k is None else min(k, size)
        idcg = math.fsum(ideal[p] / math.log2(p + 2.0) for p in range(cut))
        if idcg == 0:
            per_list.append(0.0)
            counts.append(False)
            continue
        gain = [(2.0**t - 1.0) / idcg for _, t, _ in items]
        disc = [math.log2(1.0 + r) for r in rank]
        total = 0.0
        for i in range(size):
            for j in range(size):
                if i == j or (k is not None and (rank[i] > k or rank[j] > k)):
                    continue
                if weighting == "ndcg_loss1":
                    w = gain[i] / disc[i]
                else:
                    if items[i][1] <= items[j][1]:
                        continue
                    dg = abs(gain[i] - gain[j])
                    gap = abs(rank[i] - rank[j])
                    loss2 = abs(1.0 / math.log2(1.0 + gap) - 1.0 / math.log2(2.0 + gap)) * dg
                    lambdarank = abs(1.0 / disc[i] - 1.0 / disc[j]) * dg
                    w = {
                        "ndcg_loss2": loss2,
                        "lambdarank": lambdarank,
                        "ndcg_loss2pp": mu * loss2 + lambdarank,
                    }[weighting]
                # -log2 sigmoid(sigma d) = log2(1 + exp(-sigma d))
                total += w * logistic(items[i][0] - items[j][0], {"sigma": sigma}) / math.log(2.0)
        per_list.append(total)
        counts.append(True)
    return ref_reduce_lists(per_list, counts, reduction, sample_weight)


def lambda_samples(g: torch.Generator) -> list[Sample]:
    base = pairwise_samples(
        {"weighting": "ndcg_loss1"}, {"weighting": "lambdarank", "k": 3, "sigma": 1.5}
    )(g)
    group = torch.tensor([4, 1, 4, 1, 1, 4, 6, 6])
    no_relevant = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0]], dtype=torch.float64)
    return [
        *base,
        Sample(
            (randn(g, 3, 6), relevance(g, 3, 6, levels=5)),
            dict(weighting="ndcg_loss2", k=2),
            note="loss2@2",
        ),
        Sample(
            (randn(g, 8), relevance(g, 8)),
            dict(group=group, mu=3.0, sigma=2.0, sample_weight=rand_weight(g, 3)),
            note="flat-2pp-mu3",
            none_shape=(3,),
        ),
        Sample((randn(g, 2, 3), no_relevant), dict(k=1), note="idcg0+k1"),
    ]


def per_list_shape(scores: Tensor, target: Tensor) -> tuple[int, ...]:
    return (scores.shape[0],)


CASES = [
    Case(
        key="pairwise_hinge",
        module=PairwiseHingeLoss,
        reference=pairwise_reference(hinge),
        samples=pairwise_samples({"margin": 0.5}),
        errors=lambda: pairwise_errors(
            "pairwise_hinge_loss",
            [
                (dict(margin=-1.0), ValueError, r"`margin` must be in \[0, inf\); got -1.0"),
                (dict(margin=float("inf")), ValueError, r"`margin` must be a finite number"),
                (dict(margin="1"), TypeError, r"`margin` must be a real number; got str"),
                NORMALIZATION_TYPO,
            ],
        ),
        extremes=pairwise_extremes,
        none_shape=per_list_shape,
    ),
    Case(
        key="ranknet",
        module=RankNetLoss,
        reference=pairwise_reference(logistic),
        samples=pairwise_samples({"sigma": 2.5}),
        errors=lambda: pairwise_errors(
            "ranknet_loss",
            [
                (dict(sigma=0.0), ValueError, r"`sigma` must be in \(0, inf\); got 0.0"),
                (dict(sigma=float("nan")), ValueError, r"`sigma` must be a finite number"),
                (dict(sigma=True), TypeError, r"`sigma` must be a real number; got bool"),
                NORMALIZATION_TYPO,
            ],
        ),
        extremes=pairwise_extremes,
        none_shape=per_list_shape,
    ),
    Case(
        key="lambda_loss",
        module=LambdaLoss,
        reference=lambda_reference,
        samples=lambda_samples,
        errors=lambda: pairwise_errors(
            "lambda_loss",
            [
                (
                    dict(weighting="ndcg_loss3"),
                    ValueError,
                    r"`weighting` must be one of .*Did you mean",
                ),
                (dict(k=0), ValueError, r"`k` must be an int >= 1 or None; got 0"),
                (dict(k=2.0), TypeError, r"`k` must be an int >= 1 or None; got float"),
                (dict(sigma=-1.0), ValueError, r"`sigma` must be in \(0, inf\)"),
                (dict(mu=-0.5), ValueError, r"`mu` must be in \[0, inf\)"),
                (
                    dict(target=None),
                    ValueError,
                    r"`target` must have values in \[0, inf\); got 1 value\(s\) outside, e.g. -1",
                ),
            ],
        ),
        extremes=pairwise_extremes,
        none_shape=per_list_shape,
    ),
]
