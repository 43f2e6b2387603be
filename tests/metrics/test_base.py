"""Tests of losslab.metrics._base: the three torchmetrics pitfalls, each shown on a plain Metric.

1. A process that never called ``update`` breaks torchmetrics' sync of list states and of
   lazily shaped sums. Two ranks are simulated in threads whose ``dist_sync_fn`` is a strict
   all_gather (it refuses tensors of different dtype or ndim on the ranks, as gloo does);
   one real two-process gloo run confirms it (slow).
2. ``set_dtype`` / ``.to(dtype)`` cast float64 sums and int64 counts of a plain Metric.
3. ``MetricCollection``'s default compute groups merge two plain metrics whose options differ
   when their states agree after the first batch.
"""

from __future__ import annotations

import copy
import pickle
import threading
import warnings
from typing import Any, Callable, Optional

import pytest
import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection

from losslab.metrics._base import (
    CONFIG_TAG,
    LosslabMetric,
    check_flag,
    check_prefix,
    nan_like,
    no_samples,
)
from tests._distributed import run_workers

# ---- toy metrics: one body, mixed into a plain Metric and into LosslabMetric ----------------


class _StashBody:
    """Keeps int64 rows (N, 3) in a list state and their column sums in a lazily shaped state
    (0-d until the first update, as torchmetrics' R2Score sums)."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("rows", [], dist_reduce_fx="cat")
        self.add_state("colsum", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, rows: Tensor) -> None:
        self.rows.append(rows)
        self.colsum = self.colsum + rows.sum(0)

    def compute(self) -> tuple[Tensor, Tensor]:
        rows = self.rows
        return (torch.cat(rows) if isinstance(rows, list) else rows), self.colsum


class PlainStash(_StashBody, Metric):
    pass


class SafeStash(_StashBody, LosslabMetric):
    pass


class _AboveBody:
    """Counts values above ``threshold`` (float64 sum) and values seen (int64)."""

    full_state_update = False

    def __init__(self, threshold: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self._add("above", torch.zeros((), dtype=torch.float64))  # exact counts up to 2**53
        self._add("seen", torch.zeros((), dtype=torch.int64))

    def _add(self, name: str, default: Tensor) -> None:
        self.add_state(name, default, dist_reduce_fx="sum")

    def update(self, x: Tensor) -> None:
        self.above = self.above + (x > self.threshold).sum().to(torch.float64)
        self.seen = self.seen + x.numel()

    def compute(self) -> Tensor:
        return self.above / self.seen


class PlainAbove(_AboveBody, Metric):
    pass


class SafeAbove(_AboveBody, LosslabMetric):
    def __init__(self, threshold: float, **kwargs: Any) -> None:
        super().__init__(threshold, **kwargs)
        self.add_config_tag()

    def _add(self, name: str, default: Tensor) -> None:
        self.add_exact_state(name, default)

    def _config(self) -> tuple[float]:
        return (self.threshold,)


# ---- (1) a process without data ---------------------------------------------------------------


class _ThreadWorld:
    """``world`` ranks as threads; ``gather(rank)`` is a strict in-process all_gather.

    Like gloo's all_gather (and torchmetrics' gather_all_tensors), it needs one dtype and one
    number of dimensions on every rank; it raises on every rank otherwise (all see the same
    tensors), so the threads never hang.
    """

    def __init__(self, world: int) -> None:
        self.world = world
        self.slots: list[Optional[Tensor]] = [None] * world
        self.barrier = threading.Barrier(world, timeout=20)
        self.calls = 0

    def gather(self, rank: int) -> Callable[..., list[Tensor]]:
        def all_gather(tensor: Tensor, group: Any = None) -> list[Tensor]:
            self.slots[rank] = tensor
            self.barrier.wait()
            got = [t for t in self.slots if t is not None]
            self.barrier.wait()  # nobody deposits the next collective before all have read
            if rank == 0:
                self.calls += 1
            if len({t.dtype for t in got}) > 1 or len({t.dim() for t in got}) > 1:
                seen = ", ".join(f"{t.dtype} {tuple(t.shape)}" for t in got)
                raise RuntimeError(f"all_gather of mismatched tensors: {seen}")
            return [t.clone() for t in got]

        return all_gather

    def run(self, fn: Callable[[int, Callable], Any]) -> list[Any]:
        """``[fn(rank, all_gather) for every rank]``, run concurrently; re-raises the first error."""
        results: list[Any] = [None] * self.world

        def target(rank: int) -> None:
            try:
                results[rank] = fn(rank, self.gather(rank))
            except BaseException as exc:  # re-raised in the test thread
                results[rank] = exc

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results


ROWS = torch.arange(15, dtype=torch.int64).reshape(5, 3)


def _sharded_compute(cls: type, shards: list[list[Tensor]]) -> list[Any]:
    """compute() on every simulated rank; rank r updates with shards[r] (maybe nothing)."""

    def on_rank(rank: int, all_gather: Callable) -> Any:
        metric = cls(dist_sync_fn=all_gather, distributed_available_fn=lambda: True)
        for batch in shards[rank]:
            metric.update(batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # compute before update on an idle rank
            return metric.compute()

    return _ThreadWorld(len(shards)).run(on_rank)


def test_idle_rank_breaks_a_plain_metric_sync():
    # torchmetrics stands in an empty 1-D float32 tensor for rank 1's int64 (N, 3) rows (and
    # keeps its 0-d colsum next to (3,)): gloo would abort the job.
    with pytest.raises(RuntimeError, match="mismatched"):
        _sharded_compute(PlainStash, [[ROWS[:2], ROWS[2:]], []])


@pytest.mark.parametrize(
    "shards",
    [[[ROWS[:2], ROWS[2:]], []], [[], [ROWS]], [[ROWS[:1]], [ROWS[1:4], ROWS[4:]]]],
    ids=["rank1_idle", "rank0_idle", "both"],
)
def test_idle_rank_sync_gives_the_single_process_value_on_every_rank(shards):
    for rows, colsum in _sharded_compute(SafeStash, shards):
        assert rows.dtype == torch.int64 and torch.equal(rows, ROWS)
        assert colsum.dtype == torch.int64 and torch.equal(colsum, ROWS.sum(0))


def test_sync_with_no_data_anywhere_keeps_torchmetrics_stand_in():
    for rows, colsum in _sharded_compute(SafeStash, [[], []]):
        assert rows.numel() == 0 and colsum.item() == 0


def test_sync_promotes_dtypes_and_refuses_different_shapes():
    out = _sharded_compute(SafeStash, [[ROWS[:2].to(torch.int32)], [ROWS[2:]]])
    for rows, _ in out:
        assert rows.dtype == torch.int64 and torch.equal(rows, ROWS)
    # (N, 3) rows on one rank, (N, 2) on the other: a ValueError on every rank, no hang.
    with pytest.raises(
        ValueError,
        match=r"^SafeStash\.sync\(\): `rows` must have the same shape beyond dim 0 on every "
        r"process; got \(N, 3\) on rank 0, \(N, 2\) on rank 1\.$",
    ):
        _sharded_compute(SafeStash, [[ROWS[:2]], [ROWS[2:, :2]]])


def test_exact_states_cost_no_extra_collective():
    # Only exact (fixed dtype and shape) states: nothing to align, no collective of our own.
    world = _ThreadWorld(1)
    metric = SafeAbove(0.5)
    metric._align_for_sync(world.gather(0), None)
    assert world.calls == 0
    stash = SafeStash()
    stash._align_for_sync(world.gather(0), None)
    assert world.calls == 1  # the header; every state 0-d or empty: no shape exchange


def _gloo_worker(rank: int, world: int) -> list[Tensor]:
    metric = SafeStash()
    if rank == 0:  # rank 1 never calls update
        metric.update(ROWS[:2])
        metric.update(ROWS[2:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows, colsum = metric.compute()
    return [rows, colsum]


@pytest.mark.slow
def test_idle_rank_real_gloo_two_processes():
    for rows, colsum in run_workers(2, _gloo_worker, timeout=60):
        assert rows.dtype == torch.int64 and torch.equal(rows, ROWS)
        assert torch.equal(colsum, ROWS.sum(0))


# ---- (2) exact states --------------------------------------------------------------------------


def _fed(metric: Metric) -> Metric:
    metric.update(torch.full((3,), 0.9))
    return metric


@pytest.mark.parametrize(
    "cast",
    [lambda m: m.set_dtype(torch.float16), lambda m: m.to(torch.float16)],
    ids=["set_dtype", "to"],
)
def test_plain_metric_states_are_cast_exact_states_are_not(cast):
    plain = cast(_fed(PlainAbove(0.5)))
    assert plain.above.dtype == torch.float16  # a float64 sum rounded to 11 bits
    safe = cast(_fed(SafeAbove(0.5)))
    assert safe.above.dtype == torch.float64 and safe.seen.dtype == torch.int64
    assert getattr(safe, CONFIG_TAG).dtype == torch.float64
    safe.update(torch.full((2049,), 0.9))  # 2052 above: float16 cannot hold it (2048 + 4 steps)
    assert safe.above.item() == 2052.0 and safe.seen.item() == 2052
    safe.reset()  # the defaults kept their dtype too
    assert safe.above.dtype == torch.float64 and safe.seen.dtype == torch.int64


def test_set_dtype_casts_plain_int_counts():
    plain = _fed(PlainAbove(0.5)).set_dtype(torch.float64)
    assert plain.seen.dtype == torch.float64  # set_dtype casts integer states too
    safe = _fed(SafeAbove(0.5)).set_dtype(torch.float64)
    assert safe.seen.dtype == torch.int64


def test_exact_states_follow_the_device():
    safe = _fed(SafeAbove(0.5)).to("meta")
    assert safe.above.device.type == "meta" and safe.above.dtype == torch.float64
    assert safe._defaults["seen"].device.type == "meta"


# ---- (3) compute groups ------------------------------------------------------------------------


def _stream(collection: MetricCollection) -> dict[str, float]:
    collection.update(torch.tensor([0.0, 1.0]))  # one value above 0.5 and above 0.7: equal states
    collection.update(torch.tensor([0.6]))  # above 0.5 only
    return {k: v.item() for k, v in collection.compute().items()}


def test_plain_metrics_with_different_options_are_merged():
    collection = MetricCollection({"above_05": PlainAbove(0.5), "above_07": PlainAbove(0.7)})
    got = _stream(collection)
    assert len(collection.compute_groups) == 1  # merged after the first batch
    assert got["above_05"] == got["above_07"]  # one of them is wrong (truth: 2/3 and 1/3)


def test_config_tag_keeps_different_options_apart_and_shares_equal_ones():
    collection = MetricCollection(
        {"above_05": SafeAbove(0.5), "above_07": SafeAbove(0.7), "again_05": SafeAbove(0.5)}
    )
    got = _stream(collection)
    assert got == pytest.approx({"above_05": 2 / 3, "above_07": 1 / 3, "again_05": 2 / 3})
    groups = sorted(sorted(g) for g in collection.compute_groups.values())
    assert groups == [["above_05", "again_05"], ["above_07"]]


def test_config_tag_is_per_class_non_persistent_and_recomputed_on_unpickle():
    class OtherAbove(SafeAbove):
        pass

    a, b = SafeAbove(0.5), OtherAbove(0.5)
    assert getattr(a, CONFIG_TAG) != getattr(b, CONFIG_TAG)  # same options, other class
    assert CONFIG_TAG not in a.state_dict()
    for clone in (pickle.loads(pickle.dumps(_fed(SafeAbove(0.7)))), copy.deepcopy(a)):
        fresh = type(clone)(clone.threshold)
        assert getattr(clone, CONFIG_TAG) == getattr(fresh, CONFIG_TAG)
        assert clone._defaults[CONFIG_TAG] == getattr(fresh, CONFIG_TAG)


def test_config_tag_needs_config():
    class Untagged(LosslabMetric):
        def update(self) -> None:
            pass

        def compute(self) -> Tensor:
            return torch.zeros(())

    with pytest.raises(TypeError, match=r"_config\(\) must return the options"):
        Untagged().add_config_tag()


# ---- small helpers ---------------------------------------------------------------------------


def test_helpers():
    assert check_prefix("f", None) is None
    with pytest.raises(TypeError, match=r"^f\(\): `prefix` must be a string or None; got int\.$"):
        check_prefix("f", 1, noun="string")
    with pytest.raises(TypeError, match=r"^f\(\): `flag` must be True or False; got 0\.$"):
        check_flag("f", "flag", 0)
    assert nan_like(torch.float64).isnan() and nan_like().dtype == torch.float32
    assert no_samples(torch.zeros(0, 3)) and not no_samples(torch.zeros(1))
