"""metric_from_batch_fn / metric_from_fn: streaming == one-shot, DDP with an idle rank, checkpoints.

References are computed on ALL the data at once, with scikit-learn where it has the metric
(accuracy_score, mean_squared_error, roc_auc_score) and plain float64 torch otherwise.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from torchmetrics import MetricCollection
from torchmetrics.functional import auroc

from losslab.metrics._inputs import check_pair
from losslab.metrics.from_fn import (
    BatchMeanMetric,
    FullDataMetric,
    metric_from_batch_fn,
    metric_from_fn,
)
from tests._distributed import run_workers

SIZES = (1, 7, 64, 3, 0, 29, 2, 13)  # uneven, with an empty batch (a no-op)
IGNORE = -1.0


# ---- module-level metric functions (spawned workers and pickle need them by name) --------
def thresholded_accuracy(preds, target):
    return ((preds > 0.5) == (target > 0.5)).to(preds.dtype).mean()


def squared_error(preds, target):
    return ((preds - target) ** 2).mean()


def root_squared_error(preds, target):
    return ((preds - target) ** 2).mean().sqrt()


def masked_abs_error(preds, target):
    """Mean |preds - target| over the labels that are not IGNORE (NaN when none are)."""
    keep = target != IGNORE
    return (preds[keep] - target[keep]).abs().mean()


def n_labelled(preds, target):
    return (target != IGNORE).sum()


def binary_auroc(preds, target):  # torchmetrics' AUROC (returns float32)
    return auroc(preds, target.long(), task="binary")


def pairwise_auroc(preds, target):
    """P(score of a positive > score of a negative), ties count 1/2, in float64."""
    diff = preds[target > 0.5][:, None] - preds[target <= 0.5][None, :]
    return ((diff > 0).double() + 0.5 * (diff == 0).double()).mean()


def top1_accuracy(preds, target):  # (B, C) scores against (B,) class ids
    return (preds.argmax(dim=1) == target).to(preds.dtype).mean()


def macro_auroc(preds, target):  # (B, C) probabilities against (B,) class ids
    return auroc(preds, target, task="multiclass", num_classes=preds.shape[1], average="macro")


def per_sample_error(preds, target):  # a bug: forgets to reduce
    return (preds - target) ** 2


def returns_float(preds, target):
    return float(((preds - target) ** 2).mean())


def returns_sum_count(preds, target):
    return (preds > 0.5).sum()


# ---- data -------------------------------------------------------------------------------
def _regression(seed=0, dtype=torch.float64, sizes=SIZES):
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    target = torch.randn(n, generator=g, dtype=dtype)
    preds = target + 0.5 * torch.randn(n, generator=g, dtype=dtype) + 0.3
    return preds, target


def _binary(seed=1, dtype=torch.float64, sizes=SIZES):
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    preds = torch.rand(n, generator=g, dtype=dtype)
    target = (torch.rand(n, generator=g, dtype=dtype) < preds).to(dtype)  # informative scores
    return preds, target


def _multiclass(seed=2, sizes=SIZES, classes=4):
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    target = torch.randint(0, classes, (n,), generator=g)
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64)
    logits[torch.arange(n), target] += 1.0
    return logits.softmax(dim=1), target


def _batches(preds, target, sizes=SIZES):
    start = 0
    for size in sizes:
        yield preds[start : start + size], target[start : start + size]
        start += size


def _stream(metric, preds, target, sizes=SIZES):
    for p, t in _batches(preds, target, sizes):
        metric.update(p, t)
    return metric.compute()


def _f64(metric):
    metric.set_dtype(torch.float64)  # BatchMeanMetric returns its dtype; sums are float64 anyway
    return metric


# ---- (1) streaming == one-shot -------------------------------------------------------------
def test_thresholded_accuracy_matches_sklearn():
    preds, target = _binary()
    metric = _f64(metric_from_batch_fn(thresholded_accuracy, higher_is_better=True))
    expected = accuracy_score(target.numpy() > 0.5, preds.numpy() > 0.5)
    assert _stream(metric, preds, target).item() == pytest.approx(expected, abs=1e-12)


def test_mse_matches_sklearn_float64_and_float32():
    preds, target = _regression()
    expected = mean_squared_error(target.numpy(), preds.numpy())
    metric = _f64(metric_from_batch_fn(squared_error, higher_is_better=False))
    assert _stream(metric, preds, target).item() == pytest.approx(expected, abs=1e-12)
    metric32 = metric_from_batch_fn(squared_error)
    value = _stream(metric32, preds.float(), target.float())
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_elementwise_mean_with_count_elements():
    g = torch.Generator().manual_seed(3)
    target = torch.randn(sum(SIZES), 5, generator=g, dtype=torch.float64)
    preds = target + torch.randn(sum(SIZES), 5, generator=g, dtype=torch.float64)
    metric = _f64(metric_from_batch_fn(squared_error, count="elements"))
    expected = mean_squared_error(target.flatten().numpy(), preds.flatten().numpy())
    assert _stream(metric, preds, target).item() == pytest.approx(expected, abs=1e-12)


def test_masked_mean_with_callable_count():
    preds, target = _regression(seed=4)
    target = target.clone()
    target[::3] = IGNORE
    target[8:11] = IGNORE
    target[0] = IGNORE  # batch 1 (size 1) is all ignored: count 0, a no-op, not NaN
    metric = _f64(metric_from_batch_fn(masked_abs_error, count=n_labelled))
    keep = (target != IGNORE).numpy()
    expected = np.abs(preds.numpy()[keep] - target.numpy()[keep]).mean()
    assert _stream(metric, preds, target).item() == pytest.approx(expected, abs=1e-12)
    # counted by samples, the all-ignored batch's NaN mean gets weight 1 and propagates
    by_samples = _f64(metric_from_batch_fn(masked_abs_error))
    assert math.isnan(_stream(by_samples, preds, target).item())


def test_rmse_does_not_decompose_but_mse_does():
    preds, target = _regression(seed=5)
    true_mse = mean_squared_error(target.numpy(), preds.numpy())
    true_rmse = math.sqrt(true_mse)
    mse = _stream(_f64(metric_from_batch_fn(squared_error)), preds, target).item()
    rmse_streamed = _stream(_f64(metric_from_batch_fn(root_squared_error)), preds, target).item()
    rmse_exact = _stream(metric_from_fn(root_squared_error), preds, target).item()
    assert mse == pytest.approx(true_mse, abs=1e-12)
    assert abs(rmse_streamed - true_rmse) > 1e-3  # a size-weighted mean of batch RMSEs
    assert rmse_exact == pytest.approx(true_rmse, abs=1e-12)


def test_metric_from_fn_auroc_matches_sklearn():
    preds, target = _binary(seed=6)
    preds = (preds * 20).round() / 20  # ties, across batches too
    expected = roc_auc_score(target.numpy(), preds.numpy())
    exact = metric_from_fn(pairwise_auroc, higher_is_better=True)
    assert _stream(exact, preds, target).item() == pytest.approx(expected, abs=1e-12)
    torchmetrics_auroc = metric_from_fn(binary_auroc, higher_is_better=True)
    assert _stream(torchmetrics_auroc, preds, target).item() == pytest.approx(expected, abs=1e-6)


def test_metric_from_fn_multiclass_scores_against_labels():
    probs, labels = _multiclass()
    metric = metric_from_fn(macro_auroc, check_shapes=False, higher_is_better=True)
    expected = roc_auc_score(labels.numpy(), probs.numpy(), multi_class="ovr", average="macro")
    assert _stream(metric, probs, labels).item() == pytest.approx(expected, abs=1e-6)
    top1 = _f64(metric_from_batch_fn(top1_accuracy, check_shapes=False))
    expected_top1 = accuracy_score(labels.numpy(), probs.argmax(dim=1).numpy())
    assert _stream(top1, probs, labels).item() == pytest.approx(expected_top1, abs=1e-12)


def test_split_invariance_any_split():
    preds, target = _regression(seed=7)
    values = []
    for sizes in (SIZES, (sum(SIZES),), (60, 0, 59), (1,) * 10 + (sum(SIZES) - 10,)):
        a = _f64(metric_from_batch_fn(squared_error))
        b = metric_from_fn(root_squared_error)
        values.append((_stream(a, preds, target, sizes).item(), _stream(b, preds, target, sizes)))
    for mse, rmse in values[1:]:
        assert mse == pytest.approx(values[0][0], abs=1e-12)
        assert rmse.item() == pytest.approx(values[0][1].item(), abs=1e-12)


def test_sklearn_style_scalar_result_becomes_float64_tensor():
    preds, target = _regression(seed=8)
    metric = metric_from_fn(returns_float)
    value = _stream(metric, preds, target)
    assert isinstance(value, torch.Tensor) and value.dtype == torch.float64
    assert value.item() == pytest.approx(mean_squared_error(target.numpy(), preds.numpy()))


def test_collection_keeps_metrics_of_different_functions_apart():
    # MetricCollection merges metrics whose states agree after the first batch; both
    # accuracies are 1.0 there, and must still differ afterwards.
    def loose(p, t):
        return ((p > 0.3) == (t > 0.5)).float().mean()

    collection = MetricCollection(
        {"strict": metric_from_batch_fn(thresholded_accuracy), "loose": metric_from_batch_fn(loose)}
    )
    collection.update(torch.tensor([0.9, 0.1]), torch.tensor([1.0, 0.0]))
    collection.update(torch.tensor([0.4, 0.4]), torch.tensor([1.0, 1.0]))
    values = collection.compute()
    assert values["strict"].item() == pytest.approx(0.5)
    assert values["loose"].item() == pytest.approx(1.0)


# ---- (2) distributed: 2 processes, rank 1 receives no batch --------------------------------
def _ddp_metrics():
    return {
        "acc": metric_from_batch_fn(thresholded_accuracy),
        "mse": metric_from_batch_fn(squared_error),
        "masked": metric_from_batch_fn(masked_abs_error, count=n_labelled),
        "rmse": metric_from_fn(root_squared_error),
        "auroc": metric_from_fn(binary_auroc),
        "macro_auroc": metric_from_fn(macro_auroc, check_shapes=False),  # (B, C) f64, int64
    }


def _ddp_data():
    preds, target = _binary(seed=9)
    masked = target.clone()
    masked[::4] = IGNORE
    probs, labels = _multiclass(seed=10)
    return {
        "acc": (preds, target),
        "mse": (preds, target),
        "masked": (preds, masked),
        "rmse": (preds, target),
        "auroc": (preds, target),
        "macro_auroc": (probs, labels),
    }


def _feed(metrics, data, rank, world, shard):
    """shard="idle": rank 0 gets every batch, rank 1 none; "split": batches alternate."""
    for key, metric in metrics.items():
        preds, target = data[key]
        for i, (p, t) in enumerate(_batches(preds, target)):
            if (shard == "idle" and rank == 0) or (shard == "split" and i % world == rank):
                metric.update(p, t)


def _ddp_worker(rank, world):
    warnings.simplefilter("ignore")  # compute-before-update on the idle rank
    data = _ddp_data()
    out = {}
    for shard in ("idle", "split"):
        metrics = _ddp_metrics()
        for m in metrics.values():
            m.set_dtype(torch.float64)
        _feed(metrics, data, rank, world, shard)
        out[shard] = {k: m.compute().double() for k, m in metrics.items()}
    return out


@pytest.mark.slow
def test_ddp_two_processes_with_an_idle_rank():
    data = _ddp_data()
    single = _ddp_metrics()
    for m in single.values():
        m.set_dtype(torch.float64)
    _feed(single, data, 0, 1, "idle")
    expected = {k: m.compute().double() for k, m in single.items()}
    results = run_workers(2, _ddp_worker, timeout=90)
    for rank, by_shard in enumerate(results):
        for shard, values in by_shard.items():
            for key, value in values.items():
                assert value.item() == pytest.approx(expected[key].item(), abs=1e-12), (
                    rank,
                    shard,
                    key,
                )


def test_sync_stand_in_has_the_dtype_and_shape_of_the_other_ranks():
    # _align_for_sync with a fake two-rank gather: this rank (1) is idle, rank 0 holds
    # (N, 4) float64 scores and (N,) int64 labels.
    other_header = torch.tensor([1, 9, 1, 1, 5, 0])  # (has data, dtype code, ndim - 1) x 2
    other_shapes = torch.tensor([4])  # trailing shapes, padded to the largest ndim
    idle = FullDataMetric(macro_auroc, check_shapes=False)

    def fake_gather(tensor, group=None):
        return [other_header if tensor.numel() == 6 else other_shapes, tensor]

    idle._align_for_sync(fake_gather, None)
    assert idle.preds[0].shape == (0, 4) and idle.preds[0].dtype == torch.float64
    assert idle.target[0].shape == (0,) and idle.target[0].dtype == torch.int64
    # a rank whose trailing shape differs raises (on every rank: all see the same table)
    busy = FullDataMetric(macro_auroc, check_shapes=False)
    busy.update(torch.rand(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.long))
    with pytest.raises(
        ValueError,
        match=r"\.sync\(\): `preds` must have the same shape beyond dim 0 on every process; "
        r"got \(N, 4\) on rank 0, \(N, 3\) on rank 1\.",
    ):
        busy._align_for_sync(fake_gather, None)


# ---- (3) checkpoints, reset, empty, pickling -----------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: _f64(metric_from_batch_fn(masked_abs_error, count=n_labelled)),
        lambda: metric_from_fn(root_squared_error),
    ],
    ids=["batch_mean", "full_data"],
)
def test_state_dict_round_trip_mid_stream(make):
    preds, target = _regression(seed=11)
    target[::5] = IGNORE
    batches = list(_batches(preds, target))
    reference = make()
    for p, t in batches:
        reference.update(p, t)
    first = make()
    for p, t in batches[:4]:
        first.update(p, t)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = make()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for p, t in batches[4:]:
        resumed.update(p, t)
    assert resumed.compute().item() == pytest.approx(reference.compute().item(), abs=1e-12)
    assert set(first.state_dict()) == (
        {"total", "count"} if isinstance(first, BatchMeanMetric) else {"preds", "target"}
    )


@pytest.mark.parametrize("factory", [metric_from_batch_fn, metric_from_fn])
def test_reset_then_same_stream_gives_same_value(factory):
    preds, target = _regression(seed=12)
    metric = factory(squared_error)
    first = _stream(metric, preds, target).item()
    metric.reset()
    _stream(metric, preds[:10] * 3, target[:10], (10,))  # something else in between
    metric.reset()
    assert _stream(metric, preds, target).item() == first


@pytest.mark.parametrize("factory", [metric_from_batch_fn, metric_from_fn])
def test_compute_before_update_warns_and_is_nan(factory):
    metric = factory(squared_error)
    with pytest.warns(UserWarning, match="before the ``update``"):
        value = metric.compute()
    assert math.isnan(value.item())


@pytest.mark.parametrize("factory", [metric_from_batch_fn, metric_from_fn])
def test_empty_batch_is_a_no_op(factory):
    metric = factory(squared_error)
    metric.update(torch.zeros(0), torch.zeros(0))
    assert math.isnan(metric.compute().item())
    metric.update(torch.tensor([1.0, 3.0]), torch.zeros(2))
    metric.update(torch.zeros(0), torch.zeros(0))
    assert metric.compute().item() == pytest.approx(5.0)


@pytest.mark.parametrize("factory", [metric_from_batch_fn, metric_from_fn])
def test_pickle_and_deepcopy_mid_stream(factory):
    preds, target = _regression(seed=13)
    metric = factory(squared_error)
    metric.update(preds[:7], target[:7])
    for clone in (pickle.loads(pickle.dumps(metric)), copy.deepcopy(metric)):
        clone.update(preds[7:], target[7:])
        assert clone.compute().item() == pytest.approx(
            ((preds - target) ** 2).mean().item(), rel=1e-6
        )


def test_lambda_metrics_deepcopy_but_do_not_pickle():
    metric = metric_from_batch_fn(lambda p, t: (p - t).abs().mean())
    copy.deepcopy(metric)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(metric)


def test_sums_stay_float64_under_dtype_moves():
    metric = metric_from_batch_fn(squared_error)
    metric.update(torch.tensor([1.0, 2.0]), torch.zeros(2))
    metric.to(torch.float16)
    metric.set_dtype(torch.bfloat16)
    assert metric.total.dtype == torch.float64 and metric.count.dtype == torch.float64
    assert metric.compute().dtype == torch.bfloat16
    full = metric_from_fn(squared_error)
    full.update(torch.tensor([1.0, 2.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    full.set_dtype(torch.float16)
    assert full.preds[0].dtype == torch.float64


def test_attributes_and_repr():
    m = metric_from_batch_fn(squared_error, name="mse", higher_is_better=False, count=n_labelled)
    assert m.higher_is_better is False and m.full_state_update is False
    assert m.name == "mse"
    assert repr(m) == "BatchMeanMetric(name='mse', fn=squared_error, count='n_labelled')"
    f = metric_from_fn(binary_auroc, higher_is_better=True)
    assert f.higher_is_better is True and f.full_state_update is False
    assert repr(f) == "FullDataMetric(fn=binary_auroc)"
    assert metric_from_fn(binary_auroc).higher_is_better is None


# ---- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", [metric_from_batch_fn, metric_from_fn])
def test_shape_trap_names_both_shapes(factory):
    metric = factory(squared_error)
    with pytest.raises(ValueError, match=r"same shape as `preds` \(8, 1\); got \(8,\)"):
        metric.update(torch.zeros(8, 1), torch.zeros(8))
    with pytest.raises(ValueError, match=r"same shape as `preds` \(8,\); got \(8, 1\)"):
        metric.update(torch.zeros(8), torch.zeros(8, 1))


@pytest.mark.parametrize("factory", [metric_from_batch_fn, metric_from_fn])
def test_bad_batches(factory):
    metric = factory(squared_error)
    with pytest.raises(
        TypeError, match=r"`preds` must be a floating-point tensor; got dtype int64"
    ):
        metric.update(torch.zeros(3, dtype=torch.long), torch.zeros(3))
    with pytest.raises(TypeError, match=r"`target` must be a torch.Tensor; got list"):
        metric.update(torch.zeros(3), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"`preds` must have a batch dimension"):
        metric.update(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"\[squared_error\]\.update\(\)"):
        metric.update(torch.zeros(3), torch.zeros(2))
    loose = factory(top1_accuracy, check_shapes=False)
    with pytest.raises(ValueError, match=r"batch size of `preds` \(4\) along dim 0; got \(3,\)"):
        loose.update(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


def test_fn_returning_per_sample_values_raises():
    metric = metric_from_batch_fn(per_sample_error)
    with pytest.raises(
        ValueError,
        match=r"`per_sample_error\(preds, target\)` must return a 0-d tensor .*shape \(4,\)",
    ):
        metric.update(torch.zeros(4), torch.ones(4))
    with pytest.raises(TypeError, match=r"`returns_float\(preds, target\)` must return a 0-d"):
        metric_from_batch_fn(returns_float).update(torch.zeros(4), torch.ones(4))
    with pytest.raises(TypeError, match=r"`returns_sum_count\(preds, target\)` must return a floa"):
        metric_from_batch_fn(returns_sum_count).update(torch.zeros(4), torch.ones(4))


def test_bad_counts():
    with pytest.raises(
        ValueError, match=r"`count` must be one of 'samples' \| 'elements'.*'samples'"
    ):
        metric_from_batch_fn(squared_error, count="sample")
    with pytest.raises(TypeError, match=r"`count` must be 'samples', 'elements' or a callable"):
        metric_from_batch_fn(squared_error, count=3)
    negative = metric_from_batch_fn(squared_error, count=lambda p, t: -1)
    with pytest.raises(ValueError, match=r"must return a finite count >= 0; got -1.0"):
        negative.update(torch.zeros(2), torch.zeros(2))
    vector = metric_from_batch_fn(squared_error, count=lambda p, t: torch.ones(2))
    with pytest.raises(TypeError, match=r"must return a count.*tensor of shape \(2,\)"):
        vector.update(torch.zeros(2), torch.zeros(2))


def test_bad_options():
    for factory in (metric_from_batch_fn, metric_from_fn):
        where = factory.__name__
        with pytest.raises(TypeError, match=rf"{where}\(\): `fn` must be callable"):
            factory("mse")
        with pytest.raises(TypeError, match=r"`higher_is_better` must be True, False or None"):
            factory(squared_error, higher_is_better=1)
        with pytest.raises(TypeError, match=r"`check_shapes` must be True or False"):
            factory(squared_error, check_shapes="yes")
        with pytest.raises(TypeError, match=r"`name` must be a non-empty string"):
            factory(squared_error, name=3)


def test_full_data_trailing_shape_must_not_change():
    metric = metric_from_fn(squared_error)
    metric.update(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"`preds` must keep the shape \(N, 3\).*got \(2, 4\)"):
        metric.update(torch.zeros(2, 4), torch.zeros(2, 4))


def test_check_pair_directly():
    check_pair("M.update", torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"M.update\(\): `target` must be on the same device"):
        check_pair("M.update", torch.zeros(2), torch.zeros(2, device="meta"))
    with pytest.raises(TypeError, match=r"M.update\(\): `preds` must be a torch.Tensor"):
        check_pair("M.update", np.zeros(2), torch.zeros(2))
