"""Run every (loss spec, seed) pair of a comparison, resumably, and summarise the run files.

:func:`run_comparison` validates every spec first (nothing trains when one is refused), then
trains the pairs in order (loss-major: all seeds of the first spec, then the next spec). Each
finished :class:`~losslab.compare._types.RunResult` is written atomically to
``out/runs/<key>.json`` (a temporary file in the same folder, then :func:`os.replace`), where
``key`` is a hash of what determines the numbers: the dataset (metadata and tensor contents),
the canonical spec, the seed and the training options. A rerun with the same ``out`` loads
the pairs whose file exists and matches instead of training them again.

The summary (:class:`Comparison`) is computed from the run files only (the results are
re-read after all pairs finished, or round-tripped through JSON when ``out`` is ``None``), so
an interrupted run followed by a rerun gives the same report as an uninterrupted one.

Statistics, per loss and metric, over the runs with status ``"ok"`` (diverged runs are left
out of the means and counted apart: ``"2/3 ok, diverged at epoch 4"``):

* mean, and the sample standard deviation (``ddof=1``); with a single value the standard
  deviation is reported as 0.0;
* a non-finite metric value (NaN: the metric is undefined on that run) makes the loss's
  mean undefined for that metric (``None``), and the loss is then not ranked on it;
* rank among the losses by mean, in the metric's direction (``higher_is_better``), with
  ties sharing the lower rank ("1, 1, 3"); rank 1 is marked best. Metrics without a direction
  (``best_threshold``, ``coverage``) are not ranked.

Timings (seconds per epoch: mean over the runs; peak memory: max over the runs) are kept in a
separate ``"timings"`` section of :meth:`Comparison.to_dict`, with everything else that can
differ between two executions of the same comparison.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

from losslab._checks import fail
from losslab.compare._types import TASKS, EpochLog, RunResult, TaskData

__all__ = [
    "RUN_FILE_FORMAT",
    "Comparison",
    "LossSummary",
    "MetricStat",
    "RunInfo",
    "dataset_fingerprint",
    "metric_directions",
    "run_comparison",
    "run_key",
    "summarize",
]

#: Version of the run-file layout; a file of another version is not reused.
RUN_FILE_FORMAT = 1

#: Metrics where lower is better, by key (before any ``/`` suffix), used when the metric
#: collection does not say (``higher_is_better`` is ``None`` or it cannot be built).
_LOWER_IS_BETTER = frozenset(
    {"mae", "mse", "rmse", "mape", "mase", "smape", "wape", "pinball", "calibration_error", "ece"}
)
#: Metrics that are reported but not ranked: they have no better direction.
_UNRANKED = frozenset({"best_threshold", "coverage"})
#: How many metrics the report's bar charts show (the primary one first).
_MAIN_METRICS = 4

ValidateFn = Callable[[str, TaskData], Any]
TrainFn = Callable[..., RunResult]


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RunInfo:
    """Which pair is running: passed to the progress callbacks."""

    label: str
    spec: str  # canonical
    seed: int
    index: int  # 0-based position among all pairs
    total: int  # number of pairs
    key: str
    epochs: Optional[int]  # the training option, for a progress bar (None: unknown)


@dataclass(frozen=True)
class MetricStat:
    """One metric of one loss over its ok runs."""

    mean: Optional[float]  # None: no ok run, or a non-finite value in one
    std: Optional[float]  # ddof=1; 0.0 for a single value
    n: int  # ok runs that reported the metric
    rank: Optional[int]  # 1 = best; None: not ranked (no direction, or mean undefined)
    best: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "n": self.n,
            "rank": self.rank,
            "best": self.best,
        }


@dataclass(frozen=True)
class LossSummary:
    """One loss spec over its seeds."""

    label: str  # as the user wrote it
    spec: str  # canonical (with the data-filled options)
    runs: int
    ok: int
    diverged_epochs: tuple[int, ...]  # one per diverged run, in seed order
    metrics: Mapping[str, MetricStat]
    #: learning curves: ``"loss/<component>"`` -> mean over the ok runs per epoch (epoch e
    #: averages the runs that completed e epochs)
    curves: Mapping[str, tuple[float, ...]]
    seconds_per_epoch: float  # mean over the runs that completed an epoch (timing)
    peak_memory_bytes: int  # max over the runs (timing)

    @property
    def status(self) -> str:
        """``"3/3 ok"``, ``"2/3 ok, diverged at epoch 4"``, ``"1/3 ok, diverged at epochs 2, 4"``."""
        text = f"{self.ok}/{self.runs} ok"
        if self.diverged_epochs:
            word = "epoch" if len(self.diverged_epochs) == 1 else "epochs"
            text += f", diverged at {word} " + ", ".join(str(e) for e in self.diverged_epochs)
        return text

    def to_dict(self) -> dict[str, Any]:
        """Everything but the timings (see :meth:`Comparison.to_dict`)."""
        return {
            "label": self.label,
            "spec": self.spec,
            "runs": self.runs,
            "ok": self.ok,
            "diverged": len(self.diverged_epochs),
            "diverged_epochs": list(self.diverged_epochs),
            "status": self.status,
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "curves": {k: list(v) for k, v in self.curves.items()},
        }


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`run_comparison`: what the report shows, computed once."""

    dataset: Mapping[str, Any]  # TaskData.to_dict()
    task: str
    config: Mapping[str, Any]  # seeds, specs, labels, training and dataset options
    metric_keys: tuple[str, ...]
    directions: Mapping[str, Optional[bool]]  # higher_is_better per metric (None: unranked)
    primary_metric: Optional[str]
    main_metrics: tuple[str, ...]  # shown as bar charts, primary first
    losses: tuple[LossSummary, ...]
    runs: tuple[RunResult, ...]  # loss-major, seed order
    run_keys: tuple[str, ...]  # parallel to ``runs``
    resumed: int = 0  # runs loaded from files instead of trained (execution detail)
    extra_timings: Mapping[str, Any] = field(default_factory=dict)

    def loss(self, label: str) -> LossSummary:
        """The summary of the loss shown as ``label``."""
        for s in self.losses:
            if s.label == label:
                return s
        fail("Comparison.loss", "label", f"be one of {[s.label for s in self.losses]}", label)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (non-finite floats become ``None``).

        ``{dataset, task, config, losses, metrics, runs, timings}``: ``metrics`` maps each key
        to its direction and, per loss label, mean/std/n/rank/best; ``runs`` holds each run's
        :meth:`~losslab.compare._types.RunResult.deterministic_dict` plus its key; everything
        that may differ between two executions (seconds, memory, resumed runs) is under
        ``timings`` only.
        """
        metrics = {
            key: {
                "higher_is_better": self.directions.get(key),
                "primary": key == self.primary_metric,
                "per_loss": {
                    s.label: s.metrics[key].to_dict() for s in self.losses if key in s.metrics
                },
            }
            for key in self.metric_keys
        }
        runs = [dict(r.deterministic_dict(), key=k) for r, k in zip(self.runs, self.run_keys)]
        timings = {
            "per_loss": {
                s.label: {
                    "seconds_per_epoch": s.seconds_per_epoch,
                    "peak_memory_bytes": s.peak_memory_bytes,
                }
                for s in self.losses
            },
            "runs": [
                {
                    "key": k,
                    "label": r.label,
                    "seed": r.seed,
                    "seconds_per_epoch": r.seconds_per_epoch,
                    "peak_memory_bytes": r.peak_memory_bytes,
                    "epoch_seconds": [h.seconds for h in r.history],
                }
                for r, k in zip(self.runs, self.run_keys)
            ],
            "resumed_runs": self.resumed,
            **dict(self.extra_timings),
        }
        out = {
            "dataset": dict(self.dataset),
            "task": self.task,
            "config": dict(self.config),
            "primary_metric": self.primary_metric,
            "main_metrics": list(self.main_metrics),
            "losses": [s.to_dict() for s in self.losses],
            "metrics": metrics,
            "runs": runs,
            "timings": timings,
        }
        return _jsonable(out)


def _jsonable(value: Any) -> Any:
    """Plain JSON types, with NaN / inf as ``None`` (report.json is strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    try:  # numpy / torch scalars
        return _jsonable(float(value))
    except (TypeError, ValueError):
        return str(value)


# ----------------------------------------------------------------------------- statistics
def _mean_std(values: Sequence[float]) -> tuple[Optional[float], Optional[float]]:
    if not values or not all(math.isfinite(v) for v in values):
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    var = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def _ranks(
    means: Mapping[str, Optional[float]], higher: Optional[bool]
) -> dict[str, Optional[int]]:
    """Competition ranks ("1, 1, 3") by mean in the metric's direction; None when unranked."""
    if higher is None:
        return {k: None for k in means}
    defined = {k: m for k, m in means.items() if m is not None}
    ranks: dict[str, Optional[int]] = {}
    for k, m in means.items():
        if m is None:
            ranks[k] = None
        else:
            better = sum(1 for o in defined.values() if (o > m if higher else o < m))
            ranks[k] = 1 + better
    return ranks


def _curves(runs: Sequence[RunResult]) -> dict[str, tuple[float, ...]]:
    """Mean over ``runs`` per epoch of each logged training component."""
    keys: list[str] = []
    for r in runs:
        for h in r.history:
            for k in h.train:
                if k not in keys:
                    keys.append(k)
    out: dict[str, tuple[float, ...]] = {}
    for k in keys:
        length = max((len(r.history) for r in runs), default=0)
        series = []
        for e in range(length):
            values = [
                r.history[e].train[k]
                for r in runs
                if e < len(r.history) and k in r.history[e].train
            ]
            series.append(math.fsum(values) / len(values) if values else math.nan)
        out[k] = tuple(series)
    return out


def _natural(key: str) -> list[Any]:
    """Sort key with numbers compared as numbers."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", key) if p]


def _per_class(key: str, keys: Sequence[str]) -> bool:
    """``dice_3`` / ``dice/3`` next to ``dice`` (or ``dice_0``...): one class of a metric."""
    m = re.fullmatch(r"(.+?)[_/](\d+)", key)
    if m is None:
        return False
    siblings = re.compile(re.escape(m.group(1)) + r"[_/]\d+")
    return m.group(1) in keys or any(k != key and siblings.fullmatch(k) for k in keys)


def metric_directions(
    keys: Sequence[str],
    collection: Any = None,
    *,
    primary: Optional[str] = None,
    higher: Optional[bool] = None,
) -> dict[str, Optional[bool]]:
    """``higher_is_better`` for each metric key.

    A key ``name/suffix`` (a per-class value) takes the direction of ``name``. Sources, in
    order: ``primary`` gets ``higher``; the collection's ``higher_is_better`` attribute of
    the metric (when it is a bool); then a table (lower is better for errors such as
    ``rmse``, ``mase``, ``calibration_error``; no direction for ``best_threshold`` and
    ``coverage``; higher is better otherwise).

    >>> metric_directions(["accuracy", "rmse", "dice/1", "best_threshold"])
    {'accuracy': True, 'rmse': False, 'dice/1': True, 'best_threshold': None}
    """
    known: dict[str, Optional[bool]] = {}
    if collection is not None:
        try:
            items = list(collection.items())
        except (AttributeError, TypeError):
            items = []
        for name, metric in items:
            hib = getattr(metric, "higher_is_better", None)
            if isinstance(hib, bool):
                known[str(name)] = hib
    out: dict[str, Optional[bool]] = {}
    for key in keys:
        base = key.split("/", 1)[0]
        if primary is not None and key == primary and higher is not None:
            out[key] = higher
        elif key in known:
            out[key] = known[key]
        elif base in known:
            out[key] = known[base]
        elif base in _UNRANKED:
            out[key] = None
        else:
            out[key] = base not in _LOWER_IS_BETTER
    return out


def summarize(
    runs: Sequence[RunResult],
    *,
    dataset: Mapping[str, Any],
    task: str,
    config: Mapping[str, Any],
    directions: Optional[Mapping[str, Optional[bool]]] = None,
    primary_metric: Optional[str] = None,
    run_keys: Optional[Sequence[str]] = None,
    resumed: int = 0,
    extra_timings: Optional[Mapping[str, Any]] = None,
) -> Comparison:
    """Build the :class:`Comparison` from run results (pure: no training, no files).

    Losses appear in the order of their first run; metric keys in the order first seen over
    the ok runs, the primary metric first. ``directions`` defaults to :func:`metric_directions` of the keys.
    """
    labels: list[str] = []
    by_label: dict[str, list[RunResult]] = {}
    for r in runs:
        if r.label not in by_label:
            labels.append(r.label)
            by_label[r.label] = []
        by_label[r.label].append(r)
    keys: list[str] = []
    for r in runs:
        if r.status == "ok":
            for k in r.test_metrics:
                if k not in keys:
                    keys.append(k)
    keys.sort(key=_natural)  # "dice_2" before "dice_10"
    if primary_metric in keys:  # the primary metric leads the table
        keys.remove(primary_metric)
        keys.insert(0, primary_metric)
    dirs = dict(directions) if directions is not None else {}
    missing = [k for k in keys if k not in dirs]
    dirs.update(metric_directions(missing, primary=primary_metric))
    dirs = {k: dirs[k] for k in keys}

    stats: dict[str, dict[str, tuple[Optional[float], Optional[float], int]]] = {}
    for label in labels:
        ok = [r for r in by_label[label] if r.status == "ok"]
        stats[label] = {}
        for k in keys:
            values = [float(r.test_metrics[k]) for r in ok if k in r.test_metrics]
            mean, std = _mean_std(values)
            stats[label][k] = (mean, std, len(values))
    ranks = {k: _ranks({lb: stats[lb][k][0] for lb in labels}, dirs[k]) for k in keys}

    summaries = []
    for label in labels:
        group = by_label[label]
        ok = [r for r in group if r.status == "ok"]
        timed = [r for r in group if r.history]
        metrics = {
            k: MetricStat(
                mean=stats[label][k][0],
                std=stats[label][k][1],
                n=stats[label][k][2],
                rank=ranks[k][label],
                best=ranks[k][label] == 1,
            )
            for k in keys
        }
        summaries.append(
            LossSummary(
                label=label,
                spec=group[0].spec,
                runs=len(group),
                ok=len(ok),
                diverged_epochs=tuple(
                    int(r.diverged_epoch if r.diverged_epoch is not None else r.epochs_run + 1)
                    for r in group
                    if r.status != "ok"
                ),
                metrics=metrics,
                curves=_curves(ok),
                seconds_per_epoch=(
                    math.fsum(r.seconds_per_epoch for r in timed) / len(timed) if timed else 0.0
                ),
                peak_memory_bytes=max((r.peak_memory_bytes for r in group), default=0),
            )
        )
    ranked = [k for k in keys if dirs[k] is not None and not _per_class(k, keys)]
    main = ([primary_metric] if primary_metric in ranked else []) + [
        k for k in ranked if k != primary_metric
    ]
    return Comparison(
        dataset=dict(dataset),
        task=task,
        config=dict(config),
        metric_keys=tuple(keys),
        directions=dirs,
        primary_metric=primary_metric,
        main_metrics=tuple(main[:_MAIN_METRICS]),
        losses=tuple(summaries),
        runs=tuple(runs),
        run_keys=tuple(run_keys) if run_keys is not None else tuple("" for _ in runs),
        resumed=resumed,
        extra_timings=dict(extra_timings or {}),
    )


# ----------------------------------------------------------------------------- run files
def dataset_fingerprint(data: TaskData) -> str:
    """sha256 of the dataset's metadata and of every tensor's dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(json.dumps(_jsonable(data.to_dict()), sort_keys=True).encode())
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        for part in ("x", "y", "group"):
            t = getattr(split, part)
            h.update(f"{name}.{part}:".encode())
            if t is None:
                h.update(b"none")
                continue
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes() if t.dtype != _bf16() else t.float().numpy().tobytes())
    return h.hexdigest()


def _bf16() -> Any:
    import torch

    return torch.bfloat16


def _identity(
    fingerprint: str, spec: str, seed: int, train_options: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "format": RUN_FILE_FORMAT,
        "dataset": fingerprint,
        "spec": spec,
        "seed": seed,
        "train": dict(train_options),
    }


def run_key(fingerprint: str, spec: str, seed: int, train_options: Mapping[str, Any]) -> str:
    """The run file's name: sha256 (first 24 hex digits) of dataset, spec, seed, options."""
    text = json.dumps(_identity(fingerprint, spec, seed, train_options), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _dump_run(result: RunResult, key: str, identity: Mapping[str, Any]) -> str:
    # NaN / inf are kept (Python's json reads them back): the file is for this module only
    return (
        json.dumps({"key": key, "identity": identity, "result": result.to_dict()}, indent=1) + "\n"
    )


def _load_run(path: Path, key: str, identity: Mapping[str, Any]) -> Optional[RunResult]:
    """The stored result when ``path`` holds this very run, else None (then it is rerun)."""
    try:
        with open(path, encoding="utf-8") as fh:
            stored = json.load(fh)
        if stored.get("key") != key or stored.get("identity") != json.loads(json.dumps(identity)):
            return None
        return RunResult.from_dict(stored["result"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _roundtrip(result: RunResult) -> RunResult:
    """``result`` as it reads back from its file (the report uses only what files hold)."""
    return RunResult.from_dict(json.loads(json.dumps(result.to_dict())))


# ----------------------------------------------------------------------------- running
def _train_options(train_fn: TrainFn, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` completed with ``train_fn``'s plain defaults (they are part of the key)."""
    fn = "run_comparison"
    try:
        params = inspect.signature(train_fn).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    reserved = {"label", "on_epoch"}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = [
        n
        for n, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in reserved
    ]
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name in reserved:
            fail(fn, "train_options", f"not set {name!r} (the runner sets it)", name)
        if params and name not in names and not accepts_any:
            fail(
                fn,
                "train_options",
                f"hold options of the train function ({', '.join(names)})",
                name,
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            fail(
                fn,
                "train_options",
                "hold plain JSON values (they are part of the run key)",
                f"{name}={value!r}",
                raw_got=True,
            )
        out[name] = value
    for name in names:
        default = params[name].default
        plain = default is None or isinstance(default, (bool, int, float, str))
        if name not in out and default is not inspect.Parameter.empty and plain:
            out[name] = default
    return dict(sorted(out.items()))


def _default_train_fn() -> TrainFn:
    from losslab.compare.train import train_run

    return train_run


def _default_validate() -> ValidateFn:
    from losslab.compare.tasks import validate_spec

    return validate_spec


def _task_primary(task: str) -> tuple[Optional[str], Optional[bool]]:
    try:
        from losslab.compare.tasks import get_adapter

        adapter = get_adapter(task)
    except (ImportError, ValueError):
        return None, None
    return adapter.primary, adapter.higher_is_better


def _collection(data: TaskData, spec: str) -> Any:
    """The task's metric collection, for its ``higher_is_better`` flags (None if unavailable)."""
    try:
        from losslab.compare.tasks import get_adapter, prepare_loss

        return get_adapter(data.task).metrics(data, prepare_loss(spec, data))
    except (ImportError, AttributeError, TypeError, ValueError):
        return None  # the direction table of metric_directions applies


def run_comparison(
    data: TaskData,
    specs: Sequence[str],
    *,
    seeds: int = 3,
    out: Optional[Path] = None,
    train_fn: Optional[TrainFn] = None,
    train_options: Optional[Mapping[str, Any]] = None,
    labels: Optional[Sequence[str]] = None,
    validate_fn: Optional[ValidateFn] = None,
    data_options: Optional[Mapping[str, Any]] = None,
    on_run_start: Optional[Callable[[RunInfo], None]] = None,
    on_epoch: Optional[Callable[[RunInfo, EpochLog], None]] = None,
    on_run_end: Optional[Callable[[RunInfo, RunResult, bool], None]] = None,
) -> Comparison:
    """Train each spec with seeds ``0 .. seeds-1`` on ``data`` and summarise the runs.

    Args:
        data: the dataset.
        specs: loss specs (``losslab.parse`` strings); distinct after canonicalization.
        seeds: number of seeds per spec, >= 1 (seeds ``0, 1, ..., seeds-1``).
        out: folder for the run files (``out/runs/<key>.json``); ``None``: keep nothing and
            do not resume.
        train_fn: ``train_fn(data, spec, seed, *, label, on_epoch, **train_options) ->
            RunResult`` (default :func:`losslab.compare.train.train_run`).
        train_options: keyword options of ``train_fn`` (epochs, batch_size, lr, patience);
            ``train_fn``'s defaults complete them, and all are part of each run's key.
        labels: the names shown in the report (default: the specs as given, stripped).
        validate_fn: ``validate_fn(spec, data) -> canonical spec`` raising ValueError for a
            spec the task cannot train (default :func:`losslab.compare.tasks.validate_spec`).
        data_options: how ``data`` was loaded (dataset options, user file): recorded in the
            report's config.
        on_run_start: called before a pair trains (not for a resumed pair).
        on_epoch: called with each epoch's log of the pair that trains.
        on_run_end: called after every pair with its result and whether it was resumed.

    Returns:
        A :class:`Comparison` computed from the run files (see the module docstring).

    Raises:
        ValueError: no spec, a duplicate spec or label, a spec refused by ``validate_fn``,
            a bad ``seeds``, ``out`` or option; all before any training.
    """
    fn = "run_comparison"
    if not isinstance(data, TaskData):
        fail(fn, "data", "be a TaskData", type(data).__name__, kind=TypeError, raw_got=True)
    if data.task not in TASKS:
        fail(fn, "data.task", f"be one of {list(TASKS)}", data.task)
    if isinstance(seeds, bool) or not isinstance(seeds, int):
        fail(fn, "seeds", "be an int", type(seeds).__name__, kind=TypeError, raw_got=True)
    if seeds < 1:
        fail(fn, "seeds", "be at least 1", seeds)
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        fail(
            fn,
            "specs",
            "be a list of spec strings",
            type(specs).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if not specs:
        fail(fn, "specs", "hold at least one loss spec", [])
    for i, spec in enumerate(specs):
        if not isinstance(spec, str):
            fail(
                fn,
                f"specs[{i}]",
                "be a spec string",
                type(spec).__name__,
                kind=TypeError,
                raw_got=True,
            )
    labels = [s.strip() for s in specs] if labels is None else list(labels)
    if len(labels) != len(specs) or not all(isinstance(lb, str) and lb for lb in labels):
        fail(fn, "labels", f"be {len(specs)} non-empty strings, one per spec", labels)
    train = train_fn if train_fn is not None else _default_train_fn()
    validate = validate_fn if validate_fn is not None else _default_validate()
    options = _train_options(train, train_options or {})

    # every spec is checked before anything trains
    canonical: list[str] = []
    for spec in specs:
        try:
            result = validate(spec, data)
        except ValueError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"loss spec {spec.strip()!r}: {first}") from exc
        if not isinstance(result, str):
            from losslab.compose import parse

            result = parse(spec).to_spec()
        canonical.append(result)
    seen: dict[str, str] = {}
    for spec, canon in zip(specs, canonical):
        if canon in seen:
            fail(
                fn,
                "specs",
                "be distinct losses",
                f"{seen[canon]!r} and {spec.strip()!r}, which are both {canon!r}",
                raw_got=True,
            )
        seen[canon] = spec.strip()
    if len(set(labels)) != len(labels):
        fail(fn, "labels", "be distinct", labels)

    runs_dir: Optional[Path] = None
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            fail(fn, "out", "be a folder (it is a file)", str(out))
        runs_dir = out / "runs"
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(
                fn,
                "out",
                "be a folder that can be created",
                f"{str(out)!r} ({exc.strerror})",
                raw_got=True,
            )

    fingerprint = dataset_fingerprint(data)
    epochs = options.get("epochs") if isinstance(options.get("epochs"), int) else None
    pairs = [
        (spec, canon, label, seed)
        for spec, canon, label in zip(specs, canonical, labels)
        for seed in range(seeds)
    ]
    results: list[RunResult] = []
    keys: list[str] = []
    resumed = 0
    for index, (spec, canon, label, seed) in enumerate(pairs):
        key = run_key(fingerprint, canon, seed, options)
        identity = _identity(fingerprint, canon, seed, options)
        info = RunInfo(
            label=label,
            spec=canon,
            seed=seed,
            index=index,
            total=len(pairs),
            key=key,
            epochs=epochs,
        )
        path = runs_dir / f"{key}.json" if runs_dir is not None else None
        stored = _load_run(path, key, identity) if path is not None and path.exists() else None
        if stored is not None:
            result = replace(stored, label=label)  # the numbers do not depend on the label
            resumed += 1
            is_resumed = True
        else:
            if on_run_start is not None:
                on_run_start(info)
            epoch_cb = (
                (lambda log, _info=info: on_epoch(_info, log)) if on_epoch is not None else None
            )
            result = train(data, spec, seed, label=label, on_epoch=epoch_cb, **options)
            if not isinstance(result, RunResult):
                fail(
                    fn,
                    "train_fn",
                    "return a RunResult",
                    type(result).__name__,
                    kind=TypeError,
                    raw_got=True,
                )
            result = replace(result, label=label)
            if path is not None:
                _write_atomic(path, _dump_run(result, key, identity))
            is_resumed = False
        if on_run_end is not None:
            on_run_end(info, result, is_resumed)
        results.append(result)
        keys.append(key)

    # the report reads what the files hold, so a resumed comparison reports the same numbers
    final: list[RunResult] = []
    for (_, canon, label, seed), key, result in zip(pairs, keys, results):
        if runs_dir is not None:
            stored = _load_run(
                runs_dir / f"{key}.json", key, _identity(fingerprint, canon, seed, options)
            )
            if stored is None:
                fail(
                    fn,
                    "out",
                    "keep the run files while the comparison runs",
                    str(runs_dir / f"{key}.json"),
                )
            final.append(replace(stored, label=label))
        else:
            final.append(_roundtrip(result))

    primary, higher = _task_primary(data.task)
    keys_seen: list[str] = []
    for r in final:
        for k in r.test_metrics:
            if k not in keys_seen:
                keys_seen.append(k)
    collection = _collection(data, canonical[0]) if keys_seen else None
    directions = metric_directions(keys_seen, collection, primary=primary, higher=higher)
    config = {
        "seeds": list(range(seeds)),
        "specs": [s.strip() for s in specs],
        "labels": labels,
        "canonical_specs": canonical,
        "train": options,
        "data": dict(data_options or {}),
        "dataset_fingerprint": fingerprint,
    }
    return summarize(
        final,
        dataset=data.to_dict(),
        task=data.task,
        config=config,
        directions=directions,
        primary_metric=primary,
        run_keys=keys,
        resumed=resumed,
    )
