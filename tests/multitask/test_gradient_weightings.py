"""Gradient weightings (GradNorm, PCGrad, MGDA, CAGrad): closed forms, contract, state, training.

Every expected value is computed here from the papers' formulas, in float64, from gradients
obtained independently with ``torch.autograd.grad``; the solvers are checked against
``scipy.optimize.minimize`` (SLSQP).
"""

from __future__ import annotations

import copy
import io
import math
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from losslab.multitask.cagrad import CAGrad, cagrad_objective, cagrad_weights
from losslab.multitask.gradnorm import GradNorm
from losslab.multitask.mgda import MGDA, min_norm_weights
from losslab.multitask.pcgrad import PCGrad

TASKS = ("a", "b")
DT = torch.float64


# ------------------------------------------------------------------------------ helpers
def linear_losses(theta: Tensor, *vectors: list[float]) -> dict[str, Tensor]:
    """L_k = v_k . theta: the gradient of task k is exactly v_k."""
    names = "abcdefgh"
    return {names[k]: theta @ torch.tensor(v, dtype=DT) for k, v in enumerate(vectors)}


def param(*values: float) -> nn.Parameter:
    return nn.Parameter(torch.tensor(values, dtype=DT))


class TwoTask(nn.Module):
    """A trunk shared by two linear heads."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.trunk = nn.Linear(4, 6).to(DT)
        self.heads = nn.ModuleDict({"a": nn.Linear(6, 1).to(DT), "b": nn.Linear(6, 1).to(DT)})
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=DT) * 0.5)

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        z = torch.tanh(self.trunk(x))
        return z, {t: head(z).squeeze(-1) for t, head in self.heads.items()}


def batch(step: int) -> tuple[Tensor, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(8, 4, generator=g, dtype=DT)
    targets = {"a": x[:, 0] - 0.5 * x[:, 1], "b": (x[:, 2] * x[:, 3]).tanh() + 1.0}
    return x, targets


def forward_losses(model: TwoTask, step: int) -> tuple[Tensor, dict[str, Tensor]]:
    x, targets = batch(step)
    z, preds = model(x)
    # +0.1 keeps every loss positive (GradNorm's ratios, MGDA's loss normalization).
    return z, {t: ((preds[t] - targets[t]) ** 2).mean() + 0.1 for t in TASKS}


FACTORIES: dict[str, Callable[..., Any]] = {
    "pcgrad": lambda seed=0: PCGrad(TASKS, seed=seed),
    "mgda": lambda seed=0: MGDA(TASKS, normalize="l2"),
    "mgda_ub": lambda seed=0: MGDA(TASKS, normalize="loss+"),
    "cagrad": lambda seed=0: CAGrad(TASKS, c=0.4),
    "gradnorm": lambda seed=0: GradNorm(TASKS, alpha=1.5),
}


def weighted_step(weighting: Any, model: TwoTask, step: int) -> Any:
    z, losses = forward_losses(model, step)
    if isinstance(weighting, MGDA) and weighting.normalize == "loss+":
        return weighting.backward(losses, representation=z)
    return weighting.backward(losses, list(model.trunk.parameters()))


def make_optimizer(model: nn.Module, weighting: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD([*model.parameters(), *weighting.parameters()], lr=0.05, momentum=0.9)


# ------------------------------------------------------------------------------ PCGrad
@pytest.mark.parametrize("seed", [0, 1])
def test_pcgrad_two_conflicting_tasks_by_hand(seed: int) -> None:
    # g1 = (1, 0), g2 = (-1, 1): g1.g2 = -1 < 0.
    # g1' = g1 - (-1 / 2) g2 = (0.5, 0.5); g2' = g2 - (-1 / 1) g1 = (0, 1); sum (0.5, 1.5).
    theta = param(0.0, 0.0)
    out = PCGrad(["a", "b"], seed=seed).backward(linear_losses(theta, [1, 0], [-1, 1]), [theta])
    assert theta.grad is not None
    torch.testing.assert_close(theta.grad, torch.tensor([0.5, 1.5], dtype=DT), rtol=0, atol=1e-15)
    assert dict(out.weights) == {"a": 1.0, "b": 1.0}
    theta.grad = None
    out = PCGrad(["a", "b"], reduction="mean", seed=seed).backward(
        linear_losses(theta, [1, 0], [-1, 1]), [theta]
    )
    torch.testing.assert_close(theta.grad, torch.tensor([0.25, 0.75], dtype=DT), rtol=0, atol=0)
    assert dict(out.weights) == {"a": 0.5, "b": 0.5}
    torch.testing.assert_close(out.total, 0.5 * out.components["a"] + 0.5 * out.components["b"])


def test_pcgrad_leaves_agreeing_and_zero_gradients_alone() -> None:
    theta = param(1.0, 2.0)
    PCGrad(["a", "b"]).backward(linear_losses(theta, [1, 0], [1, 1]), [theta])
    torch.testing.assert_close(theta.grad, torch.tensor([2.0, 1.0], dtype=DT), rtol=0, atol=0)
    theta.grad = None
    # A task whose gradient is exactly zero is skipped (no 0/0) and projects nothing.
    PCGrad(["a", "b"]).backward(linear_losses(theta, [1, -1], [0, 0]), [theta])
    torch.testing.assert_close(theta.grad, torch.tensor([1.0, -1.0], dtype=DT), rtol=0, atol=0)


def test_pcgrad_three_tasks_by_hand_with_the_drawn_orders() -> None:
    # g1 = (1, 0), g2 = (-1, 1), g3 = (0, -1); projected g_i' for each order of the others:
    by_order = {
        (0, (1, 2)): (0.5, 0.0),  # (1,0) -> (0.5, 0.5) off g2 -> (0.5, 0) off g3
        (0, (2, 1)): (0.5, 0.5),  # g1.g3 = 0: untouched, then (0.5, 0.5) off g2
        (1, (0, 2)): (0.0, 0.0),  # (-1,1) -> (0, 1) off g1 -> (0, 0) off g3
        (1, (2, 0)): (0.0, 0.0),  # (-1,1) -> (-1, 0) off g3 -> (0, 0) off g1
        (2, (0, 1)): (-0.5, -0.5),  # g3.g1 = 0, then (-0.5, -0.5) off g2
        (2, (1, 0)): (0.0, -0.5),  # (-0.5, -0.5) off g2, then (0, -0.5) off g1
    }
    # The orders PCGrad draws from its generator: one randperm of the others per task.
    g = torch.Generator().manual_seed(0)
    orders = []
    for i in range(3):
        others = [j for j in range(3) if j != i]
        orders.append(tuple(others[k] for k in torch.randperm(2, generator=g).tolist()))
    assert orders == [(1, 2), (2, 0), (1, 0)]
    expected = np.sum([by_order[(i, o)] for i, o in enumerate(orders)], axis=0)
    assert expected.tolist() == [0.5, -0.5]
    theta = param(0.0, 0.0)
    weighting = PCGrad(["a", "b", "c"], seed=0)
    weighting.backward(linear_losses(theta, [1, 0], [-1, 1], [0, -1]), [theta])
    torch.testing.assert_close(theta.grad, torch.tensor(expected, dtype=DT), rtol=0, atol=1e-15)
    # The generator advanced: the next step draws the orders that follow in its stream.
    following = [torch.randperm(2, generator=g).tolist() for _ in range(3)]
    drawn = weighting.draw_orders()
    assert [[o.index(j) for j in sorted(o)] for o in drawn] == following
    assert torch.equal(weighting.state_dict()["_extra_state"]["generator"], g.get_state())


# ------------------------------------------------------------------------------ MGDA
def min_norm_gamma(g1: np.ndarray, g2: np.ndarray) -> float:
    """gamma* = clip(((g2 - g1) . g2) / ||g1 - g2||^2, 0, 1), the weight on g1."""
    return float(np.clip((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)), 0.0, 1.0))


@pytest.mark.parametrize(
    "g1, g2",
    [
        ([1.0, 0.0], [-1.0, 1.0]),
        ([3.0, 1.0], [1.0, 0.5]),
        ([1.0, 2.0], [-2.0, 0.5]),
        ([0.2, 0.1], [4.0, 3.0]),
    ],
)
def test_mgda_two_tasks_min_norm_point(g1: list[float], g2: list[float]) -> None:
    a, b = np.array(g1), np.array(g2)
    gamma = min_norm_gamma(a, b)
    theta = param(0.3, -0.2)
    out = MGDA(["a", "b"]).backward(linear_losses(theta, g1, g2), [theta])
    expected = gamma * a + (1.0 - gamma) * b
    torch.testing.assert_close(theta.grad, torch.tensor(expected, dtype=DT), rtol=1e-14, atol=1e-15)
    assert out.weights["a"] == pytest.approx(gamma, abs=1e-15)
    assert out.weights["b"] == pytest.approx(1.0 - gamma, abs=1e-15)
    assert MGDA(["a", "b"]).current_weights() == {"a": 0.5, "b": 0.5}


def test_mgda_normalizations_apply_alpha_to_the_raw_gradients() -> None:
    g1, g2 = np.array([10.0, 0.0]), np.array([-1.0, 1.0])
    theta = param(1.0, 1.0)  # L1 = 10, L2 = 0 + 0.5 below
    for normalize in ("l2", "loss", "loss+"):
        losses = linear_losses(theta, g1.tolist(), g2.tolist())
        losses["b"] = losses["b"] + 0.5
        values = np.array([float(v.detach()) for v in losses.values()])
        n = {
            "l2": np.hypot(*np.stack([g1, g2]).T),
            "loss": values,
            "loss+": values * np.hypot(*np.stack([g1, g2]).T),
        }[normalize]
        gamma = min_norm_gamma(g1 / n[0], g2 / n[1])
        theta.grad = None
        out = MGDA(["a", "b"], normalize=normalize).backward(losses, [theta])
        expected = gamma * g1 + (1.0 - gamma) * g2
        torch.testing.assert_close(
            theta.grad, torch.tensor(expected, dtype=DT), rtol=1e-13, atol=1e-14
        )
        assert out.weights["a"] == pytest.approx(gamma, abs=1e-14)


def test_mgda_ub_uses_the_representation() -> None:
    model = TwoTask(3)
    twin = copy.deepcopy(model)
    z, losses = forward_losses(model, 0)
    weighting = MGDA(TASKS)
    # Independent reference: gradients of each loss w.r.t. z, 2-task closed form, then the
    # gradient of sum_i alpha_i L_i w.r.t. every parameter of an identical model.
    z2, losses2 = forward_losses(twin, 0)
    gz = [
        torch.autograd.grad(losses2[t], z2, retain_graph=True)[0].reshape(-1).numpy() for t in TASKS
    ]
    gamma = min_norm_gamma(gz[0], gz[1])
    total = gamma * losses2["a"] + (1.0 - gamma) * losses2["b"]
    expected = torch.autograd.grad(total, list(twin.parameters()))
    out = weighting.backward(losses, representation=z)
    assert out.weights["a"] == pytest.approx(gamma, abs=1e-14)
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, e, rtol=1e-12, atol=1e-14)
    assert weighting.current_weights()["a"] == pytest.approx(gamma, abs=1e-14)


@pytest.mark.parametrize("t", [3, 4, 5, 6])
def test_mgda_solver_matches_scipy(t: int) -> None:
    minimize = pytest.importorskip("scipy.optimize").minimize
    rng = np.random.default_rng(t)
    for trial in range(6):
        p = t + 2 if trial % 2 else max(t - 2, 1)  # full-rank and rank-deficient Gram matrices
        g = rng.normal(size=(t, p)) + rng.normal(size=(1, p))
        m = g @ g.T
        best = min(
            minimize(
                lambda w, m=m: w @ m @ w,
                x0,
                method="SLSQP",
                bounds=[(0, 1)] * t,
                constraints=({"type": "eq", "fun": lambda w: 1 - w.sum()},),
                options={"ftol": 1e-15, "maxiter": 1000},
            ).fun
            for x0 in [np.full(t, 1 / t), *np.eye(t) * 0.9 + 0.1 / t]
        )
        alpha = min_norm_weights(m)
        assert alpha.min() >= 0 and alpha.sum() == pytest.approx(1.0, abs=1e-14)
        assert alpha @ m @ alpha == pytest.approx(best, abs=1e-9)


# ------------------------------------------------------------------------------ CAGrad
def test_cagrad_with_c_zero_is_the_mean_gradient_exactly() -> None:
    model = TwoTask(1)
    _, losses = forward_losses(model, 0)
    trunk = list(model.trunk.parameters())
    expected = [
        torch.stack(grads).mean(0)
        for grads in zip(*(torch.autograd.grad(losses[t], trunk, retain_graph=True) for t in TASKS))
    ]
    out = CAGrad(TASKS, c=0.0).backward(losses, trunk)
    for p, e in zip(trunk, expected):
        assert torch.equal(p.grad, e)
    assert dict(out.weights) == {"a": 0.5, "b": 0.5}


def cagrad_reference(g: np.ndarray, w: np.ndarray, c: float, rescale: int) -> np.ndarray:
    g0 = g.mean(0)
    gw = w @ g
    d = g0 + c * np.linalg.norm(g0) / np.linalg.norm(gw) * gw
    return d / [1.0, 1.0 + c**2, 1.0 + c][rescale]


@pytest.mark.parametrize("rescale", [0, 1, 2])
def test_cagrad_update_by_hand(rescale: int) -> None:
    minimize = pytest.importorskip("scipy.optimize").minimize
    g = np.array([[1.0, 0.0, 0.5], [-1.0, 1.0, 0.0], [0.3, -0.8, 1.0]])
    c = 0.5
    m = g @ g.T
    s = c * np.linalg.norm(g.mean(0))
    best = minimize(
        lambda w: cagrad_objective(w, m, s),
        np.full(3, 1 / 3),
        method="SLSQP",
        bounds=[(0, 1)] * 3,
        constraints=({"type": "eq", "fun": lambda w: 1 - w.sum()},),
        options={"ftol": 1e-15, "maxiter": 1000},
    ).x
    theta = param(0.0, 0.0, 0.0)
    out = CAGrad(["a", "b", "c"], c=c, rescale=rescale).backward(
        linear_losses(theta, *g.tolist()), [theta]
    )
    expected = cagrad_reference(g, best, c, rescale)
    torch.testing.assert_close(theta.grad, torch.tensor(expected, dtype=DT), rtol=1e-6, atol=1e-6)
    # The reported weights are the coefficients of the task gradients in the update.
    coef = np.array([out.weights[k] for k in "abc"])
    np.testing.assert_allclose(coef @ g, theta.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("t", [2, 3, 4, 5])
def test_cagrad_solver_matches_scipy(t: int) -> None:
    minimize = pytest.importorskip("scipy.optimize").minimize
    rng = np.random.default_rng(10 + t)
    for trial in range(8):
        g = rng.normal(size=(t, t + 3)) + rng.normal(size=(1, t + 3)) * trial / 4
        m = g @ g.T
        c = (0.1, 0.4, 0.8, 1.5)[trial % 4]
        s = c * math.sqrt(np.full(t, 1 / t) @ m @ np.full(t, 1 / t))
        best = min(
            minimize(
                lambda w, m=m, s=s: cagrad_objective(w, m, s),
                x0,
                method="SLSQP",
                bounds=[(0, 1)] * t,
                constraints=({"type": "eq", "fun": lambda w: 1 - w.sum()},),
                options={"ftol": 1e-15, "maxiter": 1000},
            ).fun
            for x0 in [np.full(t, 1 / t), *np.eye(t) * 0.9 + 0.1 / t]
        )
        w = cagrad_weights(m, c)
        assert w.min() >= 0 and w.sum() == pytest.approx(1.0, abs=1e-14)
        assert cagrad_objective(w, m, s) == pytest.approx(best, abs=1e-7)


def test_cagrad_handles_a_zero_gradient_and_duplicated_tasks() -> None:
    theta = param(0.0, 0.0)
    for vectors in ([[1.0, 0.0], [0.0, 0.0], [-1.0, 1.0]], [[1.0, 2.0], [1.0, 2.0], [-2.0, 0.5]]):
        theta.grad = None
        out = CAGrad(["a", "b", "c"], c=0.5).backward(linear_losses(theta, *vectors), [theta])
        assert torch.isfinite(theta.grad).all()
        assert all(math.isfinite(v) and v >= 0 for v in out.weights.values())


@pytest.mark.parametrize("cls", [PCGrad, MGDA, CAGrad])
def test_non_finite_gradients_reach_grad_with_uniform_weights(cls: type) -> None:
    theta = param(1.0, 1.0)
    vectors = [[float("nan"), 1.0], [1.0, 2.0], [0.5, -1.0]]
    out = cls(["a", "b", "c"]).backward(linear_losses(theta, *vectors), [theta])
    assert math.isnan(theta.grad[0]) and math.isfinite(theta.grad[1])
    if cls is not PCGrad:
        assert all(w == pytest.approx(1 / 3) for w in out.weights.values())


# ------------------------------------------------------------------------------ GradNorm
def test_gradnorm_weight_gradient_by_hand() -> None:
    # Shared theta in R^2, L_a = a.theta + 1, L_b = b.theta + 2: ||grad L_a|| = 1, ||grad L_b|| = 2.
    a, b = [1.0, 0.0], [0.0, 2.0]
    theta = param(1.0, 1.0)
    weighting = GradNorm(["a", "b"], alpha=1.5, initial_weights=[3.0, 1.0])  # -> (1.5, 0.5)

    def losses() -> dict[str, Tensor]:
        out = linear_losses(theta, a, b)
        return {"a": out["a"] + 1.0, "b": out["b"] + 2.0}

    first = weighting.backward(losses(), [theta])
    assert dict(first.weights) == {"a": 1.5, "b": 0.5}
    assert weighting.initial_losses.tolist() == [2.0, 4.0]
    # Step 1: ratios 1, r = 1: target = mean(G) = mean(1.5 * 1, 0.5 * 2) = 1.25.
    # dL/dw_a = sign(1.5 - 1.25) * 1 = 1; dL/dw_b = sign(1.0 - 1.25) * 2 = -2.
    assert weighting.task_weights.grad.tolist() == [1.0, -2.0]
    # Model gradient: sum_i w_i grad L_i = 1.5 a + 0.5 b.
    assert theta.grad.tolist() == [1.5, 1.0]
    # Step 2 at theta = (3, 0.5): L = (4, 3); ratios (2, 0.75); r = (2, 0.75) / 1.375.
    with torch.no_grad():
        theta.copy_(torch.tensor([3.0, 0.5], dtype=DT))
        weighting.task_weights.copy_(torch.tensor([2.0, 2.0]))  # renormalized to (1, 1)
    weighting.task_weights.grad = None
    weighting.backward(losses(), [theta])
    r = np.array([2.0, 0.75]) / 1.375
    grad_norms = np.array([1.0 * 1.0, 1.0 * 2.0])
    target = grad_norms.mean() * r**1.5
    expected = np.sign(grad_norms - target) * np.array([1.0, 2.0])
    np.testing.assert_allclose(weighting.task_weights.grad.numpy(), expected, rtol=1e-6)
    assert weighting.current_weights() == {"a": 1.0, "b": 1.0}


def test_gradnorm_raises_the_weight_of_the_slower_task() -> None:
    # Equal gradient norms; task a's loss has not moved (ratio 1), task b's has halved.
    theta = nn.Parameter(torch.tensor([1.0, 1.0], dtype=DT))
    weighting = GradNorm(["a", "b"], alpha=1.0)
    opt = torch.optim.SGD(weighting.parameters(), lr=0.1)
    weighting.backward(linear_losses(theta, [1.0, 0.0], [0.0, 1.0]), [theta])
    opt.zero_grad()
    with torch.no_grad():
        theta.copy_(torch.tensor([1.0, 0.5], dtype=DT))
    weighting.backward(linear_losses(theta, [1.0, 0.0], [0.0, 1.0]), [theta])
    opt.step()
    w = weighting.current_weights()
    assert w["a"] > 1.0 > w["b"]
    assert w["a"] + w["b"] == pytest.approx(2.0)


def test_gradnorm_rejects_non_positive_initial_losses() -> None:
    theta = param(1.0, -1.0)
    with pytest.raises(ValueError, match=r"`losses\['b'\]` must be positive and finite"):
        GradNorm(["a", "b"]).backward(linear_losses(theta, [1.0, 0.0], [0.0, 1.0]), [theta])


# ------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("name", ["pcgrad", "mgda", "cagrad", "gradnorm"])
def test_heads_get_their_own_gradient_and_grads_accumulate(name: str) -> None:
    model = TwoTask(2)
    twin = copy.deepcopy(model)
    weighting = FACTORIES[name]()
    # Independent reference: per-task gradients of the twin.
    _, losses2 = forward_losses(twin, 0)
    head_grads = {
        t: torch.autograd.grad(losses2[t], list(twin.heads[t].parameters()), retain_graph=True)
        for t in TASKS
    }
    trunk2 = list(twin.trunk.parameters())
    task_grads = [torch.autograd.grad(losses2[t], trunk2, retain_graph=True) for t in TASKS]
    flat = torch.stack([torch.cat([g.reshape(-1) for g in grads]) for grads in task_grads])
    # Pre-existing gradients everywhere must be accumulated into, not overwritten.
    before = {}
    for k, p in enumerate(model.parameters()):
        p.grad = torch.full_like(p, 0.01 * (k + 1))
        before[p] = p.grad.clone()
    _, losses = forward_losses(model, 0)
    out = weighting.backward(losses, list(model.trunk.parameters()))
    # Heads: exactly their own task's gradient (GradNorm: times its weight, 1 at the start).
    for t in TASKS:
        for p, g in zip(model.heads[t].parameters(), head_grads[t]):
            torch.testing.assert_close(p.grad, before[p] + g, rtol=0, atol=0)
    # Shared: exactly the combined gradient sum_i coef_i g_i with the reported coefficients.
    coef = torch.tensor([out.weights[t] for t in TASKS], dtype=DT)
    combined = torch.cat(
        [p.grad.reshape(-1) - before[p].reshape(-1) for p in model.trunk.parameters()]
    )
    if name == "pcgrad":
        g = flat.numpy()
        dot = g[0] @ g[1]
        projected = g.copy()
        if dot < 0:
            projected[0] = g[0] - dot / (g[1] @ g[1]) * g[1]
            projected[1] = g[1] - dot / (g[0] @ g[0]) * g[0]
        reference = torch.tensor(projected.sum(0))
    else:
        reference = coef @ flat
    torch.testing.assert_close(combined, reference, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        out.total, sum(coef[k] * losses2[t].detach() for k, t in enumerate(TASKS))
    )
    assert set(out.weights) == set(TASKS) and set(weighting.current_weights()) == set(TASKS)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_dict_continues_bit_for_bit(name: str) -> None:
    def train(model: TwoTask, weighting: Any, opt: torch.optim.Optimizer, steps: range) -> None:
        for step in steps:
            opt.zero_grad()
            weighted_step(weighting, model, step)
            opt.step()

    model, weighting = TwoTask(0), FACTORIES[name](seed=7)
    opt = make_optimizer(model, weighting)
    train(model, weighting, opt, range(10))
    buffer = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "weighting": weighting.state_dict()},
        buffer,
    )
    train(model, weighting, opt, range(10, 20))

    buffer.seek(0)
    state = torch.load(buffer)
    model2, weighting2 = TwoTask(5), FACTORIES[name](seed=123)  # a different seed
    model2.load_state_dict(state["model"])
    weighting2.load_state_dict(state["weighting"])
    opt2 = make_optimizer(model2, weighting2)
    opt2.load_state_dict(state["opt"])
    train(model2, weighting2, opt2, range(10, 20))
    for (k, p), p2 in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(p, p2), k
    for (k, p), p2 in zip(weighting.state_dict().items(), weighting2.state_dict().values()):
        if isinstance(p, Tensor):
            assert torch.equal(p, p2), k
        elif "generator" in p:
            assert torch.equal(p["generator"], p2["generator"])
    assert weighting.current_weights() == weighting2.current_weights()


@pytest.mark.parametrize("name", list(FACTORIES))
def test_training_thirty_steps_stays_finite(name: str) -> None:
    model, weighting = TwoTask(4), FACTORIES[name]()
    opt = make_optimizer(model, weighting)

    def evaluate() -> float:
        with torch.no_grad():
            return sum(float(v) for v in forward_losses(model, 0)[1].values())

    start = evaluate()
    for step in range(30):
        opt.zero_grad()
        out = weighted_step(weighting, model, step % 4)
        assert math.isfinite(float(out.total))
        assert all(math.isfinite(w) for w in weighting.current_weights().values())
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert evaluate() < start


# ------------------------------------------------------------------------------ errors
def test_bad_shared_parameters_raise() -> None:
    theta = param(1.0, 2.0)
    losses = linear_losses(theta, [1.0, 0.0], [0.0, 1.0])
    w = PCGrad(["a", "b"])
    cases: list[tuple[Any, type[Exception], str]] = [
        (
            [],
            ValueError,
            r"PCGrad.backward\(\): `shared_parameters` must hold at least one tensor; got an empty iterable",
        ),
        ([1.0], TypeError, r"`shared_parameters\[0\]` must be a Tensor; got float"),
        (
            theta,
            TypeError,
            r"`shared_parameters` must be an iterable of tensors .*; got a single Tensor\. Wrap it",
        ),
        (nn.Linear(2, 2), TypeError, r"got the module Linear\. Pass `module.parameters\(\)`"),
        (None, TypeError, r"`shared_parameters` must be an iterable of tensors .*; got NoneType"),
        ([torch.ones(2)], ValueError, r"`shared_parameters\[0\]` must require grad"),
        (
            [theta, theta],
            ValueError,
            r"`shared_parameters\[1\]` must not repeat a tensor; got the same tensor as shared_parameters\[0\]",
        ),
        ([theta * 2], ValueError, r"must be a leaf tensor \(a parameter\)"),
        (
            [torch.ones(2, dtype=torch.long)],
            TypeError,
            r"must be a floating-point tensor; got dtype int64",
        ),
        ([("w", theta)], TypeError, r"not `named_parameters\(\)`"),
    ]
    for shared, kind, message in cases:
        with pytest.raises(kind, match=message):
            w.backward(losses, shared)


def test_a_task_that_ignores_the_shared_parameters_is_named() -> None:
    theta, other = param(1.0, 2.0), param(3.0)
    for weighting in (
        PCGrad(["a", "b"]),
        MGDA(["a", "b"]),
        CAGrad(["a", "b"]),
        GradNorm(["a", "b"]),
    ):
        with pytest.raises(
            ValueError, match=r"`losses\['b'\]` must depend on at least one of the shared"
        ):
            weighting.backward({"a": theta.sum(), "b": other.sum() * 2}, [theta])
    with pytest.raises(
        ValueError,
        match=r"`losses\['b'\]` must depend on the shared parameters; got a tensor that does not require grad",
    ):
        PCGrad(["a", "b"]).backward({"a": theta.sum(), "b": torch.tensor(1.0)}, [theta])
    with pytest.raises(
        ValueError, match=r"have exactly the tasks \['a', 'b'\]; got missing \['b'\]"
    ):
        PCGrad(["a", "b"]).backward({"a": theta.sum()}, [theta])


def test_mgda_needs_exactly_one_of_parameters_and_representation() -> None:
    model = TwoTask(0)
    z, losses = forward_losses(model, 0)
    trunk = list(model.trunk.parameters())
    with pytest.raises(
        ValueError,
        match=r"`shared_parameters` must be given, or else `representation` \(MGDA-UB\), but not both; got both",
    ):
        MGDA(TASKS).backward(losses, trunk, representation=z)
    with pytest.raises(ValueError, match=r"but not both; got neither"):
        MGDA(TASKS).backward(losses)
    with pytest.raises(ValueError, match=r"`representation` must require grad"):
        MGDA(TASKS).backward(losses, representation=z.detach())
    with pytest.raises(TypeError, match=r"`representation` must be a Tensor; got list"):
        MGDA(TASKS).backward(losses, representation=[z])
    theta = param(1.0, -1.0)
    with pytest.raises(
        ValueError, match=r"`losses\['b'\]` must be positive and finite for normalize='loss'"
    ):
        MGDA(["a", "b"], normalize="loss").backward(
            linear_losses(theta, [1.0, 0.0], [0.0, 1.0]), [theta]
        )


@pytest.mark.parametrize(
    "build, kind, message",
    [
        (
            lambda: CAGrad(TASKS, c=-0.1),
            ValueError,
            r"CAGrad\(\): `c` must be in \[0, inf\); got -0.1",
        ),
        (lambda: CAGrad(TASKS, c="0.5"), TypeError, r"`c` must be a real number; got str"),
        (
            lambda: CAGrad(TASKS, rescale=3),
            ValueError,
            r"`rescale` must be one of 0 \| 1 \| 2; got 3",
        ),
        (
            lambda: CAGrad(TASKS, rescale=True),
            ValueError,
            r"`rescale` must be one of 0 \| 1 \| 2; got True",
        ),
        (lambda: CAGrad(TASKS, max_iter=0), ValueError, r"`max_iter` must be an int >= 1; got 0"),
        (
            lambda: GradNorm(TASKS, alpha=-1.0),
            ValueError,
            r"GradNorm\(\): `alpha` must be in \[0, inf\); got -1.0",
        ),
        (
            lambda: GradNorm(TASKS, alpha=float("nan")),
            ValueError,
            r"`alpha` must be a finite number",
        ),
        (
            lambda: GradNorm(TASKS, initial_weights=[1.0]),
            ValueError,
            r"`initial_weights` must hold one weight per task \(2\); got 1 weights",
        ),
        (
            lambda: GradNorm(TASKS, initial_weights=[1.0, 0.0]),
            ValueError,
            r"`initial_weights\['b'\]` must be in \(0, inf\); got 0.0",
        ),
        (
            lambda: GradNorm(TASKS, initial_weights=2.0),
            TypeError,
            r"`initial_weights` must be None, a mapping",
        ),
        (
            lambda: MGDA(TASKS, normalize="nome"),
            ValueError,
            r"`normalize` must be one of 'none' \| 'l2' \| 'loss' \| 'loss\+'; got 'nome'. Did you mean 'none'\?",
        ),
        (lambda: MGDA(TASKS, normalize="los"), ValueError, r"Did you mean 'loss'\?"),
        (lambda: MGDA(TASKS, tol=0.0), ValueError, r"`tol` must be in \(0, inf\); got 0.0"),
        (
            lambda: MGDA(TASKS, max_iter=2.5),
            TypeError,
            r"`max_iter` must be an int >= 1; got float",
        ),
        (
            lambda: PCGrad(TASKS, reduction="summ"),
            ValueError,
            r"`reduction` must be one of 'sum' \| 'mean'; got 'summ'. Did you mean 'sum'\?",
        ),
        (lambda: PCGrad(TASKS, seed=1.5), TypeError, r"`seed` must be an int or None; got float"),
        (lambda: PCGrad("ab"), TypeError, r"`tasks` must be a sequence of task names; got str"),
    ],
)
def test_bad_hyperparameters_raise(
    build: Callable[[], Any], kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind, match=message):
        build()


def test_keys_repr_and_forward_guard() -> None:
    assert (PCGrad.key, MGDA.key, CAGrad.key, GradNorm.key) == (
        "pcgrad",
        "mgda",
        "cagrad",
        "gradnorm",
    )
    assert all(cls.kind == "gradient" for cls in (PCGrad, MGDA, CAGrad, GradNorm))
    assert repr(CAGrad(TASKS)) == "CAGrad(tasks=['a', 'b'], c=0.5, rescale=1, max_iter=100)"
    assert "alpha=1.5" in repr(GradNorm(TASKS))
    with pytest.raises(TypeError, match=r"call `pcgrad.backward\(losses, shared_parameters\)`"):
        PCGrad(TASKS)({"a": torch.tensor(1.0), "b": torch.tensor(2.0)})


# ------------------------------------------------------------------------------ Lightning
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", list(FACTORIES))
def test_lightning_manual_optimization(name: str) -> None:
    lightning = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.net = TwoTask(0)
            self.weighting = FACTORIES[name]()

        def training_step(self, data: list[Tensor], index: int) -> None:
            x, ya, yb = data
            z, preds = self.net(x)
            losses = {
                "a": ((preds["a"] - ya) ** 2).mean() + 0.1,
                "b": ((preds["b"] - yb) ** 2).mean() + 0.1,
            }
            opt = self.optimizers()
            opt.zero_grad()
            if name == "mgda_ub":
                self.weighting.backward(losses, representation=z)
            else:
                self.weighting.backward(losses, self.net.trunk.parameters())
            opt.step()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    x, targets = batch(0)
    data = TensorDataset(x, targets["a"], targets["b"])
    module = Module()
    before = [p.detach().clone() for p in module.net.parameters()]
    trainer = lightning.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    assert trainer.global_step == 3
    after = list(module.net.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
