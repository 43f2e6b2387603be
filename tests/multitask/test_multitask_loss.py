"""MultiTaskLoss over dicts of predictions and targets, and make_weighting's routes."""

from __future__ import annotations

import copy
import importlib.util
import io
import math
import pickle
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import losslab
from losslab.compose.output import LossOutput
from losslab.multitask._base import GradientWeighting, Weighting, check_task_losses
from losslab.multitask._factory import KEYS, make_weighting, weighting_class
from losslab.multitask.dwa import DynamicWeightAverage
from losslab.multitask.fixed import EqualWeighting, FixedWeighting
from losslab.multitask.multitask_loss import MultiTaskLoss
from losslab.multitask.random_weighting import RandomLossWeighting
from losslab.multitask.uncertainty import UncertaintyWeighting

MY_KEYS = ("equal", "uncertainty", "dwa", "random")
GRADIENT_KEYS = ("gradnorm", "pcgrad", "mgda", "cagrad")


class PlainGradient(GradientWeighting):
    """A stand-in gradient weighting: the plain sum's gradient, scaled (test only)."""

    key = "test_plain"

    def __init__(self, tasks: Iterable[str]) -> None:
        super().__init__(tasks)
        self.seen: list[Any] = []

    def current_weights(self) -> dict[str, float]:
        return {t: 0.5 + i for i, t in enumerate(self.tasks)}

    def backward(
        self, losses: Mapping[str, Tensor], shared_parameters: Iterable[Tensor], **kwargs: Any
    ) -> LossOutput:
        checked = check_task_losses("PlainGradient.backward", self.tasks, losses)
        self.seen.append((list(shared_parameters), kwargs))
        total = sum(checked.values()) * kwargs.get("scale", 1.0)
        total.backward()
        return LossOutput(
            total.detach(),
            {k: v.detach() for k, v in checked.items()},
            dict.fromkeys(self.tasks, 1.0),
        )


def _data(seed: int = 0, n: int = 6) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    preds = {
        "cls": torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True),
        "reg": torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True),
        "aux": torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True),
    }
    targets = {
        "cls": (torch.rand(n, generator=g, dtype=torch.float64) > 0.5).double(),
        "reg": torch.randn(n, generator=g, dtype=torch.float64),
        "aux": torch.randn(n, generator=g, dtype=torch.float64),
    }
    return preds, targets


def _losses() -> dict[str, Any]:
    return {
        "cls": losslab.BCEWithLogitsLoss(),
        "reg": losslab.MSELoss(),
        "aux": lambda p, t: (p - t).abs().mean(),
    }


def _reference(preds: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    return {
        "cls": F.binary_cross_entropy_with_logits(preds["cls"], targets["cls"]),
        "reg": F.mse_loss(preds["reg"], targets["reg"]),
        "aux": (preds["aux"] - targets["aux"]).abs().mean(),
    }


# ------------------------------------------------------------------------------ task losses
def test_task_losses_match_direct_calls() -> None:
    mtl = MultiTaskLoss(_losses())
    preds, targets = _data()
    got = mtl.task_losses(preds, targets)
    assert list(got) == ["cls", "reg", "aux"] and mtl.tasks == ("cls", "reg", "aux")
    for name, value in _reference(preds, targets).items():
        assert torch.allclose(got[name], value, rtol=1e-14, atol=0)
    # Key order of the inputs does not matter.
    again = mtl.task_losses(dict(reversed(preds.items())), dict(reversed(targets.items())))
    assert all(torch.equal(got[k], again[k]) for k in got)


def test_module_losses_live_in_a_module_dict() -> None:
    mtl = MultiTaskLoss(_losses())
    assert isinstance(mtl.losses, nn.ModuleDict) and set(mtl.losses) == {"cls", "reg"}
    assert isinstance(mtl.loss_fn("cls"), losslab.BCEWithLogitsLoss)
    assert callable(mtl.loss_fn("aux")) and "aux" not in mtl.losses
    # A lambda may use any task name; a module loss needs a valid module key.
    MultiTaskLoss({"train": lambda p, t: (p - t).sum()})
    with pytest.raises(ValueError, match=r"`losses` must use task names that are valid module"):
        MultiTaskLoss({"train": losslab.MSELoss()})
    with pytest.raises(ValueError, match=r"got 'a.b'"):
        MultiTaskLoss({"a.b": losslab.MSELoss()})


def test_task_kwargs_reach_only_their_task() -> None:
    mtl = MultiTaskLoss(_losses())
    preds, targets = _data()
    sw = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    got = mtl.task_losses(preds, targets, task_kwargs={"reg": {"sample_weight": sw}})
    expected = ((preds["reg"] - targets["reg"]) ** 2 * sw).sum() / sw.sum()
    assert torch.allclose(got["reg"], expected, rtol=1e-14)
    ref = _reference(preds, targets)
    assert torch.equal(got["cls"], mtl.task_losses(preds, targets)["cls"])
    assert torch.allclose(got["aux"], ref["aux"], rtol=1e-14)
    total = mtl(preds, targets, task_kwargs={"reg": {"sample_weight": sw}})
    assert torch.allclose(total, got["cls"] + got["reg"] + got["aux"], rtol=1e-14)


def test_input_errors() -> None:
    mtl = MultiTaskLoss(_losses())
    preds, targets = _data()
    with pytest.raises(
        ValueError,
        match=r"MultiTaskLoss.task_losses\(\): `preds` must have exactly the tasks "
        r"\['cls', 'reg', 'aux'\]; got missing \['aux'\]; unexpected \['depth'\]\.",
    ):
        mtl.task_losses({"cls": preds["cls"], "reg": preds["reg"], "depth": preds["aux"]}, targets)
    with pytest.raises(
        ValueError, match=r"`targets` must have exactly the tasks .*missing \['reg'\]"
    ):
        mtl(preds, {k: v for k, v in targets.items() if k != "reg"})
    with pytest.raises(ValueError, match=r"`targets` must .*; got unexpected \['x'\]"):
        mtl.evaluate(preds, {**targets, "x": targets["reg"]})
    with pytest.raises(TypeError, match=r"`preds` must be a mapping \{task: value\}; got list"):
        mtl(list(preds.values()), targets)
    with pytest.raises(TypeError, match=r"`targets` must be a mapping .*; got Tensor"):
        mtl(preds, targets["cls"])
    with pytest.raises(
        ValueError, match=r"`task_kwargs` must name only the tasks .*unknown \['rgr'\]"
    ):
        mtl(preds, targets, task_kwargs={"rgr": {}})
    with pytest.raises(TypeError, match=r"`task_kwargs\['reg'\]` must be a mapping"):
        mtl(preds, targets, task_kwargs={"reg": 3})
    with pytest.raises(TypeError, match=r"`task_kwargs` must be a mapping"):
        mtl(preds, targets, task_kwargs=[("reg", {})])
    # Errors of a task loss itself surface unchanged.
    with pytest.raises(ValueError, match=r"mse_loss\(\): `target` must have the same shape"):
        mtl(preds, {**targets, "reg": targets["reg"][:3]})


def test_task_loss_results_are_checked() -> None:
    preds, targets = _data()
    none = MultiTaskLoss(
        {"cls": losslab.BCEWithLogitsLoss(reduction="none"), "reg": losslab.MSELoss()}
    )
    p2 = {k: preds[k] for k in ("cls", "reg")}
    t2 = {k: targets[k] for k in ("cls", "reg")}
    with pytest.raises(
        ValueError,
        match=r"`losses\['cls'\]` must return a scalar; got shape \(6,\)\. Use reduction='mean'",
    ):
        none(p2, t2)
    with pytest.raises(TypeError, match=r"`losses\['a'\]` must return a Tensor; got float"):
        MultiTaskLoss({"a": lambda p, t: 1.0})({"a": 0}, {"a": 0})
    with pytest.raises(TypeError, match=r"`losses\['a'\]` must return a floating-point scalar"):
        MultiTaskLoss({"a": lambda p, t: (p == t).sum()})(
            {"a": torch.ones(2)}, {"a": torch.ones(2)}
        )


def test_constructor_errors() -> None:
    with pytest.raises(TypeError, match=r"MultiTaskLoss\(\): `losses` must be a mapping"):
        MultiTaskLoss([losslab.MSELoss()])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`tasks` must name at least one task"):
        MultiTaskLoss({})
    with pytest.raises(TypeError, match=r"`losses\['a'\]` must be callable .*; got str"):
        MultiTaskLoss({"a": "mse"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"`tasks` must hold non-empty strings"):
        MultiTaskLoss({1: losslab.MSELoss()})  # type: ignore[dict-item]


# ------------------------------------------------------------------------------ weightings
def test_default_is_equal_weighting() -> None:
    mtl = MultiTaskLoss(_losses())
    assert isinstance(mtl.weighting, EqualWeighting)
    preds, targets = _data()
    ref = _reference(preds, targets)
    assert torch.allclose(mtl(preds, targets), sum(ref.values()), rtol=1e-14)


def test_fixed_mapping_and_evaluate() -> None:
    mtl = MultiTaskLoss(_losses(), weighting={"cls": 2.0, "reg": 0.5, "aux": 0.0})
    assert isinstance(mtl.weighting, FixedWeighting)
    preds, targets = _data()
    ref = _reference(preds, targets)
    out = mtl.evaluate(preds, targets)
    assert torch.allclose(out.total, 2.0 * ref["cls"] + 0.5 * ref["reg"], rtol=1e-14)
    assert dict(out.weights) == {"cls": 2.0, "reg": 0.5, "aux": 0.0}
    assert set(out.log_dict()) == {"loss/total", "loss/cls", "loss/reg", "loss/aux"}
    assert mtl.current_weights() == dict(out.weights)


def test_uncertainty_through_the_loss_reports_the_regularizer() -> None:
    mtl = MultiTaskLoss(_losses(), weighting=UncertaintyWeighting(["aux", "reg", "cls"], init=1.0))
    preds, targets = _data()
    ref = _reference(preds, targets)
    out = mtl.evaluate(preds, targets)
    w = 0.5 * math.exp(-1.0)
    assert out.total.item() == pytest.approx(w * sum(v.item() for v in ref.values()) + 1.5)
    assert out.weights["uncertainty_regularizer"] == 1.0
    assert out.log_dict()["loss/uncertainty_regularizer"] == pytest.approx(1.5)
    # Its parameter is a parameter of the MultiTaskLoss (so `mtl.parameters()` optimises it).
    assert any(p is mtl.weighting.log_vars for p in mtl.parameters())


def test_backward_with_a_loss_weighting() -> None:
    preds, targets = _data()
    mtl = MultiTaskLoss(_losses(), weighting={"cls": 1.0, "reg": 3.0, "aux": 0.5})
    out = mtl.backward(preds, targets)
    assert out.total.grad_fn is None and not out.total.requires_grad
    assert all(not v.requires_grad for v in out.components.values())
    grads = {k: v.grad.clone() for k, v in preds.items()}
    for v in preds.values():
        v.grad = None
    ref = _reference(preds, targets)
    (ref["cls"] + 3.0 * ref["reg"] + 0.5 * ref["aux"]).backward()
    for k, v in preds.items():
        assert torch.allclose(grads[k], v.grad, rtol=1e-14)
    assert torch.allclose(out.total, ref["cls"] + 3.0 * ref["reg"] + 0.5 * ref["aux"], rtol=1e-14)
    # shared_parameters is accepted and unused; weighting keywords are not.
    mtl.backward(preds, targets, [torch.zeros(1, requires_grad=True)])
    with pytest.raises(
        TypeError, match=r"backward\(\): `scale` must be passed only with a gradient"
    ):
        mtl.backward(preds, targets, scale=2.0)


def test_gradient_weighting_routes() -> None:
    preds, targets = _data()
    mtl = MultiTaskLoss(_losses(), weighting=PlainGradient(["cls", "reg", "aux"]))
    assert mtl.is_gradient_weighting
    with pytest.raises(
        TypeError, match=r"acts on gradients.*call `.backward\(preds, targets, shared"
    ):
        mtl(preds, targets)
    with pytest.raises(ValueError, match=r"backward\(\): `shared_parameters` must be given for"):
        mtl.backward(preds, targets)
    # evaluate: the plain sum with the reported weights, detached, gradients untouched.
    out = mtl.evaluate(preds, targets)
    ref = _reference(preds, targets)
    assert torch.allclose(
        out.total, 0.5 * ref["cls"] + 1.5 * ref["reg"] + 2.5 * ref["aux"], rtol=1e-14
    )
    assert not out.total.requires_grad and all(v.grad is None for v in preds.values())
    assert dict(out.weights) == {"cls": 0.5, "reg": 1.5, "aux": 2.5}
    # backward delegates with the shared parameters and the weighting's keywords.
    shared = [torch.zeros(2, requires_grad=True)]
    out = mtl.backward(preds, targets, shared, scale=2.0)
    params, kwargs = mtl.weighting.seen[-1]
    assert params[0] is shared[0] and kwargs == {"scale": 2.0}
    assert torch.allclose(out.total, 2.0 * sum(ref.values()), rtol=1e-14)
    assert torch.allclose(preds["reg"].grad, 2.0 * 2 * (preds["reg"] - targets["reg"]).detach() / 6)


def test_epoch_end_delegates_to_dwa() -> None:
    mtl = MultiTaskLoss(_losses(), weighting="dwa")
    assert isinstance(mtl.weighting, DynamicWeightAverage)
    for seed in range(3):
        preds, targets = _data(seed)
        mtl.backward(preds, targets)
        mtl.epoch_end()
    assert mtl.weighting.epochs == 3
    assert mtl.current_weights() != dict.fromkeys(mtl.tasks, 1.0)
    assert sum(mtl.current_weights().values()) == pytest.approx(3.0)
    MultiTaskLoss(_losses()).epoch_end()  # harmless for the others


def test_state_dict_holds_the_weighting_and_the_module_losses() -> None:
    class ScaledMSE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", torch.tensor(2.0, dtype=torch.float64))

        def forward(self, pred: Tensor, target: Tensor) -> Tensor:
            return self.scale * F.mse_loss(pred, target)

    losses = _losses()
    losses["reg"] = ScaledMSE()
    mtl = MultiTaskLoss(losses, weighting="random")
    keys = set(mtl.state_dict())
    assert "weighting._extra_state" in keys and "losses.reg.scale" in keys
    mtl_u = MultiTaskLoss(_losses(), weighting="uncertainty")
    assert "weighting.log_vars" in mtl_u.state_dict()
    # Restoring a whole MultiTaskLoss continues the random stream exactly.
    preds, targets = _data()
    mtl.evaluate(preds, targets)
    buffer = io.BytesIO()
    torch.save(mtl.state_dict(), buffer)
    buffer.seek(0)
    fresh = MultiTaskLoss(losses, weighting=RandomLossWeighting(["cls", "reg", "aux"], seed=77))
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for _ in range(3):
        assert torch.equal(mtl(preds, targets), fresh(preds, targets))


def test_repr_copy_and_pickle() -> None:
    mtl = MultiTaskLoss(_losses(), weighting="uncertainty")
    text = repr(mtl)
    assert "tasks=['cls', 'reg', 'aux'], weighting='uncertainty', function_losses=['aux']" in text
    assert (
        "UncertaintyWeighting(tasks=['cls', 'reg', 'aux']" in text and "BCEWithLogitsLoss" in text
    )
    twin = copy.deepcopy(mtl)
    preds, targets = _data()
    assert torch.equal(twin(preds, targets), mtl(preds, targets))
    modules_only = MultiTaskLoss(
        {"cls": losslab.BCEWithLogitsLoss(), "reg": losslab.MSELoss()}, weighting="random"
    )
    clone = pickle.loads(pickle.dumps(modules_only))
    assert clone.tasks == ("cls", "reg") and isinstance(clone.weighting, RandomLossWeighting)


def test_to_moves_learned_weights_and_buffers() -> None:
    mtl = MultiTaskLoss(_losses(), weighting="uncertainty").double()
    assert mtl.weighting.log_vars.dtype == torch.float64
    preds, targets = _data()
    assert mtl(preds, targets).dtype == torch.float64


def test_two_task_model_trains_with_each_loss_weighting() -> None:
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(3, 8), nn.Tanh())
    heads = nn.ModuleDict({"cls": nn.Linear(8, 1), "reg": nn.Linear(8, 1)})
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    targets = {"cls": (x[:, 0] > 0).float(), "reg": x[:, 1] * 2.0}
    init = copy.deepcopy((trunk.state_dict(), heads.state_dict()))
    for key in MY_KEYS:
        trunk.load_state_dict(init[0])
        heads.load_state_dict(init[1])
        mtl = MultiTaskLoss(
            {"cls": losslab.BCEWithLogitsLoss(), "reg": losslab.MSELoss()},
            weighting=RandomLossWeighting(["cls", "reg"], seed=0) if key == "random" else key,
        )
        opt = torch.optim.Adam(
            [*trunk.parameters(), *heads.parameters(), *mtl.parameters()], lr=0.05
        )

        def preds() -> dict[str, Tensor]:
            h = trunk(x)
            return {k: heads[k](h).squeeze(-1) for k in heads}

        with torch.no_grad():
            start = sum(mtl.task_losses(preds(), targets).values()).item()
        for step in range(30):
            opt.zero_grad()
            out = mtl.backward(preds(), targets, trunk.parameters())
            assert torch.isfinite(out.total), key
            opt.step()
            if step % 5 == 4:
                mtl.epoch_end()
        with torch.no_grad():
            end = sum(mtl.task_losses(preds(), targets).values()).item()
        assert end < 0.6 * start, key


# ------------------------------------------------------------------------------ make_weighting
@pytest.mark.parametrize("key", MY_KEYS)
def test_make_weighting_by_key(key: str) -> None:
    w = make_weighting(key, ["a", "b"])
    assert isinstance(w, Weighting) and w.key == key and w.tasks == ("a", "b")
    assert type(w) is weighting_class(key) and w.kind == "loss"


def test_keys_table_matches_the_classes() -> None:
    assert tuple(KEYS) == ("fixed", "equal", *MY_KEYS[1:], *GRADIENT_KEYS)
    for key in ("fixed", *MY_KEYS):
        assert weighting_class(key).key == key


@pytest.mark.parametrize("key", GRADIENT_KEYS)
def test_gradient_keys_when_their_module_exists(key: str) -> None:
    if importlib.util.find_spec(KEYS[key][0]) is None:
        pytest.skip(f"{KEYS[key][0]} is not written yet")
    cls = weighting_class(key)
    assert cls.key == key and cls.kind == "gradient"
    mtl = MultiTaskLoss({"a": losslab.MSELoss(), "b": losslab.MSELoss()}, weighting=key)
    assert mtl.is_gradient_weighting and type(mtl.weighting) is cls


def test_make_weighting_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"make_weighting\(\): `weighting` must be one of 'fixed' \| 'equal' .*; got "
        r"'uncertainy'\. Did you mean 'uncertainty'\?",
    ):
        make_weighting("uncertainy", ["a", "b"])
    with pytest.raises(ValueError, match=r"Did you mean 'pcgrad'\?"):
        MultiTaskLoss({"a": losslab.MSELoss()}, weighting="pcgard")
    with pytest.raises(
        ValueError,
        match=r"`weighting` must be a mapping \{task: weight\} for fixed weights, not the string "
        r"'fixed'; got 'fixed'\. Pass e\.g\. weighting=\{'a': 1\.0, 'b': 1\.0\}",
    ):
        make_weighting("fixed", ["a", "b"])
    with pytest.raises(
        ValueError,
        match=r"`weighting` must have the tasks of the losses \['a', 'b'\]; got "
        r"UncertaintyWeighting with tasks \['a', 'c'\] \(missing \['b'\]; unexpected \['c'\]\)",
    ):
        MultiTaskLoss(
            {"a": losslab.MSELoss(), "b": losslab.MSELoss()},
            weighting=UncertaintyWeighting(["a", "c"]),
        )
    with pytest.raises(
        ValueError, match=r"losses \['a', 'b'\]; got FixedWeighting with tasks \['a'\] \(missing"
    ):
        make_weighting({"a": 1.0}, ["a", "b"])
    with pytest.raises(TypeError, match=r"`weighting` must be a key .*; got int"):
        make_weighting(3, ["a"])  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=r"got the class DynamicWeightAverage\. Pass an instance: DynamicWeightAverage",
    ):
        make_weighting(DynamicWeightAverage, ["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"make_weighting\(\): `tasks` must hold distinct"):
        make_weighting("equal", ["a", "a"])


def test_make_weighting_keeps_instances_and_accepts_any_task_order() -> None:
    w = DynamicWeightAverage(["b", "a"], temperature=5.0)
    assert make_weighting(w, ["a", "b"]) is w
    fixed = make_weighting({"b": 2.0, "a": 1.0}, ("a", "b"))
    assert isinstance(fixed, FixedWeighting) and fixed.weights == {"b": 2.0, "a": 1.0}
    mtl = MultiTaskLoss({"a": losslab.MSELoss(), "b": losslab.MSELoss()}, weighting=w)
    z = torch.zeros(2)
    out = mtl.evaluate({"a": z, "b": z + 1}, {"a": z, "b": z})
    assert list(out.components) == ["b", "a"] and out.total.item() == 1.0
