"""``losslab.distributed``: no-ops without a process group; exact sums, gathers and gradients
across uneven shards (one rank may hold none) with 2 and 3 gloo processes."""

from __future__ import annotations

import pytest
import torch

from losslab.distributed import all_gather_cat, all_reduce_sum, is_distributed, world_size
from tests._distributed import run_workers

# A global batch of 7 rows split unevenly: with 3 ranks the middle one holds nothing.
SPLITS = {2: [(0, 5), (5, 7)], 3: [(0, 4), (4, 4), (4, 7)]}


def _global() -> torch.Tensor:
    return torch.linspace(-1.0, 2.0, 21, dtype=torch.float64).reshape(7, 3)


def _loss(x: torch.Tensor) -> torch.Tensor:
    # A global statistic: not a sum of per-row terms.
    return x.sum(0).square().sum() / (1.0 + x.square().sum())


def test_without_a_process_group_they_are_no_ops() -> None:
    x = torch.randn(4, 2)
    assert not is_distributed() and world_size() == 1
    assert all_reduce_sum(x) is x and all_gather_cat(x) is x
    with pytest.raises(ValueError, match=r"all_gather_cat\(\): `x` must have a batch dimension"):
        all_gather_cat(torch.tensor(1.0))
    with pytest.raises(
        TypeError, match=r"all_reduce_sum\(\): `x` must be a torch.Tensor; got list"
    ):
        all_reduce_sum([1.0])  # type: ignore[arg-type]


def _worker(rank: int, world: int) -> dict[str, torch.Tensor]:
    lo, hi = SPLITS[world][rank]
    x = _global()[lo:hi].clone().requires_grad_(True)
    gathered = all_gather_cat(x)
    loss = _loss(gathered)
    stats = all_reduce_sum(x.square().sum().reshape(1))
    (loss + stats.sum()).backward()
    return {
        "gathered": gathered.detach(),
        "loss": loss.detach(),
        "stats": stats.detach(),
        "grad": x.grad,
    }


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_uneven_shards_match_one_process(world: int) -> None:
    full = _global().clone().requires_grad_(True)
    loss = _loss(full)
    stats = full.square().sum()
    (loss + stats).backward()
    results = run_workers(world, _worker)
    for rank, r in enumerate(results):
        lo, hi = SPLITS[world][rank]
        torch.testing.assert_close(r["gathered"], _global(), rtol=0, atol=0)
        torch.testing.assert_close(r["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r["stats"].sum(), stats.detach(), rtol=1e-12, atol=1e-12)
        # Each rank's gradient is world x the single-process gradient of its rows; DDP's
        # averaging over ranks (/ world) restores the single-process gradient.
        torch.testing.assert_close(r["grad"] / world, full.grad[lo:hi], rtol=1e-12, atol=1e-12)


def _mismatch(rank: int, world: int) -> str:
    x = torch.zeros(2, 3 if rank == 0 else 4)
    try:
        all_gather_cat(x)
    except ValueError as exc:
        return str(exc)
    return "no error"


@pytest.mark.slow
def test_mismatched_trailing_shapes_raise_on_every_rank() -> None:
    messages = run_workers(2, _mismatch)
    for m in messages:
        assert "must have the same shape after dim 0 on every rank" in m, m
