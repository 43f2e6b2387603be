"""Barron's general robust loss: alpha spans L2, Charbonnier, Cauchy, Geman-McClure and Welsch."""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
from torch import Tensor

from losslab._checks import (
    check_float,
    check_reduction,
    check_same_device,
    fail,
    fmt,
    is_compiling,
)
from losslab._reduce import output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.regression._residual import residual

__all__ = ["BarronLoss", "barron_loss"]

# |z| above which z^2 is never formed: 1e30 / |alpha - 2| still fits float32 for every
# float32 alpha != 2 (|alpha - 2| >= 1.2e-7), and z^2 / b ~ 1e30 is far in the log-linear regime.
_BIG = 1e15
# Above this x = alpha/2 * log1p(z^2/b), (b/a) expm1(x) is evaluated as exp(x + log(b/a)) - b/a,
# so it overflows only when the loss itself does (expm1(x) alone overflows float32 at x ~ 88.7).
_X_LARGE = 40.0


def _log1p_sq(z: Tensor, b: Union[Tensor, float]) -> Tensor:
    """``log1p(z^2 / b)`` for b > 0, without overflow of z^2 and with finite gradients.

    For |z| <= 1e15 the direct form is exact; above, the identity
    ``log1p(z^2/b) = softplus(2 log|z| - log b)`` is used, written as
    ``max(t, 0) + log1p(exp(-|t|))`` (no linear cut-off as in ``F.softplus``).
    """
    zs = z.clamp(-_BIG, _BIG)
    direct = torch.log1p(zs * zs / b)
    log_b = torch.log(b) if isinstance(b, Tensor) else math.log(b)
    # |z| clamped from below in the far branch: no log(0) where that branch is not selected.
    t = 2.0 * torch.log(z.abs().clamp(min=_BIG)) - log_b
    far = t.clamp(min=0.0) + torch.log1p(torch.exp(-t.abs()))
    return torch.where(z.abs() <= _BIG, direct, far)


def _expm1_over_x(x: Tensor) -> Tensor:
    """``expm1(x) / x`` (1 at x = 0) with an accurate value *and* gradient near 0.

    The quotient's autograd derivative cancels catastrophically near 0, so a Taylor series
    (error < 1e-21 in float64, < 3e-10 in float32 at the switch point) is used there.
    """
    tau = 1e-3 if x.dtype == torch.float64 else 0.1
    big = x.abs() > tau
    xb = torch.where(big, x, torch.ones_like(x))
    ratio = torch.expm1(xb) / xb
    xs = torch.where(big, torch.zeros_like(x), x)
    series = 1.0 + xs * (1 / 2 + xs * (1 / 6 + xs * (1 / 24 + xs * (1 / 120 + xs / 720))))
    return torch.where(big, ratio, series)


def _welsch_rho(z: Tensor) -> Tensor:
    """``1 - exp(-z^2/2)``; z clamped to 1e15, where the value is exactly 1 and the slope 0."""
    zc = z.clamp(-_BIG, _BIG)
    return -torch.expm1(-0.5 * zc * zc)


def _general_rho(z: Tensor, a: Tensor) -> Tensor:
    """Barron's loss for finite alpha != 2 (alpha = 0 included, as a limit).

    ``|a-2|/a * expm1(a/2 * L)`` with ``L = log1p(z^2/|a-2|)`` is rewritten as
    ``|a-2| * (L/2) * E(a L / 2)`` with ``E(x) = expm1(x)/x``: no division by alpha, so alpha = 0
    is the exact Cauchy loss ``log1p(z^2/2)``, and the gradient with respect to alpha is the true
    derivative there too.
    """
    b = (a - 2.0).abs()
    L = _log1p_sq(z, b)
    x = 0.5 * a * L
    large = x > _X_LARGE  # only alpha > 0 gets there
    small_val = b * (0.5 * L) * _expm1_over_x(torch.where(large, torch.zeros_like(x), x))
    # Double where: the large-x branch sees x = 0 and alpha = 1 where it is not selected.
    ratio = b / torch.where(large, a, torch.ones_like(a))
    large_val = torch.exp(torch.where(large, x, torch.zeros_like(x)) + torch.log(ratio)) - ratio
    return torch.where(large, large_val, small_val)


def _barron_rho(z: Tensor, alpha: Union[float, Tensor]) -> Tensor:
    """The per-element loss of ``z = e / scale``; ``alpha`` a float or a tensor (0-d or z's shape)."""
    if not isinstance(alpha, Tensor):
        # A float alpha is already rounded to z's dtype (see barron_loss).
        if alpha == 2.0:
            return 0.5 * z * z
        if alpha == -math.inf:
            return _welsch_rho(z)
        return _general_rho(z, z.new_tensor(alpha))
    a = alpha.to(z.dtype)
    is_two = a == 2.0
    is_neg_inf = a == -math.inf
    # Double where: the general branch is evaluated at alpha = 1 where a special case is selected,
    # so that neither its value nor its gradient can be inf/NaN there.
    a_safe = torch.where(is_two | is_neg_inf, torch.ones_like(a), a)
    general = _general_rho(z, a_safe)
    return torch.where(is_two, 0.5 * z * z, torch.where(is_neg_inf, _welsch_rho(z), general))


def _check_alpha(
    fn: str, alpha: Any, pred: Optional[Tensor] = None, *, validate: bool = True
) -> Union[float, Tensor]:
    """``alpha``: a real number (finite or -inf) or a float tensor, 0-d or of ``pred``'s shape."""
    if isinstance(alpha, Tensor):
        if not alpha.is_floating_point():
            fail(
                fn,
                "alpha",
                "be a floating-point tensor",
                f"dtype {fmt(alpha.dtype)}",
                kind=TypeError,
                raw_got=True,
            )
        if pred is not None:
            if alpha.dim() != 0 and alpha.shape != pred.shape:
                fail(
                    fn,
                    "alpha",
                    f"be 0-d or have the same shape as `pred` {tuple(pred.shape)}",
                    tuple(alpha.shape),
                    raw_got=True,
                    hint="alpha is never broadcast.",
                )
            check_same_device(fn, "alpha", alpha, "pred", pred)
        if validate and not is_compiling() and alpha.numel():
            with torch.no_grad():
                bad = torch.isnan(alpha) | (alpha == math.inf)
                if bool(bad.any()):
                    fail(
                        fn,
                        "alpha",
                        "have values in [-inf, inf) (no NaN, no +inf)",
                        f"{int(bad.sum())} value(s) outside, e.g. {alpha[bad][0].item():g}",
                        raw_got=True,
                        hint="Pass validate=False to skip this check.",
                    )
        return alpha
    value = check_float(fn, "alpha", alpha, allow_inf=True)
    if value == math.inf:
        fail(fn, "alpha", "be a finite number or -inf (the Welsch loss)", value)
    return value


def _check_scale(fn: str, scale: Any) -> float:
    return check_float(fn, "scale", scale, low=0.0, low_open=True)


def barron_loss(
    pred: Tensor,
    target: Tensor,
    *,
    alpha: Union[float, Tensor] = 1.0,
    scale: float = 1.0,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Barron's general and adaptive robust loss.

    With :math:`z_i = (\hat y_i - y_i) / c` and shape :math:`\alpha`:

    .. math::

        \ell_i = \frac{|\alpha - 2|}{\alpha}
            \left[\left(\frac{z_i^2}{|\alpha - 2|} + 1\right)^{\alpha/2} - 1\right]

    with its limits :math:`\alpha = 2`: :math:`z^2/2` (L2), :math:`\alpha = 0`:
    :math:`\log(z^2/2 + 1)` (Cauchy), :math:`\alpha = -\infty`: :math:`1 - e^{-z^2/2}` (Welsch).
    :math:`\alpha = 1` is the Charbonnier loss :math:`\sqrt{z^2 + 1} - 1` and
    :math:`\alpha = -2` Geman-McClure :math:`2z^2/(z^2 + 4)`. The scale :math:`c` enters only
    through :math:`z` (no :math:`c^2` prefactor), so the loss near 0 is :math:`e^2 / (2c^2)`.

    Computed as :math:`|\alpha-2| \, \tfrac{L}{2} \, \tfrac{\operatorname{expm1}(x)}{x}` with
    :math:`L = \operatorname{log1p}(z^2/|\alpha-2|)` and :math:`x = \alpha L / 2`: no division by
    :math:`\alpha`, no overflow of :math:`z^2`. :math:`\alpha = 2` and :math:`-\infty` are
    selected exactly, the general form being evaluated at a safe :math:`\alpha` there (double
    ``where``), so values and gradients stay finite at and near every special case. The
    gradient in :math:`\alpha` is exact at :math:`\alpha = 0`; at exactly :math:`\alpha = 2` the
    true derivative is infinite (the loss behaves like :math:`\delta \log \delta` in
    :math:`\delta = \alpha - 2`) and 0 is returned: start a learned :math:`\alpha` away from 2.

    Args:
        pred: predictions, any shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        alpha: shape parameter: a real number (``float('-inf')`` allowed, ``+inf`` and NaN not)
            or a floating-point tensor, 0-d or of exactly ``pred``'s shape (never broadcast). A
            tensor may require grad: :math:`\alpha` can be learned.
        scale: :math:`c` > 0, the width of the quadratic bowl around 0.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync): ``alpha`` tensors hold no NaN or ``+inf``.
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: J. T. Barron, "A General and Adaptive Robust Loss Function", CVPR 2019.

    >>> import torch
    >>> barron_loss(torch.tensor([0.5, 2.0, -6.0]), torch.zeros(3), alpha=1.0)
    tensor(2.1456)
    >>> barron_loss(torch.tensor([0.5, 2.0, -6.0]), torch.zeros(3), alpha=torch.tensor([2.0, 0.0, -2.0]))
    tensor(1.0079)
    """
    fn = "barron_loss"
    e = residual(
        fn, pred, target, sample_weight=sample_weight, validate=validate, reduction=reduction
    )
    alpha = _check_alpha(fn, alpha, pred, validate=validate)
    scale = _check_scale(fn, scale)
    z = e / scale
    if not isinstance(alpha, Tensor):
        # Round alpha as the compute dtype does: 2 - 1e-9 is the exact L2 case in float32, and
        # -1e39 is -inf (Welsch); +1e39 would be +inf, which is refused.
        alpha = float(torch.tensor(alpha, dtype=z.dtype))
        if alpha == math.inf:
            fail(
                fn,
                "alpha",
                f"be finite in the compute dtype {fmt(z.dtype)}",
                "inf after rounding",
                raw_got=True,
            )
    loss = _barron_rho(z, alpha)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class BarronLoss(Loss):
    """Barron's general robust loss: alpha spans L2, Charbonnier, Cauchy, Geman-McClure and Welsch.

    A tensor ``alpha`` is stored as a buffer; an ``nn.Parameter`` is registered as a parameter,
    so ``BarronLoss(alpha=nn.Parameter(torch.tensor(1.0)))`` learns it with the model.
    """

    key = "barron"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(barron_loss)

    def __init__(
        self,
        *,
        alpha: Union[float, Tensor] = 1.0,
        scale: float = 1.0,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        alpha = _check_alpha("BarronLoss", alpha, validate=validate)
        scale = _check_scale("BarronLoss", scale)
        check_reduction("BarronLoss", reduction)
        self._store(alpha=alpha, scale=scale, validate=validate, reduction=reduction)
