"""ListNet: cross-entropy between the top-one probabilities of the target and of the scores."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.distributed import check_sync
from losslab.losses.base import Loss
from losslab.losses.ranking._lists import as_lists, has_ordered_pair

__all__ = ["ListNetLoss", "listnet_loss"]


def _masked_log_softmax(x: Tensor, mask: Tensor) -> Tensor:
    """log_softmax over the real items of each list; 0 (not -inf) at padding.

    Padding gets -inf before the softmax so that it takes no probability. A list with no
    real item would be all -inf (NaN after the softmax): its row is replaced by zeros first.
    The result is 0 at padding (second ``where``) so that ``p * log p`` never meets
    ``0 * -inf`` in the forward or the backward pass.
    """
    any_real = mask.any(1, keepdim=True)
    filled = torch.where(mask, x, torch.full_like(x, float("-inf")))
    filled = torch.where(any_real, filled, torch.zeros_like(x))
    return torch.where(mask, torch.log_softmax(filled, dim=1), torch.zeros_like(x))


def listnet_loss(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Optional[Tensor] = None,
    group: Optional[Tensor] = None,
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""ListNet loss (top-one probability): cross-entropy between softmax(target) and softmax(scores).

    Per list, over its real items :math:`i` (padding takes no probability):

    .. math::

        \ell = -\sum_i \operatorname{softmax}(y)_i \, \log \operatorname{softmax}(s)_i

    The target is softmaxed (the top-one probability with :math:`\phi = \exp` of the paper, as
    allRank does), so any real-valued relevance works. A list with no ordered pair (all its
    relevances equal, one item, or fully masked) is degenerate: its loss is 0 with zero gradient
    and it is left out of the mean. ``none`` returns the per-list losses (B,); ``mean`` their
    ``sample_weight``-weighted mean over the lists that count.

    Across processes, ``sync="global"`` gives every rank the loss of the global lists: the flat
    layout gathers every rank's items first (a query's items may sit on several ranks; group
    ids must name the same query everywhere; ``none`` then returns every global list), the
    padded layout (whole lists per row) only takes the reduction over every rank's lists.

    Args:
        scores: (B, n) padded lists, or (N,) flat items with ``group``; floating point.
        target: relevance, same shape as ``scores``.
        mask: (B, n) bool, True at real items (padded layout only; default all real).
        group: (N,) integer query ids (flat layout; lists in ascending id order).
        sync: ``"local" | "global"`` (above and :mod:`losslab.distributed`); with the flat
            layout and ``"global"``, ``sample_weight`` has one weight per distinct group of
            the global batch (ascending id order), the same tensor on every rank.
        sample_weight: (B,) non-negative weights per list (per group, ascending id order).
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``.

    Reference: Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach",
    ICML 2007.

    >>> import torch
    >>> listnet_loss(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 2.0]]))
    tensor(1.8281)
    """
    fn = "listnet_loss"
    check_reduction(fn, reduction)
    sync = check_sync(fn, sync)
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
    log_p_scores = _masked_log_softmax(lists.scores, lists.mask)
    p_target = _masked_log_softmax(lists.target, lists.mask).exp() * lists.mask
    loss = -(p_target * log_p_scores).sum(1)
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
class ListNetLoss(Loss):
    """ListNet: cross-entropy between the top-one probabilities of the target and of the scores."""

    key = "listnet"
    family = "ranking"
    input_kind = "scores"
    pointwise = False
    function = staticmethod(listnet_loss)
    needs_global_stats = True  # sync="global": lists split across ranks (flat layout)

    def __init__(
        self, *, sync: str = "local", validate: bool = True, reduction: str = "mean"
    ) -> None:
        super().__init__()
        check_reduction("ListNetLoss", reduction)
        check_sync("ListNetLoss", sync)
        self._store(sync=sync, validate=validate, reduction=reduction)
