"""``losslab compare`` through ``losslab.cli.main``: exit codes, one-line errors, output, files.

The training function is replaced by a fast fake (the CLI looks it up through
``losslab.cli.compare._train_fn``); one slow test runs the real training end to end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

import losslab.cli.compare as cli_compare  # registers the command on the shared app
from losslab.cli import main
from losslab.compare._types import EpochLog, RunResult, TaskData


class FakeTrain:
    """Deterministic stand-in for train_run: no model, numbers from (spec, seed)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(
        self,
        data: TaskData,
        spec: str,
        seed: int,
        *,
        label: Optional[str] = None,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 1e-3,
        patience: Optional[int] = 5,
        on_epoch: Optional[Callable[[EpochLog], None]] = None,
        device: Any = None,
    ) -> RunResult:
        from losslab.compare.tasks import validate_spec

        self.calls.append((spec, seed))
        canon = validate_spec(spec, data)
        h = (sum(ord(c) for c in spec) + 13 * seed) % 101 / 101
        history = []
        for e in range(1, epochs + 1):
            log = EpochLog(e, {"loss/total": 1.0 / (e + h)}, {"average_precision": h}, 0.001)
            history.append(log)
            if on_epoch is not None:
                on_epoch(log)
        return RunResult(
            spec=canon,
            label=label or spec,
            seed=seed,
            status="ok",
            test_metrics={"accuracy": 1 - h / 2, "average_precision": h, "mcc": h - 0.5},
            best_epoch=epochs,
            epochs_run=epochs,
            history=history,
            seconds_per_epoch=0.001,
            peak_memory_bytes=1024,
        )


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTrain:
    train = FakeTrain()
    monkeypatch.setattr(cli_compare, "_train_fn", lambda: train)
    return train


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _good_rows(n: int = 40) -> list[str]:
    return [f"{i * 0.1:.2f},{(i * 7) % 5:.1f},{i % 2}" for i in range(n)]


# ----------------------------------------------------------------------------- bad inputs
BAD: list[tuple[str, list[str], str]] = [
    ("seeds", ["--seeds", "0"], r"`--seeds` must be a positive integer; got 0"),
    ("epochs", ["--epochs", "-1"], r"`--epochs` must be a positive integer; got -1"),
    ("max_rows", ["--max-rows", "0"], r"`--max-rows` must be a positive integer; got 0"),
    ("task", ["--task", "binnary"], r"`--task` must be one of .*; got 'binnary'. Did you mean 'binary'\?"),
    ("both", ["--dataset", "digits", "--data", "x.csv"], r"`--dataset` and `--data` exclude each other"),
    ("no_target", ["--data", "{csv}"], r"needs `--target COLUMN`"),
    ("target_only", ["--target", "y"], r"`--target` .* without `--data`"),
    ("missing_file", ["--data", "{tmp}/nope.csv", "--target", "y"], r"`--data` must be an existing file; got '.*nope.csv' \(not found\)"),
    ("folder", ["--data", "{tmp}", "--target", "y"], r"`--data` must be a file; got .* \(a folder\)"),
    ("imbalance", ["--dataset", "breast-cancer", "--imbalance", "-0.5"], r"`--imbalance` must be a positive ratio; got -0.5"),
    ("imbalance_data", ["--data", "{csv}", "--target", "y", "--imbalance", "0.1"], r"`--imbalance` applies to the embedded `breast-cancer` dataset"),
    ("task_data", ["--data", "{csv}", "--target", "y", "--task", "ranking"], r"`--task` with `--data` must be one of binary, multiclass, regression; got 'ranking'"),
    ("out_file", ["--out", "{csv}"], r"`--out` must be a folder; got '.*data.csv', which is a file"),
    ("empty_loss", ["--loss", " "], r"`--loss` must be a loss spec such as 'bce'; got an empty one"),
    ("bad_spec", ["--loss", "bce", "--loss", "bcee"], r"loss spec 'bcee': parse\(\).*Did you mean 'bce'\?"),
    ("spec_syntax", ["--loss", "0.5*bce +"], r"loss spec '0.5\*bce \+': parse\(\): invalid syntax"),
    ("wrong_task_loss", ["--loss", "ranknet"], r"loss spec 'ranknet': validate_spec\(\).*binary task"),
    ("duplicate", ["--loss", "bce", "--loss", "1.0*bce"], r"`specs` must be distinct losses; got 'bce' and '1.0\*bce'"),
    ("unknown_dataset", ["--dataset", "digitz"], r"digitz.*Did you mean 'digits'"),
    ("contradiction", ["--task", "regression", "--dataset", "digits-binary"], r"`--task regression` contradicts `--dataset digits-binary`, which is a binary dataset"),
    ("missing_column", ["--data", "{csv}", "--target", "label"], r"`target` must name a column of '.*data.csv' \('a', 'b', 'y'\); got 'label'"),
    ("nan_cell", ["--data", "{nan_csv}", "--target", "y"], r"no missing, NaN or infinite values; got 'nan' in column 'b' at line 42"),
    ("text_feature", ["--data", "{text_csv}", "--target", "y"], r"numeric features only; got 'x' in column 'b' at line 42"),
    ("unsupported", ["--data", "{txt}", "--target", "y"], r"must be a .csv or .npz file; got '.*data.txt' \(extension '.txt'\)"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "match"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(
    name: str,
    args: list[str],
    match: str,
    fake: FakeTrain,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = {
        "tmp": str(tmp_path),
        "csv": str(_csv(tmp_path / "data.csv", "a,b,y", _good_rows())),
        "nan_csv": str(_csv(tmp_path / "nan.csv", "a,b,y", [*_good_rows(), "1.0,nan,1", "2.0,,0"])),
        "text_csv": str(_csv(tmp_path / "text.csv", "a,b,y", [*_good_rows(), "1.0,x,1"])),
        "txt": str(_csv(tmp_path / "data.txt", "a,b,y", _good_rows())),
    }
    out = tmp_path / "out"
    argv = ["compare", "--out", str(out), "--max-rows", "120", "--seeds", "1", "--epochs", "1"]
    argv += [a.format(**files) for a in args]
    assert main(argv) == 2
    err = _err(capsys)
    lines = err.strip().splitlines()
    assert (
        len(lines) == 2 and lines[0].startswith("losslab: error: ") and lines[1].startswith("hint:")
    )
    assert _search(match, lines[0]), lines[0]
    assert fake.calls == []  # nothing trained
    assert not (out / "runs").exists() or not list((out / "runs").iterdir())


def _search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_usage_errors_exit_2(fake: FakeTrain, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--format", "xml"]) == 2
    assert main(["compare", "--seeds", "three"]) == 2
    assert fake.calls == []


# ----------------------------------------------------------------------------- good runs
def test_json_output_is_only_json_and_files_are_written(
    fake: FakeTrain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["compare", "--max-rows", "150", "--seeds", "2", "--epochs", "3"]
    argv += ["--loss", "bce", "--loss", "focal", "--format", "json", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert captured.err == ""  # no progress bar, no chatter in JSON mode
    assert report["task"] == "binary" and report["dataset"]["name"] == "digits-binary"
    assert [lo["label"] for lo in report["losses"]] == ["bce", "focal"]
    assert report["config"]["seeds"] == [0, 1] and report["config"]["train"]["epochs"] == 3
    assert report["config"]["data"]["dataset"] == "digits-binary"
    assert report["config"]["data"]["max_rows"] == 150
    assert report["primary_metric"] == "average_precision"
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json",
        "report.md",
        "report.png",
        "runs",
    ]
    assert len(list((out / "runs").glob("*.json"))) == 4 and len(fake.calls) == 4
    assert json.loads((out / "report.json").read_text()) == report
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same command again: nothing trains, the same report (timings aside)
    fake.calls.clear()
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert fake.calls == []
    assert again["timings"]["resumed_runs"] == 4
    report.pop("timings"), again.pop("timings")
    assert again == report


def test_default_losses_table_and_markdown(
    fake: FakeTrain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from losslab.compare.tasks import get_adapter

    out = tmp_path / "o"
    assert (
        main(["compare", "--max-rows", "150", "--seeds", "1", "--epochs", "2", "--out", str(out)])
        == 0
    )
    captured = capsys.readouterr()
    defaults = list(get_adapter("binary").default_specs)
    assert [c[0] for c in fake.calls] == defaults
    assert "average_precision" in captured.out and "1/1 ok" in captured.out
    assert f"losslab: wrote report.json, report.md, report.png to {out}" in captured.err
    assert "seed 0" in captured.err  # the progress bar (loss, seed, epoch) is on stderr

    assert main(["compare", "--max-rows", "150", "--seeds", "1", "--epochs", "2", "--out", str(out), "-f", "markdown"]) == 0  # fmt: skip
    md = capsys.readouterr().out
    assert md.startswith("# losslab compare: digits-binary (binary), 1 seed(s)")
    assert "| metric |" in md and "**" in md and "report.png" not in md
    assert (out / "report.md").read_text().endswith("![metrics and learning curves](report.png)\n")


def test_user_csv(fake: FakeTrain, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _csv(tmp_path / "mine.csv", "a,b,y", _good_rows(60))
    out = tmp_path / "o"
    argv = ["compare", "--data", str(csv), "--target", "y", "--loss", "bce", "--seeds", "1"]
    argv += ["--epochs", "2", "-f", "json", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "binary" and report["config"]["data"]["target"] == "y"
    assert fake.calls == [("bce", 0)]


def test_task_picks_its_dataset(
    fake: FakeTrain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", "--task", "regression", "--loss", "mse", "--seeds", "1", "--epochs", "1"]
    argv += ["--max-rows", "120", "-f", "json", "--out", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "regression" and report["dataset"]["name"] == "diabetes"


def test_list_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    from losslab.compare.datasets import list_datasets

    assert main(["compare", "--list-datasets", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [r["name"] for r in list_datasets()]
    assert {"digits-binary", "digits", "diabetes"} <= {r["name"] for r in rows}
    assert all(r["provenance"] for r in rows)
    assert main(["compare", "--list-datasets"]) == 0
    text = capsys.readouterr().out
    assert "digits-binary" in text and "provenance" in text


# ----------------------------------------------------------------------------- real run
@pytest.mark.slow
def test_real_tiny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real train_run, end to end: the default binary losses, 1 seed, 2 epochs."""
    out = tmp_path / "out"
    argv = ["compare", "--max-rows", "200", "--epochs", "2", "--seeds", "1", "-f", "json"]
    argv += ["--out", str(out)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["losses"]) == len(report["config"]["specs"]) >= 2
    for lo in report["losses"]:
        assert lo["status"] == "1/1 ok", lo
        assert len(lo["curves"]["loss/total"]) >= 1
        ap = report["metrics"]["average_precision"]["per_loss"][lo["label"]]
        assert 0.0 <= ap["mean"] <= 1.0 and ap["std"] == 0.0 and ap["rank"] >= 1
    assert sum(v["best"] for v in report["metrics"]["average_precision"]["per_loss"].values()) >= 1
    assert all(math.isfinite(r["epochs_run"]) for r in report["runs"])
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # rerun: every run is resumed and the report is the same
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["timings"]["resumed_runs"] == len(report["losses"])
    report.pop("timings"), again.pop("timings")
    assert again == report


@pytest.mark.slow
@pytest.mark.parametrize(
    "dataset",
    ["digits-binary", "digits", "diabetes", "digits-seg", "diabetes-rank", "sunspots", "co2"],
)
def test_every_embedded_dataset_runs_end_to_end(
    dataset: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each task's default losses train (real train_run) and report its primary metric."""
    argv = ["compare", "--dataset", dataset, "--max-rows", "80", "--epochs", "2", "--seeds", "1"]
    argv += ["-f", "json", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    primary = report["primary_metric"]
    assert report["dataset"]["name"] == dataset
    assert len(report["losses"]) >= 2
    for lo in report["losses"]:
        assert lo["status"] == "1/1 ok", lo
        value = report["metrics"][primary]["per_loss"][lo["label"]]["mean"]
        assert value is not None and math.isfinite(value), (lo["label"], primary, value)
    for name in ("report.json", "report.md", "report.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
