"""Binary cross-entropy from probabilities with a bounded, never-vanishing analytic gradient.

Forward, per element (``p`` the probability, ``y`` the target, ``eps`` the floor)::

    loss = -(y * log(max(p, eps)) + (1 - y) * log(max(1 - p, eps)))

Backward::

    dL/dp = (p - y) / max(p (1 - p), eps (1 - eps))
    dL/dy = log(max(1 - p, eps)) - log(max(p, eps))

Inside ``[eps, 1 - eps]`` ``dL/dp`` is the exact derivative of the forward. Outside, the
forward is flat on the clamped side (a plain clamp would give a zero gradient at ``p = 0``
with ``y = 1``: the worst prediction would not learn), while this backward keeps the sign
of ``p - y`` and a magnitude of at most ``1 / (eps (1 - eps))`` (torch's ``-100`` clamp of
the log gives ``1e12`` there). The floor ``eps (1 - eps)`` is ``p (1 - p)`` at ``p = eps``,
so the gradient is continuous at the clamp points.

Only the inputs are saved; everything else is recomputed in backward. Half inputs are
computed in float32.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from losslab._reduce import compute_dtype

__all__ = ["BCEProbsFunction", "bce_probs"]


def _compute(probs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    dtype = torch.promote_types(compute_dtype(probs), compute_dtype(target))
    # Out-of-range probabilities only reach here with validate=False: clamping keeps the
    # logs real instead of returning NaN for 1.0000001 from a rounding softmax.
    return probs.to(dtype).clamp(0.0, 1.0), target.to(dtype)


def _logs(p: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """log(max(p, eps)) and log(max(1 - p, eps)).

    log is monotonic, so max(log(.), log(eps)) equals log(max(., eps)); log1p(-p) keeps
    the digits of small p that 1 - p would round away (loss ~ p for y = 0).
    """
    floor = math.log(eps)
    return torch.log(p).clamp_min(floor), torch.log1p(-p).clamp_min(floor)


class BCEProbsFunction(torch.autograd.Function):
    """``apply(probs, target, eps)``: per-element BCE from probabilities (no reduction)."""

    @staticmethod
    def forward(ctx: Any, probs: Tensor, target: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(probs, target)
        ctx.eps = eps
        p, y = _compute(probs, target)
        log_p, log_q = _logs(p, eps)
        return -(y * log_p + (1.0 - y) * log_q)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], Optional[Tensor], None]:
        probs, target = ctx.saved_tensors
        eps = ctx.eps
        p, y = _compute(probs, target)
        grad = grad.to(p.dtype)
        grad_p = grad_y = None
        if ctx.needs_input_grad[0]:
            # p (1 - p) <= 1/4 never overflows; the floor bounds the gradient by 1/(eps(1-eps)).
            denominator = (p * (1.0 - p)).clamp_min(eps * (1.0 - eps))
            grad_p = (grad * (p - y) / denominator).to(probs.dtype)
        if ctx.needs_input_grad[1]:
            log_p, log_q = _logs(p, eps)
            grad_y = (grad * (log_q - log_p)).to(target.dtype)
        return grad_p, grad_y, None


def bce_probs(probs: Tensor, target: Tensor, eps: float) -> Tensor:
    """Per-element BCE from probabilities with the bounded analytic backward."""
    return BCEProbsFunction.apply(probs, target, eps)
