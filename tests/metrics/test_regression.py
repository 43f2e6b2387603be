"""regression_metrics against scikit-learn on all the data, fed in uneven batches.

References: mean_absolute_error, root_mean_squared_error, r2_score (multi-output, uniform
average), mean_absolute_percentage_error; a float64 hand MAPE for targets at zero (the
epsilon differs). The distributed check of this set runs in test_classification.py, in the
one spawn shared with the classification sets.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)
from torchmetrics.regression import R2Score

from losslab.metrics.regression import regression_metrics

SIZES = (1, 7, 64, 3, 0, 25, 2, 40, 11)
KEYS = {"mae", "mape", "r2", "rmse"}


def feed(metrics, preds, target, shift: int = 0):
    start, i = 0, shift
    while start < len(target):
        size = SIZES[i % len(SIZES)]
        metrics.update(preds[start : start + size], target[start : start + size])
        start += size
        i += 1
    return metrics


def values(result: dict) -> dict:
    return {k: float(v) for k, v in result.items()}


def sklearn_regression(preds: torch.Tensor, target: torch.Tensor) -> dict:
    p = preds.double().numpy()
    y = target.double().numpy()
    return {
        "mae": mean_absolute_error(y, p),
        "rmse": root_mean_squared_error(y, p),
        "r2": r2_score(y, p),
        "mape": mean_absolute_percentage_error(y, p),
    }


def assert_close(got: dict, expected: dict, tol: float) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert abs(got[key] - value) <= tol * max(1.0, abs(value)), (key, got[key], value)


def data(n=300, d=None, dtype=torch.float32, seed=0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if d is None else (n, d)
    target = torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 5 + offset
    preds = target + torch.randn(shape, generator=g, dtype=torch.float64) * 1.5
    return preds.to(dtype), target.to(dtype)


@pytest.mark.parametrize("d", [None, 1, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_streaming_matches_sklearn(d, dtype):
    preds, target = data(d=d, dtype=dtype, seed=d or 0)
    got = values(feed(regression_metrics(), preds, target).compute())
    # float64 states: the float32 inputs are exact in float64, so 1e-12 holds for both.
    assert_close(got, sklearn_regression(preds, target), 1e-12)
    one_shot = regression_metrics()
    one_shot.update(preds, target)
    assert_close(got, values(one_shot.compute()), 1e-12)


def test_outputs_are_float64_and_prefixed():
    preds, target = data(d=2)
    out = feed(regression_metrics(prefix="val_"), preds, target).compute()
    assert set(out) == {f"val_{k}" for k in KEYS}
    assert all(v.dtype == torch.float64 and v.dim() == 0 for v in out.values())


def test_rmse_and_r2_are_per_output_averages():
    # Outputs of very different scales: the pooled RMSE differs from the per-output mean.
    preds, target = data(d=2, dtype=torch.float64, seed=3)
    target[:, 1] *= 100
    preds[:, 1] *= 100
    got = values(feed(regression_metrics(), preds, target).compute())
    per_output = [root_mean_squared_error(target[:, j], preds[:, j]) for j in range(2)]
    assert got["rmse"] == pytest.approx(np.mean(per_output), rel=1e-12)
    assert got["rmse"] != pytest.approx(root_mean_squared_error(target.ravel(), preds.ravel()))
    r2_each = [r2_score(target[:, j], preds[:, j]) for j in range(2)]
    assert got["r2"] == pytest.approx(np.mean(r2_each), rel=1e-12)


def test_large_offset_keeps_r2_precision():
    # Targets 1e3 + N(0, 9): float32 one-pass sums (torchmetrics' default) lose R2 entirely.
    preds, target = data(n=2000, dtype=torch.float64, seed=4, offset=1e3)
    got = values(feed(regression_metrics(), preds, target).compute())
    assert got["r2"] == pytest.approx(r2_score(target, preds), abs=1e-9)


def test_mape_uses_torchmetrics_epsilon():
    target = torch.tensor([0.0, 2.0, -4.0, 1e-7, 10.0], dtype=torch.float64)
    preds = torch.tensor([0.5, 1.0, -4.0, 0.0, 12.0], dtype=torch.float64)
    metrics = regression_metrics()
    metrics.update(preds, target)
    eps = 1.17e-06
    expected = float(((preds - target).abs() / target.abs().clamp(min=eps)).mean())
    assert float(metrics.compute()["mape"]) == pytest.approx(expected, rel=1e-12)
    # Away from zero it is sklearn's MAPE.
    metrics = regression_metrics()
    metrics.update(preds[1:3], target[1:3])
    assert float(metrics.compute()["mape"]) == pytest.approx(
        mean_absolute_percentage_error(target[1:3], preds[1:3]), rel=1e-12
    )


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_r2_constant_and_small_scale_targets_follow_sklearn(scale):
    g = torch.Generator().manual_seed(5)
    target = torch.stack(
        [torch.full((50,), 0.1 * scale), torch.randn(50, generator=g) * scale], dim=1
    ).double()
    preds = target.clone()
    preds[:, 1] += torch.randn(50, generator=g).double() * 0.3 * scale
    got = values(feed(regression_metrics(), preds, target).compute())
    assert got["r2"] == pytest.approx(r2_score(target, preds), abs=1e-12)  # constant column: 1
    preds[0, 0] += scale  # constant column, imperfect fit: 0 (sklearn's force_finite)
    got = values(feed(regression_metrics(), preds, target).compute())
    assert got["r2"] == pytest.approx(r2_score(target, preds), abs=1e-12)
    if scale < 1:  # torchmetrics' absolute atol=1e-4 misreads this scale as constant
        raw = R2Score(multioutput="uniform_average")(preds.float(), target.float())
        assert abs(float(raw) - r2_score(target, preds)) > 1e-2


def test_forward_empty_batch_state_dict_reset_and_empty_compute():
    preds, target = data(d=3, seed=6)
    metrics = regression_metrics()
    batch = values(metrics(preds[:40], target[:40]))
    assert_close(batch, sklearn_regression(preds[:40], target[:40]), 1e-12)
    empty = metrics(preds[:0], target[:0])
    assert set(empty) == KEYS and all(math.isnan(float(v)) for v in empty.values())
    feed(metrics, preds[40:], target[40:])
    assert_close(values(metrics.compute()), sklearn_regression(preds, target), 1e-12)

    first = feed(regression_metrics(), preds[:90], target[:90])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = regression_metrics()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    feed(resumed, preds[90:], target[90:], shift=3)
    assert_close(values(resumed.compute()), sklearn_regression(preds, target), 1e-12)
    # The width survives a checkpoint (it is read from the restored R2 sums).
    with pytest.raises(ValueError, match=r"must have D = 3 outputs"):
        resumed.update(preds[:5, :2], target[:5, :2])

    before = values(feed(regression_metrics(), preds, target).compute())  # same stream as below
    metrics.reset()
    with pytest.warns(UserWarning):
        nothing = values(metrics.compute())
    assert set(nothing) == KEYS and all(math.isnan(v) for v in nothing.values())
    assert values(feed(metrics, preds, target).compute()) == before


def test_torchmetrics_alone_would_not_refuse_with_a_value_error():
    # What the wrapper protects against: torchmetrics raises RuntimeError on (N, 1) vs (N,)
    # and R2Score silently broadcasts a width change between updates.
    with pytest.raises(RuntimeError):
        R2Score().update(torch.zeros(4, 1), torch.ones(4))
    raw = R2Score()
    raw.update(torch.zeros(4), torch.arange(4.0))
    raw.update(torch.zeros(4, 2), torch.arange(8.0).reshape(4, 2))  # accepted


def test_r2_needs_two_samples():
    metrics = regression_metrics()
    metrics.update(torch.tensor([1.0]), torch.tensor([2.0]))
    out = values(metrics.compute())
    assert math.isnan(out["r2"]) and out["mae"] == 1.0 and out["rmse"] == 1.0


def test_width_may_change_only_after_reset():
    metrics = regression_metrics()
    metrics.update(torch.zeros(3), torch.ones(3))
    metrics.update(torch.zeros(2, 1), torch.ones(2, 1))  # (N,) and (N, 1): both D = 1
    with pytest.raises(
        ValueError,
        match=r"^regression_metrics\.update\(\): `preds` must have D = 1 outputs as in the earlier "
        r"updates \(\(N,\) counts as D = 1\); got \(2, 2\)\. Call reset\(\)",
    ):
        metrics.update(torch.zeros(2, 2), torch.ones(2, 2))
    metrics.reset()
    metrics.update(torch.zeros(2, 2), torch.ones(2, 2))


ERRORS = [
    (
        torch.zeros(4, 1),
        torch.zeros(4),
        ValueError,
        r"`target` must have the same shape as `preds` \(4, 1\); got \(4,\)\. Reshape explicitly",
    ),
    (
        torch.zeros(4),
        torch.zeros(4, 1),
        ValueError,
        r"`target` must have the same shape as `preds` \(4,\); got \(4, 1\)",
    ),
    (
        torch.zeros(4, 2),
        torch.zeros(2, 4),
        ValueError,
        r"same shape as `preds` \(4, 2\); got \(2, 4\)",
    ),
    (
        torch.zeros(4, 2, 2),
        torch.zeros(4, 2, 2),
        ValueError,
        r"`preds` must have shape \(N,\) or \(N, D\), D >= 1; got \(4, 2, 2\)",
    ),
    (
        torch.zeros(()),
        torch.zeros(()),
        ValueError,
        r"`preds` must have shape \(N,\) or \(N, D\), D >= 1; got \(\)",
    ),
    (
        torch.zeros(4, dtype=torch.long),
        torch.zeros(4),
        TypeError,
        r"`preds` must be a floating-point tensor; got dtype int64",
    ),
    (
        torch.zeros(4),
        torch.zeros(4, dtype=torch.long),
        TypeError,
        r"`target` must be a floating-point tensor; got dtype int64",
    ),
    (torch.zeros(4, 0), torch.zeros(4, 0), ValueError, r"D >= 1; got \(4, 0\)"),
    ([1.0, 2.0], torch.zeros(2), TypeError, r"`preds` must be a torch.Tensor; got list"),
    (torch.zeros(2), None, TypeError, r"`target` must be a torch.Tensor; got NoneType"),
]


@pytest.mark.parametrize(("preds", "target", "kind", "match"), ERRORS)
def test_update_errors(preds, target, kind, match):
    metrics = regression_metrics()
    with pytest.raises(kind, match=r"^regression_metrics\.update\(\): ") as info:
        metrics.update(preds, target)
    assert info.match(match)
    with pytest.raises(kind, match=r"^regression_metrics\.update\(\): "):
        metrics(preds, target)  # forward checks the same way


def test_prefix_error():
    with pytest.raises(
        TypeError, match=r"^regression_metrics\(\): `prefix` must be a str or None; got int\."
    ):
        regression_metrics(prefix=1)
