"""ApproxNDCG: minus the NDCG computed with sigmoid-smoothed ranks."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab._checks import check_float, check_int_option, check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.distributed import check_sync
from losslab.losses.base import Loss
from losslab.losses.ranking._lists import as_lists
from losslab.losses.ranking._ndcg import gains, ideal_dcg

__all__ = ["ApproxNDCGLoss", "approx_ndcg_loss"]


def _check_options(fn: str, alpha: Any, k: Any) -> tuple[float, Optional[int]]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return check_float(fn, "alpha", alpha, low=0.0, low_open=True), check_int_option(
        fn, "k", k, low=1, allow_none=True
    )


def approx_ndcg_loss(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Optional[Tensor] = None,
    group: Optional[Tensor] = None,
    alpha: float = 10.0,
    k: Optional[int] = None,
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""ApproxNDCG loss: minus the NDCG of a list under sigmoid-approximated ranks.

    Over the real items of a list, with gains :math:`g_i = 2^{y_i} - 1`:

    .. math::

        \hat r_i = 1 + \sum_{j \ne i} \sigma\big(-\alpha (s_i - s_j)\big), \qquad
        \ell = -\frac{1}{\mathrm{IDCG@k}} \sum_i \frac{g_i \, t_i}{\log_2(1 + \hat r_i)}

    with :math:`t_i = 1` without a cut-off, and with ``k`` the truncation
    :math:`t_i = \sigma\big(\alpha (k + \tfrac12 - \hat r_i)\big)` (Qin et al.'s smoothed
    indicator :math:`1\{r_i \le k\}`, thresholded half-way between ranks k and k + 1).
    :math:`\mathrm{IDCG@k}` is the exact ideal DCG. As :math:`\alpha \to \infty` the value tends
    to minus the true NDCG@k of the score order. The loss is :math:`-\mathrm{NDCG}` (as in
    allRank), in :math:`[-1, 0]` up to the approximation. A list with ideal DCG 0 (no relevant
    item, or fully masked) has loss 0 with zero gradient and is left out of the mean. Pairwise:
    O(n^2) memory per list.

    Across processes, ``sync="global"`` gives every rank the loss of the global lists: the flat
    layout gathers every rank's items first (a query's items may sit on several ranks; group
    ids must name the same query everywhere; ``none`` then returns every global list), the
    padded layout (whole lists per row) only takes the reduction over every rank's lists.

    Args:
        scores: (B, n) padded lists, or (N,) flat items with ``group``; floating point.
        target: relevance >= 0, same shape as ``scores``.
        mask: (B, n) bool, True at real items (padded layout only; default all real).
        group: (N,) integer query ids (flat layout; lists in ascending id order).
        alpha: sharpness of the sigmoid (> 0).
        k: rank cut-off (int >= 1) or ``None`` (the whole list).
        sync: ``"local" | "global"`` (above and :mod:`losslab.distributed`); with the flat
            layout and ``"global"``, ``sample_weight`` has one weight per distinct group of
            the global batch (ascending id order), the same tensor on every rank.
        sample_weight: (B,) non-negative weights per list (per group, ascending id order).
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns (B,).

    Reference: Qin, Liu and Li, "A general approximation framework for direct optimization of
    information retrieval measures", Information Retrieval 13, 2010.

    >>> import torch
    >>> approx_ndcg_loss(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 2.0]]))
    tensor(-0.6885)
    """
    fn = "approx_ndcg_loss"
    check_reduction(fn, reduction)
    sync = check_sync(fn, sync)
    alpha, k = _check_options(fn, alpha, k)
    lists = as_lists(
        fn,
        scores,
        target,
        mask=mask,
        group=group,
        sample_weight=sample_weight,
        nonnegative_target=True,
        validate=validate,
        sync=sync,
    )
    s, real = lists.scores, lists.mask
    n = s.shape[1]
    # sigmoid(-alpha (s_i - s_j)) saturates to exactly 0 or 1 for large gaps; its gradient
    # sigma (1 - sigma) underflows to 0 there, never NaN.
    pair = torch.sigmoid(-alpha * (s.unsqueeze(2) - s.unsqueeze(1)))
    others = real.unsqueeze(1) & real.unsqueeze(2)
    others = others & ~torch.eye(n, dtype=torch.bool, device=s.device)
    rank = 1.0 + torch.where(others, pair, torch.zeros_like(pair)).sum(2)
    weight = 1.0 / torch.log2(1.0 + rank)  # rank >= 1: no division by 0
    if k is not None:
        weight = weight * torch.sigmoid(alpha * (k + 0.5 - rank))
    dcg = (gains(lists.target, real) * weight).sum(1)
    idcg = ideal_dcg(lists.target, real, k=k)
    counts = idcg > 0
    # Double where: the division never sees a 0 denominator, so no NaN reaches the gradient.
    safe_idcg = torch.where(counts, idcg, torch.ones_like(idcg))
    ndcg = torch.where(counts, dcg / safe_idcg, torch.zeros_like(dcg))
    return reduce(
        -ndcg,
        reduction,
        sample_weight=sample_weight,
        mask=counts,
        out_dtype=output_dtype(scores),
        sync=lists.reduce_sync,
    )


@register
class ApproxNDCGLoss(Loss):
    """ApproxNDCG: minus the NDCG computed with sigmoid-smoothed ranks."""

    key = "approx_ndcg"
    family = "ranking"
    input_kind = "scores"
    pointwise = False
    function = staticmethod(approx_ndcg_loss)
    needs_global_stats = True  # sync="global": lists split across ranks (flat layout)

    def __init__(
        self,
        *,
        alpha: float = 10.0,
        k: Optional[int] = None,
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("ApproxNDCGLoss", alpha, k)
        check_reduction("ApproxNDCGLoss", reduction)
        check_sync("ApproxNDCGLoss", sync)
        self._store(alpha=alpha, k=k, sync=sync, validate=validate, reduction=reduction)
