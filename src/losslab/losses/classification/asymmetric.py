"""Asymmetric loss (ASL) for multi-label classification, from logits."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._checks import (
    check_float,
    check_ignore_index,
    check_pointwise,
    check_range,
    check_reduction,
)
from losslab._reduce import compute_dtype, output_dtype, reduce, upcast
from losslab._registry import register
from losslab.losses.base import Loss

__all__ = ["AsymmetricLoss", "asymmetric_loss"]


def _check_options(
    fn: str, gamma_pos: float, gamma_neg: float, clip: float
) -> tuple[float, float, float]:
    """Hyperparameter checks, shared by the function and the module's constructor."""
    return (
        check_float(fn, "gamma_pos", gamma_pos, low=0.0),
        check_float(fn, "gamma_neg", gamma_neg, low=0.0),
        check_float(fn, "clip", clip, low=0.0, high=1.0, high_open=True),
    )


def _negative_term(x: Tensor, gamma_neg: float, clip: float) -> Tensor:
    """-p_m^gamma_neg * log(1 - p_m), p_m = max(sigmoid(x) - clip, 0), finite gradients."""
    if clip == 0.0:
        log_rest = F.logsigmoid(-x)  # log(1 - p)
        if gamma_neg == 0.0:
            return -log_rest
        # p^gamma = exp(gamma * logsigmoid(x)): no p^(gamma - 1) overflow at p -> 0.
        return -torch.exp(gamma_neg * F.logsigmoid(x)) * log_rest
    p_m = (torch.sigmoid(x) - clip).clamp_min(0.0)
    high = p_m > 0.5
    # log(1 - p_m): log1p(-p_m) is exact for small p_m; for p_m > 0.5, 1 - p_m = sigmoid(-x) + clip
    # (>= clip) is formed without cancellation. Both branches get finite inputs (double where).
    log_rest = torch.where(
        high,
        torch.log(torch.sigmoid(-x) + clip),
        torch.log1p(-p_m.clamp_max(0.5)),
    )
    if gamma_neg == 0.0:
        return -log_rest
    # p_m^gamma with a double where: p_m == 0 (the shifted region) must not meet
    # gamma * 0^(gamma - 1) = inf in the backward pass for gamma < 1.
    positive = p_m > 0
    safe = torch.where(positive, p_m, torch.ones_like(p_m))
    weight = torch.where(positive, safe.pow(gamma_neg), torch.zeros_like(p_m))
    return -weight * log_rest


def asymmetric_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    ignore_index: Optional[int] = None,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Asymmetric loss (ASL) for multi-label classification, from logits.

    .. math::

        p = \sigma(x), \qquad p_m = \max(p - m, 0),

        \ell = -y\,(1 - p)^{\gamma_+} \log p \;-\; (1 - y)\, p_m^{\gamma_-} \log(1 - p_m)

    with :math:`m` = ``clip`` (the probability margin that discards easy negatives). The
    logarithms are computed in log space (``logsigmoid``; :math:`\log(1 - p_m) =
    \log\min(\sigma(-x) + m, 1)`), without the official code's ``eps=1e-8`` clamp, so values
    differ from it where :math:`p < 10^{-8}`.

    Gradients are exact: the focusing weights :math:`(1 - p)^{\gamma_+}` and
    :math:`p_m^{\gamma_-}` are differentiated, not detached. The official implementation
    offers ``disable_torch_grad_focal_loss`` to treat them as constants; that variant is not
    provided here. :math:`p_m^{\gamma_-}` uses a double ``where``, so :math:`\gamma_- < 1` has
    finite gradients where :math:`p_m = 0`.

    With hard targets and ``reduction="sum"`` this is the value of the authors'
    ``AsymmetricLoss`` (which returns the sum over batch and classes). For soft targets each
    of the two terms keeps its own exponent (the official code interpolates the exponent
    and :math:`p_t` instead).

    Args:
        logits: (N, ...) or (N, C, ...) floating point.
        target: ``logits``' shape, floating point in [0, 1] (multi-label, 1 = positive).
        gamma_pos: focusing exponent of positives, >= 0 (the paper recommends 0).
        gamma_neg: focusing exponent of negatives, >= 0 (the paper recommends 4).
        clip: probability margin of negatives, in [0, 1) (0 disables the shift).
        ignore_index: positions whose target equals it are excluded from the value check,
            the sum and the mean's count.
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``logits``' shape.

    Reference: Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021.

    >>> import torch
    >>> asymmetric_loss(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1.0, 0.0, 0.0]]))
    tensor(0.0729)
    """
    fn = "asymmetric_loss"
    check_pointwise(
        fn,
        "logits",
        logits,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    gamma_pos, gamma_neg, clip = _check_options(fn, gamma_pos, gamma_neg, clip)
    ignore_index = check_ignore_index(fn, ignore_index)
    x, y = upcast(logits), upcast(target).to(compute_dtype(logits))
    mask = None
    if ignore_index is not None:
        mask = target != ignore_index
        y = torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
    check_range(fn, "target", target, low=0.0, high=1.0, validate=validate, mask=mask)

    positive = -F.logsigmoid(x)
    if gamma_pos != 0.0:
        positive = positive * torch.exp(gamma_pos * F.logsigmoid(-x))  # (1 - p)^gamma_pos
    loss = y * positive + (1.0 - y) * _negative_term(x, gamma_neg, clip)
    return reduce(
        loss, reduction, sample_weight=sample_weight, mask=mask, out_dtype=output_dtype(logits)
    )


@register
class AsymmetricLoss(Loss):
    """Asymmetric loss (ASL) for multi-label classification, from logits."""

    key = "asl"
    aliases = ("asymmetric",)
    family = "classification"
    input_kind = "logits"
    pointwise = True
    function = staticmethod(asymmetric_loss)

    def __init__(
        self,
        *,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        ignore_index: Optional[int] = None,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        fn = "AsymmetricLoss"
        _check_options(fn, gamma_pos, gamma_neg, clip)
        check_ignore_index(fn, ignore_index)
        check_reduction(fn, reduction)
        self._store(
            gamma_pos=gamma_pos,
            gamma_neg=gamma_neg,
            clip=clip,
            ignore_index=ignore_index,
            validate=validate,
            reduction=reduction,
        )
