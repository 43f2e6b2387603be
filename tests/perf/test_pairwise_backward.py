"""The analytic backward of the pairwise ranking losses (hinge, RankNet; LambdaLoss's pair sums).

References are plain autograd of the pair formula over the dense (B, n, n) pair matrix in
float64, written here independently of losslab's blocks, sorting and penalties.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._autograd.pairwise import (
    OrderedPairSumFunction,
    WeightedPairSumFunction,
    row_blocks,
    softplus,
)
from losslab.losses.ranking import _pairs
from losslab.losses.ranking.lambda_loss import lambda_loss
from losslab.losses.ranking.pairwise_hinge import pairwise_hinge_loss
from losslab.losses.ranking.ranknet import ranknet_loss

# ------------------------------------------------------------------------------ references


def dense(
    scores: Tensor,
    target: Tensor,
    *,
    kind: str,
    mask: Optional[Tensor] = None,
    param: float = 1.0,
    normalization: str = "pairs",
    sample_weight: Optional[Tensor] = None,
    reduction: str = "mean",
) -> Tensor:
    """The documented loss with the whole pair matrix under autograd (padded layout)."""
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    pairs = (target[:, :, None] > target[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    d = scores[:, :, None] - scores[:, None, :]
    loss = torch.relu(param - d) if kind == "hinge" else F.softplus(-param * d)
    zero = torch.zeros((), dtype=scores.dtype)
    total = torch.where(pairs, loss, zero).sum((1, 2))
    count = pairs.sum((1, 2)).to(scores.dtype)
    per_list = total / count.clamp_min(1.0)
    w = torch.ones_like(per_list) if sample_weight is None else sample_weight
    if reduction == "none":
        return w * per_list
    if reduction == "sum":
        return (w * per_list).sum()
    has = count > 0
    if normalization == "pairs":
        den = (w * count).sum()
        return (w * total).sum() / den if den > 0 else (w * total).sum() * 0
    den = (w * has).sum()
    return (w * per_list * has).sum() / den if den > 0 else (w * per_list).sum() * 0


LOSSES: dict[str, tuple[Callable[..., Tensor], str, str]] = {
    "hinge": (pairwise_hinge_loss, "hinge", "margin"),
    "ranknet": (ranknet_loss, "logistic", "sigma"),
}


def call(name: str, scores: Tensor, target: Tensor, param: float, **kw: Any) -> Tensor:
    fn, _, option = LOSSES[name]
    return fn(scores, target, **{option: param}, **kw)


def grad_of(fn: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().clone().requires_grad_(True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad


def padded(g: torch.Generator, b: int, n: int, levels: int = 5, scale: float = 1.0):
    scores = torch.randn(b, n, generator=g, dtype=torch.float64) * scale
    target = torch.randint(0, levels, (b, n), generator=g).double()
    lengths = torch.randint(0, n + 1, (b,), generator=g)
    mask = torch.arange(n)[None, :] < lengths[:, None]
    return scores, target, mask


OPTIONS = [
    dict(reduction="mean"),
    dict(reduction="mean", normalization="lists"),
    dict(reduction="sum"),
    dict(reduction="none"),
]

# ----------------------------------------------------------- float32 against float64 autograd


@pytest.mark.parametrize(
    "name,param", [("hinge", 1.0), ("hinge", 0.0), ("ranknet", 1.0), ("ranknet", 2.5)]
)
@pytest.mark.parametrize("b,n,scale", [(1, 300, 1.0), (33, 40, 3.0), (4, 65, 30.0)])
def test_float32_matches_float64_autograd(
    name: str, param: float, b: int, n: int, scale: float
) -> None:
    g = torch.Generator().manual_seed(b * n)
    scores, target, mask = padded(g, b, n, scale=scale)
    weight = torch.rand(b, generator=g, dtype=torch.float64) + 0.5
    kind = LOSSES[name][1]
    for options in OPTIONS:
        want, want_grad = grad_of(
            lambda x, o=options: dense(
                x, target, kind=kind, mask=mask, param=param, sample_weight=weight, **o
            ),
            scores,
        )
        got, got_grad = grad_of(
            lambda x, o=options: call(
                name, x, target.float(), param, mask=mask, sample_weight=weight.float(), **o
            ),
            scores.float(),
        )
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-7 * scale)
        # atol: 1e-6 of the gradient's scale. Gradients are sums of bounded pair terms divided
        # by the pair count: a float32 sum of k terms errs by ~k * eps * max|term|, so tiny
        # entries (a few pairs in a large list) are only exact relative to the largest.
        atol = 1e-6 * float(want_grad.abs().max())
        torch.testing.assert_close(got_grad.double(), want_grad, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("name", list(LOSSES))
def test_ties_and_margin_kinks_are_exact(name: str) -> None:
    # Integer scores: many pairs with equal scores (d = 0) and with d exactly at the margin;
    # the gradient there is what autograd of relu gives (0 at the kink), bit for bit.
    g = torch.Generator().manual_seed(5)
    scores = torch.randint(-3, 4, (6, 50), generator=g).double()
    target = torch.randint(0, 4, (6, 50), generator=g).double()
    for param in (0.0, 1.0, 2.0) if name == "hinge" else (1.0, 0.5):
        want, want_grad = grad_of(
            lambda x, p=param: dense(x, target, kind=LOSSES[name][1], param=p, reduction="sum"),
            scores,
        )
        got, got_grad = grad_of(
            lambda x, p=param: call(name, x, target, p, reduction="sum"), scores
        )
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", list(LOSSES))
def test_extreme_scores_float32(name: str) -> None:
    scores = torch.tensor([[1e4, -1e4, 0.0, 3e4, -30.0, 30.0, 29.5, -3e4]])
    target = torch.tensor([[0.0, 2.0, 1.0, 1.0, 3.0, 0.0, 2.0, 1.0]])
    for param in (1.0, 3.0):
        want, want_grad = grad_of(
            lambda x, p=param: dense(x, target.double(), kind=LOSSES[name][1], param=p),
            scores.double(),
        )
        got, got_grad = grad_of(lambda x, p=param: call(name, x, target, p), scores)
        assert torch.isfinite(got) and torch.isfinite(got_grad).all()
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=0)
        torch.testing.assert_close(got_grad.double(), want_grad, rtol=1e-5, atol=1e-7)


def test_softplus_helper_is_accurate_and_exactly_zero_far_left() -> None:
    for dtype, low in ((torch.float32, -87.0), (torch.float64, -700.0)):
        z = torch.cat([torch.linspace(low, 60.0, 200_001, dtype=dtype), torch.tensor([0.0, -0.0])])
        want = F.softplus(z.double(), threshold=1000.0)  # log1p(exp(z)), float64 (exp(60) fits)
        got = softplus(z)
        assert got.dtype == dtype
        err = ((got.double() - want).abs() / want).max().item()
        assert err < (4e-7 if dtype == torch.float32 else 1e-15), (dtype, err)
        far = torch.tensor([-1e30, -(2.0**64), -1e4], dtype=dtype)
        assert torch.all(softplus(far) == 0)
        big = torch.tensor([1e4, 3e4, float("inf")], dtype=dtype)
        assert torch.equal(softplus(big), big)


# ---------------------------------------------------------------------------------- gradcheck


def gradcheck_cases() -> list[tuple[str, Tensor, Tensor, dict[str, Any]]]:
    g = torch.Generator().manual_seed(7)
    scores, target, mask = padded(g, 4, 7, levels=3)
    scores = scores + torch.arange(28, dtype=torch.float64).reshape(4, 7) * 1e-3  # no ties
    extreme = torch.tensor(
        [[1e4, -1e4, 0.3, 3e4, -30.0], [30.0, -30.0, 0.0, 1.7, -0.4]], dtype=torch.float64
    )
    extreme_t = torch.tensor(
        [[0.0, 2.0, 1.0, 1.0, 0.0], [2.0, 0.0, 1.0, 1.0, 3.0]], dtype=torch.float64
    )
    flat = torch.randn(9, generator=g, dtype=torch.float64)
    flat_t = torch.randint(0, 3, (9,), generator=g).double()
    group = torch.tensor([5, 1, 5, 1, 1, 3, 5, 3, 1])
    weight = torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    return [
        ("padding+weights", scores, target, dict(mask=mask, sample_weight=weight)),
        ("lists", scores, target, dict(mask=mask, sample_weight=weight, normalization="lists")),
        ("none", scores, target, dict(mask=mask, reduction="none")),
        ("extreme", extreme, extreme_t, {}),
        ("flat", flat, flat_t, dict(group=group, sample_weight=weight[:3], reduction="sum")),
    ]


@pytest.mark.parametrize(
    "name,param", [("hinge", 1.0), ("hinge", 0.25), ("ranknet", 1.0), ("ranknet", 2.5)]
)
def test_gradcheck_public_function(name: str, param: float) -> None:
    for note, scores, target, options in gradcheck_cases():
        x = scores.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda s, t=target, o=options: call(name, s, t, param, **o),
            (x,),
            eps=1e-6,
            atol=1e-7,
        ), note


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck_sample_weight(name: str) -> None:
    # The reduction stays differentiable in sample_weight (as before the fast path).
    g = torch.Generator().manual_seed(8)
    scores, target, mask = padded(g, 4, 6)
    w = (torch.rand(4, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)
    for normalization in ("pairs", "lists"):
        assert torch.autograd.gradcheck(
            lambda sw, nm=normalization: call(
                name, scores, target, 1.0, mask=mask, sample_weight=sw, normalization=nm
            ),
            (w,),
        )


@pytest.mark.parametrize("kind,param", [("hinge", 0.5), ("logistic", 1.0), ("logistic", 2.0)])
@pytest.mark.parametrize("block", [1, 5, 1 << 17])
def test_gradcheck_function(kind: str, param: float, block: int) -> None:
    g = torch.Generator().manual_seed(9)
    scores, target, mask = padded(g, 3, 6, levels=3)
    scores = scores + torch.arange(18, dtype=torch.float64).reshape(3, 6) * 1e-3
    target[0, 2] = float("nan")  # forms no pair

    def total(s: Tensor) -> Tensor:
        out, _ = OrderedPairSumFunction.apply(s, target, mask, kind, param, True, block)
        return out

    x = scores.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(total, (x,), eps=1e-6, atol=1e-7)
    w = torch.rand(3, 6, 6, generator=g, dtype=torch.float64)

    def weighted(s: Tensor) -> Tensor:
        out, _ = WeightedPairSumFunction.apply(
            s, kind, param, lambda lo, hi: w[:, lo:hi], True, block
        )
        return out

    assert torch.autograd.gradcheck(weighted, (x,), eps=1e-6, atol=1e-7)


def test_target_gets_no_gradient() -> None:
    # As before: relevance only selects the pairs.
    scores = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 5, dtype=torch.float64, requires_grad=True)
    for name in LOSSES:
        value = call(name, scores, target, 1.0)
        (g_target,) = torch.autograd.grad(value, target, allow_unused=True)
        assert g_target is None or torch.all(g_target == 0)


# --------------------------------------------------------------------- structure and contract


def test_once_differentiable() -> None:
    assert OrderedPairSumFunction.supports_double_backward is False
    assert WeightedPairSumFunction.supports_double_backward is False
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(
        ranknet_loss(x, torch.rand(2, 5, dtype=torch.float64)), x, create_graph=True
    )
    with pytest.raises(RuntimeError):
        g.sum().backward()


@pytest.mark.parametrize("name", list(LOSSES))
def test_no_grad_and_detached_values_match(name: str) -> None:
    g = torch.Generator().manual_seed(10)
    scores, target, mask = padded(g, 5, 30)
    with_grad = call(name, scores.clone().requires_grad_(True), target, 1.0, mask=mask)
    with torch.no_grad():
        no_grad = call(name, scores, target, 1.0, mask=mask)
    torch.testing.assert_close(no_grad, with_grad.detach(), rtol=0, atol=0)
    assert no_grad.grad_fn is None


@pytest.mark.parametrize("loss", [pairwise_hinge_loss, ranknet_loss, lambda_loss])
def test_block_sizes_agree(loss, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(11)
    scores, target, mask = padded(g, 3, 23)
    results = []
    for block in (1, 7, 100, 1 << 17):
        monkeypatch.setattr(_pairs, "_BLOCK_ELEMENTS", block)
        results.append(grad_of(lambda x: loss(x, target, mask=mask), scores))
    for value, grad in results[1:]:
        torch.testing.assert_close(value, results[0][0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-12, atol=1e-14)


def test_row_blocks_cover_the_rows() -> None:
    for b, n, block in [(1, 10, 1), (3, 11, 7), (2, 100, 1000), (4, 5, 1 << 17), (2, 0, 9)]:
        for triangle in (False, True):
            blocks = row_blocks(b, n, block, triangle=triangle)
            if n == 0:
                assert blocks == []
                continue
            assert [lo for lo, _ in blocks] == [0] + [hi for _, hi in blocks[:-1]]
            assert blocks[-1][1] == n
            for lo, hi in blocks:  # within budget unless one row alone exceeds it
                width = n - lo if triangle else n
                assert hi - lo == 1 or b * (hi - lo) * width <= block


@pytest.mark.parametrize("name", list(LOSSES))
def test_nothing_of_size_n_squared_is_saved(name: str) -> None:
    b, n = 2, 400
    g = torch.Generator().manual_seed(12)
    scores = torch.randn(b, n, generator=g, requires_grad=True)
    target = torch.randint(0, 5, (b, n), generator=g).float()
    sizes: list[int] = []

    def pack(t: Tensor) -> Tensor:
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = call(name, scores, target, 1.0)
    value.backward()
    assert max(sizes) <= b * n, sizes


@pytest.mark.parametrize("name", list(LOSSES))
def test_nonfinite_relevance_keeps_the_pair_rule(name: str) -> None:
    # validate=False: NaN forms no pair, +-inf compare as numbers (y_i > y_j).
    x = torch.tensor([[1.0, 2.0, 3.0, 0.5, -1.0]], dtype=torch.float64)
    for t in (
        [float("nan"), 1.0, 0.0, 5.0, 1.0],
        [float("-inf"), 1.0, 0.0, 5.0, 2.0],
        [float("inf"), 1.0, float("-inf"), 5.0, float("inf")],
    ):
        target = torch.tensor([t], dtype=torch.float64)
        want, want_grad = grad_of(
            lambda s, t=target: dense(s, t, kind=LOSSES[name][1], reduction="sum"), x
        )
        got, got_grad = grad_of(
            lambda s, t=target: call(name, s, t, 1.0, validate=False, reduction="sum"), x
        )
        torch.testing.assert_close(got, want, rtol=1e-13, atol=0)
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-13, atol=0)


def test_allrank_convention_by_hand() -> None:
    # allRank's rankNet: padding is y = -1; mean of BCE-with-logits(s_i - s_j, 1) over every
    # pair with y_i > y_j of the batch == ranknet_loss(mask=y != -1, normalization="pairs").
    y = torch.tensor([[2.0, 0.0, 1.0, -1.0], [1.0, 1.0, 0.0, -1.0]], dtype=torch.float64)
    s = torch.tensor([[0.3, 1.0, -0.5, 9.0], [0.2, -0.1, 0.4, 7.0]], dtype=torch.float64)
    diffs = []
    for b in range(2):
        for i in range(4):
            for j in range(4):
                if y[b, i] != -1 and y[b, j] != -1 and y[b, i] > y[b, j]:
                    diffs.append(s[b, i] - s[b, j])
    d = torch.stack(diffs)
    want = F.binary_cross_entropy_with_logits(d, torch.ones_like(d))
    got = ranknet_loss(s, torch.where(y == -1, 0.0, y), mask=y != -1)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=0)


# -------------------------------------------------------------------------------- compile


@pytest.mark.slow
def test_torch_compile_matches_eager() -> None:
    g = torch.Generator().manual_seed(13)
    scores, target, mask = padded(g, 3, 7)
    scores, target = scores.float(), target.float()
    weight = torch.rand(3, generator=g) + 0.5
    for name, param in (("hinge", 0.5), ("ranknet", 2.0)):
        kind = LOSSES[name][1]

        def fn(
            x: Tensor, t: Tensor, m: Tensor, w: Tensor, name: str = name, param: float = param
        ) -> Tensor:
            return call(name, x, t, param, mask=m, sample_weight=w, validate=False)

        # the public function (the option checks of _checks break the graph: not fullgraph)
        compiled = torch.compile(fn)
        got, got_grad = grad_of(lambda x, c=compiled: c(x, target, mask, weight), scores)
        want, want_grad = grad_of(lambda x: fn(x, target, mask, weight), scores)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-7)

        # the pair sums themselves trace in one graph (no .item(), no value-dependent branch)
        def sums(x: Tensor, kind: str = kind, param: float = param) -> Tensor:
            total, count = _pairs.ordered_pair_sums(x, target, mask, kind, param)
            return total / count.clamp_min(1.0)

        got, got_grad = grad_of(torch.compile(sums, fullgraph=True), scores)
        want, want_grad = grad_of(sums, scores)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-6, atol=1e-7)
