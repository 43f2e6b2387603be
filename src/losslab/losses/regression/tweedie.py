"""Tweedie deviance (scikit-learn's unit deviance) for a power p, from the mean or its log."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import (
    check_choice,
    check_float,
    check_pointwise,
    check_range,
    check_reduction,
    fail,
)
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = ["TweedieDevianceLoss", "tweedie_deviance_loss"]


def _check_options(fn: str, power: float, log_input: bool) -> float:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    p = check_float(fn, "power", power)
    if 0.0 < p < 1.0:
        fail(
            fn,
            "power",
            "be <= 0 or >= 1 (no Tweedie distribution has 0 < power < 1)",
            p,
        )
    check_choice(fn, "log_input", log_input, (True, False))
    return p


def tweedie_deviance_loss(
    pred: Tensor,
    target: Tensor,
    *,
    power: float = 1.5,
    log_input: bool = False,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Unit deviance of the Tweedie distribution with power :math:`p`, as scikit-learn's.

    With mean :math:`\mu_i` (``pred``, or ``exp(pred)`` when ``log_input``) and target :math:`y_i`:

    .. math::

        d_i = \begin{cases}
            (y_i - \mu_i)^2 & p = 0 \\
            2\bigl(y_i \log(y_i/\mu_i) - y_i + \mu_i\bigr) & p = 1 \;(0 \log 0 = 0) \\
            2\bigl(\log(\mu_i/y_i) + y_i/\mu_i - 1\bigr) & p = 2 \\
            2\Bigl(\frac{\max(y_i,0)^{2-p}}{(1-p)(2-p)} - \frac{y_i\,\mu_i^{1-p}}{1-p}
                + \frac{\mu_i^{2-p}}{2-p}\Bigr) & \text{otherwise}
        \end{cases}

    Domains (checked with ``validate=True``), as scikit-learn's: :math:`0 < p < 1` is refused;
    :math:`\mu > 0` except for :math:`p = 0`; :math:`y \ge 0` for :math:`1 \le p < 2`;
    :math:`y > 0` for :math:`p \ge 2`; any :math:`y` for :math:`p \le 0`. With
    ``log_input=True`` ``pred`` is :math:`\log\mu` and unrestricted; the powers of
    :math:`\mu` are computed as :math:`\exp((1-p)\,\hat y)` and :math:`\exp((2-p)\,\hat y)`.

    Args:
        pred: predicted means :math:`\mu` (or :math:`\log\mu`), shape (N, ...), floating point.
        target: same shape and device as ``pred``.
        power: Tweedie power :math:`p` (0 normal, 1 Poisson, (1, 2) compound Poisson-Gamma,
            2 Gamma, 3 inverse Gaussian); not in (0, 1).
        log_input: ``pred`` is the log of the mean.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: B. Jørgensen, "Exponential dispersion models", JRSS B 49(2), 1987;
    scikit-learn's ``sklearn.metrics.mean_tweedie_deviance``.

    >>> import torch
    >>> pred, target = torch.tensor([0.5, 0.5, 2.0, 2.0]), torch.tensor([2.0, 0.0, 1.0, 4.0])
    >>> tweedie_deviance_loss(pred, target, power=1.0)
    tensor(1.4260)
    """
    fn = "tweedie_deviance_loss"
    check_pointwise(
        fn,
        "pred",
        pred,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    p = _check_options(fn, power, log_input)
    if not log_input and p != 0.0:
        check_range(fn, "pred", pred, low=0.0, low_open=True, validate=validate)
    if 1.0 <= p < 2.0:
        check_range(fn, "target", target, low=0.0, validate=validate)
    elif p >= 2.0:
        check_range(fn, "target", target, low=0.0, low_open=True, validate=validate)

    x, y = upcast(pred), upcast(target)
    if p == 0.0:
        mu = torch.exp(x) if log_input else x
        diff = y - mu
        loss = diff * diff
    else:
        # log(mu): the input itself under log_input (no exp, so no overflow), else log(pred).
        log_mu = x if log_input else torch.log(x)
        nonzero = y != 0
        # y * mu^(1-p), 0 where y = 0 even when mu^(1-p) overflows (mu -> 0 with p > 1): the
        # double where keeps 0 * inf out of the forward pass and its NaN out of the gradient.
        log_mu_nz = torch.where(nonzero, log_mu, torch.zeros_like(log_mu))
        if p == 1.0:
            # y log(y / mu) - y + mu with y log y = 0 at y = 0.
            y_safe = torch.where(nonzero, y, torch.ones_like(y))
            ylog = torch.where(nonzero, y * (torch.log(y_safe) - log_mu_nz), torch.zeros_like(y))
            mu = torch.exp(x) if log_input else x
            loss = 2.0 * (ylog - y + mu)
        elif p == 2.0:
            # log(mu / y) + y / mu - 1; y > 0 here, y / mu = y exp(-log mu).
            ratio = y * torch.exp(-log_mu) if log_input else y / x
            loss = 2.0 * (log_mu - torch.log(y) + ratio - 1.0)
        else:
            y_pos = torch.clamp_min(y, 0.0)
            first = torch.pow(y_pos, 2.0 - p) / ((1.0 - p) * (2.0 - p))
            cross = torch.where(nonzero, y * torch.exp((1.0 - p) * log_mu_nz), torch.zeros_like(y))
            last = torch.exp((2.0 - p) * log_mu) / (2.0 - p)
            loss = 2.0 * (first - cross / (1.0 - p) + last)
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class TweedieDevianceLoss(Loss):
    """Tweedie deviance (scikit-learn's unit deviance) for a power p, from the mean or its log."""

    key = "tweedie"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(tweedie_deviance_loss)

    def __init__(
        self,
        *,
        power: float = 1.5,
        log_input: bool = False,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("TweedieDevianceLoss", power, log_input)
        check_reduction("TweedieDevianceLoss", reduction)
        self._store(power=power, log_input=log_input, validate=validate, reduction=reduction)
