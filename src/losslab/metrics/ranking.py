r"""Ranking metrics (NDCG@k, MRR, MAP, precision@k), streamed list by list or merged by query.

Inputs follow the ranking losses (see :mod:`losslab.losses.ranking._lists`): padded ``(B, n)``
lists with an optional boolean ``mask``, or flat ``(N,)`` items with integer ``group`` (query)
ids, one layout per call. Two modes, chosen by ``merge_groups``:

* **Streaming** (``merge_groups=False``, default). Each metric keeps two float64 sums, the sum
  of its per-list values and the number of lists that count (``dist_reduce_fx="sum"``): O(1)
  memory, and the value does not depend on how whole lists were split into batches or
  processes. **Lists never span calls**: each ``update`` must hold whole lists; a group id
  that appears in two calls, or on two processes, is two lists (no ids are kept).
* **Merged** (``merge_groups=True``, flat layout only). ``update`` checks the items and keeps
  them (scores and target as float64, group ids as int64; list states gathered with
  ``dist_reduce_fx="cat"``), ``compute`` builds the lists of every item seen, over every
  ``update`` and every process, by group id, as torchmetrics' retrieval metrics do: a query
  split across batches or ranks is one list. Group ids must then be global (the same query has
  the same id everywhere). Memory is O(items seen) per process (every process holds all items
  after the sync in ``compute``).

Conventions shared by the four metrics:

* **Order.** Items are ranked by score, descending. ``ties="stable"`` (default) breaks ties by
  position (the input order within the list or group, as the ranking losses rank; with
  ``merge_groups=True`` the order of the concatenated items: update order, then rank order);
  ``ties="pessimistic"`` puts the less relevant of tied items first, so tied scores never earn
  credit. Either way the order is deterministic. NaN scores are refused (``validate=True``);
  with ``validate=False`` they rank first (``torch.sort``'s order).
* **Relevance.** ``target >= 0`` (checked); an item is *relevant* when ``target > 0``. NDCG uses
  the graded value through its gain, the other metrics the binary relevance.
* **Lists without a relevant item** have no defined value: ``empty="skip"`` (default) leaves
  them out of the mean (as the ranking losses do, and torchmetrics'
  ``empty_target_action="skip"``), ``empty="zero"`` counts them as 0 (torchmetrics' ``"neg"``,
  scikit-learn's ``ndcg_score``). A padded row without any real item is not a list and never
  counts. When no list counts, ``compute()`` returns NaN and warns (torchmetrics' retrieval
  metrics return 0 there).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from typing import Any, Optional

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.utilities import dim_zero_cat

from losslab._checks import check_choice, check_int_option, fail, is_compiling
from losslab.losses.ranking._lists import Lists, as_lists
from losslab.losses.ranking._ndcg import discounts, gains
from losslab.metrics._base import LosslabMetric, check_flag, check_prefix, no_samples

__all__ = [
    "RankingMAP",
    "RankingMRR",
    "RankingNDCG",
    "RankingPrecision",
    "ranking_metrics",
]

EMPTY = ("skip", "zero")
GAINS = ("exponential", "linear")
TIES = ("stable", "pessimistic")


def _check_common(
    fn: str, empty: Any, ties: Any, merge_groups: Any, validate: Any
) -> tuple[str, str, bool, bool]:
    empty = check_choice(fn, "empty", empty, EMPTY)
    ties = check_choice(fn, "ties", ties, TIES)
    merge_groups = check_flag(fn, "merge_groups", merge_groups)
    return empty, ties, merge_groups, check_flag(fn, "validate", validate)


def _check_no_nan(fn: str, lists: Lists, validate: bool) -> None:
    """NaN scores have no place in an order: refused under ``validate`` (one host sync)."""
    if not validate or is_compiling() or lists.scores.numel() == 0:
        return
    with torch.no_grad():
        nan = torch.isnan(lists.scores) & lists.mask
        count = int(nan.sum())
    if count:
        fail(
            fn,
            "scores",
            "hold no NaN at real items (a NaN score has no rank)",
            f"{count} NaN value(s)",
            raw_got=True,
        )


def _ranked(lists: Lists, ties: str) -> tuple[Tensor, Tensor]:
    """Target and mask of every list in rank order: (B, n) float64 and bool, padding last.

    Three stable sorts, the last one the primary key: (pessimistic only) relevance ascending,
    then score descending, then real items before padding.
    """
    s = lists.scores.to(torch.float64)
    t = lists.target.to(torch.float64)
    m = lists.mask
    b, n = s.shape
    perm = torch.arange(n, device=s.device).expand(b, n)
    if ties == "pessimistic":
        perm = torch.sort(t, dim=1, stable=True).indices
    order = torch.sort(s.gather(1, perm), dim=1, descending=True, stable=True).indices
    perm = perm.gather(1, order)
    real_first = m.gather(1, perm).to(torch.uint8)
    order = torch.sort(real_first, dim=1, descending=True, stable=True).indices
    perm = perm.gather(1, order)
    return t.gather(1, perm), m.gather(1, perm)


class _RankingMetric(LosslabMetric):
    """Shared machinery: input layouts, the empty-list policy, the sums or the kept items.

    States (exact under ``.to()`` / ``set_dtype``, persistent): streaming, ``total`` and
    ``count`` (float64 sums); merged (``merge_groups=True``), the list states ``scores``,
    ``target`` (float64) and ``group`` (int64) of the items seen. Both modes add
    ``config_tag`` (:mod:`losslab.metrics._base`): ``MetricCollection``'s default compute
    groups merge metrics whose states are equal after the first batch (an NDCG and a MAP that
    both saw only lists without a relevant item, 0 / 0; any two merged metrics that saw the
    same items); the tag of (class, ``k``, ``empty``, ``ties``, ``merge_groups``, gain) keeps
    different metrics apart.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    total: Tensor
    count: Tensor
    scores: list[Tensor]
    target: list[Tensor]
    group: list[Tensor]
    config_tag: Tensor

    def __init__(
        self,
        *,
        k: Optional[int],
        empty: str,
        ties: str,
        merge_groups: bool,
        validate: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.k = k
        self.empty = empty
        self.ties = ties
        self.merge_groups = merge_groups
        self.validate = validate
        if merge_groups:
            for name in ("scores", "target", "group"):
                self.add_exact_state(name, [], "cat")
        else:
            self.add_exact_state("total", torch.zeros((), dtype=torch.float64))
            self.add_exact_state("count", torch.zeros((), dtype=torch.float64))
        self.add_config_tag()

    def _config(self) -> tuple[Hashable, ...]:
        return (self.k, self.empty, self.ties, self.merge_groups)

    def _per_list(self, target: Tensor, mask: Tensor, relevant: Tensor) -> Tensor:
        """(B,) values of lists in rank order (only lists with a relevant item are read)."""
        raise NotImplementedError

    def update(
        self,
        scores: Tensor,
        target: Tensor,
        *,
        mask: Optional[Tensor] = None,
        group: Optional[Tensor] = None,
    ) -> None:
        """Add whole lists: padded ``(B, n)`` (with ``mask``) or flat ``(N,)`` with ``group`` ids.

        With ``merge_groups=True``: flat items only (``group`` required), kept for ``compute``.
        """
        fn = self._where
        if self.merge_groups and group is None:
            fail(
                fn,
                "group",
                "be given when merge_groups=True (merge_groups needs group ids: flat (N,) "
                "scores and target with (N,) integer `group`)",
                "None",
                raw_got=True,
            )
        lists = as_lists(
            fn,
            scores,
            target,
            mask=mask,
            group=group,
            nonnegative_target=True,
            validate=self.validate,
        )
        _check_no_nan(fn, lists, self.validate)
        if lists.mask.numel() == 0:
            return
        if self.merge_groups:
            assert group is not None  # checked above
            # Detached float64 copies: exact for every floating input dtype, and the order
            # compute() sees is the one update() would have seen.
            self.scores.append(scores.detach().to(torch.float64))
            self.target.append(target.detach().to(torch.float64))
            self.group.append(group.detach().to(torch.int64))
            return
        total, count = self._sums(lists)
        self.total = self.total + total
        self.count = self.count + count

    def _sums(self, lists: Lists) -> tuple[Tensor, Tensor]:
        """Float64 sum of the per-list values and number of lists that count (both 0-d)."""
        ranked_target, ranked_mask = _ranked(lists, self.ties)
        relevant = ranked_mask & (ranked_target > 0)
        has_relevant = relevant.any(1)
        values = self._per_list(ranked_target, ranked_mask, relevant)
        values = torch.where(has_relevant, values, torch.zeros_like(values))
        counts = has_relevant if self.empty == "skip" else lists.mask.any(1)
        return values.sum(), counts.sum().to(torch.float64)

    def _merged_sums(self) -> tuple[Tensor, Tensor]:
        """The sums over the lists of every item kept (after the sync: of every process)."""
        if no_samples(self.group):
            zero = torch.zeros((), dtype=torch.float64, device=self.device)
            return zero, zero
        scores, target, group = (
            dim_zero_cat(state) for state in (self.scores, self.target, self.group)
        )
        # Already checked in update(); as_lists groups by id, ties by concatenation order.
        lists = as_lists(
            f"{self._label}.compute",
            scores,
            target,
            group=group.to(torch.int64),
            nonnegative_target=True,
            validate=False,
        )
        return self._sums(lists)

    def compute(self) -> Tensor:
        """Mean per-list value over the lists that count (NaN, with a warning, when none does)."""
        total, count = self._merged_sums() if self.merge_groups else (self.total, self.count)
        if self.update_called and count == 0:
            what = "list with a relevant item" if self.empty == "skip" else "list"
            warnings.warn(
                f"{type(self).__name__}.compute(): no {what} was seen since the last reset(); "
                "the value is NaN.",
                UserWarning,
                stacklevel=2,
            )
        return (total / count).to(self.dtype)

    def extra_repr(self) -> str:
        text = f"k={self.k}, " if self.k is not None else ""
        text += f"empty={self.empty!r}, ties={self.ties!r}"
        return text + (", merge_groups=True" if self.merge_groups else "")


class RankingNDCG(_RankingMetric):
    r"""Normalized discounted cumulative gain at k, averaged over lists (queries).

    With the items of a list in rank order (see the module docstring for ties), relevance
    :math:`y_{(r)}` at rank :math:`r` and the gain :math:`g(y) = 2^y - 1` (``"exponential"``,
    Burges et al.) or :math:`g(y) = y` (``"linear"``, scikit-learn's ``ndcg_score`` and
    torchmetrics):

    .. math::

        \mathrm{DCG@k} = \sum_{r=1}^{\min(k, n)} \frac{g(y_{(r)})}{\log_2(1 + r)}, \qquad
        \mathrm{NDCG@k} = \frac{\mathrm{DCG@k}}{\mathrm{IDCG@k}}

    with :math:`\mathrm{IDCG@k}` the DCG@k of the items sorted by relevance. ``k=None`` uses the
    whole list. The value is the mean of the per-list NDCG@k over the lists that count. A list
    with no relevant item (``target > 0``) has IDCG 0: ``empty`` decides (skip, or count as 0).
    Computed in float64 (exponential gains are finite for relevance below 1024).

    Args:
        k: rank cut-off, an int >= 1, or ``None`` (whole list).
        gain: ``"exponential"`` (:math:`2^y - 1`, the ranking losses' gain) or ``"linear"``.
        empty: ``"skip" | "zero"``, the policy for lists without a relevant item.
        ties: ``"stable" | "pessimistic"``, how tied scores are ordered.
        merge_groups: ``False`` (default): stream two sums, each ``update`` holds whole lists.
            ``True``: keep the flat items (``group`` required) and build the lists at
            ``compute`` over every update and process by (global) group id; memory O(items
            seen). See the module docstring.
        validate: check values on every update (``target >= 0``, no NaN score; host syncs).
        **kwargs: torchmetrics ``Metric`` options.

    ``update(scores, target, *, mask=None, group=None)``: padded ``(B, n)`` lists (``mask``
    ``True`` at real items) or flat ``(N,)`` items with integer ``group`` ids; each call holds
    whole lists, unless ``merge_groups=True`` (flat items only, a group may span calls and
    processes).

    Reference: K. Järvelin and J. Kekäläinen, "Cumulated gain-based evaluation of IR
    techniques", ACM TOIS 20(4), 2002; exponential gain: C. Burges et al., "Learning to rank
    using gradient descent", ICML 2005.

    >>> import torch
    >>> metric = RankingNDCG(k=3)
    >>> metric.update(torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([[0.0, 1.0, 2.0]]))
    >>> metric.compute()  # (1/log2(3) + 3/2) / (3 + 1/log2(3))
    tensor(0.5869)
    """

    def __init__(
        self,
        *,
        k: Optional[int] = 10,
        gain: str = "exponential",
        empty: str = "skip",
        ties: str = "stable",
        merge_groups: bool = False,
        validate: bool = True,
        **kwargs: Any,
    ) -> None:
        fn = type(self).__name__
        k = check_int_option(fn, "k", k, low=1, allow_none=True)
        gain = check_choice(fn, "gain", gain, GAINS)
        empty, ties, merge_groups, validate = _check_common(fn, empty, ties, merge_groups, validate)
        self.gain = gain  # before the base's __init__: the config tag reads it
        super().__init__(
            k=k, empty=empty, ties=ties, merge_groups=merge_groups, validate=validate, **kwargs
        )

    def _config(self) -> tuple[Hashable, ...]:
        return (*super()._config(), self.gain)

    def _per_list(self, target: Tensor, mask: Tensor, relevant: Tensor) -> Tensor:
        if self.gain == "exponential":
            g = gains(target, mask)
        else:
            g = torch.where(mask, target, torch.zeros_like(target))
        d = discounts(target.shape[1], k=self.k, like=target)
        dcg = (g * d).sum(1)
        idcg = (torch.sort(g, dim=1, descending=True).values * d).sum(1)
        # Double where: lists without a relevant item (IDCG 0) never divide by 0.
        has = idcg > 0
        return torch.where(has, dcg / torch.where(has, idcg, torch.ones_like(idcg)), idcg)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", gain={self.gain!r}"


class _WholeListMetric(_RankingMetric):
    """A metric of the whole list (no cut-off ``k``): MRR and MAP."""

    def __init__(
        self,
        *,
        empty: str = "skip",
        ties: str = "stable",
        merge_groups: bool = False,
        validate: bool = True,
        **kwargs: Any,
    ) -> None:
        empty, ties, merge_groups, validate = _check_common(
            type(self).__name__, empty, ties, merge_groups, validate
        )
        super().__init__(
            k=None, empty=empty, ties=ties, merge_groups=merge_groups, validate=validate, **kwargs
        )


class RankingMRR(_WholeListMetric):
    r"""Mean reciprocal rank: one over the rank of the first relevant item, averaged over lists.

    .. math:: \mathrm{RR} = \frac{1}{\min\{r : y_{(r)} > 0\}}, \qquad
              \mathrm{MRR} = \frac{1}{|L|} \sum_{l \in L} \mathrm{RR}_l

    over the whole list (no cut-off) and the lists :math:`L` that count. A list without a
    relevant item has no first relevant rank: ``empty`` decides (skip, or count as 0).

    Args:
        empty: ``"skip" | "zero"``, the policy for lists without a relevant item.
        ties: ``"stable" | "pessimistic"``, how tied scores are ordered.
        merge_groups: ``False`` (default): stream two sums, each ``update`` holds whole lists.
            ``True``: keep the flat items (``group`` required) and build the lists at
            ``compute`` over every update and process by (global) group id; memory O(items
            seen). See the module docstring.
        validate: check values on every update (``target >= 0``, no NaN score; host syncs).
        **kwargs: torchmetrics ``Metric`` options.

    ``update(scores, target, *, mask=None, group=None)`` as :class:`RankingNDCG`.

    Reference: E. M. Voorhees, "The TREC-8 question answering track report", TREC 1999.

    >>> import torch
    >>> metric = RankingMRR()
    >>> scores = torch.tensor([0.9, 0.5, 0.1, 0.3, 0.8])
    >>> target = torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0])
    >>> metric.update(scores, target, group=torch.tensor([0, 0, 0, 1, 1]))
    >>> metric.compute()  # (1/2 + 1/2) / 2
    tensor(0.5000)
    >>> merged = RankingMRR(merge_groups=True)  # one query split over two updates
    >>> merged.update(torch.tensor([0.9, 0.1]), target[:2], group=torch.tensor([4, 4]))
    >>> merged.update(torch.tensor([0.5]), target[2:3], group=torch.tensor([4]))
    >>> merged.compute()  # one list: 0.9 (not relevant), 0.5, 0.1
    tensor(0.5000)
    """

    def _per_list(self, target: Tensor, mask: Tensor, relevant: Tensor) -> Tensor:
        ranks = torch.arange(1, target.shape[1] + 1, dtype=target.dtype, device=target.device)
        # 1/r decreases with r: the largest 1/r over the relevant items is the first one's.
        return (relevant.to(target.dtype) / ranks).amax(1)


class RankingMAP(_WholeListMetric):
    r"""Mean average precision over lists; relevant means ``target > 0``.

    .. math:: \mathrm{AP} = \frac{1}{R} \sum_{r=1}^{n} \mathrm{rel}_{(r)} \,
              \frac{\sum_{s \le r} \mathrm{rel}_{(s)}}{r}, \qquad
              \mathrm{MAP} = \frac{1}{|L|} \sum_{l \in L} \mathrm{AP}_l

    with :math:`R` the number of relevant items of the list (over the whole list, no
    cut-off). A list with :math:`R = 0` has no AP: ``empty`` decides (skip, or count as 0).

    Args:
        empty: ``"skip" | "zero"``, the policy for lists without a relevant item.
        ties: ``"stable" | "pessimistic"``, how tied scores are ordered.
        merge_groups: ``False`` (default): stream two sums, each ``update`` holds whole lists.
            ``True``: keep the flat items (``group`` required) and build the lists at
            ``compute`` over every update and process by (global) group id; memory O(items
            seen). See the module docstring.
        validate: check values on every update (``target >= 0``, no NaN score; host syncs).
        **kwargs: torchmetrics ``Metric`` options.

    ``update(scores, target, *, mask=None, group=None)`` as :class:`RankingNDCG`.

    Reference: C. D. Manning, P. Raghavan and H. Schütze, "Introduction to Information
    Retrieval", Cambridge University Press, 2008, section 8.4.

    >>> import torch
    >>> metric = RankingMAP()
    >>> metric.update(torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([[1.0, 0.0, 1.0]]))
    >>> metric.compute()  # (1/1 + 2/3) / 2
    tensor(0.8333)
    """

    def _per_list(self, target: Tensor, mask: Tensor, relevant: Tensor) -> Tensor:
        rel = relevant.to(target.dtype)
        ranks = torch.arange(1, target.shape[1] + 1, dtype=target.dtype, device=target.device)
        precision_at_r = rel.cumsum(1) / ranks
        return (rel * precision_at_r).sum(1) / rel.sum(1).clamp_min(1.0)


class RankingPrecision(_RankingMetric):
    r"""Precision at k: the fraction of the top k items that are relevant, averaged over lists.

    .. math:: \mathrm{P@k} = \frac{1}{k} \sum_{r=1}^{\min(k, n)} \mathrm{rel}_{(r)}

    The denominator is always k, also for a list of fewer than k items (TREC's P@k and
    torchmetrics' ``RetrievalPrecision(adaptive_k=False)``): such a list cannot reach 1. A list
    without a relevant item has P@k = 0, but follows ``empty`` like the other metrics (skipped
    by default), so that the four metrics of a set average over the same lists.

    Args:
        k: rank cut-off, an int >= 1.
        empty: ``"skip" | "zero"``, the policy for lists without a relevant item.
        ties: ``"stable" | "pessimistic"``, how tied scores are ordered.
        merge_groups: ``False`` (default): stream two sums, each ``update`` holds whole lists.
            ``True``: keep the flat items (``group`` required) and build the lists at
            ``compute`` over every update and process by (global) group id; memory O(items
            seen). See the module docstring.
        validate: check values on every update (``target >= 0``, no NaN score; host syncs).
        **kwargs: torchmetrics ``Metric`` options.

    ``update(scores, target, *, mask=None, group=None)`` as :class:`RankingNDCG`.

    Reference: C. D. Manning, P. Raghavan and H. Schütze, "Introduction to Information
    Retrieval", Cambridge University Press, 2008, section 8.4.

    >>> import torch
    >>> metric = RankingPrecision(k=2)
    >>> metric.update(torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([[1.0, 0.0, 1.0]]))
    >>> metric.compute()
    tensor(0.5000)
    """

    def __init__(
        self,
        *,
        k: int = 10,
        empty: str = "skip",
        ties: str = "stable",
        merge_groups: bool = False,
        validate: bool = True,
        **kwargs: Any,
    ) -> None:
        fn = type(self).__name__
        cutoff = check_int_option(fn, "k", k, low=1)
        empty, ties, merge_groups, validate = _check_common(fn, empty, ties, merge_groups, validate)
        super().__init__(
            k=cutoff, empty=empty, ties=ties, merge_groups=merge_groups, validate=validate, **kwargs
        )

    def _per_list(self, target: Tensor, mask: Tensor, relevant: Tensor) -> Tensor:
        assert self.k is not None
        return relevant[:, : self.k].sum(1).to(target.dtype) / float(self.k)


def ranking_metrics(
    *,
    k: int = 10,
    empty: str = "skip",
    gain: str = "exponential",
    ties: str = "stable",
    merge_groups: bool = False,
    prefix: Optional[str] = None,
) -> MetricCollection:
    r"""The ranking metric set: ``ndcg@k``, ``mrr``, ``map`` and ``precision@k``.

    A :class:`torchmetrics.MetricCollection` of :class:`RankingNDCG` (``k``, ``gain``),
    :class:`RankingMRR`, :class:`RankingMAP` and :class:`RankingPrecision` (``k``), all with
    the same ``empty``, ``ties`` and ``merge_groups`` options, so every metric averages over
    the same lists (formulas in each class). ``update(scores, target, mask=..., group=...)``
    feeds them all: padded ``(B, n)`` lists or flat ``(N,)`` items with ``group`` ids, whole
    lists per call (``merge_groups=False``), or flat items only, merged by group id over every
    call and process at ``compute`` (``merge_groups=True``).

    Args:
        k: rank cut-off of NDCG and precision, an int >= 1.
        empty: ``"skip" | "zero"``: lists without a relevant item (``target > 0``) are left out
            of the means, or count as 0.
        gain: NDCG's gain, ``"exponential"`` (:math:`2^y - 1`) or ``"linear"`` (:math:`y`).
        ties: ``"stable"`` (tied scores keep their input order) or ``"pessimistic"``.
        merge_groups: keep the flat items and merge a query split across calls or processes
            (see :class:`RankingNDCG`); memory O(items seen) per metric, so the set holds four
            copies of the items.
        prefix: prepended to every key (``"val/"`` gives ``"val/ndcg@10"``).

    Reference: see the classes; torchmetrics ``MetricCollection`` for the container.

    >>> import torch
    >>> metrics = ranking_metrics(k=2)
    >>> metrics.update(torch.tensor([[0.9, 0.5, 0.1]]), torch.tensor([[1.0, 0.0, 1.0]]))
    >>> {name: round(value.item(), 4) for name, value in sorted(metrics.compute().items())}
    {'map': 0.8333, 'mrr': 1.0, 'ndcg@2': 0.6131, 'precision@2': 0.5}
    """
    fn = "ranking_metrics"
    k = check_int_option(fn, "k", k, low=1)  # type: ignore[assignment]
    empty = check_choice(fn, "empty", empty, EMPTY)
    gain = check_choice(fn, "gain", gain, GAINS)
    ties = check_choice(fn, "ties", ties, TIES)
    merge_groups = check_flag(fn, "merge_groups", merge_groups)
    check_prefix(fn, prefix, noun="string")
    common: dict[str, Any] = {"empty": empty, "ties": ties, "merge_groups": merge_groups}
    return MetricCollection(
        {
            f"ndcg@{k}": RankingNDCG(k=k, gain=gain, **common),
            "mrr": RankingMRR(**common),
            "map": RankingMAP(**common),
            f"precision@{k}": RankingPrecision(k=k, **common),
        },
        prefix=prefix,
    )
