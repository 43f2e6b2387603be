"""Pairwise ranking losses: hand-computed values, torch built-ins, layouts, blocks and memory."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from losslab.losses.ranking import _pairs
from losslab.losses.ranking.lambda_loss import lambda_loss
from losslab.losses.ranking.pairwise_hinge import pairwise_hinge_loss
from losslab.losses.ranking.ranknet import ranknet_loss

LOSSES = [pairwise_hinge_loss, ranknet_loss, lambda_loss]
S = torch.tensor([[2.0, 1.5, 0.0]], dtype=torch.float64)
Y = torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64)
# The ordered pairs (i, j) with y_i > y_j: (0, 1), (2, 0), (2, 1); s_i - s_j = 0.5, -2, -1.5.


def test_hinge_by_hand() -> None:
    # max(0, 1 - 0.5) + max(0, 1 + 2) + max(0, 1 + 1.5) = 0.5 + 3 + 2.5 = 6 over 3 pairs.
    assert pairwise_hinge_loss(S, Y).item() == pytest.approx(2.0)
    # margin 0.5: 0 + 2.5 + 2 = 4.5
    assert pairwise_hinge_loss(S, Y, margin=0.5, reduction="sum").item() == pytest.approx(1.5)


def test_ranknet_by_hand() -> None:
    want = (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(2.0)) + math.log1p(math.exp(1.5))) / 3
    assert ranknet_loss(S, Y).item() == pytest.approx(want, rel=1e-12)


def test_lambda_loss_by_hand() -> None:
    # Ranks by score: 1, 2, 3. Gains 2^y - 1 = 1, 0, 3; IDCG = 3 + 1/log2(3).
    idcg = 3.0 + 1.0 / math.log2(3.0)
    g = [1.0 / idcg, 0.0, 3.0 / idcg]
    inv_d = [1.0, 1.0 / math.log2(3.0), 0.5]
    delta = {1: 1.0 - 1.0 / math.log2(3.0), 2: 1.0 / math.log2(3.0) - 0.5}

    def log2_logistic(d: float) -> float:
        return math.log1p(math.exp(-d)) / math.log(2.0)

    pairs = [(0, 1, 0.5), (2, 0, -2.0), (2, 1, -1.5)]
    loss2 = sum(delta[abs(i - j)] * abs(g[i] - g[j]) * log2_logistic(d) for i, j, d in pairs)
    lrank = sum(abs(inv_d[i] - inv_d[j]) * abs(g[i] - g[j]) * log2_logistic(d) for i, j, d in pairs)
    assert lambda_loss(S, Y, weighting="ndcg_loss2").item() == pytest.approx(loss2, rel=1e-12)
    assert lambda_loss(S, Y, weighting="lambdarank").item() == pytest.approx(lrank, rel=1e-12)
    got = lambda_loss(S, Y, mu=10.0).item()
    assert got == pytest.approx(10.0 * loss2 + lrank, rel=1e-12)
    assert lambda_loss(S.float(), Y.float()).item() == pytest.approx(11.5734, abs=1e-4)
    # k=1: only rank 1 (item 0) is inside the cut-off: no pair.
    assert lambda_loss(S, Y, k=1).item() == 0.0


def _pairs_of(scores: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    i, j = torch.nonzero(target[:, None] > target[None, :], as_tuple=True)
    return scores[i], scores[j]


def test_ranknet_is_bce_with_logits_over_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(30, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (30,), generator=g).double()
    si, sj = _pairs_of(scores, target)
    want = F.binary_cross_entropy_with_logits(2.0 * (si - sj), torch.ones_like(si))
    got = ranknet_loss(scores[None], target[None], sigma=2.0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_hinge_is_margin_ranking_loss_over_pairs() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(30, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (30,), generator=g).double()
    si, sj = _pairs_of(scores, target)
    want = F.margin_ranking_loss(si, sj, torch.ones_like(si), margin=0.3)
    got = pairwise_hinge_loss(scores[None], target[None], margin=0.3)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_pairs_and_lists_normalizations() -> None:
    scores = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([[2.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    # list 0: pairs (0,1), (0,2) hinge 0 each, (1,2) hinge 1 -> sum 1, 3 pairs
    # list 1: pairs (0,1), (0,2), hinge 1 each -> sum 2, 2 pairs
    none = pairwise_hinge_loss(scores, target, reduction="none")
    torch.testing.assert_close(none, torch.tensor([1 / 3, 1.0], dtype=torch.float64))
    assert pairwise_hinge_loss(scores, target).item() == pytest.approx(3 / 5)
    lists = pairwise_hinge_loss(scores, target, normalization="lists").item()
    assert lists == pytest.approx((1 / 3 + 1) / 2)


@pytest.mark.parametrize("loss", LOSSES)
def test_padded_and_flat_layouts_agree(loss) -> None:
    g = torch.Generator().manual_seed(2)
    lengths = [5, 1, 7, 3]
    scores = torch.randn(sum(lengths), generator=g)
    target = torch.randint(0, 3, (sum(lengths),), generator=g).float()
    group = torch.repeat_interleave(torch.tensor([30, 10, 20, 40]), torch.tensor(lengths))
    padded_s = torch.zeros(4, 7)
    padded_t = torch.zeros(4, 7)
    mask = torch.zeros(4, 7, dtype=torch.bool)
    start = 0
    for row, (gid, n) in enumerate(sorted(zip([30, 10, 20, 40], lengths))):
        idx = (group == gid).nonzero().flatten()
        padded_s[row, :n], padded_t[row, :n], mask[row, :n] = scores[idx], target[idx], True
        start += n
    perm = torch.randperm(sum(lengths), generator=g)
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5])
    for reduction in ("mean", "sum", "none"):
        flat_x = scores[perm].clone().requires_grad_(True)
        pad_x = padded_s.clone().requires_grad_(True)
        flat = loss(
            flat_x, target[perm], group=group[perm], sample_weight=weight, reduction=reduction
        )
        pad = loss(pad_x, padded_t, mask=mask, sample_weight=weight, reduction=reduction)
        torch.testing.assert_close(flat, pad, rtol=1e-6, atol=1e-6)
        flat.sum().backward()
        pad.sum().backward()
        # gradients of the same items, mapped back through the permutation and the padding
        torch.testing.assert_close(flat_x.grad.sum(), pad_x.grad[mask].sum(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", LOSSES)
def test_row_blocks_match_one_block(loss, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(3, 11, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 11), generator=g).double()
    mask = torch.rand(3, 11, generator=g) > 0.2

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        x = scores.clone().requires_grad_(True)
        value = (
            loss(x, target, mask=mask, k=4) if loss is lambda_loss else loss(x, target, mask=mask)
        )
        value.backward()
        return value.detach(), x.grad

    whole = run()
    monkeypatch.setattr(_pairs, "_BLOCK_ELEMENTS", 7)  # 3 x 11 per row: one row a block
    assert len(_pairs._row_blocks(3, 11)) == 11
    blocked = run()
    torch.testing.assert_close(blocked[0], whole[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(blocked[1], whole[1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", LOSSES)
def test_all_degenerate_is_zero_with_zero_gradient(loss) -> None:
    x = torch.randn(2, 4, requires_grad=True)
    target = torch.zeros(2, 4)  # no ordered pair, ideal DCG 0
    for reduction in ("mean", "sum", "none"):
        value = loss(x, target, reduction=reduction)
        assert torch.all(value == 0)
        (grad,) = torch.autograd.grad(value.sum(), x)
        assert torch.all(grad == 0)
    empty = torch.zeros(2, 4, dtype=torch.bool)
    assert loss(x, torch.rand(2, 4), mask=empty).item() == 0.0


def test_lambda_loss1_counts_every_pair() -> None:
    # ndcg_loss1 includes pairs with y_i <= y_j (weighted by G_i / D_i of the first item).
    scores = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    idcg = 1.0 + 1.0 / math.log2(3.0)
    # ranks: item 1 first (score 1), item 0 second
    want = (
        (1 / idcg) / math.log2(3.0) * math.log1p(math.exp(1.0))
        + (1 / idcg) * math.log1p(math.exp(-1.0))
    ) / math.log(2.0)
    got = lambda_loss(scores, target, weighting="ndcg_loss1").item()
    assert got == pytest.approx(want, rel=1e-12)
    assert lambda_loss(scores, target).item() == 0.0  # ties: no pair for the other schemes


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import torch
    from losslab.losses.ranking.{module} import {fn} as loss
    torch.set_num_threads(2)
    n = int(sys.argv[1])

    def status(field):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

    small = torch.randn(1, 64, requires_grad=True)
    loss(small, torch.randint(0, 3, (1, 64)).float()).backward()  # warm up
    x = torch.randn(1, n, requires_grad=True)
    y = torch.randint(0, 5, (1, n)).float()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = status("VmRSS")
    t0 = time.perf_counter()
    loss(x, y).backward()
    seconds = time.perf_counter() - t0
    print(json.dumps(dict(peak=status("VmHWM") - before, seconds=seconds)))
    """
)


def measure(module: str, fn: str, n: int, *, mmap: bool = False) -> dict[str, float]:
    """Peak extra RSS and seconds of one step in a fresh process.

    ``mmap=True`` makes every temporary above 64 KB its own mapping (BENCHMARKING.md: resident
    memory then equals live bytes), at the price of page faults (~4x slower here); the default
    allocator reuses freed blocks, so its high-water mark is an upper bound of the live bytes.
    """
    env = dict(os.environ)
    if mmap:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    script = _MEMORY_SCRIPT.format(module=module, fn=fn)
    out = subprocess.run(
        [sys.executable, "-c", script, str(n)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_is_linear_in_n() -> None:
    # One list of 20,000 items: the (n x n) pair matrix would be 1.6 GB in float32.
    result = measure("ranknet", "ranknet_loss", 20_000)
    assert result["peak"] < 200 * 2**20, result
