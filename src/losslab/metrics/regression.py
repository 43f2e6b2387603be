r"""The regression metric set on torchmetrics: MAE, RMSE, R2 and MAPE in float64, shapes checked.

:func:`regression_metrics` returns a torchmetrics ``MetricCollection`` whose metrics accumulate
float64 sums (so long streams and large offsets do not lose the digits float32 loses), check
every batch before torchmetrics sees it (torchmetrics' own checks raise ``RuntimeError`` and
R2Score broadcasts differing widths across batches), and survive a process that received no
batch in a distributed run.
"""

from __future__ import annotations

from typing import Any, Optional, cast

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.regression import MeanAbsoluteError, MeanAbsolutePercentageError, R2Score

from losslab._checks import check_floating, fail
from losslab.metrics._base import CheckedCollection, LosslabMetric, check_prefix, nan_like
from losslab.metrics._inputs import check_pair

__all__ = ["regression_metrics"]


class _R2Score(LosslabMetric, R2Score):
    r"""torchmetrics' R2 state (per-output sums) with sklearn's conventions in ``compute``.

    Per output :math:`d`: :math:`SS_{tot} = \sum y^2 - (\sum y)^2 / n` (one pass, float64),
    :math:`R^2_d = 1 - SS_{res} / SS_{tot}`; a constant target gives 1 for a perfect fit and 0
    otherwise (sklearn's ``force_finite=True``); fewer than two samples give NaN. torchmetrics
    decides "constant" with an absolute ``atol=1e-4`` on the sums, which misreads any target
    with :math:`SS_{tot} < 10^{-4}` (50 targets of std 1e-3); here the tolerance is relative: :math:`SS_{tot} \le 10^{-12} \sum y^2`.
    """

    def _per_output(self) -> Tensor:
        n = self.total
        tss = self.sum_squared_error - self.sum_error * self.sum_error / n
        constant = tss <= 1e-12 * self.sum_squared_error
        perfect = self.residual == 0
        fitted = 1.0 - self.residual / torch.where(constant, torch.ones_like(tss), tss)
        return torch.where(constant, perfect.to(tss.dtype), fitted)

    def compute(self) -> Tensor:
        if float(self.total) < 2:
            return nan_like(torch.float64, self.device)
        return self._per_output().mean()


class _RootMeanSquaredError(_R2Score):
    r"""Uniform mean over outputs of :math:`\sqrt{SS_{res,d} / n}`, from the same state as R2.

    Sharing R2Score's state lets torchmetrics' compute groups update it once for both.
    """

    higher_is_better = False

    def compute(self) -> Tensor:
        if float(self.total) < 1:
            return nan_like(torch.float64, self.device)
        return torch.sqrt(self.residual / self.total).mean()


class _RegressionMetrics(CheckedCollection):
    """Check each batch once, reshape (N,) to (N, 1), cast to float64, feed every metric."""

    _output_keys = ("mae", "mape", "r2", "rmse")
    _nan_dtype = torch.float64

    def __init__(self, metrics: dict[str, Any], *, prefix: Optional[str]) -> None:
        # Explicit groups (automatic grouping can merge by coincidence): RMSE reads R2's sums.
        super().__init__(metrics, prefix=prefix, compute_groups=[["mae"], ["mape"], ["r2", "rmse"]])

    def _prepare(self, preds: Any, target: Any) -> tuple[Tensor, Tensor]:
        fn = "regression_metrics.update"
        check_pair(fn, preds, target)
        check_floating(fn, "target", target)
        if preds.dim() not in (1, 2) or (preds.dim() == 2 and preds.shape[1] == 0):
            fail(fn, "preds", "have shape (N,) or (N, D), D >= 1", tuple(preds.shape), raw_got=True)
        width = 1 if preds.dim() == 1 else preds.shape[1]
        r2 = cast(_R2Score, self._modules["r2"])
        seen: Tensor = r2.sum_error  # 0-d before the first update, (D,) after
        if seen.dim() == 1 and seen.shape[0] != width:
            fail(
                fn,
                "preds",
                f"have D = {seen.shape[0]} outputs as in the earlier updates ((N,) counts as D = 1)",
                tuple(preds.shape),
                raw_got=True,
                hint="Call reset() to start a stream with another width.",
            )
        preds = preds.detach().reshape(preds.shape[0], width).double()
        target = target.detach().reshape(target.shape[0], width).double()
        return preds, target


def regression_metrics(*, prefix: Optional[str] = None) -> MetricCollection:
    r"""The regression set: MAE, RMSE, R2 and MAPE, streaming, float64, shapes checked.

    For ``preds`` :math:`\hat y` and ``target`` :math:`y` of shape (N,) or (N, D) (an (N,)
    stream counts as D = 1):

    .. math::
        \text{mae} = \frac{1}{ND} \sum_{i,d} |\hat y_{id} - y_{id}|, \quad
        \text{rmse} = \frac1D \sum_d \sqrt{\frac1N \sum_i (\hat y_{id} - y_{id})^2},

    .. math::
        \text{r2} = \frac1D \sum_d \Big(1 - \frac{\sum_i (y_{id} - \hat y_{id})^2}
                                             {\sum_i (y_{id} - \bar y_d)^2}\Big), \quad
        \text{mape} = \frac{1}{ND} \sum_{i,d}
                      \frac{|\hat y_{id} - y_{id}|}{\max(|y_{id}|, \epsilon)},
        \ \epsilon = 1.17 \cdot 10^{-6}.

    Multi-output convention: the uniform average over outputs, sklearn's default
    (``multioutput="uniform_average"``); for MAE and MAPE that equals the mean over all N·D
    elements; RMSE and R2 are computed per output, then averaged (not the RMSE of the pooled
    errors). MAPE is torchmetrics' ``MeanAbsolutePercentageError``: it clamps
    :math:`|y|` below at :math:`\epsilon = 1.17 \cdot 10^{-6}` (sklearn clamps at float64's
    machine epsilon 2.2e-16, so the two differ only for targets with :math:`|y| < 1.17 \cdot
    10^{-6}`); it is a ratio, not a percentage (no factor 100).

    Implementation: torchmetrics' ``MeanAbsoluteError`` and ``MeanAbsolutePercentageError`` as
    they are; R2 from ``R2Score``'s per-output sums with a corrected ``compute`` (sklearn's
    ``force_finite`` rule for a constant target: 1 for a perfect fit, else 0, decided with a
    relative tolerance, :math:`SS_{tot} \le 10^{-12} \sum y^2`; torchmetrics uses an absolute
    ``atol=1e-4`` on the sums, wrong whenever :math:`SS_{tot} < 10^{-4}`); RMSE per output from the
    same residual sums (one shared state, torchmetrics' compute groups). All states are float64
    (``set_dtype``) and the batch is cast to float64 before it is summed; the one-pass
    :math:`SS_{tot}` keeps about :math:`16 - \log_{10}(\overline{y^2} / \mathrm{var}\,y)`
    significant digits (e.g. ~6 for targets 1e5 ± 1).

    Checks on every ``update`` (no host sync): tensors, both floating, exactly the same shape
    ((N, 1) against (N,) is refused, where torchmetrics would broadcast or reshape), (N,) or
    (N, D), the same device, and the same D as earlier updates since the last ``reset``.
    ``compute()`` before ``update()`` warns (torchmetrics' UserWarning) and returns NaN for
    every key; R2 is NaN below two samples. Values are float64 0-d tensors.

    Args:
        prefix: prepended to every key (e.g. ``"val_"``).

    Returns:
        A ``MetricCollection`` with keys ``mae, mape, r2, rmse``; all states persistent.

    References: scikit-learn's ``mean_absolute_error``, ``root_mean_squared_error``,
    ``r2_score``, ``mean_absolute_percentage_error`` (the conventions above).

    >>> import torch
    >>> metrics = regression_metrics()
    >>> target = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    >>> preds = torch.tensor([[1.5, 12.0], [2.0, 18.0], [2.0, 33.0], [4.5, 40.0]])
    >>> metrics.update(preds[:1], target[:1])
    >>> metrics.update(preds[1:], target[1:])
    >>> for key, value in metrics.compute().items():
    ...     print(f"{key}: {value.item():.4f}")
    mae: 1.1250
    mape: 0.1698
    r2: 0.8330
    rmse: 1.3370
    """
    prefix = check_prefix("regression_metrics", prefix)
    metrics: dict[str, Any] = {
        "mae": MeanAbsoluteError(),
        "rmse": _RootMeanSquaredError(),
        "r2": _R2Score(),
        "mape": MeanAbsolutePercentageError(),
    }
    for metric in metrics.values():
        metric.set_dtype(torch.float64)
    collection = _RegressionMetrics(metrics, prefix=prefix)
    collection.persistent(True)
    return collection
