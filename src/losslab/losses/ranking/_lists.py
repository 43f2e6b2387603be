"""The two input layouts of the ranking losses, brought to one padded form.

* padded: ``scores`` and ``target`` of shape (B, n), optional boolean ``mask`` (B, n) with
  ``True`` at real items (default: all real);
* flat: ``scores`` and ``target`` of shape (N,) with integer ``group`` ids (N,) (query ids, in
  any order, as in tabular learning-to-rank data).

:func:`as_lists` returns :class:`Lists` with padded (B, n) tensors either way; for the flat
layout the lists are the groups in ascending id order, items keep their input order within a
group, and the padding is built with a differentiable scatter (gradients reach ``scores``).

``sync="global"`` (:mod:`losslab.distributed`):

* flat layout: a query's items may sit on several processes (data sharded by item). Every
  process's ``scores`` (with autograd), ``target`` and ``group`` are gathered (rank order), and
  the lists are built from the global set, identically on every rank; the loss is then computed
  on the global lists with a *local* reduction (``Lists.reduce_sync == "local"``), so every
  rank returns the same global value and each rank's items get ``world`` x their
  single-process gradient (DDP's averaging divides it back). Group ids must name the same query
  on every rank. ``sample_weight`` is then one weight per distinct group of the GLOBAL batch
  (ascending id order), the same (B_global,) tensor on every rank.
* padded layout: every row is a whole list, nothing is gathered; only the reduction becomes
  global (``Lists.reduce_sync == "global"``: total and count summed over the ranks).

Value checks (``validate``) then run on the gathered data (flat) or agree over the ranks with
one small all-reduce (padded), so every rank raises or none does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from losslab._checks import (
    check_floating,
    check_int,
    check_range,
    check_same_device,
    check_same_shape,
    check_sample_weight,
    fail,
    fmt,
)
from losslab._reduce import compute_dtype
from losslab.distributed import all_gather_cat, check_on_every_rank

__all__ = ["Lists", "as_lists"]


@dataclass(frozen=True)
class Lists:
    scores: Tensor  # (B, n) compute dtype; padding holds 0
    target: Tensor  # (B, n) compute dtype; padding holds 0
    mask: Tensor  # (B, n) bool, True at real items
    reduce_sync: str = "local"  # the `sync` the loss's reduction must use

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(1)


def as_lists(
    fn: str,
    scores: Tensor,
    target: Tensor,
    *,
    mask: Optional[Tensor] = None,
    group: Optional[Tensor] = None,
    sample_weight: Optional[Tensor] = None,
    nonnegative_target: bool = False,
    validate: bool = True,
    sync: str = "local",
) -> Lists:
    """Check either layout and return padded lists (see the module docstring).

    ``sample_weight`` is per list: (B,) for the padded layout, one weight per distinct group
    (in ascending id order) for the flat one. ``nonnegative_target`` refuses negative
    relevance (losses that use gains 2^rel - 1). ``sync`` (already validated): see the module
    docstring.
    """
    check_floating(fn, "scores", scores)
    check_floating(fn, "target", target)
    check_same_shape(fn, "target", target, "scores", scores)
    check_same_device(fn, "target", target, "scores", scores)
    dtype = torch.promote_types(compute_dtype(scores), compute_dtype(target))
    if group is not None:
        if mask is not None:
            fail(fn, "mask", "be None when `group` is given (the flat layout has no padding)", mask)
        if scores.dim() != 1:
            fail(
                fn, "scores", "be 1-D (N,) when `group` is given", tuple(scores.shape), raw_got=True
            )
        check_int(fn, "group", group)
        check_same_shape(fn, "group", group, "scores", scores)
        check_same_device(fn, "group", group, "scores", scores)
        s, t = scores.to(dtype), target.to(dtype)
        if sync == "global":
            s, t, group = _gather_items(s, t, group)
        lists = _from_groups(s, t, group)
    else:
        if scores.dim() != 2:
            fail(
                fn,
                "scores",
                "have shape (B, n) (padded lists), or (N,) with `group` ids",
                tuple(scores.shape),
                raw_got=True,
            )
        if mask is None:
            mask = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
        else:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
                got = (
                    f"dtype {fmt(mask.dtype)}" if isinstance(mask, Tensor) else type(mask).__name__
                )
                fail(
                    fn,
                    "mask",
                    "be a boolean tensor (True at real items)",
                    got,
                    kind=TypeError,
                    raw_got=True,
                )
            check_same_shape(fn, "mask", mask, "scores", scores)
            check_same_device(fn, "mask", mask, "scores", scores)
        zero = scores.new_zeros((), dtype=dtype)
        lists = Lists(
            torch.where(mask, scores.to(dtype), zero),
            torch.where(mask, target.to(dtype), zero),
            mask,
            reduce_sync=sync,
        )

    def check_values() -> None:
        check_range(
            fn,
            "target",
            lists.target,
            low=0.0 if nonnegative_target else None,
            validate=validate,
            mask=lists.mask,
        )
        if sample_weight is not None:
            check_sample_weight(fn, sample_weight, lists.scores.shape[0], scores, validate=validate)

    # Padded + "global": the values are this rank's own (the reduction's collective follows).
    # Flat + "global" gathered them, so every rank checks the same values (reduce_sync "local").
    check_on_every_rank(fn, check_values, sync=lists.reduce_sync, validate=validate, like=scores)
    return lists


def _gather_items(scores: Tensor, target: Tensor, group: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every process's items (rank order): scores with autograd, target and group ids."""
    # One differentiable gather for scores and target together (the same dtype), one for ids.
    both = all_gather_cat(torch.stack([scores, target], dim=1))
    ids = all_gather_cat(group.to(torch.int64))
    return both[:, 0], both[:, 1], ids


def _from_groups(scores: Tensor, target: Tensor, group: Tensor) -> Lists:
    order = torch.sort(group, stable=True).indices  # groups ascending, input order kept inside
    sorted_groups = group[order]
    _, counts = torch.unique_consecutive(sorted_groups, return_counts=True)
    b = counts.numel()
    n = int(counts.max()) if b else 0
    starts = torch.cumsum(counts, 0) - counts
    list_index = torch.repeat_interleave(torch.arange(b, device=group.device), counts)
    position = torch.arange(group.numel(), device=group.device) - starts[list_index]
    flat_index = list_index * n + position
    size = b * n

    def pad(values: Tensor) -> Tensor:
        return values.new_zeros(size).scatter(0, flat_index, values[order]).reshape(b, n)

    mask = torch.zeros(size, dtype=torch.bool, device=group.device)
    mask[flat_index] = True
    return Lists(pad(scores), pad(target), mask.reshape(b, n))


def has_ordered_pair(target: Tensor, mask: Tensor) -> Tensor:
    """(B,) True where a list holds at least one ordered pair (two different relevances)."""
    if target.shape[1] == 0:
        return torch.zeros(target.shape[0], dtype=torch.bool, device=target.device)
    inf = torch.full_like(target, float("inf"))
    return torch.where(mask, target, -inf).amax(1) > torch.where(mask, target, inf).amin(1)
