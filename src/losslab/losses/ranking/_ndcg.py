"""Gains, discounts and ideal DCG on padded lists (shared by the NDCG-based losses).

Conventions (those of Burges et al. and allRank): gain ``2^rel - 1``, discount
``1 / log2(1 + rank)`` with ranks starting at 1, optional cut-off ``k`` (positions beyond k are
discounted to 0). A list whose ideal DCG is 0 (no relevant item, or no item) has no defined
NDCG: the losses document the value they give it (and give it zero gradient).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["discounts", "gains", "ideal_dcg"]


def gains(target: Tensor, mask: Tensor) -> Tensor:
    """2^rel - 1 at real items, 0 at padding (relevance must be >= 0)."""
    return torch.where(
        mask, torch.expm1(target * torch.log(target.new_tensor(2.0))), target.new_zeros(())
    )


def discounts(n: int, *, k: Optional[int], like: Tensor) -> Tensor:
    """(n,) 1 / log2(1 + rank) for ranks 1..n, 0 beyond the cut-off k."""
    ranks = torch.arange(1, n + 1, dtype=like.dtype, device=like.device)
    d = 1.0 / torch.log2(1.0 + ranks)
    if k is not None:
        d = torch.where(ranks <= k, d, d.new_zeros(()))
    return d


def ideal_dcg(target: Tensor, mask: Tensor, *, k: Optional[int]) -> Tensor:
    """(B,) DCG of the ideal order (items sorted by relevance), with the cut-off k."""
    g = gains(target, mask)
    ideal = torch.sort(g, dim=1, descending=True).values
    return (ideal * discounts(target.shape[1], k=k, like=target)).sum(1)
