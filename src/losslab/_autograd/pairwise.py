r"""Sums of a pair loss over the pairs of padded lists, in row blocks, with an analytic backward.

For each list :math:`b` of scores :math:`s` (B, n) and pair weights :math:`w_{ij} \ge 0`
(0 off the pairs), the forward pass returns

.. math::

    T_b = \sum_{i, j} w_{ij}\, f(s_i - s_j), \qquad P_b = \sum_{i, j} w_{ij},

with the hinge :math:`f(d) = \max(0, m - d)` or the logistic (RankNet) loss
:math:`f(d) = \operatorname{softplus}(-\sigma d) = \log(1 + e^{-\sigma d})`. The gradient is

.. math::

    \frac{\partial T_b}{\partial s_k} = \sum_j w_{kj}\, f'(s_k - s_j)
        - \sum_i w_{ik}\, f'(s_i - s_k),
    \qquad f'_{\text{hinge}}(d) = -[d < m], \qquad
    f'_{\text{logistic}}(d) = -\sigma \operatorname{sigmoid}(-\sigma d),

(the hinge's derivative is 0 at its kink :math:`d = m`, as autograd of ``relu`` gives) and
:math:`P_b` gets none (the weights are constants). Both derivatives are bounded by
:math:`\max(1, \sigma)` and computed without overflow: ``softplus`` is
:math:`\max(z, 0) - \log(1 - p)` with :math:`p = \operatorname{sigmoid}(-|z|) \le 1/2` and a
compensated logarithm (see :mod:`losslab._autograd._math`: ~2 ulp for any :math:`z`, where
:math:`\log(1 + e^{z})` would overflow and ``exp`` is slow), and ``sigmoid`` saturates to exactly
0 or 1, so :math:`|s| = 10^4` in float32 gives finite values and gradients.

Memory. Nothing of size (n, n) is ever built: both sums walk blocks of rows of at most
``block`` pairs (all lists together). Because :math:`T_b` is linear in the pair terms and
:math:`P_b` is not differentiable, the gradient of the loss is
:math:`\partial L / \partial T_b \cdot \partial T_b / \partial s`: the forward pass
accumulates the (B, n) matrix :math:`G = \partial T / \partial s` in the same blocks, from the
same score differences (a ``sigmoid`` next to the ``softplus``; for the hinge, the sign of
its value), and saves only :math:`G`, the size of the scores; the backward pass is one
product :math:`G \cdot \partial L / \partial T_b`. Saving the inputs and walking the blocks
again in the backward pass would cost a second forward pass (60-70% more per step for
both losses, measured). ``G`` is only computed when the scores need a gradient (``need_grad``,
decided by the caller from ``requires_grad`` and the grad mode), so evaluation under
``no_grad`` pays the forward sum alone.

Ordered pairs (:class:`OrderedPairSumFunction`, the pairwise hinge and RankNet): the weights
are 1 on the pairs of real items with :math:`y_i > y_j` (ties and padding give none; a NaN
relevance forms no pair, as :math:`y_i > y_j` is false). Each list is sorted by relevance in
descending order (a permutation: the sums do not depend on it) and its distinct relevances
are numbered by a level :math:`\lambda` (0 the highest). Then every pair has :math:`i < j`, so
the row block ``[lo, hi)`` only meets the columns ``[lo, n)`` and half the pair matrix is never
evaluated, and the pairs are where :math:`\lambda_j > \lambda_i` (both real). With
:math:`C = 2^{64}`, row keys :math:`C (\lambda_i + 1)` and column keys :math:`C \lambda_j`
(:math:`C (n + 2)` and :math:`-C` for items without pairs), the penalty
:math:`\min(\mathrm{col}_j - \mathrm{row}_i, 0)` is exactly 0 on the pairs and at most
:math:`-C` elsewhere (integers times a power of two: exact). Added to the argument of the
pair loss it leaves the pairs' values bit-exact and makes ``relu``, ``softplus`` and
``sigmoid`` exactly 0 off the pairs (for :math:`|s| < 2^{40}`): three cheap passes instead of
a comparison and two ``where`` (bool tensors cost ~5x a float pass here). Each pair's value
uses the plain formula's floating-point operations (:math:`s_j - s_i` is exactly
:math:`-(s_i - s_j)`, then :math:`+ m` for the hinge, :math:`\times \sigma` for RankNet), so
only the order of the summation differs from it. :math:`P_b` is counted exactly from the
level sizes: the unordered pairs of real items minus those inside one level.

An exact :math:`O(n \log n)` hinge (per relevance level, sorted scores and prefix sums of the
scores inside the margin) was considered and not used: its value comes from differences of
prefix sums, which cancel (at :math:`|s| = 10^4` with a margin of 1 the rounding of a float32
prefix sum exceeds the loss of a nearly sorted list), and its kink test
:math:`s_j > s_i - m` rounds differently from :math:`s_i - s_j < m`, so neither the value nor
the gradient would stay what the pair formula gives. The blocked :math:`O(n^2)` sum is exact
to a rounding of each pair term.

General weights (:class:`WeightedPairSumFunction`, LambdaLoss): ``weight_block(lo, hi)``
returns the (B, hi - lo, n) weights of the rows ``[lo, hi)`` in the lists' own order; those
blocks cover the whole row (weights need not vanish below the diagonal).

Both Functions are ``once_differentiable`` (``supports_double_backward = False``): their
gradient carries no graph, so a second derivative raises (use plain autograd of the pair
formula for Hessian-vector products). They are traceable by ``torch.compile``: the blocks
depend on shapes and options only.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from losslab._autograd._math import softplus

__all__ = [
    "KINDS",
    "OrderedPairSumFunction",
    "WeightedPairSumFunction",
    "ordered_pair_sums",
    "row_blocks",
    "softplus",
    "weighted_pair_sums",
]

KINDS = ("hinge", "logistic")

WeightBlock = Callable[[int, int], Tensor]  # (lo, hi) -> (B, hi - lo, n) weights, 0 off-pair


def row_blocks(b: int, n: int, block: int, *, triangle: bool = False) -> list[tuple[int, int]]:
    """Row ranges ``[lo, hi)`` of at most ``block`` pairs (B x rows x columns) each.

    ``triangle``: the block ``[lo, hi)`` spans the columns ``[lo, n)`` only, so later blocks
    take more rows.
    """
    out = []
    lo = 0
    while lo < n:
        width = n - lo if triangle else n
        hi = min(n, lo + max(1, block // max(b * width, 1)))
        out.append((lo, hi))
        lo = hi
    return out


def _value(kind: str, param: float, d: Tensor) -> Tensor:
    """The pair loss at d = s_i - s_j, in d's buffer (d is not used afterwards)."""
    if kind == "hinge":
        return d.neg_().add_(param).clamp_min_(0.0)  # max(0, margin - d)
    # softplus(-sigma d) = log(1 + exp(-sigma d)), finite for any finite d.
    return softplus(d.mul_(-param))


def _derivative(kind: str, param: float, d: Tensor) -> Tensor:
    """d/dd of the pair loss (0 at the hinge's kink); never overflows."""
    if kind == "hinge":
        return -(d < param).to(d.dtype)
    return -param * torch.sigmoid(-param * d)


# Penalty unit: C * (integer level difference) is exact in float32 (levels < 2^24) and
# C * (n + 2) < 2^128 for any n < 2^63; s_i - s_j - C is -C for any |s| < 2^40, where softplus,
# sigmoid and relu are exactly 0.
_PENALTY = 2.0**64


def _levels(
    scores: Tensor, target: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Sorted scores, row and column penalty keys, the pair counts and the sort order.

    The items are sorted by relevance in descending order (padding and NaN relevance last);
    ``level`` numbers the distinct relevances from 0 (the highest) down. With the keys
    ``row = C (level + 1)`` (``C (n + 2)`` for items that form no pair) and ``col = C level``
    (``-C`` for those), ``min(col_j - row_i, 0)`` is 0 on the pairs (level_j > level_i: y_i > y_j,
    both real) and at most ``-C`` elsewhere.
    """
    b, n = scores.shape
    real = mask & (target == target)  # a NaN relevance forms no pair (y_i > y_j is false)
    lowest = torch.full((), float("-inf"), dtype=target.dtype, device=target.device)
    key = torch.where(real, target, lowest)
    values, order = torch.sort(key, dim=1, descending=True)
    change = torch.zeros(b, n, dtype=torch.bool, device=scores.device)
    change[:, 1:] = values[:, 1:] != values[:, :-1]
    level = torch.cumsum(change, 1)
    real = real.gather(1, order)
    row = torch.where(real, level + 1, n + 2).to(scores.dtype).mul_(_PENALTY)
    col = torch.where(real, level, -1).to(scores.dtype).mul_(_PENALTY)
    # pairs = (unordered pairs of real items) - (unordered pairs within one level), exact
    size = torch.zeros(b, n + 1, dtype=torch.long, device=scores.device)
    size.scatter_add_(1, torch.where(real, level, n), real.long())
    n_real = real.sum(1)
    count = (n_real * (n_real - 1) - (size[:, :n] * (size[:, :n] - 1)).sum(1)).div_(
        2, rounding_mode="floor"
    )
    return scores.gather(1, order), row, col, count.to(scores.dtype), order


class OrderedPairSumFunction(torch.autograd.Function):
    """(B,) sums of f(s_i - s_j) and (B,) pair counts over the pairs with y_i > y_j.

    ``supports_double_backward = False``: the backward is ``once_differentiable``; use plain
    autograd of the pair formula where a second derivative is needed.
    """

    supports_double_backward = False

    @staticmethod
    def forward(
        ctx: Any,
        scores: Tensor,
        target: Tensor,
        mask: Tensor,
        kind: str,
        param: float,
        need_grad: bool,
        block: int,
    ) -> tuple[Tensor, Tensor]:
        b, n = scores.shape
        s, row, col, count, order = _levels(scores, target, mask)
        total = scores.new_zeros(b)
        grad = scores.new_zeros(b, n) if need_grad else None
        for lo, hi in row_blocks(b, n, block, triangle=True):
            # 0 on the pairs, <= -C elsewhere: added to the pair loss's argument it zeroes
            # relu, softplus and sigmoid off the pairs, and leaves the pairs' values bit-exact.
            penalty = torch.sub(col[:, None, lo:], row[:, lo:hi, None]).clamp_max_(0.0)
            if kind == "hinge":
                # relu(m - d), d = s_i - s_j, bit-exact: s_j - s_i == -(s_i - s_j) in IEEE
                # arithmetic, so (s_j - s_i) + m rounds like m - d.
                h = torch.sub(s[:, None, lo:], s[:, lo:hi, None]).add_(param)
                h.add_(penalty).clamp_min_(0.0)
                total += h.sum((1, 2))
                if grad is not None:
                    # relu(m - d) > 0 exactly where d < m (a float difference is 0 only at
                    # equality): the derivative -[d < m] on the pairs.
                    active = h.sign_()
                    grad[:, lo:hi] -= active.sum(2)
                    grad[:, lo:] += active.sum(1)
            else:
                # z = -sigma d = sigma (s_j - s_i), bit-exact: s_j - s_i == -(s_i - s_j)
                z = torch.sub(s[:, None, lo:], s[:, lo:hi, None])
                if param != 1.0:
                    z.mul_(param)
                z.add_(penalty)
                total += softplus(z).sum((1, 2))
                if grad is not None:
                    g = torch.sigmoid(z, out=penalty)  # -f'(d) / sigma
                    g_rows = g.sum(2)
                    g_cols = g.sum(1)
                    if param != 1.0:
                        g_rows.mul_(param)
                        g_cols.mul_(param)
                    grad[:, lo:hi] -= g_rows
                    grad[:, lo:] += g_cols
        if grad is not None:
            ctx.save_for_backward(torch.empty_like(grad).scatter_(1, order, grad))
        ctx.mark_non_differentiable(count)
        return total, count

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_total: Tensor, grad_count: Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_total[:, None], None, None, None, None, None, None


class WeightedPairSumFunction(torch.autograd.Function):
    """(B,) sums of w_ij f(s_i - s_j) and of w_ij, weights from ``weight_block(lo, hi)``.

    ``supports_double_backward = False``: the backward is ``once_differentiable``; use plain
    autograd of the pair formula where a second derivative is needed.
    """

    supports_double_backward = False

    @staticmethod
    def forward(
        ctx: Any,
        scores: Tensor,
        kind: str,
        param: float,
        weight_block: WeightBlock,
        need_grad: bool,
        block: int,
    ) -> tuple[Tensor, Tensor]:
        b, n = scores.shape
        total = scores.new_zeros(b)
        count = scores.new_zeros(b)
        grad = scores.new_zeros(b, n) if need_grad else None
        for lo, hi in row_blocks(b, n, block):
            d = scores[:, lo:hi, None] - scores[:, None, :]
            w = weight_block(lo, hi)
            count += w.sum((1, 2))
            if grad is not None:
                g = w * _derivative(kind, param, d)
                grad[:, lo:hi] += g.sum(2)  # d/ds_i of f(s_i - s_j)
                grad -= g.sum(1)  # d/ds_j
            total += (w * _value(kind, param, d)).sum((1, 2))
        if grad is not None:
            ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(count)
        return total, count

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_total: Tensor, grad_count: Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_total[:, None], None, None, None, None, None


def _need_grad(scores: Tensor) -> bool:
    return scores.requires_grad and torch.is_grad_enabled()


def ordered_pair_sums(
    scores: Tensor, target: Tensor, mask: Tensor, kind: str, param: float, block: int
) -> tuple[Tensor, Tensor]:
    """(B,) sums of f(s_i - s_j) and (B,) numbers of the pairs of real items with y_i > y_j."""
    total, count = OrderedPairSumFunction.apply(
        scores, target, mask, kind, float(param), _need_grad(scores), int(block)
    )
    return total, count


def weighted_pair_sums(
    scores: Tensor, kind: str, param: float, weight_block: WeightBlock, block: int
) -> tuple[Tensor, Tensor]:
    """(B,) sums of w_ij f(s_i - s_j) and (B,) sums of w_ij (weights: no gradient)."""
    total, count = WeightedPairSumFunction.apply(
        scores, kind, float(param), weight_block, _need_grad(scores), int(block)
    )
    return total, count
