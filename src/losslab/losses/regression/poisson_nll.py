"""Poisson negative log-likelihood of counts, from a log-rate or a rate (torch semantics)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from losslab._checks import check_choice, check_float, check_pointwise, check_range, check_reduction
from losslab._reduce import output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = ["PoissonNLLLoss", "poisson_nll_loss"]


def _check_options(fn: str, log_input: bool, full: bool, eps: float) -> float:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    check_choice(fn, "log_input", log_input, (True, False))
    check_choice(fn, "full", full, (True, False))
    return check_float(fn, "eps", eps, low=0.0)


def poisson_nll_loss(
    pred: Tensor,
    target: Tensor,
    *,
    log_input: bool = True,
    full: bool = False,
    eps: float = 1e-8,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Poisson negative log-likelihood, as ``torch.nn.functional.poisson_nll_loss``.

    With ``log_input=True`` ``pred`` is the log-rate :math:`\log\lambda_i`, otherwise the
    rate :math:`\lambda_i` itself:

    .. math::

        \ell_i = e^{\hat y_i} - y_i \hat y_i \quad\text{(log input)}, \qquad
        \ell_i = \hat y_i - y_i \log(\hat y_i + \varepsilon) \quad\text{(otherwise)}

    ``full=True`` adds Stirling's approximation of :math:`\log(y_i!)`,
    :math:`y_i \log y_i - y_i + \tfrac12 \log(2\pi y_i)`, only where :math:`y_i > 1`
    (it is 0 elsewhere), exactly as torch does.

    Args:
        pred: log-rates (``log_input=True``, any real) or rates (values >= 0), shape (N, ...).
        target: counts (values >= 0, not necessarily integers), same shape and device.
        log_input: ``pred`` is the log of the rate.
        full: add the Stirling term.
        eps: added to the rate inside the log when ``log_input=False`` (>= 0).
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``pred``'s shape.

    Reference: P. McCullagh and J. A. Nelder, *Generalized Linear Models*, 2nd ed., 1989
    (ch. 6, log-linear models); the Stirling term follows PyTorch's ``PoissonNLLLoss``.

    >>> import torch
    >>> poisson_nll_loss(torch.tensor([0.0, 1.0, -1.0]), torch.tensor([1.0, 3.0, 0.0]))
    tensor(0.3621)
    """
    fn = "poisson_nll_loss"
    check_pointwise(
        fn,
        "pred",
        pred,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    eps = _check_options(fn, log_input, full, eps)
    check_range(fn, "target", target, low=0.0, validate=validate)
    if not log_input:
        check_range(fn, "pred", pred, low=0.0, validate=validate)
    x, y = upcast(pred), upcast(target)
    # log_input: exp(x) - y x has no log and nothing to clamp (exp underflows to 0 for very
    # negative x). Otherwise the rate is upcast to float32 even for half inputs, so that
    # eps = 1e-8 is representable (fp16 would round it to 0 and log(0 + 0) to -inf).
    loss = torch.exp(x) - y * x if log_input else x - y * torch.log(x + eps)
    if full:
        # Stirling's term only where y > 1; y is replaced by 1 elsewhere so that y log y never
        # meets log(0) (0 * -inf = NaN would survive a plain mask in the backward pass).
        big = y > 1
        y_safe = torch.where(big, y, torch.ones_like(y))
        stirling = y_safe * torch.log(y_safe) - y_safe + 0.5 * torch.log(2 * math.pi * y_safe)
        loss = loss + torch.where(big, stirling, torch.zeros_like(stirling))
    return reduce(loss, reduction, sample_weight=sample_weight, out_dtype=output_dtype(pred))


@register
class PoissonNLLLoss(Loss):
    """Poisson negative log-likelihood of counts, from a log-rate or a rate (torch semantics)."""

    key = "poisson_nll"
    family = "regression"
    input_kind = "values"
    pointwise = True
    function = staticmethod(poisson_nll_loss)

    def __init__(
        self,
        *,
        log_input: bool = True,
        full: bool = False,
        eps: float = 1e-8,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_options("PoissonNLLLoss", log_input, full, eps)
        check_reduction("PoissonNLLLoss", reduction)
        self._store(log_input=log_input, full=full, eps=eps, validate=validate, reduction=reduction)
