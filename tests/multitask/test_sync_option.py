"""The ``sync`` option of the gradient weightings and DWA in one process.

Bad values raise ``ValueError`` naming ``sync``; without a process group ``sync="global"``
writes exactly (bitwise) what ``"local"`` writes. The multi-process behaviour is in
tests/distributed/test_multitask_ddp.py.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from torch import nn

from losslab.multitask import MGDA, CAGrad, DynamicWeightAverage, GradNorm, PCGrad

DT = torch.float64
TASKS = ("a", "b", "c")

CLASSES: dict[str, Callable[..., Any]] = {
    "PCGrad": lambda **kw: PCGrad(TASKS, seed=3, **kw),
    "MGDA": lambda **kw: MGDA(TASKS, normalize="loss+", **kw),
    "MGDA-UB": lambda **kw: MGDA(TASKS, normalize="l2", **kw),
    "CAGrad": lambda **kw: CAGrad(TASKS, c=0.4, **kw),
    "GradNorm": lambda **kw: GradNorm(TASKS, **kw).to(DT),
    "DynamicWeightAverage": lambda **kw: DynamicWeightAverage(TASKS, **kw),
}


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize(
    "bad, got",
    [
        ("globl", r"'globl'\. Did you mean 'global'\?"),
        ("Global", r"'Global'\. Did you mean 'global'\?"),
        ("all", r"'all'\."),
        (None, r"None\."),
        (True, r"True\."),
        (1, r"1\."),
    ],
)
def test_bad_sync_raises_naming_it(name: str, bad: Any, got: str) -> None:
    cls = name.split("-")[0]
    with pytest.raises(
        ValueError, match=rf"^{cls}\(\): `sync` must be one of 'local' \| 'global'; got {got}"
    ):
        CLASSES[name](sync=bad)


@pytest.mark.parametrize("name", CLASSES)
def test_sync_is_keyword_only_with_default_local(name: str) -> None:
    weighting = CLASSES[name]()
    assert weighting.sync == "local"
    assert "sync" not in repr(weighting)
    glob = CLASSES[name](sync="global")
    assert glob.sync == "global"
    assert repr(glob).endswith(", sync='global')")
    # The option is configuration, not state: the state_dicts have the same keys.
    assert weighting.state_dict().keys() == glob.state_dict().keys()
    if hasattr(glob, "syncs"):
        assert not glob.syncs()  # no process group


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.trunk = nn.Linear(3, 4).to(DT)
        self.heads = nn.ModuleDict({t: nn.Linear(4, 1).to(DT) for t in TASKS})
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=DT))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = torch.tanh(self.trunk(x))
        return z, {t: h(z).squeeze(-1) for t, h in self.heads.items()}


def _steps(name: str, sync: str) -> list[torch.Tensor]:
    net = Net()
    weighting = CLASSES[name](sync=sync)
    params = [*net.parameters(), *weighting.parameters()]
    out = []
    for step in range(3):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(6, 3, generator=g, dtype=DT)
        z, preds = net(x)
        losses = {t: ((preds[t] - x[:, k]) ** 2).mean() + 0.1 for k, t in enumerate(TASKS)}
        if name == "DynamicWeightAverage":
            weighting(losses).backward()
            weighting.epoch_end()
            out.append(torch.tensor(list(weighting.current_weights().values())))
        elif name == "MGDA-UB":
            weighting.backward(losses, representation=z)
        else:
            weighting.backward(losses, list(net.trunk.parameters()))
        out.extend(p.grad.clone() for p in params)
        with torch.no_grad():
            for p in params:
                p -= 0.1 * p.grad
                p.grad = None
    return out


@pytest.mark.parametrize("name", CLASSES)
def test_global_without_a_process_group_is_exactly_local(name: str) -> None:
    local, glob = _steps(name, "local"), _steps(name, "global")
    assert len(local) == len(glob)
    for a, b in zip(local, glob):
        assert torch.equal(a, b)
