"""Every weighting key through ``MultiTaskLoss``: one training loop, one checkpoint contract."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

import losslab
from losslab.multitask import WEIGHTINGS, GradientWeighting, LossWeighting, make_weighting

TASKS = ("cls", "reg")


class TwoTask(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.cls = nn.Linear(16, 1)
        self.reg = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.trunk(x)
        return z, {"cls": self.cls(z).squeeze(1), "reg": self.reg(z).squeeze(1)}


def _data(seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 6, generator=g)
    w = torch.randn(6, generator=g)
    return x, {"cls": (x @ w > 0).float(), "reg": x @ torch.randn(6, generator=g) * 3.0}


def _build(key: str, seed: int = 0) -> tuple[TwoTask, losslab.MultiTaskLoss, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = TwoTask()
    weighting = make_weighting(key, TASKS) if key != "fixed" else {"cls": 1.0, "reg": 0.1}
    if key in ("random", "pcgrad"):
        weighting = make_weighting(key, TASKS)
        weighting = type(weighting)(TASKS, seed=seed)
    mtl = losslab.MultiTaskLoss(
        {"cls": losslab.BCEWithLogitsLoss(), "reg": losslab.MSELoss()}, weighting=weighting
    )
    opt = torch.optim.Adam([*model.parameters(), *mtl.parameters()], lr=0.02)
    return model, mtl, opt


def _step(key: str, model: TwoTask, mtl: losslab.MultiTaskLoss, opt, x, y, *, ub: bool = False):
    opt.zero_grad()
    z, preds = model(x)
    if ub:
        out = mtl.backward(preds, y, representation=z)
    else:
        out = mtl.backward(preds, y, model.trunk.parameters())
    opt.step()
    return out


@pytest.mark.parametrize("key", [*WEIGHTINGS, "mgda_ub"])
def test_every_weighting_trains_a_two_task_model(key: str) -> None:
    ub = key == "mgda_ub"
    key = "mgda" if ub else key
    model, mtl, opt = _build(key)
    x, y = _data()
    first = None
    for _epoch in range(6):
        for _ in range(5):
            out = _step(key, model, mtl, opt, x, y, ub=ub)
            logged = out.log_dict()
            assert all(math.isfinite(v) for v in logged.values()), logged
            first = first if first is not None else logged
        mtl.epoch_end()
    # Both tasks improve under every weighting.
    assert logged["loss/cls"] < first["loss/cls"]
    assert logged["loss/reg"] < first["loss/reg"]
    assert set(mtl.weighting.current_weights()) >= set(TASKS)
    kind = LossWeighting if mtl.weighting.kind == "loss" else GradientWeighting
    assert isinstance(mtl.weighting, kind)


@pytest.mark.parametrize("key", WEIGHTINGS)
def test_checkpoint_at_step_k_continues_bit_for_bit(key: str) -> None:
    """Save model, optimizer and loss at step k; a fresh run loaded from it matches 10 more steps."""
    x, y = _data(1)
    model, mtl, opt = _build(key, seed=0)
    for step in range(7):
        _step(key, model, mtl, opt, x, y)
        if step % 3 == 2:
            mtl.epoch_end()
    buffer = io.BytesIO()
    torch.save({"m": model.state_dict(), "l": mtl.state_dict(), "o": opt.state_dict()}, buffer)
    reference = [copy.deepcopy(_step(key, model, mtl, opt, x, y).log_dict()) for _ in range(10)]
    ref_params = [p.detach().clone() for p in model.parameters()]

    fresh_model, fresh_mtl, fresh_opt = _build(key, seed=123)  # different init and seed
    buffer.seek(0)
    state = torch.load(buffer, weights_only=False)
    fresh_model.load_state_dict(state["m"])
    fresh_mtl.load_state_dict(state["l"])
    fresh_opt.load_state_dict(state["o"])
    resumed = [_step(key, fresh_model, fresh_mtl, fresh_opt, x, y).log_dict() for _ in range(10)]
    assert resumed == reference
    for a, b in zip(fresh_model.parameters(), ref_params):
        assert torch.equal(a, b)


def test_gradient_weighting_refuses_a_plain_total() -> None:
    model, mtl, _ = _build("pcgrad")
    x, y = _data()
    _, preds = model(x)
    with pytest.raises(TypeError, match=r"\.backward\(preds, targets, shared_parameters\)"):
        mtl(preds, y)
    with pytest.raises(ValueError, match=r"`shared_parameters` must be given"):
        mtl.backward(preds, y)


def test_dwa_history_survives_a_dtype_cast() -> None:
    """`.half()` on the loss must not round DWA's float64 epoch sums (weights use their ratios)."""
    from losslab.multitask import DynamicWeightAverage

    a, b = DynamicWeightAverage(TASKS), DynamicWeightAverage(TASKS)
    b.half()
    for epoch_losses in ([1.0001, 3.0], [1.0, 2.9999], [0.5, 2.99]):
        for dwa in (a, b):
            dwa({"cls": torch.tensor(epoch_losses[0]), "reg": torch.tensor(epoch_losses[1])})
            dwa.epoch_end()
    assert b.loss_history.dtype == torch.float64
    assert a.current_weights() == b.current_weights()
