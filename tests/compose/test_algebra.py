"""The composition algebra: flattening, naming, routing, outputs."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn

import losslab
from losslab import LossOutput, MSELoss, WeightedSum
from losslab.losses.base import Loss


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)


def test_sum_flattens_and_names_terms() -> None:
    a, b, c = MSELoss(), MSELoss(weight=2.0), MSELoss(weight=3.0)
    total = a + b + c
    assert isinstance(total, WeightedSum)
    assert list(total.term_weights) == ["mse", "mse_2", "mse_3"]
    assert all(not isinstance(t, WeightedSum) for _, _, t in total.terms())


def test_scalar_distributes_and_divides() -> None:
    a, b = MSELoss(), MSELoss(weight=2.0)
    total = 2 * (a + 0.5 * b) / 4 - a
    assert total.terms()[0][1] == 0.5
    assert total.terms()[1][1] == 0.25
    assert total.terms()[2][1] == -1.0
    pred, target = _data()
    expected = 0.5 * a(pred, target) + 0.25 * b(pred, target) - a(pred, target)
    torch.testing.assert_close(total(pred, target), expected)
    assert isinstance(-a, WeightedSum) and (-a).terms()[0][1] == -1.0
    assert (+a) is a
    assert sum([a, b]).terms()[1][1] == 1.0


def test_total_equals_weighted_components() -> None:
    pred, target = _data(1)
    total = 0.3 * MSELoss() + 0.7 * MSELoss(weight=2.0).named("double")
    out = total.evaluate(pred, target)
    assert isinstance(out, LossOutput)
    assert set(out.components) == {"mse", "double"}
    assert out.weights == {"mse": 0.3, "double": 0.7}
    recombined = sum(out.weights[k] * out.components[k] for k in out.components)
    torch.testing.assert_close(out.total, recombined)
    torch.testing.assert_close(total(pred, target), out.total)
    logged = out.log_dict(prefix="train/")
    assert set(logged) == {"train/total", "train/mse", "train/double"}
    assert all(isinstance(v, float) for v in logged.values())
    assert logged["train/double"] == pytest.approx(float(out.components["double"]))


def test_total_backpropagates() -> None:
    pred, target = _data(2)
    pred.requires_grad_(True)
    (0.5 * MSELoss() + 0.5 * MSELoss(weight=3.0))(pred, target).backward()
    expected = 2.0 * (pred - target) * (0.5 + 1.5) / pred.numel()
    torch.testing.assert_close(pred.grad, expected.detach())


def test_single_loss_evaluate() -> None:
    pred, target = _data(3)
    out = MSELoss().evaluate(pred, target)
    assert list(out.components) == ["mse"] and out.weights == {"mse": 1.0}


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda a: a * a, TypeError, r"Loss \* Loss is not a loss"),
        (lambda a: a / a, TypeError, r"Loss / Loss is not a loss"),
        (lambda a: a / 0, ValueError, r"`divisor` must be non-zero"),
        (lambda a: a * float("inf"), ValueError, r"`factor` must be finite"),
        (lambda a: a * float("nan"), ValueError, r"`factor` must be finite"),
        (lambda a: a + 1.0, TypeError, r"unsupported operand"),
        (lambda a: 1.0 - a, TypeError, r"unsupported operand"),
        (lambda a: a * "2", TypeError, r"can't multiply|unsupported operand"),
        (lambda a: a * True, TypeError, r"unsupported operand"),
        (lambda a: a * torch.tensor(2.0), TypeError, r"unsupported operand|must be"),
    ],
)
def test_algebra_errors(make, exc, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=match):
        make(MSELoss())


def test_duplicate_explicit_names_refused() -> None:
    with pytest.raises(ValueError, match=r"term names must be unique; got 'x' twice"):
        _ = MSELoss().named("x") + MSELoss().named("x")
    with pytest.raises(ValueError, match=r"`name` must be a Python identifier"):
        MSELoss().named("not valid")


def test_keyword_routing() -> None:
    pred, target = _data(4)
    w = torch.rand(8)
    net = nn.Linear(3, 3)
    total = MSELoss() + 1e-3 * losslab.L2Penalty(net)
    out = total.evaluate(pred, target, sample_weight=w)
    torch.testing.assert_close(
        out.components["mse"], losslab.functional.mse_loss(pred, target, sample_weight=w)
    )
    torch.testing.assert_close(out.components["l2"], (net.weight**2).sum())
    with pytest.raises(TypeError, match=r"keyword `mask` is accepted by no term \(mse, l2\)"):
        total(pred, target, mask=torch.ones(8, 3, dtype=torch.bool))


def test_hyperparameter_passed_per_call_refused() -> None:
    pred, target = _data(5)
    with pytest.raises(TypeError, match=r"`weight` is set when the loss is built, not per call"):
        MSELoss()(pred, target, weight=2.0)


def test_none_reduction_shapes_must_agree() -> None:
    pred, target = _data(6)
    same = MSELoss(reduction="none") + MSELoss(reduction="none", weight=2.0)
    assert same(pred, target).shape == (8, 3)
    mixed = MSELoss(reduction="none") + MSELoss()
    with pytest.raises(
        ValueError, match=r"every term must return the same shape.*mse \(8, 3\), mse_2 \(\)"
    ):
        mixed(pred, target)
    with pytest.raises(ValueError, match=r"log_dict\(\): `total` must be a scalar"):
        same.evaluate(pred, target).log_dict()


def test_terms_are_shared_not_copied_and_serialize() -> None:
    a = MSELoss()
    total = 0.5 * a + 0.5 * MSELoss(weight=2.0)
    assert total.term_modules["mse"] is a
    pred, target = _data(7)
    want = total(pred, target)
    for other in (copy.deepcopy(total), pickle.loads(pickle.dumps(total))):
        torch.testing.assert_close(other(pred, target), want)
        assert other.to_spec() == total.to_spec()
    assert "mse: 0.5" in repr(total)


def test_weighted_sum_constructor_errors() -> None:
    with pytest.raises(ValueError, match=r"`weights` must have one entry per term"):
        WeightedSum([MSELoss()], [1.0, 2.0])
    with pytest.raises(TypeError, match=r"every term must be a losslab Loss; got MSELoss"):
        WeightedSum([nn.MSELoss()], [1.0])  # type: ignore[list-item]


def test_loss_output_validation() -> None:
    with pytest.raises(ValueError, match=r"`weights` must have the same names as `components`"):
        LossOutput(torch.tensor(1.0), {"a": torch.tensor(1.0)}, {"b": 1.0})


def test_custom_subclass_composes() -> None:
    class Tiny(Loss):
        """A user's loss written as a plain module."""

        def forward(
            self, pred: torch.Tensor, target: torch.Tensor, *, scale: float = 1.0
        ) -> torch.Tensor:
            return scale * (pred - target).abs().mean()

    pred, target = _data(8)
    total = Tiny().named("tiny") + MSELoss()
    out = total.evaluate(pred, target, scale=2.0)
    torch.testing.assert_close(out.components["tiny"], 2.0 * (pred - target).abs().mean())
    with pytest.raises(ValueError, match=r"`loss` must be a registered loss class; got Tiny"):
        total.to_spec()


def test_extra_positional_inputs_refused() -> None:
    pred, target = _data(9)
    with pytest.raises(TypeError, match=r"pass further inputs by keyword"):
        (MSELoss() + MSELoss())(pred, target, target)
