"""Loss weightings (fixed, equal, uncertainty, DWA, random): closed forms, errors, state, training."""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from losslab.multitask._base import LossWeighting
from losslab.multitask.dwa import DynamicWeightAverage
from losslab.multitask.fixed import EqualWeighting, FixedWeighting
from losslab.multitask.random_weighting import RandomLossWeighting
from losslab.multitask.uncertainty import UncertaintyWeighting

F64 = torch.float64
TASKS = ("seg", "depth", "normal")


def _losses(*values: float, dtype: torch.dtype = F64, grad: bool = False) -> dict[str, Tensor]:
    return {t: torch.tensor(v, dtype=dtype, requires_grad=grad) for t, v in zip(TASKS, values)}


def _all_weightings() -> Iterator[LossWeighting]:
    yield FixedWeighting({"seg": 1.0, "depth": 0.25, "normal": 0.0})
    yield EqualWeighting(TASKS)
    yield UncertaintyWeighting(TASKS, init=0.3)
    yield UncertaintyWeighting(TASKS, positive=True, init=-0.7)
    yield DynamicWeightAverage(TASKS, temperature=1.5)
    for dist in ("normal", "uniform", "dirichlet"):
        yield RandomLossWeighting(TASKS, distribution=dist, seed=3)


# ------------------------------------------------------------------------------ fixed, equal
def test_fixed_total_is_the_weighted_sum() -> None:
    w = FixedWeighting({"seg": 2.0, "depth": 0.5, "normal": 0.0})
    assert w.tasks == TASKS and w.key == "fixed" and w.kind == "loss"
    losses = _losses(1.5, 4.0, 7.0, grad=True)
    out = w.combine(losses)
    assert out.total.item() == 2.0 * 1.5 + 0.5 * 4.0 + 0.0 * 7.0
    assert dict(out.weights) == {"seg": 2.0, "depth": 0.5, "normal": 0.0}
    assert w.current_weights() == dict(out.weights)
    out.total.backward()
    assert [losses[t].grad.item() for t in TASKS] == [2.0, 0.5, 0.0]
    # forward == combine(...).total
    assert torch.equal(w(losses), out.total)


def test_equal_is_the_plain_sum() -> None:
    w = EqualWeighting(TASKS)
    assert w.key == "equal"
    out = w.combine(_losses(1.0, 2.0, 3.5))
    assert out.total.item() == 6.5
    assert dict(out.weights) == dict.fromkeys(TASKS, 1.0)
    assert "tasks=['seg', 'depth', 'normal']" in repr(w)


def test_fixed_weights_are_validated() -> None:
    with pytest.raises(TypeError, match=r"FixedWeighting\(\): `weights` must be a mapping"):
        FixedWeighting([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`weights\['a'\]` must be in \[0, inf\); got -1.0"):
        FixedWeighting({"a": -1.0, "b": 1.0})
    with pytest.raises(ValueError, match=r"`weights\['a'\]` must be a finite number; got nan"):
        FixedWeighting({"a": math.nan})
    with pytest.raises(ValueError, match=r"`weights\['a'\]` must be a finite number; got inf"):
        FixedWeighting({"a": math.inf})
    with pytest.raises(TypeError, match=r"`weights\['a'\]` must be a real number; got bool"):
        FixedWeighting({"a": True})
    with pytest.raises(TypeError, match=r"`weights\['a'\]` must be a real number; got Tensor"):
        FixedWeighting({"a": torch.tensor(1.0)})
    with pytest.raises(ValueError, match=r"at least one positive weight; got all zero"):
        FixedWeighting({"a": 0.0, "b": 0.0})
    with pytest.raises(ValueError, match=r"`tasks` must name at least one task"):
        FixedWeighting({})
    with pytest.raises(TypeError, match=r"`tasks` must hold non-empty strings"):
        FixedWeighting({1: 1.0})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"EqualWeighting\(\): `tasks` must hold distinct names"):
        EqualWeighting(["a", "a"])
    with pytest.raises(TypeError, match=r"EqualWeighting\(\): `tasks` must be a sequence"):
        EqualWeighting("ab")


@pytest.mark.parametrize("w", list(_all_weightings()), ids=lambda w: repr(w).split("(")[0])
def test_losses_are_checked_by_every_weighting(w: LossWeighting) -> None:
    with pytest.raises(ValueError, match=r"combine\(\): `losses` must have exactly the tasks"):
        w.combine(_losses(1.0, 2.0))
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        w.combine({**_losses(1.0, 2.0, 3.0), "extra": torch.tensor(1.0)})
    with pytest.raises(ValueError, match=r"`losses\['seg'\]` must be a scalar"):
        w.combine({**_losses(1.0, 2.0, 3.0), "seg": torch.ones(4)})
    with pytest.raises(TypeError, match=r"`losses\['depth'\]` must be a Tensor; got float"):
        w.combine({**_losses(1.0, 2.0, 3.0), "depth": 2.0})


@pytest.mark.parametrize("w", list(_all_weightings()), ids=lambda w: repr(w).split("(")[0])
def test_total_equals_weighted_components(w: LossWeighting) -> None:
    torch.manual_seed(0)
    for step in range(4):
        out = w.combine(_losses(0.5 + step, 2.0 / (step + 1), 3.0, dtype=torch.float32))
        expected = sum(out.weights[k] * out.components[k].item() for k in out.components)
        assert out.total.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
        assert set(out.components) >= set(TASKS)
        assert all(isinstance(v, float) for v in out.weights.values())
        w.epoch_end()


@pytest.mark.parametrize("w", list(_all_weightings()), ids=lambda w: repr(w).split("(")[0])
def test_dtypes_follow_the_losses(w: LossWeighting) -> None:
    assert w(_losses(1.0, 2.0, 3.0, dtype=F64)).dtype == F64
    # Half losses are weighted in (at least) their own precision and stay finite.
    total = w(_losses(1.0, 2.0, 3.0, dtype=torch.float16))
    assert total.dtype in (torch.float16, torch.float32) and torch.isfinite(total)


# ------------------------------------------------------------------------------ uncertainty
@pytest.mark.parametrize("positive", [False, True])
def test_uncertainty_total_and_gradient_by_hand(positive: bool) -> None:
    w = UncertaintyWeighting(TASKS, positive=positive).double()
    s = [0.3, -1.2, 2.0]
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor(s, dtype=F64))
    values = [0.8, 0.05, 3.0]
    losses = _losses(*values, grad=True)
    out = w.combine(losses)

    def reg(si: float) -> float:
        return math.log1p(math.exp(si)) if positive else 0.5 * si

    expected = sum(0.5 * math.exp(-si) * li + reg(si) for si, li in zip(s, values))
    assert out.total.item() == pytest.approx(expected, rel=1e-14)
    out.total.backward()
    # d total / d s_i = -1/2 e^{-s_i} L_i + (sigmoid(s_i) | 1/2); d total / d L_i = 1/2 e^{-s_i}
    for i, (si, li) in enumerate(zip(s, values)):
        dreg = 1.0 / (1.0 + math.exp(-si)) if positive else 0.5
        assert w.log_vars.grad[i].item() == pytest.approx(
            -0.5 * math.exp(-si) * li + dreg, rel=1e-13
        )
        assert losses[TASKS[i]].grad.item() == pytest.approx(0.5 * math.exp(-si), rel=1e-14)
    # Reported weights: 1/2 e^{-s_i}; the regulariser is one component with weight 1.
    for si, t in zip(s, TASKS):
        assert out.weights[t] == pytest.approx(0.5 * math.exp(-si), rel=1e-15)
    assert out.weights["uncertainty_regularizer"] == 1.0
    assert out.components["uncertainty_regularizer"].item() == pytest.approx(
        sum(reg(si) for si in s), rel=1e-14
    )
    assert w.current_weights() == {t: out.weights[t] for t in TASKS}


def test_uncertainty_defaults_and_stationary_point() -> None:
    w = UncertaintyWeighting(["a", "b"])
    assert w.key == "uncertainty" and isinstance(w.log_vars, nn.Parameter)
    assert w.log_vars.tolist() == [0.0, 0.0]
    assert w.current_weights() == {"a": 0.5, "b": 0.5}
    assert UncertaintyWeighting(["a"], init=-0.5).log_vars.tolist() == [-0.5]
    # The standard form's minimum over s is at s = log L: the gradient vanishes there.
    w = UncertaintyWeighting(["a", "b"]).double()
    with torch.no_grad():
        w.log_vars.copy_(torch.log(torch.tensor([2.5, 0.1], dtype=F64)))
    w({"a": torch.tensor(2.5, dtype=F64), "b": torch.tensor(0.1, dtype=F64)}).backward()
    assert torch.allclose(w.log_vars.grad, torch.zeros(2, dtype=F64), atol=1e-15)


def test_uncertainty_total_goes_negative_but_positive_variant_does_not() -> None:
    small = {"a": torch.tensor(1e-4, dtype=F64), "b": torch.tensor(1e-4, dtype=F64)}
    w = UncertaintyWeighting(["a", "b"]).double()
    with torch.no_grad():
        w.log_vars.fill_(math.log(1e-4))  # where training drives s for these losses
    assert w(small).item() == pytest.approx(2 * (0.5 + 0.5 * math.log(1e-4)))
    assert w(small).item() < 0
    # log(1 + sigma^2) >= 0: the positive variant is >= 0 for any s and non-negative losses,
    # and softplus keeps it finite for |s| large.
    p = UncertaintyWeighting(["a", "b"], positive=True).double()
    for value in [-80.0, -20.0, -3.0, 0.0, 3.0, 30.0, 700.0]:
        with torch.no_grad():
            p.log_vars.fill_(value)
        total = p(small)
        assert torch.isfinite(total) and total.item() >= 0.0
    with torch.no_grad():
        p.log_vars.fill_(700.0)
    p(small).backward()
    assert torch.isfinite(p.log_vars.grad).all()


def test_uncertainty_learns_weights_inverse_to_the_losses() -> None:
    w = UncertaintyWeighting(["big", "small"])
    opt = torch.optim.SGD(w.parameters(), lr=0.2)
    losses = {"big": torch.tensor(4.0), "small": torch.tensor(0.25)}
    for _ in range(300):
        opt.zero_grad()
        w(losses).backward()
        opt.step()
    # Optimum: sigma^2 = L, i.e. weight 1/2 e^{-s} = 1 / (2 L).
    got = w.current_weights()
    assert got["big"] == pytest.approx(1 / 8, rel=1e-3)
    assert got["small"] == pytest.approx(2.0, rel=1e-3)


def test_uncertainty_options_are_validated() -> None:
    with pytest.raises(
        ValueError, match=r"must not use the reserved name 'uncertainty_regularizer'"
    ):
        UncertaintyWeighting(["a", "uncertainty_regularizer"])
    with pytest.raises(ValueError, match=r"`positive` must be one of False \| True; got 1"):
        UncertaintyWeighting(["a"], positive=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`init` must be a finite number; got nan"):
        UncertaintyWeighting(["a"], init=math.nan)
    with pytest.raises(TypeError, match=r"`init` must be a real number; got str"):
        UncertaintyWeighting(["a"], init="0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"UncertaintyWeighting\(\): `tasks` must name at least"):
        UncertaintyWeighting([])


# ------------------------------------------------------------------------------ DWA
def _dwa_reference(prev: list[float], last: list[float], temperature: float) -> list[float]:
    r = [a / b for a, b in zip(last, prev)]
    e = [math.exp(x / temperature) for x in r]
    return [len(r) * x / sum(e) for x in e]


def test_dwa_weights_over_hand_made_epochs() -> None:
    dwa = DynamicWeightAverage(TASKS, temperature=2.0)
    assert dwa.key == "dwa" and dwa.current_weights() == dict.fromkeys(TASKS, 1.0)
    epochs = [
        [(4.0, 2.0, 1.0), (2.0, 2.0, 3.0)],  # averages 3, 2, 2
        [(1.0, 3.0, 2.0), (2.0, 1.0, 2.0), (3.0, 2.0, 2.0)],  # averages 2, 2, 2
        [(0.5, 2.5, 1.0), (1.5, 1.5, 1.0)],  # averages 1, 2, 1
        [(1.0, 1.0, 1.0)],  # averages 1, 1, 1
    ]
    averages = [[sum(s[i] for s in steps) / len(steps) for i in range(3)] for steps in epochs]
    expected = [
        [1.0, 1.0, 1.0],  # epoch 1
        [1.0, 1.0, 1.0],  # epoch 2
        _dwa_reference(averages[0], averages[1], 2.0),  # epoch 3 from r(2) = avg2 / avg1
        _dwa_reference(averages[1], averages[2], 2.0),  # epoch 4 from r(3) = avg3 / avg2
        _dwa_reference(averages[2], averages[3], 2.0),  # epoch 5
    ]
    assert expected[2] == pytest.approx(
        [3 * math.exp(1 / 3) / (math.exp(1 / 3) + 2 * math.exp(1 / 2)),
         3 * math.exp(1 / 2) / (math.exp(1 / 3) + 2 * math.exp(1 / 2)),
         3 * math.exp(1 / 2) / (math.exp(1 / 3) + 2 * math.exp(1 / 2))]
    )  # fmt: skip
    for e, steps in enumerate(epochs):
        for values in steps:
            out = dwa.combine(_losses(*values))
            # Constant within the epoch, applied to the total.
            assert list(out.weights.values()) == pytest.approx(expected[e], rel=1e-14)
            assert out.total.item() == pytest.approx(
                sum(w * v for w, v in zip(expected[e], values)), rel=1e-14
            )
        dwa.epoch_end()
        assert list(dwa.current_weights().values()) == pytest.approx(expected[e + 1], rel=1e-14)
        assert sum(dwa.current_weights().values()) == pytest.approx(3.0)
    assert dwa.epochs == 4
    assert dwa.loss_history.tolist() == [averages[2], averages[3]]
    assert int(dwa.step_count) == 0 and dwa.loss_sums.tolist() == [0.0, 0.0, 0.0]


def test_dwa_temperature_flattens_the_weights() -> None:
    spreads = []
    for temperature in (0.5, 2.0, 50.0):
        dwa = DynamicWeightAverage(["a", "b"], temperature=temperature)
        for a, b in [(1.0, 1.0), (0.5, 1.0)]:
            dwa({"a": torch.tensor(a), "b": torch.tensor(b)})
            dwa.epoch_end()
        w = dwa.current_weights()
        assert w["b"] > w["a"]  # b stopped improving: it gets more weight
        spreads.append(w["b"] - w["a"])
    assert spreads[0] > spreads[1] > spreads[2] > 0


def test_dwa_records_only_in_training_mode() -> None:
    dwa = DynamicWeightAverage(["a", "b"])
    dwa.eval()
    out = dwa({"a": torch.tensor(1.0), "b": torch.tensor(math.nan)})  # not recorded, not checked
    assert math.isnan(out.item())
    with pytest.raises(ValueError, match=r"epoch_end\(\): `combine` must be called \(in training"):
        dwa.epoch_end()
    dwa.train()
    dwa({"a": torch.tensor(2.0), "b": torch.tensor(4.0)})
    dwa.eval()
    dwa({"a": torch.tensor(100.0), "b": torch.tensor(100.0)})
    dwa.epoch_end()
    assert dwa.loss_history[1].tolist() == [2.0, 4.0]


def test_dwa_errors() -> None:
    dwa = DynamicWeightAverage(["a", "b"])
    with pytest.raises(
        ValueError, match=r"epoch_end\(\): `combine` must be called .* since the last"
    ):
        dwa.epoch_end()
    with pytest.raises(
        ValueError, match=r"combine\(\): `losses\['b'\]` must be finite .*; got inf"
    ):
        dwa({"a": torch.tensor(1.0), "b": torch.tensor(math.inf)})
    with pytest.raises(ValueError, match=r"`losses\['a'\]` must be finite .*; got nan"):
        dwa({"a": torch.tensor(math.nan), "b": torch.tensor(1.0)})
    assert int(dwa.step_count) == 0  # a rejected step records nothing
    dwa({"a": torch.tensor(0.0), "b": torch.tensor(1.0)})
    with pytest.raises(
        ValueError, match=r"`losses\['a'\]` must have a positive average .*; got 0.0"
    ):
        dwa.epoch_end()
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"`temperature` must be in \(0, inf\)"):
            DynamicWeightAverage(["a"], temperature=bad)
    with pytest.raises(TypeError, match=r"`temperature` must be a real number; got str"):
        DynamicWeightAverage(["a"], temperature="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`temperature` must be a finite number; got inf"):
        DynamicWeightAverage(["a"], temperature=math.inf)


def test_dwa_extreme_ratios_stay_finite() -> None:
    dwa = DynamicWeightAverage(["a", "b"], temperature=1e-3)
    for a, b in [(1e-30, 1.0), (1e30, 1.0)]:
        dwa({"a": torch.tensor(a, dtype=F64), "b": torch.tensor(b, dtype=F64)})
        dwa.epoch_end()
    w = dwa.current_weights()
    assert w == pytest.approx({"a": 2.0, "b": 0.0})


# ------------------------------------------------------------------------------ random
@pytest.mark.parametrize("distribution", ["normal", "uniform", "dirichlet"])
def test_random_weights_are_the_generator_draws(distribution: str) -> None:
    rlw = RandomLossWeighting(TASKS, distribution=distribution, seed=11)
    assert rlw.key == "random"
    assert rlw.current_weights() == pytest.approx(dict.fromkeys(TASKS, 1 / 3))
    g = torch.Generator().manual_seed(11)
    global_state = torch.get_rng_state()
    for step in range(5):
        if distribution == "normal":
            expected = torch.softmax(torch.randn(3, generator=g, dtype=F64), dim=0)
        elif distribution == "uniform":
            expected = torch.softmax(torch.rand(3, generator=g, dtype=F64), dim=0)
        else:
            e = torch.empty(3, dtype=F64).exponential_(generator=g)
            expected = e / e.sum()
        values = (1.0 + step, 2.0, 0.5)
        out = rlw.combine(_losses(*values))
        assert list(out.weights.values()) == expected.tolist()
        assert sum(out.weights.values()) == pytest.approx(1.0, rel=1e-15)
        assert min(out.weights.values()) > 0
        assert out.total.item() == pytest.approx(
            sum(w * v for w, v in zip(expected.tolist(), values)), rel=1e-14
        )
        assert rlw.current_weights() == dict(out.weights)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is untouched


def test_random_weights_average_to_one_over_t() -> None:
    rlw = RandomLossWeighting(["a", "b", "c", "d"], seed=0)
    draws = torch.tensor([rlw._draw() for _ in range(4000)], dtype=F64)
    assert torch.allclose(draws.mean(0), torch.full((4,), 0.25, dtype=F64), atol=0.01)


def test_random_eval_mode_draws_nothing() -> None:
    rlw = RandomLossWeighting(["a", "b"], seed=5)
    state = rlw._generator.get_state()
    rlw.eval()
    out = rlw.combine({"a": torch.tensor(2.0), "b": torch.tensor(4.0)})
    assert dict(out.weights) == {"a": 0.5, "b": 0.5} and out.total.item() == 3.0
    assert torch.equal(rlw._generator.get_state(), state)


def test_random_seeds_and_options() -> None:
    def draw(seed: int) -> dict[str, float]:
        return dict(RandomLossWeighting(TASKS, seed=seed).combine(_losses(1.0, 1.0, 1.0)).weights)

    assert draw(1) == draw(1) and draw(1) != draw(2)
    a, b = RandomLossWeighting(TASKS), RandomLossWeighting(TASKS)  # OS-seeded
    assert a.combine(_losses(1, 1, 1)).weights != b.combine(_losses(1, 1, 1)).weights
    with pytest.raises(ValueError, match=r"`distribution` must be one of .*Did you mean 'normal'"):
        RandomLossWeighting(TASKS, distribution="normall")
    with pytest.raises(TypeError, match=r"`seed` must be an int or None; got bool"):
        RandomLossWeighting(TASKS, seed=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`seed` must be an int or None; got float"):
        RandomLossWeighting(TASKS, seed=1.0)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"`seed` must be an int in \[0, 2\*\*64\) or None; got -1"
    ):
        RandomLossWeighting(TASKS, seed=-1)
    with pytest.raises(ValueError, match=r"`seed` must be an int in .*; got 18446744073709551616"):
        RandomLossWeighting(TASKS, seed=2**64)
    assert RandomLossWeighting(TASKS, seed=2**64 - 1).seed == 2**64 - 1
    assert "distribution='normal', seed=None" in repr(RandomLossWeighting(TASKS))


def test_random_deepcopy_continues_the_stream() -> None:
    rlw = RandomLossWeighting(TASKS, seed=4)
    rlw.combine(_losses(1, 1, 1))
    twin = copy.deepcopy(rlw)
    for _ in range(3):
        assert rlw.combine(_losses(1, 2, 3)).weights == twin.combine(_losses(1, 2, 3)).weights


# ------------------------------------------------------------------------------ state_dict
class TwoTask(nn.Module):
    """A shared trunk and two heads: a binary classifier and a regressor."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.cls = nn.Linear(8, 1)
        self.reg = nn.Linear(8, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.trunk(x)
        return {"cls": self.cls(h).squeeze(-1), "reg": self.reg(h).squeeze(-1)}


def _batch(step: int, n: int = 32) -> tuple[Tensor, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(n, 4, generator=g)
    y_cls = (x[:, 0] + 0.5 * x[:, 1] > 0).float()
    y_reg = x[:, 2] - 0.5 * x[:, 3] + 0.1 * torch.randn(n, generator=g)
    return x, {"cls": y_cls, "reg": y_reg}


def _task_losses(model: TwoTask, x: Tensor, y: dict[str, Tensor]) -> dict[str, Tensor]:
    pred = model(x)
    return {
        "cls": nn.functional.binary_cross_entropy_with_logits(pred["cls"], y["cls"]),
        "reg": nn.functional.mse_loss(pred["reg"], y["reg"]),
    }


WEIGHTINGS = {
    "fixed": lambda seed: FixedWeighting({"cls": 1.0, "reg": 0.3}),
    "equal": lambda seed: EqualWeighting(["cls", "reg"]),
    "uncertainty": lambda seed: UncertaintyWeighting(["cls", "reg"]),
    "uncertainty_positive": lambda seed: UncertaintyWeighting(["cls", "reg"], positive=True),
    "dwa": lambda seed: DynamicWeightAverage(["cls", "reg"], temperature=0.5),
    "random": lambda seed: RandomLossWeighting(["cls", "reg"], seed=seed),
    "random_dirichlet": lambda seed: RandomLossWeighting(
        ["cls", "reg"], distribution="dirichlet", seed=seed
    ),
}


def _setup(name: str, seed: int, adam: bool):
    torch.manual_seed(0)
    model = TwoTask()
    weighting = WEIGHTINGS[name](seed)
    params = [*model.parameters(), *weighting.parameters()]
    opt = torch.optim.Adam(params, lr=0.05) if adam else torch.optim.SGD(params, lr=0.1)
    return model, weighting, opt


def _step(model, weighting, opt, step: int, epoch_len: int = 3) -> Tensor:
    x, y = _batch(step)
    opt.zero_grad()
    total = weighting(_task_losses(model, x, y))
    total.backward()
    opt.step()
    if (step + 1) % epoch_len == 0:
        weighting.epoch_end()
    return total.detach()


@pytest.mark.parametrize("name", list(WEIGHTINGS))
@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adam"])
def test_state_dict_continues_bit_for_bit(name: str, adam: bool) -> None:
    k = 7  # mid-epoch for DWA (epochs of 3 steps): the running sums must travel too
    model, weighting, opt = _setup(name, seed=123, adam=adam)
    for step in range(k):
        _step(model, weighting, opt, step)
    buffer = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "w": weighting.state_dict(), "opt": opt.state_dict()}, buffer
    )
    reference = [_step(model, weighting, opt, step) for step in range(k, k + 10)]

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model2, weighting2, opt2 = _setup(name, seed=999, adam=adam)  # a different seed on purpose
    model2.load_state_dict(saved["model"])
    weighting2.load_state_dict(saved["w"])
    opt2.load_state_dict(saved["opt"])
    resumed = [_step(model2, weighting2, opt2, step) for step in range(k, k + 10)]

    for a, b in zip(reference, resumed):
        assert torch.equal(a, b)
    for p, q in zip([*model.parameters(), *weighting.parameters()],
                    [*model2.parameters(), *weighting2.parameters()]):  # fmt: skip
        assert torch.equal(p, q)
    assert weighting.current_weights() == weighting2.current_weights()


def test_state_dict_contents() -> None:
    assert set(UncertaintyWeighting(["a"]).state_dict()) == {"log_vars"}
    dwa = DynamicWeightAverage(["a", "b"])
    assert set(dwa.state_dict()) == {"loss_sums", "step_count", "loss_history", "_extra_state"}
    assert dwa.state_dict()["_extra_state"] == {"epochs": 0, "weights": [1.0, 1.0]}
    assert set(RandomLossWeighting(["a"], seed=0).state_dict()) == {"_extra_state"}
    with pytest.raises(ValueError, match=r"`weights` must hold 2 finite weights"):
        dwa.load_state_dict({**dwa.state_dict(), "_extra_state": {"epochs": 2, "weights": [1.0]}})
    rlw = RandomLossWeighting(["a", "b"], seed=0)
    state = rlw.state_dict()
    with pytest.raises(ValueError, match=r"`last` must hold 2 weights \(one per task\) or None"):
        rlw.load_state_dict({"_extra_state": {**state["_extra_state"], "last": [1.0]}})


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name", list(WEIGHTINGS))
def test_two_task_training_decreases_the_losses(name: str) -> None:
    model, weighting, opt = _setup(name, seed=0, adam=True)
    x, y = _batch(0, n=128)  # full batch: the task losses must fall

    def plain_sum() -> float:
        with torch.no_grad():
            return sum(v.item() for v in _task_losses(model, x, y).values())

    start = plain_sum()
    for step in range(30):
        opt.zero_grad()
        out = weighting.combine(_task_losses(model, x, y))
        assert torch.isfinite(out.total)
        out.total.backward()
        opt.step()
        if (step + 1) % 5 == 0:
            weighting.epoch_end()
    end = plain_sum()
    assert math.isfinite(end) and end < 0.6 * start
    assert all(math.isfinite(w) for w in weighting.current_weights().values())
