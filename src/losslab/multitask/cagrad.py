"""CAGrad: conflict-averse gradient descent (Liu et al. 2021)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import ClassVar, cast

import numpy as np
import torch
from torch import Tensor

from losslab._checks import check_choice, check_float, check_int_option
from losslab.compose.output import LossOutput
from losslab.distributed import check_sync
from losslab.multitask._base import GradientWeighting, check_task_losses
from losslab.multitask._gradients import (
    check_shared_parameters,
    feasible,
    finish,
    gram,
    loss_output,
    nested_supports,
    simplex_projection,
    sync_task_gradients,
    task_gradients,
)
from losslab.multitask.mgda import min_norm_weights

__all__ = ["CAGrad", "cagrad_objective", "cagrad_weights"]

_RESCALES = (0, 1, 2)


def cagrad_objective(w: np.ndarray, m: np.ndarray, s: float) -> float:
    r""":math:`F(w) = w^\top M \bar 1 + s \sqrt{w^\top M w}` with :math:`\bar 1 = 1/T`."""
    b = m.mean(axis=1)
    return float(w @ b + s * math.sqrt(max(float(w @ m @ w), 0.0)))


def _face_stationary(
    m: np.ndarray, b: np.ndarray, s: float, support: np.ndarray
) -> list[np.ndarray]:
    r"""Stationary points of F on the relative interior of the face ``support`` (may be none).

    With :math:`q = \sqrt{w^\top M w} > 0` and :math:`y = (s/q) w_S`, stationarity on the face
    reads :math:`M_{SS} y - \mu 1 = -b_S` and :math:`1^\top y = t` with :math:`t = s/q`: a
    bordered linear system whose solution is affine in :math:`t`,
    :math:`y = y_a + t\, y_b`. The definition of :math:`q` then gives
    :math:`y^\top M_{SS} y = s^2`, a quadratic in :math:`t`; each positive root gives
    :math:`w_S = y / t`. (Singular systems, i.e. affinely dependent gradients, are skipped:
    by Caratheodory's theorem an optimum also lies on an affinely independent face.)
    """
    k = len(support)
    mss = m[np.ix_(support, support)]
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = mss
    kkt[:k, k] = -1.0
    kkt[k, :k] = 1.0
    rhs = np.zeros((k + 1, 2))
    rhs[:k, 0] = -b[support]
    rhs[k, 1] = 1.0
    try:
        sol = np.linalg.solve(kkt, rhs)
    except np.linalg.LinAlgError:
        return []
    ya, yb = sol[:k, 0], sol[:k, 1]
    qa = float(yb @ mss @ yb)
    qb = float(ya @ mss @ yb)
    qc = float(ya @ mss @ ya) - s * s
    roots: list[float] = []
    if abs(qa) > 0:
        disc = qb * qb - qa * qc
        if disc < 0:
            # Rounding can push a double root slightly below zero.
            if disc < -1e-12 * max(qb * qb, abs(qa * qc), 1e-300):
                return []
            disc = 0.0
        r = math.sqrt(disc)
        roots = [(-qb + r) / qa, (-qb - r) / qa]
    elif abs(qb) > 0:
        roots = [-qc / (2.0 * qb)]
    points = []
    for t in roots:
        if t > 0 and math.isfinite(t):
            point = feasible((ya + t * yb) / t, support, len(m))
            if point is not None:
                points.append(point)
    return points


def _descend(
    m: np.ndarray, b: np.ndarray, s: float, w: np.ndarray, eps2: float, max_iter: int
) -> np.ndarray:
    r"""Projected gradient descent on :math:`b^\top w + s\sqrt{w^\top M w + \epsilon^2}`.

    Backtracking (sufficient-decrease) line search with a step that doubles after each
    accepted step; stops after ``max_iter`` steps or when the iterate no longer moves.
    """

    def value(v: np.ndarray) -> float:
        return float(v @ b + s * math.sqrt(max(float(v @ m @ v), 0.0) + eps2))

    f = value(w)
    # 1 / (an upper bound of the curvature s * ||M|| / sqrt(w^T M w + eps^2)) at the start.
    root = math.sqrt(max(float(w @ m @ w), 0.0) + eps2)
    step = root / (s * float(np.max(np.abs(m))) * len(m)) if root > 0 else 1.0
    for _ in range(max_iter):
        mw = m @ w
        root = math.sqrt(max(float(w @ mw), 0.0) + eps2)
        grad = b + (s / root) * mw if root > 0 else b
        moved = 0.0
        for _ in range(100):
            w_new = simplex_projection(w - step * grad)
            d = w_new - w
            f_new = value(w_new)
            if f_new <= f + float(grad @ d) + float(d @ d) / (2.0 * step):
                moved = float(np.max(np.abs(d)))
                w, f = w_new, f_new
                break
            step /= 2.0
        if moved <= 1e-13:
            break
        step = min(step * 2.0, 1e30)
    return w


def cagrad_weights(m: np.ndarray, c: float, *, max_iter: int = 100) -> np.ndarray:
    r"""``w`` on the simplex minimizing CAGrad's dual objective, from the Gram matrix ``M``.

    .. math::
        F(w) = w^\top G g_0 + \sqrt{\phi}\, \|G^\top w\|
             = w^\top M \bar 1 + c \|g_0\| \sqrt{w^\top M w},
        \qquad \|g_0\|^2 = \bar 1^\top M \bar 1 .

    Deterministic solver in float64: ``max_iter`` steps of projected gradient descent
    (backtracking line search, from :math:`w = 1/T`), then refinement: the stationary points
    of F on the faces spanned by the k largest weights (k = 1..T) and on every vertex are
    computed in closed form (see ``_face_stationary``), and the best feasible point is kept.
    F is convex, so this is exact once the descent has ranked the active tasks first; two
    tasks are always solved exactly (every face is tried). F is not differentiable where
    :math:`G^\top w = 0`: when 0 is in the convex hull of the gradients (found by
    :func:`~losslab.multitask.mgda.min_norm_weights`), that min-norm point is a candidate
    (the minimum when :math:`c \ge 1`) and, for :math:`c < 1`, the descent runs on
    :math:`\sqrt{w^\top M w + \epsilon^2}` with :math:`\epsilon` shrinking to 0 so that
    it does not stall at the kink. The result is exact (checked against SLSQP) for
    affinely independent gradients; for affinely dependent ones (duplicated tasks, fewer
    parameters than tasks) it is as accurate as the descent. Returns :math:`1/T` when
    ``c == 0`` or all gradients vanish (the objective is then irrelevant to the update)
    and when ``M`` is not finite (the non-finite gradients then reach ``.grad``).

    >>> m = np.array([[1.0, -0.5], [-0.5, 2.0]])
    >>> cagrad_weights(m, 0.5).round(4).tolist()
    [0.9557, 0.0443]
    """
    m = np.asarray(m, dtype=np.float64)
    t = len(m)
    uniform = np.full(t, 1.0 / t)
    trace = float(np.trace(m))
    g0_sq = max(float(uniform @ m @ uniform), 0.0)
    s = c * math.sqrt(g0_sq)
    if t == 1 or not np.all(np.isfinite(m)) or s == 0.0 or not trace > 0:
        return uniform
    b = m.mean(axis=1)

    def value(v: np.ndarray) -> float:
        return float(v @ b + s * math.sqrt(max(float(v @ m @ v), 0.0)))

    anchor = min_norm_weights(m)
    kink = float(anchor @ m @ anchor) <= 1e-10 * trace
    w = uniform
    if t > 2:  # with two tasks every face is solved below
        if kink and c < 1.0:
            for power in range(2, 14, 2):
                w = _descend(m, b, s, w, g0_sq * 10.0 ** (-power), max_iter)
        w = _descend(m, b, s, w, 0.0, max_iter)
    best, best_value = w, value(w)
    if value(anchor) <= best_value:
        best, best_value = anchor, value(anchor)
    faces = [np.array([i]) for i in range(t)] + nested_supports(w)[1:]
    for support in faces:
        for candidate in _face_stationary(m, b, s, support):
            candidate_value = value(candidate)
            if candidate_value <= best_value:
                best, best_value = candidate, candidate_value
    return best


class CAGrad(GradientWeighting):
    r"""Conflict-averse gradient descent over the shared parameters.

    With :math:`G` the ``(T, P)`` task gradients and :math:`g_0 = \frac1T \sum_i g_i`, find

    .. math::
        w^* = \operatorname*{arg\,min}_{w \in \Delta^T} w^\top G g_0 + \sqrt{\phi}\,\|G^\top w\|,
        \qquad \phi = c^2 \|g_0\|^2 ,

    (:func:`cagrad_weights`, float64, on the T x T Gram matrix), then

    .. math::
        g_w = G^\top w^*, \qquad d = g_0 + \frac{\sqrt{\phi}}{\|g_w\|}\, g_w ,

    and the shared parameters receive :math:`d` (``rescale=0``), :math:`d / (1 + c^2)`
    (``1``) or :math:`d / (1 + c)` (``2``), as in the authors' code. ``c = 0`` gives the
    average gradient exactly; when :math:`g_w = 0` the correction is taken as 0 (d =
    :math:`g_0`). The paper's convergence result needs :math:`0 \le c < 1`; larger values are
    accepted. The task heads receive the gradient of their own loss.

    The reported weights are the effective coefficients of each task gradient in the update,
    :math:`(1/T + \sqrt{\phi}\, w^*_i / \|g_w\|) / \text{rescale}` (1/T before the first step),
    so that the reported total :math:`\sum_i \text{weight}_i L_i` has gradient :math:`d`.

    Reference: B. Liu, X. Liu, X. Jin, P. Stone, Q. Liu, "Conflict-Averse Gradient Descent
    for Multi-task Learning", NeurIPS 2021.

    Args:
        tasks: the task names, in order.
        c: non-negative radius factor of the trust region around :math:`g_0`.
        rescale: ``0 | 1 | 2``, the division of :math:`d` above.
        max_iter: projected-gradient iterations of the solver.
        sync: ``"local" | "global"``: solve on the gradients of this process's shard, or of
            the global batch (averaged over the processes first).

    Distributed training: DDP does not synchronize the update (it is written into ``.grad``
    outside DDP's hooks). With ``sync="global"`` the task gradients and the heads' gradients
    are averaged over the processes before the solve, so every rank computes the same
    :math:`g_0`, :math:`w^*` and update, that of one process over the global batch.

    >>> import torch
    >>> theta = torch.nn.Parameter(torch.zeros(2))
    >>> losses = {"a": theta @ torch.tensor([1.0, 0.0]), "b": theta @ torch.tensor([-1.0, 1.0])}
    >>> out = CAGrad(["a", "b"], c=0.0).backward(losses, [theta])
    >>> theta.grad
    tensor([0.0000, 0.5000])
    """

    key: ClassVar[str] = "cagrad"
    last_weights: Tensor

    def __init__(
        self,
        tasks: Iterable[str],
        *,
        c: float = 0.5,
        rescale: int = 1,
        max_iter: int = 100,
        sync: str = "local",
    ) -> None:
        super().__init__(tasks)
        fn = type(self).__name__
        self.c = check_float(fn, "c", c, low=0.0)
        self.rescale = check_choice(fn, "rescale", rescale, _RESCALES)
        self.max_iter = cast(int, check_int_option(fn, "max_iter", max_iter, low=1))
        self.sync = check_sync(fn, sync)
        self.register_buffer(
            "last_weights",
            torch.full((len(self.tasks),), 1.0 / len(self.tasks), dtype=torch.float64),
        )

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.last_weights.tolist()))

    def coefficients(self, m: np.ndarray) -> np.ndarray:
        """The coefficient of each task gradient in the (rescaled) update, from the Gram matrix."""
        t = len(m)
        coef = np.full(t, 1.0 / t)
        if self.c == 0.0 or not np.all(np.isfinite(m)):
            # Non-finite gradients: the mean, so that they reach .grad as in a plain backward.
            return coef
        w = cagrad_weights(m, self.c, max_iter=self.max_iter)
        g0_norm = math.sqrt(max(float(coef @ m @ coef), 0.0))
        gw_norm = math.sqrt(max(float(w @ m @ w), 0.0))
        if gw_norm > 0:
            coef = coef + (self.c * g0_norm / gw_norm) * w
        divisor = (1.0, 1.0 + self.c**2, 1.0 + self.c)[self.rescale]
        return coef / divisor

    def backward(  # type: ignore[override]
        self, losses: Mapping[str, Tensor], shared_parameters: Iterable[Tensor]
    ) -> LossOutput:
        """Accumulate the CAGrad update direction into the shared parameters' ``.grad``.

        Returns a detached :class:`~losslab.compose.output.LossOutput`. Then call
        ``optimizer.step()``.
        """
        fn = f"{type(self).__name__}.backward"
        losses = check_task_losses(fn, self.tasks, losses)
        shared = check_shared_parameters(fn, shared_parameters)
        grads = task_gradients(fn, losses, shared)
        if self.syncs():
            values = torch.stack([v.detach() for v in losses.values()])
            grads, _ = sync_task_gradients(fn, grads, values)
        with torch.no_grad():
            if self.c == 0.0:
                coef = np.full(len(self.tasks), 1.0 / len(self.tasks))
                combined = grads.matrix.mean(0)
            else:
                coef = self.coefficients(gram(grads.matrix))
                combined = torch.from_numpy(coef).to(grads.matrix) @ grads.matrix
            self.last_weights.copy_(torch.from_numpy(coef))
        finish(shared, combined, grads)
        return loss_output(losses, dict(zip(self.tasks, coef.tolist())))

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, c={self.c:g}, rescale={self.rescale}, "
            f"max_iter={self.max_iter}{self.sync_repr()}"
        )
