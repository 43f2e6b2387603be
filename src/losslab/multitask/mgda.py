"""MGDA: the min-norm convex combination of the task gradients (Sener & Koltun 2018)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import ClassVar, Optional, cast

import numpy as np
import torch
from torch import Tensor

from losslab._checks import check_choice, check_float, check_int_option, fail
from losslab.compose.output import LossOutput
from losslab.distributed import check_sync, world_size
from losslab.multitask._base import GradientWeighting, check_task_losses
from losslab.multitask._gradients import (
    accumulate,
    average_over_ranks,
    check_shared_parameters,
    feasible,
    finish,
    gram,
    graph_leaves,
    loss_output,
    nested_supports,
    sync_task_gradients,
    task_gradients,
)

__all__ = ["MGDA", "min_norm_weights"]

_NORMALIZE = ("none", "l2", "loss", "loss+")


def _two_task_gamma(m11: float, m12: float, m22: float) -> float:
    r"""Weight on the first vector of the min-norm point of the segment [v1, v2].

    :math:`\gamma^* = \mathrm{clip}\big((v_2 - v_1)\cdot v_2 / \|v_1 - v_2\|^2,\, 0,\, 1\big)`;
    ``0.5`` when the two vectors coincide (every point of the segment is the same).
    """
    denom = m11 - 2.0 * m12 + m22
    if not denom > 0:
        return 0.5
    return min(max((m22 - m12) / denom, 0.0), 1.0)


def _face_min_norm(m: np.ndarray, support: np.ndarray) -> Optional[np.ndarray]:
    """The min-norm point of the affine hull of the vectors in ``support`` (or None)."""
    k = len(support)
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = m[np.ix_(support, support)]
    kkt[:k, k] = 1.0
    kkt[k, :k] = 1.0
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    try:
        sol = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:
        return None
    return feasible(sol[:k], support, len(m))


def _wolfe(m: np.ndarray, start: np.ndarray, scale: float) -> np.ndarray:
    r"""Wolfe's min-norm-point active-set method in weight space, from a feasible ``start``.

    ``start`` must be the min-norm point of the affine hull of its support (a vertex, or a
    face solution with positive weights). Each major cycle adds the task with the smallest
    :math:`(M w)_j` while :math:`(M w)_j < w^\top M w`; minor cycles move toward the affine
    min-norm point of the support, dropping the weights that reach zero. The method is
    finite and exact; it stops early (keeping its last feasible point) on a singular system
    (affinely dependent gradients).
    """
    t = len(m)
    w = start.copy()
    support = [int(i) for i in np.nonzero(w > 0)[0]]
    for _ in range(10 * t + 10):
        mw = m @ w
        j = int(np.argmin(mw))
        if mw[j] >= float(w @ mw) - 1e-13 * scale or j in support:
            break
        support.append(j)
        for _ in range(t + 1):
            idx = np.array(sorted(support))
            k = len(idx)
            kkt = np.zeros((k + 1, k + 1))
            kkt[:k, :k] = m[np.ix_(idx, idx)]
            kkt[:k, k] = 1.0
            kkt[k, :k] = 1.0
            rhs = np.zeros(k + 1)
            rhs[k] = 1.0
            try:
                v = np.linalg.solve(kkt, rhs)[:k]
            except np.linalg.LinAlgError:
                return w
            if not np.all(np.isfinite(v)):
                return w
            if np.all(v > 0):
                w = np.zeros(t)
                w[idx] = v
                break
            # Step from w toward v until the first weight reaches zero, then drop it.
            current = w[idx]
            shrinking = v <= 0
            theta = float(np.min(current[shrinking] / (current[shrinking] - v[shrinking])))
            new = current + theta * (v - current)
            new[new <= 1e-15] = 0.0
            w = np.zeros(t)
            w[idx] = new
            w /= w.sum()
            support = [int(i) for i in idx[new > 0]]
        else:
            break
    return w


def min_norm_weights(m: np.ndarray, *, max_iter: int = 250, tol: float = 1e-6) -> np.ndarray:
    r"""``alpha`` on the simplex minimizing :math:`\alpha^\top M \alpha` (M a Gram matrix).

    Two tasks: the closed form :math:`\gamma^*`. More: the Frank-Wolfe iteration of the
    paper (Algorithm 2: start at :math:`1/T`, step toward the vertex with the smallest
    :math:`(M\alpha)_t` with the exact line search), stopped when the duality gap
    :math:`\alpha^\top M \alpha - \min_t (M\alpha)_t` is at most ``tol * max_t M_tt``
    or after ``max_iter`` steps. Frank-Wolfe only approaches the faces of the simplex, so the
    result is then made exact: the min-norm points of the faces spanned by its k largest
    weights (k = 1..T) are solved in closed form, and Wolfe's active-set method is run from
    the best of them (a few exact steps); the best feasible point found is returned.
    A non-finite ``M`` (non-finite gradients) gives :math:`1/T`: the non-finite values then
    reach ``.grad`` as with a plain backward, where e.g. a ``GradScaler`` can see them.

    >>> m = np.array([[1.0, -1.0], [-1.0, 2.0]])  # g1 = (1, 0), g2 = (-1, 1)
    >>> min_norm_weights(m).round(4).tolist()
    [0.6, 0.4]
    """
    m = np.asarray(m, dtype=np.float64)
    t = len(m)
    if t == 1:
        return np.ones(1)
    if not np.all(np.isfinite(m)):
        return np.full(t, 1.0 / t)
    if t == 2:
        gamma = _two_task_gamma(m[0, 0], m[0, 1], m[1, 1])
        return np.array([gamma, 1.0 - gamma])
    scale = max(float(np.max(np.diag(m))), 0.0)
    alpha = np.full(t, 1.0 / t)
    if scale == 0.0:
        return alpha
    for _ in range(max_iter):
        m_alpha = m @ alpha
        vertex = int(np.argmin(m_alpha))
        v1v1 = float(alpha @ m_alpha)
        v1v2 = float(m_alpha[vertex])
        if v1v1 - v1v2 <= tol * scale:
            break
        # gamma is the weight on the current point alpha in the segment [alpha, e_vertex].
        gamma = _two_task_gamma(v1v1, v1v2, float(m[vertex, vertex]))
        alpha = gamma * alpha
        alpha[vertex] += 1.0 - gamma
    start, start_value = None, math.inf
    for support in nested_supports(alpha):
        candidate = _face_min_norm(m, support)
        if candidate is not None and np.all(candidate[support] > 0):
            value = float(candidate @ m @ candidate)
            if value < start_value:
                start, start_value = candidate, value
    best, best_value = alpha, float(alpha @ m @ alpha)
    if start is not None:
        refined = _wolfe(m, start, scale)
        refined_value = float(refined @ m @ refined)
        if refined_value <= best_value:
            best = refined
    return best


class MGDA(GradientWeighting):
    r"""Multiple-gradient descent: the min-norm point of the convex hull of the task gradients.

    .. math::
        \alpha^* = \operatorname*{arg\,min}_{\alpha \in \Delta^{T}}
        \Big\| \sum_i \alpha_i \, \tilde g_i \Big\|^2 ,
        \qquad \text{shared parameters receive } \sum_i \alpha^*_i \, g_i ,

    with :math:`\tilde g_i = g_i / n_i` and ``normalize`` choosing :math:`n_i` as in the
    authors' code: ``"none"`` 1, ``"l2"`` :math:`\|g_i\|`, ``"loss"`` :math:`L_i`, ``"loss+"``
    :math:`L_i \|g_i\|` (a zero gradient stays zero under ``"l2"``). As in that code,
    :math:`\alpha^*` is computed from the normalized gradients and applied to the raw ones
    (it scales the task losses); LibMTL combines the normalized gradients instead. The
    solver works on the float64 Gram matrix (:func:`min_norm_weights`). The task heads
    receive the gradient of their own loss, unscaled, as in the paper's Algorithm 2.

    **MGDA-UB** (``representation=Z``, no ``shared_parameters``): the gradients are taken
    with respect to the shared representation :math:`Z` (the encoder's output, batch
    first, flattened whole as in the authors' code) instead of the parameters, which costs
    one backward through the heads per task instead of through the encoder; then
    :math:`\sum_i \alpha^*_i L_i` is backpropagated through everything, heads included (so
    there the heads receive :math:`\alpha^*_i \nabla L_i`, as in the authors' code).

    Reference: O. Sener, V. Koltun, "Multi-Task Learning as Multi-Objective Optimization",
    NeurIPS 2018.

    Args:
        tasks: the task names, in order.
        normalize: ``"none" | "l2" | "loss" | "loss+"``; the loss-based ones need positive
            losses.
        max_iter: Frank-Wolfe iterations (three tasks or more).
        tol: Frank-Wolfe stopping tolerance on the duality gap, relative to the largest
            squared gradient norm.
        sync: ``"local" | "global"``: solve on the gradients of this process's shard, or of
            the global batch (averaged over the processes first).

    Distributed training: DDP does not synchronize the combined gradient (it is written into
    ``.grad`` outside DDP's hooks). With ``sync="global"`` the task gradients, the losses
    (for ``normalize="loss"``) and the heads' gradients are averaged over the processes
    before the solve, so every rank finds the same :math:`\alpha^*` and writes the same
    ``.grad``; MGDA-UB sums the ranks' Gram matrices of the representation gradients (each
    rank's rows of the global :math:`Z`) and averages the final gradients itself.

    The reported weights are :math:`\alpha^*` (1/T before the first step).

    >>> import torch
    >>> theta = torch.nn.Parameter(torch.zeros(2))
    >>> losses = {"a": theta @ torch.tensor([1.0, 0.0]), "b": theta @ torch.tensor([-1.0, 1.0])}
    >>> out = MGDA(["a", "b"]).backward(losses, [theta])
    >>> theta.grad
    tensor([0.2000, 0.4000])
    >>> {k: round(v, 4) for k, v in out.weights.items()}
    {'a': 0.6, 'b': 0.4}
    """

    key: ClassVar[str] = "mgda"
    last_weights: Tensor

    def __init__(
        self,
        tasks: Iterable[str],
        *,
        normalize: str = "none",
        max_iter: int = 250,
        tol: float = 1e-6,
        sync: str = "local",
    ) -> None:
        super().__init__(tasks)
        fn = type(self).__name__
        self.normalize = check_choice(fn, "normalize", normalize, _NORMALIZE)
        self.max_iter = cast(int, check_int_option(fn, "max_iter", max_iter, low=1))
        self.tol = check_float(fn, "tol", tol, low=0.0, low_open=True)
        self.sync = check_sync(fn, sync)
        self.register_buffer(
            "last_weights",
            torch.full((len(self.tasks),), 1.0 / len(self.tasks), dtype=torch.float64),
        )

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.last_weights.tolist()))

    def _normalizers(self, fn: str, m: np.ndarray, losses: Mapping[str, Tensor]) -> np.ndarray:
        norms = np.sqrt(np.maximum(np.diag(m), 0.0))
        if self.normalize == "none":
            return np.ones(len(m))
        if self.normalize == "l2":
            return norms
        values = torch.stack([v.detach().to(torch.float64) for v in losses.values()]).cpu().numpy()
        for task, value in zip(losses, values):
            if not (math.isfinite(value) and value > 0):
                fail(
                    fn,
                    f"losses[{task!r}]",
                    f"be positive and finite for normalize={self.normalize!r}",
                    float(value),
                )
        return values if self.normalize == "loss" else values * norms

    def _solve(self, fn: str, m: np.ndarray, losses: Mapping[str, Tensor]) -> np.ndarray:
        n = self._normalizers(fn, m, losses)
        # g_i / n_i with a zero n_i (a zero gradient under "l2") left at zero.
        inv = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)
        alpha = min_norm_weights(m * np.outer(inv, inv), max_iter=self.max_iter, tol=self.tol)
        self.last_weights.copy_(torch.from_numpy(alpha))
        return alpha

    def backward(  # type: ignore[override]
        self,
        losses: Mapping[str, Tensor],
        shared_parameters: Optional[Iterable[Tensor]] = None,
        *,
        representation: Optional[Tensor] = None,
    ) -> LossOutput:
        """Accumulate :math:`\\sum_i \\alpha^*_i g_i` into the shared parameters' ``.grad``.

        Pass exactly one of ``shared_parameters`` and ``representation`` (MGDA-UB).
        Returns a detached :class:`~losslab.compose.output.LossOutput` with the weights
        :math:`\\alpha^*`. Then call ``optimizer.step()``.
        """
        fn = f"{type(self).__name__}.backward"
        losses = check_task_losses(fn, self.tasks, losses)
        if (shared_parameters is None) == (representation is None):
            fail(
                fn,
                "shared_parameters",
                "be given, or else `representation` (MGDA-UB), but not both",
                "both" if representation is not None else "neither",
                raw_got=True,
            )
        if representation is not None:
            return self._backward_representation(fn, losses, representation)
        shared = check_shared_parameters(fn, shared_parameters)
        grads = task_gradients(fn, losses, shared)
        solve_losses = losses
        if self.syncs():
            values = torch.stack([v.detach() for v in losses.values()])
            grads, mean_values = sync_task_gradients(fn, grads, values)
            solve_losses = dict(zip(losses, mean_values.unbind()))
        alpha = self._solve(fn, gram(grads.matrix), solve_losses)
        with torch.no_grad():
            combined = torch.from_numpy(alpha).to(grads.matrix) @ grads.matrix
        finish(shared, combined, grads)
        return loss_output(losses, dict(zip(self.tasks, alpha.tolist())))

    def _backward_representation(
        self, fn: str, losses: Mapping[str, Tensor], z: Tensor
    ) -> LossOutput:
        if not isinstance(z, Tensor):
            fail(
                fn, "representation", "be a Tensor", type(z).__name__, kind=TypeError, raw_got=True
            )
        if not z.is_floating_point():
            fail(
                fn,
                "representation",
                "be a floating-point tensor",
                f"dtype {str(z.dtype).replace('torch.', '')}",
                kind=TypeError,
                raw_got=True,
            )
        if not z.requires_grad:
            fail(
                fn,
                "representation",
                "require grad (the encoder output the task heads read)",
                "a tensor with requires_grad=False",
                raw_got=True,
            )
        rows = []
        for task, value in losses.items():
            grad = None
            if value.requires_grad:
                (grad,) = torch.autograd.grad(value, z, retain_graph=True, allow_unused=True)
            if grad is None:
                fail(
                    fn,
                    f"losses[{task!r}]",
                    "depend on `representation`",
                    "a loss that does not use it",
                    raw_got=True,
                )
            rows.append(grad.reshape(-1))
        m = gram(torch.stack(rows))
        del rows
        values = list(losses.values())
        solve_losses = losses
        syncs = self.syncs()
        if syncs:
            # Rank r holds its rows of the global Z and the global mean loss is the mean of
            # the ranks' means, so the gradient's rows of rank r are 1/world of its own and the
            # global Gram matrix is sum_r M_r / world**2 = mean_r M_r / world.
            local = torch.from_numpy(m).to(z.device)  # the collective's device (NCCL: CUDA)
            stacked = torch.stack([v.detach().to(z.device, torch.float64) for v in values])
            m_mean, mean_values = average_over_ranks(fn, [local, stacked])
            m = (m_mean / world_size()).cpu().numpy()
            solve_losses = dict(zip(losses, mean_values.unbind()))
        alpha = self._solve(fn, m, solve_losses)
        # The gradient of sum_i alpha_i L_i: each loss seeded with its alpha_i.
        seeds = [torch.full_like(v, float(a)) for a, v in zip(alpha, values)]
        if syncs:
            # Averaged by hand (DDP's hooks would average only a DDP module's parameters).
            leaves = graph_leaves(values)
            found = torch.autograd.grad(values, leaves, grad_outputs=seeds, allow_unused=True)
            dense = [g if g is not None else torch.zeros_like(p) for p, g in zip(leaves, found)]
            accumulate(leaves, average_over_ranks(fn, dense))
        else:
            torch.autograd.backward(values, grad_tensors=seeds)
        return loss_output(losses, dict(zip(self.tasks, alpha.tolist())))

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, normalize={self.normalize!r}, "
            f"max_iter={self.max_iter}, tol={self.tol:g}{self.sync_repr()}"
        )
