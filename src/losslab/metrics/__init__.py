"""Streaming metrics on torchmetrics: exact streaming factories and task metric sets."""

from losslab.metrics.from_fn import (
    BatchMeanMetric,
    FullDataMetric,
    metric_from_batch_fn,
    metric_from_fn,
)

__all__ = [
    "BatchMeanMetric",
    "FullDataMetric",
    "metric_from_batch_fn",
    "metric_from_fn",
]
