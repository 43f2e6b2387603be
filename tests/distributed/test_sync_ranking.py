"""sync="global" on the ranking losses: 2 and 3 gloo processes equal one process.

Flat layout (scores (N,), group ids): items are sharded by item, so a query's items sit on
several ranks (one group on one rank only, one rank empty); every rank gathers the items and
computes the loss of the global lists. Padded layout ((B, n) + mask): rows are whole lists,
uneven row shards (one rank empty); only the mean/sum over lists is global.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

import losslab.functional as LF
from losslab._registry import lookup
from tests._distributed import run_workers
from tests.distributed._sync import SyncCase, check_sync_cases

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "pairwise_hinge": LF.pairwise_hinge_loss,
    "ranknet": LF.ranknet_loss,
    "lambda_loss": LF.lambda_loss,
    "listnet": LF.listnet_loss,
    "listmle": LF.listmle_loss,
    "approx_ndcg": LF.approx_ndcg_loss,
    "neural_ndcg": LF.neural_ndcg_loss,
}
PAIRWISE = ("pairwise_hinge", "ranknet")

# Groups by item. World 2 splits 10 | 4: group 1 only on rank 0, groups 3, 5, 8 on both.
# World 3 splits 7 | 0 | 7: group 8 only on rank 2, the middle rank holds nothing.
GROUP = torch.tensor([3, 1, 3, 5, 1, 1, 3, 8, 5, 1, 3, 5, 8, 8])


def _flat_cases(name: str, fn: Callable[..., torch.Tensor]) -> list[SyncCase]:
    g = torch.Generator().manual_seed(len(name))
    d = torch.float64
    n = GROUP.numel()
    scores = torch.randn(n, generator=g, dtype=d) * 2
    target = torch.randint(0, 4, (n,), generator=g).to(d)
    target[GROUP == 8] = torch.tensor([2.0, 0.0, 1.0], dtype=d)
    list_weight = torch.tensor([0.5, 2.0, 1.0, 0.0], dtype=d)  # groups 1, 3, 5, 8 (global)
    extra: dict[str, Any] = {"seed": 7} if name == "listmle" else {}
    cases = [
        SyncCase(f"{name} flat mean", fn, (scores, target), {"group": GROUP, **extra}, ("group",)),
        SyncCase(
            f"{name} flat sum weighted",
            fn,
            (scores, target),
            {"group": GROUP, "sample_weight": list_weight, "reduction": "sum"},
            ("group",),
        ),
    ]
    if name in PAIRWISE:
        cases.append(
            SyncCase(
                f"{name} flat lists weighted",
                fn,
                (scores, target),
                {"group": GROUP, "normalization": "lists", "sample_weight": list_weight},
                ("group",),
            )
        )
    return cases


def _padded_cases(name: str, fn: Callable[..., torch.Tensor]) -> list[SyncCase]:
    g = torch.Generator().manual_seed(100 + len(name))
    d = torch.float64
    scores = torch.randn(7, 5, generator=g, dtype=d) * 2
    target = torch.randint(0, 4, (7, 5), generator=g).to(d)
    mask = torch.ones(7, 5, dtype=torch.bool)
    mask[0, 3:] = False  # padding
    mask[2, :] = False  # fully masked
    mask[4, 1:] = False  # one item: no pair
    mask[6, 2] = False  # padding in the middle
    weight = torch.rand(7, generator=g, dtype=d) + 0.25
    cases = [
        SyncCase(
            f"{name} padded mean",
            fn,
            (scores, target),
            {"mask": mask, "sample_weight": weight},
            ("mask", "sample_weight"),
        ),
        SyncCase(f"{name} padded sum", fn, (scores, target), {"reduction": "sum"}),
    ]
    if name in PAIRWISE:
        cases.append(
            SyncCase(
                f"{name} padded lists",
                fn,
                (scores, target),
                {"mask": mask, "normalization": "lists"},
                ("mask",),
            )
        )
    return cases


def _cases() -> list[SyncCase]:
    out = []
    for name, fn in LOSSES.items():
        out += _flat_cases(name, fn) + _padded_cases(name, fn)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_global_sync_equals_one_process(world: int) -> None:
    check_sync_cases(world, _cases())


def _bad_on_one_rank(rank: int, world: int) -> list[str]:
    """Rank 1's padded lists hold a negative relevance: every rank must raise, none hang."""
    errors = []
    for layout in ("padded", "flat"):
        t = torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64)
        if rank == 1:
            t[0, 1] = -1.0
        s = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
        kw: dict[str, Any] = {}
        if layout == "flat":
            s, t, kw = s.reshape(3), t.reshape(3), {"group": torch.tensor([0, 0, 1])}
        try:
            LF.approx_ndcg_loss(s, t, sync="global", **kw)
            errors.append("no error")
        except ValueError as exc:
            errors.append(str(exc))
    return errors


@pytest.mark.slow
def test_invalid_values_on_one_rank_raise_on_every_rank() -> None:
    results = run_workers(2, _bad_on_one_rank, timeout=60.0)
    for rank, errors in enumerate(results):
        for message in errors:
            assert message.startswith("approx_ndcg_loss(): `target` must"), (rank, message)
    assert "other rank" in results[0][0]  # rank 0's own values are fine
    assert "[0, inf)" in results[1][0]


@pytest.mark.parametrize("name", list(LOSSES))
def test_sync_is_validated_and_a_no_op_without_a_process_group(name: str) -> None:
    fn = LOSSES[name]
    g = torch.Generator().manual_seed(0)
    s = torch.randn(9, generator=g, dtype=torch.float64)
    t = torch.randint(0, 3, (9,), generator=g).to(torch.float64)
    group = torch.tensor([4, 1, 4, 1, 1, 2, 4, 2, 1])
    for kw in ({"group": group}, {"group": group, "reduction": "none"}, {}):
        args = (s, t) if kw else (s.reshape(3, 3), t.reshape(3, 3))
        torch.testing.assert_close(fn(*args, **kw, sync="global"), fn(*args, **kw))
    with pytest.raises(ValueError, match=r"`sync` must be one of 'local' \| 'global'"):
        fn(s, t, group=group, sync="world")
    cls = lookup(name)
    assert cls.needs_global_stats is True
    with pytest.raises(ValueError, match=r"`sync` must be one of 'local' \| 'global'"):
        cls(sync="world")
    module = cls(sync="global")
    torch.testing.assert_close(module(s, t, group=group), fn(s, t, group=group))
