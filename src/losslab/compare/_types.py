"""The data structures ``losslab compare`` passes between its parts.

datasets.py builds a :class:`TaskData`; train.py turns (TaskData, loss spec, seed) into a
:class:`RunResult`; runner.py collects RunResults (one file each, written atomically) and
render.py draws the report. Everything that leaves the process goes through ``to_dict`` /
``from_dict`` (plain JSON types).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from torch import Tensor

__all__ = ["TASKS", "EpochLog", "RunResult", "Split", "TaskData"]

TASKS = ("binary", "multiclass", "regression", "segmentation", "ranking", "forecasting")


@dataclass(frozen=True)
class Split:
    """One split of a dataset, as tensors ready for a model.

    x: inputs ``(N, F)`` (tabular, ranking), ``(N, 1, H, W)`` (segmentation), ``(N, W)``
    windows (forecasting). y: targets ``(N,)`` float 0/1 (binary), int64 ids (multiclass),
    float (regression), ``(N, H, W)`` int64 ids (segmentation), int64 graded relevance
    (ranking), ``(N, horizon)`` float (forecasting). group: query ids ``(N,)`` for ranking.
    """

    x: Tensor
    y: Tensor
    group: Optional[Tensor] = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class TaskData:
    name: str
    task: str  # one of TASKS
    train: Split
    val: Split
    test: Split
    num_classes: Optional[int] = None  # binary: None; multiclass / segmentation: C
    description: str = ""  # one line: what the examples and the target are
    provenance: str = ""  # where the data comes from (package, original source, derived how)
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"horizon": 6, "window": 24}

    def to_dict(self) -> dict[str, Any]:
        """Metadata only (no tensors): sizes, task, provenance."""
        return {
            "name": self.name,
            "task": self.task,
            "num_classes": self.num_classes,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "input_shape": list(self.train.x.shape[1:]),
            "description": self.description,
            "provenance": self.provenance,
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class EpochLog:
    epoch: int  # 1-based
    train: dict[
        str, float
    ]  # LossOutput.log_dict() averaged over the epoch's batches ("loss/total", "loss/<term>")
    val: dict[str, float]  # validation metrics after the epoch
    seconds: float  # wall time of the epoch's training steps


@dataclass(frozen=True)
class RunResult:
    """One (loss spec, seed) run. Timings and memory are kept apart from the numbers that
    must reproduce exactly (``deterministic_dict``)."""

    spec: str  # the canonical spec (parse(spec).to_spec())
    label: str  # the name shown in reports (the spec as the user wrote it)
    seed: int
    status: str  # "ok" | "diverged"
    test_metrics: dict[str, float]  # at the best validation epoch; empty when diverged early
    best_epoch: int
    epochs_run: int
    diverged_epoch: Optional[int] = None
    history: list[EpochLog] = field(default_factory=list)
    seconds_per_epoch: float = 0.0
    peak_memory_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunResult:
        data = dict(d)
        data["history"] = [EpochLog(**h) for h in data.get("history", [])]
        return cls(**data)

    def deterministic_dict(self) -> dict[str, Any]:
        """Everything except wall times and memory: equal across reruns with the same seed."""
        d = self.to_dict()
        d.pop("seconds_per_epoch")
        d.pop("peak_memory_bytes")
        for h in d["history"]:
            h.pop("seconds")
        return d
