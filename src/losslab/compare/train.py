"""One training run of ``losslab compare``: (TaskData, loss spec, seed) -> :class:`RunResult`.

:func:`train_run` trains the task's small model (:mod:`losslab.compare.models`) with Adam,
logs the loss components per epoch (``LossOutput.log_dict`` averaged over the batches), scores
the validation split after every epoch with the task's metric collection, stops early on the
primary metric, keeps the best weights in memory and scores the test split with them.

Reproducibility: initialization, dropout masks and shuffling each draw from their own
:class:`torch.Generator` seeded from ``seed``; the global RNG is reseeded inside
:func:`torch.random.fork_rng` for any loss that draws from it, and restored afterwards. On
a CPU the same seed, data and thread count give bit-identical numbers
(:meth:`RunResult.deterministic_dict`). ``torch.set_num_threads`` is the caller's choice.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from losslab._checks import check_float, check_int_option, fail
from losslab.compare._types import EpochLog, RunResult, Split, TaskData
from losslab.compare.models import _substream, make_model
from losslab.compare.tasks import (
    LossPlan,
    TaskAdapter,
    compute_metrics,
    get_adapter,
    loss_output,
    prepare_loss,
    validate_spec,
)

__all__ = ["PeakMemory", "evaluate_split", "train_run"]


class PeakMemory:
    """Peak memory of a block of code, in bytes above its starting point.

    * CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
      memory allocated at the start: tensors only, not the caching allocator's reserve.
    * CPU (Linux): the process' resident-set high-water mark. At the start the mark is
      reset (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) and the current RSS
      (``VmRSS``) is the baseline; at the end ``VmHWM - baseline``. Where the reset is not
      allowed, ``ru_maxrss`` after minus before is used instead, which only sees growth
      beyond the process' earlier peak (0 for a second, equally large run in the same
      process).

    Limits: RSS is per process, so other threads' allocations count; it measures pages
    touched (allocator caches, freed-but-kept memory included), with page granularity;
    on macOS ``ru_maxrss`` is in bytes and there is no reset; on Windows it is 0. Resetting the high-water mark
    also resets what ``getrusage`` reports for the process afterwards. Numbers are for
    comparing losses within one comparison, not absolute footprints.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes = 0
        self._base = 0
        self._mode = "none"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self._mode = "cuda"
            return self
        if _reset_hwm():
            rss = _proc_status_kb("VmRSS")
            if rss is not None:
                self._base = rss * 1024
                self._mode = "hwm"
                return self
        self._base = _ru_maxrss_bytes()
        self._mode = "ru_maxrss"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._mode == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._mode == "hwm":
            hwm = _proc_status_kb("VmHWM")
            peak = (hwm * 1024) if hwm is not None else self._base
        else:
            peak = _ru_maxrss_bytes()
        self.bytes = max(0, int(peak) - int(self._base))


def _reset_hwm() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _ru_maxrss_bytes() -> int:
    try:
        import resource  # Unix only
    except ImportError:  # pragma: no cover - Windows: no peak RSS here, report 0
        return 0
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024


@torch.no_grad()
def evaluate_split(
    model: nn.Module,
    split: Split,
    adapter: TaskAdapter,
    plan: LossPlan,
    metrics: Any,
    device: torch.device,
) -> dict[str, float]:
    """The metric collection over a whole split (model in eval mode), as floats."""
    model.eval()
    metrics.reset()
    for idx in adapter.eval_batches(split):
        batch = adapter.batch(split, idx).to(device)
        args, kwargs = adapter.metric_args(model(batch.x), batch, plan)
        metrics.update(*args, **kwargs)
    values = compute_metrics(metrics)
    metrics.reset()
    return values


def _all_finite(values: Mapping[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())


def _parameters_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _better(value: float, best: float, higher: bool) -> bool:
    if not math.isfinite(value):
        return False
    if not math.isfinite(best):
        return True
    return value > best if higher else value < best


def train_run(
    data: TaskData,
    spec: str,
    seed: int,
    *,
    label: Optional[str] = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: Optional[float] = None,
    patience: Optional[int] = 5,
    on_epoch: Optional[Callable[[EpochLog], None]] = None,
    device: Union[str, torch.device, None] = None,
) -> RunResult:
    """Train the task's model on ``data`` with the loss ``spec`` from ``seed``; one RunResult.

    Args:
        data: the dataset (train / val / test splits).
        spec: a ``losslab.parse`` spec; options that depend on the data are filled from the
            training split (:func:`losslab.compare.tasks.fill_data_options`).
        seed: seeds initialization, dropout and shuffling (and the global RNG inside the run).
        label: the name shown in reports (default: ``spec`` as given).
        epochs: maximum number of epochs, >= 1.
        batch_size: examples per step (ranking: whole queries until at least this many items).
        lr: Adam's learning rate (default: the task's, ``TaskAdapter.lr``).
        patience: stop after this many epochs without improvement of the validation primary
            metric (``None``: never stop early).
        on_epoch: called with each :class:`EpochLog` (for a progress bar).
        device: where to train (default CPU).

    Returns:
        A :class:`RunResult`. ``status="diverged"`` when a loss value or a parameter becomes
        NaN or infinite: ``diverged_epoch`` is the epoch where it happened, training stops,
        ``history`` holds the completed epochs, ``test_metrics`` come from the best state of
        those epochs (``{}`` when none completed). ``epochs_run`` counts completed epochs;
        ``best_epoch`` is 1-based (0: none). ``seconds_per_epoch`` is the mean wall time of
        the training steps of the completed epochs (evaluation excluded);
        ``peak_memory_bytes`` covers the whole run, evaluation included (:class:`PeakMemory`).

    Raises:
        ValueError: a spec that is invalid or that the task cannot train, or bad options,
            before any training step.
    """
    fn = "train_run"
    seed = check_int_option(fn, "seed", seed, low=0)  # type: ignore[assignment]
    epochs = check_int_option(fn, "epochs", epochs, low=1)  # type: ignore[assignment]
    batch_size = check_int_option(fn, "batch_size", batch_size, low=1)  # type: ignore[assignment]
    patience = check_int_option(fn, "patience", patience, low=1, allow_none=True)
    if lr is not None:
        lr = check_float(fn, "lr", lr, low=0.0, low_open=True)
    if on_epoch is not None and not callable(on_epoch):
        fail(
            fn,
            "on_epoch",
            "be callable or None",
            type(on_epoch).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if label is not None and not isinstance(label, str):
        fail(fn, "label", "be a str or None", type(label).__name__, kind=TypeError, raw_got=True)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    adapter = get_adapter(data.task)
    lr = adapter.lr if lr is None else lr

    validate_spec(spec, data)  # every check (task, data values) before training
    plan = prepare_loss(spec, data)
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        # Only for losses that draw from the global RNG; restored when the run ends.
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(dev):
                torch.cuda.manual_seed(seed)
        return _train(
            data, spec, seed, plan, adapter, dev,
            label=label if label is not None else spec,
            epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, on_epoch=on_epoch,
        )  # fmt: skip


def _train(
    data: TaskData,
    spec: str,
    seed: int,
    plan: LossPlan,
    adapter: TaskAdapter,
    device: torch.device,
    *,
    label: str,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: Optional[int],
    on_epoch: Optional[Callable[[EpochLog], None]],
) -> RunResult:
    model = make_model(data, out_features=plan.out_features, seed=seed)
    if plan.has_regularizer:
        plan = prepare_loss(spec, data, params=model)
    model.to(device)
    plan.loss.to(device)
    metrics = adapter.metrics(data, plan).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(_substream(seed, 1))

    history: list[EpochLog] = []
    best_state: Optional[dict[str, Tensor]] = None
    best_value = math.nan
    best_epoch = 0
    stale = 0
    diverged_epoch: Optional[int] = None
    with PeakMemory(device) as memory:
        for epoch in range(1, epochs + 1):
            model.train()
            sums: dict[str, float] = {}
            steps = 0
            start = time.perf_counter()
            for idx in adapter.train_batches(data.train, batch_size, shuffle):
                batch = adapter.batch(data.train, idx).to(device)
                output = loss_output(plan, model(batch.x), batch)
                logs = output.log_dict()
                if not _all_finite(logs):
                    diverged_epoch = epoch
                    break
                optimizer.zero_grad(set_to_none=True)
                output.total.backward()
                optimizer.step()
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
            seconds = time.perf_counter() - start
            if diverged_epoch is None and not _parameters_finite(model):
                diverged_epoch = epoch
            if diverged_epoch is not None:
                break
            val = evaluate_split(model, data.val, adapter, plan, metrics, device)
            if adapter.primary not in val:
                fail(
                    "train_run",
                    "metrics",
                    f"include the primary metric {adapter.primary!r} of the {data.task} task",
                    sorted(val),
                    raw_got=True,
                )
            log = EpochLog(
                epoch=epoch,
                train={k: v / max(steps, 1) for k, v in sums.items()},
                val=val,
                seconds=seconds,
            )
            history.append(log)
            if on_epoch is not None:
                on_epoch(log)
            value = val[adapter.primary]
            if best_state is None or _better(value, best_value, adapter.higher_is_better):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best_value, best_epoch, stale = value, epoch, 0
            else:
                stale += 1
                if patience is not None and stale >= patience:
                    break

        test_metrics: dict[str, float] = {}
        if best_state is not None:
            model.load_state_dict(best_state)
            test_metrics = evaluate_split(model, data.test, adapter, plan, metrics, device)

    seconds_per_epoch = sum(h.seconds for h in history) / len(history) if history else 0.0
    return RunResult(
        spec=plan.spec,
        label=label,
        seed=seed,
        status="ok" if diverged_epoch is None else "diverged",
        test_metrics=test_metrics,
        best_epoch=best_epoch,
        epochs_run=len(history),
        diverged_epoch=diverged_epoch,
        history=history,
        seconds_per_epoch=seconds_per_epoch,
        peak_memory_bytes=memory.bytes,
    )
