r"""Sigmoid focal loss (with an optional Poly-1 term) and its analytic backward pass.

Per element, with :math:`s = \sigma(x)` and a target :math:`y \in [0, 1]`:

.. math::

    m = 1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x), \qquad
    \mathrm{ce} = \max(x, 0) - x y + \log(1 + e^{-|x|}),

    \ell = \alpha_t\, m^\gamma\,\mathrm{ce} + \varepsilon\, m^{\gamma + 1},
    \qquad \alpha_t = \alpha y + (1 - \alpha)(1 - y).

The Poly-1 term is not weighted by :math:`\alpha_t`, as in the PolyLoss paper's code
(``Poly1 = alpha_t * FL + epsilon * (1 - pt) ** (gamma + 1)``).

Autograd of that formula multiplies :math:`\gamma m^{\gamma - 1} = \infty` by
:math:`dm/dx = 0` once the sigmoid saturates (NaN for :math:`\gamma < 1`, kornia #918).
The backward here uses

.. math::

    \frac{\partial \ell}{\partial x} = m^\gamma \Big[\alpha_t \big((1 - y) s - y (1 - s)\big)
        + k\,(1 - 2y)\, s (1 - s)\Big],
    \qquad k = \alpha_t\,\gamma\,\frac{\mathrm{ce}}{m} + \varepsilon (\gamma + 1),

where :math:`m^{\gamma - 1}` never appears. :math:`m = 0` happens only where a hard target
is met exactly (the sigmoid rounds to 0 or 1); there the bracket vanishes term by term
(:math:`\mathrm{ce}/m` stays bounded while :math:`s (1 - s)` and :math:`s - y` are 0), so
dividing by :math:`\max(m, \text{tiny})` is exact. Only the
inputs are saved; the backward recomputes the rest in four full-size buffers (a few more when
the target needs a gradient too).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["SigmoidFocalFunction", "sigmoid_focal_elementwise"]

Alpha = Union[None, float, Tensor]


def _ce_and_sigmoids(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(ce, sigma(x), sigma(-x)) in three fresh buffers; nothing is formed as 1 - something.

    torch.sigmoid keeps full relative precision on both tails, so sigma(-x) is taken directly;
    ce = (max(x, 0) - x y) + log1p(exp(-|x|)) with log1p(exp(-|x|)) = -log1p(-sigma(-|x|))
    and sigma(-|x|) = min(sigma(x), sigma(-x)). The bracket is exact for y in {0, 1}, where
    the usual softplus(x) - x y cancels.
    """
    s = torch.sigmoid(x)
    s_neg = torch.neg(x).sigmoid_()
    log_term = torch.minimum(s, s_neg).neg_().log1p_()  # log(sigma(|x|)) <= 0
    ce = torch.clamp_min(x, 0.0)
    ce.addcmul_(x, y, value=-1.0).sub_(log_term)
    return ce, s, s_neg


def _power(m: Tensor, gamma: float, *, inplace: bool = False) -> Optional[Tensor]:
    """m ** gamma, or None for gamma == 0 (a factor of one: 0 ** 0 == 1)."""
    if gamma == 0.0:
        return None
    if gamma == 1.0:
        return m
    if gamma == 2.0:
        return m.square_() if inplace else m.square()
    return m.pow_(gamma) if inplace else m.pow(gamma)


def _alpha_t(alpha: Alpha, y: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """alpha y + (1 - alpha)(1 - y) = (1 - alpha) + (2 alpha - 1) y, optionally into ``out``."""
    return torch.mul(y, 2.0 * alpha - 1.0, out=out).add_(1.0 - alpha)  # type: ignore[operator]


class SigmoidFocalFunction(torch.autograd.Function):
    """Elementwise sigmoid focal loss (+ epsilon * m^(gamma+1)); gradients for x and y.

    Both passes work in a handful of buffers updated in place: at 2^22 elements every fresh
    full-size temporary costs a round of page faults, which dominates the arithmetic.
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, y: Tensor, alpha: Alpha, gamma: float, epsilon: float
    ) -> Tensor:
        loss, s, s_neg = _ce_and_sigmoids(x, y)
        m = s.lerp_(s_neg, y)  # 1 - p_t = y sigma(-x) + (1 - y) sigma(x), exact at y in {0, 1}
        poly = torch.pow(m, gamma + 1.0) if epsilon != 0.0 else None
        if alpha is not None:
            loss.mul_(_alpha_t(alpha, y, out=s_neg))
        mg = _power(m, gamma, inplace=True)
        if mg is not None:
            loss.mul_(mg)
        if poly is not None:
            loss.add_(poly, alpha=epsilon)  # the Poly-1 term, not weighted by alpha_t
        ctx.gamma, ctx.epsilon = gamma, epsilon
        ctx.alpha_is_tensor = isinstance(alpha, Tensor)
        ctx.alpha = None if ctx.alpha_is_tensor else alpha
        ctx.save_for_backward(x, y, *((alpha,) if ctx.alpha_is_tensor else ()))
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], ...]:
        x, y, *rest = ctx.saved_tensors
        alpha: Alpha = rest[0] if ctx.alpha_is_tensor else ctx.alpha
        gamma, epsilon = ctx.gamma, ctx.epsilon
        ce, s, s_neg = _ce_and_sigmoids(x, y)
        m = torch.lerp(s, s_neg, y)
        need_y = ctx.needs_input_grad[1]
        # d(alpha_t)/dy * ce, needed before ce's buffer is reused.
        ce_dalpha = ce.mul(2.0 * alpha - 1.0) if need_y and alpha is not None else None

        # Both gradients are m^gamma [alpha_t (...) + k dm/d.] with
        # k = alpha_t gamma ce / m + eps (gamma + 1): m^(gamma - 1) never appears.
        # m == 0 only where a hard target is met exactly; there s - y, dm/dx and ce are all 0
        # and the gradient is 0 whatever m^gamma is, so clamping m only avoids 0 / 0.
        # Without the Poly-1 term alpha_t factors out of the whole bracket and is applied
        # last, in a spent buffer; with it, alpha_t goes into k and costs one more buffer.
        at = _alpha_t(alpha, y) if alpha is not None and epsilon != 0.0 else None
        k: Union[Tensor, float, None] = None
        mg = None
        if gamma != 0.0:
            k = ce.div_(m.clamp_min_(torch.finfo(m.dtype).tiny)).mul_(gamma)  # in ce's buffer
            if at is not None:
                k.mul_(at)
            mg = _power(m, gamma, inplace=True)
        del m
        if epsilon != 0.0:
            poly_k = epsilon * (gamma + 1.0)
            k = poly_k if not isinstance(k, Tensor) else k.add_(poly_k)
        grad_x = grad_y = None

        if need_y:
            # dm/dy = sigma(-x) - sigma(x), dce/dy = -x, d alpha_t/dy = 2 alpha - 1
            grad_y = torch.sub(s_neg, s)
            grad_y = grad_y.mul_(k) if k is not None else grad_y.zero_()
            if at is not None:
                grad_y.addcmul_(x, at, value=-1.0)
            elif alpha is not None:  # alpha_t factors out of the bracket: [k dm/dy - x] alpha_t
                grad_y.sub_(x).mul_(_alpha_t(alpha, y))
            else:
                grad_y.sub_(x)
            if ce_dalpha is not None:
                grad_y.add_(ce_dalpha)
            if mg is not None:
                grad_y.mul_(mg)
            grad_y.mul_(grad)

        if ctx.needs_input_grad[0]:
            chain = None
            if k is not None:  # k dm/dx = k (1 - 2y) s (1 - s), in k's buffer when it has one
                chain = k.mul_(s) if isinstance(k, Tensor) else torch.mul(s, k, out=ce)
                chain.mul_(s_neg).addcmul_(chain, y, value=-2.0)
            # s - y as (1 - y) s - y (1 - s): no cancellation for hard targets.
            grad_x = s.addcmul_(s, y, value=-1.0).addcmul_(s_neg, y, value=-1.0)
            if at is not None:
                grad_x.mul_(at)
            if chain is not None:
                grad_x.add_(chain)
            if mg is not None:
                grad_x.mul_(mg)
            if alpha is not None and at is None:
                grad_x.mul_(_alpha_t(alpha, y, out=s_neg))
            grad_x.mul_(grad)

        return grad_x, grad_y, None, None, None


def sigmoid_focal_elementwise(
    x: Tensor, y: Tensor, alpha: Alpha, gamma: float, epsilon: float = 0.0
) -> Tensor:
    """The elementwise loss through :class:`SigmoidFocalFunction` (x, y of one shape).

    ``alpha`` is None, a float, or a tensor broadcastable to ``x`` (a per-class view).
    """
    out: Tensor = SigmoidFocalFunction.apply(x, y, alpha, float(gamma), float(epsilon))
    return out
