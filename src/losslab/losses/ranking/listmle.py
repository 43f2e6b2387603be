"""ListMLE: Plackett-Luce negative log-likelihood of the ground-truth order."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab._checks import check_reduction, fail
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.distributed import check_sync
from losslab.losses.base import Loss
from losslab.losses.ranking._lists import Lists, as_lists, has_ordered_pair

__all__ = ["ListMLELoss", "listmle_loss"]


def _check_options(fn: str, seed: Any) -> Optional[int]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        fail(fn, "seed", "be an int or None", type(seed).__name__, kind=TypeError, raw_got=True)
    return seed


def _ground_truth_order(lists: Lists, seed: Optional[int]) -> Tensor:
    """(B, n) item indices by relevance descending, padding last; ties as documented."""
    b, n = lists.target.shape
    key = torch.where(lists.mask, lists.target, torch.full_like(lists.target, float("-inf")))
    if seed is None:
        # Stable sort: tied items keep their position order.
        return torch.sort(key, dim=1, descending=True, stable=True).indices
    # Lexicographic sort (relevance desc, then a seeded uniform key asc): a stable sort by the
    # random key, then a stable sort by relevance. The keys are float64 draws on the CPU, so the
    # order does not depend on the input dtype or device.
    rand = torch.rand((b, n), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    first = torch.sort(rand, dim=1, stable=True).indices.to(key.device)
    second = torch.sort(key.gather(1, first), dim=1, descending=True, stable=True).indices
    return first.gather(1, second)


def listmle_loss(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Optional[Tensor] = None,
    group: Optional[Tensor] = None,
    seed: Optional[int] = None,
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""ListMLE loss: negative Plackett-Luce log-likelihood of the items sorted by relevance.

    With :math:`\pi` the real items of a list sorted by target descending and :math:`L` their
    number:

    .. math::

        \ell = \sum_{r=1}^{L} \Big( \log \sum_{q=r}^{L} e^{s_{\pi(q)}} - s_{\pi(r)} \Big)

    computed with a reverse cumulative log-sum-exp (stable for any score magnitude). Ties in the
    target are broken at random but reproducibly: with ``seed`` an int, uniform keys drawn from
    ``torch.Generator().manual_seed(seed)`` (float64, CPU, shape (B, n) of the padded lists) order
    tied items (smaller key first); with ``seed=None`` tied items keep their position order (input
    order within a group for the flat layout). A list with no ordered pair (one item, all
    relevances equal, or fully masked) has loss 0 with zero gradient and is left out of the mean.

    Across processes, ``sync="global"`` gives every rank the loss of the global lists: the flat
    layout gathers every rank's items first (a query's items may sit on several ranks; group
    ids must name the same query everywhere; ``none`` then returns every global list), the
    padded layout (whole lists per row) only takes the reduction over every rank's lists.

    Args:
        scores: (B, n) padded lists, or (N,) flat items with ``group``; floating point.
        target: relevance, same shape as ``scores``.
        mask: (B, n) bool, True at real items (padded layout only; default all real).
        group: (N,) integer query ids (flat layout; lists in ascending id order).
        seed: int seeding the tie-breaking draw, or ``None`` (ties by position).
        sync: ``"local" | "global"`` (above and :mod:`losslab.distributed`); with the flat
            layout and ``"global"``, ``sample_weight`` has one weight per distinct group of
            the global batch (ascending id order), the same tensor on every rank.
        sample_weight: (B,) non-negative weights per list (per group, ascending id order).
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns (B,).

    Reference: Xia et al., "Listwise Approach to Learning to Rank: Theory and Algorithm",
    ICML 2008.

    >>> import torch
    >>> listmle_loss(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 2.0]]))
    tensor(2.7209)
    """
    fn = "listmle_loss"
    check_reduction(fn, reduction)
    sync = check_sync(fn, sync)
    seed = _check_options(fn, seed)
    lists = as_lists(
        fn,
        scores,
        target,
        mask=mask,
        group=group,
        sample_weight=sample_weight,
        validate=validate,
        sync=sync,
    )
    order = _ground_truth_order(lists, seed)
    s = lists.scores.gather(1, order)
    real = lists.mask.gather(1, order)  # real items first, padding last
    # Padding sits after every real item, so it enters every reverse cumulative sum: it gets a
    # very negative *finite* score (exp underflows to exactly 0; no -inf reaches the backward).
    fill = torch.finfo(s.dtype).min / 4
    s = torch.where(real, s, torch.full_like(s, fill))
    tail = torch.logcumsumexp(s.flip(1), dim=1).flip(1)
    terms = torch.where(real, tail - s, torch.zeros_like(s))
    loss = terms.sum(1)
    counts = has_ordered_pair(lists.target, lists.mask)
    return reduce(
        loss,
        reduction,
        sample_weight=sample_weight,
        mask=counts,
        out_dtype=output_dtype(scores),
        sync=lists.reduce_sync,
    )


@register
class ListMLELoss(Loss):
    """ListMLE: Plackett-Luce negative log-likelihood of the ground-truth order."""

    key = "listmle"
    family = "ranking"
    input_kind = "scores"
    pointwise = False
    function = staticmethod(listmle_loss)
    needs_global_stats = True  # sync="global": lists split across ranks (flat layout)

    def __init__(
        self,
        *,
        seed: Optional[int] = None,
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("ListMLELoss", seed)
        check_reduction("ListMLELoss", reduction)
        check_sync("ListMLELoss", sync)
        self._store(seed=seed, sync=sync, validate=validate, reduction=reduction)
