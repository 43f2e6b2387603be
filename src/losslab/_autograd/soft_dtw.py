r"""Soft-DTW over a batch of cost matrices, with the analytic backward pass of the paper.

For a cost matrix :math:`D \in \mathbb{R}^{N \times M}` (Cuturi & Blondel, "Soft-DTW: a
Differentiable Loss Function for Time-Series", ICML 2017):

.. math::

    R_{0,0} = 0, \quad R_{i,0} = R_{0,j} = +\infty, \quad
    R_{i,j} = D_{i,j} + \operatorname{softmin}_\gamma(R_{i-1,j-1}, R_{i-1,j}, R_{i,j-1}),

    \operatorname{softmin}_\gamma(a) = -\gamma \log \sum_k e^{-a_k / \gamma},

and the value is :math:`R_{N,M}`. Its gradient with respect to :math:`D` is the expected
alignment matrix :math:`E` of Algorithm 2 of the paper, computed backwards from
:math:`E_{N,M} = 1`:

.. math::

    E_{i,j} = \sum_{s \in \{(i+1,j),\,(i,j+1),\,(i+1,j+1)\}} E_s\,
        \exp\!\big((R_s - D_s - R_{i,j}) / \gamma\big).

Both recursions run along anti-diagonals :math:`i + j = d`: each of the :math:`N + M - 1`
steps is a handful of vectorized operations over the batch and the whole diagonal (never a
Python double loop). Diagonals are read and written as strided views: cell :math:`(i, j)` of a
row-major matrix with row stride :math:`s` sits at :math:`i s + j = i (s - 1) + d`, so a
diagonal is a view with stride :math:`s - 1`.

Numerics:

* Float64 costs are computed in float64, everything else in float32 (half costs upcast).
* The softmin is taken around the minimum, :math:`m - \gamma \log \sum_k e^{(m - a_k)/\gamma}`:
  the sum lies in :math:`[1, 3]` whatever :math:`\gamma` (1e-3 and below) and the scale of the
  costs, and :math:`+\infty` entries (boundary, outside the band) contribute :math:`e^{-\infty}
  = 0`. Every cell that is computed has a finite minimum (its diagonal predecessor is in the
  band), so no :math:`\infty - \infty` appears.
* The backward exponent :math:`R_s - D_s - R_{i,j}` is ``softmin(predecessors of s) - R_{i,j}
  <= 0`` in exact arithmetic; it is clamped at 0 against rounding, so every weight is in
  :math:`[0, 1]` and :math:`E` stays in :math:`[0, 1]` (it is a matrix of probabilities).
  Unreachable cells are read as :math:`R = +\infty` there, so their exponents are
  :math:`-\infty` (weight 0), never :math:`\infty - \infty`.
* The two sums are ordered so that swapping :math:`i` and :math:`j` gives bitwise the same
  result (``a + (b + c)`` with ``b`` and ``c`` the two one-step predecessors): a symmetric cost
  matrix gives a symmetric :math:`E`, and the soft-DTW divergence is exactly 0 at equal inputs.

Options:

* ``bandwidth`` :math:`w` (Sakoe-Chiba): only cells with :math:`|i - j| \le w` are computed,
  the others are :math:`+\infty`. The caller checks that the end cell is inside the band;
  an end cell outside it is unreachable and its value is :math:`+\infty`.
* ``n_len``, ``m_len``: per-series lengths :math:`(n_b, m_b)` of padded series. The value is
  :math:`R_{b, n_b, m_b}` (cells beyond the lengths come later in the recursion and cannot
  change it) and the backward starts at :math:`E_{b, n_b, m_b} = 1` with the cells beyond the
  lengths taken out, so their gradient is exactly 0.

Memory: the forward keeps three diagonals of :math:`R` and saves the cost (no copy for float32
or float64 contiguous input) and one :math:`(B, N + 2, M + 2)` buffer :math:`Q = R - D` (the
softmin of each cell, :math:`-\infty` where a cell is unreachable or beyond the lengths); the
backward adds one buffer of that size for :math:`E`.

Double backward is not supported. A first backward with ``create_graph=True`` works (other
terms of a composite loss keep their graphs), but differentiating the soft-DTW gradient again
raises ``NotImplementedError`` ("soft-DTW does not support double backward ...") instead of
silently treating :math:`E` as a constant.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab._reduce import compute_dtype

__all__ = ["SoftDTWFunction", "diagonal_range", "soft_dtw_values"]

_INF = float("inf")


def diagonal_range(d: int, n: int, m: int, bandwidth: Optional[int]) -> tuple[int, int]:
    """First and last row ``i`` of the cells ``(i, d - i)``, 1 <= i <= n, 1 <= d - i <= m, in the band.

    The band ``|i - j| <= w`` is ``|2 i - d| <= w``, i.e. ``ceil((d - w) / 2) <= i <=
    floor((d + w) / 2)``. The range is empty (first > last) where the band holds no cell of
    the diagonal (every other diagonal for ``w = 0``).
    """
    lo, hi = max(1, d - m), min(n, d - 1)
    if bandwidth is not None:
        lo, hi = max(lo, (d - bandwidth + 1) // 2), min(hi, (d + bandwidth) // 2)
    return lo, hi


def _diag(t: Tensor, row_stride: int, first: int, length: int) -> Tensor:
    """View (B, length) of cells ``first + k (row_stride - 1)`` of each batch matrix of ``t``.

    ``first`` is the flat index (within one matrix) of the diagonal's first cell; moving one row
    down and one column left adds ``row_stride - 1``.
    """
    batch_stride = t.shape[1] * t.shape[2]
    return t.as_strided(
        (t.shape[0], length), (batch_stride, row_stride - 1), t.storage_offset() + first
    )


class SoftDTWFunction(torch.autograd.Function):
    """``apply(D, gamma, bandwidth, n_len, m_len)``: soft-DTW values (B,) of costs D (B, N, M).

    ``bandwidth`` is None or an int >= 0; ``n_len`` / ``m_len`` are None or (B,) int64 tensors
    of lengths in [1, N] / [1, M] (the caller checks them). Returns the values in the compute
    dtype (float64 for float64 costs, float32 otherwise). Not twice differentiable.
    """

    @staticmethod
    def forward(
        ctx: Any,
        cost: Tensor,
        gamma: float,
        bandwidth: Optional[int],
        n_len: Optional[Tensor],
        m_len: Optional[Tensor],
    ) -> Tensor:
        dtype = compute_dtype(cost)
        D = cost.to(dtype).contiguous()
        b, n, m = D.shape
        # A gamma below the dtype's smallest normal is a hard minimum already; the floor only
        # keeps (m - a) / gamma from becoming 0 / 0.
        g = max(float(gamma), torch.finfo(dtype).tiny)

        # Q[b, i, j] = R[i, j] - D[i, j] for 1 <= i <= n, 1 <= j <= m; -inf elsewhere, and
        # stays -inf outside the band. Row stride m + 2: the extra row and column let the
        # backward read the successors of the last row and column as -inf (weight 0).
        Q = D.new_full((b, n + 2, m + 2), -_INF)
        # Three anti-diagonals of R, indexed by i: rows[d % 3][:, i] = R[i, d - i].
        rows = D.new_full((3, b, n + 1), _INF)
        rows[0, :, 0] = 0.0  # R[0, 0]; diagonal 1 (R[0, 1], R[1, 0]) is +inf
        for d in range(2, n + m + 1):
            cur = rows[d % 3]
            cur.fill_(_INF)  # boundary cells and cells outside the band
            lo, hi = diagonal_range(d, n, m, bandwidth)
            if lo > hi:
                continue
            length = hi - lo + 1
            prev1, prev2 = rows[(d - 1) % 3], rows[(d - 2) % 3]
            diag = prev2[:, lo - 1 : hi]  # R[i-1, j-1]
            up = prev1[:, lo - 1 : hi]  # R[i-1, j]
            left = prev1[:, lo : hi + 1]  # R[i, j-1]
            q = _softmin(diag, up, left, g)
            # D[i-1, j-1] with j = d - i sits at (i-1) m + (d - i - 1): stride m - 1.
            cost_d = _diag(D, m, (lo - 1) * m + (d - lo - 1), length)
            torch.add(q, cost_d, out=cur[:, lo : hi + 1])
            _diag(Q, m + 2, lo * (m + 2) + (d - lo), length).copy_(q)

        idx = torch.arange(b, device=D.device)
        if n_len is None or m_len is None:
            n_idx = torch.full((b,), n, dtype=torch.long, device=D.device)
            m_idx = torch.full((b,), m, dtype=torch.long, device=D.device)
        else:
            n_idx, m_idx = n_len.to(D.device, torch.long), m_len.to(D.device, torch.long)
            # Cells beyond a series' lengths get no say in the backward (gradient exactly 0).
            i_grid = torch.arange(n + 2, device=D.device)
            j_grid = torch.arange(m + 2, device=D.device)
            Q.masked_fill_(i_grid[None, :, None] > n_idx[:, None, None], -_INF)
            Q.masked_fill_(j_grid[None, None, :] > m_idx[:, None, None], -_INF)
        end = Q[idx, n_idx, m_idx]
        # An end cell outside the band (possible only unchecked) is unreachable: R = +inf.
        values = torch.where(end > -_INF, end + D[idx, n_idx - 1, m_idx - 1], _INF)

        ctx.gamma, ctx.bandwidth, ctx.in_dtype = g, bandwidth, cost.dtype
        ctx.save_for_backward(D, Q, n_idx, m_idx)
        return values

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Optional[Tensor], None, None, None, None]:
        D, Q, n_idx, m_idx = ctx.saved_tensors
        with torch.no_grad():
            grad_cost = _expected_alignment(D, Q, n_idx, m_idx, ctx.gamma, ctx.bandwidth)
            grad_cost = grad_cost.mul_(grad.to(grad_cost.dtype)[:, None, None])
            grad_cost = grad_cost.to(ctx.in_dtype)
        if torch.is_grad_enabled():  # create_graph=True: differentiating this must fail loudly
            grad_cost = _NoDoubleBackward.apply(grad_cost.detach().requires_grad_())
        return grad_cost, None, None, None, None


class _NoDoubleBackward(torch.autograd.Function):
    """Identity whose backward raises: marks the soft-DTW gradient as not differentiable."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        raise NotImplementedError(
            "soft-DTW does not support double backward: its analytic gradient (the expected "
            "alignment matrix) is not itself differentiable. Differentiate a plain-autograd "
            "recursion where second derivatives are needed."
        )


def _expected_alignment(
    D: Tensor, Q: Tensor, n_idx: Tensor, m_idx: Tensor, g: float, bandwidth: Optional[int]
) -> Tensor:
    """E (B, N, M) of Algorithm 2, from the saved costs and Q = R - D (see the module docstring)."""
    b, n, m = D.shape
    stride = m + 2
    E = torch.zeros_like(Q)
    E[torch.arange(b, device=D.device), n_idx, m_idx] = 1.0
    # Flat offsets of the successors (i+1, j), (i, j+1), (i+1, j+1) of cell (i, j).
    down, right, both = stride, 1, stride + 1
    for d in range(n + m, 1, -1):
        lo, hi = diagonal_range(d, n, m, bandwidth)
        if lo > hi:
            continue
        length = hi - lo + 1
        first = lo * stride + (d - lo)
        r_ij = _diag(Q, stride, first, length) + _diag(D, m, (lo - 1) * m + (d - lo - 1), length)
        # Unreachable cells have Q = -inf: R = +inf there makes every exponent -inf (weight 0)
        # instead of inf - inf.
        r_ij.nan_to_num_(nan=0.0, neginf=_INF)
        q_s = torch.stack([_diag(Q, stride, first + k, length) for k in (both, down, right)])
        e_s = torch.stack([_diag(E, stride, first + k, length) for k in (both, down, right)])
        # E_s exp((Q_s - R_ij) / gamma): Q_s - R_ij = softmin(predecessors of s) - R_ij <= 0
        # up to rounding, clamped at 0 so that every weight is in [0, 1].
        terms = q_s.sub_(r_ij).div_(g).clamp_max_(0.0).exp_().mul_(e_s)
        # (i+1, j) and (i, j+1) summed first: a transposed problem gives the transposed E bitwise.
        total = terms[1].add(terms[2]).add_(terms[0])
        _diag(E, stride, first, length).add_(total)  # adds to the seed E[n_b, m_b] = 1
    return E[:, 1 : n + 1, 1 : m + 1]


def _softmin(a: Tensor, b: Tensor, c: Tensor, gamma: float) -> Tensor:
    """-gamma log(e^{-a/gamma} + e^{-b/gamma} + e^{-c/gamma}) around the minimum.

    ``a`` is the diagonal predecessor; ``b`` and ``c`` enter symmetrically (bitwise). One
    stacked buffer keeps the number of operations per diagonal low (they dominate short
    diagonals and GPU runs).
    """
    terms = torch.stack((a, b, c))
    low = terms.amin(0)
    terms.sub_(low).div_(-gamma).exp_()
    total = terms[1].add(terms[2]).add_(terms[0])
    return total.log_().mul_(-gamma).add_(low)


def soft_dtw_values(
    cost: Tensor,
    gamma: float,
    bandwidth: Optional[int] = None,
    n_len: Optional[Tensor] = None,
    m_len: Optional[Tensor] = None,
) -> Tensor:
    """Soft-DTW values (B,) of the costs (B, N, M) through :class:`SoftDTWFunction`."""
    out: Tensor = SoftDTWFunction.apply(cost, float(gamma), bandwidth, n_len, m_len)
    return out
