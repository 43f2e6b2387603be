r"""Elementwise binary cross-entropy from logits with pos_weight, and its analytic backward.

Per element, with logit :math:`x`, (smoothed) target :math:`t` and positive weight :math:`w`:

.. math::

    \ell = w\,t\,\operatorname{softplus}(-x) + (1 - t)\operatorname{softplus}(x)
         = (1 - t)\,x + (1 + (w - 1) t)\operatorname{softplus}(-x),

computed as the first form, a convex combination of two non-negative terms, so nothing
cancels at large :math:`|x|` (the second form loses every digit of :math:`e^{x}` at
:math:`x = -20`, :math:`t = 0` in float32). Each softplus is one fused ``F.softplus`` pass
(:math:`\log(1 + e^{z})`, or :math:`z` past a threshold chosen per dtype so that the cut
costs less than half an ulp), which measured faster than sharing one
:math:`\log(1 + e^{-|x|})` between the two terms at the price of six more elementwise passes.

Backward, with :math:`\sigma` the sigmoid (:math:`d\,\mathrm{softplus}(x)/dx = \sigma(x)`):

.. math::

    \frac{\partial \ell}{\partial x} = (1 - t)\,\sigma(x) - w\,t\,\sigma(-x)
        = (1 + (w - 1) t)\,\sigma(x) - w\,t,
    \qquad
    \frac{\partial \ell}{\partial t} = w \operatorname{softplus}(-x) - \operatorname{softplus}(x)
        = (w - 1) \operatorname{softplus}(-x) - x,
    \qquad
    \frac{\partial \ell}{\partial w} = t \operatorname{softplus}(-x).

The first form of :math:`\partial\ell/\partial x` is used (as a ``lerp``): for a hard target
it is a single sigmoid taken directly (no :math:`\sigma(x) - 1` that rounds :math:`-e^{-x}`
to 0; torch's backward uses the second form and loses up to a few percent there).
Only the inputs are saved (``x``, ``t`` and a tensor ``w``); the sigmoids are recomputed.

Under ``torch.compile`` (losslab's compiled backend) the passes fuse into one kernel, so the
count of transcendental functions is what costs: there both softplus terms share one
:math:`\log(1 + e^{-|x|})` (:math:`\operatorname{softplus}(\pm x) = \log(1 + e^{-|x|}) +
\max(\pm x, 0)`, each exact to a rounding: one ``exp`` and one ``log1p`` per element instead
of two of each), and the backward takes both sigmoids from one :math:`e^{-|x|}`
(:math:`\sigma(|x|) = 1/(1 + e)`, :math:`\sigma(-|x|) = e/(1 + e)`).
The backward is ``once_differentiable`` (no double backward): under ``create_graph`` its
gradients carry no graph, so differentiating them again raises, or misses this term where
other terms carry a graph (use plain autograd of the formula for Hessian-vector products). A tensor ``w`` broadcasts against ``x`` (a per-class
view) and gets a gradient summed to its own shape.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from losslab._checks import is_compiling

__all__ = ["BCEWithLogitsFunction", "bce_logits_elementwise"]

Weight = Union[None, float, Tensor]


def _threshold(x: Tensor) -> float:
    """Where softplus(z) may return z: e^{-z} / z below half an ulp of the working dtype.

    torch's default 20 is exact for float32 (e^{-20} / 20 = 1e-10 against 6e-8) but not for
    float64 (softplus(20.5) would lose 1.3e-9); e^{-40} / 40 = 1e-19 is below 1.1e-16, and
    e^{40} does not overflow.
    """
    return 40.0 if x.dtype == torch.float64 else 20.0


def _minus_softplus_minus(x: Tensor) -> Tensor:
    """-softplus(-x) = logsigmoid(x) in one fused pass and one buffer (beta = -1).

    softplus(x, beta) returns x where beta x > threshold, else log1p(exp(beta x)) / beta:
    exp never overflows, and log1p(exp(-x)) keeps every digit of e^{-x} for large x.
    """
    return F.softplus(x, beta=-1.0, threshold=_threshold(x))


def _scale(w: Weight) -> Union[float, Tensor, None]:
    """The weight to multiply by, or None where it is one (a float 1.0 or None)."""
    return None if w is None or (not isinstance(w, Tensor) and w == 1.0) else w


def _softplus_pair(x: Tensor) -> tuple[Tensor, Tensor]:
    """(softplus(x), softplus(-x)) from one exp and one log1p (for fused, compiled kernels)."""
    shared = torch.exp(-x.abs()).log1p()
    return shared + x.clamp_min(0.0), shared + (-x).clamp_min(0.0)


def _sigmoid_pair(x: Tensor) -> tuple[Tensor, Tensor]:
    """(sigma(x), sigma(-x)) from one exp (for fused, compiled kernels)."""
    e = torch.exp(-x.abs())
    big = 1.0 / (1.0 + e)  # sigma(|x|)
    small = e * big  # sigma(-|x|), full relative precision
    positive = x >= 0
    return torch.where(positive, big, small), torch.where(positive, small, big)


class BCEWithLogitsFunction(torch.autograd.Function):
    """``apply(x, t, w)``: elementwise ``w t softplus(-x) + (1 - t) softplus(x)``.

    ``x`` and ``t`` have one shape and a floating dtype (the caller upcasts halves);
    ``w`` is None, a float, or a tensor broadcastable to ``x``.
    """

    supports_double_backward = False

    @staticmethod
    def forward(ctx: Any, x: Tensor, t: Tensor, w: Weight) -> Tensor:
        scale = _scale(w)
        if is_compiling():
            neg, pos = _softplus_pair(x)
            pos = pos if scale is None else pos * scale
        else:
            neg = F.softplus(x, threshold=_threshold(x))  # softplus(x) = -logsigmoid(-x)
            # w softplus(-x), the sign flip folded into the weight: one pass.
            pos = _minus_softplus_minus(x).mul_(-1.0 if scale is None else -scale)
        # (1 - t) softplus(x) + t (w softplus(-x)) as a lerp, in neg's buffer: torch's lerp
        # returns either end exactly at t = 0 and t = 1, and for soft t it combines two
        # non-negative terms (error within one rounding of the result). No (1 - t) buffer.
        loss = neg.lerp_(pos, t)
        del pos
        ctx.w_is_tensor = isinstance(w, Tensor)
        ctx.w = None if ctx.w_is_tensor else w
        ctx.save_for_backward(x, t, *((w,) if ctx.w_is_tensor else ()))
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], ...]:
        x, t, *rest = ctx.saved_tensors
        w: Weight = rest[0] if ctx.w_is_tensor else ctx.w
        grad_x = grad_t = grad_w = None
        need_t = ctx.needs_input_grad[1]
        need_w = ctx.w_is_tensor and ctx.needs_input_grad[2]

        if need_t or need_w:
            m = _minus_softplus_minus(x)  # -softplus(-x)
            if need_w and isinstance(w, Tensor):
                grad_w = (grad * t * m).neg_().sum_to_size(w.shape)
            if need_t:
                # w softplus(-x) - softplus(x) = (w - 1) softplus(-x) - x: exact (-x) for
                # w = 1, where the difference of two softplus terms near log 2 cancels.
                scale = _scale(w)
                grad_t = torch.neg(x) if scale is None else m.mul_(1.0 - scale).sub_(x)
                grad_t = grad_t.mul_(grad)
            del m

        if ctx.needs_input_grad[0]:
            # (1 - t) sigma(x) - w t sigma(-x) = lerp(sigma(x), -w sigma(-x), t): each sigmoid
            # taken directly keeps full relative precision on both tails, and a hard target
            # returns one end exactly (never sigma(x) - 1, which rounds -e^{-x} to 0).
            scale = _scale(w)
            minus_w = -1.0 if scale is None else -scale
            if is_compiling():
                s_pos, s_neg = _sigmoid_pair(x)
                grad_x = torch.lerp(s_pos, s_neg * minus_w, t) * grad
            else:
                s_neg = torch.neg(x).sigmoid_().mul_(minus_w)
                grad_x = torch.sigmoid(x).lerp_(s_neg, t).mul_(grad)
        return grad_x, grad_t, grad_w


def bce_logits_elementwise(x: Tensor, t: Tensor, w: Weight = None) -> Tensor:
    """The elementwise loss through :class:`BCEWithLogitsFunction` (x, t of one shape)."""
    out: Tensor = BCEWithLogitsFunction.apply(x, t, w)
    return out
