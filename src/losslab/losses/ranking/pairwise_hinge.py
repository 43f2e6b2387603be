"""Pairwise hinge ranking loss: max(0, margin - (s_i - s_j)) over the ordered pairs of each list."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._checks import check_choice, check_float, check_reduction
from losslab._reduce import output_dtype
from losslab._registry import register
from losslab.distributed import check_sync
from losslab.losses.base import Loss
from losslab.losses.ranking._lists import as_lists
from losslab.losses.ranking._pairs import ordered_pair_sums, reduce_pairwise

__all__ = ["PairwiseHingeLoss", "pairwise_hinge_loss"]

NORMALIZATIONS = ("pairs", "lists")


def _check_options(fn: str, margin: float, normalization: str) -> tuple[float, str]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return (
        check_float(fn, "margin", margin, low=0.0),
        check_choice(fn, "normalization", normalization, NORMALIZATIONS),
    )


def pairwise_hinge_loss(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Optional[Tensor] = None,
    group: Optional[Tensor] = None,
    margin: float = 1.0,
    normalization: str = "pairs",
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Pairwise hinge (margin ranking) loss over the ordered pairs of each list.

    For every pair of real items of one list with :math:`y_i > y_j` (ties give no pair):

    .. math:: \ell_{ij} = \max\bigl(0,\; m - (s_i - s_j)\bigr)

    The pairs are evaluated in row blocks with an analytic gradient (memory linear in the list
    length, see ``losslab._autograd.pairwise``). A list's loss is the mean of its pair losses,
    0 for a list without a pair (one item, all relevances equal, fully masked); such lists have
    zero gradient and do not count.

    * ``none``: (B,) per-list means (lists in ascending group-id order for the flat layout),
      times ``sample_weight``;
    * ``sum``: the sum of those;
    * ``mean`` with ``normalization="pairs"`` (default, allRank's convention): the sum of all
      pair losses over the number of pairs in the batch, :math:`\sum_b w_b S_b / \sum_b w_b P_b`
      (:math:`S_b` the sum of list b's pair losses, :math:`P_b` its number of pairs), so each pair
      counts the same; with ``"lists"``: the ``sample_weight``-weighted mean of the per-list
      means over the lists with a pair. 0 (zero gradient) when no list has a pair.

    Across processes, ``sync="global"`` gives every rank the loss of the global lists: the flat
    layout gathers every rank's items first (a query's items may sit on several ranks; group
    ids must name the same query everywhere; ``none`` then returns every global list), the
    padded layout (whole lists per row) only takes the reduction over every rank's lists.

    Args:
        scores: (B, n) padded lists, or (N,) flat items with ``group``; floating point.
        target: relevance, same shape as ``scores`` (any real values; only the order matters).
        mask: (B, n) bool, True at real items (padded layout only; default all real).
        group: (N,) integer query ids (flat layout; lists in ascending id order).
        margin: non-negative margin :math:`m`.
        normalization: ``"pairs" | "lists"``, the ``mean`` reduction (above).
        sync: ``"local" | "global"`` (above and :mod:`losslab.distributed`); with the flat
            layout and ``"global"``, ``sample_weight`` has one weight per distinct group of
            the global batch (ascending id order), the same tensor on every rank.
        sample_weight: (B,) non-negative weights per list (per group, ascending id order).
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``.

    Reference: Herbrich, Graepel and Obermayer, "Large Margin Rank Boundaries for Ordinal
    Regression", 2000 (the RankSVM hinge); Joachims, "Optimizing Search Engines using
    Clickthrough Data", KDD 2002.

    >>> import torch
    >>> pairwise_hinge_loss(torch.tensor([[2.0, 1.5, 0.0]]), torch.tensor([[1.0, 0.0, 2.0]]))
    tensor(2.)
    """
    fn = "pairwise_hinge_loss"
    check_reduction(fn, reduction)
    sync = check_sync(fn, sync)
    margin, normalization = _check_options(fn, margin, normalization)
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
    total, count = ordered_pair_sums(lists.scores, lists.target, lists.mask, "hinge", margin)
    return reduce_pairwise(
        total,
        count,
        normalization,
        reduction,
        sample_weight=sample_weight,
        out_dtype=output_dtype(scores),
        sync=lists.reduce_sync,
    )


@register
class PairwiseHingeLoss(Loss):
    """Pairwise hinge ranking loss: max(0, margin - (s_i - s_j)) over the ordered pairs of each list."""

    key = "pairwise_hinge"
    family = "ranking"
    input_kind = "scores"
    pointwise = False
    function = staticmethod(pairwise_hinge_loss)
    needs_global_stats = True  # sync="global": lists split across ranks (flat layout)

    def __init__(
        self,
        *,
        margin: float = 1.0,
        normalization: str = "pairs",
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("PairwiseHingeLoss", margin, normalization)
        check_reduction("PairwiseHingeLoss", reduction)
        check_sync("PairwiseHingeLoss", sync)
        self._store(
            margin=margin,
            normalization=normalization,
            sync=sync,
            validate=validate,
            reduction=reduction,
        )
