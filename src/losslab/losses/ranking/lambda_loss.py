"""LambdaLoss: NDCG-weighted logistic pairwise loss (NDCG-Loss1/2/2++ and LambdaRank weights)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_choice, check_float, check_int_option, check_reduction
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.distributed import check_sync
from losslab.losses.base import Loss
from losslab.losses.ranking._lists import as_lists
from losslab.losses.ranking._ndcg import discounts, gains, ideal_dcg
from losslab.losses.ranking._pairs import pair_sums

__all__ = ["LambdaLoss", "lambda_loss"]

WEIGHTINGS = ("ndcg_loss2pp", "ndcg_loss2", "ndcg_loss1", "lambdarank")


def _check_options(
    fn: str, weighting: str, k: Optional[int], sigma: float, mu: float
) -> tuple[str, Optional[int], float, float]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return (
        check_choice(fn, "weighting", weighting, WEIGHTINGS),
        check_int_option(fn, "k", k, low=1, allow_none=True),
        check_float(fn, "sigma", sigma, low=0.0, low_open=True),
        check_float(fn, "mu", mu, low=0.0),
    )


def lambda_loss(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Optional[Tensor] = None,
    group: Optional[Tensor] = None,
    weighting: str = "ndcg_loss2pp",
    k: Optional[int] = None,
    sigma: float = 1.0,
    mu: float = 10.0,
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""LambdaLoss: a logistic pairwise loss weighted by the NDCG change of each pair.

    Items are ranked by the current scores (descending, ties broken by position; ranks
    :math:`r_i` from 1). With gains :math:`G_i = (2^{y_i} - 1) / \mathrm{IDCG@k}` and discounts
    :math:`D_i = \log_2(1 + r_i)`, a list's loss is

    .. math::

        \ell = \sum_{(i, j)} w_{ij} \, \log_2\bigl(1 + e^{-\sigma (s_i - s_j)}\bigr)

    over pairs of real items with both ranks :math:`\le k` (all ranks when ``k`` is None) and

    * ``"ndcg_loss2"``: :math:`y_i > y_j`, :math:`w_{ij} = \delta_{ij} |G_i - G_j|` with
      :math:`\delta_{ij} = 1/\log_2(1 + |r_i - r_j|) - 1/\log_2(2 + |r_i - r_j|)`;
    * ``"lambdarank"``: :math:`y_i > y_j`, :math:`w_{ij} = |1/D_i - 1/D_j| \, |G_i - G_j|`;
    * ``"ndcg_loss2pp"`` (default): :math:`y_i > y_j`, :math:`\mu` times the NDCG-Loss2 weight plus
      the LambdaRank weight;
    * ``"ndcg_loss1"``: every pair :math:`i \ne j` (the paper's product over all j),
      :math:`w_{ij} = G_i / D_i`.

    The weights are constants (no gradient flows through the ranks). allRank's ``lambdaLoss``
    uses the same formulas; for ``ndcg_loss1`` it also counts :math:`j = i`, which only adds the
    constant :math:`G_i / D_i` per item. A list whose ideal DCG@k is 0 (no relevant item, or
    fully masked) gives 0 with zero gradient and does not count; ``none`` returns the per-list
    sums (B,) (lists in ascending group-id order for the flat layout), ``sum`` their weighted
    sum, ``mean`` their ``sample_weight``-weighted mean over the lists that count. Pairs are
    evaluated in row blocks (memory linear in the list length).

    Across processes, ``sync="global"`` gives every rank the loss of the global lists: the flat
    layout gathers every rank's items first (a query's items may sit on several ranks; group
    ids must name the same query everywhere; ``none`` then returns every global list), the
    padded layout (whole lists per row) only takes the reduction over every rank's lists.

    Args:
        scores: (B, n) padded lists, or (N,) flat items with ``group``; floating point.
        target: non-negative relevance, same shape as ``scores``.
        mask: (B, n) bool, True at real items (padded layout only; default all real).
        group: (N,) integer query ids (flat layout; lists in ascending id order).
        weighting: ``"ndcg_loss2pp" | "ndcg_loss2" | "ndcg_loss1" | "lambdarank"``.
        k: NDCG cut-off (positive int) or None.
        sigma: positive scale of the score differences.
        mu: non-negative weight of NDCG-Loss2 in ``"ndcg_loss2pp"``.
        sync: ``"local" | "global"`` (above and :mod:`losslab.distributed`); with the flat
            layout and ``"global"``, ``sample_weight`` has one weight per distinct group of
            the global batch (ascending id order), the same tensor on every rank.
        sample_weight: (B,) non-negative weights per list (per group, ascending id order).
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``.

    Reference: Wang, Li, Golbandi, Bendersky and Najork, "The LambdaLoss Framework for Ranking
    Metric Optimization", CIKM 2018.

    >>> import torch
    >>> lambda_loss(torch.tensor([[2.0, 1.5, 0.0]]), torch.tensor([[1.0, 0.0, 2.0]]))
    tensor(11.5734)
    """
    fn = "lambda_loss"
    check_reduction(fn, reduction)
    sync = check_sync(fn, sync)
    weighting, k, sigma, mu = _check_options(fn, weighting, k, sigma, mu)
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
    s, t, m = lists.scores, lists.target, lists.mask
    b, n = s.shape
    with torch.no_grad():
        # Ranks from the current scores; padding sorts last, ties keep their input order.
        key = torch.where(m, s, torch.full_like(s, float("-inf")))
        order = torch.sort(key, dim=1, descending=True, stable=True).indices
        positions = torch.arange(n, device=s.device).expand(b, n)
        rank0 = torch.empty_like(order).scatter_(1, order, positions)  # rank - 1
        inv_d = discounts(n, k=None, like=s)[rank0]  # 1 / D_i
        idcg = ideal_dcg(t, m, k=k)
        counts = idcg > 0
        # Lists with IDCG 0 have all gains 0: divide them by 1, their weights stay 0.
        g = gains(t, m) / torch.where(counts, idcg, torch.ones_like(idcg))[:, None]
        in_k = m if k is None else m & (rank0 < k)
        rank_f = rank0.to(s.dtype)
        index = torch.arange(n, device=s.device)
    inv_ln2 = 1.0 / math.log(2.0)  # log2(1 + e^z) = softplus(z) / ln 2

    def weight_block(lo: int, hi: int) -> Tensor:
        valid = in_k[:, lo:hi, None] & in_k[:, None, :]
        if weighting == "ndcg_loss1":
            valid = valid & (index[lo:hi, None] != index[None, :])
            w = (g * inv_d)[:, lo:hi, None].expand(b, hi - lo, n)
        else:
            valid = valid & (t[:, lo:hi, None] > t[:, None, :])
            dg = (g[:, lo:hi, None] - g[:, None, :]).abs()
            w = torch.zeros((), dtype=s.dtype, device=s.device)
            if weighting in ("lambdarank", "ndcg_loss2pp"):
                w = w + (inv_d[:, lo:hi, None] - inv_d[:, None, :]).abs() * dg
            if weighting in ("ndcg_loss2", "ndcg_loss2pp"):
                # |r_i - r_j| >= 1 on valid pairs; the clamp keeps the diagonal finite.
                gap = (rank_f[:, lo:hi, None] - rank_f[:, None, :]).abs().clamp_min(1.0)
                delta = 1.0 / torch.log2(1.0 + gap) - 1.0 / torch.log2(2.0 + gap)
                w = w + (mu if weighting == "ndcg_loss2pp" else 1.0) * delta * dg
        return torch.where(valid, w * inv_ln2, torch.zeros((), dtype=s.dtype, device=s.device))

    total, _ = pair_sums(s, "logistic", sigma, weight_block)
    return reduce(
        total,
        reduction,
        sample_weight=sample_weight,
        mask=counts,
        out_dtype=output_dtype(scores),
        sync=lists.reduce_sync,
    )


@register
class LambdaLoss(Loss):
    """LambdaLoss: NDCG-weighted logistic pairwise loss (NDCG-Loss1/2/2++ and LambdaRank weights)."""

    key = "lambda_loss"
    family = "ranking"
    input_kind = "scores"
    pointwise = False
    function = staticmethod(lambda_loss)
    needs_global_stats = True  # sync="global": lists split across ranks (flat layout)

    def __init__(
        self,
        *,
        weighting: str = "ndcg_loss2pp",
        k: Optional[int] = None,
        sigma: float = 1.0,
        mu: float = 10.0,
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("LambdaLoss", weighting, k, sigma, mu)
        check_reduction("LambdaLoss", reduction)
        check_sync("LambdaLoss", sync)
        self._store(
            weighting=weighting,
            k=k,
            sigma=sigma,
            mu=mu,
            sync=sync,
            validate=validate,
            reduction=reduction,
        )
