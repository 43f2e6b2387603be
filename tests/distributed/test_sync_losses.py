"""sync="global" on the classification and forecasting losses with global statistics:
2 and 3 gloo processes with uneven shards (one empty) equal one process on the whole batch."""

from __future__ import annotations

import pytest
import torch

import losslab.functional as LF
from losslab._reduce import reduce
from tests.distributed._sync import SyncCase, check_sync_cases


def _reduce_mean(x: torch.Tensor, w: torch.Tensor, *, sync: str) -> torch.Tensor:
    return reduce(x.square(), "mean", sample_weight=w, sync=sync)


def _reduce_sum(x: torch.Tensor, *, sync: str) -> torch.Tensor:
    return reduce(x.square(), "sum", sync=sync)


def _reduce_plain_mean(x: torch.Tensor, *, sync: str) -> torch.Tensor:
    return reduce(x.square(), "mean", sync=sync)


def _cases() -> list[SyncCase]:
    g = torch.Generator().manual_seed(0)
    d = torch.float64
    logits = torch.randn(9, 4, generator=g, dtype=d) * 2
    ids = torch.tensor([0, 0, 1, 0, 3, 3, 0, 1, 0])  # class 2 absent; class 3 only on one shard
    weights = torch.rand(9, generator=g, dtype=d) + 0.5
    pred, target = torch.randn(8, 5, generator=g, dtype=d), torch.randn(8, 5, generator=g, dtype=d)
    series_w = torch.rand(8, generator=g, dtype=d)
    x = torch.randn(7, 3, generator=g, dtype=d)
    return [
        SyncCase(
            "reduce mean weighted",
            _reduce_mean,
            (x, torch.rand(7, dtype=d) + 0.1),
            local_may_agree=False,
        ),
        SyncCase("reduce sum", _reduce_sum, (x,)),
        SyncCase("reduce plain mean", _reduce_plain_mean, (x,)),
        *[
            SyncCase(
                f"class_balanced batch {base}",
                LF.class_balanced_loss,
                (logits, ids),
                {"samples_per_class": "batch", "beta": 0.9, "base": base, "sample_weight": weights},
                split_kwargs=("sample_weight",),
            )
            for base in ("ce", "bce", "focal")
        ],
        SyncCase(
            "class_balanced given counts (global mean)",
            LF.class_balanced_loss,
            (logits, ids),
            {"samples_per_class": [5, 2, 1, 2], "beta": 0.99},
        ),
        SyncCase("wape batch", LF.wape_loss, (pred, target), {"aggregate": "batch"}),
        SyncCase(
            "wape batch weighted",
            LF.wape_loss,
            (pred, target),
            {"aggregate": "batch", "sample_weight": series_w},
            split_kwargs=("sample_weight",),
        ),
        SyncCase(
            "wape series mean",
            LF.wape_loss,
            (pred, target),
            {"aggregate": "series", "sample_weight": series_w},
            split_kwargs=("sample_weight",),
        ),
        SyncCase(
            "wape series sum",
            LF.wape_loss,
            (pred, target),
            {"aggregate": "series", "reduction": "sum"},
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_global_sync_equals_one_process(world: int) -> None:
    check_sync_cases(world, _cases())


def test_sync_is_validated_and_a_no_op_without_a_process_group() -> None:
    logits, ids = torch.randn(5, 3), torch.tensor([0, 1, 1, 2, 0])
    for fn, kw in (
        (LF.class_balanced_loss, {"samples_per_class": "batch"}),
        (LF.wape_loss, {}),
    ):
        args = (logits, ids) if fn is LF.class_balanced_loss else (logits, logits.flip(0))
        torch.testing.assert_close(fn(*args, **kw, sync="global"), fn(*args, **kw))
        with pytest.raises(ValueError, match=r"`sync` must be one of 'local' \| 'global'"):
            fn(*args, **kw, sync="world")


def test_needs_global_stats_iff_the_loss_takes_sync() -> None:
    """Every loss whose value depends on batch-wide statistics offers sync=, and only those."""
    import inspect

    import losslab

    for entry in losslab.entries():
        fn = entry.cls.function
        if fn is None:
            continue
        params = inspect.signature(fn).parameters
        takes = "sync" in params
        assert takes == entry.cls.needs_global_stats, (entry.key, takes)
        if takes:
            assert params["sync"].default == "local", entry.key
            assert "sync" in inspect.signature(entry.cls.__init__).parameters, entry.key
