"""Gaussian negative log-likelihood with a predicted variance per element (torch semantics)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from losslab._checks import (
    check_choice,
    check_float,
    check_floating,
    check_pointwise,
    check_range,
    check_reduction,
    check_same_device,
    fail,
)
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = ["GaussianNLLLoss", "gaussian_nll_loss"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_options(fn: str, full: bool, eps: float) -> float:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    check_choice(fn, "full", full, (True, False))
    return check_float(fn, "eps", eps, low=0.0, low_open=True)


def _check_var(fn: str, var: Tensor, pred: Tensor, *, validate: bool) -> None:
    """``var``: floating, exactly ``pred``'s shape (never broadcast), finite and >= 0."""
    check_floating(fn, "var", var)
    if var.shape != pred.shape:
        fail(
            fn,
            "var",
            f"have the same shape as `pred` {tuple(pred.shape)}",
            tuple(var.shape),
            raw_got=True,
            hint="losslab never broadcasts a shared (homoscedastic) variance as torch does: "
            "expand it explicitly, e.g. `var.expand_as(pred)`.",
        )
    check_same_device(fn, "var", var, "pred", pred)
    check_range(fn, "var", var, low=0.0, high=math.inf, high_open=True, validate=validate)


def gaussian_nll_loss(
    pred: Tensor,
    target: Tensor,
    var: Tensor,
    *,
    full: bool = False,
    eps: float = 1e-6,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Gaussian negative log-likelihood of ``target`` under mean ``pred`` and variance ``var``.

    .. math:: \ell_i = \tfrac12 \Bigl(\log \max(\sigma^2_i, \varepsilon)
              + \frac{(\hat y_i - y_i)^2}{\max(\sigma^2_i, \varepsilon)}\Bigr)
              \;\bigl(+ \tfrac12 \log 2\pi \text{ when full}\bigr)

    As in torch, ``var`` is clamped at ``eps`` for stability but the gradient reaches
    ``var`` as if it were not clamped (torch clamps a clone in place under ``no_grad``;
    here a straight-through form gives the same values and gradients). The clamp runs in
    float32 for half inputs, so eps = 1e-6 is not lost to fp16 rounding.

    ``var`` is per-call data, not a hyperparameter: the third positional argument, or
    ``var=`` in the call of the module. Unlike torch it must have exactly ``pred``'s shape;
    expand a shared variance explicitly.

    Args:
        pred: predicted means, shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        var: predicted variances, same shape and device as ``pred``, values in [0, inf).
        full: add the constant :math:`\tfrac12\log 2\pi`.
        eps: clamp floor of ``var`` (> 0).
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: D. A. Nix and A. S. Weigend, "Estimating the mean and variance of the target
    probability distribution", ICNN 1994.

    >>> import torch
    >>> pred, target = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5, 1.0, 4.0])
    >>> gaussian_nll_loss(pred, target, torch.tensor([1.0, 0.5, 2.0]))
    tensor(0.3750)
    """
    fn = "gaussian_nll_loss"
    check_pointwise(
        fn,
        "pred",
        pred,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    _check_var(fn, var, pred, validate=validate)
    eps = _check_options(fn, full, eps)
    v = upcast(var)
    # Straight-through clamp: the value is exactly max(var, eps) (v - v.detach() is exactly 0
    # for finite v), the gradient is that of the unclamped var, as torch's in-place clamp gives.
    v = v.detach().clamp_min(eps) + (v - v.detach())
    diff = upcast(pred) - upcast(target)
    loss = 0.5 * (torch.log(v) + diff * diff / v)
    if full:
        loss = loss + _HALF_LOG_2PI
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class GaussianNLLLoss(Loss):
    """Gaussian negative log-likelihood with a predicted variance per element (torch semantics)."""

    key = "gaussian_nll"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(gaussian_nll_loss)

    def __init__(
        self,
        *,
        full: bool = False,
        eps: float = 1e-6,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("GaussianNLLLoss", full, eps)
        check_reduction("GaussianNLLLoss", reduction)
        self._store(full=full, eps=eps, validate=validate, reduction=reduction)
