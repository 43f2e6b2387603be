"""Parameter regularizers: selection, values against hand formulas, composition, errors."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import losslab
from losslab import ElasticNetPenalty, L1Penalty, L2Penalty
from losslab.functional import elastic_net_penalty, l1_penalty, l2_penalty
from losslab.losses.regularization import select_parameters


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.ln = nn.LayerNorm(4)
        self.gn = nn.GroupNorm(1, 3)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.weight.requires_grad_(False)
        self.shared = self.fc  # the same parameters twice


def _fixed_net() -> Net:
    torch.manual_seed(0)
    return Net()


def test_default_selection_excludes_bias_norm_frozen_and_duplicates() -> None:
    names = [n for n, _ in select_parameters(_fixed_net())]
    assert names == ["conv.weight", "fc.weight"]


def test_selection_options() -> None:
    net = _fixed_net()
    with_bias = [n for n, _ in select_parameters(net, exclude_bias=False)]
    assert with_bias == ["conv.weight", "conv.bias", "fc.weight", "fc.bias", "frozen.bias"]
    with_norm = [n for n, _ in select_parameters(net, exclude_norm=False)]
    assert with_norm == ["conv.weight", "bn.weight", "ln.weight", "gn.weight", "fc.weight"]
    only_fc = [n for n, _ in select_parameters(net, filter=lambda name, p: name.startswith("fc"))]
    assert only_fc == ["fc.weight"]
    bare = select_parameters([net.fc.weight, net.fc.bias])
    assert [n for n, _ in bare] == ["0", "1"]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_values_match_hand_formulas(reduction: str) -> None:
    net = _fixed_net()
    w = [net.conv.weight.detach().double(), net.fc.weight.detach().double()]
    count = sum(p.numel() for p in w)
    l1 = sum(float(p.abs().sum()) for p in w)
    l2 = sum(float((p**2).sum()) for p in w)
    scale = 1.0 / count if reduction == "mean" else 1.0
    assert L1Penalty(net, reduction=reduction)().item() == pytest.approx(l1 * scale, rel=1e-6)
    assert L2Penalty(net, reduction=reduction)().item() == pytest.approx(l2 * scale, rel=1e-6)
    en = ElasticNetPenalty(net, l1_ratio=0.3, reduction=reduction)()
    assert en.item() == pytest.approx((0.3 * l1 + 0.7 * l2) * scale, rel=1e-6)
    assert float(elastic_net_penalty(w, l1_ratio=1.0)) == pytest.approx(l1)
    assert float(elastic_net_penalty(w, l1_ratio=0.0)) == pytest.approx(l2)


def test_gradients() -> None:
    net = _fixed_net()
    L2Penalty(net)().backward()
    torch.testing.assert_close(net.fc.weight.grad, 2 * net.fc.weight.detach())
    assert net.fc.bias.grad is None and net.bn.weight.grad is None
    net.zero_grad(set_to_none=True)
    L1Penalty(net)().backward()
    torch.testing.assert_close(net.conv.weight.grad, torch.sign(net.conv.weight.detach()))


def test_l2_with_sgd_equals_weight_decay() -> None:
    """lam * L2Penalty under plain SGD is weight_decay = 2 * lam (the documented equivalence)."""
    torch.manual_seed(1)
    a = nn.Linear(3, 1, bias=False)
    b = copy.deepcopy(a)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    lam = 0.05
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, weight_decay=2 * lam)
    loss_a = losslab.MSELoss() + lam * L2Penalty(a)
    for _ in range(5):
        opt_a.zero_grad()
        loss_a(a(x), y).backward()
        opt_a.step()
        opt_b.zero_grad()
        losslab.MSELoss()(b(x), y).backward()
        opt_b.step()
    torch.testing.assert_close(a.weight, b.weight)


def test_composes_without_owning_parameters() -> None:
    net = _fixed_net()
    pen = L2Penalty(net)
    assert list(pen.parameters()) == [] and pen.state_dict() == {}
    pred, target = torch.randn(4, 2), torch.randn(4, 2)
    total = losslab.MSELoss() + 1e-2 * pen
    out = total.evaluate(pred, target)
    torch.testing.assert_close(out.components["l2"], pen())
    assert pickle.loads(pickle.dumps(pen))().item() == pytest.approx(pen().item())


def test_empty_selection_is_zero() -> None:
    pen = L2Penalty(nn.BatchNorm1d(3))
    assert pen.parameter_names == [] and float(pen()) == 0.0


def test_half_parameters_accumulate_in_float32() -> None:
    p = torch.full((1000,), 300.0, dtype=torch.float16)  # 300^2 * 1000 overflows fp16
    out = l2_penalty([p])
    assert out.dtype == torch.float32 and float(out) == pytest.approx(9e7)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: l2_penalty(nn.Linear(2, 2)),
            TypeError,
            r"l2_penalty\(\): `params` must be an iterable of tensors",
        ),
        (lambda: l2_penalty(torch.ones(2)), TypeError, r"`params` must be an iterable of tensors"),
        (
            lambda: l2_penalty([torch.ones(2, dtype=torch.long)]),
            TypeError,
            r"`params` must hold floating-point tensors",
        ),
        (
            lambda: l1_penalty([1.0]),
            TypeError,
            r"`params` must hold floating-point tensors; got item 0 of type float",
        ),
        (
            lambda: l2_penalty([torch.ones(2)], reduction="none"),
            ValueError,
            r"`reduction` must be one of 'sum' \| 'mean'; got 'none'",
        ),
        (
            lambda: elastic_net_penalty([torch.ones(2)], l1_ratio=1.5),
            ValueError,
            r"`l1_ratio` must be in \[0, 1\]; got 1.5",
        ),
        (
            lambda: L2Penalty(torch.ones(3)),
            TypeError,
            r"L2Penalty\(\): `params` must be a module or an iterable of tensors \(wrap one tensor in a list\)",
        ),
        (
            lambda: L2Penalty(3),
            TypeError,
            r"`params` must be a module or an iterable of tensors; got int",
        ),
        (
            lambda: L2Penalty([("w", 3)]),
            TypeError,
            r"`params` must hold tensors or \(name, tensor\) pairs",
        ),
        (
            lambda: L2Penalty(nn.Linear(2, 2), filter="fc"),
            TypeError,
            r"`filter` must be a callable",
        ),
        (
            lambda: L2Penalty(nn.Linear(2, 2), exclude_bias="no"),
            TypeError,
            r"`exclude_bias` and `exclude_norm` must be bools",
        ),
        (
            lambda: ElasticNetPenalty(nn.Linear(2, 2), l1_ratio=-0.1),
            ValueError,
            r"`l1_ratio` must be in \[0, 1\]",
        ),
        (
            lambda: L1Penalty(nn.Linear(2, 2), reduction="mean_"),
            ValueError,
            r"Did you mean 'mean'\?",
        ),
        (
            lambda: L2Penalty(nn.Linear(2, 2))(reduction="sum"),
            TypeError,
            r"takes no keyword arguments per call",
        ),
        (
            lambda: L2Penalty([torch.ones(2, dtype=torch.int32)]),
            TypeError,
            r"`params` must hold floating-point tensors",
        ),
    ],
)
def test_errors(call, exc, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        call()


def test_registered_and_in_spec() -> None:
    assert losslab.lookup("weight_decay") is L2Penalty
    net = nn.Linear(2, 2)
    loss = losslab.parse("mse + 0.01*elastic_net(l1_ratio=0.2, exclude_bias=False)", params=net)
    assert loss.to_spec() == "mse + 0.01*elastic_net(l1_ratio=0.2, exclude_bias=False)"
    assert loss.term_modules["elastic_net"].parameter_names == ["weight", "bias"]
