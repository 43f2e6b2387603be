"""Soft-DTW divergence: soft-DTW debiased to be 0 for equal series and non-negative."""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from losslab._autograd.soft_dtw import soft_dtw_values
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.timeseries.soft_dtw import (
    SoftDTWBase,
    _check_options,
    _check_series,
    squared_euclidean_cost,
)

__all__ = ["SoftDTWDivergenceLoss", "soft_dtw_divergence_loss"]


def soft_dtw_divergence_loss(
    pred: Tensor,
    target: Tensor,
    *,
    gamma: float = 1.0,
    bandwidth: Optional[int] = None,
    sample_weight: Optional[Tensor] = None,
    mask: Optional[Tensor] = None,
    target_mask: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Soft-DTW divergence between each predicted series and its target.

    With :math:`\operatorname{sdtw}_\gamma` the soft-DTW of :func:`soft_dtw_loss` (squared
    Euclidean cost), per series:

    .. math::

        \ell = \operatorname{sdtw}_\gamma(x, y)
            - \tfrac12 \big(\operatorname{sdtw}_\gamma(x, x) + \operatorname{sdtw}_\gamma(y, y)\big)

    It is exactly 0 for equal series (the three terms are then computed from bitwise equal
    costs) and removes the entropic bias that lets soft-DTW go negative and be minimized away
    from :math:`x = y`. The paper proves it non-negative under conditions on the ground cost
    (positive definiteness of the alignment kernel :math:`e^{-D/\gamma}`); it is non-negative
    on every input of the tests, bands and masks included. Masks and the band apply to all
    three terms (``mask`` on both sides of :math:`(x, x)`, ``target_mask`` of :math:`(y, y)`).

    ``none`` returns the per-series values (B,); ``mean`` their ``sample_weight``-weighted mean.
    Double backward is not supported (it raises ``NotImplementedError``).

    Args:
        pred: (B, N) or (B, N, F) series; (B, N) means one feature. Floating point.
        target: (B, M) or (B, M, F), as many dims as ``pred``: same B and F; M may differ.
        gamma: smoothing, > 0 (finite).
        bandwidth: Sakoe-Chiba band :math:`|i - j| \le` ``bandwidth``, >= :math:`|N - M|` (per
            series with masks, checked under ``validate``). None: no band.
        sample_weight: (B,) non-negative weights per series.
        mask: (B, N) bool prefix mask of ``pred`` (True for the valid steps, then only False);
            padded steps do not change the value and get exactly zero gradient.
        target_mask: (B, M) bool prefix mask of ``target``.
        validate: check the masks and the band against the series lengths (one host sync).
        reduction: ``"mean" | "sum" | "none"``.

    Reference: Blondel, Mensch & Vert, "Differentiable Divergences Between Time Series",
    AISTATS 2021.

    >>> import torch
    >>> x = torch.tensor([[1.0, 2.0, 2.0, 3.0]])
    >>> soft_dtw_divergence_loss(x, torch.tensor([[1.0, 2.0, 3.0]]))
    tensor(0.2993)
    >>> soft_dtw_divergence_loss(x, x)
    tensor(0.)
    """
    fn = "soft_dtw_divergence_loss"
    gamma, bandwidth = _check_options(fn, gamma, bandwidth)
    s = _check_series(
        fn,
        pred,
        target,
        bandwidth=bandwidth,
        sample_weight=sample_weight,
        mask=mask,
        target_mask=target_mask,
        validate=validate,
        reduction=reduction,
    )
    xy = soft_dtw_values(squared_euclidean_cost(s.x, s.y), gamma, bandwidth, s.n_len, s.m_len)
    xx = soft_dtw_values(squared_euclidean_cost(s.x, s.x), gamma, bandwidth, s.n_len, s.n_len)
    yy = soft_dtw_values(squared_euclidean_cost(s.y, s.y), gamma, bandwidth, s.m_len, s.m_len)
    values = xy - 0.5 * (xx + yy)
    return reduce(values, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class SoftDTWDivergenceLoss(SoftDTWBase):
    """Soft-DTW divergence: soft-DTW debiased to be 0 for equal series and non-negative."""

    key = "soft_dtw_divergence"
    function = staticmethod(soft_dtw_divergence_loss)
