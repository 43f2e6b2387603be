"""Listwise ranking losses: hand-computed values, torch / scikit-learn comparisons, layouts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import ndcg_score

from losslab.losses.ranking.approx_ndcg import approx_ndcg_loss
from losslab.losses.ranking.listmle import listmle_loss
from losslab.losses.ranking.listnet import listnet_loss
from losslab.losses.ranking.neural_ndcg import neural_ndcg_loss

LOSSES = [listnet_loss, listmle_loss, approx_ndcg_loss, neural_ndcg_loss]

# relevance [3, 2, 0, 1]; the scores rank the items 1, 2, 3, 0.
REL = torch.tensor([[3.0, 2.0, 0.0, 1.0]], dtype=torch.float64)
SCORES = torch.tensor([[0.1, 0.4, 0.3, 0.2]], dtype=torch.float64)
# By hand: DCG = 3/log2(2) + 0/log2(3) + 1/log2(4) + 7/log2(5); IDCG = 7 + 3/log2(3) + 1/log2(4).
TRUE_NDCG = (3.0 + 0.5 + 7.0 / math.log2(5.0)) / (7.0 + 3.0 / math.log2(3.0) + 0.5)
# NDCG@2: DCG@2 = 3, IDCG@2 = 7 + 3/log2(3).
TRUE_NDCG_2 = 3.0 / (7.0 + 3.0 / math.log2(3.0))


def test_hand_ndcg_matches_sklearn() -> None:
    gains = (2.0**REL - 1.0).numpy()
    assert ndcg_score(gains, SCORES.numpy()) == pytest.approx(TRUE_NDCG, abs=1e-12)
    assert ndcg_score(gains, SCORES.numpy(), k=2) == pytest.approx(TRUE_NDCG_2, abs=1e-12)


@pytest.mark.parametrize(("k", "want"), [(None, TRUE_NDCG), (2, TRUE_NDCG_2)])
def test_approx_ndcg_tends_to_true_ndcg(k, want) -> None:
    loose = approx_ndcg_loss(SCORES, REL, alpha=10.0, k=k)
    sharp = approx_ndcg_loss(SCORES, REL, alpha=1e5, k=k)
    assert sharp.item() == pytest.approx(-want, abs=1e-9)
    assert abs(loose.item() + want) > abs(sharp.item() + want)


@pytest.mark.parametrize(("k", "want"), [(None, TRUE_NDCG), (2, TRUE_NDCG_2)])
def test_neural_ndcg_tends_to_true_ndcg(k, want) -> None:
    sharp = neural_ndcg_loss(SCORES, REL, temperature=1e-4, k=k)
    assert sharp.item() == pytest.approx(-want, abs=1e-9)
    loose = neural_ndcg_loss(SCORES, REL, temperature=1.0, k=k)
    assert abs(loose.item() + want) > 1e-3


def test_neural_ndcg_permutation_is_doubly_stochastic() -> None:
    # With identical gains the expected gain per rank is g * (row sum); the DCG of all-ones
    # relevance equals IDCG exactly when rows sum to 1 after Sinkhorn.
    s = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ones = torch.ones_like(s)
    loss = neural_ndcg_loss(s, ones, reduction="none")
    torch.testing.assert_close(loss, -torch.ones(3, dtype=torch.float64))


def test_listnet_equals_soft_target_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(5, 7, dtype=torch.float64, generator=g)
    t = torch.randn(5, 7, dtype=torch.float64, generator=g)
    want = F.cross_entropy(s, torch.softmax(t, 1), reduction="none")
    torch.testing.assert_close(listnet_loss(s, t, reduction="none"), want)
    torch.testing.assert_close(listnet_loss(s, t), want.mean())


def test_listmle_hand_value_and_ties() -> None:
    s = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float64)
    # order: item 2 (s=0), item 0 (s=2), item 1 (s=1)
    want = (math.log(math.exp(0) + math.exp(2) + math.exp(1)) - 0.0) + (
        math.log(math.exp(2) + math.exp(1)) - 2.0
    )
    assert listmle_loss(s, t).item() == pytest.approx(want, abs=1e-12)
    # ties by position with seed=None: items 0 and 1 tied -> order 0, 1, 2
    tied = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    want_tied = (math.log(math.exp(2) + math.exp(1) + 1.0) - 2.0) + (
        math.log(math.exp(1) + 1.0) - 1.0
    )
    assert listmle_loss(s, tied).item() == pytest.approx(want_tied, abs=1e-12)


def test_listmle_seed_is_reproducible() -> None:
    s = torch.randn(16, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]], dtype=torch.float64).repeat(16, 1)
    a = listmle_loss(s, t, seed=3, reduction="none")
    torch.testing.assert_close(a, listmle_loss(s, t, seed=3, reduction="none"), rtol=0, atol=0)
    assert not torch.equal(a, listmle_loss(s, t, seed=4, reduction="none"))
    # no ties: the seed changes nothing
    distinct = torch.arange(6.0, dtype=torch.float64).repeat(16, 1)
    torch.testing.assert_close(
        listmle_loss(s, distinct, seed=3), listmle_loss(s, distinct), rtol=0, atol=0
    )


def _interleave_keeping_group_order(group: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """New positions of the items: groups interleaved at random, each group's order kept."""
    slot = torch.randperm(group.numel(), generator=g)
    positions = torch.empty_like(slot)
    for gid in group.unique():
        where = (group == gid).nonzero().squeeze(1)
        positions[where] = torch.sort(slot[where]).values
    return positions


@pytest.mark.parametrize("fn", LOSSES)
def test_padded_and_flat_shuffled_layouts_agree(fn) -> None:
    g = torch.Generator().manual_seed(5)
    sizes = [4, 2, 5, 1]
    n = max(sizes)
    scores = torch.randn(len(sizes), n, generator=g)
    target = torch.randint(0, 4, (len(sizes), n), generator=g).float()  # ties included
    mask = torch.arange(n).unsqueeze(0) < torch.tensor(sizes).unsqueeze(1)
    weight = torch.rand(len(sizes), generator=g)
    ids = torch.tensor([7, 13, 40, 99])  # list b has id ids[b]: ascending, as the flat layout
    flat_s, flat_t = scores[mask], target[mask]
    flat_g = ids.unsqueeze(1).expand(-1, n)[mask]
    positions = _interleave_keeping_group_order(flat_g, g)
    out_s, out_t, out_g = (torch.empty_like(x) for x in (flat_s, flat_t, flat_g))
    out_s[positions], out_t[positions], out_g[positions] = flat_s, flat_t, flat_g
    assert not torch.equal(out_g, torch.sort(out_g).values)  # groups really are interleaved
    for reduction in ("none", "mean", "sum"):
        padded = fn(scores, target, mask=mask, sample_weight=weight, reduction=reduction)
        flat = fn(out_s, out_t, group=out_g, sample_weight=weight, reduction=reduction)
        torch.testing.assert_close(flat, padded, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", LOSSES)
def test_all_degenerate_gives_zero_with_zero_gradient(fn) -> None:
    s = torch.randn(3, 4, requires_grad=True)
    t = torch.zeros(3, 4)
    mask = torch.tensor([[True] * 4, [True, False, False, False], [False] * 4])
    for reduction in ("mean", "sum", "none"):
        loss = fn(s, t, mask=mask, reduction=reduction)
        assert torch.all(loss == 0)
        (grad,) = torch.autograd.grad(loss.sum(), s)
        assert torch.all(grad == 0)


@pytest.mark.parametrize("fn", LOSSES)
def test_shift_invariance(fn) -> None:
    g = torch.Generator().manual_seed(9)
    s = torch.randn(3, 5, dtype=torch.float64, generator=g)
    t = torch.randint(0, 3, (3, 5), generator=g).double()
    torch.testing.assert_close(fn(s + 3.0, t, reduction="none"), fn(s, t, reduction="none"))
