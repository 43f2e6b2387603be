"""runner.py (seeds, resume, summary statistics) and render.py (table, markdown, JSON, PNG).

A fake train function stands in for train_run: its numbers depend only on (spec, seed,
options), its timings on the wall clock, so the tests can check what must reproduce and
what is kept apart.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import torch

from losslab.compare._types import EpochLog, RunResult, Split, TaskData
from losslab.compare.render import (
    format_number,
    markdown,
    print_table,
    to_json,
    write_png,
    write_report,
)
from losslab.compare.runner import (
    Comparison,
    dataset_fingerprint,
    metric_directions,
    run_comparison,
    summarize,
)


# ----------------------------------------------------------------------------- fixtures
def _toy(seed: int = 0, n: int = 40) -> TaskData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = (torch.rand(n, generator=g) < 0.3).float()
    split = Split(x, y)
    return TaskData(
        "toy", "binary", split, split, split, description="toy rows", provenance="random"
    )


@pytest.fixture()
def data() -> TaskData:
    return _toy()


def _value(spec: str, seed: int, k: int) -> float:
    """A deterministic pseudo-metric in (0, 1) from the spec, the seed and a metric index."""
    h = sum((i + 1) * ord(c) for i, c in enumerate(spec)) + 31 * seed + 7 * k
    return (h % 997) / 997.0


class FakeTrain:
    """train_run's signature; deterministic numbers, wall-clock timings, optional kill/divergence."""

    def __init__(self, *, kill_after: Optional[int] = None, diverge: Optional[dict] = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.kill_after = kill_after
        self.diverge = diverge or {}  # (spec, seed) -> epoch

    def __call__(
        self,
        data: TaskData,
        spec: str,
        seed: int,
        *,
        label: Optional[str] = None,
        epochs: int = 4,
        batch_size: int = 16,
        lr: float = 1e-3,
        patience: Optional[int] = 5,
        on_epoch: Optional[Callable[[EpochLog], None]] = None,
    ) -> RunResult:
        if self.kill_after is not None and len(self.calls) >= self.kill_after:
            raise KeyboardInterrupt  # a Ctrl-C in the middle of the comparison
        self.calls.append((spec, seed))
        stop = self.diverge.get((spec.strip(), seed))
        spec = _canon(spec, data)  # as train_run: the RunResult holds the canonical spec
        history = []
        for e in range(1, epochs + 1):
            if stop is not None and e == stop:
                break
            base = _value(spec, seed, e)
            log = EpochLog(
                epoch=e,
                train={"loss/total": 1.0 + base / e, "loss/a": base / e},
                val={"average_precision": base},
                seconds=time.perf_counter() % 1.0,  # differs between executions
            )
            history.append(log)
            if on_epoch is not None:
                on_epoch(log)
        metrics = {
            "accuracy": _value(spec, seed, 1),
            "average_precision": _value(spec, seed, 2),
            "best_threshold": 0.5,
            "calibration_error": _value(spec, seed, 3),
        }
        if stop is not None:
            metrics = metrics if history else {}
        return RunResult(
            spec=spec,
            label=label or spec,
            seed=seed,
            status="ok" if stop is None else "diverged",
            test_metrics=metrics,
            best_epoch=len(history),
            epochs_run=len(history),
            diverged_epoch=stop,
            history=history,
            seconds_per_epoch=time.perf_counter() % 1.0,
            peak_memory_bytes=int(time.perf_counter_ns() % 10**7),
        )


def _canon(spec: str, data: TaskData) -> str:
    """A validation hook like tasks.validate_spec: canonical spec, ValueError when refused."""
    import losslab

    spec = losslab.parse(spec).to_spec()
    if "ranknet" in spec:
        raise ValueError(
            "validate_spec(): `spec` must hold losses the binary task can train; got 'ranknet'."
        )
    return spec


SPECS = ["bce", "1.0*focal(gamma=1)", "0.5*bce + 0.5*focal"]


def _run(data: TaskData, out: Optional[Path], train: FakeTrain, **kw: Any) -> Comparison:
    kw.setdefault("seeds", 3)
    kw.setdefault("train_options", {"epochs": 4})
    return run_comparison(
        data, kw.pop("specs", SPECS), out=out, train_fn=train, validate_fn=_canon, **kw
    )


def _without_timings(path: Path) -> str:
    report = json.loads(path.read_text())
    report.pop("timings")
    return json.dumps(report, indent=2)


def _run_result(
    label: str, seed: int, metrics: dict, status: str = "ok", diverged: Optional[int] = None
) -> RunResult:
    return RunResult(
        spec=label,
        label=label,
        seed=seed,
        status=status,
        test_metrics=metrics,
        best_epoch=1,
        epochs_run=1,
        diverged_epoch=diverged,
        history=[EpochLog(1, {"loss/total": float(seed)}, {}, 0.1)],
        seconds_per_epoch=0.1 * (seed + 1),
        peak_memory_bytes=100 * (seed + 1),
    )


# ----------------------------------------------------------------------------- statistics
def test_means_std_and_ranks_by_hand() -> None:
    runs = [
        _run_result("a", 0, {"acc": 0.8, "rmse": 2.0}),
        _run_result("a", 1, {"acc": 0.9, "rmse": 4.0}),
        _run_result("a", 2, {"acc": 1.0, "rmse": 3.0}),
        _run_result("b", 0, {"acc": 0.7, "rmse": 1.0}),
        _run_result("b", 1, {"acc": 0.9, "rmse": 1.0}),
        _run_result("b", 2, {"acc": 0.5, "rmse": 1.0}),
        _run_result("c", 0, {"acc": 0.9, "rmse": 5.0}),
    ]
    comp = summarize(runs, dataset={"name": "t"}, task="binary", config={}, primary_metric="acc")
    a, b, c = comp.losses
    # a: acc 0.8, 0.9, 1.0 -> mean 0.9, std (ddof=1) sqrt((0.01 + 0 + 0.01) / 2) = 0.1
    assert a.metrics["acc"].mean == pytest.approx(0.9, abs=1e-15)
    assert a.metrics["acc"].std == pytest.approx(0.1, abs=1e-15)
    # b: acc 0.7, 0.9, 0.5 -> mean 0.7, std sqrt((0 + 0.04 + 0.04) / 2) = 0.2
    assert b.metrics["acc"].mean == pytest.approx(0.7) and b.metrics["acc"].std == pytest.approx(
        0.2
    )
    # one seed: std 0 by convention
    assert c.metrics["acc"].std == 0.0 and c.metrics["acc"].n == 1
    # acc higher is better: a 0.9 and c 0.9 tie at rank 1, b is third
    assert [s.metrics["acc"].rank for s in comp.losses] == [1, 3, 1]
    assert [s.metrics["acc"].best for s in comp.losses] == [True, False, True]
    # rmse lower is better: b 1.0, a 3.0, c 5.0
    assert comp.directions == {"acc": True, "rmse": False}
    assert [s.metrics["rmse"].rank for s in comp.losses] == [2, 1, 3]
    assert b.metrics["rmse"].std == 0.0 and a.metrics["rmse"].std == pytest.approx(1.0)
    assert comp.main_metrics == ("acc", "rmse")
    # timings: mean seconds per epoch, max memory
    assert a.seconds_per_epoch == pytest.approx(0.2) and a.peak_memory_bytes == 300
    # curves: mean over seeds per epoch
    assert a.curves["loss/total"] == (1.0,)


def test_metric_order_and_main_metrics_skip_per_class_values() -> None:
    values = {"iou": 0.5, "dice_10": 0.1, "dice": 0.4, "dice_2": 0.2, "best_threshold": 0.5}
    comp = summarize(
        [_run_result("a", 0, values)],
        dataset={},
        task="segmentation",
        config={},
        primary_metric="iou",
    )
    assert comp.metric_keys == ("iou", "best_threshold", "dice", "dice_2", "dice_10")
    assert comp.main_metrics == ("iou", "dice")  # no per-class value, nothing unranked


def test_diverged_runs_are_left_out_and_counted() -> None:
    runs = [
        _run_result("a", 0, {"acc": 0.6}),
        _run_result("a", 1, {"acc": 0.1}, status="diverged", diverged=4),
        _run_result("a", 2, {"acc": 0.8}),
        _run_result("b", 0, {}, status="diverged", diverged=2),
        _run_result("b", 1, {}, status="diverged", diverged=5),
    ]
    comp = summarize(runs, dataset={}, task="binary", config={})
    a, b = comp.losses
    assert a.status == "2/3 ok, diverged at epoch 4"
    assert a.metrics["acc"].mean == pytest.approx(0.7) and a.metrics["acc"].n == 2
    assert b.status == "0/2 ok, diverged at epochs 2, 5"
    assert b.metrics["acc"].mean is None and b.metrics["acc"].rank is None
    assert a.metrics["acc"].rank == 1 and a.metrics["acc"].best
    assert b.curves == {}  # curves average the ok runs only
    d = comp.to_dict()
    assert d["losses"][1]["diverged"] == 2 and d["losses"][1]["diverged_epochs"] == [2, 5]


def test_nan_metric_is_undefined_and_unranked_and_strict_json() -> None:
    runs = [_run_result("a", 0, {"auroc": math.nan}), _run_result("b", 0, {"auroc": 0.4})]
    comp = summarize(runs, dataset={}, task="binary", config={})
    assert comp.losses[0].metrics["auroc"].mean is None
    assert comp.losses[0].metrics["auroc"].rank is None and comp.losses[1].metrics["auroc"].best
    text = to_json(comp)  # allow_nan=False: would raise on a NaN
    assert "NaN" not in text and json.loads(text)["runs"][0]["test_metrics"]["auroc"] is None


def test_metric_directions_collection_then_table() -> None:
    class M:
        def __init__(self, hib: Any) -> None:
            self.higher_is_better = hib

    coll = {"mystery": M(False), "dice": M(True), "coverage": M(None)}

    class Coll:
        def items(self) -> Any:
            return coll.items()

    got = metric_directions(["mystery", "dice/2", "coverage", "mase", "ndcg@10"], Coll())
    assert got == {
        "mystery": False,
        "dice/2": True,
        "coverage": None,
        "mase": False,
        "ndcg@10": True,
    }
    # the task's primary direction wins
    assert metric_directions(["mystery"], Coll(), primary="mystery", higher=True) == {
        "mystery": True
    }


# ----------------------------------------------------------------------------- running
def test_run_files_and_summary(data: TaskData, tmp_path: Path) -> None:
    train = FakeTrain()
    comp = _run(data, tmp_path, train)
    assert len(train.calls) == 9 and [c[1] for c in train.calls[:3]] == [0, 1, 2]
    files = sorted((tmp_path / "runs").iterdir())
    assert len(files) == 9 and all(
        f.suffix == ".json" and not f.name.startswith(".") for f in files
    )
    assert {f.stem for f in files} == set(comp.run_keys)
    assert [s.label for s in comp.losses] == SPECS
    assert comp.losses[1].spec == "focal(gamma=1)"  # canonical, from the validation hook
    assert (
        comp.primary_metric == "average_precision" and comp.main_metrics[0] == "average_precision"
    )
    assert (
        comp.directions["best_threshold"] is None and comp.directions["calibration_error"] is False
    )
    assert comp.config["train"] == {"batch_size": 16, "epochs": 4, "lr": 1e-3, "patience": 5}
    # mean of the primary metric of the first loss, by hand from the fake's formula
    vals = [_value("bce", s, 2) for s in range(3)]
    m = sum(vals) / 3
    assert comp.losses[0].metrics["average_precision"].mean == pytest.approx(m, abs=1e-15)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / 2)
    assert comp.losses[0].metrics["average_precision"].std == pytest.approx(sd, abs=1e-15)


def test_resume_after_a_kill_reproduces_the_report_byte_for_byte(
    data: TaskData, tmp_path: Path
) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    diverge = {("1.0*focal(gamma=1)", 1): 3}
    write_report(_run(data, full, FakeTrain(diverge=diverge)), full, png=False)

    with pytest.raises(KeyboardInterrupt):
        _run(data, part, FakeTrain(kill_after=4, diverge=diverge))
    assert len(list((part / "runs").glob("*.json"))) == 4
    assert not list((part / "runs").glob(".*"))  # no temporary file left behind

    resumed_flags: list[bool] = []
    rerun = FakeTrain(diverge=diverge)
    comp = _run(
        data, part, rerun, on_run_end=lambda info, r, resumed: resumed_flags.append(resumed)
    )
    assert len(rerun.calls) == 5 and resumed_flags == [True] * 4 + [False] * 5
    assert comp.resumed == 4
    write_report(comp, part, png=False)
    assert _without_timings(part / "report.json") == _without_timings(full / "report.json")
    # byte for byte: "timings" is the last key, everything before it is the same text
    head = [
        p.read_bytes().split(b'\n  "timings": ')[0]
        for p in (part / "report.json", full / "report.json")
    ]
    assert head[0] == head[1] and len(head[0]) > 1000
    # and the timings differ (they were measured), which is why they live apart
    full_t = json.loads((full / "report.json").read_text())["timings"]
    part_t = json.loads((part / "report.json").read_text())["timings"]
    assert full_t["resumed_runs"] == 0 and part_t["resumed_runs"] == 4
    assert "2/3 ok, diverged at epoch 3" in (part / "report.md").read_text()


def test_rerun_trains_nothing_and_other_options_train_again(data: TaskData, tmp_path: Path) -> None:
    first = _run(data, tmp_path, FakeTrain())
    again = FakeTrain()
    second = _run(data, tmp_path, again)
    assert again.calls == [] and second.resumed == 9
    assert json.dumps(first.to_dict()["losses"]) == json.dumps(second.to_dict()["losses"])
    other = FakeTrain()
    _run(data, tmp_path, other, train_options={"epochs": 3})  # another key
    assert len(other.calls) == 9
    changed = FakeTrain()
    _run(_toy(seed=1), tmp_path, changed)  # other data, same metadata: the fingerprint differs
    assert len(changed.calls) == 9
    assert dataset_fingerprint(_toy(seed=1)) != dataset_fingerprint(data)
    assert dataset_fingerprint(_toy(seed=0)) == dataset_fingerprint(data)


def test_a_damaged_run_file_is_trained_again(data: TaskData, tmp_path: Path) -> None:
    comp = _run(data, tmp_path, FakeTrain(), seeds=1)
    path = tmp_path / "runs" / f"{comp.run_keys[0]}.json"
    path.write_text(path.read_text()[:50])
    stored = json.loads((tmp_path / "runs" / f"{comp.run_keys[1]}.json").read_text())
    stored["identity"]["seed"] = 7  # a file that does not describe this run
    (tmp_path / "runs" / f"{comp.run_keys[1]}.json").write_text(json.dumps(stored))
    again = FakeTrain()
    _run(data, tmp_path, again, seeds=1)
    assert again.calls == [("bce", 0), ("1.0*focal(gamma=1)", 0)]


def test_in_memory_run_equals_file_run(data: TaskData, tmp_path: Path) -> None:
    a = _run(data, None, FakeTrain()).to_dict()
    b = _run(data, tmp_path, FakeTrain()).to_dict()
    a.pop("timings"), b.pop("timings")
    assert a == b


def test_labels_change_no_number(data: TaskData, tmp_path: Path) -> None:
    _run(data, tmp_path, FakeTrain(), seeds=1)
    again = FakeTrain()
    comp = _run(data, tmp_path, again, seeds=1, labels=["BCE", "focal", "mix"])
    assert again.calls == [] and [s.label for s in comp.losses] == ["BCE", "focal", "mix"]
    assert [r.label for r in comp.runs] == ["BCE", "focal", "mix"]


def test_callbacks(data: TaskData) -> None:
    events: list[tuple] = []
    _run(
        data,
        None,
        FakeTrain(),
        seeds=2,
        specs=["bce"],
        on_run_start=lambda i: events.append(
            ("start", i.label, i.seed, i.index, i.total, i.epochs)
        ),
        on_epoch=lambda i, log: events.append(("epoch", i.seed, log.epoch)),
        on_run_end=lambda i, r, resumed: events.append(("end", i.seed, r.status, resumed)),
    )
    assert events[0] == ("start", "bce", 0, 0, 2, 4)
    assert events[1:5] == [("epoch", 0, e) for e in (1, 2, 3, 4)]
    assert events[5] == ("end", 0, "ok", False) and events[6][:4] == ("start", "bce", 1, 1)


@pytest.mark.parametrize(
    ("specs", "kw", "kind", "match"),
    [
        (["bce", "bcee"], {}, ValueError, r"loss spec 'bcee': parse\(\): .*Did you mean 'bce'"),
        (["bce", "ranknet"], {}, ValueError, r"loss spec 'ranknet': validate_spec\(\)"),
        (
            ["bce", " bce() "],
            {},
            ValueError,
            r"`specs` must be distinct losses; got 'bce' and 'bce\(\)'",
        ),
        ([], {}, ValueError, r"`specs` must hold at least one loss spec"),
        ("bce", {}, TypeError, r"`specs` must be a list of spec strings; got str"),
        (["bce", 3], {}, TypeError, r"`specs\[1\]` must be a spec string; got int"),
        (["bce"], {"seeds": 0}, ValueError, r"`seeds` must be at least 1; got 0"),
        (["bce"], {"seeds": 2.0}, TypeError, r"`seeds` must be an int; got float"),
        (
            ["bce"],
            {"train_options": {"epochz": 3}},
            ValueError,
            r"`train_options` must hold options of the train function .*; got 'epochz'",
        ),
        (
            ["bce"],
            {"train_options": {"label": "x"}},
            ValueError,
            r"`train_options` must not set 'label'",
        ),
        (["bce"], {"train_options": {"lr": math.nan}}, ValueError, r"plain JSON values"),
        (["bce", "focal"], {"labels": ["x", "x"]}, ValueError, r"`labels` must be distinct"),
        (["bce", "focal"], {"labels": ["x"]}, ValueError, r"`labels` must be 2 non-empty strings"),
    ],
)
def test_everything_is_checked_before_training(
    data: TaskData, tmp_path: Path, specs: Any, kw: dict, kind: type, match: str
) -> None:
    train = FakeTrain()
    with pytest.raises(kind, match=match):
        _run(data, tmp_path / "out", train, specs=specs, **kw)
    assert train.calls == [] and not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(data: TaskData, tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    train = FakeTrain()
    with pytest.raises(ValueError, match=r"`out` must be a folder \(it is a file\)"):
        _run(data, f, train)
    assert train.calls == []


def test_default_validation_hook_is_the_task_check(data: TaskData) -> None:
    """Without validate_fn, train's tasks.validate_spec refuses a loss of another task."""
    train = FakeTrain()
    with pytest.raises(ValueError, match=r"loss spec 'ranknet': validate_spec\(\).*binary task"):
        run_comparison(data, ["bce", "ranknet"], seeds=1, train_fn=train)
    assert train.calls == []


# ----------------------------------------------------------------------------- rendering
@pytest.fixture()
def comp(data: TaskData) -> Comparison:
    return _run(
        data,
        None,
        FakeTrain(diverge={("1.0*focal(gamma=1)", 1): 3}),
        specs=["bce", "1.0*focal(gamma=1)", "0.5*bce + 0.5*focal"],
    )


def test_markdown_table(comp: Comparison) -> None:
    text = markdown(comp)
    lines = text.splitlines()
    assert lines[0] == "# losslab compare: toy (binary), 3 seed(s)"
    assert "| metric | `bce` | `1.0*focal(gamma=1)` | `0.5*bce + 0.5*focal` |" in lines
    assert "|---|---:|---:|---:|" in lines
    for key in comp.metric_keys:
        row = next(line for line in lines if line.startswith(f"| {key}"))
        cells = row.strip("|").split(" | ")[1:]
        assert len(cells) == 3
        for s, cell in zip(comp.losses, cells):
            stat = s.metrics[key]
            plain = f"{format_number(stat.mean)} ± {format_number(stat.std, like=stat.mean)}"
            plain += f" ({stat.rank})" if stat.rank is not None else ""
            assert cell.strip() == (f"**{plain}**" if stat.best else plain)
    primary = next(line for line in lines if line.startswith("| average_precision"))
    assert "↑ (primary)" in primary and primary.count("**") == 2  # exactly one best (no tie here)
    assert next(line for line in lines if line.startswith("| calibration_error")).startswith(
        "| calibration_error ↓ |"
    )
    assert "| runs | 3/3 ok | 2/3 ok, diverged at epoch 3 | 3/3 ok |" in lines
    assert any(line.startswith("| time / epoch |") for line in lines)
    assert any(line.startswith("| peak memory |") and "MiB" in line for line in lines)
    assert "- `1.0*focal(gamma=1)`: `focal(gamma=1)`" in lines
    assert lines[-1] == "![metrics and learning curves](report.png)"
    assert "report.png" not in markdown(comp, image=None)


def test_json_schema(comp: Comparison, tmp_path: Path) -> None:
    paths = write_report(comp, tmp_path, png=False)
    report = json.loads(paths["json"].read_text())
    assert list(report) == [
        "dataset", "task", "config", "primary_metric", "main_metrics", "losses", "metrics", "runs", "timings",
    ]  # fmt: skip
    assert report["dataset"]["name"] == "toy" and report["dataset"]["sizes"] == {
        "train": 40,
        "val": 40,
        "test": 40,
    }
    assert report["task"] == "binary" and report["config"]["seeds"] == [0, 1, 2]
    assert [lo["label"] for lo in report["losses"]] == [
        "bce",
        "1.0*focal(gamma=1)",
        "0.5*bce + 0.5*focal",
    ]
    lo = report["losses"][1]
    assert {
        "label",
        "spec",
        "runs",
        "ok",
        "diverged",
        "diverged_epochs",
        "status",
        "metrics",
        "curves",
    } == set(lo)
    assert (
        lo["ok"] == 2
        and lo["diverged_epochs"] == [3]
        and set(lo["curves"]) == {"loss/total", "loss/a"}
    )
    ap = report["metrics"]["average_precision"]
    assert ap["higher_is_better"] is True and ap["primary"] is True
    assert set(ap["per_loss"]) == {"bce", "1.0*focal(gamma=1)", "0.5*bce + 0.5*focal"}
    assert set(ap["per_loss"]["bce"]) == {"mean", "std", "n", "rank", "best"}
    assert len(report["runs"]) == 9
    run = report["runs"][0]
    assert "seconds_per_epoch" not in run and "seconds" not in run["history"][0] and run["key"]
    t = report["timings"]
    assert set(t) == {"per_loss", "runs", "resumed_runs"}
    assert set(t["per_loss"]["bce"]) == {"seconds_per_epoch", "peak_memory_bytes"}
    assert len(t["runs"]) == 9 and len(t["runs"][0]["epoch_seconds"]) == 4
    assert to_json(comp) == paths["json"].read_text()


def test_png_is_written_and_valid(comp: Comparison, tmp_path: Path) -> None:
    paths = write_report(comp, tmp_path)
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md", "report.png"]
    # also with every run of a loss diverged before its first epoch (no curve, no bar)
    runs = [
        replace(r, status="diverged", diverged_epoch=1, history=[], test_metrics={})
        for r in comp.runs
    ]
    empty = summarize(runs, dataset={"name": "toy"}, task="binary", config={})
    out = write_png(empty, tmp_path / "empty.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rich_table_marks_best_in_bold_and_shows_labels_literally(data: TaskData) -> None:
    import io

    from rich.console import Console

    from losslab.compare.render import rich_table

    comp = _run(data, None, FakeTrain(), specs=["bce", "focal(gamma=1)"], seeds=2)
    table = rich_table(comp)
    labels = [str(c.header) for c in table.columns]
    assert labels[:3] == ["metric", "bce", "focal(gamma=1)"]
    ap = [c for c in table.columns[1:]]
    row = comp.metric_keys.index("average_precision")
    for col, s in zip(ap, comp.losses):
        cell = col._cells[row]
        assert ("bold" in str(cell.style)) == s.metrics["average_precision"].best
    buf = io.StringIO()
    print_table(comp, file=buf, width=160)
    text = buf.getvalue()
    assert "average_precision ↑ (primary)" in text and "2/2 ok" in text
    # a label with rich markup characters is shown as written
    weird = summarize(
        [_run_result("class_balanced(samples_per_class=[4, 1])", 0, {"acc": 0.5})],
        dataset={},
        task="binary",
        config={},
    )
    buf = io.StringIO()
    Console(file=buf, width=200).print(rich_table(weird))
    assert "class_balanced(samples_per_class=[4, 1])" in buf.getvalue()
