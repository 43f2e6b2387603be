"""``losslab compare``: train losses side by side on a dataset and report them.

Everything (options, dataset or file, loss specs) is checked before the first training step;
a problem raises ``ValueError`` with one line, which :func:`losslab.cli.app.main` prints with a
hint and exit code 2. Run files and the report go to ``--out`` (default
``./losslab-compare``); rerunning the same command with the same ``--out`` reuses the finished
(loss, seed) runs. ``--format json`` writes only the report JSON to stdout (no progress bar);
``table`` and ``markdown`` show a progress bar on stderr.

The dataset split uses seed 0 (the same split for every run); the training seeds are
``0 .. --seeds - 1``.
"""

from __future__ import annotations

import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from losslab._checks import suggest
from losslab.cli.app import app
from losslab.compare._types import TASKS, TaskData

__all__ = ["compare"]

#: Tasks a user file (``--data``) can be trained as.
USER_TASKS = ("binary", "multiclass", "regression")
#: The dataset ``losslab compare`` uses without --task / --dataset / --data.
DEFAULT_DATASET = "digits-binary"
#: The split of the dataset is drawn from this seed; training seeds are 0 .. seeds-1.
DATA_SEED = 0


class CompareFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


# ----------------------------------------------------------------------------- hooks
# The parts written elsewhere, looked up at call time (tests replace them with fakes).
def _train_fn() -> Callable[..., Any]:
    from losslab.compare.train import train_run

    return train_run


def _datasets() -> Any:
    from losslab.compare import datasets

    return datasets


def _load_user_data(*args: Any, **kwargs: Any) -> TaskData:
    from losslab.compare.userdata import load_user_data

    return load_user_data(*args, **kwargs)


def _default_specs(task: str) -> list[str]:
    from losslab.compare.tasks import get_adapter

    return list(get_adapter(task).default_specs)


# ----------------------------------------------------------------------------- checks
def _positive_int(name: str, value: Optional[int]) -> None:
    if value is not None and value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value}.")


def _check_options(
    *,
    task: Optional[str],
    dataset: Optional[str],
    data: Optional[Path],
    target: Optional[str],
    loss: Optional[list[str]],
    seeds: int,
    epochs: int,
    out: Path,
    imbalance: Optional[float],
    max_rows: Optional[int],
) -> None:
    _positive_int("--seeds", seeds)
    _positive_int("--epochs", epochs)
    _positive_int("--max-rows", max_rows)
    if imbalance is not None and not (math.isfinite(imbalance) and imbalance > 0):
        raise ValueError(f"`--imbalance` must be a positive ratio; got {imbalance}.")
    if task is not None and task not in TASKS:
        hint = suggest(task, TASKS)
        raise ValueError(
            f"`--task` must be one of {', '.join(TASKS)}; got {task!r}."
            + (f" {hint}" if hint else "")
        )
    if dataset is not None and data is not None:
        raise ValueError("`--dataset` and `--data` exclude each other; got both.")
    if data is None and target is not None:
        raise ValueError(
            "`--target` names a column of `--data FILE`; got `--target` without `--data`."
        )
    if data is not None:
        if target is None:
            raise ValueError(f"`--data {data}` needs `--target COLUMN` (the column to predict).")
        if not data.exists():
            raise ValueError(f"`--data` must be an existing file; got {str(data)!r} (not found).")
        if not data.is_file():
            raise ValueError(f"`--data` must be a file; got {str(data)!r} (a folder).")
        if task is not None and task not in USER_TASKS:
            raise ValueError(
                f"`--task` with `--data` must be one of {', '.join(USER_TASKS)}; got {task!r}."
            )
        if imbalance is not None:
            raise ValueError(
                "`--imbalance` applies to the embedded `breast-cancer` dataset, not to `--data`."
            )
    for i, spec in enumerate(loss or []):
        if not spec.strip():
            raise ValueError(
                f"`--loss` must be a loss spec such as 'bce'; got an empty one (#{i + 1})."
            )
    if out.exists() and not out.is_dir():
        raise ValueError(f"`--out` must be a folder; got {str(out)!r}, which is a file.")


def _load(
    *,
    task: Optional[str],
    dataset: Optional[str],
    data: Optional[Path],
    target: Optional[str],
    imbalance: Optional[float],
    max_rows: Optional[int],
) -> tuple[TaskData, dict[str, Any]]:
    """The dataset, and how it was loaded (recorded in the report)."""
    if data is not None:
        loaded = _load_user_data(data, target=target, task=task, seed=DATA_SEED, max_rows=max_rows)
        return loaded, {
            "data": str(data),
            "target": target,
            "task": task,
            "seed": DATA_SEED,
            "max_rows": max_rows,
        }
    ds = _datasets()
    listing = {row["name"]: row for row in ds.list_datasets()}
    if dataset is None:
        if task is None:
            dataset = DEFAULT_DATASET
        else:
            dataset = next((n for n, row in listing.items() if row["task"] == task), None)
            if dataset is None:
                raise ValueError(
                    f"`--task {task}` has no embedded dataset; pass `--data FILE --target COLUMN`."
                )
    if task is not None and dataset in listing and listing[dataset]["task"] != task:
        raise ValueError(
            f"`--task {task}` contradicts `--dataset {dataset}`, which is a {listing[dataset]['task']} dataset."
        )
    options: dict[str, Any] = {}
    if imbalance is not None:
        options["imbalance"] = imbalance
    loaded = ds.load_dataset(dataset, seed=DATA_SEED, max_rows=max_rows, **options)
    if task is not None and loaded.task != task:
        raise ValueError(
            f"`--task {task}` contradicts `--dataset {dataset}`, which is a {loaded.task} dataset."
        )
    return loaded, {"dataset": dataset, "seed": DATA_SEED, "max_rows": max_rows, **options}


# ----------------------------------------------------------------------------- output
def _print_datasets(fmt: CompareFormat) -> None:
    rows = _datasets().list_datasets()
    if fmt is CompareFormat.json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    if fmt is CompareFormat.markdown:
        lines = ["| name | task | description | provenance | requires |", "|---|---|---|---|---|"]
        for r in rows:
            cells = [
                r.get("name"),
                r.get("task"),
                r.get("description"),
                r.get("provenance"),
                r.get("requires") or "",
            ]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"losslab compare: {len(rows)} embedded datasets", show_lines=True)
    for column in ("name", "task", "sizes", "description", "provenance", "requires"):
        table.add_column(column, overflow="fold")
    for r in rows:
        sizes = r.get("sizes") or {}
        size_text = (
            "/".join(str(v) for v in sizes.values()) if isinstance(sizes, dict) else str(sizes)
        )
        table.add_row(
            *(Text(str(v)) for v in (r.get("name"), r.get("task"), size_text, r.get("description", ""),
                                     r.get("provenance", ""), r.get("requires") or "-"))
        )  # fmt: skip
    Console(width=max(Console().width, 140)).print(table)


class _Progress:
    """A rich progress bar on stderr: one step per epoch of every (loss, seed) pair."""

    def __init__(self, total_runs: int, epochs: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.epochs = epochs
        self.done = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("starting", total=total_runs * epochs)
        self.started = False

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def _show(self) -> None:
        # shown from the first run on: nothing is drawn while the specs are being checked
        if not self.started:
            self.progress.__enter__()
            self.started = True

    def _describe(
        self, info: Any, epoch: Optional[int] = None, loss: Optional[float] = None
    ) -> str:
        from rich.markup import escape

        text = f"{escape(info.label)} · seed {info.seed}"
        if epoch is not None:
            text += f" · epoch {epoch}/{self.epochs}"
        if loss is not None:
            text += f" · loss {loss:.4g}"
        return text

    def start(self, info: Any) -> None:
        self._show()
        self.done = 0
        self.progress.update(self.task, description=self._describe(info))

    def epoch(self, info: Any, log: Any) -> None:
        self.done += 1
        loss = log.train.get("loss/total")
        self.progress.update(
            self.task, advance=1, description=self._describe(info, log.epoch, loss)
        )

    def end(self, info: Any, result: Any, resumed: bool) -> None:
        # early stopping, divergence or a resumed run: the rest of its epochs count as done
        self._show()
        rest = self.epochs - (0 if resumed else self.done)
        suffix = "resumed" if resumed else result.status
        self.progress.update(
            self.task, advance=max(rest, 0), description=f"{self._describe(info)} · {suffix}"
        )
        self.done = 0


# ----------------------------------------------------------------------------- command
def compare(
    task: Annotated[
        Optional[str],
        typer.Option("--task", help=f"One of {', '.join(TASKS)} (default: the dataset's)."),
    ] = None,
    dataset: Annotated[
        Optional[str], typer.Option("--dataset", help="An embedded dataset (see --list-datasets).")
    ] = None,
    data: Annotated[
        Optional[Path], typer.Option("--data", help="Your own CSV or NPZ file (with --target).")
    ] = None,
    target: Annotated[
        Optional[str], typer.Option("--target", help="The column of --data to predict.")
    ] = None,
    loss: Annotated[
        Optional[list[str]],
        typer.Option(
            "--loss", "-l", help="A loss spec (repeat it); default: the task's default losses."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per loss (0 .. N-1).")] = 3,
    epochs: Annotated[
        int, typer.Option("--epochs", help="Maximum epochs per run (early stopping).")
    ] = 30,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the run files and report.{json,md,png}.")
    ] = Path("losslab-compare"),
    output: Annotated[
        CompareFormat,
        typer.Option("--format", "-f", help="table, json (only JSON on stdout) or markdown."),
    ] = CompareFormat.table,
    list_datasets: Annotated[
        bool, typer.Option("--list-datasets", help="List the embedded datasets and exit.")
    ] = False,
    imbalance: Annotated[
        Optional[float],
        typer.Option(
            "--imbalance",
            help="breast-cancer: subsample positives to this positive:negative ratio.",
        ),
    ] = None,
    max_rows: Annotated[
        Optional[int],
        typer.Option("--max-rows", help="Subsample the dataset to N rows (quick runs)."),
    ] = None,
) -> None:
    """Train losses side by side (several seeds each) and report the task's metrics."""
    if list_datasets:
        _print_datasets(output)
        return
    _check_options(
        task=task, dataset=dataset, data=data, target=target, loss=loss, seeds=seeds,
        epochs=epochs, out=out, imbalance=imbalance, max_rows=max_rows,
    )  # fmt: skip
    loaded, data_options = _load(
        task=task, dataset=dataset, data=data, target=target, imbalance=imbalance, max_rows=max_rows
    )
    specs = list(loss) if loss else _default_specs(loaded.task)

    from losslab.compare.render import markdown, print_table, to_json, write_report
    from losslab.compare.runner import run_comparison

    kwargs: dict[str, Any] = {
        "seeds": seeds,
        "out": out,
        "train_fn": _train_fn(),
        "train_options": {"epochs": epochs},
        "data_options": data_options,
    }
    if output is CompareFormat.json:
        comparison = run_comparison(loaded, specs, **kwargs)
    else:
        with _Progress(len(specs) * seeds, epochs) as bar:
            comparison = run_comparison(
                loaded,
                specs,
                on_run_start=bar.start,
                on_epoch=bar.epoch,
                on_run_end=bar.end,
                **kwargs,
            )
    written = write_report(comparison, out)
    if output is CompareFormat.json:
        sys.stdout.write(to_json(comparison))
        return
    if output is CompareFormat.markdown:
        sys.stdout.write(markdown(comparison, image=None))
    else:
        print_table(comparison)
    names = ", ".join(p.name for p in written.values())
    sys.stderr.write(f"losslab: wrote {names} to {out}\n")


app.command("compare")(compare)
