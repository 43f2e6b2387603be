"""``for_task``: one entry point per task, options checked, values as the task builders give."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import average_precision_score, mean_absolute_error, roc_auc_score
from torchmetrics import MetricCollection

from losslab.metrics import TASK_METRICS, for_task

OPTIONS = {
    "binary": {},
    "multiclass": {"num_classes": 6},
    "regression": {},
    "segmentation": {"mode": "multiclass", "num_classes": 3},
    "ranking": {"k": 5},
    "forecasting": {},
}


@pytest.mark.parametrize("task", list(TASK_METRICS))
def test_every_task_builds_a_collection(task: str) -> None:
    metrics = for_task(task, **OPTIONS[task])
    assert isinstance(metrics, MetricCollection)
    assert len(metrics) >= 1


def test_unknown_task_and_option_are_named() -> None:
    with pytest.raises(
        ValueError, match=r"`task` must be one of .*got 'segmentaton'\. Did you mean"
    ):
        for_task("segmentaton")
    with pytest.raises(
        TypeError, match=r"for_task\(\): `tresh` must be an option of binary_metrics"
    ):
        for_task("binary", tresh=0.3)


def test_binary_and_regression_values_stream_like_sklearn() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(300, generator=g), (torch.rand(300, generator=g) < 0.2).long()
    logits = logits + 1.5 * y  # informative scores
    metrics = for_task("binary")
    for lo, hi in ((0, 1), (1, 120), (120, 123), (123, 300)):
        metrics.update(logits[lo:hi], y[lo:hi])
    out = metrics.compute()
    probs = torch.sigmoid(logits).numpy()
    assert out["auroc"].item() == pytest.approx(roc_auc_score(y.numpy(), probs), abs=1e-6)
    assert out["average_precision"].item() == pytest.approx(
        average_precision_score(y.numpy(), probs), abs=1e-6
    )

    pred, target = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    reg = for_task("regression")
    reg.update(pred[:13], target[:13])
    reg.update(pred[13:], target[13:])
    assert reg.compute()["mae"].item() == pytest.approx(
        mean_absolute_error(target, pred), abs=1e-12
    )
