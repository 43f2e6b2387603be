"""Pair sums over padded lists in row blocks, with memory linear in the list length.

:func:`pair_sums` returns, per list, ``sum_{i,j} w_ij f(s_i - s_j)`` and ``sum_{i,j} w_ij`` where
``w_ij`` (0 outside the valid pairs) comes from a callable evaluated one block of rows at a time.
The (n x n) pair matrix is never built: the forward pass walks row blocks of at most
``_BLOCK_ELEMENTS`` pairs, and a custom autograd function recomputes each block in the backward
pass and writes the gradient ``w_ij f'(d_ij)`` straight into ``scores`` (+ at i, - at j). Peak
memory is O(block) on top of the inputs; the weights are constants (no gradient).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from losslab._reduce import reduce

__all__ = ["ordered_pairs", "pair_sums", "reduce_pairwise"]

# Pairs per block (all lists together). 2^18 float64 temporaries are 2 MB each; a handful live
# at a time, so a block costs ~10-20 MB whatever n is (larger blocks were slower: cache misses).
_BLOCK_ELEMENTS = 1 << 18

WeightBlock = Callable[[int, int], Tensor]  # (lo, hi) -> (B, hi - lo, n) weights, 0 off-pair


def _value(kind: str, param: float, d: Tensor) -> Tensor:
    """The pair loss at d = s_i - s_j."""
    if kind == "hinge":
        return torch.relu(param - d)  # max(0, margin - d)
    # "logistic": softplus(-sigma d) = log(1 + exp(-sigma d)), finite for any finite d.
    return torch.nn.functional.softplus(-param * d)


def _derivative(kind: str, param: float, d: Tensor) -> Tensor:
    """d/dd of the pair loss (0 at the hinge's kink); never overflows."""
    if kind == "hinge":
        return -(d < param).to(d.dtype)
    return -param * torch.sigmoid(-param * d)


def _row_blocks(b: int, n: int) -> list[tuple[int, int]]:
    rows = max(1, _BLOCK_ELEMENTS // max(b * n, 1))
    return [(lo, min(lo + rows, n)) for lo in range(0, n, rows)]


class _PairSum(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, scores: Tensor, kind: str, param: float, weight_block: WeightBlock
    ) -> tuple[Tensor, Tensor]:
        b, n = scores.shape
        total = scores.new_zeros(b)
        count = scores.new_zeros(b)
        for lo, hi in _row_blocks(b, n):
            d = scores[:, lo:hi, None] - scores[:, None, :]
            w = weight_block(lo, hi)
            value = _value(kind, param, d)
            total += (w * value).sum((1, 2))
            count += w.sum((1, 2))
        ctx.save_for_backward(scores)
        ctx.kind, ctx.param, ctx.weight_block = kind, param, weight_block
        ctx.mark_non_differentiable(count)
        return total, count

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_total: Tensor, grad_count: Tensor) -> tuple[Any, ...]:
        (scores,) = ctx.saved_tensors
        b, n = scores.shape
        grad = torch.zeros_like(scores)
        for lo, hi in _row_blocks(b, n):
            d = scores[:, lo:hi, None] - scores[:, None, :]
            deriv = _derivative(ctx.kind, ctx.param, d)
            g = ctx.weight_block(lo, hi) * deriv * grad_total[:, None, None]
            grad[:, lo:hi] += g.sum(2)  # d/ds_i of f(s_i - s_j)
            grad -= g.sum(1)  # d/ds_j
        return grad, None, None, None


def pair_sums(
    scores: Tensor, kind: str, param: float, weight_block: WeightBlock
) -> tuple[Tensor, Tensor]:
    """(B,) sums of ``w_ij f(s_i - s_j)`` and (B,) sums of ``w_ij`` over each list's pairs.

    ``kind`` is ``"hinge"`` (``f(d) = max(0, param - d)``) or ``"logistic"``
    (``f(d) = log(1 + exp(-param d))``). Gradients reach ``scores`` only.
    """
    total, count = _PairSum.apply(scores, kind, param, weight_block)
    return total, count


def ordered_pairs(target: Tensor, mask: Tensor) -> WeightBlock:
    """Weights 1 on the pairs (i, j) of real items with target_i > target_j, 0 elsewhere."""

    def block(lo: int, hi: int) -> Tensor:
        valid = (target[:, lo:hi, None] > target[:, None, :]) & mask[:, lo:hi, None]
        valid &= mask[:, None, :]
        return valid.to(target.dtype)

    return block


def reduce_pairwise(
    total: Tensor,
    count: Tensor,
    normalization: str,
    reduction: str,
    *,
    sample_weight: Optional[Tensor],
    out_dtype: torch.dtype,
) -> Tensor:
    """The reductions of the pairwise losses (see ``pairwise_hinge_loss``).

    Per list: its mean over its pairs (0 without a pair). ``none``/``sum``: those (weighted);
    ``mean``: sum_b w_b S_b / sum_b w_b P_b (``"pairs"``) or the weighted mean of the per-list
    means over the lists with a pair (``"lists"``).
    """
    has_pair = count > 0
    # clamp: a list without a pair has total 0 (zero gradient) and divides by 1, not 0.
    per_list = total / count.clamp_min(1.0)
    if reduction == "mean" and normalization == "pairs":
        return reduce(
            per_list, "mean", sample_weight=sample_weight, weight=count, out_dtype=out_dtype
        )
    return reduce(
        per_list, reduction, sample_weight=sample_weight, mask=has_pair, out_dtype=out_dtype
    )
