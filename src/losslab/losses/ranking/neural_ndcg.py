"""NeuralNDCG: minus the NDCG under a NeuralSort relaxed permutation with Sinkhorn scaling."""

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
from losslab.losses.ranking._ndcg import discounts, gains, ideal_dcg

__all__ = ["NeuralNDCGLoss", "neural_ndcg_loss"]


def _check_options(
    fn: str, temperature: Any, k: Any, sinkhorn_iterations: Any
) -> tuple[float, Optional[int], int]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    temperature = check_float(fn, "temperature", temperature, low=0.0, low_open=True)
    k = check_int_option(fn, "k", k, low=1, allow_none=True)
    iterations = check_int_option(fn, "sinkhorn_iterations", sinkhorn_iterations, low=0)
    assert iterations is not None
    return temperature, k, iterations


def neural_ndcg_loss(
    scores: Tensor,
    target: Tensor,
    *,
    mask: Optional[Tensor] = None,
    group: Optional[Tensor] = None,
    temperature: float = 1.0,
    k: Optional[int] = None,
    sinkhorn_iterations: int = 50,
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""NeuralNDCG loss: minus the NDCG of the relaxed sort of the scores (NeuralSort + Sinkhorn).

    For a list with :math:`L` real items, NeuralSort's relaxed permutation matrix has rows
    (ranks) :math:`r = 1..L` and columns (items) :math:`j`:

    .. math::

        \hat P_{r,:} = \operatorname{softmax}_j\Big(\big((L + 1 - 2r)\, s_j
            - \textstyle\sum_{l} |s_j - s_l|\big) / \tau\Big)

    Sinkhorn scaling then alternately normalises its columns and rows
    (``sinkhorn_iterations`` times, rows last). With gains :math:`g = 2^y - 1` and discounts
    :math:`d_r = 1 / \log_2(1 + r)` (0 beyond ``k``):

    .. math:: \ell = -\frac{\sum_r d_r (\hat P g)_r}{\mathrm{IDCG@k}}

    Padding is handled as in allRank: padded items take no row or column of the real block
    (their entries are 0), and :math:`L` counts the real items only; this implementation puts the
    padded *ranks* last, so padding may sit anywhere in a list. Sinkhorn runs in log space for a
    fixed number of iterations (allRank also stops early at tolerance 1e-6 and clamps sums at
    1e-10; that changes values by less than the tolerance). As :math:`\tau \to 0` the value tends
    to minus the true NDCG@k of the score order. A list with ideal DCG 0 (no relevant item, or
    fully masked) has loss 0 with zero gradient and is left out of the mean. O(n^2) memory per
    list.

    Across processes, ``sync="global"`` gives every rank the loss of the global lists: the flat
    layout gathers every rank's items first (a query's items may sit on several ranks; group
    ids must name the same query everywhere; ``none`` then returns every global list), the
    padded layout (whole lists per row) only takes the reduction over every rank's lists.

    Args:
        scores: (B, n) padded lists, or (N,) flat items with ``group``; floating point.
        target: relevance >= 0, same shape as ``scores``.
        mask: (B, n) bool, True at real items (padded layout only; default all real).
        group: (N,) integer query ids (flat layout; lists in ascending id order).
        temperature: NeuralSort softmax temperature :math:`\tau` (> 0).
        k: rank cut-off (int >= 1) or ``None`` (the whole list).
        sinkhorn_iterations: number of Sinkhorn (column, row) scalings (int >= 0).
        sync: ``"local" | "global"`` (above and :mod:`losslab.distributed`); with the flat
            layout and ``"global"``, ``sample_weight`` has one weight per distinct group of
            the global batch (ascending id order), the same tensor on every rank.
        sample_weight: (B,) non-negative weights per list (per group, ascending id order).
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns (B,).

    Reference: Pobrotyn and Bialobrzeski, "NeuralNDCG: Direct Optimisation of a Ranking Metric
    via Differentiable Relaxation of Sorting", 2021; Grover et al., "Stochastic Optimization of
    Sorting Networks via Continuous Relaxations", ICLR 2019.

    >>> import torch
    >>> neural_ndcg_loss(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 2.0]]))
    tensor(-0.6939)
    """
    fn = "neural_ndcg_loss"
    check_reduction(fn, reduction)
    sync = check_sync(fn, sync)
    temperature, k, iterations = _check_options(fn, temperature, k, sinkhorn_iterations)
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
    length = real.sum(1, keepdim=True).to(s.dtype)  # (B, 1) real items L
    ranks = torch.arange(1, n + 1, dtype=s.dtype, device=s.device)
    real_rank = ranks.unsqueeze(0) <= length  # (B, n): rows 1..L are real ranks
    gap = torch.abs(s.unsqueeze(2) - s.unsqueeze(1))
    pair_real = real.unsqueeze(1) & real.unsqueeze(2)
    spread = torch.where(pair_real, gap, torch.zeros_like(gap)).sum(2)  # (B, n) sum_l |s_j - s_l|
    scaling = length + 1.0 - 2.0 * ranks  # (B, n) over ranks
    logits = (scaling.unsqueeze(2) * s.unsqueeze(1) - spread.unsqueeze(1)) / temperature
    # Block structure: real ranks x real items hold the NeuralSort logits, padded ranks x padded
    # items hold 0 (log 1), the off-diagonal blocks -inf (probability 0). Every row and column
    # then has a finite entry (as many padded ranks as padded items), so the log-space Sinkhorn
    # never computes -inf - (-inf); the padded block is dropped at the end.
    inner = real_rank.unsqueeze(2) & real.unsqueeze(1)
    outer = ~real_rank.unsqueeze(2) & ~real.unsqueeze(1)
    log_p = torch.where(inner, logits, torch.full_like(logits, float("-inf")))
    log_p = torch.where(outer, torch.zeros_like(logits), log_p)
    log_p = torch.log_softmax(log_p, dim=2)
    for _ in range(iterations):
        log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)  # columns sum to 1
        log_p = log_p - torch.logsumexp(log_p, dim=2, keepdim=True)  # rows sum to 1
    p_hat = torch.where(inner, log_p.exp(), torch.zeros_like(log_p))
    g = gains(lists.target, real)
    expected_gain = (p_hat * g.unsqueeze(1)).sum(2)  # (B, n) over ranks
    dcg = (expected_gain * discounts(n, k=k, like=s)).sum(1)
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
class NeuralNDCGLoss(Loss):
    """NeuralNDCG: minus the NDCG under a NeuralSort relaxed permutation with Sinkhorn scaling."""

    key = "neural_ndcg"
    family = "ranking"
    input_kind = "scores"
    pointwise = False
    function = staticmethod(neural_ndcg_loss)
    needs_global_stats = True  # sync="global": lists split across ranks (flat layout)

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        k: Optional[int] = None,
        sinkhorn_iterations: int = 50,
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("NeuralNDCGLoss", temperature, k, sinkhorn_iterations)
        check_reduction("NeuralNDCGLoss", reduction)
        check_sync("NeuralNDCGLoss", sync)
        self._store(
            temperature=temperature,
            k=k,
            sinkhorn_iterations=sinkhorn_iterations,
            sync=sync,
            validate=validate,
            reduction=reduction,
        )
