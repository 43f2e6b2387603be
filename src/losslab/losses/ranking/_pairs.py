"""Pair sums over padded lists in row blocks, with memory linear in the list length.

:func:`ordered_pair_sums` (pairwise hinge, RankNet) and :func:`pair_sums` (any pair weights,
LambdaLoss) return, per list, ``sum_{i,j} w_ij f(s_i - s_j)`` and ``sum_{i,j} w_ij``. The
(n x n) pair matrix is never built: the pairs are evaluated in blocks of rows of at most
``_BLOCK_ELEMENTS`` pairs, and the custom autograd functions of
:mod:`losslab._autograd.pairwise` accumulate the gradient of each list's sum with respect to
its scores in the same blocks (saved: one (B, n) tensor), so the backward pass is one product.
Peak memory is O(block) on top of the inputs; the weights are constants (no gradient).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from losslab._autograd.pairwise import ordered_pair_sums as _ordered_pair_sums
from losslab._autograd.pairwise import row_blocks, weighted_pair_sums
from losslab._checks import is_compiling
from losslab._reduce import reduce

__all__ = ["ordered_pair_sums", "ordered_pairs", "pair_sums", "reduce_pairwise"]

# Pairs per block (all lists together), read at each call. A block's float32 temporaries are
# 512 KB each and three live at a time, near the 1 MB L2 cache of a core here; 2^17 was the
# fastest or within noise of it among 2^14 .. 2^20 (one thread; smaller blocks pay per-op
# overhead, larger ones cache misses). Whatever n is, a block costs a few MB.
_BLOCK_ELEMENTS = 1 << 17
# Under torch.compile the blocks are unrolled into the graph and Inductor's compile time grows
# with their number (the hinge on [256 x 100]: ~90 s to compile with 2^17-pair blocks, 4-9 s
# with one block), while each block's passes fuse into a few kernels: 2^22 pairs (16 MB per
# float32 buffer, should Inductor keep one) make one block of the usual list sizes.
_COMPILED_BLOCK_ELEMENTS = 1 << 22


def _block() -> int:
    return _COMPILED_BLOCK_ELEMENTS if is_compiling() else _BLOCK_ELEMENTS


WeightBlock = Callable[[int, int], Tensor]  # (lo, hi) -> (B, hi - lo, n) weights, 0 off-pair


def _row_blocks(b: int, n: int) -> list[tuple[int, int]]:
    """The row blocks of :func:`pair_sums` (whole rows)."""
    return row_blocks(b, n, _block())


def pair_sums(
    scores: Tensor, kind: str, param: float, weight_block: WeightBlock
) -> tuple[Tensor, Tensor]:
    """(B,) sums of ``w_ij f(s_i - s_j)`` and (B,) sums of ``w_ij`` over each list's pairs.

    ``kind`` is ``"hinge"`` (``f(d) = max(0, param - d)``) or ``"logistic"``
    (``f(d) = log(1 + exp(-param d))``); ``weight_block(lo, hi)`` gives the (B, hi - lo, n)
    weights of rows ``[lo, hi)``. Gradients reach ``scores`` only.
    """
    return weighted_pair_sums(scores, kind, param, weight_block, _block())


def ordered_pair_sums(
    scores: Tensor, target: Tensor, mask: Tensor, kind: str, param: float
) -> tuple[Tensor, Tensor]:
    """(B,) sums of ``f(s_i - s_j)`` and (B,) numbers of pairs, over the pairs of real items
    with ``target_i > target_j`` (the weights of :func:`ordered_pairs`, evaluated on half the
    pair matrix: see :mod:`losslab._autograd.pairwise`). Gradients reach ``scores`` only.
    """
    return _ordered_pair_sums(scores, target, mask, kind, param, _block())


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
    sync: str = "local",
) -> Tensor:
    """The reductions of the pairwise losses (see ``pairwise_hinge_loss``).

    Per list: its mean over its pairs (0 without a pair). ``none``/``sum``: those (weighted);
    ``mean``: sum_b w_b S_b / sum_b w_b P_b (``"pairs"``) or the weighted mean of the per-list
    means over the lists with a pair (``"lists"``). ``sync="global"`` takes the totals and
    counts of ``sum``/``mean`` over every rank (padded layout: ``Lists.reduce_sync``).
    """
    has_pair = count > 0
    # clamp: a list without a pair has total 0 (zero gradient) and divides by 1, not 0.
    per_list = total / count.clamp_min(1.0)
    if reduction == "mean" and normalization == "pairs":
        return reduce(
            per_list,
            "mean",
            sample_weight=sample_weight,
            weight=count,
            out_dtype=out_dtype,
            sync=sync,
        )
    return reduce(
        per_list,
        reduction,
        sample_weight=sample_weight,
        mask=has_pair,
        out_dtype=out_dtype,
        sync=sync,
    )
