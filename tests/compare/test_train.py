"""One training run of ``losslab compare``: models, task adapters and ``train_run``.

The datasets here are tiny, seeded and built in the test (a few dozen examples per split) so
every task trains in well under a second; ``losslab.compare.datasets`` is tested apart.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from losslab.compare import tasks as T
from losslab.compare import train as train_module
from losslab.compare._types import EpochLog, RunResult, Split, TaskData
from losslab.compare.models import MLP, SmallUNet, make_model
from losslab.compare.tasks import (
    ADAPTERS,
    Batch,
    fill_data_options,
    get_adapter,
    loss_output,
    metric_higher_is_better,
    prepare_loss,
    validate_spec,
)
from losslab.compare.train import train_run
from losslab.compose import LossOutput


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """Tiny models run fastest on one thread (and the test machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _split(task: str, n: int, g: torch.Generator) -> Split:
    if task == "binary":  # about 25 % positives
        x = torch.randn(n, 5, generator=g)
        y = ((x[:, 0] + 0.5 * torch.randn(n, generator=g)) > 0.7).float()
        return Split(x, y)
    if task == "multiclass":
        x = torch.randn(n, 5, generator=g)
        return Split(x, x[:, :3].argmax(1))
    if task == "regression":
        x = torch.randn(n, 5, generator=g)
        return Split(x, x[:, 0] - 2 * x[:, 1] + 0.1 * torch.randn(n, generator=g))
    if task == "segmentation":
        x = torch.rand(n // 4, 1, 10, 10, generator=g)
        return Split(x, (x[:, 0] > 0.6).long() + (x[:, 0] > 0.85).long())
    if task == "ranking":  # queries of 8 items, graded relevance 0..3
        x = torch.randn(n, 4, generator=g)
        rel = (x[:, 0] + 0.3 * torch.randn(n, generator=g)).add(1.5).clamp(0, 3.99).floor().long()
        return Split(x, rel, torch.arange(n) // 8)
    # forecasting: windows of 8 -> 3 steps of a noisy sine
    t = torch.arange(n + 11, dtype=torch.float32)
    s = torch.sin(t / 3) + 0.1 * torch.randn(n + 11, generator=g)
    xs = torch.stack([s[i : i + 8] for i in range(n)])
    ys = torch.stack([s[i + 8 : i + 11] for i in range(n)])
    return Split(xs, ys)


def toy(task: str, n: int = 96, seed: int = 0) -> TaskData:
    g = torch.Generator().manual_seed(seed)
    return TaskData(
        name=f"toy-{task}",
        task=task,
        train=_split(task, n, g),
        val=_split(task, n // 2, g),
        test=_split(task, n // 2, g),
        num_classes={"multiclass": 3, "segmentation": 3}.get(task),
        extra={"window": 8, "horizon": 3, "season": 1} if task == "forecasting" else {},
    )


def binary_segmentation() -> TaskData:
    data = toy("segmentation")

    def fg(s: Split) -> Split:
        return Split(s.x, (s.y > 0).long())

    return dataclasses.replace(
        data, num_classes=2, train=fg(data.train), val=fg(data.val), test=fg(data.test)
    )


SPECS = {
    "binary": "bce(pos_weight='auto')",
    "multiclass": "ce",
    "regression": "huber",
    "segmentation": "0.5*ce + 0.5*dice",
    "ranking": "lambda_loss",
    "forecasting": "mase",
}


# ----------------------------------------------------------------------------- train_run
@pytest.mark.parametrize("task", list(SPECS))
def test_tiny_run_per_task_is_reproducible(task: str) -> None:
    data = toy(task)
    a = train_run(data, SPECS[task], 3, epochs=2, batch_size=16, lr=1e-2)
    b = train_run(data, SPECS[task], 3, epochs=2, batch_size=16, lr=1e-2)
    assert a.status == "ok" and a.diverged_epoch is None
    assert a.epochs_run == len(a.history) == 2 and 1 <= a.best_epoch <= 2
    primary = ADAPTERS[task].primary
    assert primary in a.test_metrics and all(primary in h.val for h in a.history)
    assert all(isinstance(v, float) for v in a.test_metrics.values())
    assert all("loss/total" in h.train and math.isfinite(h.train["loss/total"]) for h in a.history)
    assert a.label == SPECS[task] and a.seed == 3
    # As JSON: a NaN metric (an absent class) is equal to itself there.
    assert json.dumps(a.deterministic_dict()) == json.dumps(b.deterministic_dict())
    assert RunResult.from_dict(a.to_dict()) == a
    assert a.seconds_per_epoch > 0 and a.peak_memory_bytes >= 0


def test_another_seed_gives_other_numbers() -> None:
    data = toy("binary")
    a = train_run(data, "bce", 0, epochs=2)
    b = train_run(data, "bce", 1, epochs=2)
    assert a.history[0].train != b.history[0].train


def test_run_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    train_run(toy("multiclass"), "ce", 0, epochs=1)
    assert torch.equal(torch.get_rng_state(), state)


def test_composed_spec_logs_every_component_per_epoch() -> None:
    seen: list[EpochLog] = []
    result = train_run(
        toy("segmentation"), "0.3*ce + 0.7*dice", 0, epochs=3, batch_size=8, on_epoch=seen.append
    )
    assert result.spec == "0.3*ce + 0.7*dice(mode='multiclass')"  # mode filled from the data
    assert seen == result.history and [h.epoch for h in seen] == [1, 2, 3]
    for h in seen:
        assert set(h.train) == {"loss/total", "loss/ce", "loss/dice"}
        # The mean over batches is linear: the logged total is the weighted sum of the parts.
        assert h.train["loss/total"] == pytest.approx(
            0.3 * h.train["loss/ce"] + 0.7 * h.train["loss/dice"], rel=1e-6
        )


def test_terms_with_different_views_in_one_spec() -> None:
    # bce takes (x, y) and ce takes ([0, x], ids): the same loss value on one logit.
    result = train_run(toy("binary"), "0.5*bce + 0.5*ce", 0, epochs=2)
    for h in result.history:
        assert h.train["loss/bce"] == pytest.approx(h.train["loss/ce"], rel=1e-5)


def test_divergence_on_the_first_epoch_has_no_test_metrics() -> None:
    result = train_run(toy("binary"), "1e39*bce", 0, epochs=3)  # the weight overflows float32
    assert result.status == "diverged" and result.diverged_epoch == 1
    assert result.test_metrics == {} and result.history == []
    assert result.best_epoch == 0 and result.epochs_run == 0


def test_divergence_at_epoch_two_keeps_the_best_state(monkeypatch: pytest.MonkeyPatch) -> None:
    data = toy("binary")
    steps_per_epoch = math.ceil(len(data.train) / 32)
    calls = {"n": 0}

    def poisoned(plan: T.LossPlan, out: torch.Tensor, batch: Batch) -> LossOutput:
        calls["n"] += 1
        output = loss_output(plan, out, batch)
        if calls["n"] <= steps_per_epoch:
            return output
        nan = output.total * math.nan
        return LossOutput(nan, {k: nan for k in output.components}, dict(output.weights))

    monkeypatch.setattr(train_module, "loss_output", poisoned)
    result = train_run(data, "bce", 0, epochs=5, batch_size=32)
    assert result.status == "diverged" and result.diverged_epoch == 2
    assert result.epochs_run == 1 and result.best_epoch == 1
    assert "average_precision" in result.test_metrics
    monkeypatch.setattr(train_module, "loss_output", loss_output)
    clean = train_run(data, "bce", 0, epochs=1, batch_size=32)
    assert result.test_metrics == clean.test_metrics  # scored with epoch 1's weights


def test_non_finite_parameters_count_as_divergence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_module, "_parameters_finite", lambda model: False)
    result = train_run(toy("regression"), "mse", 0, epochs=3)
    assert result.status == "diverged" and result.diverged_epoch == 1


def test_early_stopping_on_the_primary_metric() -> None:
    # A learning rate this small leaves the validation metric where it is: no improvement.
    result = train_run(toy("regression"), "mse", 0, epochs=10, lr=1e-30, patience=2)
    assert result.epochs_run == 3 and result.best_epoch == 1
    assert result.status == "ok"
    full = train_run(toy("regression"), "mse", 0, epochs=3, lr=1e-30, patience=None)
    assert full.epochs_run == 3


@pytest.mark.parametrize(
    ("task", "spec", "match"),
    [
        (
            "binary",
            "ranknet",
            r"binary task can train \(classification losses; this one is a ranking loss\)",
        ),
        ("binary", "dice", r"this one is a segmentation loss"),
        ("regression", "smape", r"this one is a timeseries loss"),
        ("ranking", "bce", r"ranking losses; this one is a classification loss"),
        (
            "segmentation",
            "dice(mode='binary')",
            r"does not fit 3-class data: use mode='multiclass'",
        ),
        ("forecasting", "pinball(quantiles=[0.1, 0.9])", r"include 0.5"),
        ("forecasting", "gaussian_nll", r"needs a predicted variance"),
        ("regression", "msle", r"needs predictions > -1"),
        (
            "regression",
            "poisson_nll",
            r"fails on the training split: poisson_nll_loss\(\): `target`",
        ),
        ("binary", "1e-3*l2", r"at least one loss of the predictions"),
        ("binary", "bce(", r"invalid syntax"),
        ("binary", "focl", r"Did you mean 'focal'"),
        ("binary", "focal(gama=2)", r"unexpected keyword argument 'gama'"),
        ("multiclass", "class_balanced(samples_per_class=[1, 2])", r"samples_per_class"),
    ],
)
def test_a_spec_the_task_cannot_train_raises_before_training(
    monkeypatch: pytest.MonkeyPatch, task: str, spec: str, match: str
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(train_module, "_train", no_training)
    with pytest.raises(ValueError, match=match):
        train_run(toy(task), spec, 0)
    with pytest.raises(ValueError, match=match):
        validate_spec(spec, toy(task))


@pytest.mark.parametrize(
    ("option", "value", "kind"),
    [
        ("epochs", 0, ValueError),
        ("batch_size", 0, ValueError),
        ("lr", -1.0, ValueError),
        ("lr", float("nan"), ValueError),
        ("patience", 0, ValueError),
        ("epochs", 2.5, TypeError),
        ("on_epoch", 3, TypeError),
    ],
)
def test_bad_options(option: str, value: object, kind: type) -> None:
    with pytest.raises(kind, match=rf"train_run\(\): `{option}` must"):
        train_run(toy("binary"), "bce", 0, **{option: value})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- tasks
def test_fill_data_options_inserts_text_and_keeps_the_rest() -> None:
    data = toy("binary")
    n_pos = int(data.train.y.sum())
    counts = f"[{len(data.train) - n_pos}, {n_pos}]"
    assert (
        fill_data_options("class_balanced", data)[0]
        == f"class_balanced(samples_per_class={counts})"
    )
    assert fill_data_options(" 0.5 * bce + 0.5*class_balanced( base='ce', ) ", data)[0] == (
        f"0.5 * bce + 0.5*class_balanced( base='ce', samples_per_class={counts})"
    )
    given = "class_balanced(samples_per_class=[3, 1])"
    assert fill_data_options(given, data) == (given, {})
    assert fill_data_options("bce + focl", data) == ("bce + focl", {})  # left for parse
    assert fill_data_options("bce(", data) == ("bce(", {})
    seg = toy("segmentation")
    assert fill_data_options("ce + dice + bce_dice + ce_dice", seg)[0] == (
        "ce + dice(mode='multiclass') + bce_dice(mode='multilabel') + ce_dice"
    )
    assert fill_data_options("lovasz_softmax", binary_segmentation())[0] == (
        "lovasz_softmax(mode='binary')"
    )
    seasonal = dataclasses.replace(toy("forecasting"), extra={"season": 4})
    assert fill_data_options("mse + mase", seasonal)[0] == "mse + mase(m=4)"
    too_long = dataclasses.replace(toy("forecasting"), extra={"season": 12})  # window 8
    assert fill_data_options("mase", too_long)[0] == "mase"


def test_binary_class_id_losses_equal_their_binary_forms() -> None:
    data = toy("binary")
    x = torch.randn(len(data.train), generator=torch.Generator().manual_seed(1))
    y = data.train.y
    batch = Batch(data.train.x, y)

    def value(spec: str) -> torch.Tensor:
        return loss_output(prepare_loss(spec, data), x, batch).total

    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert torch.allclose(value("ce"), bce.mean(), rtol=1e-6)
    # Poly-1 on BCE: bce + epsilon * (1 - p_t), p_t = exp(-bce).
    assert torch.allclose(
        value("poly_ce(epsilon=0.5)"), (bce + 0.5 * -torch.expm1(-bce)).mean(), rtol=1e-6
    )
    # class_balanced over sigmoid columns [-x, x]: twice the class-weighted binary focal loss.
    plan = prepare_loss("class_balanced(base='focal', beta=0.9)", data)
    counts = torch.tensor(plan.loss.samples_per_class, dtype=torch.float64)
    assert counts.tolist() == [len(y) - y.sum().item(), y.sum().item()]
    w = (1 - 0.9) / (1 - 0.9**counts)
    w = (w * 2 / w.sum()).float()
    p = torch.sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    focal = (1 - p_t) ** 2 * bce
    expected = 2 * (w[y.long()] * focal).mean()
    assert torch.allclose(loss_output(plan, x, batch).total, expected, rtol=1e-5)


def test_ranking_batches_hold_whole_queries() -> None:
    data = toy("ranking", n=200)
    adapter = get_adapter("ranking")
    batches = adapter.train_batches(data.train, 20, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(batches).tolist()) == list(range(len(data.train)))
    group = data.train.group
    assert group is not None
    seen: set[int] = set()
    for idx in batches:
        ids = set(group[idx].tolist())
        assert not ids & seen  # a query never spans two batches
        seen |= ids
        assert len(idx) == 8 * len(ids)  # whole queries of 8 items
        assert len(idx) >= 20 or idx is batches[-1]


def test_quantile_losses_shape_the_model_and_the_metrics() -> None:
    data = toy("forecasting")
    plan = prepare_loss("0.5*mse + 0.5*pinball(quantiles=[0.1, 0.5, 0.9])", data)
    assert plan.quantiles == (0.1, 0.5, 0.9) and plan.out_features == 3
    assert make_model(data, out_features=3)(data.train.x).shape == (len(data.train), 3, 3)
    result = train_run(data, plan.spec, 0, epochs=2)
    assert {"mase", "pinball", "coverage@80"} <= set(result.test_metrics)
    reg = train_run(toy("regression"), "pinball(quantiles=[0.25, 0.5, 0.75])", 0, epochs=1)
    assert "rmse" in reg.test_metrics


def test_segmentation_binary_mode_uses_one_channel() -> None:
    data = binary_segmentation()
    assert make_model(data)(data.train.x).shape == (len(data.train), 1, 10, 10)
    for spec in ("ce", "dice", "0.5*bce + 0.5*dice", "lovasz_hinge", "class_balanced"):
        result = train_run(data, spec, 0, epochs=1)
        assert result.status == "ok" and "dice" in result.test_metrics


def test_default_specs_are_valid_for_their_tasks() -> None:
    for task, adapter in ADAPTERS.items():
        data = toy(task)
        for spec in adapter.default_specs:
            assert validate_spec(spec, data)
        assert metric_higher_is_better(adapter.primary) is adapter.higher_is_better


def test_metric_directions() -> None:
    assert metric_higher_is_better("average_precision") is True
    assert metric_higher_is_better("calibration_error") is False
    assert metric_higher_is_better("precision@10") is True
    assert metric_higher_is_better("iou_7") is True
    assert metric_higher_is_better("coverage@80") is None
    assert metric_higher_is_better("best_threshold") is None


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize(
    ("task", "shape"),
    [
        ("binary", (96,)),
        ("multiclass", (96, 3)),
        ("regression", (96,)),
        ("segmentation", (24, 3, 10, 10)),
        ("ranking", (96,)),
        ("forecasting", (96, 3)),
    ],
)
def test_model_output_shapes(task: str, shape: tuple[int, ...]) -> None:
    data = toy(task)
    assert tuple(make_model(data)(data.train.x).shape) == shape


def test_models_are_seeded_without_the_global_rng() -> None:
    data = toy("binary")
    state = torch.get_rng_state()
    a, b, c = (make_model(data, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)
    for (_, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.state_dict()["net.0.weight"], c.state_dict()["net.0.weight"])
    a.train()
    b.train()
    x = data.train.x
    assert torch.equal(a(x), b(x))  # same dropout masks
    assert not torch.equal(a(x), a.eval()(x))


def test_unet_pads_odd_sizes_and_mlp_reshapes() -> None:
    net = SmallUNet(1, 4, channels=4, seed=0)
    assert net(torch.zeros(2, 1, 13, 7)).shape == (2, 4, 13, 7)
    assert MLP(6, (5, 3), seed=0)(torch.zeros(4, 6)).shape == (4, 5, 3)
    with pytest.raises(ValueError, match=r"make_model\(\): `data.num_classes` must be an int >= 2"):
        make_model(dataclasses.replace(toy("multiclass"), num_classes=None))


def test_peak_memory_sees_a_large_allocation() -> None:
    with train_module.PeakMemory(torch.device("cpu")) as memory:
        block = torch.ones(16 * 2**20)  # 64 MiB, every page touched
        del block
    if memory._mode == "hwm":  # Linux with a resettable high-water mark
        assert memory.bytes >= 48 * 2**20
    assert memory.bytes >= 0


# ----------------------------------------------------------------------------- real data
def _embedded() -> list[str]:
    from losslab.compare.datasets import list_datasets

    return [d["name"] for d in list_datasets()]


@pytest.mark.parametrize("name", _embedded())
def test_every_embedded_dataset_trains_with_its_task_defaults(name: str) -> None:
    from losslab.compare.datasets import list_datasets, load_dataset

    if {d["name"]: d["requires"] for d in list_datasets()}[name] == "datasets":
        pytest.importorskip("statsmodels")
    data = load_dataset(name, seed=0, max_rows=80)
    adapter = get_adapter(data.task)
    for spec in adapter.default_specs:
        assert validate_spec(spec, data)
    result = train_run(data, adapter.default_specs[-1], 0, epochs=1, batch_size=32)
    assert result.status == "ok" and adapter.primary in result.test_metrics
