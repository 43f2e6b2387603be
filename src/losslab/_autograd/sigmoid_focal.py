r"""Sigmoid focal loss (with an optional Poly-1 term) and its analytic backward pass.

Per element, with :math:`S = \sigma(x)`, :math:`\bar S = \sigma(-x)` and a target
:math:`y \in [0, 1]`:

.. math::

    m = 1 - p_t = y\,\bar S + (1 - y)\,S, \qquad
    \mathrm{ce} = \big(\max(x, 0) - x y\big) + L, \quad L = \log(1 + e^{-|x|}),

    \ell = \alpha_t\, m^\gamma\,\mathrm{ce} + \varepsilon\, m^{\gamma + 1},
    \qquad \alpha_t = \alpha y + (1 - \alpha)(1 - y).

The Poly-1 term is not weighted by :math:`\alpha_t`, as in the PolyLoss paper's code
(``Poly1 = alpha_t * FL + epsilon * (1 - pt) ** (gamma + 1)``).

**Forward, numerics.** Both sigmoids are taken directly (``torch.sigmoid`` keeps full relative
precision on both tails), so nothing is formed as ``1 - something``: :math:`m` is a ``lerp``
that returns :math:`S` or :math:`\bar S` exactly for a hard target, and the bracket
:math:`\max(x, 0) - x y` is exactly 0 or :math:`|x|` there (added before :math:`L`, so
:math:`L = e^{-x}` survives next to it). No exponential is taken besides the two sigmoids
(``torch.sigmoid`` measured twice as fast per element as ``torch.exp`` on CPU), and
:math:`L` comes from them with one ``log``: with :math:`q = \min(S, \bar S) = \sigma(-|x|)`
and :math:`r = \max(S, \bar S)`,

.. math::

    L = -\log(1 - q) = -\log r + t / r + O(t^2), \qquad t = (r - 1) + q,

where :math:`r - 1` and :math:`t` are exact (Sterbenz) and :math:`|t|` is a few ulps of 1,
so :math:`L` keeps full relative precision down to :math:`L \approx q` (where :math:`r`
rounds to 1). This replaces ``torch.log1p``, whose CPU kernel (the Sleef routine shared with
``softplus`` and ``logsigmoid``) was measured up to 10x slower than ``torch.log`` in some
processes of some torch builds.

**Backward.** Autograd of that formula multiplies :math:`\gamma m^{\gamma - 1} = \infty` by
:math:`dm/dx = 0` once the sigmoid saturates (NaN for :math:`\gamma < 1`, kornia #918).
Here, with :math:`dm/dx = (1 - 2y) S \bar S` and :math:`dm/dy = \bar S - S`:

.. math::

    \frac{\partial \ell}{\partial x} = m^\gamma \Big[\alpha_t \big((1 - y) S - y \bar S\big)
        + k\,(1 - 2y)\, S \bar S\Big],
    \qquad
    \frac{\partial \ell}{\partial y} = m^\gamma \Big[(2\alpha - 1)\,\mathrm{ce} - \alpha_t x
        + k\,(\bar S - S)\Big],

    k = \alpha_t\,\gamma\,\frac{\mathrm{ce}}{m} + \varepsilon (\gamma + 1),

where :math:`m^{\gamma - 1}` never appears (without ``alpha``, :math:`\alpha_t = 1` and the
:math:`2\alpha - 1` term is absent). :math:`m = 0` happens only where a hard target is met
exactly (the sigmoid rounds to 0 or 1); there the brackets vanish term by term
(:math:`\mathrm{ce}/m` stays bounded while :math:`S \bar S` and :math:`(1 - y) S - y \bar S`
are 0), so dividing by :math:`\max(m, \text{tiny})` is exact. :math:`S - y` is formed as
:math:`(1 - y) S - y \bar S`: no cancellation for hard targets (``sigma(30) - 1`` would round
the gradient to 0).

**Memory and time.** Only the inputs are saved; the backward recomputes :math:`S, \bar S`,
:math:`\mathrm{ce}` and :math:`m` (that costs one more sigmoid pair and log than saving them,
and saves a full-size tensor between the passes). On CPU both passes run over blocks of rows
of about 1 MiB per scratch buffer and intra-op thread, each block through a few scratch
buffers updated in place: the working set stays in cache and no full-size temporary is
allocated (at 2^22 elements every fresh 16 MiB buffer costs a round of page faults, which
dominates the arithmetic). The price is more op calls (~50 per block): with more intra-op
threads than free cores each is a barrier that waits for a descheduled thread, so on an
oversubscribed machine this path slows down far more than a one-block formula does. On other
devices and while ``torch.compile`` traces, one block covers the whole tensor.

The backward is ``once_differentiable``: :class:`SigmoidFocalFunction` has
``supports_double_backward = False``; for Hessian-vector products use plain autograd of the
formula instead (e.g. torchvision's ``sigmoid_focal_loss``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional, Union

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from losslab._checks import is_compiling

__all__ = ["SigmoidFocalFunction", "sigmoid_focal_elementwise"]

Alpha = Union[None, float, Tensor]

# Bytes per scratch buffer of one CPU block and thread: ~6 such buffers stay in cache. Measured
# on one thread at 2^22 float32 elements: 1 MiB fastest, 2 MiB 1.1x, 4 MiB 1.3x, one block 1.8x.
# Each op of a block splits across the intra-op threads, so a block grows with their number:
# every thread keeps a ~1 MiB share, and there are fewer (parallel) op calls per step.
_BLOCK_BYTES = 1 << 20


def _block_rows(x: Tensor) -> int:
    """Rows (along dim 0) per block: the whole tensor off CPU or while compiling."""
    n = x.shape[0]
    if x.device.type != "cpu" or is_compiling():
        return max(n, 1)
    row = max(x[0].numel(), 1) if n else 1
    block = _BLOCK_BYTES * max(1, torch.get_num_threads())
    return max(1, (block // x.element_size()) // row)


def _blocks(n: int, rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, rows):
        yield start, min(start + rows, n)


def _scratch(x: Tensor, rows: int, count: int) -> list[Tensor]:
    shape = (min(rows, x.shape[0]), *x.shape[1:])
    return [x.new_empty(shape) for _ in range(count)]


def _block_views(x: Tensor, count: int) -> Iterator[tuple[int, int, list[Tensor]]]:
    """``(i, j, scratch)`` for each block of rows ``x[i:j]``: ``count`` scratch blocks are
    allocated once and reused by every block (``scratch`` holds their first ``j - i`` rows)."""
    rows = _block_rows(x)
    bufs = _scratch(x, rows, count)
    for i, j in _blocks(x.shape[0], rows):
        yield i, j, [b[: j - i] for b in bufs]


def _ce_and_m(
    x: Tensor, y: Tensor, s: Tensor, s_neg: Tensor, ce: Tensor, m: Tensor, tmp: Tensor
) -> None:
    """Fill s = sigma(x), s_neg = sigma(-x), ce and m = 1 - p_t (see the module docstring)."""
    torch.sigmoid(x, out=s)
    torch.neg(x, out=s_neg).sigmoid_()
    # L = -log(1 - q), q = sigma(-|x|) = min(s, s_neg), r = max(s, s_neg) = 1 - q + t:
    # L = t / r - log(r) with t = (r - 1) + q, both steps exact (Sterbenz).
    r = torch.maximum(s, s_neg, out=tmp)
    torch.minimum(s, s_neg, out=m)
    torch.sub(r, 1.0, out=ce).add_(m)  # t
    neg_log = torch.addcdiv(torch.log(r, out=m), ce, r, value=-1.0, out=ce)  # log r - t / r = -L
    # max(x, 0) - x y: exactly 0 or |x| for hard targets, added to L last so that L survives.
    torch.clamp_min(x, 0.0, out=tmp).addcmul_(x, y, value=-1.0)
    torch.sub(tmp, neg_log, out=ce)
    torch.lerp(s, s_neg, y, out=m)  # y sigma(-x) + (1 - y) sigma(x), exact at y in {0, 1}


def _power(m: Tensor, gamma: float, out: Tensor, *, copy: bool = False) -> Optional[Tensor]:
    """m ** gamma into ``out`` (``m`` itself for gamma == 1 unless ``copy``); None for gamma == 0."""
    if gamma == 0.0:
        return None
    if gamma == 1.0:
        return out.copy_(m) if copy else m
    if gamma == 2.0:
        return torch.mul(m, m, out=out)
    return torch.pow(m, gamma, out=out)


def _alpha_t(y: Tensor, a0: Tensor, c: Union[float, Tensor], out: Tensor) -> Tensor:
    """alpha_t = (1 - alpha) + (2 alpha - 1) y into ``out`` (a0 = 1 - alpha, c = 2 alpha - 1):
    one pass for a number alpha (a0 a 0-d tensor), two for a per-class view."""
    if isinstance(c, Tensor):
        return torch.mul(y, c, out=out).add_(a0)
    return torch.add(a0, y, alpha=c, out=out)


def _alpha_terms(alpha: Alpha, x: Tensor) -> tuple[Any, Any]:
    """(1 - alpha, 2 alpha - 1): a 0-d tensor and a number, or per-class views."""
    if alpha is None:
        return None, None
    if isinstance(alpha, Tensor):
        return 1.0 - alpha, 2.0 * alpha - 1.0
    return x.new_full((), 1.0 - alpha), 2.0 * alpha - 1.0


def _forward_block(
    x: Tensor,
    y: Tensor,
    a0: Any,
    c: Any,
    gamma: float,
    epsilon: float,
    out: Tensor,
    s: Tensor,
    s_neg: Tensor,
    m: Tensor,
    tmp: Tensor,
) -> None:
    _ce_and_m(x, y, s, s_neg, out, m, tmp)  # out = ce
    mg = _power(m, gamma, out=tmp)
    if mg is not None:
        out.mul_(mg)
    if a0 is not None:
        out.mul_(_alpha_t(y, a0, c, out=s_neg))
    if epsilon != 0.0:  # the Poly-1 term, not weighted by alpha_t
        if mg is None:
            out.add_(m, alpha=epsilon)
        else:
            out.addcmul_(mg, m, value=epsilon)


def _backward_block(
    x: Tensor,
    y: Tensor,
    a0: Any,
    c: Any,
    gamma: float,
    epsilon: float,
    grad: Tensor,
    grad_x: Optional[Tensor],
    grad_y: Optional[Tensor],
    s: Tensor,
    s_neg: Tensor,
    ce: Tensor,
    m: Tensor,
    tmp: Tensor,
    spare: Optional[Tensor],
) -> None:
    _ce_and_m(x, y, s, s_neg, ce, m, tmp)
    # m^gamma goes into the x-gradient's block (consumed last there) or a spare buffer.
    # (a copy for gamma == 1: m is clamped below)
    mg = _power(m, gamma, out=grad_x if grad_x is not None else spare, copy=True)  # type: ignore[arg-type]
    at = _alpha_t(y, a0, c, out=tmp) if a0 is not None else None
    # alpha_t goes inside k when the Poly-1 term or the y-gradient needs k on its own;
    # otherwise it factors out of the x-bracket and is applied once, at the end.
    fold = at is not None and (epsilon != 0.0 or grad_y is not None)

    if grad_y is not None:  # (2 alpha - 1) ce - alpha_t x, before ce's buffer becomes k
        if at is not None:
            torch.mul(ce, c, out=grad_y).addcmul_(at, x, value=-1.0)
        else:
            torch.neg(x, out=grad_y)

    k: Optional[Tensor] = None
    if gamma != 0.0:
        # gamma ce / m: m == 0 only where s_neg s and the x-bracket are 0 (see the docstring).
        m.clamp_min_(torch.finfo(m.dtype).tiny)
        k = torch.addcdiv(ce.new_zeros(()), ce, m, value=gamma, out=ce)
        if fold:
            k.mul_(at)  # type: ignore[arg-type]
        if epsilon != 0.0:
            k.add_(epsilon * (gamma + 1.0))
    elif epsilon != 0.0:
        k = ce.fill_(epsilon)

    if grad_y is not None:
        if k is not None:  # k dm/dy = k (sigma(-x) - sigma(x))
            grad_y.addcmul_(k, s_neg).addcmul_(k, s, value=-1.0)
        if mg is not None:
            grad_y.mul_(mg)
        grad_y.mul_(grad)

    if grad_x is not None:
        if k is not None:  # k dm/dx = k (1 - 2y) s s_neg, in k's buffer
            k.mul_(s).mul_(s_neg).addcmul_(k, y, value=-2.0)
        # sigma(x) - y as (1 - y) s - y s_neg: no cancellation for hard targets.
        bracket = s.addcmul_(s, y, value=-1.0).addcmul_(s_neg, y, value=-1.0)
        if fold:
            bracket.mul_(at)  # type: ignore[arg-type]
        if k is not None:
            bracket.add_(k)
        if at is not None and not fold:
            bracket.mul_(at)
        if mg is not None:
            bracket.mul_(mg)  # mg may live in grad_x's buffer: read here, overwritten next
        torch.mul(bracket, grad, out=grad_x)


class SigmoidFocalFunction(torch.autograd.Function):
    """``apply(x, y, alpha, gamma, epsilon)``: elementwise sigmoid focal loss
    (+ epsilon * m^(gamma + 1)); gradients for ``x`` and ``y``.

    ``x`` and ``y`` have one shape and one floating dtype (the caller upcasts halves);
    ``alpha`` is None, a float, or a tensor broadcastable to ``x`` along dim 1 (a per-class
    view; it gets no gradient). Only the inputs are saved; see the module docstring.
    Double backward is not supported (``supports_double_backward = False``): use plain
    autograd of the formula for that.
    """

    supports_double_backward = False

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, y: Tensor, alpha: Alpha, gamma: float, epsilon: float
    ) -> Tensor:
        scalar = x.dim() == 0
        xb, yb = (x.reshape(1), y.reshape(1)) if scalar else (x, y)
        a0, c = _alpha_terms(alpha, x)
        out = torch.empty_like(xb)
        if xb.numel():
            for i, j, scratch in _block_views(xb, 4):
                _forward_block(xb[i:j], yb[i:j], a0, c, gamma, epsilon, out[i:j], *scratch)
        ctx.gamma, ctx.epsilon = gamma, epsilon
        ctx.alpha_is_tensor = isinstance(alpha, Tensor)
        ctx.alpha = None if ctx.alpha_is_tensor else alpha
        ctx.save_for_backward(x, y, *((alpha,) if ctx.alpha_is_tensor else ()))
        return out.reshape(()) if scalar else out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], ...]:
        x, y, *rest = ctx.saved_tensors
        alpha: Alpha = rest[0] if ctx.alpha_is_tensor else ctx.alpha
        need_x, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_y):
            return None, None, None, None, None
        scalar = x.dim() == 0
        if scalar:
            x, y, grad = x.reshape(1), y.reshape(1), grad.reshape(1)
        a0, c = _alpha_terms(alpha, x)
        grad_x = torch.empty_like(x) if need_x else None
        grad_y = torch.empty_like(y) if need_y else None
        if x.numel():
            # s, s_neg, ce, m, tmp (recompute's scratch, then alpha_t) and, without an
            # x-gradient block to hold it, one more for m^gamma.
            for i, j, scratch in _block_views(x, 6 if grad_x is None else 5):
                s, s_neg, ce, m, tmp, *spare = scratch
                _backward_block(
                    x[i:j],
                    y[i:j],
                    a0,
                    c,
                    ctx.gamma,
                    ctx.epsilon,
                    grad[i:j],
                    None if grad_x is None else grad_x[i:j],
                    None if grad_y is None else grad_y[i:j],
                    s,
                    s_neg,
                    ce,
                    m,
                    tmp,
                    spare[0] if spare else None,
                )
        if scalar:
            grad_x = None if grad_x is None else grad_x.reshape(())
            grad_y = None if grad_y is None else grad_y.reshape(())
        return grad_x, grad_y, None, None, None


def sigmoid_focal_elementwise(
    x: Tensor, y: Tensor, alpha: Alpha, gamma: float, epsilon: float = 0.0
) -> Tensor:
    """The elementwise loss through :class:`SigmoidFocalFunction` (x, y of one shape).

    ``alpha`` is None, a float, or a tensor broadcastable to ``x`` (a per-class view).
    """
    out: Tensor = SigmoidFocalFunction.apply(x, y, alpha, float(gamma), float(epsilon))
    return out
