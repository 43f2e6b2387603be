"""Soft-DTW: a smoothed dynamic-time-warping discrepancy between series of different lengths."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from losslab._autograd.soft_dtw import soft_dtw_values
from losslab._checks import (
    check_float,
    check_floating,
    check_int_option,
    check_reduction,
    check_same_device,
    check_sample_weight,
    fail,
    fmt,
    is_compiling,
)
from losslab._reduce import compute_dtype, output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = ["SoftDTWLoss", "soft_dtw_loss"]


def _check_options(fn: str, gamma: Any, bandwidth: Any) -> tuple[float, Optional[int]]:
    """Hyperparameter checks, shared by the functions and the modules' constructors."""
    gamma = check_float(fn, "gamma", gamma, low=0.0, low_open=True)
    bandwidth = check_int_option(fn, "bandwidth", bandwidth, low=0, allow_none=True)
    return gamma, bandwidth


class _Series(NamedTuple):
    """Checked inputs: series (B, N, F) / (B, M, F) in the compute dtype, padding zeroed."""

    x: Tensor
    y: Tensor
    n_len: Optional[Tensor]  # (B,) lengths of the `pred` series; None: all N
    m_len: Optional[Tensor]  # (B,) lengths of the `target` series; None: all M


def _lengths(
    fn: str, name: str, mask: Any, ref_name: str, ref: Tensor, validate: bool
) -> Optional[Tensor]:
    """(B,) lengths of a boolean prefix mask (B, T) over the series ``ref`` (B, T[, F])."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = f"dtype {fmt(mask.dtype)}" if isinstance(mask, Tensor) else type(mask).__name__
        fail(
            fn,
            name,
            "be a boolean tensor (True at the valid steps)",
            got,
            kind=TypeError,
            raw_got=True,
        )
    expected = tuple(ref.shape[:2])
    if tuple(mask.shape) != expected:
        fail(
            fn,
            name,
            f"have shape (B, T) = {expected}, one flag per step of `{ref_name}` {tuple(ref.shape)}",
            tuple(mask.shape),
            raw_got=True,
        )
    check_same_device(fn, name, mask, ref_name, ref)
    lengths = mask.sum(1)
    if validate and not is_compiling() and mask.numel():
        with torch.no_grad():
            steps = torch.arange(mask.shape[1], device=mask.device)
            not_prefix = (mask != (steps < lengths[:, None])).any(1)
            empty = lengths == 0
            any_empty, any_not_prefix = torch.stack((empty.any(), not_prefix.any())).tolist()
        if any_empty:
            row = int(empty.nonzero()[0, 0])
            fail(
                fn,
                name,
                "have at least one True (valid step) per series",
                f"series {row} all False",
                raw_got=True,
            )
        if any_not_prefix:
            row = int(not_prefix.nonzero()[0, 0])
            flags = "".join("1" if v else "0" for v in mask[row].tolist())
            fail(
                fn,
                name,
                "be a prefix mask: True for the valid steps of a series, then only False",
                f"series {row} = {flags}",
                raw_got=True,
                hint="Pad series at their end; left padding is not supported.",
            )
    # validate=False trusts the mask; an empty series is read as one step instead of indexing -1.
    return lengths.clamp_min(1)


def _check_series(
    fn: str,
    pred: Any,
    target: Any,
    *,
    bandwidth: Optional[int],
    sample_weight: Optional[Tensor],
    mask: Optional[Tensor],
    target_mask: Optional[Tensor],
    validate: bool,
    reduction: Any,
) -> _Series:
    """Every check of the soft-DTW losses' inputs; the series as (B, T, F) in the compute dtype."""
    check_floating(fn, "pred", pred)
    check_floating(fn, "target", target)
    if pred.dim() not in (2, 3):
        fail(fn, "pred", "have shape (B, N) or (B, N, F)", tuple(pred.shape), raw_got=True)
    if target.dim() != pred.dim():
        fail(
            fn,
            "target",
            f"have as many dimensions as `pred` {tuple(pred.shape)}: (B, M) for (B, N), "
            "(B, M, F) for (B, N, F)",
            tuple(target.shape),
            raw_got=True,
            hint="Nothing is broadcast: reshape explicitly.",
        )
    if target.shape[0] != pred.shape[0]:
        fail(
            fn,
            "target",
            f"have the batch size of `pred` {tuple(pred.shape)} in dim 0",
            tuple(target.shape),
            raw_got=True,
        )
    if pred.dim() == 3 and target.shape[2] != pred.shape[2]:
        fail(
            fn,
            "target",
            f"have the feature size of `pred` {tuple(pred.shape)} in dim 2",
            tuple(target.shape),
            raw_got=True,
        )
    for name, series in (("pred", pred), ("target", target)):
        if series.shape[1] == 0:
            fail(fn, name, "have at least one time step (dim 1)", tuple(series.shape), raw_got=True)
    check_same_device(fn, "target", target, "pred", pred)
    check_reduction(fn, reduction)
    check_sample_weight(fn, sample_weight, pred.shape[0], pred, validate=validate)
    n_len = _lengths(fn, "mask", mask, "pred", pred, validate)
    m_len = _lengths(fn, "target_mask", target_mask, "target", target, validate)

    n, m = pred.shape[1], target.shape[1]
    if bandwidth is not None:
        if n_len is None and m_len is None:
            if abs(n - m) > bandwidth:
                fail(
                    fn,
                    "bandwidth",
                    f"be >= |N - M| = {abs(n - m)} so that the band reaches the end cell "
                    f"(N, M) = ({n}, {m})",
                    bandwidth,
                )
        elif validate and not is_compiling() and pred.shape[0]:
            gap = ((n if n_len is None else n_len) - (m if m_len is None else m_len)).abs()
            worst = int(gap.argmax())
            if int(gap[worst]) > bandwidth:
                fail(
                    fn,
                    "bandwidth",
                    "be >= |n_b - m_b| for every series so that the band reaches its end cell",
                    f"{bandwidth} with |n_b - m_b| = {int(gap[worst])} for series {worst}",
                    raw_got=True,
                )

    dtype = torch.promote_types(compute_dtype(pred), compute_dtype(target))
    x, y = pred.to(dtype), target.to(dtype)
    if x.dim() == 2:
        x, y = x.unsqueeze(-1), y.unsqueeze(-1)
    zero = x.new_zeros(())
    # torch.where, not a product: padding may hold anything (NaN included) and its gradient
    # must be exactly 0.
    if mask is not None:
        x = torch.where(mask.unsqueeze(-1), x, zero)
    if target_mask is not None:
        y = torch.where(target_mask.unsqueeze(-1), y, zero)
    if (n_len is None) != (m_len is None):
        b = pred.shape[0]
        n_len = n_len if n_len is not None else torch.full((b,), n, device=pred.device)
        m_len = m_len if m_len is not None else torch.full((b,), m, device=pred.device)
    return _Series(x, y, n_len, m_len)


def squared_euclidean_cost(x: Tensor, y: Tensor) -> Tensor:
    """Cost (B, N, M) with ``[b, i, j] = ||x[b, i] - y[b, j]||^2`` for x (B, N, F), y (B, M, F).

    Formed from the difference, not as ``|x|^2 + |y|^2 - 2 x.y``: the expansion cancels
    catastrophically when the series sit far from 0 relative to their differences.
    """
    if x.shape[-1] == 1:  # one feature: no (B, N, M, 1) buffer to sum over
        return (x[..., 0].unsqueeze(2) - y[..., 0].unsqueeze(1)).square()
    return (x.unsqueeze(2) - y.unsqueeze(1)).square().sum(-1)


def soft_dtw_loss(
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
    r"""Soft-DTW between each predicted series and its target, which may differ in length.

    With the cost :math:`D_{ij} = \lVert x_i - y_j \rVert^2` between step :math:`i` of ``pred``
    and step :math:`j` of ``target``, per series:

    .. math::

        R_{0,0} = 0, \quad R_{i,0} = R_{0,j} = +\infty, \quad
        R_{i,j} = D_{ij} + \operatorname{softmin}_\gamma(R_{i-1,j-1}, R_{i-1,j}, R_{i,j-1}),

        \operatorname{softmin}_\gamma(a) = -\gamma \log \sum_k e^{-a_k / \gamma},
        \qquad \ell = R_{N,M},

    the soft minimum, over all monotone alignments of the two series, of the summed cost of the
    aligned pairs. As :math:`\gamma \to 0` it tends to DTW (with squared Euclidean cost), from
    below, within :math:`(N + M - 2)\,\gamma \log 3`. The value can be **negative** (the
    softmin lies below the minimum) and is not 0 for equal series; use
    :func:`soft_dtw_divergence_loss` for a non-negative loss that is 0 there.

    **Scale.** The value is a *sum* of costs along an alignment path (N to N + M - 1 pairs),
    so it grows with the series length, while MSE is a mean per step: when mixing the two,
    divide the soft-DTW term by the horizon (``(0.5 / horizon) * SoftDTWLoss() + 0.5 *
    MSELoss()``). Small ``gamma`` makes the landscape as non-smooth as DTW itself and gradient
    descent stalls in its local minima (a forecaster trained with ``gamma=0.1`` ended at MASE
    2.5 where ``gamma=1`` reached 0.8 in ``examples/soft_dtw_forecaster.py``): start near 1.

    ``none`` returns the per-series values (B,); ``mean`` their ``sample_weight``-weighted mean.
    The recursion runs along anti-diagonals with an analytic backward (the expected alignment
    matrix, Algorithm 2 of the paper), in float32 (float64 for float64 inputs); double backward
    is not supported (it raises ``NotImplementedError``).

    Args:
        pred: (B, N) or (B, N, F) series; (B, N) means one feature. Floating point.
        target: (B, M) or (B, M, F), as many dims as ``pred``: same B and F; M may differ.
        gamma: smoothing, > 0 (finite). Small values approach DTW (1e-3 stays finite).
        bandwidth: Sakoe-Chiba band: only cells with :math:`|i - j| \le` ``bandwidth`` are
            aligned. Must be >= :math:`|N - M|` (per series with masks, checked under
            ``validate``; without the check an unreachable end gives ``inf``). None: no band.
        sample_weight: (B,) non-negative weights per series.
        mask: (B, N) bool prefix mask of ``pred``: True for the valid steps of each series,
            then only False (padding at the end). Padded steps do not change the value and get
            exactly zero gradient; they may hold anything, NaN included.
        target_mask: (B, M) bool prefix mask of ``target``, likewise.
        validate: check the masks (prefix, non-empty) and the band against the series lengths
            (one host sync).
        reduction: ``"mean" | "sum" | "none"``.

    Reference: Cuturi & Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series",
    ICML 2017.

    >>> import torch
    >>> soft_dtw_loss(torch.tensor([[1.0, 2.0, 2.0, 3.0]]), torch.tensor([[1.0, 2.0, 3.0]]))
    tensor(-1.5813)
    """
    fn = "soft_dtw_loss"
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
    values = soft_dtw_values(squared_euclidean_cost(s.x, s.y), gamma, bandwidth, s.n_len, s.m_len)
    return reduce(values, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


class SoftDTWBase(Loss):
    """Shared constructor of the soft-DTW modules (checked like their functions)."""

    family = "timeseries"
    input_kind = "values"
    pointwise = False

    def __init__(
        self,
        *,
        gamma: float = 1.0,
        bandwidth: Optional[int] = None,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        _check_options(fn, gamma, bandwidth)
        check_reduction(fn, reduction)
        self._store(gamma=gamma, bandwidth=bandwidth, validate=validate, reduction=reduction)


@register
class SoftDTWLoss(SoftDTWBase):
    """Soft-DTW: a smoothed dynamic-time-warping discrepancy between series of different lengths."""

    key = "soft_dtw"
    function = staticmethod(soft_dtw_loss)
