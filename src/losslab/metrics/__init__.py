"""Streaming metrics on torchmetrics: exact streaming factories and task metric sets.

``for_task("binary" | "multiclass" | "regression" | "segmentation" | "ranking" |
"forecasting", **options)`` returns a ``torchmetrics.MetricCollection``; every metric streams,
resets, checkpoints (its states are persistent) and synchronizes across processes, including
a process that received no batch.
"""

from losslab.metrics.classification import BestF1, binary_metrics, multiclass_metrics
from losslab.metrics.forecasting import (
    MASE,
    SMAPE,
    WAPE,
    MeanPinballLoss,
    QuantileCoverage,
    forecasting_metrics,
)
from losslab.metrics.from_fn import (
    BatchMeanMetric,
    FullDataMetric,
    metric_from_batch_fn,
    metric_from_fn,
)
from losslab.metrics.ranking import (
    RankingMAP,
    RankingMRR,
    RankingNDCG,
    RankingPrecision,
    ranking_metrics,
)
from losslab.metrics.regression import regression_metrics
from losslab.metrics.segmentation import OverlapScores, segmentation_metrics
from losslab.metrics.tasks import TASK_METRICS, for_task

__all__ = [
    "MASE",
    "SMAPE",
    "TASK_METRICS",
    "WAPE",
    "BatchMeanMetric",
    "BestF1",
    "FullDataMetric",
    "MeanPinballLoss",
    "OverlapScores",
    "QuantileCoverage",
    "RankingMAP",
    "RankingMRR",
    "RankingNDCG",
    "RankingPrecision",
    "binary_metrics",
    "for_task",
    "forecasting_metrics",
    "metric_from_batch_fn",
    "metric_from_fn",
    "multiclass_metrics",
    "ranking_metrics",
    "regression_metrics",
    "segmentation_metrics",
]
