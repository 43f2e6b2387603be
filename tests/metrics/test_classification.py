"""binary_metrics, multiclass_metrics and BestF1 against scikit-learn on all the data.

Every value is fed in uneven batches (sizes 1, 7, 64, 3, 0, ...) and compared with
scikit-learn (or a float64 hand reference: ECE, brute-force best F1) on the whole data at
once. The distributed test (slow) runs the binary, multiclass and regression sets in ONE
spawn of two gloo processes, once with rank 1 receiving no batch and once with both sharded.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)
from torchmetrics.classification import BinaryCalibrationError

from losslab.metrics.classification import BestF1, binary_metrics, multiclass_metrics
from losslab.metrics.regression import regression_metrics
from tests._distributed import run_workers

SIZES = (1, 7, 64, 3, 0, 25, 2, 40, 11)  # uneven, with an empty batch
BINARY_KEYS = {
    "accuracy",
    "auroc",
    "average_precision",
    "balanced_accuracy",
    "best_f1",
    "best_threshold",
    "calibration_error",
    "f1",
    "mcc",
    "precision",
    "recall",
}


def batches(n: int, shift: int = 0):
    """Uneven consecutive slices covering range(n)."""
    start, i = 0, shift
    while start < n:
        size = SIZES[i % len(SIZES)]
        yield slice(start, min(start + size, n))
        start += size
        i += 1


def feed(metrics, preds, target, shift: int = 0):
    for s in batches(len(target), shift):
        metrics.update(preds[s], target[s])
    return metrics


def values(result: dict) -> dict:
    return {k: float(v) for k, v in result.items()}


def assert_close(got: dict, expected: dict, tol: float) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert abs(got[key] - value) <= tol, (key, got[key], value)


# ---- float64 references ------------------------------------------------------------------
def hand_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """L1 ECE, equal-width bins [b/B, (b+1)/B), the last closed at 1 (Guo et al. 2017)."""
    conf = conf.astype(np.float64)
    correct = correct.astype(np.float64)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf >= lo) & ((conf < hi) if b < n_bins - 1 else (conf <= 1.0))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


def brute_best_f1(scores: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """sklearn's F1 at every distinct threshold (positive iff score >= s); highest s on ties."""
    best, best_s = -1.0, None
    for s in np.unique(scores)[::-1]:  # descending: a strict > keeps the highest threshold
        f1 = f1_score(target, scores >= s, zero_division=0)
        if f1 > best:
            best, best_s = f1, s
    return best, float(best_s)


def sklearn_binary(probs: torch.Tensor, target: torch.Tensor, threshold=0.5, n_bins=15) -> dict:
    p = probs.double().numpy()
    y = target.numpy()
    pred = (p > threshold).astype(int)  # torchmetrics' strict > at the threshold
    best, best_s = brute_best_f1(p, y)
    return {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "mcc": matthews_corrcoef(y, pred),
        "auroc": roc_auc_score(y, p),
        "average_precision": average_precision_score(y, p),
        "calibration_error": hand_ece(p, y, n_bins),
        "best_f1": best,
        "best_threshold": best_s,
    }


def binary_data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Logits on a 0.1 grid: many tied scores (ROC, AP and best F1 must group them).
    logits = torch.round(torch.randn(n, generator=g) * 20) / 10
    target = (torch.rand(n, generator=g) < torch.sigmoid(logits * 0.8)).long()
    return logits, target


# ---- binary ------------------------------------------------------------------------------
def test_binary_streaming_matches_sklearn():
    logits, target = binary_data()
    got = values(feed(binary_metrics(), logits, target).compute())
    assert set(got) == BINARY_KEYS
    assert_close(got, sklearn_binary(torch.sigmoid(logits), target), 1e-6)
    one_shot = binary_metrics()
    one_shot.update(logits, target)
    assert_close(got, values(one_shot.compute()), 1e-6)


def test_binary_threshold_bins_and_prefix():
    logits, target = binary_data(seed=1)
    metrics = binary_metrics(threshold=0.3, n_bins=7, prefix="val_")
    got = values(feed(metrics, logits, target.bool()).compute())  # bool labels accepted
    expected = sklearn_binary(torch.sigmoid(logits), target, threshold=0.3, n_bins=7)
    assert_close(got, {f"val_{k}": v for k, v in expected.items()}, 1e-6)


def test_binary_logits_and_probs_agree_float64():
    logits, target = binary_data(seed=2)
    logits = logits.double() + torch.linspace(0, 1e-3, len(logits), dtype=torch.float64)
    from_logits = values(feed(binary_metrics(input="logits"), logits, target).compute())
    probs = torch.sigmoid(logits)
    from_probs = values(feed(binary_metrics(input="probs"), probs, target, shift=3).compute())
    assert from_logits == from_probs
    # torchmetrics returns its count ratios in float32, even for float64 scores.
    assert_close(from_probs, sklearn_binary(probs, target), 1e-6)


def test_half_inputs_are_upcast():
    logits, target = binary_data(n=100, seed=11)
    half = logits.half()
    got = values(feed(binary_metrics(), half, target).compute())
    assert got == values(feed(binary_metrics(), half.float(), target).compute())
    mc_logits, mc_target = multiclass_data(n=100, c=4, seed=12)
    mc_half = mc_logits.bfloat16()
    factory = lambda: multiclass_metrics(4, top_k=2, ignore_index=-100)  # noqa: E731
    got = values(feed(factory(), mc_half, mc_target).compute())
    assert got == values(feed(factory(), mc_half.float(), mc_target).compute())


def test_binary_forward_returns_batch_values_and_accumulates():
    logits, target = binary_data(n=120, seed=3)
    metrics = binary_metrics()
    first = values(metrics(logits[:50], target[:50]))
    assert_close(first, sklearn_binary(torch.sigmoid(logits[:50]), target[:50]), 1e-6)
    metrics(logits[50:], target[50:])
    assert_close(values(metrics.compute()), sklearn_binary(torch.sigmoid(logits), target), 1e-6)
    empty = metrics(logits[:0], target[:0])  # checked, skipped, NaN batch values
    assert set(empty) == BINARY_KEYS and all(math.isnan(float(v)) for v in empty.values())
    assert_close(values(metrics.compute()), sklearn_binary(torch.sigmoid(logits), target), 1e-6)


def roundtrip(factory, preds, target, cut: int):
    """Checkpoint after `cut` samples, restore into a fresh set, finish: same as uninterrupted."""
    full = factory()
    feed(full, preds, target)
    first = feed(factory(), preds[:cut], target[:cut])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = factory()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    feed(resumed, preds[cut:], target[cut:], shift=2)
    return values(full.compute()), values(resumed.compute())


def test_binary_state_dict_reset_and_empty_compute():
    logits, target = binary_data(seed=4)
    full, resumed = roundtrip(binary_metrics, logits, target, cut=77)
    assert_close(resumed, full, 1e-6)
    metrics = feed(binary_metrics(), logits, target)
    before = values(metrics.compute())
    metrics.reset()
    with pytest.warns(UserWarning):
        empty = values(metrics.compute())
    zero = {"accuracy", "precision", "recall", "f1"}  # torchmetrics' value on no data
    assert all(empty[k] == 0.0 for k in zero)
    assert all(math.isnan(empty[k]) for k in BINARY_KEYS - zero)
    assert values(feed(metrics, logits, target).compute()) == before


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_binary_degenerate_conventions():
    scores = torch.tensor([0.2, 0.7, 0.7, 0.9])
    metrics = binary_metrics(input="probs")
    metrics.update(scores, torch.zeros(4, dtype=torch.long))  # no positive label
    got = values(metrics.compute())
    assert math.isnan(got["auroc"]) and math.isnan(got["average_precision"])
    assert got["mcc"] == matthews_corrcoef([0] * 4, [0, 1, 1, 1]) == 0.0
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score([0] * 4, [0, 1, 1, 1]))
    assert got["best_f1"] == 0.0 and got["best_threshold"] == pytest.approx(0.9)
    # All correct, one class only: sklearn's MCC is 0 (torchmetrics says 1).
    metrics = binary_metrics(input="probs")
    metrics.update(torch.tensor([0.8, 0.9]), torch.tensor([1, 1]))
    got = values(metrics.compute())
    assert got["mcc"] == 0.0 and math.isnan(got["auroc"])
    assert got["best_f1"] == 1.0 and got["best_threshold"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("target", "pred"),
    [
        ([1, 1, 0], [1, 1, 1]),
        ([0, 0, 0], [1, 0, 0]),
        ([0, 1, 0, 1], [0, 1, 0, 1]),
        ([1, 0], [0, 1]),
    ],
)
def test_binary_mcc_edge_cases_match_sklearn(target, pred):
    metrics = binary_metrics(input="probs")
    metrics.update(torch.tensor(pred, dtype=torch.float32), torch.tensor(target))
    assert float(metrics.compute()["mcc"]) == pytest.approx(
        matthews_corrcoef(target, pred), abs=1e-7
    )


def test_binary_mcc_large_imbalanced_is_float64_exact():
    g = torch.Generator().manual_seed(5)
    n = 40_000
    target = (torch.rand(n, generator=g) < 0.005).long()
    flip = torch.rand(n, generator=g) < 0.3
    probs = torch.where(flip, 1 - target, target).float() * 0.8 + 0.1
    metrics = binary_metrics(input="probs")
    for part in (slice(0, 20_001), slice(20_001, 20_002), slice(20_002, None)):
        metrics.update(probs[part], target[part])
    expected = matthews_corrcoef(target.numpy(), (probs > 0.5).numpy())
    assert float(metrics.compute()["mcc"]) == pytest.approx(expected, abs=1e-7)


def test_calibration_error_puts_probability_one_in_the_last_bin():
    probs = torch.tensor([0.0, 0.25, 0.5, 0.8, 1.0, 1.0, 0.99])
    target = torch.tensor([0, 1, 0, 1, 0, 1, 1])
    metrics = binary_metrics(input="probs", n_bins=4)
    metrics.update(probs, target)
    expected = hand_ece(probs.double().numpy(), target.numpy(), 4)
    assert float(metrics.compute()["calibration_error"]) == pytest.approx(expected, abs=1e-7)
    # torchmetrics 1.9 counts 1.0 in a phantom fifth bin (issue #3510): a different value.
    raw = BinaryCalibrationError(n_bins=4)(probs, target)
    assert abs(float(raw) - expected) > 1e-3


def test_best_f1_standalone_matches_brute_force_with_ties():
    g = torch.Generator().manual_seed(6)
    scores = torch.round(torch.rand(250, generator=g, dtype=torch.float64) * 20) / 20
    target = (torch.rand(250, generator=g, dtype=torch.float64) < scores).long()
    metric = BestF1(input="probs")
    feed(metric, scores, target)
    got = metric.compute()
    best, best_s = brute_best_f1(scores.numpy(), target.numpy())
    assert float(got["best_f1"]) == pytest.approx(best, abs=1e-12)
    assert float(got["best_threshold"]) == best_s
    assert got["best_f1"].dtype == torch.float64
    # The returned threshold reproduces the maximum with `>=`.
    assert f1_score(target.numpy(), (scores >= got["best_threshold"]).numpy()) == pytest.approx(
        best
    )
    # From logits: same F1, threshold in probability space.
    logit_metric = BestF1()
    feed(logit_metric, torch.logit(scores.clamp(1e-6, 1 - 1e-6)), target)
    assert float(logit_metric.compute()["best_f1"]) == pytest.approx(best, abs=1e-12)


def test_best_f1_option_errors():
    with pytest.raises(
        ValueError, match=r"^BestF1\(\): `input` must be one of 'logits' \| 'probs'"
    ):
        BestF1(input="scores")
    with pytest.raises(TypeError, match=r"^BestF1\(\): `validate` must be a bool; got int\."):
        BestF1(validate=1)
    unchecked = BestF1(input="probs", validate=False)  # values unchecked, shapes still checked
    unchecked.update(torch.tensor([0.5, 1.5]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"same shape"):
        unchecked.update(torch.tensor([0.5]), torch.tensor([1, 0]))


def test_best_f1_state_dict_reset_and_empty():
    scores, target = binary_data(seed=7)
    metric = BestF1()
    feed(metric, scores[:100], target[:100])
    resumed = BestF1()
    resumed.load_state_dict(metric.state_dict())
    feed(metric, scores[100:], target[100:])
    feed(resumed, scores[100:], target[100:], shift=4)
    assert values(metric.compute()) == values(resumed.compute())
    metric.reset()
    with pytest.warns(UserWarning):
        assert all(math.isnan(v) for v in values(metric.compute()).values())


BINARY_ERRORS = [
    (
        torch.zeros(4, 1),
        torch.zeros(4, dtype=torch.long),
        ValueError,
        r"same shape as `preds` \(4, 1\); got \(4,\)",
    ),
    (
        torch.zeros(4),
        torch.zeros(4, 1, dtype=torch.long),
        ValueError,
        r"same shape as `preds` \(4,\); got \(4, 1\)",
    ),
    (torch.zeros(4, 2), torch.zeros(4, 2, dtype=torch.long), ValueError, r"`preds` must be 1-D"),
    (
        torch.zeros(4, dtype=torch.long),
        torch.zeros(4, dtype=torch.long),
        TypeError,
        r"`preds` must be a floating",
    ),
    (
        torch.zeros(4),
        torch.zeros(4),
        TypeError,
        r"`target` must be an integer or bool tensor of 0/1 labels; got dtype float32",
    ),
    (
        torch.zeros(4),
        torch.tensor([0, 1, 2, 1]),
        ValueError,
        r"labels in \{0, 1\}; got 1 value\(s\) outside, e\.g\. 2",
    ),
    (torch.zeros(4), torch.tensor([0, -1, 1, 1]), ValueError, r"e\.g\. -1"),
    (
        torch.tensor([0.0, float("nan"), 1.0, 2.0]),
        torch.zeros(4, dtype=torch.long),
        ValueError,
        r"no NaN",
    ),
    ([0.0, 1.0], torch.zeros(2, dtype=torch.long), TypeError, r"`preds` must be a torch.Tensor"),
]


@pytest.mark.parametrize(("preds", "target", "kind", "match"), BINARY_ERRORS)
def test_binary_update_errors(preds, target, kind, match):
    with pytest.raises(kind, match=r"^binary_metrics\.update\(\): ") as info:
        binary_metrics().update(preds, target)
    assert info.match(match)
    with pytest.raises(kind, match=r"^BestF1\.update\(\): ") as info:
        BestF1().update(preds, target)
    assert info.match(match)


def test_probs_are_checked_only_for_input_probs():
    probs = torch.tensor([0.2, 1.5, 0.4])
    target = torch.tensor([0, 1, 1])
    with pytest.raises(
        ValueError,
        match=r"probabilities in \[0, 1\]; got 1 value\(s\) outside, e\.g\. 1\.5\. Pass input=\"logits\"",
    ):
        binary_metrics(input="probs").update(probs, target)
    binary_metrics(input="logits").update(probs, target)  # any real logit is fine
    binary_metrics(input="logits").update(torch.tensor([float("inf"), -float("inf"), 0.0]), target)


@pytest.mark.parametrize(
    ("options", "kind", "match"),
    [
        (
            {"input": "prob"},
            ValueError,
            r"`input` must be one of 'logits' \| 'probs'; got 'prob'\. Did you mean 'probs'\?",
        ),
        ({"threshold": 1.5}, ValueError, r"`threshold` must be in \[0, 1\]; got 1\.5"),
        ({"threshold": "0.5"}, TypeError, r"`threshold` must be a real number"),
        ({"n_bins": 0}, ValueError, r"`n_bins` must be an int >= 1; got 0"),
        ({"n_bins": 2.0}, TypeError, r"`n_bins` must be an int >= 1; got float"),
        ({"prefix": 3}, TypeError, r"`prefix` must be a str or None"),
    ],
)
def test_binary_option_errors(options, kind, match):
    with pytest.raises(kind, match=r"binary_metrics\(\): " + match):
        binary_metrics(**options)


# ---- multiclass --------------------------------------------------------------------------
def multiclass_data(n=400, c=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 2
    logits[:, c - 1] = -20.0  # class c-1 never predicted and never a label: out of the macro mean
    target = torch.where(
        torch.rand(n, generator=g) < 0.5,
        logits[:, : c - 1].argmax(1),
        torch.randint(0, c - 1, (n,), generator=g),
    )
    target[torch.rand(n, generator=g) < 0.1] = -100
    return logits, target


def sklearn_multiclass(probs, target, top_k, n_bins=15, ignore_index=-100) -> dict:
    keep = target != ignore_index
    p = probs[keep].double().numpy()
    y = target[keep].numpy()
    pred = p.argmax(1)
    return {
        "accuracy": accuracy_score(y, pred),
        "top_k_accuracy": top_k_accuracy_score(y, p, k=top_k, labels=np.arange(p.shape[1])),
        "macro_f1": f1_score(y, pred, average="macro"),
        "calibration_error": hand_ece(p.max(1), pred == y, n_bins),
    }


def test_multiclass_streaming_matches_sklearn():
    logits, target = multiclass_data()
    metrics = multiclass_metrics(6, top_k=3, n_bins=10, ignore_index=-100)
    got = values(feed(metrics, logits, target).compute())
    expected = sklearn_multiclass(torch.softmax(logits, 1), target, 3, n_bins=10)
    assert_close(got, expected, 1e-6)
    one_shot = multiclass_metrics(6, top_k=3, n_bins=10, ignore_index=-100)
    one_shot.update(logits, target)
    assert_close(got, values(one_shot.compute()), 1e-6)


def test_multiclass_logits_and_probs_agree_and_forward():
    logits, target = multiclass_data(c=5, seed=1)
    logits = logits.double()
    probs = torch.softmax(logits, 1)
    from_logits = values(
        feed(multiclass_metrics(5, top_k=2, ignore_index=-100), logits, target).compute()
    )
    metrics = multiclass_metrics(5, top_k=2, input="probs", ignore_index=-100, prefix="train_")
    batch = values(metrics(probs[:100], target[:100]))
    expected = sklearn_multiclass(probs[:100], target[:100], 2)
    assert_close(batch, {f"train_{k}": v for k, v in expected.items()}, 1e-6)
    metrics(probs[100:], target[100:])
    from_probs = {k.removeprefix("train_"): v for k, v in values(metrics.compute()).items()}
    assert from_logits == from_probs
    assert_close(from_probs, sklearn_multiclass(probs, target, 2), 1e-6)


def test_multiclass_ignored_batch_state_dict_reset_and_empty_compute():
    logits, target = multiclass_data(seed=2)
    factory = lambda: multiclass_metrics(6, top_k=2, ignore_index=-100)  # noqa: E731
    full, resumed = roundtrip(factory, logits, target, cut=150)
    assert_close(resumed, full, 1e-6)
    metrics = factory()
    out = metrics(logits[:3], torch.full((3,), -100))  # all ignored: checked, skipped
    assert all(math.isnan(float(v)) for v in out.values())
    with pytest.warns(UserWarning):
        empty = values(metrics.compute())
    assert empty["accuracy"] == 0.0 and empty["macro_f1"] == 0.0
    assert math.isnan(empty["calibration_error"])
    before = values(feed(metrics, logits, target).compute())
    metrics.reset()
    assert values(feed(metrics, logits, target).compute()) == before


MULTICLASS_ERRORS = [
    (
        torch.zeros(4, 4),
        torch.zeros(4, dtype=torch.long),
        ValueError,
        r"`preds` must have shape \(N, C\) = \(N, 3\); got \(4, 4\)",
    ),
    (
        torch.zeros(4),
        torch.zeros(4, dtype=torch.long),
        ValueError,
        r"`preds` must have shape \(N, C\)",
    ),
    (
        torch.zeros(4, 3),
        torch.zeros(4, 1, dtype=torch.long),
        ValueError,
        r"`target` must have shape \(N,\) = \(4,\) for `preds` of shape \(4, 3\); got \(4, 1\)",
    ),
    (
        torch.zeros(4, 3),
        torch.zeros(4),
        TypeError,
        r"`target` must be an integer tensor of class ids",
    ),
    (
        torch.zeros(4, 3),
        torch.zeros(4, dtype=torch.bool),
        TypeError,
        r"`target` must be an integer tensor",
    ),
    (
        torch.zeros(4, 3, dtype=torch.long),
        torch.zeros(4, dtype=torch.long),
        TypeError,
        r"`preds` must be a floating",
    ),
    (
        torch.zeros(4, 3),
        torch.tensor([0, 1, 3, 2]),
        ValueError,
        r"class ids in \[0, 3\) or ignore_index=-100; got 1 id\(s\) outside, e\.g\. 3",
    ),
    (torch.zeros(4, 3), torch.tensor([0, 1, 255, 2]), ValueError, r"e\.g\. 255"),
    (
        torch.tensor([[0.0, float("inf"), 0.0]]),
        torch.tensor([0]),
        ValueError,
        r"finite logits \(no NaN or inf\)",
    ),
    (torch.tensor([[0.0, float("nan"), 0.0]]), torch.tensor([0]), ValueError, r"finite logits"),
]


@pytest.mark.parametrize(("preds", "target", "kind", "match"), MULTICLASS_ERRORS)
def test_multiclass_update_errors(preds, target, kind, match):
    with pytest.raises(kind, match=r"^multiclass_metrics\.update\(\): ") as info:
        multiclass_metrics(3, top_k=2, ignore_index=-100).update(preds, target)
    assert info.match(match)


def test_multiclass_probs_checked():
    with pytest.raises(
        ValueError, match=r"probabilities in \[0, 1\]; got 1 value\(s\) outside, e\.g\. -0\.1"
    ):
        multiclass_metrics(3, top_k=2, input="probs").update(
            torch.tensor([[0.5, 0.6, -0.1]]), torch.tensor([0])
        )


@pytest.mark.parametrize(
    ("args", "options", "kind", "match"),
    [
        (
            (3,),
            {},
            ValueError,
            r"`top_k` must be an int in \[1, num_classes=3\]; got 5\. top_k is never clipped",
        ),
        ((3,), {"top_k": 0}, ValueError, r"`top_k` must be an int in \[1, num_classes=3\]; got 0"),
        ((3,), {"top_k": 2.0}, TypeError, r"`top_k` must be an int"),
        ((1,), {"top_k": 1}, ValueError, r"`num_classes` must be an int >= 2; got 1"),
        ((True,), {"top_k": 1}, TypeError, r"`num_classes` must be an int >= 2"),
        ((5,), {"input": "softmax"}, ValueError, r"`input` must be one of 'logits' \| 'probs'"),
        ((5,), {"ignore_index": 1.5}, TypeError, r"`ignore_index` must be an int or None"),
        ((5,), {"n_bins": -1}, ValueError, r"`n_bins` must be an int >= 1"),
    ],
)
def test_multiclass_option_errors(args, options, kind, match):
    with pytest.raises(kind, match=r"multiclass_metrics\(\): " + match):
        multiclass_metrics(*args, **options)


# ---- distributed: binary + multiclass + regression, one spawn ---------------------------
def _ddp_data():
    logits, target = binary_data(n=160, seed=8)
    mc_logits, mc_target = multiclass_data(n=160, c=5, seed=9)
    g = torch.Generator().manual_seed(10)
    y = torch.randn(160, 3, generator=g, dtype=torch.float64)
    y_hat = y + 0.5 * torch.randn(160, 3, generator=g, dtype=torch.float64)
    return (logits, target), (mc_logits, mc_target), (y_hat, y)


def _ddp_sets():
    return (
        binary_metrics(),
        multiclass_metrics(5, top_k=2, ignore_index=-100),
        regression_metrics(),
    )


def _ddp_worker(rank: int, world: int):
    data = _ddp_data()
    results = []
    # Scenario 1: rank 0 gets every batch, rank 1 none at all (never calls update).
    sets = _ddp_sets()
    if rank == 0:
        for metrics, (preds, target) in zip(sets, data):
            feed(metrics, preds, target)
    results.append([values(m.compute()) for m in sets])
    # Scenario 2: uneven shards on both ranks (rank 1 gets the first 37 samples).
    sets = _ddp_sets()
    part = slice(0, 37) if rank == 1 else slice(37, None)
    for metrics, (preds, target) in zip(sets, data):
        feed(metrics, preds[part], target[part], shift=rank)
    results.append([values(m.compute()) for m in sets])
    # Scenario 3: no process has data: every rank computes the empty values, no hang.
    results.append([values(m.compute()) for m in _ddp_sets()])
    return results


@pytest.mark.slow
def test_distributed_idle_rank_and_shards_match_one_process():
    expected = [values(feed(m, *d).compute()) for m, d in zip(_ddp_sets(), _ddp_data())]
    tolerances = (1e-6, 1e-6, 1e-12)  # float32 sets, float64 regression
    with pytest.warns(UserWarning):  # compute before update, as in scenario 3
        empty = [values(m.compute()) for m in _ddp_sets()]
    per_rank = run_workers(2, _ddp_worker, timeout=90)
    for *scenarios, nothing in per_rank:
        for got_sets in scenarios:
            for got, exp, tol in zip(got_sets, expected, tolerances):
                assert_close(got, exp, tol)
        for got, exp in zip(nothing, empty):
            assert_close(got, exp, 0.0)
