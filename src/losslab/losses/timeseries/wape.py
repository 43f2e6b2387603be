"""Weighted absolute percentage error (WAPE): total absolute error over total absolute target."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab._checks import (
    check_choice,
    check_ndim_at_least,
    check_pointwise,
    check_reduction,
    fail,
    is_compiling,
)
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.distributed import check_on_every_rank, check_sync, sync_sum
from losslab.losses.base import Loss

__all__ = ["WAPELoss", "wape_loss"]

AGGREGATES = ("series", "batch")


def _check_options(fn: str, aggregate: Any, sync: Any) -> tuple[str, str]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return check_choice(fn, "aggregate", aggregate, AGGREGATES), check_sync(fn, sync)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den with 0/0 := 0 and x/0 := inf (x > 0), never NaN, zero gradient at den = 0."""
    zero = den == 0
    safe = torch.where(zero, torch.ones_like(den), den)
    at_zero = torch.where(num == 0, torch.zeros_like(num), torch.full_like(num, float("inf")))
    return torch.where(zero, at_zero, num / safe)


def _check_denominator(fn: str, den: Tensor, aggregate: str, validate: bool) -> None:
    if not validate or is_compiling():
        return
    with torch.no_grad():
        zero = den == 0
        if not bool(zero.any()):
            return
        if aggregate == "series":
            got = (
                f"sum |target| = 0 for series {int(zero.nonzero()[0, 0])}; "
                f"{int(zero.sum())} such series in all"
            )
            what = "have a non-zero sum |target| in every series (aggregate='series')"
        else:
            got, what = "sum |target| = 0", "have a non-zero sum |target| over the batch"
        fail(
            fn,
            "target",
            what,
            got,
            raw_got=True,
            hint="WAPE is undefined there; pass validate=False to get inf (0 for a perfect "
            "forecast).",
        )


def wape_loss(
    pred: Tensor,
    target: Tensor,
    *,
    aggregate: str = "series",
    sync: str = "local",
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Sum of absolute errors over the sum of absolute targets, per series or per batch.

    .. math:: \text{WAPE}_b = \frac{\sum_{t,f} |y_{b,t,f} - \hat y_{b,t,f}|}
                                   {\sum_{t,f} |y_{b,t,f}|}

    ``aggregate="series"`` gives one ratio per series: ``none`` returns the (B,) ratios,
    ``mean`` their (``sample_weight``-weighted) mean, ``sum`` their sum.
    ``aggregate="batch"`` gives one ratio over the whole batch (with ``sample_weight``
    :math:`s`: :math:`\sum_b s_b \sum_{t,f} |e| / \sum_b s_b \sum_{t,f} |y|`); ``none``,
    ``mean`` and ``sum`` all return it as a 0-d tensor. ``aggregate="batch"`` is a batch
    statistic: it is not additive over splits of the batch, and its value depends on how
    the data is batched; across processes, ``sync="global"`` sums numerator and denominator
    over every rank first, so each rank gets the ratio of the global batch (for
    ``"series"``, ``sync="global"`` makes ``mean`` and ``sum`` run over every rank's series).

    A zero denominator (a series, or the batch, with :math:`\sum |y| = 0`) raises
    ``ValueError`` under ``validate``; with ``validate=False`` the ratio is ``inf``, or 0 for
    a perfect forecast (never NaN).

    Also known as WMAPE (MAD/mean ratio). A fraction, not a percentage.

    Args:
        pred: forecasts (B, T) or (B, T, F), floating point.
        target: same shape and device as ``pred``.
        aggregate: ``"series" | "batch"``.
        sync: ``"local" | "global"`` (see above and :mod:`losslab.distributed`).
        sample_weight: (B,) non-negative weights of the series.
        validate: check values (one host sync): refuse zero denominators.
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns (B,) for ``"series"``,
            a 0-d tensor for ``"batch"``.

    Reference: S. Kolassa and W. Schütz, "Advantages of the MAD/Mean ratio over the MAPE",
    Foresight 6, 2007.

    >>> import torch
    >>> pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 10.0]])
    >>> target = torch.tensor([[2.0, 2.0, 2.0], [1.0, 1.0, 8.0]])
    >>> wape_loss(pred, target, reduction="none")
    tensor([0.3333, 0.4000])
    >>> wape_loss(pred, target, aggregate="batch")
    tensor(0.3750)
    """
    fn = "wape_loss"
    # Option checks first (every rank raises alike); then the data checks, agreed across
    # ranks under sync="global" so a rank with bad values never leaves the others waiting in
    # the collective below.
    aggregate, sync = _check_options(fn, aggregate, sync)

    def checks() -> Tensor:
        check_pointwise(
            fn,
            "pred",
            pred,
            target,
            reduction=reduction,
            sample_weight=sample_weight,
            validate=validate,
        )
        check_ndim_at_least(fn, "pred", pred, 2, "(B, T) or (B, T, F)")
        den = upcast(target).abs().sum(tuple(range(1, pred.dim())))  # (B,)
        if aggregate == "series":
            _check_denominator(fn, den, aggregate, validate)
        return den

    den = check_on_every_rank(fn, checks, sync=sync, validate=validate, like=pred)
    p, y = upcast(pred), upcast(target)
    dims = tuple(range(1, pred.dim()))
    num = (y - p).abs().sum(dims)  # (B,)
    out_dtype = output_dtype(pred)
    if aggregate == "series":
        return reduce(
            _ratio(num, den),
            reduction,
            sample_weight=sample_weight,
            out_dtype=out_dtype,
            sync=sync,
        )
    if sample_weight is not None:
        s = sample_weight.to(num.dtype)
        num, den = num * s, den * s
    # One collective for both sums; every rank then checks the same global denominator.
    num_total, den_total = sync_sum(torch.stack([num.sum(), den.sum()]), sync).unbind()
    _check_denominator(fn, den_total, aggregate, validate)
    # one ratio: none, mean and sum of a single 0-d value are that value
    return _ratio(num_total, den_total).to(out_dtype)


@register
class WAPELoss(Loss):
    """Weighted absolute percentage error (WAPE), per series or over the batch.

    ``aggregate="batch"`` is a batch statistic (one ratio over the whole batch);
    ``sync="global"`` takes it over every process.
    """

    key = "wape"
    family = "timeseries"
    input_kind = "values"
    pointwise = False
    needs_global_stats = True  # aggregate="batch"; sync="global" makes it exact
    function = staticmethod(wape_loss)

    def __init__(
        self,
        *,
        aggregate: str = "series",
        sync: str = "local",
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("WAPELoss", aggregate, sync)
        check_reduction("WAPELoss", reduction)
        self._store(aggregate=aggregate, sync=sync, validate=validate, reduction=reduction)
