"""Ranking metrics: float64 references, scikit-learn and torchmetrics, layouts, streaming, DDP."""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional

import pytest
import torch
from torchmetrics.retrieval import (
    RetrievalMAP,
    RetrievalMRR,
    RetrievalNormalizedDCG,
    RetrievalPrecision,
)

from losslab.metrics.forecasting import forecasting_metrics
from losslab.metrics.ranking import (
    RankingMAP,
    RankingMRR,
    RankingNDCG,
    RankingPrecision,
    ranking_metrics,
)
from tests._distributed import run_workers

SIZES = (1, 7, 20, 3, 11, 2)  # groups per batch: uneven on purpose


# ----------------------------------------------------------------- independent reference
def _ref_list(
    scores: list[float], target: list[float], *, k: int, gain: str, ties: str
) -> Optional[dict[str, float]]:
    """Per-list values written from the definitions (Python floats); None: no relevant item."""
    n = len(scores)
    if ties == "stable":
        order = sorted(range(n), key=lambda i: (-scores[i], i))
    else:
        order = sorted(range(n), key=lambda i: (-scores[i], target[i], i))
    ranked = [target[i] for i in order]
    rel = [1 if y > 0 else 0 for y in ranked]
    if sum(rel) == 0:
        return None
    g = (lambda y: 2.0**y - 1.0) if gain == "exponential" else (lambda y: y)
    dcg = sum(g(y) / math.log2(r + 2) for r, y in enumerate(ranked[:k]))
    ideal = sorted(ranked, reverse=True)
    idcg = sum(g(y) / math.log2(r + 2) for r, y in enumerate(ideal[:k]))
    first = rel.index(1) + 1
    hits, ap = 0, 0.0
    for r, is_rel in enumerate(rel, start=1):
        if is_rel:
            hits += 1
            ap += hits / r
    return {
        "ndcg": dcg / idcg,
        "mrr": 1.0 / first,
        "map": ap / sum(rel),
        "precision": sum(rel[:k]) / k,
    }


def _reference(
    lists: list[tuple[list[float], list[float]]], *, k: int, gain: str, ties: str, empty: str
) -> dict[str, float]:
    values: dict[str, list[float]] = {"ndcg": [], "mrr": [], "map": [], "precision": []}
    for scores, target in lists:
        per = _ref_list(scores, target, k=k, gain=gain, ties=ties)
        if per is None:
            if empty == "skip":
                continue
            per = dict.fromkeys(values, 0.0)
        for name in values:
            values[name].append(per[name])
    return {name: (sum(v) / len(v) if v else math.nan) for name, v in values.items()}


# ----------------------------------------------------------------------------- data
def _make_lists(
    seed: int, n_lists: int = 44, *, ties: bool = False, positive: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Lists of 1..12 items, graded relevance 0..3, about one in five without a relevant item."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_lists):
        n = int(torch.randint(1, 13, (1,), generator=gen))
        if positive:
            scores = torch.rand(n, generator=gen, dtype=torch.float64) + 0.01
        else:
            scores = torch.randn(n, generator=gen, dtype=torch.float64)
        if ties:  # a few distinct values: many ties
            scores = torch.round(scores * 2.0) / 2.0
        target = torch.randint(0, 4, (n,), generator=gen).to(torch.float64)
        target = torch.where(torch.rand(n, generator=gen) < 0.4, 0.0, target)
        if i % 5 == 0:
            target = torch.zeros(n, dtype=torch.float64)
        out.append((scores, target))
    return out


def _as_py(lists: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[list[float], list[float]]]:
    return [(s.tolist(), t.tolist()) for s, t in lists]


def _flat_batches(
    lists: list[tuple[torch.Tensor, torch.Tensor]],
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Flat (scores, target, group) batches of SIZES groups; items shuffled across groups, but
    each group's items keep their order (the within-list order that breaks ties)."""
    gen = torch.Generator().manual_seed(seed)
    batches, start, j = [], 0, 0
    while start < len(lists):
        chunk = lists[start : start + SIZES[j % len(SIZES)]]
        ids = torch.cat(
            [torch.full((len(s),), 1000 - 3 * (start + i)) for i, (s, _) in enumerate(chunk)]
        )
        scores = torch.cat([s for s, _ in chunk]).to(dtype)
        target = torch.cat([t for _, t in chunk]).to(dtype)
        perm = _keep_group_order(torch.randperm(len(ids), generator=gen), ids)
        batches.append((scores[perm], target[perm], ids[perm]))
        start += len(chunk)
        j += 1
    return batches


def _keep_group_order(perm: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Reassign positions so that every group's items appear in their original order."""
    out = perm.clone()
    for gid in ids.unique():
        slots = (ids[perm] == gid).nonzero().flatten()  # where the group's items land
        out[slots] = (ids == gid).nonzero().flatten()  # original items, in original order
    return out


def _padded(
    lists: list[tuple[torch.Tensor, torch.Tensor]], seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, n) padded lists with padding scattered inside the rows (items keep their order)."""
    gen = torch.Generator().manual_seed(seed)
    width = max(len(s) for s, _ in lists) + 3
    b = len(lists)
    scores = torch.full((b, width), float("nan"), dtype=torch.float64)  # padding is never read
    target = torch.full((b, width), -1.0, dtype=torch.float64)
    mask = torch.zeros((b, width), dtype=torch.bool)
    for i, (s, t) in enumerate(lists):
        slots = torch.randperm(width, generator=gen)[: len(s)].sort().values
        scores[i, slots], target[i, slots], mask[i, slots] = s, t, True
    return scores, target, mask


def _metrics(**options: Any) -> dict[str, Any]:
    k = options.pop("k", 3)
    gain = options.pop("gain", "exponential")
    return {
        "ndcg": RankingNDCG(k=k, gain=gain, **options),
        "mrr": RankingMRR(**options),
        "map": RankingMAP(**options),
        "precision": RankingPrecision(k=k, **options),
    }


def _values(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(m.compute()) for name, m in metrics.items()}


def _assert_close(got: dict[str, float], want: dict[str, float], tol: float) -> None:
    assert got.keys() == want.keys()
    for name in want:
        if math.isnan(want[name]):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(want[name], abs=tol, rel=tol), name


# ------------------------------------------------------------------------ references
@pytest.mark.parametrize(
    ("gain", "ties", "empty", "k"),
    [
        ("exponential", "stable", "skip", 3),
        ("linear", "pessimistic", "zero", 5),
        ("exponential", "pessimistic", "skip", 1),
        ("linear", "stable", "zero", 20),  # k longer than every list
    ],
)
def test_streaming_equals_float64_reference(gain: str, ties: str, empty: str, k: int) -> None:
    lists = _make_lists(3, ties=True)
    want = _reference(_as_py(lists), k=k, gain=gain, ties=ties, empty=empty)
    streamed = _metrics(k=k, gain=gain, ties=ties, empty=empty)
    one_shot = _metrics(k=k, gain=gain, ties=ties, empty=empty)
    for m in [*streamed.values(), *one_shot.values()]:
        m.set_dtype(torch.float64)
    batches = _flat_batches(lists)
    assert len(batches) > 4
    for scores, target, group in batches:
        for m in streamed.values():
            m.update(scores, target, group=group)
    all_scores, all_target, all_group = (torch.cat(x) for x in zip(*batches))
    for m in one_shot.values():
        m.update(all_scores, all_target, group=all_group)
    _assert_close(_values(streamed), want, 1e-12)
    _assert_close(_values(one_shot), want, 1e-12)


def test_float32_inputs_match_reference() -> None:
    lists = [(s.float().double(), t) for s, t in _make_lists(4)]
    want = _reference(_as_py(lists), k=3, gain="exponential", ties="stable", empty="skip")
    metrics = _metrics()
    for scores, target, group in _flat_batches(lists, dtype=torch.float32):
        assert scores.dtype == torch.float32
        for m in metrics.values():
            m.update(scores, target, group=group)
    got = _values(metrics)
    for value in metrics.values():
        assert value.compute().dtype == torch.float32
    _assert_close(got, want, 1e-6)


def test_padded_and_flat_layouts_agree() -> None:
    lists = _make_lists(5, ties=True)
    scores, target, mask = _padded(lists)
    for ties in ("stable", "pessimistic"):
        flat = _metrics(ties=ties, empty="zero")
        padded = _metrics(ties=ties, empty="zero")
        for s, t, g in _flat_batches(lists):
            for m in flat.values():
                m.update(s, t, group=g)
        for lo, hi in ((0, 1), (1, 9), (9, 30), (30, len(lists))):  # uneven row batches
            for m in padded.values():
                m.update(scores[lo:hi], target[lo:hi], mask=mask[lo:hi])
        _assert_close(_values(padded), _values(flat), 1e-7)


def test_fully_masked_rows_are_not_lists() -> None:
    scores = torch.tensor([[0.3, 0.2], [0.1, 0.4]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[True, True], [False, False]])
    metric = RankingMRR(empty="zero")
    metric.update(scores, target, mask=mask)
    assert metric.count.item() == 1.0  # the empty row is no list, even under "zero"
    assert metric.compute().item() == 1.0


@pytest.mark.parametrize("k", [1, 3, 8])
def test_ndcg_matches_sklearn(k: int) -> None:
    from sklearn.metrics import ndcg_score  # here: spawned DDP workers import this module

    gen = torch.Generator().manual_seed(k)
    target = torch.randint(0, 4, (37, 8), generator=gen).to(torch.float64)
    target[::6] = 0.0  # lists without a relevant item: sklearn scores them 0
    scores = torch.randn(37, 8, generator=gen, dtype=torch.float64)
    for gain, sk_true in (("linear", target), ("exponential", torch.exp2(target) - 1.0)):
        want = ndcg_score(sk_true.numpy(), scores.numpy(), k=k)
        metric = RankingNDCG(k=k, gain=gain, empty="zero")
        metric.set_dtype(torch.float64)
        for lo, hi in ((0, 1), (1, 8), (8, 30), (30, 37)):
            metric.update(scores[lo:hi], target[lo:hi])
        assert metric.compute().item() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(("empty", "action"), [("skip", "skip"), ("zero", "neg")])
def test_matches_torchmetrics_retrieval(empty: str, action: str) -> None:
    # torchmetrics' MAP, MRR and precision count a relevant item only where its score is > 0
    # (`torch.where(preds > 0, target, 0)`): positive scores keep the comparison meaningful.
    lists = _make_lists(7, positive=True)
    k = 4
    ours = _metrics(k=k, gain="linear", empty=empty)
    theirs = {
        "ndcg": RetrievalNormalizedDCG(top_k=k, empty_target_action=action),
        "mrr": RetrievalMRR(empty_target_action=action),
        "map": RetrievalMAP(empty_target_action=action),
        "precision": RetrievalPrecision(top_k=k, empty_target_action=action),
    }
    for scores, target, group in _flat_batches(lists):
        for m in ours.values():
            m.update(scores, target, group=group)
        for name, m in theirs.items():
            # NDCG takes graded relevance, the others binary: relevant means target > 0.
            labels = target.long() if name == "ndcg" else (target > 0).long()
            m.update(scores.float(), labels, indexes=group)
    want = {name: float(m.compute()) for name, m in theirs.items()}
    _assert_close(_values(ours), want, 1e-6)


# ------------------------------------------------------------------------ conventions
def test_tie_breaking_is_documented_and_deterministic() -> None:
    scores = torch.tensor([[0.5, 0.5, 0.5]])
    relevant_first = torch.tensor([[1.0, 0.0, 0.0]])
    relevant_last = torch.tensor([[0.0, 0.0, 1.0]])
    stable, pessimistic = RankingMRR(ties="stable"), RankingMRR(ties="pessimistic")
    stable.update(scores, relevant_first)
    pessimistic.update(scores, relevant_first)
    assert stable.compute().item() == 1.0  # input order: the relevant item ranks first
    assert pessimistic.compute().item() == pytest.approx(1.0 / 3.0)  # the tie earns nothing
    stable.reset()
    stable.update(scores, relevant_last)
    assert stable.compute().item() == pytest.approx(1.0 / 3.0)
    # Ties only among equal scores: a strictly better score still wins.
    pessimistic.reset()
    pessimistic.update(torch.tensor([[0.5, 0.9, 0.5]]), torch.tensor([[2.0, 0.0, 1.0]]))
    assert pessimistic.compute().item() == pytest.approx(0.5)


def test_precision_divides_by_k_for_short_lists() -> None:
    metric = RankingPrecision(k=5)
    metric.update(torch.tensor([[0.2, 0.1]]), torch.tensor([[1.0, 1.0]]))
    assert metric.compute().item() == pytest.approx(0.4)


def test_empty_policy_and_all_skipped_warning() -> None:
    scores = torch.tensor([[0.9, 0.1], [0.3, 0.8]])
    target = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    skip, zero = RankingMAP(empty="skip"), RankingMAP(empty="zero")
    skip.update(scores, target)
    zero.update(scores, target)
    assert skip.compute().item() == pytest.approx(0.5)
    assert zero.compute().item() == pytest.approx(0.25)
    only_empty = RankingNDCG(k=2)
    only_empty.update(scores[1:], target[1:])
    with pytest.warns(UserWarning, match=r"RankingNDCG\.compute\(\): no list with a relevant"):
        assert math.isnan(only_empty.compute().item())


def test_group_ids_do_not_span_update_calls() -> None:
    metric = RankingMRR()
    metric.update(torch.tensor([0.9, 0.1]), torch.tensor([0.0, 1.0]), group=torch.tensor([4, 4]))
    metric.update(torch.tensor([0.5]), torch.tensor([1.0]), group=torch.tensor([4]))
    assert metric.count.item() == 2.0  # group 4 in two calls: two lists
    assert metric.compute().item() == pytest.approx((0.5 + 1.0) / 2)


def test_empty_batches_are_no_ops() -> None:
    metric = RankingNDCG()
    metric.update(torch.zeros(0), torch.zeros(0), group=torch.zeros(0, dtype=torch.long))
    metric.update(torch.zeros(0, 4), torch.zeros(0, 4))
    assert metric.count.item() == 0.0


# --------------------------------------------------------------------- torchmetrics API
def test_compute_before_update_reset_and_state_dict_round_trip() -> None:
    batches = _flat_batches(_make_lists(11))
    fresh = ranking_metrics(k=3)
    with pytest.warns(UserWarning, match="before the ``update``"):
        values = fresh.compute()
    assert all(math.isnan(v.item()) for v in values.values())

    full = ranking_metrics(k=3, ties="pessimistic", empty="zero")
    for s, t, g in batches:
        full.update(s, t, group=g)
    want = {name: v.item() for name, v in full.compute().items()}

    first = ranking_metrics(k=3, ties="pessimistic", empty="zero")
    for s, t, g in batches[:3]:
        first.update(s, t, group=g)
    saved = first.state_dict()
    assert any(key.endswith("total") for key in saved)
    assert not any(key.endswith("config") for key in saved)
    resumed = ranking_metrics(k=3, ties="pessimistic", empty="zero")
    resumed.load_state_dict(saved)
    for s, t, g in batches[3:]:
        resumed.update(s, t, group=g)
    got = {name: v.item() for name, v in resumed.compute().items()}
    _assert_close(got, want, 1e-7)

    full.reset()
    for s, t, g in batches:
        full.update(s, t, group=g)
    _assert_close({name: v.item() for name, v in full.compute().items()}, want, 0.0)


def test_collection_keys_prefix_and_kwargs() -> None:
    metrics = ranking_metrics(k=5, prefix="val/")
    assert sorted(metrics.keys()) == ["val/map", "val/mrr", "val/ndcg@5", "val/precision@5"]
    scores, target, mask = _padded(_make_lists(2, n_lists=6))
    metrics.update(scores, target, mask=mask)  # `mask` reaches every metric
    assert all(not math.isnan(v.item()) for v in metrics.compute().values())


def test_collection_never_merges_different_metrics() -> None:
    # First batch: only lists without a relevant item, every metric's sums are 0 / 0. Without
    # the `config` state MetricCollection would merge all four into one compute group.
    empty_first = (torch.tensor([[0.3, 0.2, 0.1]]), torch.zeros(1, 3))
    later = (
        torch.tensor([[0.3, 0.2, 0.1], [0.1, 0.9, 0.5]]),
        torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]]),
    )
    collection = ranking_metrics(k=2)
    single = {
        "ndcg@2": RankingNDCG(k=2),
        "mrr": RankingMRR(),
        "map": RankingMAP(),
        "precision@2": RankingPrecision(k=2),
    }
    for scores, target in (empty_first, later):
        collection.update(scores, target)
        for m in single.values():
            m.update(scores, target)
    got = {name: v.item() for name, v in collection.compute().items()}
    assert len(set(got.values())) == 4
    _assert_close(got, {name: m.compute().item() for name, m in single.items()}, 0.0)


def test_set_dtype_keeps_float64_sums() -> None:
    metric = RankingMAP()
    metric.set_dtype(torch.float16)
    assert metric.total.dtype == torch.float64 and metric.count.dtype == torch.float64
    metric.update(torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([[1.0, 0.0, 1.0]]))
    assert metric.compute().dtype == torch.float16


# ----------------------------------------------------------------------------- errors
_S, _T = torch.tensor([[0.3, 0.1]]), torch.tensor([[1.0, 0.0]])


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: RankingNDCG().update(torch.zeros(4, 1), torch.zeros(4)),
            ValueError,
            r"RankingNDCG\.update\(\): `target` must have the same shape as `scores` \(4, 1\); got \(4,\)",
        ),
        (
            lambda: RankingMRR().update(torch.zeros(2, 2, dtype=torch.long), _T),
            TypeError,
            r"RankingMRR\.update\(\): `scores` must be a floating-point tensor",
        ),
        (
            lambda: RankingMAP().update(_S, torch.ones(1, 2, dtype=torch.long)),
            TypeError,
            r"RankingMAP\.update\(\): `target` must be a floating-point tensor",
        ),
        (
            lambda: RankingMAP().update(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2)),
            ValueError,
            r"`scores` must have shape \(B, n\)",
        ),
        (
            lambda: RankingMAP().update(torch.zeros(3), torch.zeros(3), group=torch.zeros(3)),
            TypeError,
            r"`group` must be an integer tensor",
        ),
        (
            lambda: RankingMAP().update(
                torch.zeros(3), torch.zeros(3), group=torch.zeros(2, dtype=torch.long)
            ),
            ValueError,
            r"`group` must have the same shape as `scores`",
        ),
        (
            lambda: RankingMAP().update(
                torch.zeros(3),
                torch.zeros(3),
                group=torch.zeros(3, dtype=torch.long),
                mask=torch.ones(3, dtype=torch.bool),
            ),
            ValueError,
            r"`mask` must be None when `group` is given",
        ),
        (
            lambda: RankingPrecision().update(_S, _T, mask=torch.ones(1, 2)),
            TypeError,
            r"RankingPrecision\.update\(\): `mask` must be a boolean tensor",
        ),
        (
            lambda: RankingNDCG().update(_S, -_T),
            ValueError,
            r"RankingNDCG\.update\(\): `target` must have values in \[0, inf\)",
        ),
        (
            lambda: RankingNDCG().update(torch.tensor([[float("nan"), 0.1]]), _T),
            ValueError,
            r"RankingNDCG\.update\(\): `scores` must hold no NaN at real items \(a NaN score has no rank\); got 1 NaN",
        ),
        (lambda: RankingNDCG(k=0), ValueError, r"RankingNDCG\(\): `k` must be an int >= 1 or None"),
        (lambda: RankingPrecision(k=None), TypeError, r"RankingPrecision\(\): `k` must be an int"),
        (lambda: RankingPrecision(k=2.0), TypeError, r"`k` must be an int >= 1; got float"),
        (
            lambda: RankingMRR(empty="skp"),
            ValueError,
            r"`empty` must be one of 'skip' \| 'zero'; got 'skp'\. Did you mean 'skip'\?",
        ),
        (lambda: RankingNDCG(gain="log2"), ValueError, r"`gain` must be one of 'exponential'"),
        (lambda: RankingMAP(ties="random"), ValueError, r"`ties` must be one of 'stable'"),
        (lambda: RankingMAP(validate=1), TypeError, r"`validate` must be True or False"),
        (lambda: ranking_metrics(k=0), ValueError, r"ranking_metrics\(\): `k` must be an int >= 1"),
        (lambda: ranking_metrics(prefix=3), TypeError, r"ranking_metrics\(\): `prefix` must be"),
        (lambda: ranking_metrics(empty="neg"), ValueError, r"ranking_metrics\(\): `empty`"),
    ],
)
def test_errors(make: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        make()


def test_validate_false_skips_value_checks() -> None:
    metric = RankingMRR(validate=False)
    metric.update(torch.tensor([[0.3, 0.1]]), torch.tensor([[-1.0, 1.0]]))  # -1: not relevant
    assert metric.compute().item() == pytest.approx(0.5)


# ------------------------------------------------------------------------ distributed
def _fc_batch(seed: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(b, 5, generator=gen, dtype=torch.float64) + 3.0
    spread = torch.rand(b, 5, 1, generator=gen, dtype=torch.float64)
    preds = target.unsqueeze(-1) + torch.randn(b, 5, 1, generator=gen, dtype=torch.float64)
    preds = preds + spread * torch.tensor([-1.3, 0.0, 1.3], dtype=torch.float64)
    history = torch.randn(b, 8, generator=gen, dtype=torch.float64).cumsum(1)
    return preds, target, history


def _collections() -> tuple[Any, Any]:
    return ranking_metrics(k=3), forecasting_metrics(quantiles=(0.1, 0.5, 0.9), m=2)


def _feed(rank_batches: list, fc_batches: list, collections: tuple[Any, Any]) -> None:
    ranking, forecasting = collections
    for s, t, g in rank_batches:
        ranking.update(s, t, group=g)
    for p, y, h in fc_batches:
        forecasting.update(p, y, insample=h)


def _compute(collections: tuple[Any, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for collection in collections:
        out.update({name: float(v) for name, v in collection.compute().items()})
    return out


def _ddp_worker(rank: int, world: int, rank_batches: list, fc_batches: list) -> dict[str, Any]:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank 1 computes before any update: expected warning
        # (a) rank 0 holds every batch, rank 1 none (it never calls update).
        idle = _collections()
        if rank == 0:
            _feed(rank_batches, fc_batches, idle)
        # (b) uneven shards on both ranks.
        split = _collections()
        _feed(rank_batches[rank::world], fc_batches[rank::world], split)
        return {"idle": _compute(idle), "split": _compute(split)}


@pytest.mark.slow
def test_distributed_two_processes_match_one() -> None:
    rank_batches = _flat_batches(_make_lists(13, n_lists=30))
    fc_batches = [_fc_batch(i, b) for i, b in enumerate((1, 7, 16, 3, 5))]
    single = _collections()
    _feed(rank_batches, fc_batches, single)
    want = _compute(single)
    assert len(want) == 9 and not any(math.isnan(v) for v in want.values())
    results = run_workers(2, _ddp_worker, rank_batches, fc_batches, timeout=90)
    for result in results:
        for case in ("idle", "split"):
            got = result[case]
            assert got.keys() == want.keys()
            for name in want:
                assert got[name] == pytest.approx(want[name], rel=1e-6, abs=1e-7), (case, name)


# ------------------------------------------------------------------- merge_groups=True
def _merged(**options: Any) -> dict[str, Any]:
    metrics = _metrics(merge_groups=True, **options)
    for m in metrics.values():
        m.set_dtype(torch.float64)
    return metrics


def _split_items(
    lists: list[tuple[torch.Tensor, torch.Tensor]], cuts: tuple[int, ...], seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """All items as flat (scores, target, group), shuffled across groups (each group keeps its
    item order), then cut at item positions: most groups span two or more updates."""
    ids = torch.cat([torch.full((len(s),), 7 * i - 50) for i, (s, _) in enumerate(lists)])
    scores = torch.cat([s for s, _ in lists])
    target = torch.cat([t for _, t in lists])
    gen = torch.Generator().manual_seed(seed)
    perm = _keep_group_order(torch.randperm(len(ids), generator=gen), ids)
    scores, target, ids = scores[perm], target[perm], ids[perm]
    bounds = [0, *cuts, len(ids)]
    return [(scores[a:b], target[a:b], ids[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize(
    ("gain", "ties", "empty", "k"),
    [
        ("exponential", "stable", "skip", 3),
        ("linear", "pessimistic", "zero", 5),
        ("exponential", "pessimistic", "skip", 1),
        ("linear", "stable", "zero", 20),
    ],
)
def test_merge_groups_split_queries_equal_one_update_and_reference(
    gain: str, ties: str, empty: str, k: int
) -> None:
    lists = _make_lists(21, n_lists=30, ties=True)
    want = _reference(_as_py(lists), k=k, gain=gain, ties=ties, empty=empty)
    batches = _split_items(lists, cuts=(1, 9, 10, 40, 77, 130))
    spanning = sum(
        int(len(set(b[2].tolist()) & set(c[2].tolist())) > 0)
        for b, c in zip(batches[:-1], batches[1:])
    )
    assert spanning >= 4  # queries really are split over updates
    merged = _merged(k=k, gain=gain, ties=ties, empty=empty)
    streamed = _metrics(k=k, gain=gain, ties=ties, empty=empty)  # the default, for contrast
    for s, t, g in batches:
        for m in [*merged.values(), *streamed.values()]:
            m.update(s, t, group=g)
    one_update = _metrics(k=k, gain=gain, ties=ties, empty=empty)  # default mode, whole lists
    all_s, all_t, all_g = (torch.cat(x) for x in zip(*batches))
    for m in one_update.values():
        m.set_dtype(torch.float64)
        m.update(all_s, all_t, group=all_g)
    _assert_close(_values(merged), want, 1e-12)
    _assert_close(_values(merged), _values(one_update), 1e-12)
    assert _values(streamed) != _values(merged)  # today's mode counts each part as a list


def test_merge_groups_one_query_over_two_updates_by_hand() -> None:
    # One query: scores (0.9, 0.1 | 0.5), relevance (0, 1 | 2), split over two updates.
    first = (torch.tensor([0.9, 0.1]), torch.tensor([0.0, 1.0]), torch.tensor([4, 4]))
    second = (torch.tensor([0.5]), torch.tensor([2.0]), torch.tensor([4]))
    metrics = _merged(k=2)
    for s, t, g in (first, second):
        for m in metrics.values():
            m.update(s, t, group=g)
    # Rank order: 0.9 (rel 0), 0.5 (rel 2), 0.1 (rel 1).
    dcg = 3.0 / math.log2(3.0)
    idcg = 3.0 + 1.0 / math.log2(3.0)
    want = {"ndcg": dcg / idcg, "mrr": 0.5, "map": (1 / 2 + 2 / 3) / 2, "precision": 0.5}
    _assert_close(_values(metrics), want, 1e-15)
    for m in metrics.values():
        assert sorted(m.state_dict()) == ["group", "scores", "target"]


@pytest.mark.parametrize("empty", ["skip", "zero"])
def test_merge_groups_empty_policy_counts_merged_lists(empty: str) -> None:
    # Query 1 is split and has no relevant item; query 2 is split and has one.
    updates = [
        (torch.tensor([0.3, 0.8]), torch.tensor([0.0, 0.0]), torch.tensor([1, 2])),
        (torch.tensor([0.2, 0.9]), torch.tensor([0.0, 1.0]), torch.tensor([1, 2])),
    ]
    metric = RankingMRR(empty=empty, merge_groups=True)
    for s, t, g in updates:
        metric.update(s, t, group=g)
    # Query 2: 0.9 (relevant) first, RR 1; query 1 is skipped or counts 0.
    assert metric.compute().item() == (1.0 if empty == "skip" else 0.5)
    only_empty = RankingNDCG(merge_groups=True)
    only_empty.update(updates[0][0], updates[0][1], group=torch.tensor([1, 1]))
    only_empty.update(torch.tensor([0.4]), torch.tensor([0.0]), group=torch.tensor([1]))
    with pytest.warns(UserWarning, match=r"RankingNDCG\.compute\(\): no list with a relevant"):
        assert math.isnan(only_empty.compute().item())


def test_merge_groups_stable_ties_follow_update_order() -> None:
    tied_irrelevant = (torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor([9]))
    tied_relevant = (torch.tensor([0.5]), torch.tensor([1.0]), torch.tensor([9]))
    for order, stable_rr in (
        ((tied_irrelevant, tied_relevant), 0.5),
        ((tied_relevant, tied_irrelevant), 1.0),
    ):
        stable = RankingMRR(merge_groups=True)
        pessimistic = RankingMRR(ties="pessimistic", merge_groups=True)
        for s, t, g in order:
            stable.update(s, t, group=g)
            pessimistic.update(s, t, group=g)
        assert stable.compute().item() == stable_rr  # the earlier update ranks first
        assert pessimistic.compute().item() == 0.5  # a tie never earns credit


@pytest.mark.parametrize("k", [1, 3, 8])
def test_merge_groups_ndcg_matches_sklearn(k: int) -> None:
    from sklearn.metrics import ndcg_score

    gen = torch.Generator().manual_seed(100 + k)
    target = torch.randint(0, 4, (23, 8), generator=gen).to(torch.float64)
    target[::5] = 0.0
    scores = torch.randn(23, 8, generator=gen, dtype=torch.float64)  # no ties
    lists = list(zip(scores.unbind(0), target.unbind(0)))
    batches = _split_items(lists, cuts=(5, 50, 51, 120), seed=k)
    for gain, sk_true in (("linear", target), ("exponential", torch.exp2(target) - 1.0)):
        want = ndcg_score(sk_true.numpy(), scores.numpy(), k=k)
        metric = RankingNDCG(k=k, gain=gain, empty="zero", merge_groups=True)
        for s, t, g in batches:
            metric.update(s.float(), t.float(), group=g.int())  # stored as float64 / int64
        assert metric.compute().item() == pytest.approx(want, abs=1e-6)
        assert all(x.dtype == torch.float64 for x in metric.scores + metric.target)
        assert all(x.dtype == torch.int64 for x in metric.group)


def test_merge_groups_matches_torchmetrics_retrieval() -> None:
    lists = _make_lists(8, n_lists=25, positive=True)
    batches = _split_items(lists, cuts=(3, 30, 31, 90))
    ours = _merged(k=4, gain="linear", empty="skip")
    # torchmetrics also keeps every item and groups by `indexes` at compute().
    theirs = {
        "ndcg": RetrievalNormalizedDCG(top_k=4, empty_target_action="skip"),
        "mrr": RetrievalMRR(empty_target_action="skip"),
        "map": RetrievalMAP(empty_target_action="skip"),
        "precision": RetrievalPrecision(top_k=4, empty_target_action="skip"),
    }
    for s, t, g in batches:
        for m in ours.values():
            m.update(s, t, group=g)
        for name, m in theirs.items():
            labels = t.long() if name == "ndcg" else (t > 0).long()
            m.update(s.float(), labels, indexes=g + 1000)  # ids must be >= 0
    _assert_close(_values(ours), {n: float(m.compute()) for n, m in theirs.items()}, 1e-6)


def test_merge_groups_collection_forward_reset_and_state_dict() -> None:
    batches = _split_items(_make_lists(31, n_lists=20, ties=True), cuts=(4, 33, 60))
    full = ranking_metrics(k=3, ties="pessimistic", empty="zero", merge_groups=True)
    for s, t, g in batches:
        full.update(s, t, group=g)
    want = {name: v.item() for name, v in full.compute().items()}
    assert len(set(want.values())) == 4  # same item states, but never one compute group
    singles = {
        "ndcg@3": RankingNDCG(k=3, ties="pessimistic", empty="zero", merge_groups=True),
        "mrr": RankingMRR(ties="pessimistic", empty="zero", merge_groups=True),
        "map": RankingMAP(ties="pessimistic", empty="zero", merge_groups=True),
        "precision@3": RankingPrecision(k=3, ties="pessimistic", empty="zero", merge_groups=True),
    }
    for s, t, g in batches:
        for m in singles.values():
            m.update(s, t, group=g)
    _assert_close({n: m.compute().item() for n, m in singles.items()}, want, 0.0)

    first = ranking_metrics(k=3, ties="pessimistic", empty="zero", merge_groups=True)
    for s, t, g in batches[:2]:
        first.update(s, t, group=g)
    saved = first.state_dict()
    assert any(key.endswith("scores") for key in saved)
    resumed = ranking_metrics(k=3, ties="pessimistic", empty="zero", merge_groups=True)
    resumed.load_state_dict(saved)
    for s, t, g in batches[2:]:
        resumed.update(s, t, group=g)
    _assert_close({n: v.item() for n, v in resumed.compute().items()}, want, 0.0)

    full.reset()
    for m in full.values():
        assert m.scores == [] and m.target == [] and m.group == []
    values = [full(s, t, group=g) for s, t, g in batches]  # forward: this batch's own lists
    alone = ranking_metrics(k=3, ties="pessimistic", empty="zero", merge_groups=True)
    alone.update(*batches[-1][:2], group=batches[-1][2])
    _assert_close(
        {n: v.item() for n, v in values[-1].items()},
        {n: v.item() for n, v in alone.compute().items()},
        0.0,
    )
    _assert_close({n: v.item() for n, v in full.compute().items()}, want, 0.0)


def test_merge_groups_config_tag_and_default_states() -> None:
    streaming, merging = RankingMAP(), RankingMAP(merge_groups=True)
    assert not torch.equal(streaming.config_tag, merging.config_tag)
    assert sorted(streaming.state_dict()) == ["count", "total"]  # the default is unchanged
    assert repr(merging) == "RankingMAP(empty='skip', ties='stable', merge_groups=True)"
    assert repr(streaming) == "RankingMAP(empty='skip', ties='stable')"
    merging.set_dtype(torch.float16)
    merging.update(
        torch.tensor([0.9, 0.5, 0.1]),
        torch.tensor([1.0, 0.0, 1.0]),
        group=torch.zeros(3, dtype=torch.long),
    )
    assert merging.scores[0].dtype == torch.float64
    assert merging.compute().dtype == torch.float16
    merging.update(torch.zeros(0), torch.zeros(0), group=torch.zeros(0, dtype=torch.long))
    assert len(merging.scores) == 1  # an empty batch is a no-op


_G3 = torch.zeros(3, dtype=torch.long)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: RankingNDCG(merge_groups=True).update(_S, _T),
            ValueError,
            r"RankingNDCG\.update\(\): `group` must be given when merge_groups=True "
            r"\(merge_groups needs group ids",
        ),
        (
            lambda: RankingMAP(merge_groups=True).update(
                _S, _T, mask=torch.ones(1, 2, dtype=torch.bool)
            ),
            ValueError,
            r"RankingMAP\.update\(\): `group` must be given when merge_groups=True",
        ),
        (
            lambda: RankingMRR(merge_groups=1),
            TypeError,
            r"RankingMRR\(\): `merge_groups` must be True or False; got 1",
        ),
        (
            lambda: RankingNDCG(merge_groups="yes"),
            TypeError,
            r"`merge_groups` must be True or False",
        ),
        (
            lambda: RankingPrecision(merge_groups=None),
            TypeError,
            r"`merge_groups` must be True or False",
        ),
        (lambda: RankingMAP(merge_groups=0), TypeError, r"`merge_groups` must be True or False"),
        (
            lambda: ranking_metrics(merge_groups=1),
            TypeError,
            r"ranking_metrics\(\): `merge_groups` must be True or False",
        ),
        (
            lambda: RankingNDCG(merge_groups=True).update(
                torch.zeros(3), -torch.ones(3), group=_G3
            ),
            ValueError,
            r"RankingNDCG\.update\(\): `target` must have values in \[0, inf\)",
        ),
        (
            lambda: RankingMRR(merge_groups=True).update(
                torch.tensor([float("nan"), 0.0, 0.0]), torch.ones(3), group=_G3
            ),
            ValueError,
            r"RankingMRR\.update\(\): `scores` must hold no NaN at real items",
        ),
        (
            lambda: RankingMAP(merge_groups=True).update(
                torch.zeros(3), torch.zeros(3), group=torch.zeros(3)
            ),
            TypeError,
            r"`group` must be an integer tensor",
        ),
        (
            lambda: RankingMAP(merge_groups=True).update(
                torch.zeros(3, 1), torch.zeros(3, 1), group=_G3
            ),
            ValueError,
            r"`scores` must be 1-D \(N,\) when `group` is given; got \(3, 1\)",
        ),
        (
            lambda: RankingMAP(merge_groups=True).update(torch.zeros(3), torch.zeros(2), group=_G3),
            ValueError,
            r"`target` must have the same shape as `scores`",
        ),
    ],
)
def test_merge_groups_errors(make: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        make()
