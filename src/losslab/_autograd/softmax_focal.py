r"""Multiclass (softmax) focal term and its analytic backward pass.

Per position (a row along the class dim 1), with :math:`p = \mathrm{softmax}(x)`, target
class :math:`y`, :math:`q = p_y` and the focusing exponent :math:`\gamma`:

.. math::

    \ell_0 = (1 - q)^\gamma\,\mathrm{ce}, \qquad \mathrm{ce} = -\log q.

(``alpha_y``, masks, sample weights and the reduction multiply :math:`\ell_0` outside, under
plain autograd, on tensors one class-dim smaller than the logits.)

**Forward, numerics.** With the row maximum :math:`\mu`, :math:`e_j = e^{x_j - \mu}`,
:math:`e_y` the target's term and :math:`s = \sum_{j \ne y} e_j` (summed with the target's
term zeroed, so it never cancels):

.. math::

    1 - q = \frac{s}{e_y + s}, \qquad q = \frac{e_y}{e_y + s}, \qquad
    \mathrm{ce} = \log(e_y + s) + (\mu - x_y).

:math:`e_y + s \ge 1` (the maximum contributes 1). :math:`\log(e_y + s)` is taken as
:math:`\log u - ((u - e_y) - s) / u` with :math:`u = e_y + s` rounded: when the target is the
maximum (:math:`e_y = 1`, the only case where :math:`\mathrm{ce}` is small), the correction is
the exact rounding error of :math:`u` and :math:`\mathrm{ce} = \log(1 + s)` keeps full relative
precision, down to :math:`\mathrm{ce} = s` once :math:`u` rounds to 1 (the log-sum-exp form
:math:`\mathrm{lse} - x_y` rounds it to 0 there). :math:`1 - q` is a ratio of positive sums:
never :math:`1 - p_y` (which rounds to 0 at saturation), and :math:`(1 - q)^\gamma` needs no
logarithm of it.

**Backward.** With :math:`dq/dx_j = q(\delta_{jy} - p_j)` and
:math:`f(q) = -(1 - q)^\gamma \log q`:

.. math::

    \frac{\partial \ell_0}{\partial x_j} = w\,(p_j - \delta_{jy}), \qquad
    w = (1 - q)^\gamma \Big[1 + \gamma\,\frac{q\,\mathrm{ce}}{1 - q}\Big],

where :math:`(1 - q)^{\gamma - 1}` (infinite at saturation for :math:`\gamma < 1`, where
autograd of the formula gives ``inf * 0 = NaN``) never appears: :math:`q\,\mathrm{ce}/(1 - q)`
tends to 1 as :math:`q \to 1` and is computed from the precise :math:`\mathrm{ce}` and
:math:`1 - q` above; where :math:`1 - q` underflows to 0, :math:`\mathrm{ce}` is 0 too and
dividing by :math:`\max(1 - q, \text{tiny})` gives :math:`w = 0` (:math:`\gamma > 0`) or 1
(:math:`\gamma = 0`), the limits. :math:`p_y - 1` is written as :math:`-(1 - q)`, never
formed as a difference.

**Memory and time.** The logits and class ids are saved, with two per-position statistics
(:math:`w` and :math:`1 - q`, one class-dim smaller than the logits). The backward recomputes
:math:`p` with ``torch.softmax`` straight into the gradient's buffer and scales it there: one
full-size tensor (the gradient itself). On CPU both passes run
over blocks of rows of about 1 MiB (the forward's one scratch buffer of :math:`e^{x - \mu}`
stays in cache); on other devices and under ``torch.compile`` one block covers the tensor.

The backward is ``once_differentiable``: :class:`SoftmaxFocalFunction` has
``supports_double_backward = False``; for double backward use plain autograd of the
formula (e.g. ``-(1 - p_y) ** gamma * log_softmax(x)_y``).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from losslab._autograd.sigmoid_focal import _block_views

__all__ = ["SoftmaxFocalFunction", "softmax_focal_elementwise"]


class SoftmaxFocalFunction(torch.autograd.Function):
    """``apply(x, ids, gamma)``: per-position ``(1 - p_y)^gamma * (-log p_y)`` over the softmax
    along dim 1 of ``x`` (N, C, ...); ``ids`` (N, ...) int64 class ids in [0, C) (the caller
    replaces ignored labels). Returns ``ids``' shape; gradient for ``x`` only.
    Double backward is not supported (``supports_double_backward = False``).
    """

    supports_double_backward = False

    @staticmethod
    def forward(ctx: Any, x: Tensor, ids: Tensor, gamma: float) -> Tensor:
        index = ids.unsqueeze(1)
        stats = x.new_empty((3, *index.shape))  # row max, e_y, s (sum of the others)
        mu, e_y, s = stats[0], stats[1], stats[2]
        if x.numel():
            for i, j, (e,) in _block_views(x, 1):
                xb, ib = x[i:j], index[i:j]
                torch.amax(xb, dim=1, keepdim=True, out=mu[i:j])
                torch.sub(xb, mu[i:j], out=e).exp_()
                torch.gather(e, 1, ib, out=e_y[i:j])
                e.scatter_(1, ib, 0.0)  # the target's term out of the sum: s never cancels
                torch.sum(e, dim=1, keepdim=True, out=s[i:j])
        # Per position from here on (C times smaller than the logits).
        u = e_y + s  # >= 1: the row maximum contributes e^0
        # log(e_y + s) = log(u) - ((u - e_y) - s) / u: exact rounding error of u when e_y = 1.
        # (mu - x_y) first: exactly 0 when the target is the maximum, so the log term keeps
        # its digits (lse - x_y would round a small ce to 0)
        ce = (mu - x.gather(1, index)).add_(torch.log(u).sub_(((u - e_y) - s).div_(u)))
        rest = s.div(u)  # 1 - q
        if gamma != 0.0:
            focus = rest.pow(gamma)
            loss = focus * ce
            # w = (1 - q)^gamma (1 + gamma q ce / (1 - q)), q / (1 - q) = e_y / s
            w = e_y.mul_(ce).div_(s.clamp_min_(torch.finfo(s.dtype).tiny))
            w.mul_(gamma).add_(1.0).mul_(focus)
        else:
            loss = ce
            w = torch.ones_like(ce)
        ctx.save_for_backward(x, index, w, rest)
        return loss.squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], ...]:
        x, index, w, rest = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        coef = grad.unsqueeze(1) * w
        out = torch.empty_like(x)
        if x.numel():
            for i, j, _ in _block_views(x, 0):
                # coef * p, the softmax recomputed in the gradient's own buffer
                torch.softmax(x[i:j], 1, out=out[i:j]).mul_(coef[i:j])
            # the target's entry: coef * (p_y - 1) = -coef * (1 - q), never 1 - p_y
            out.scatter_(1, index, coef.mul_(rest).neg_())
        return out, None, None


def softmax_focal_elementwise(x: Tensor, ids: Tensor, gamma: float) -> Tensor:
    """``(1 - p_y)^gamma * (-log p_y)`` per position through :class:`SoftmaxFocalFunction`."""
    out: Tensor = SoftmaxFocalFunction.apply(x, ids, float(gamma))
    return out
