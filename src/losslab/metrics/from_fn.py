r"""Streaming metrics from plain functions: exact batch means, or ``fn`` on all the data at once.

Averaging a per-batch metric over batches is wrong whenever batches differ in size (the last
batch of an epoch, a sampler with ``drop_last=False``, a rank with fewer samples). Two
factories turn a plain function ``fn(preds, target)`` into a torchmetrics ``Metric`` whose
value does not depend on how the data was split into batches or processes:

* :func:`metric_from_batch_fn` (:class:`BatchMeanMetric`): for functions that return a **mean
  over the units of their batch** (accuracy, MAE, MSE, a loss with ``reduction="mean"``).
  Two float64 sums, ``total`` and ``count``; O(1) memory; exact.
* :func:`metric_from_fn` (:class:`FullDataMetric`): for everything else (RMSE, F1, AUROC,
  a median, ...). Keeps every batch and calls ``fn`` once on the concatenation; O(dataset)
  memory; exact, also on a process that received no batch.

Both check every batch with :func:`losslab.metrics._inputs.check_pair` (``check_shapes=True``)
and follow the torchmetrics contract (``update`` / ``compute`` / ``reset`` / ``state_dict`` /
distributed ``sync``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor
from torchmetrics.utilities.data import dim_zero_cat

from losslab._checks import check_choice, check_same_device, check_tensor, fail, fmt
from losslab.metrics._base import DTYPES, LosslabMetric, check_flag, rows_of
from losslab.metrics._inputs import check_pair

__all__ = ["BatchMeanMetric", "FullDataMetric", "metric_from_batch_fn", "metric_from_fn"]

MetricFn = Callable[[Tensor, Tensor], Any]
CountFn = Callable[[Tensor, Tensor], Union[int, float, Tensor]]

COUNTS = ("samples", "elements")


def _fn_name(fn: Any) -> str:
    """A readable name for a callable: ``__name__``, a partial's function name, or the type."""
    name = getattr(fn, "__name__", None)
    if name is None and hasattr(fn, "func"):  # functools.partial
        name = getattr(fn.func, "__name__", None)
    return str(name) if name is not None else type(fn).__name__


def _check_common(where: str, fn: Any, name: Any, higher_is_better: Any, check_shapes: Any) -> str:
    """Options shared by both factories and classes; returns the metric's name."""
    if not callable(fn):
        fail(
            where,
            "fn",
            "be callable as fn(preds, target)",
            type(fn).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if name is not None and (not isinstance(name, str) or not name):
        fail(where, "name", "be a non-empty string or None", name, kind=TypeError)
    if higher_is_better is not None and not isinstance(higher_is_better, bool):
        fail(where, "higher_is_better", "be True, False or None", higher_is_better, kind=TypeError)
    check_flag(where, "check_shapes", check_shapes)
    return name if name is not None else _fn_name(fn)


def _check_count_option(where: str, count: Any) -> Union[str, CountFn]:
    if callable(count):
        return count
    if isinstance(count, str):
        return check_choice(where, "count", count, COUNTS)
    fail(
        where,
        "count",
        "be 'samples', 'elements' or a callable (preds, target) -> count",
        type(count).__name__,
        kind=TypeError,
        raw_got=True,
    )


def _check_batch(where: str, preds: Any, target: Any, check_shapes: bool) -> None:
    """Checks of one batch. With ``check_shapes`` the full :func:`check_pair`; always: both
    are tensors on one device with a batch dimension of the same length."""
    if check_shapes:
        check_pair(where, preds, target)
    else:
        check_tensor(where, "preds", preds)
        check_tensor(where, "target", target)
        check_same_device(where, "target", target, "preds", preds)
    if preds.dim() == 0:
        fail(where, "preds", "have a batch dimension (dim 0)", "a 0-d tensor", raw_got=True)
    if target.dim() == 0 or target.shape[0] != preds.shape[0]:
        fail(
            where,
            "target",
            f"have the batch size of `preds` ({preds.shape[0]}) along dim 0",
            tuple(target.shape),
            raw_got=True,
        )


class _FnMetric(LosslabMetric):
    """What both classes share: the wrapped ``fn``, its display name and the options."""

    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        fn: MetricFn,
        *,
        name: str,
        higher_is_better: Optional[bool],
        check_shapes: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fn = fn
        self.name = name
        self._higher_is_better = higher_is_better
        self.check_shapes = check_shapes

    @property
    def higher_is_better(self) -> Optional[bool]:  # type: ignore[override]
        """Set at construction (torchmetrics forbids changing it afterwards)."""
        return self._higher_is_better

    @property
    def _label(self) -> str:
        return f"{type(self).__name__}[{self.name}]"

    def extra_repr(self) -> str:
        fn_name = _fn_name(self.fn)
        if self.name != fn_name:
            return f"name={self.name!r}, fn={fn_name}"
        return f"fn={fn_name}"


class BatchMeanMetric(_FnMetric):
    r"""A streaming metric from a function that returns the mean over its batch.

    ``fn(preds, target)`` returns :math:`m_b`, the mean of some per-unit quantity over the
    :math:`n_b` units of batch :math:`b`. The metric keeps two float64 sums and returns

    .. math::
        \text{value} = \frac{\sum_b n_b \, m_b}{\sum_b n_b},

    which equals ``fn`` on all the data at once, however the data is split into batches or
    processes, **if and only if** ``fn`` is such a mean: :math:`m_b = \frac{1}{n_b}
    \sum_{i \in b} g(i)` for a per-unit :math:`g`.

    Functions that decompose (use this class): accuracy (thresholded or top-1), MAE, MSE,
    log-loss, any loss with ``reduction="mean"`` (count ``"elements"`` for an elementwise
    mean over (B, ...) inputs), a masked mean (``count`` = the number of unmasked units).
    Functions that do **not** decompose (use :func:`metric_from_fn`): RMSE (a square root
    of a mean), F1 / precision / recall (ratios of sums), AUROC / AP (rankings over all
    samples), a median or any quantile, Pearson correlation, a mean over classes (macro
    averages). Fed to this class they give a weighted mean of per-batch values: close on
    large equal batches, wrong in general.

    Units per batch (``count``): ``"samples"`` = ``preds.shape[0]``, ``"elements"`` =
    ``preds.numel()``, or a callable ``(preds, target) -> int | float | 0-d tensor`` (the
    number of non-ignored labels, a total sample weight, ...). A callable count is read on
    the host (one synchronisation per batch) and must be finite and non-negative.

    Conventions: a batch of 0 samples, or with count 0, is a no-op (``fn`` is not called);
    ``compute()`` before any counted unit returns NaN (0/0) and, before any ``update``,
    torchmetrics' UserWarning. A NaN returned by ``fn`` propagates. The value is returned in
    the metric's dtype (float32, as torchmetrics; ``set_dtype(torch.float64)`` for full
    precision); the sums stay float64 whatever ``.to()`` / ``set_dtype`` / ``.half()`` do.

    States: ``total`` (float64, :math:`\sum_b n_b m_b`) and ``count`` (float64,
    :math:`\sum_b n_b`), both ``dist_reduce_fx="sum"``, persistent (a checkpoint taken
    mid-stream resumes), plus ``config_tag``, a non-persistent tag of (``fn``, ``count``)
    that stops ``MetricCollection`` compute groups from merging metrics of different
    functions (:mod:`losslab.metrics._base`).

    In a ``MetricCollection`` pass a dict (``{m.name: m, ...}``): a list keys metrics by
    class name, which every BatchMeanMetric shares. Pickling (needed by ``spawn`` workers
    and some loggers) works when ``fn`` and ``count`` are module-level functions; lambdas
    and local functions cannot be pickled (deepcopy works).

    Reference: the torchmetrics metric contract,
    https://lightning.ai/docs/torchmetrics/stable/pages/implement.html (sum states reduced
    with ``"sum"``, as its ``MeanMetric``).

    Args:
        fn: ``fn(preds, target) -> 0-d floating tensor``, the mean over the batch.
        name: the metric's name (default ``fn.__name__``), shown in ``repr``.
        count: ``"samples" | "elements"`` or a callable, see above.
        higher_is_better: ``True`` / ``False`` / ``None`` (unknown), read by trackers.
        check_shapes: check every batch with :func:`~losslab.metrics._inputs.check_pair`
            (same shape, same device, floating ``preds``); set ``False`` for functions of
            differently shaped inputs (``(B, C)`` scores against ``(B,)`` labels). A batch
            dimension of one length is always required.
        **kwargs: torchmetrics ``Metric`` options (``sync_on_compute``, ``process_group``,
            ``dist_sync_fn``, ...).

    >>> import torch
    >>> def squared_error(preds, target):
    ...     return ((preds - target) ** 2).mean()
    >>> metric = BatchMeanMetric(squared_error, higher_is_better=False)
    >>> metric.update(torch.tensor([0.0, 1.0, 2.0]), torch.zeros(3))  # batch mean 5/3
    >>> metric.update(torch.tensor([3.0]), torch.zeros(1))  # batch mean 9
    >>> metric.compute()  # (0 + 1 + 4 + 9) / 4, not (5/3 + 9) / 2
    tensor(3.5000)
    >>> metric
    BatchMeanMetric(fn=squared_error, count='samples')
    """

    total: Tensor
    count: Tensor
    config_tag: Tensor

    def __init__(
        self,
        fn: MetricFn,
        *,
        name: Optional[str] = None,
        count: Union[str, CountFn] = "samples",
        higher_is_better: Optional[bool] = None,
        check_shapes: bool = True,
        **kwargs: Any,
    ) -> None:
        where = type(self).__name__
        name = _check_common(where, fn, name, higher_is_better, check_shapes)
        count = _check_count_option(where, count)
        super().__init__(
            fn, name=name, higher_is_better=higher_is_better, check_shapes=check_shapes, **kwargs
        )
        self.count_by = count
        self.add_exact_state("total", torch.zeros((), dtype=torch.float64))
        self.add_exact_state("count", torch.zeros((), dtype=torch.float64))
        self.add_config_tag()

    def _config(self) -> tuple[Hashable, ...]:
        # Object ids: functions need not be hashable; a live metric keeps its fn alive.
        count = self.count_by
        return (id(self.fn), count if isinstance(count, str) else ("callable", id(count)))

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch: ``total += fn(preds, target) * n``, ``count += n``."""
        where = self._where
        _check_batch(where, preds, target, self.check_shapes)
        if preds.shape[0] == 0:
            return
        n = self._units(where, preds, target)
        if n == 0:
            return
        value = self.fn(preds, target)
        fn_call = f"{_fn_name(self.fn)}(preds, target)"
        if not isinstance(value, Tensor):
            fail(
                where,
                fn_call,
                "return a 0-d tensor (the mean over the batch)",
                type(value).__name__,
                kind=TypeError,
                raw_got=True,
            )
        if value.dim() != 0:
            fail(
                where,
                fn_call,
                "return a 0-d tensor (the mean over the batch)",
                f"a tensor of shape {tuple(value.shape)}",
                raw_got=True,
                hint="Reduce per-sample values with .mean(); for a metric that is not a mean "
                "over samples use metric_from_fn().",
            )
        if not value.is_floating_point():
            fail(
                where,
                fn_call,
                "return a floating-point mean",
                f"dtype {fmt(value.dtype)}",
                kind=TypeError,
                raw_got=True,
                hint="An integer result is usually a sum or a count, not a mean.",
            )
        # float64 before the product: total grows with the data, float32 would lose digits.
        self.total = self.total + value.detach().to(torch.float64) * n
        self.count = self.count + n

    def _units(self, where: str, preds: Tensor, target: Tensor) -> float:
        count_by = self.count_by
        if isinstance(count_by, str):
            return float(preds.shape[0] if count_by == "samples" else preds.numel())
        counted = count_by(preds, target)
        count_call = f"{_fn_name(self.count_by)}(preds, target)"
        is_number = isinstance(counted, numbers.Real) and not isinstance(counted, bool)
        is_scalar = (
            isinstance(counted, Tensor)
            and counted.dim() == 0
            and not counted.is_complex()
            and counted.dtype != torch.bool
        )
        if not (is_number or is_scalar):
            fail(
                where,
                count_call,
                "return a count: an int, a float or a 0-d real tensor",
                fmt(counted) if isinstance(counted, Tensor) else type(counted).__name__,
                kind=TypeError,
                raw_got=True,
            )
        n = float(counted)  # one host sync for a tensor count
        if not math.isfinite(n) or n < 0:
            fail(where, count_call, "return a finite count >= 0", n)
        return n

    def compute(self) -> Tensor:
        """``total / count`` in the metric's dtype; NaN (0/0) before any counted unit."""
        return (self.total / self.count).to(self.dtype)

    def extra_repr(self) -> str:
        count = self.count_by if isinstance(self.count_by, str) else _fn_name(self.count_by)
        return super().extra_repr() + f", count={count!r}"


class FullDataMetric(_FnMetric):
    r"""A metric computed by ``fn`` on all the data at once, accumulated batch by batch.

    .. math::
        \text{value} = \mathrm{fn}\big(\mathrm{cat}_b(\text{preds}_b),\;
        \mathrm{cat}_b(\text{target}_b)\big)

    The exact form for metrics that are not means over samples: RMSE, F1, AUROC, AP,
    medians, correlations, macro averages. Every batch is kept (detached copies) and ``fn``
    runs once, in ``compute()``, on the concatenation along dim 0 (across processes too:
    states are gathered with ``dist_reduce_fx="cat"``).

    Memory: O(dataset), the size of all ``preds`` and ``target`` seen since the last
    ``reset()``, on the metric's device (pass ``compute_on_cpu=True`` to keep the batches in
    host memory). For a mean over samples prefer :func:`metric_from_batch_fn` (O(1)).

    Conventions: every batch must keep the trailing shape (all but dim 0) of the first
    (``ValueError`` otherwise, at ``update``, not at the end of an epoch); a
    batch of 0 samples is a no-op; ``compute()`` on no data at all returns NaN without
    calling ``fn`` (and, before any ``update``, torchmetrics' UserWarning). A real number
    returned by ``fn`` (a Python or NumPy scalar, as scikit-learn's metrics return) is
    converted to a tensor; any other result is returned as ``fn`` gave it.

    Distributed: a process that received no batch still takes part in the synchronisation.
    torchmetrics 1.9 stands in an empty **1-D float32** tensor for such a rank (its fix of
    torchmetrics issue #2463), which breaks the collective for any other state: 2-D
    ``preds``, float64 ``preds``, int64 labels (gloo aborts the job). This class first
    exchanges (dtype, trailing shape) of every rank's states, then stands in an empty
    tensor of the right dtype and shape ``(0, *trailing)``, and casts ranks holding
    different dtypes to their common promoted dtype. Ranks whose trailing shapes differ
    raise ``ValueError`` on every rank (instead of a hang). (The sync of
    :class:`losslab.metrics._base.LosslabMetric`, shared by every losslab metric.)

    States: ``preds`` and ``target``, lists of tensors, ``dist_reduce_fx="cat"``,
    persistent (a checkpoint taken mid-stream resumes; it holds the data seen so far).

    Reference: the torchmetrics metric contract,
    https://lightning.ai/docs/torchmetrics/stable/pages/implement.html (list states with
    ``"cat"``, as its ``CatMetric`` and its AUROC); empty-rank sync: torchmetrics #2463.

    Args:
        fn: ``fn(preds, target)``, called once on the concatenated data.
        name: the metric's name (default ``fn.__name__``), shown in ``repr``.
        higher_is_better: ``True`` / ``False`` / ``None`` (unknown).
        check_shapes: check every batch with :func:`~losslab.metrics._inputs.check_pair`;
            ``False`` for ``(B, C)`` scores against ``(B,)`` labels.
        **kwargs: torchmetrics ``Metric`` options (``compute_on_cpu``, ``sync_on_compute``, ...).

    >>> import torch
    >>> def rmse(preds, target):
    ...     return ((preds - target) ** 2).mean().sqrt()
    >>> metric = FullDataMetric(rmse, higher_is_better=False)
    >>> metric.update(torch.tensor([0.0, 1.0, 2.0]), torch.zeros(3))
    >>> metric.update(torch.tensor([3.0]), torch.zeros(1))
    >>> metric.compute()  # sqrt((0 + 1 + 4 + 9) / 4)
    tensor(1.8708)
    >>> metric
    FullDataMetric(fn=rmse)
    """

    preds: list[Tensor]
    target: list[Tensor]

    def __init__(
        self,
        fn: MetricFn,
        *,
        name: Optional[str] = None,
        higher_is_better: Optional[bool] = None,
        check_shapes: bool = True,
        **kwargs: Any,
    ) -> None:
        name = _check_common(type(self).__name__, fn, name, higher_is_better, check_shapes)
        super().__init__(
            fn, name=name, higher_is_better=higher_is_better, check_shapes=check_shapes, **kwargs
        )
        # Exact: the stored batches keep their dtype (a `.to(torch.half)` of the module must not
        # round the data already seen); only the device follows.
        self.add_exact_state("preds", [], "cat")
        self.add_exact_state("target", [], "cat")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Keep a detached copy of the batch."""
        where = self._where
        _check_batch(where, preds, target, self.check_shapes)
        for arg, x in (("preds", preds), ("target", target)):
            if x.dtype not in DTYPES:
                fail(
                    where,
                    arg,
                    "have a numeric or bool dtype",
                    f"dtype {fmt(x.dtype)}",
                    kind=TypeError,
                    raw_got=True,
                )
            stored = getattr(self, arg)
            first = stored[0] if isinstance(stored, list) and stored else stored
            if isinstance(first, Tensor) and first.shape[1:] != x.shape[1:]:
                fail(
                    where,
                    arg,
                    f"keep the shape {rows_of(first.shape[1:])} of the earlier batches "
                    "(only dim 0 may change)",
                    tuple(x.shape),
                    raw_got=True,
                )
        if preds.shape[0] == 0:
            return
        # A copy, not a view: the caller may reuse its buffers, and a view would keep a
        # larger base tensor alive.
        self.preds.append(preds.detach().clone())
        self.target.append(target.detach().clone())

    def compute(self) -> Any:
        """``fn(cat(preds), cat(target))``; NaN on no data."""
        if _rows(self.preds) == 0:
            return torch.tensor(float("nan"), dtype=self.dtype, device=self.device)
        value = self.fn(dim_zero_cat(self.preds), dim_zero_cat(self.target))
        if isinstance(value, numbers.Real) or (
            type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0
        ):
            # scikit-learn style scalars: keep their float64 precision
            value = torch.tensor(float(value), dtype=torch.float64, device=self.device)
        return value


def _rows(state: Union[list[Tensor], Tensor]) -> int:
    if isinstance(state, Tensor):
        return int(state.shape[0]) if state.dim() > 0 else 1
    return sum(int(t.shape[0]) for t in state)


def metric_from_batch_fn(
    fn: MetricFn,
    *,
    name: Optional[str] = None,
    count: Union[str, CountFn] = "samples",
    higher_is_better: Optional[bool] = None,
    check_shapes: bool = True,
    **kwargs: Any,
) -> BatchMeanMetric:
    r"""Turn a per-batch mean ``fn(preds, target) -> 0-d tensor`` into an exact streaming metric.

    .. math::
        \text{value} = \frac{\sum_b n_b \, \mathrm{fn}(\text{preds}_b, \text{target}_b)}{\sum_b n_b}

    equals ``fn`` on all the data at once for any split into batches (and processes) exactly
    when ``fn`` is a mean over the :math:`n_b` units of its batch: accuracy, MAE, MSE,
    log-loss, a loss with ``reduction="mean"``, a masked mean with ``count`` = the number of
    unmasked units. RMSE, F1, AUROC, a median, macro averages are **not** such means: use
    :func:`metric_from_fn`. See :class:`BatchMeanMetric` for the conventions (0-sample and
    count-0 batches are no-ops; NaN before any unit; float64 sums).

    Args:
        fn: the batch function; a module-level function if the metric must be pickled.
        name: display name, default ``fn.__name__``.
        count: units per batch: ``"samples"`` (``preds.shape[0]``), ``"elements"``
            (``preds.numel()``) or a callable ``(preds, target) -> int | float | 0-d tensor``.
        higher_is_better: ``True`` / ``False`` / ``None``.
        check_shapes: same shape / device and floating ``preds`` on every update.
        **kwargs: torchmetrics ``Metric`` options.

    Reference: torchmetrics, "Implementing a Metric",
    https://lightning.ai/docs/torchmetrics/stable/pages/implement.html.

    >>> import torch
    >>> def accuracy(preds, target):  # thresholded at 0.5: a mean over samples
    ...     return ((preds > 0.5) == target.bool()).float().mean()
    >>> metric = metric_from_batch_fn(accuracy, higher_is_better=True)
    >>> metric.update(torch.tensor([0.9, 0.2, 0.7]), torch.tensor([1.0, 0.0, 0.0]))  # 2/3
    >>> metric.update(torch.tensor([0.1]), torch.tensor([1.0]))  # 0/1
    >>> metric.compute()  # 2/4, where averaging the batch values gives 1/3
    tensor(0.5000)
    """
    where = "metric_from_batch_fn"
    _check_common(where, fn, name, higher_is_better, check_shapes)
    _check_count_option(where, count)
    return BatchMeanMetric(
        fn,
        name=name,
        count=count,
        higher_is_better=higher_is_better,
        check_shapes=check_shapes,
        **kwargs,
    )


def metric_from_fn(
    fn: MetricFn,
    *,
    name: Optional[str] = None,
    higher_is_better: Optional[bool] = None,
    check_shapes: bool = True,
    **kwargs: Any,
) -> FullDataMetric:
    r"""Turn any ``fn(preds, target)`` into a streaming metric computed on all the data at once.

    .. math::
        \text{value} = \mathrm{fn}\big(\mathrm{cat}_b(\text{preds}_b),\;
        \mathrm{cat}_b(\text{target}_b)\big)

    The exact form for metrics that do not decompose into batch means (RMSE, F1, AUROC,
    medians, correlations). It stores every batch: memory O(dataset) (``compute_on_cpu=True``
    keeps it in host memory). Works under DDP when a rank received no batch. See
    :class:`FullDataMetric` for the conventions (NaN on no data; trailing shape fixed).

    Args:
        fn: the function of all the data; a module-level function if the metric must be
            pickled.
        name: display name, default ``fn.__name__``.
        higher_is_better: ``True`` / ``False`` / ``None``.
        check_shapes: same shape / device and floating ``preds`` on every update; ``False``
            for ``(B, C)`` scores against ``(B,)`` labels.
        **kwargs: torchmetrics ``Metric`` options.

    Reference: torchmetrics, "Implementing a Metric",
    https://lightning.ai/docs/torchmetrics/stable/pages/implement.html.

    >>> import torch
    >>> from torchmetrics.functional import auroc
    >>> def binary_auroc(preds, target):
    ...     return auroc(preds, target.long(), task="binary")
    >>> metric = metric_from_fn(binary_auroc, higher_is_better=True)
    >>> metric.update(torch.tensor([0.1, 0.8, 0.4]), torch.tensor([0.0, 1.0, 1.0]))
    >>> metric.update(torch.tensor([0.5]), torch.tensor([0.0]))
    >>> metric.compute()  # 3 of the 4 (positive, negative) pairs are ordered correctly
    tensor(0.7500)
    """
    _check_common("metric_from_fn", fn, name, higher_is_better, check_shapes)
    return FullDataMetric(
        fn, name=name, higher_is_better=higher_is_better, check_shapes=check_shapes, **kwargs
    )
