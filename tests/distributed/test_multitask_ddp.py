"""Task weightings under data parallelism: 2 and 3 gloo processes against one process.

A gradient weighting takes its per-task gradients with ``torch.autograd.grad``, which never
fires DistributedDataParallel's gradient hooks, so DDP does not synchronize what it writes.
``sync="global"`` averages the ``(T, P)`` task-gradient matrix, the losses and the heads'
gradients over the processes *before* the (nonlinear) combination: every rank then writes
the ``.grad`` of one process over the global batch (float64, 1e-10), bitwise identical across
ranks, with the model unwrapped, with a DDP model under ``no_sync()`` and with a plain DDP
forward (no hook fires, so nothing is averaged twice). ``sync="local"`` under DDP leaves the
ranks apart (PCGrad's ``.grad``, GradNorm's task-weight gradients). Loss weightings backpropagate through DDP like any loss:
uncertainty weighting's ``log_vars`` are synchronized only inside a DDP module, DWA's epoch
averages only with ``sync="global"``. Every scenario of one world size runs in a single
``run_workers`` call (one spawn); the tests below read its results.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from torch import Tensor, nn

import losslab
from losslab.multitask import (
    MGDA,
    CAGrad,
    DynamicWeightAverage,
    GradNorm,
    PCGrad,
    UncertaintyWeighting,
)
from tests._distributed import run_workers

DT = torch.float64
TASKS = ("a", "b", "c")
N = 12  # the global batch; shards below
STEPS = 2
LR = 0.1
EQUAL = {2: [(0, 6), (6, 12)]}
UNEVEN = {3: [(0, 5), (5, 8), (8, 12)]}
KINDS = ("pcgrad", "mgda", "mgda_ub", "cagrad", "gradnorm")
SETUPS = ("plain", "no_sync", "ddp", "ddp_unused", "ddp_static")


# ------------------------------------------------------------------------------ model, data
class Net(nn.Module):
    """A tanh trunk shared by three linear heads; the same initial values on every rank."""

    def __init__(self, unused: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.trunk = nn.Linear(3, 5).to(DT)
        self.heads = nn.ModuleDict({t: nn.Linear(5, 1).to(DT) for t in TASKS})
        # A parameter no forward uses (DDP's find_unused_parameters=True set-up).
        self.spare = nn.Linear(2, 2).to(DT) if unused else None
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.6 * torch.randn(p.shape, generator=g, dtype=DT))

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        z = torch.tanh(self.trunk(x))
        return z, {t: head(z).squeeze(-1) for t, head in self.heads.items()}

    def used(self) -> list[nn.Parameter]:
        return [*self.trunk.parameters(), *self.heads.parameters()]


def global_batch(step: int) -> tuple[Tensor, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(N, 3, generator=g, dtype=DT)
    targets = {"a": x[:, 0] - x[:, 1], "b": (x[:, 1] * x[:, 2]).tanh(), "c": -x[:, 2]}
    return x, targets


def task_losses(preds: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    # +0.1 keeps every loss positive (GradNorm's ratios, MGDA's loss normalizations).
    return {t: ((preds[t] - targets[t]) ** 2).mean() + 0.1 for t in TASKS}


def make(kind: str, sync: str, seed: int) -> Any:
    if kind == "pcgrad":
        return PCGrad(TASKS, seed=seed, sync=sync)
    if kind == "mgda":
        return MGDA(TASKS, normalize="loss+", sync=sync)
    if kind == "mgda_ub":
        return MGDA(TASKS, normalize="loss", sync=sync)
    if kind == "cagrad":
        return CAGrad(TASKS, c=0.4, sync=sync)
    # float64 task weights: GradNorm's weight gradient is then as exact as the rest.
    return GradNorm(TASKS, alpha=1.5, sync=sync).to(DT)


def train(
    kind: str,
    weighting: Any,
    net: Net,
    forward: Callable[[Tensor], Any],
    rows: tuple[int, int],
    scale: float = 1.0,
) -> list[dict[Any, Any]]:
    """STEPS plain-SGD steps on the rows ``rows`` of the global batches; what each step wrote."""
    records = []
    params = [*net.used(), *weighting.parameters()]
    for step in range(STEPS):
        for p in params:
            p.grad = None
        x, targets = global_batch(step)
        lo, hi = rows
        z, preds = forward(x[lo:hi])
        # Uneven shards: scaled so that the mean over ranks is the global batch's mean loss.
        local = task_losses(preds, {t: y[lo:hi] for t, y in targets.items()})
        losses = {t: scale * v for t, v in local.items()}
        if kind == "mgda_ub":
            out = weighting.backward(losses, representation=z)
        else:
            out = weighting.backward(losses, list(net.trunk.parameters()))
        record = {
            "grad": torch.cat([p.grad.reshape(-1) for p in net.used()]),
            "weights": torch.tensor([out.weights[t] for t in TASKS], dtype=DT),
        }
        if kind == "gradnorm":
            record["task_weights_grad"] = weighting.task_weights.grad.clone()
        if kind == "pcgrad":
            record["generator"] = weighting._generator.get_state()
        records.append(record)
        with torch.no_grad():
            for p in params:
                p -= LR * p.grad
    return records


def reference(kind: str) -> list[dict[Any, Any]]:
    """One process over the whole global batch (PCGrad: rank 0's seed, which is broadcast)."""
    net = Net()
    return train(kind, make(kind, "local", seed=0), net, net, (0, N))


def wrap(setup: str) -> tuple[Net, Callable[[Tensor], Any]]:
    from torch.nn.parallel import DistributedDataParallel as DDP

    net = Net(unused=setup == "ddp_unused")
    if setup == "plain":
        return net, net
    options = {"ddp_unused": {"find_unused_parameters": True}, "ddp_static": {"static_graph": True}}
    ddp = DDP(net, **options.get(setup, {}))
    if setup == "no_sync":

        def forward(x: Tensor) -> Any:
            with ddp.no_sync():
                return ddp(x)

        return net, forward
    return net, ddp


# ------------------------------------------------------------------------------ loss weightings
class WithLoss(nn.Module):
    """The model and its MultiTaskLoss in one module: DDP then synchronizes the weighting too."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Net()
        self.mtl = losslab.MultiTaskLoss(
            {t: (lambda p, y: ((p - y) ** 2).mean() + 0.1) for t in TASKS},
            weighting=UncertaintyWeighting(TASKS, init=0.3).to(DT),
        )

    def forward(self, x: Tensor, targets: dict[str, Tensor]) -> Tensor:
        _, preds = self.net(x)
        return self.mtl(preds, targets)


def uncertainty_grads(setup: str, rows: tuple[int, int]) -> Tensor:
    """The gradients of the model and of log_vars after one backward of the total."""
    model = WithLoss()
    lo, hi = rows
    x, targets = global_batch(0)
    x, targets = x[lo:hi], {t: y[lo:hi] for t, y in targets.items()}
    if setup == "single":
        model(x, targets).backward()
    else:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # The DDP objects must outlive the backward (their reducer holds the hooks).
        if setup == "inside":
            ddp = DDP(model)
            ddp(x, targets).backward()
        elif setup == "own_ddp":
            ddp_net, ddp_mtl = DDP(model.net), DDP(model.mtl)
            _, preds = ddp_net(x)
            ddp_mtl(preds, targets).backward()
        else:  # "outside": only the model is wrapped
            ddp = DDP(model.net)
            _, preds = ddp(x)
            model.mtl(preds, targets).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def dwa_weights(sync: str, rows: tuple[int, int], ddp: bool) -> list[list[float]]:
    """Three epochs of two steps with DWA (each process on its rows); the weights per epoch."""
    net = Net()
    forward: Any = net
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        forward = DDP(net)
    dwa = DynamicWeightAverage(TASKS, sync=sync)
    lo, hi = rows
    history = []
    for epoch in range(3):
        for step in range(2):
            net.zero_grad()
            x, targets = global_batch(10 * epoch + step)
            _, preds = forward(x[lo:hi])
            total = dwa(task_losses(preds, {t: y[lo:hi] for t, y in targets.items()}))
            total.backward()
            with torch.no_grad():
                for p in net.used():
                    p -= LR * p.grad
        dwa.epoch_end()
        history.append([dwa.current_weights()[t] for t in TASKS])
    return history


# ------------------------------------------------------------------------------ workers
def _two_ranks(rank: int, world: int) -> dict[Any, Any]:
    rows = EQUAL[world][rank]
    out: dict[Any, Any] = {}
    for setup in SETUPS:
        for kind in KINDS:
            net, forward = wrap(setup)
            # PCGrad gets a different seed on every rank: sync="global" broadcasts rank 0's.
            weighting = make(kind, "global", seed=rank)
            try:
                out[setup, kind] = train(kind, weighting, net, forward, rows)
            except ValueError as exc:
                out[setup, kind] = str(exc)
    # sync="local" under DDP: DDP's hooks do not fire for the weighting's gradients.
    for kind in ("pcgrad", "gradnorm"):
        net, forward = wrap("ddp")
        out["local", kind] = train(kind, make(kind, "local", seed=0), net, forward, rows)
    for setup in ("inside", "own_ddp", "outside"):
        out["uncertainty", setup] = uncertainty_grads(setup, rows)
    for sync in ("local", "global"):
        out["dwa", sync] = dwa_weights(sync, rows, ddp=True)
    # Ranks passing different shared parameters: ValueError on every rank, no hang.
    net = Net()
    _, preds = net(global_batch(0)[0][slice(*rows)])
    shared = list(net.trunk.parameters())[: 2 - rank]
    try:
        losses = task_losses(preds, {t: p.detach() + 1 for t, p in preds.items()})
        PCGrad(TASKS, sync="global").backward(losses, shared)
        out["mismatch"] = "no error"
    except ValueError as exc:
        out["mismatch"] = str(exc)
    return out


def _three_ranks(rank: int, world: int) -> dict[Any, Any]:
    lo, hi = UNEVEN[world][rank]
    scale = world * (hi - lo) / N
    out: dict[Any, Any] = {}
    for kind in KINDS:
        net = Net()
        out[kind] = train(kind, make(kind, "global", seed=rank), net, net, (lo, hi), scale)
    return out


@pytest.fixture(scope="module")
def two_ranks() -> list[dict[Any, Any]]:
    return run_workers(2, _two_ranks, timeout=60)


@pytest.fixture(scope="module")
def three_ranks() -> list[dict[Any, Any]]:
    return run_workers(3, _three_ranks, timeout=60)


@pytest.fixture(scope="module")
def references() -> dict[str, list[dict[Any, Any]]]:
    return {kind: reference(kind) for kind in KINDS}


def assert_matches(
    results: list[list[dict[Any, Any]]], expected: list[dict[Any, Any]], tol: float = 1e-10
) -> None:
    """Every rank equals the single-process record; the ranks agree bitwise."""
    for rank, records in enumerate(results):
        for step, (got, want) in enumerate(zip(records, expected)):
            assert got.keys() == want.keys()
            for key in want:
                if key == "generator":
                    assert torch.equal(got[key], want[key]), (rank, step)
                    continue
                torch.testing.assert_close(
                    got[key], want[key], rtol=tol, atol=tol, msg=f"rank {rank} step {step} {key}"
                )
                assert torch.equal(got[key], results[0][step][key]), (rank, step, key)


# ------------------------------------------------------------------------------ tests
@pytest.mark.slow
@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("kind", KINDS)
def test_global_sync_equals_one_process_on_the_global_batch(
    two_ranks: list[dict[Any, Any]], references: dict[Any, Any], kind: str, setup: str
) -> None:
    # plain: no DDP wrapper; no_sync: DDP forward under ddp.no_sync(); ddp: a plain DDP
    # forward (its hooks never fire for the weighting's gradients: nothing is averaged twice);
    # ddp_unused: find_unused_parameters=True with an unused parameter; ddp_static:
    # static_graph=True (without no_sync, which static_graph does not support).
    results = [r[setup, kind] for r in two_ranks]
    if kind == "mgda_ub" and setup in ("ddp_unused", "ddp_static"):
        # With these options DDP passes its outputs through an autograd function: the Z it
        # returns is not the tensor the heads read. MGDA-UB needs a no_sync() forward there.
        for message in results:
            assert message == (
                "MGDA.backward(): `losses['a']` must depend on `representation`; "
                "got a loss that does not use it."
            )
        return
    assert_matches(results, references[kind])


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_uneven_shards_with_scaled_losses_on_three_processes(
    three_ranks: list[dict[Any, Any]], references: dict[Any, Any], kind: str
) -> None:
    # Shards of 5, 3 and 4 rows; each rank scales its mean losses by world * n_local / N.
    assert_matches([r[kind] for r in three_ranks], references[kind])


@pytest.mark.slow
def test_local_sync_under_ddp_leaves_the_ranks_apart(two_ranks: list[dict[Any, Any]]) -> None:
    a, b = (r["local", "pcgrad"] for r in two_ranks)
    # PCGrad writes .grad outside DDP's hooks: each rank keeps its own shard's surgery.
    assert float((a[0]["grad"] - b[0]["grad"]).abs().max()) > 1e-2
    # GradNorm's last backward fires DDP's hooks (the model's gradients are averaged), but
    # its task weights are outside DDP and learn from each rank's own norms.
    a, b = (r["local", "gradnorm"] for r in two_ranks)
    torch.testing.assert_close(a[0]["grad"], b[0]["grad"], rtol=0, atol=0)
    assert float((a[0]["task_weights_grad"] - b[0]["task_weights_grad"]).abs().max()) > 1e-2


@pytest.mark.slow
def test_uncertainty_weighting_is_synchronized_only_inside_ddp(
    two_ranks: list[dict[Any, Any]],
) -> None:
    expected = uncertainty_grads("single", (0, N))
    n_log_vars = len(TASKS)
    for setup in ("inside", "own_ddp"):
        for r in two_ranks:
            torch.testing.assert_close(r["uncertainty", setup], expected, rtol=1e-10, atol=1e-10)
    a, b = (r["uncertainty", "outside"] for r in two_ranks)
    # The model's gradients are averaged by DDP; log_vars' are each rank's own...
    torch.testing.assert_close(a[:-n_log_vars], expected[:-n_log_vars], rtol=1e-10, atol=1e-10)
    assert float((a[-n_log_vars:] - b[-n_log_vars:]).abs().max()) > 1e-3
    # ...whose mean is the global one (d/ds_i is linear in the task loss).
    torch.testing.assert_close((a + b) / 2, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_dwa_global_sync_gives_every_rank_the_global_weights(
    two_ranks: list[dict[Any, Any]],
) -> None:
    expected = dwa_weights("local", (0, N), ddp=False)
    assert expected[-1] != [1.0, 1.0, 1.0]  # the third epoch's weights are DWA's
    for r in two_ranks:
        assert r["dwa", "global"][-1] == pytest.approx(expected[-1], rel=1e-10, abs=1e-10)
        assert r["dwa", "global"] == two_ranks[0]["dwa", "global"]
    local = [r["dwa", "local"][-1] for r in two_ranks]
    assert max(abs(x - y) for x, y in zip(*local)) > 1e-3


@pytest.mark.slow
def test_ranks_with_different_shared_parameters_raise_on_every_rank(
    two_ranks: list[dict[Any, Any]],
) -> None:
    for r in two_ranks:
        message = r["mismatch"]
        # Rank 0 passes the trunk's weight and bias (3 tasks x 20 values + 3 losses + 18 head
        # values), rank 1 the weight alone (its bias is then a head-like leaf): 81 vs 71.
        assert message.startswith(
            "PCGrad.backward(): `shared_parameters` must have the same sizes and dtypes on "
            "every process"
        ), message
        assert "got between 71 and 81 gradient values per process" in message, message


def test_global_sync_without_a_process_group_equals_local(
    references: dict[str, list[dict[Any, Any]]],
) -> None:
    for kind in KINDS:
        net = Net()
        records = train(kind, make(kind, "global", seed=0), net, net, (0, N))
        assert_matches([records], references[kind], tol=0.0)
