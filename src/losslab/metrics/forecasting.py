r"""Forecasting metrics (MASE, sMAPE, WAPE, pinball, interval coverage), streamed batch by batch.

Point forecasts are ``preds`` of shape ``(B, T)`` or ``(B, T, F)`` (series, horizon, features)
against ``target`` of the same shape. Quantile forecasts are ``preds`` of shape
``(B, T[, F], Q)`` with one column per level of ``quantiles`` (strictly increasing) against
``target`` of shape ``preds.shape[:-1]``; the point metrics then score the median column
(``0.5`` must be a level).

The per-element math is the time-series and regression losses' (:func:`~losslab.losses.
timeseries.mase.mase_loss`, :func:`~losslab.losses.timeseries.smape.smape_loss`,
:func:`~losslab.losses.regression.pinball.pinball_loss`, called with ``reduction="sum"``);
the metrics add float64 sums of it (``dist_reduce_fx="sum"``) and divide once in
``compute()``, so the value does not depend on how series are split into batches or
processes. Every value is a mean over all elements seen (or, for WAPE and coverage, a global
ratio), never a mean of batch means. Inputs are cast to float64 before the math.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection

from losslab._checks import (
    check_floating,
    check_int_option,
    check_ndim_at_least,
    check_same_device,
    check_tensor,
    fail,
    is_sequence,
)
from losslab._reduce import output_dtype, reduce
from losslab.losses.regression.pinball import _check_options as _check_quantile_levels
from losslab.losses.regression.pinball import pinball_loss
from losslab.losses.timeseries._time_weights import check_time_dim, resolve_time_dim
from losslab.losses.timeseries.mase import check_scale, naive_scale, scaled_errors
from losslab.losses.timeseries.smape import smape_loss
from losslab.metrics._base import LosslabMetric, check_flag, check_prefix
from losslab.metrics._inputs import check_pair

__all__ = [
    "MASE",
    "SMAPE",
    "WAPE",
    "MeanPinballLoss",
    "QuantileCoverage",
    "forecasting_metrics",
]

Quantiles = Union[Sequence[float], Tensor]


def _check_quantiles(fn: str, quantiles: Any) -> tuple[float, ...]:
    """Quantile levels: a non-empty sequence (or 1-D float tensor) in (0, 1), strictly increasing."""
    levels = tuple(float(q) for q in _check_quantile_levels(fn, quantiles).tolist())
    for lo, hi in zip(levels, levels[1:]):
        if not lo < hi:
            fail(
                fn,
                "quantiles",
                "be strictly increasing (one prediction column per level, in order)",
                list(levels),
            )
    return levels


def _level_index(fn: str, name: str, levels: tuple[float, ...], level: float) -> int:
    for i, q in enumerate(levels):
        if math.isclose(q, level, rel_tol=0.0, abs_tol=1e-9):
            return i
    fail(fn, name, f"be one of the levels `quantiles` = {list(levels)}", level)


def _check_series(fn: str, target: Tensor) -> None:
    check_ndim_at_least(fn, "target", target, 2, "(B, T) or (B, T, F)")


def _check_quantile_pair(fn: str, preds: Any, target: Any, levels: tuple[float, ...]) -> None:
    """``preds`` (B, T[, F], Q) with Q = len(levels), ``target`` = ``preds.shape[:-1]``."""
    check_tensor(fn, "preds", preds)
    check_tensor(fn, "target", target)
    check_floating(fn, "preds", preds)
    check_floating(fn, "target", target)
    q = len(levels)
    if preds.dim() < 3 or preds.shape[-1] != q:
        fail(
            fn,
            "preds",
            f"have shape (B, T[, F], Q) with Q = len(quantiles) = {q} in the last dimension",
            tuple(preds.shape),
            raw_got=True,
        )
    if target.shape != preds.shape[:-1]:
        hint = None
        if target.shape == preds.shape:
            hint = "One target value serves all Q quantile predictions of a row."
        fail(
            fn,
            "target",
            f"have shape `preds`.shape[:-1] = {tuple(preds.shape[:-1])}",
            tuple(target.shape),
            raw_got=True,
            hint=hint,
        )
    check_same_device(fn, "target", target, "preds", preds)


class _ForecastMetric(LosslabMetric):
    """Shared machinery: float64 ``total`` / ``count`` states and a ``config_tag``.

    The sums are exact (float64 under ``.to()`` / ``set_dtype``) and persistent. The tag
    (:mod:`losslab.metrics._base`) keeps ``MetricCollection``'s default compute groups from
    merging different metrics whose states agree after the first batch (a MASE and an sMAPE
    that both saw a perfect first batch, 0 / n); subclasses set their options before calling
    this ``__init__`` and list them in ``_config``.
    """

    is_differentiable = False
    higher_is_better: Optional[bool] = False
    full_state_update = False
    plot_lower_bound = 0.0

    total: Tensor
    count: Tensor
    config_tag: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_exact_state("total", torch.zeros((), dtype=torch.float64))
        self.add_exact_state("count", torch.zeros((), dtype=torch.float64))
        self.add_config_tag()

    def compute(self) -> Tensor:
        """``total / count``: NaN (0/0) before any element."""
        return (self.total / self.count).to(self.dtype)


class _PointMetric(_ForecastMetric):
    """A metric of point forecasts; with ``quantiles`` it scores the median column."""

    def __init__(self, quantiles: Optional[Quantiles], **kwargs: Any) -> None:
        fn = type(self).__name__
        self.quantiles: Optional[tuple[float, ...]] = None
        self.median_index = -1
        if quantiles is not None:
            self.quantiles = _check_quantiles(fn, quantiles)
            self.median_index = _level_index(fn, "0.5", self.quantiles, 0.5)
        super().__init__(**kwargs)

    def _config(self) -> tuple[Hashable, ...]:
        return (self.quantiles,)

    def _point(self, fn: str, preds: Any, target: Any) -> tuple[Tensor, Tensor]:
        """Checked float64 (point forecast, target) of one batch."""
        if self.quantiles is None:
            check_pair(fn, preds, target)
            check_floating(fn, "target", target)
            point = preds
        else:
            _check_quantile_pair(fn, preds, target, self.quantiles)
            point = preds[..., self.median_index]
        _check_series(fn, target)
        return point.detach().to(torch.float64), target.detach().to(torch.float64)

    def extra_repr(self) -> str:
        return "" if self.quantiles is None else f"quantiles={list(self.quantiles)}"


class MASE(_PointMetric):
    r"""Mean absolute scaled error over all elements seen, against the in-sample naive forecast.

    .. math:: \mathrm{MASE} = \frac{1}{N} \sum_{b,t,f}
              \frac{|\hat y_{b,t,f} - y_{b,t,f}|}{q_{b,f}}, \qquad
              q_{b,f} = \frac{1}{T_{in} - m} \sum_{s=m}^{T_{in}-1} |x_{b,s,f} - x_{b,s-m,f}|

    with :math:`x` the in-sample history of each series (and feature), :math:`m` the seasonal
    period and :math:`N` the number of forecast elements seen. When every series has the same
    horizon this is the mean of the per-series MASE (M4's definition); with horizons of
    different lengths in different batches, longer series weigh more. Below 1: better than
    the in-sample naive forecast. The per-element terms are
    :func:`~losslab.losses.timeseries.mase.mase_loss`'s.

    ``update(preds, target, *, insample)``: ``insample`` (B, T_in[, F]) is the history of the
    batch's series, ``target``'s shape except along ``time_dim``, ``T_in > m``. In a
    ``MetricCollection``, ``collection.update(preds, target, insample=history)`` reaches this
    metric only: torchmetrics passes each metric the keyword arguments its ``update``
    signature names.

    A constant history has :math:`q = 0`: ``ValueError`` naming the series under
    ``validate=True``; with ``validate=False`` its terms are ``inf`` (0 for an exact forecast).

    Args:
        m: seasonal period of the naive forecast, an int >= 1.
        time_dim: the time axis of ``target`` and ``insample`` (never 0).
        quantiles: ``None`` (point ``preds``, ``target``'s shape) or the levels of quantile
            ``preds`` (B, T[, F], Q): the 0.5 column is scored.
        validate: refuse zero naive scales (one host sync per update).
        **kwargs: torchmetrics ``Metric`` options.

    Reference: R. J. Hyndman and A. B. Koehler, "Another look at measures of forecast
    accuracy", International Journal of Forecasting 22(4), 2006.

    >>> import torch
    >>> metric = MASE()
    >>> history = torch.tensor([[1.0, 3.0, 2.0, 4.0]])  # naive scale (2 + 1 + 2) / 3
    >>> metric.update(torch.tensor([[5.0, 5.0]]), torch.tensor([[4.0, 7.0]]), insample=history)
    >>> metric.compute()
    tensor(0.9000)
    """

    def __init__(
        self,
        *,
        m: int = 1,
        time_dim: int = 1,
        quantiles: Optional[Quantiles] = None,
        validate: bool = True,
        **kwargs: Any,
    ) -> None:
        fn = type(self).__name__
        self.m = int(check_int_option(fn, "m", m, low=1))  # type: ignore[arg-type]
        self.time_dim = check_time_dim(fn, time_dim)
        self.validate = check_flag(fn, "validate", validate)
        super().__init__(quantiles, **kwargs)

    def _config(self) -> tuple[Hashable, ...]:
        return (*super()._config(), self.m, self.time_dim, self.validate)

    def update(self, preds: Tensor, target: Tensor, *, insample: Optional[Tensor] = None) -> None:
        """Add a batch of forecasts with the in-sample history of its series."""
        fn = self._where
        point, y = self._point(fn, preds, target)
        if insample is None:
            fail(
                fn,
                "insample",
                "be given: the in-sample history (B, T_in[, F]) of the batch's series",
                "None",
                kind=TypeError,
                raw_got=True,
                hint="Call update(preds, target, insample=history); a MetricCollection "
                "forwards `insample` to MASE only.",
            )
        check_floating(fn, "insample", insample)
        dim = resolve_time_dim(fn, self.time_dim, y, name="target")
        # The loss's own checks and scale (float64 history), named after this metric:
        # shapes, T_in > m (always), and zero scales under validate.
        history = insample.detach().to(torch.float64)
        scale = naive_scale(fn, history, y, dim, self.m, ref_name="target", shown_dim=self.time_dim)
        check_scale(fn, scale, dim, self.validate)
        if y.numel() == 0:
            return
        total = reduce(scaled_errors(point, y, scale), "sum", out_dtype=output_dtype(point))
        self.total = self.total + total
        self.count = self.count + float(y.numel())

    def extra_repr(self) -> str:
        text = f"m={self.m}, time_dim={self.time_dim}"
        rest = super().extra_repr()
        return text + (", " + rest if rest else "")


class SMAPE(_PointMetric):
    r"""Symmetric mean absolute percentage error over all elements seen, a fraction in [0, 2].

    .. math:: \mathrm{sMAPE} = \frac{1}{N} \sum_i \frac{2\,|y_i - \hat y_i|}{|y_i| + |\hat y_i|},
              \qquad \text{a term is 0 when } y_i = \hat y_i = 0

    Multiply by 100 for the M4 percentage. The per-element terms are
    :func:`~losslab.losses.timeseries.smape.smape_loss`'s. torchmetrics'
    ``SymmetricMeanAbsolutePercentageError`` gives the same value except at
    :math:`y = \hat y = 0` neighbourhoods, where it clamps the denominator to 1.17e-6.

    ``update(preds, target)``.

    Args:
        quantiles: ``None`` (point ``preds``) or the levels of quantile ``preds``
            (B, T[, F], Q): the 0.5 column is scored.
        **kwargs: torchmetrics ``Metric`` options.

    Reference: S. Makridakis, "Accuracy measures: theoretical and practical concerns",
    International Journal of Forecasting 9(4), 1993.

    >>> import torch
    >>> metric = SMAPE()
    >>> metric.update(torch.tensor([[110.0, 90.0]]), torch.tensor([[100.0, 100.0]]))
    >>> metric.update(torch.tensor([[0.0]]), torch.tensor([[0.0]]))
    >>> metric.compute()  # (20/210 + 20/190 + 0) / 3
    tensor(0.0668)
    """

    def __init__(self, *, quantiles: Optional[Quantiles] = None, **kwargs: Any) -> None:
        super().__init__(quantiles, **kwargs)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of forecasts."""
        point, y = self._point(self._where, preds, target)
        if y.numel() == 0:
            return
        self.total = self.total + smape_loss(point, y, reduction="sum")
        self.count = self.count + float(y.numel())


class WAPE(_PointMetric):
    r"""Weighted absolute percentage error over all data: total absolute error over total |target|.

    .. math:: \mathrm{WAPE} = \frac{\sum_i |y_i - \hat y_i|}{\sum_i |y_i|}

    over every element seen (all series, all batches, all processes): a global ratio, kept as
    two float64 sums, not a mean of per-series or per-batch ratios (the loss
    :func:`~losslab.losses.timeseries.wape.wape_loss` gives those). A zero denominator gives
    ``inf``, or 0 when every forecast is exact (the loss's ``validate=False`` convention);
    no data gives NaN. torchmetrics' ``WeightedMeanAbsolutePercentageError`` is the same
    ratio with the denominator clamped to 1.17e-6.

    ``update(preds, target)``.

    Args:
        quantiles: ``None`` (point ``preds``) or the levels of quantile ``preds``
            (B, T[, F], Q): the 0.5 column is scored.
        **kwargs: torchmetrics ``Metric`` options.

    Reference: S. Kolassa and W. Schütz, "Advantages of the MAD/Mean ratio over the MAPE",
    Foresight 6, 2007.

    >>> import torch
    >>> metric = WAPE()
    >>> metric.update(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 2.0, 2.0]]))
    >>> metric.update(torch.tensor([[0.0, 0.0, 10.0]]), torch.tensor([[1.0, 1.0, 8.0]]))
    >>> metric.compute()  # (2 + 4) / (6 + 10)
    tensor(0.3750)
    """

    scale: Tensor

    def __init__(self, *, quantiles: Optional[Quantiles] = None, **kwargs: Any) -> None:
        super().__init__(quantiles, **kwargs)
        self.add_exact_state("scale", torch.zeros((), dtype=torch.float64))

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of forecasts: both sums grow."""
        point, y = self._point(self._where, preds, target)
        if y.numel() == 0:
            return
        self.total = self.total + (y - point).abs().sum()
        self.scale = self.scale + y.abs().sum()
        self.count = self.count + float(y.numel())

    def compute(self) -> Tensor:
        """``sum |e| / sum |y|``; inf (0 for exact forecasts) at ``sum |y| = 0``; NaN on no data."""
        zero = self.scale == 0
        safe = torch.where(zero, torch.ones_like(self.scale), self.scale)
        at_zero = torch.where(
            self.total == 0, torch.zeros_like(self.total), torch.full_like(self.total, math.inf)
        )
        value = torch.where(zero, at_zero, self.total / safe)
        value = torch.where(self.count > 0, value, torch.full_like(value, math.nan))
        return value.to(self.dtype)


class MeanPinballLoss(_ForecastMetric):
    r"""Pinball (quantile) loss, averaged over the quantile levels and all elements seen.

    With :math:`e_{iq} = y_i - \hat y_{iq}` and level :math:`\tau_q`:

    .. math:: \frac{1}{N Q} \sum_{i} \sum_{q=1}^{Q}
              \max\bigl(\tau_q \, e_{iq},\; (\tau_q - 1)\, e_{iq}\bigr)

    equal to the mean over the levels of scikit-learn's ``mean_pinball_loss(y, pred_q,
    alpha=tau_q)`` on all the data. The terms are
    :func:`~losslab.losses.regression.pinball.pinball_loss`'s.

    ``update(preds, target)``: ``preds`` (B, T[, F], Q), ``target`` ``preds.shape[:-1]``.

    Args:
        quantiles: the Q levels in (0, 1), strictly increasing (a sequence or a 1-D tensor).
        **kwargs: torchmetrics ``Metric`` options.

    Reference: R. Koenker and G. Bassett, "Regression Quantiles", Econometrica 46(1), 1978.

    >>> import torch
    >>> metric = MeanPinballLoss(quantiles=(0.1, 0.5, 0.9))
    >>> preds = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 1.5, 4.0]]])
    >>> metric.update(preds, torch.tensor([[1.0, 3.0]]))
    >>> metric.compute()
    tensor(0.2083)
    """

    def __init__(self, *, quantiles: Quantiles, **kwargs: Any) -> None:
        self.quantiles = _check_quantiles(type(self).__name__, quantiles)
        super().__init__(**kwargs)

    def _config(self) -> tuple[Hashable, ...]:
        return (self.quantiles,)

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of quantile forecasts."""
        fn = self._where
        _check_quantile_pair(fn, preds, target, self.quantiles)
        _check_series(fn, target)
        if preds.numel() == 0:
            return
        total = pinball_loss(
            preds.detach().to(torch.float64),
            target.detach().to(torch.float64),
            quantiles=self.quantiles,
            reduction="sum",
        )
        self.total = self.total + total
        self.count = self.count + float(preds.numel())

    def extra_repr(self) -> str:
        return f"quantiles={list(self.quantiles)}"


class QuantileCoverage(_ForecastMetric):
    r"""Empirical coverage of a predicted quantile interval: the fraction of targets inside it.

    For the interval between the levels ``interval = (lo, hi)`` of the forecast:

    .. math:: \mathrm{coverage} = \frac{1}{N} \sum_i
              \mathbb{1}\bigl[\hat y_{i,lo} \le y_i \le \hat y_{i,hi}\bigr]

    over every target element seen (the interval is closed). Well calibrated forecasts give
    the nominal level ``hi - lo`` (0.8 for (0.1, 0.9)): neither higher nor lower is better.
    Crossed quantiles (:math:`\hat y_{lo} > \hat y_{hi}`) make an empty interval, and a NaN
    forecast or target is outside (both counted in :math:`N`). NaN on no data.

    ``update(preds, target)``: ``preds`` (B, T[, F], Q), ``target`` ``preds.shape[:-1]``.

    Args:
        quantiles: the Q levels of ``preds``' last dimension, strictly increasing.
        interval: ``(lo, hi)``, two of the levels with ``lo < hi``.
        **kwargs: torchmetrics ``Metric`` options.

    Reference: T. Gneiting and A. E. Raftery, "Strictly proper scoring rules, prediction, and
    estimation", JASA 102(477), 2007 (calibration of central prediction intervals).

    >>> import torch
    >>> metric = QuantileCoverage(quantiles=(0.1, 0.5, 0.9), interval=(0.1, 0.9))
    >>> preds = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 1.5, 4.0], [0.0, 0.5, 1.0]]])
    >>> metric.update(preds, torch.tensor([[1.0, 5.0, 1.0]]))  # inside, above, on the edge
    >>> metric.compute()
    tensor(0.6667)
    """

    higher_is_better = None
    plot_upper_bound = 1.0

    def __init__(
        self, *, quantiles: Quantiles, interval: tuple[float, float], **kwargs: Any
    ) -> None:
        fn = type(self).__name__
        self.quantiles = _check_quantiles(fn, quantiles)
        if (
            not is_sequence(interval)
            or len(interval) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in interval)
        ):
            fail(fn, "interval", "be a pair (lo, hi) of quantile levels", interval, kind=TypeError)
        lo, hi = float(interval[0]), float(interval[1])
        self.lower_index = _level_index(fn, "interval", self.quantiles, lo)
        self.upper_index = _level_index(fn, "interval", self.quantiles, hi)
        if not lo < hi:
            fail(fn, "interval", "be (lo, hi) with lo < hi", interval)
        self.interval = (lo, hi)
        super().__init__(**kwargs)

    def _config(self) -> tuple[Hashable, ...]:
        return (self.quantiles, self.interval)

    @property
    def nominal(self) -> float:
        """The coverage a calibrated forecast reaches: ``hi - lo``."""
        return self.interval[1] - self.interval[0]

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of quantile forecasts: count the targets inside the interval."""
        fn = self._where
        _check_quantile_pair(fn, preds, target, self.quantiles)
        _check_series(fn, target)
        if target.numel() == 0:
            return
        p = preds.detach().to(torch.float64)
        y = target.detach().to(torch.float64)
        inside = (y >= p[..., self.lower_index]) & (y <= p[..., self.upper_index])
        self.total = self.total + inside.sum().to(torch.float64)
        self.count = self.count + float(y.numel())

    def extra_repr(self) -> str:
        return f"quantiles={list(self.quantiles)}, interval={self.interval}"


def _coverage_key(lo: float, hi: float) -> str:
    # Module names cannot hold "."; 80 % -> "coverage@80", 33.4 % -> "coverage@33_4".
    percent = f"{round(100.0 * (hi - lo), 6):g}".replace(".", "_")
    return f"coverage@{percent}"


def forecasting_metrics(
    *,
    quantiles: Optional[Quantiles] = None,
    m: int = 1,
    time_dim: int = 1,
    prefix: Optional[str] = None,
) -> MetricCollection:
    r"""The forecasting metric set, for point or quantile forecasts.

    * ``quantiles=None``: point forecasts ``preds`` (B, T[, F]) scored by ``mase``,
      ``smape`` and ``wape`` (:class:`MASE`, :class:`SMAPE`, :class:`WAPE`).
    * ``quantiles`` given: ``preds`` (B, T[, F], Q) against ``target`` (B, T[, F]), scored by
      ``pinball`` (:class:`MeanPinballLoss`, the mean over levels and elements) and one
      ``coverage@P`` (:class:`QuantileCoverage`) for each **symmetric pair** of levels
      :math:`(\tau, 1 - \tau)`, :math:`\tau < 0.5`, with :math:`P = 100 (1 - 2\tau)`
      (levels 0.05, 0.25, 0.5, 0.75, 0.95 give ``coverage@90`` and ``coverage@50``; levels
      without a symmetric partner get none; use :class:`QuantileCoverage` for other
      intervals). When 0.5 is a level, ``mase``, ``smape`` and ``wape`` score the median
      column too; without it there is no point forecast and they are not in the set.

    ``collection.update(preds, target, insample=history)``: ``insample`` (the series' history,
    ``target``'s shape except along ``time_dim``) is needed by MASE, and torchmetrics passes
    it to MASE only (``MetricCollection`` filters keyword arguments by each metric's
    ``update`` signature); without MASE in the set it is ignored.

    Args:
        quantiles: ``None`` or the Q levels in (0, 1), strictly increasing.
        m: MASE's seasonal period, an int >= 1.
        time_dim: the time axis of ``target`` and ``insample`` (never 0).
        prefix: prepended to every key (``"val/"`` gives ``"val/mase"``).

    Reference: see the classes; torchmetrics ``MetricCollection`` for the container.

    >>> import torch
    >>> metrics = forecasting_metrics(quantiles=(0.1, 0.5, 0.9))
    >>> preds = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 1.5, 4.0], [2.0, 2.5, 3.0]]])
    >>> target = torch.tensor([[1.0, 3.0, 2.0]])
    >>> metrics.update(preds, target, insample=torch.tensor([[0.0, 1.0, 3.0]]))
    >>> {name: round(value.item(), 4) for name, value in sorted(metrics.compute().items())}
    {'coverage@80': 1.0, 'mase': 0.4444, 'pinball': 0.1778, 'smape': 0.2963, 'wape': 0.3333}
    """
    fn = "forecasting_metrics"
    m = int(check_int_option(fn, "m", m, low=1))  # type: ignore[arg-type]
    time_dim = check_time_dim(fn, time_dim)
    check_prefix(fn, prefix, noun="string")
    metrics: dict[str, Union[Metric, MetricCollection]] = {}
    levels: Optional[tuple[float, ...]] = None
    if quantiles is not None:
        levels = _check_quantiles(fn, quantiles)
        metrics["pinball"] = MeanPinballLoss(quantiles=levels)
        for lo in levels:
            if lo >= 0.5:
                break
            for hi in levels:
                if math.isclose(lo + hi, 1.0, rel_tol=0.0, abs_tol=1e-9):
                    metrics[_coverage_key(lo, hi)] = QuantileCoverage(
                        quantiles=levels, interval=(lo, hi)
                    )
    has_point = levels is None or any(
        math.isclose(q, 0.5, rel_tol=0.0, abs_tol=1e-9) for q in levels
    )
    if has_point:
        metrics["mase"] = MASE(m=m, time_dim=time_dim, quantiles=levels)
        metrics["smape"] = SMAPE(quantiles=levels)
        metrics["wape"] = WAPE(quantiles=levels)
    return MetricCollection(metrics, prefix=prefix)
