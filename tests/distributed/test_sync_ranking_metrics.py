"""Ranking metrics under DDP: ``merge_groups=True`` merges a query split across ranks exactly.

Two gloo processes hold parts of the SAME queries (global group ids): query 10 and query 30
are split across the ranks (query 10 with a tied score on each side, so the "stable" order
across ranks is exercised), query 20 sits on rank 0 only, query 40 on rank 1 only. Three
layouts of the same items: split over both ranks (rank 1's second update empty), all on rank 0
with an empty update on rank 1, and all on rank 0 with rank 1 never calling ``update``.
Every rank's ``compute()`` must equal one process over all items (concatenated in update
order, then rank order). With ``merge_groups=False`` (the default) the split queries count
once per part: documented, and asserted here.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch

from losslab.metrics.ranking import ranking_metrics
from tests._distributed import run_workers

D = torch.float64
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # scores, target, group


def _batch(items: list[tuple[float, float, int]]) -> Batch:
    if not items:
        return torch.zeros(0, dtype=D), torch.zeros(0, dtype=D), torch.zeros(0, dtype=torch.long)
    s, t, g = zip(*items)
    return torch.tensor(s, dtype=D), torch.tensor(t, dtype=D), torch.tensor(g)


# Per rank, its updates: (score, relevance, query id).
RANK_UPDATES: list[list[Batch]] = [
    [
        _batch([(0.5, 0.0, 10), (0.8, 0.0, 20), (0.1, 2.0, 10), (0.3, 1.0, 20), (0.6, 0.0, 20)]),
        _batch([(0.7, 0.0, 30), (0.2, 0.0, 30)]),
    ],
    [
        _batch([(0.5, 1.0, 10), (0.9, 0.0, 30), (0.4, 3.0, 40), (0.05, 1.0, 30), (0.6, 0.0, 40)]),
        _batch([]),  # an empty update
    ],
]
CONFIGS: list[dict[str, Any]] = [
    {"k": 2, "gain": "exponential", "ties": "stable", "empty": "skip"},
    {"k": 3, "gain": "linear", "ties": "pessimistic", "empty": "zero"},
]
LAYOUTS = ("split", "empty_update", "no_update")


def _updates(layout: str, rank: int) -> list[Batch]:
    if layout == "split":
        return RANK_UPDATES[rank]
    if rank == 0:
        return RANK_UPDATES[0] + RANK_UPDATES[1]
    return [_batch([])] if layout == "empty_update" else []


def _compute(merge_groups: bool, config: dict[str, Any], updates: list[Batch]) -> dict[str, float]:
    metrics = ranking_metrics(merge_groups=merge_groups, **config)
    for m in metrics.values():
        m.set_dtype(D)
    for s, t, g in updates:
        metrics.update(s, t, group=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # compute() before any update on an idle rank
        return {name: float(v) for name, v in metrics.compute().items()}


def _worker(rank: int, world: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, config in enumerate(CONFIGS):
        for layout in LAYOUTS:
            out[f"merge {i} {layout}"] = _compute(True, config, _updates(layout, rank))
        out[f"stream {i} split"] = _compute(False, config, _updates("split", rank))
    return out


def _reference(lists: list[Batch], config: dict[str, Any]) -> dict[str, float]:
    """Plain float64 formulas over the given lists (each a tuple of 1-D tensors)."""
    k, gain, ties, empty = config["k"], config["gain"], config["ties"], config["empty"]
    values: dict[str, list[float]] = {"ndcg": [], "mrr": [], "map": [], "precision": []}
    for scores, target, _ in lists:
        s, t = scores.tolist(), target.tolist()
        # Score descending; ties by position, or (pessimistic) less relevant first.
        keys = [(-s[i], i) if ties == "stable" else (-s[i], t[i], i) for i in range(len(s))]
        ranked = [t[i] for i in sorted(range(len(s)), key=keys.__getitem__)]
        rel = [1.0 if y > 0 else 0.0 for y in ranked]
        if sum(rel) == 0:
            if empty == "zero":
                for v in values.values():
                    v.append(0.0)
            continue
        g = [(2.0**y - 1.0) if gain == "exponential" else y for y in ranked]
        ideal = sorted(g, reverse=True)
        dcg = sum(x / math.log2(r + 2) for r, x in enumerate(g[:k]))
        idcg = sum(x / math.log2(r + 2) for r, x in enumerate(ideal[:k]))
        hits = [sum(rel[: r + 1]) for r in range(len(rel))]
        values["ndcg"].append(dcg / idcg)
        values["mrr"].append(1.0 / (rel.index(1.0) + 1))
        values["map"].append(
            sum(h / (r + 1) * x for r, (h, x) in enumerate(zip(hits, rel))) / sum(rel)
        )
        values["precision"].append(sum(rel[:k]) / k)
    return {
        f"ndcg@{k}": sum(values["ndcg"]) / len(values["ndcg"]),
        "mrr": sum(values["mrr"]) / len(values["mrr"]),
        "map": sum(values["map"]) / len(values["map"]),
        f"precision@{k}": sum(values["precision"]) / len(values["precision"]),
    }


def _by_query(batches: list[Batch]) -> list[Batch]:
    """The lists of the given items by query id (ascending), items in concatenation order."""
    s, t, g = (torch.cat(x) for x in zip(*batches))
    return [(s[g == q], t[g == q], g[g == q]) for q in g.unique().tolist()]


def _assert_close(got: dict[str, float], want: dict[str, float], what: str) -> None:
    assert got.keys() == want.keys(), what
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-12, abs=1e-12), (what, name)


@pytest.mark.slow
def test_merge_groups_two_ranks_equal_one_process() -> None:
    all_items = RANK_UPDATES[0] + RANK_UPDATES[1]  # update order, then rank order
    results = run_workers(2, _worker, timeout=120)
    for i, config in enumerate(CONFIGS):
        # One process over all items: merged, and the default mode fed whole lists at once.
        one_process = _compute(True, config, all_items)
        one_update: Batch = tuple(torch.cat(x) for x in zip(*all_items))  # type: ignore[assignment]
        whole = _compute(False, config, [one_update])
        want = _reference(_by_query(all_items), config)
        _assert_close(one_process, want, f"one process, config {i}")
        _assert_close(whole, want, f"default mode, whole lists, config {i}")
        # Default mode over the same updates: every update's part of a query is a list.
        parts = [lst for batch in all_items if batch[0].numel() for lst in _by_query([batch])]
        assert len(parts) == 6  # four queries, two of them split across the ranks
        want_parts = _reference(parts, config)
        assert any(abs(want_parts[n] - want[n]) > 1e-3 for n in want)
        for rank, result in enumerate(results):
            for layout in LAYOUTS:
                _assert_close(result[f"merge {i} {layout}"], want, f"rank {rank} {layout} {i}")
            _assert_close(result[f"stream {i} split"], want_parts, f"rank {rank} stream {i}")
