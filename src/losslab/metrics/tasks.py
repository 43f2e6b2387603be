"""``for_task``: the metric set of a task, as one ``torchmetrics.MetricCollection``."""

from __future__ import annotations

from typing import Any, Callable

from torchmetrics import MetricCollection

from losslab._checks import check_choice, fail
from losslab.metrics.classification import binary_metrics, multiclass_metrics
from losslab.metrics.forecasting import forecasting_metrics
from losslab.metrics.ranking import ranking_metrics
from losslab.metrics.regression import regression_metrics
from losslab.metrics.segmentation import segmentation_metrics

__all__ = ["TASK_METRICS", "for_task"]

TASK_METRICS: dict[str, Callable[..., MetricCollection]] = {
    "binary": binary_metrics,
    "multiclass": multiclass_metrics,
    "regression": regression_metrics,
    "segmentation": segmentation_metrics,
    "ranking": ranking_metrics,
    "forecasting": forecasting_metrics,
}


def for_task(task: str, **options: Any) -> MetricCollection:
    """The metric set of ``task``; ``options`` go to the task's builder.

    ==============  ======================================================================
    task            builder and its options
    ==============  ======================================================================
    binary          :func:`binary_metrics` (``input``, ``threshold``, ``n_bins``, ``prefix``)
    multiclass      :func:`multiclass_metrics` (``num_classes``, ``input``, ``top_k``, ...)
    regression      :func:`regression_metrics` (``prefix``)
    segmentation    :func:`segmentation_metrics` (``mode``, ``num_classes``, ``ignore_index``,
                    ``empty``, ...)
    ranking         :func:`ranking_metrics` (``k``, ``empty``, ``gain``, ``ties``, ``merge_groups``, ...)
    forecasting     :func:`forecasting_metrics` (``quantiles``, ``m``, ``time_dim``, ...)
    ==============  ======================================================================

    >>> sorted(for_task("regression").keys())
    ['mae', 'mape', 'r2', 'rmse']
    >>> for_task("regresion")
    Traceback (most recent call last):
    ...
    ValueError: for_task(): `task` must be one of 'binary' | 'multiclass' | 'regression' | 'segmentation' | 'ranking' | 'forecasting'; got 'regresion'. Did you mean 'regression'?
    """
    check_choice("for_task", "task", task, tuple(TASK_METRICS))
    builder = TASK_METRICS[task]
    try:
        return builder(**options)
    except TypeError as exc:
        # An option the builder does not take: name it and the builder's options.
        import inspect

        accepted = list(inspect.signature(builder).parameters)
        unknown = [k for k in options if k not in accepted]
        if not unknown:
            raise
        fail(
            "for_task",
            unknown[0],
            f"be an option of {builder.__name__} ({', '.join(accepted)})",
            f"{unknown[0]}={options[unknown[0]]!r} for task {task!r}",
            kind=TypeError,
            raw_got=True,
        )
        raise exc  # pragma: no cover - fail() raises
