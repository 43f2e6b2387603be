"""Embedded datasets (``losslab.compare.datasets``) and user files (``losslab.compare.userdata``).

Checks are made against the raw package data (sklearn / statsmodels) where the derivation can
be undone: the malignant flip, the forecasting windows, the user-file round trips.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from losslab.compare import datasets as D
from losslab.compare._types import TASKS, TaskData
from losslab.compare.datasets import DATASETS, list_datasets, load_dataset
from losslab.compare.userdata import load_user_data

SPLITS = ("train", "val", "test")

#: name -> (task, input shape per example, target shape per example, target dtype, num_classes)
EXPECTED: dict[str, tuple[str, tuple[int, ...], tuple[int, ...], torch.dtype, Any]] = {
    "digits-binary": ("binary", (64,), (), torch.float32, None),
    "breast-cancer": ("binary", (30,), (), torch.float32, None),
    "digits": ("multiclass", (64,), (), torch.int64, 10),
    "diabetes": ("regression", (10,), (), torch.float32, None),
    "digits-seg": ("segmentation", (1, 32, 32), (32, 32), torch.int64, 11),
    "diabetes-rank": ("ranking", (10,), (), torch.int64, None),
    "sunspots": ("forecasting", (22,), (5,), torch.float32, None),
    "co2": ("forecasting", (104,), (13,), torch.float32, None),
}


def _tensors(data: TaskData) -> list[torch.Tensor]:
    out = []
    for s in SPLITS:
        split = getattr(data, s)
        out += [split.x, split.y] + ([] if split.group is None else [split.group])
    return out


# ----------------------------------------------------------------------------- the table
def test_every_dataset_is_listed_and_expected() -> None:
    assert set(EXPECTED) == set(DATASETS)
    listing = list_datasets()
    assert [d["name"] for d in listing] == list(DATASETS)
    for entry in listing:
        assert set(entry) >= {"name", "task", "description", "provenance", "sizes", "requires"}
        assert entry["task"] in TASKS and entry["task"] == EXPECTED[entry["name"]][0]
        assert entry["description"] and entry["provenance"]
        assert entry["requires"] in (None, "datasets")
    tasks = {d["task"] for d in listing}
    assert tasks == set(TASKS)  # one dataset per task at least
    derived = {d["name"] for d in listing if "derived" in d["provenance"]}
    assert {"digits-seg", "diabetes-rank"} <= derived


@pytest.mark.parametrize("name", list(EXPECTED))
def test_dataset_loads_with_documented_shapes(name: str) -> None:
    task, x_shape, y_shape, y_dtype, num_classes = EXPECTED[name]
    data = load_dataset(name)
    info = DATASETS[name]
    assert data.name == name and data.task == task and data.num_classes == num_classes
    assert {s: len(getattr(data, s)) for s in SPLITS} == dict(info.sizes)
    n = sum(info.sizes.values())
    # 60/20/20 up to rounding (forecasting: of the time line; the first `window` points and
    # the windows straddling a cut are not targets)
    tol = 0.05 if task == "forecasting" else 0.01
    assert abs(info.sizes["train"] / n - 0.6) < tol and abs(info.sizes["val"] / n - 0.2) < tol
    for s in SPLITS:
        split = getattr(data, s)
        assert split.x.dtype == torch.float32 and tuple(split.x.shape[1:]) == x_shape
        assert split.y.dtype == y_dtype and tuple(split.y.shape[1:]) == y_shape
        assert split.y.shape[0] == split.x.shape[0]
        assert torch.isfinite(split.x).all()
        if y_dtype == torch.float32:
            assert torch.isfinite(split.y).all()
        assert (split.group is not None) == (task == "ranking")
    assert data.description and "\n" not in data.description and data.provenance
    meta = data.to_dict()  # JSON-friendly metadata (the runner writes it)
    assert meta["sizes"] == dict(info.sizes)
    import json

    json.dumps(meta)
    # Standardized with training statistics: the training inputs have mean 0 (and unit std
    # per non-constant feature); the other splits only approximately.
    if task not in ("forecasting",):
        assert abs(float(data.train.x.double().mean())) < 1e-5


@pytest.mark.parametrize("name", [n for n in EXPECTED if EXPECTED[n][0] != "forecasting"])
def test_same_seed_same_tensors_other_seed_other_split(name: str) -> None:
    a, b, c = load_dataset(name, seed=3), load_dataset(name, seed=3), load_dataset(name, seed=4)
    assert all(torch.equal(u, v) for u, v in zip(_tensors(a), _tensors(b)))
    # another seed draws another split (ranking: other queries, so maybe other sizes)
    assert a.test.x.shape != c.test.x.shape or not torch.equal(a.test.x, c.test.x)


def test_forecasting_ignores_the_seed() -> None:
    a, b = load_dataset("sunspots", seed=0), load_dataset("sunspots", seed=9)
    assert all(torch.equal(u, v) for u, v in zip(_tensors(a), _tensors(b)))


# ----------------------------------------------------------------------------- per dataset
def test_digits_binary_about_ten_percent_positives() -> None:
    data = load_dataset("digits-binary")
    for s in SPLITS:
        y = getattr(data, s).y
        assert set(y.unique().tolist()) == {0.0, 1.0}
        assert 0.09 < float(y.mean()) < 0.11
    from sklearn.datasets import load_digits

    assert int(data.train.y.sum() + data.val.y.sum() + data.test.y.sum()) == int(
        (load_digits().target == 9).sum()
    )
    three = load_dataset("digits-binary", positive=3)
    total = sum(int(getattr(three, s).y.sum()) for s in SPLITS)
    assert total == int((load_digits().target == 3).sum()) and three.extra["positive"] == 3


def test_breast_cancer_malignant_is_positive_and_imbalance() -> None:
    data = load_dataset("breast-cancer")
    y = torch.cat([data.train.y, data.val.y, data.test.y])
    assert int(y.sum()) == 212 and len(y) == 569  # sklearn: 212 malignant (coded 0), 357 benign
    # Malignant tumours are larger: feature 0 is "mean radius".
    x = data.train.x[:, 0]
    assert x[data.train.y == 1].mean() > x[data.train.y == 0].mean() + 1.0
    sub = load_dataset("breast-cancer", imbalance=0.1, seed=1)
    y = torch.cat([sub.train.y, sub.val.y, sub.test.y])
    assert int(y.sum()) == round(0.1 * 357) and int((y == 0).sum()) == 357
    assert all(getattr(sub, s).y.sum() >= 1 for s in SPLITS)
    other = load_dataset("breast-cancer", imbalance=0.1, seed=2)
    assert not torch.equal(sub.train.x, other.train.x)
    assert "malignant" in sub.provenance and "36" in sub.provenance


def test_digits_multiclass_every_class_in_every_split() -> None:
    data = load_dataset("digits")
    for s in SPLITS:
        counts = torch.bincount(getattr(data, s).y, minlength=10)
        assert (counts >= 30).all() and counts.numel() == 10


def test_diabetes_target_standardized_with_train_statistics() -> None:
    from sklearn.datasets import load_diabetes

    raw = load_diabetes().target
    data = load_dataset("diabetes")
    mean, std = data.extra["target_mean"], data.extra["target_std"]
    assert abs(float(data.train.y.double().mean())) < 1e-6
    assert abs(float(data.train.y.double().std(unbiased=False)) - 1) < 1e-5
    y = torch.cat([data.train.y, data.val.y, data.test.y]).double() * std + mean
    assert np.allclose(np.sort(y.numpy()), np.sort(raw), atol=1e-3)
    assert 100 < mean < 200 and 50 < std < 100  # the raw target: 25-346, mean 152


def test_digits_seg_composition() -> None:
    data = load_dataset("digits-seg", n_images=100, seed=1)
    assert [len(getattr(data, s)) for s in SPLITS] == [60, 20, 20]
    y, x = data.train.y, data.train.x[:, 0]
    assert int(y.min()) == 0 and int(y.max()) <= 10
    background = float(x[y == 0].min())
    assert (x[y > 0] > background).all()  # labelled pixels carry ink
    for img in y:
        labels = set(img.unique().tolist()) - {0}
        assert 1 <= len(labels) <= 4
        # digits sit in distinct 16x16 cells: each cell holds at most one digit class
        for r in (0, 16):
            for c in (0, 16):
                assert len(set(img[r : r + 16, c : c + 16].unique().tolist()) - {0}) <= 1
    assert 0.8 < float((y == 0).float().mean()) < 0.97


def test_diabetes_rank_queries_never_cross_splits() -> None:
    data = load_dataset("diabetes-rank", seed=5)
    groups = [set(getattr(data, s).group.tolist()) for s in SPLITS]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert len(groups[0]) == 17 and len(groups[1]) == 6 and len(groups[2]) == 6
    for s in SPLITS:
        split = getattr(data, s)
        _, counts = torch.unique_consecutive(split.group, return_counts=True)
        assert len(counts) == len(set(split.group.tolist()))  # each query is contiguous
        assert int(counts.min()) >= 14 and int(counts.max()) <= 16
        assert int(split.y.min()) >= 0 and int(split.y.max()) <= 4
    # quintiles of the training items: 20 % each grade (up to ties)
    counts = torch.bincount(data.train.y, minlength=5).double() / len(data.train)
    assert ((counts - 0.2).abs() < 0.03).all()
    small = load_dataset("diabetes-rank", max_rows=60, query_size=5)
    assert sum(len(getattr(small, s)) for s in SPLITS) == 60


@pytest.mark.parametrize("name", ["sunspots", "co2"])
def test_forecasting_windows_are_chronological(name: str) -> None:
    data = load_dataset(name)
    w, h = data.extra["window"], data.extra["horizon"]
    assert data.extra["season"] == (1 if name == "sunspots" else 52)
    for s in SPLITS:
        split = getattr(data, s)
        # consecutive windows move by one step, the target follows the input
        assert torch.equal(split.x[1:, :-1], split.x[:-1, 1:])
        assert torch.equal(split.x[1:, -1], split.y[:-1, 0])
    # the first window of a later split looks back at the last targets of the earlier one
    assert torch.equal(data.val.x[0, -h:], data.train.y[-1])
    assert torch.equal(data.test.x[0, -h:], data.val.y[-1])
    # undo the scaling: the first training window is the start of the raw series
    import statsmodels.datasets as smd

    column = "SUNACTIVITY" if name == "sunspots" else "co2"
    raw = getattr(smd, name).load_pandas().data[column].to_numpy()
    first = data.train.x[0].double() * data.extra["scale_std"] + data.extra["scale_mean"]
    expect = raw[:w]
    if name == "co2":  # gaps interpolated
        assert np.isnan(raw).sum() == data.extra["interpolated"] == 59
        t = np.arange(len(raw))
        ok = ~np.isnan(raw)
        expect = np.interp(t, t[ok], raw[ok])[:w]
    assert np.allclose(first.numpy(), expect, atol=1e-3)
    # the scale comes from the training period: its part of the series has mean 0
    t1 = math.floor(0.6 * len(raw) + 0.5)
    assert abs(raw[:t1][~np.isnan(raw[:t1])].mean() - data.extra["scale_mean"]) < 0.5


def test_max_rows_subsamples_seeded_and_stratified() -> None:
    data = load_dataset("digits", max_rows=40, seed=2)
    sizes = [len(getattr(data, s)) for s in SPLITS]
    assert sum(sizes) == 40
    for s in SPLITS:  # 3+ rows per class, one in each split
        assert torch.bincount(getattr(data, s).y, minlength=10).min() >= 1
    again = load_dataset("digits", max_rows=40, seed=2)
    assert torch.equal(data.train.x, again.train.x)
    binary = load_dataset("digits-binary", max_rows=50)
    assert sum(len(getattr(binary, s)) for s in SPLITS) == 50
    assert all(getattr(binary, s).y.sum() >= 1 for s in SPLITS)
    assert len(load_dataset("digits-seg", max_rows=30).train) == 18
    assert sum(len(getattr(load_dataset("co2", max_rows=100), s)) for s in SPLITS) <= 100


@pytest.mark.parametrize(
    ("call", "kind", "pattern"),
    [
        (
            lambda: load_dataset("digit"),
            ValueError,
            r"`name` must be one of .*Did you mean 'digits'\?",
        ),
        (
            lambda: load_dataset("mnist"),
            ValueError,
            r"got 'mnist'\. See `losslab compare --list-datasets`",
        ),
        (lambda: load_dataset(3), TypeError, r"`name` must be a str; got int"),
        (
            lambda: load_dataset("digits-binary", positiv=3),
            ValueError,
            r"options of 'digits-binary' \(positive\); got 'positiv'\. Did you mean 'positive'\?",
        ),
        (
            lambda: load_dataset("digits", positive=3),
            ValueError,
            r"`options` must be empty: 'digits' takes no options; got 'positive'",
        ),
        (
            lambda: load_dataset("digits-binary", positive=10),
            ValueError,
            r"`positive` must be a digit 0-9; got 10",
        ),
        (
            lambda: load_dataset("digits-binary", positive="9"),
            TypeError,
            r"`positive` must be an int digit",
        ),
        (
            lambda: load_dataset("breast-cancer", imbalance=0.9),
            ValueError,
            r"`imbalance` must be in \(0, 0\.59",
        ),
        (
            lambda: load_dataset("breast-cancer", imbalance=0.001),
            ValueError,
            r"`imbalance` must keep at least 3 malignant",
        ),
        (
            lambda: load_dataset("breast-cancer", imbalance=-1),
            ValueError,
            r"`imbalance` must be in \(0",
        ),
        (
            lambda: load_dataset("digits", max_rows=10),
            ValueError,
            r"`max_rows` must be an int >= 20 or None; got 10",
        ),
        (
            lambda: load_dataset("digits", max_rows=25),
            ValueError,
            r"`max_rows` must be at least 30 here",
        ),
        (lambda: load_dataset("digits", max_rows=True), TypeError, r"`max_rows` must be an int"),
        (lambda: load_dataset("digits", seed=-1), ValueError, r"`seed` must be an int >= 0"),
        (
            lambda: load_dataset("diabetes-rank", query_size=200),
            ValueError,
            r"`query_size` must leave at least 3 queries",
        ),
        (
            lambda: load_dataset("sunspots", window=300),
            ValueError,
            r"`window` must leave at least one window in each split of the 309 points",
        ),
        (
            lambda: load_dataset("co2", horizon=0),
            ValueError,
            r"`horizon` must be an int >= 1; got 0",
        ),
        (
            lambda: load_dataset("digits-seg", n_images=5),
            ValueError,
            r"`n_images` must be an int >= 20",
        ),
    ],
)
def test_load_dataset_errors(call: Any, kind: type, pattern: str) -> None:
    with pytest.raises(kind, match=pattern):
        call()


def test_missing_statsmodels_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    D._statsmodels_series.cache_clear()
    monkeypatch.setitem(sys.modules, "statsmodels.datasets.sunspots", None)
    try:
        with pytest.raises(
            ValueError, match=r"'sunspots' needs statsmodels.*pip install 'losslab\[datasets\]'"
        ):
            load_dataset("sunspots")
    finally:
        D._statsmodels_series.cache_clear()


def test_import_losslab_loads_no_dataset_packages() -> None:
    import subprocess

    code = (
        "import sys, losslab.compare.datasets, losslab.compare.userdata\n"
        "print(','.join(m for m in ('sklearn', 'statsmodels', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ----------------------------------------------------------------------------- user files
def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _table(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row ids 0..n-1, two noisy features and a yes/no label (about 1/3 yes)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.float64)
    feats = np.round(rng.normal(size=(n, 2)) * 10, 3)
    label = np.where(ids % 3 == 0, "yes", "no")
    return ids, feats, label


def _recover_ids(data: TaskData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo the (affine) standardization of the id column: ids, features and targets of all rows."""
    x = torch.cat([data.train.x, data.val.x, data.test.x]).double().numpy()
    y = torch.cat([data.train.y, data.val.y, data.test.y]).double().numpy()
    col = x[:, 0]
    step = np.diff(np.sort(col)).mean()
    ids = np.rint((col - col.min()) / step).astype(int)
    return ids, x, y


def test_user_csv_round_trip(tmp_path: Path) -> None:
    ids, feats, label = _table()
    path = _write_csv(
        tmp_path / "data.csv",
        ["id", "f1", "f2", "label"],
        [[int(i), *f, lab] for i, f, lab in zip(ids, feats, label)],
    )
    data = load_user_data(path, target="label", seed=1)
    assert data.task == "binary" and data.name == "data.csv" and data.num_classes is None
    assert data.extra["classes"] == ["no", "yes"] and data.extra["task_inferred"] is True
    assert data.extra["features"] == ["id", "f1", "f2"]
    assert [len(getattr(data, s)) for s in SPLITS] == [36, 12, 12]
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.float32
    rec, x, y = _recover_ids(data)
    assert sorted(rec.tolist()) == list(range(60))  # every row exactly once
    assert np.array_equal(y, (rec % 3 == 0).astype(float))  # "yes" (later in order) = 1
    # features: one affine map per column, from the training rows' statistics
    for j in (1, 2):
        slope, icpt = np.polyfit(feats[rec, j - 1], x[:, j], 1)
        assert np.allclose(slope * feats[rec, j - 1] + icpt, x[:, j], atol=1e-5)
    assert abs(float(data.train.x.double().mean())) < 1e-6
    same = load_user_data(str(path), target="label", seed=1)
    assert torch.equal(same.train.x, data.train.x)
    other = load_user_data(path, target="label", seed=2)
    assert not torch.equal(other.train.x, data.train.x)


def test_user_csv_bom_quotes_blank_lines(tmp_path: Path) -> None:
    ids, feats, label = _table(24)
    lines = ['"id","f 1",f2,label'] + [
        f'{int(i)},"{f[0]}",{f[1]},{lab}' for i, f, lab in zip(ids, feats, label)
    ]
    lines.insert(5, "")  # a blank line: skipped, but it still counts for line numbers
    path = tmp_path / "excel.csv"
    path.write_text("\ufeff" + "\n".join(lines) + "\n\n", encoding="utf-8")
    data = load_user_data(path, target="label")
    assert data.extra["features"] == ["id", "f 1", "f2"] and data.extra["rows"] == 24
    bad = "\n".join(lines).replace(f"{feats[6][1]},", "oops,", 1)
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ValueError, match=r"got 'oops' in column 'f2' at line 9 of"):
        load_user_data(path, target="label")


def test_user_npz_round_trip_both_layouts(tmp_path: Path) -> None:
    ids, feats, _ = _table()
    klass = (ids % 4).astype(np.int64) + 1  # 1..4 -> multiclass ids 0..3
    np.savez(tmp_path / "xy.npz", x=np.column_stack([ids, feats]), y=klass)
    a = load_user_data(tmp_path / "xy.npz", target="y")
    assert a.task == "multiclass" and a.num_classes == 4 and a.extra["classes"] == [1, 2, 3, 4]
    assert a.train.y.dtype == torch.int64
    rec, _, y = _recover_ids(a)
    assert np.array_equal(y, klass[rec] - 1)
    np.savez(tmp_path / "cols.npz", id=ids, f1=feats[:, 0], target=klass, f2=feats[:, 1])
    b = load_user_data(tmp_path / "cols.npz", target="target")
    assert b.extra["features"] == ["id", "f1", "f2"]
    assert all(torch.equal(u, v) for u, v in zip(_tensors(a), _tensors(b)))


def test_user_task_inference_and_override(tmp_path: Path) -> None:
    ids, feats, _ = _table()
    cases = {
        "zero_one": ((ids % 2), "binary", [0, 1]),
        "signs": (np.where(ids % 2 == 0, -1.0, 1.0), "binary", [-1, 1]),
        "grades": (ids % 5, "multiclass", [0, 1, 2, 3, 4]),
        "real": (feats[:, 0] * 0.37, "regression", []),
        "many_ints": (ids, "regression", []),  # 60 distinct integers > 50: regression
    }
    for name, (target, task, classes) in cases.items():
        np.savez(tmp_path / f"{name}.npz", x=feats, y=target)
        data = load_user_data(tmp_path / f"{name}.npz", target="y")
        assert (data.task, data.extra["classes"]) == (task, classes), name
    reg = load_user_data(tmp_path / "real.npz", target="y")
    assert abs(float(reg.train.y.double().mean())) < 1e-6 and "target_std" in reg.extra
    forced = load_user_data(tmp_path / "grades.npz", target="y", task="regression")
    assert forced.task == "regression" and forced.extra["task_inferred"] is False
    two = load_user_data(tmp_path / "zero_one.npz", target="y", task="multiclass")
    assert two.task == "multiclass" and two.num_classes == 2
    small = load_user_data(tmp_path / "grades.npz", target="y", max_rows=25)
    assert sum(len(getattr(small, s)) for s in SPLITS) == 25


def _bad_cases(tmp: Path) -> list[tuple[str, dict[str, Any], str]]:
    ids, feats, label = _table(30)
    good = [[int(i), *f, lab] for i, f, lab in zip(ids, feats, label)]
    header = ["id", "f1", "f2", "label"]

    def csv_file(name: str, rows: list[list[Any]], head: list[str] = header) -> str:
        return str(_write_csv(tmp / name, head, rows))

    def edit(row: int, col: int, value: Any) -> list[list[Any]]:
        rows = [list(r) for r in good]
        rows[row][col] = value
        return rows

    (tmp / "empty.csv").write_text("")
    (tmp / "binary.csv").write_bytes(b"\xff\xfe\x00garbage\x81\x82")
    (tmp / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    (tmp / "table.xlsx").write_text("a,b\n")
    (tmp / "ragged.csv").write_text("a,b,label\n" + "1,2,yes\n" * 5 + "1,no\n" + "1,2,no\n" * 20)
    np.savez(tmp / "inf.npz", x=np.where(ids[:, None] == 7, np.inf, feats), y=ids % 2)
    np.savez(tmp / "short.npz", x=feats, y=(ids % 2)[:-1])
    np.savez(tmp / "text.npz", a=feats[:, 0], b=np.array(["u"] * 30), y=ids % 2)
    np.savez(tmp / "pickled.npz", x=np.array([{"a": 1}] * 30, dtype=object), y=ids % 2)
    many = [[float(i), f"name{i}"] for i in range(60)]
    return [
        (
            str(tmp / "nope.csv"),
            {"target": "label"},
            r"`path` must be an existing file; got '.*nope\.csv' \(no such file\)",
        ),
        (str(tmp), {"target": "label"}, r"must be an existing file; got .* \(a directory\)"),
        (
            str(tmp / "table.xlsx"),
            {"target": "label"},
            r"must be a \.csv or \.npz file; got '.*table\.xlsx' \(extension '\.xlsx'\)",
        ),
        (
            str(tmp / "empty.csv"),
            {"target": "label"},
            r"must hold a header row and data rows; got an empty file '.*empty\.csv'",
        ),
        (
            csv_file("header.csv", []),
            {"target": "label"},
            r"must hold at least 20 data rows; got a header only in '.*header\.csv'",
        ),
        (
            str(tmp / "binary.csv"),
            {"target": "label"},
            r"must be a UTF-8 text CSV file; got '.*binary\.csv', which cannot be decoded",
        ),
        (str(tmp / "broken.npz"), {"target": "y"}, r"must be a readable NPZ file .*broken\.npz"),
        (
            csv_file("typo.csv", good),
            {"target": "lable"},
            r"`target` must name a column of '.*typo\.csv' \('id', 'f1', 'f2', 'label'\); got 'lable'\. Did you mean 'label'\?",
        ),
        (
            csv_file("text.csv", edit(4, 1, "red")),
            {"target": "label"},
            r"must hold numeric features only; got 'red' in column 'f1' at line 6 of '.*text\.csv'",
        ),
        (
            csv_file("hole.csv", edit(9, 2, "")),
            {"target": "label"},
            r"must hold no missing, NaN or infinite values; got '' in column 'f2' at line 11 of '.*hole\.csv'",
        ),
        (
            csv_file("nan.csv", edit(2, 0, "NaN")),
            {"target": "label"},
            r"no missing, NaN or infinite values; got 'NaN' in column 'id' at line 4",
        ),
        (
            csv_file("nolabel.csv", edit(3, 3, " ")),
            {"target": "label"},
            r"no missing, NaN or infinite values; got ' ' in column 'label' at line 5",
        ),
        (
            str(tmp / "inf.npz"),
            {"target": "y"},
            r"no missing, NaN or infinite values; got inf in column 'x\[:, 0\]' at row 7 of '.*inf\.npz'",
        ),
        (
            csv_file("one.csv", [[*r[:3], "yes"] for r in good]),
            {"target": "label"},
            r"`target` must have at least 2 distinct values in '.*one\.csv' \(a single class cannot be compared\); got 'label', whose only value is 'yes'",
        ),
        (
            csv_file("few.csv", good[:12]),
            {"target": "label"},
            r"must hold at least 20 data rows; got 12 in '.*few\.csv'",
        ),
        (
            csv_file("rare.csv", [[*r[:3], "yes" if i < 2 else "no"] for i, r in enumerate(good)]),
            {"target": "label"},
            r"must have at least 3 rows of every class in '.*rare\.csv' \(one per split\); got 'label', whose class 'yes' has 2 rows",
        ),
        (
            csv_file("only.csv", [[lab] for lab in label], ["label"]),
            {"target": "label"},
            r"must hold at least one feature column besides the target; got only 'label' in '.*only\.csv'",
        ),
        (
            csv_file("five.csv", [[*r[:3], int(r[0]) % 5] for r in good]),
            {"target": "label", "task": "binary"},
            r"`task` must fit the target: 'binary' needs exactly 2 distinct values in column 'label' of '.*five\.csv'; got 'binary' with 5 values",
        ),
        (
            csv_file("frac.csv", [[*r[:3], r[0] % 3 + 0.5] for r in good]),
            {"target": "label", "task": "multiclass"},
            r"'multiclass' needs integer or text labels in column 'label' .*; got 'multiclass' with 0\.5 at line 2",
        ),
        (
            csv_file("words.csv", good),
            {"target": "label", "task": "regression"},
            r"'regression' needs numbers in column 'label' .*; got 'regression' with 'yes' at line 2",
        ),
        (
            csv_file("seg.csv", good),
            {"target": "label", "task": "segmentation"},
            r"`task` must be None or one of 'binary' \| 'multiclass' \| 'regression'; got 'segmentation'\. User data supports tabular tasks only",
        ),
        (
            str(tmp / "ragged.csv"),
            {"target": "label"},
            r"must have 3 cells on every line, like its header; got 2 at line 7 of '.*ragged\.csv'",
        ),
        (
            csv_file("dup.csv", good, ["id", "f1", "id", "label"]),
            {"target": "label"},
            r"must have unique column names; got 'id' twice in the header",
        ),
        (
            str(tmp / "short.npz"),
            {"target": "y"},
            r"must hold the target 'y' as a 1-D array of length 30 \(the rows of `x`\); got shape \(29,\)",
        ),
        (
            str(tmp / "text.npz"),
            {"target": "y"},
            r"must hold numeric features only; got dtype <U1 \('u' at row 0\) in column 'b' of '.*text\.npz'",
        ),
        (
            str(tmp / "pickled.npz"),
            {"target": "y"},
            r"must be a readable NPZ file \(numpy\.savez, no pickled objects\); got '.*pickled\.npz' \(ValueError",
        ),
        (
            csv_file("names.csv", many, ["v", "label"]),
            {"target": "label"},
            r"`target` must name a numeric column or one of 2-50 class labels in '.*names\.csv'; got 'label', with 60 distinct values and text such as 'name0' at line 2",
        ),
        (
            csv_file("ok.csv", good),
            {"target": "label", "max_rows": 5},
            r"`max_rows` must be an int >= 20 or None; got 5",
        ),
    ]


def test_user_data_bad_inputs(tmp_path: Path) -> None:
    cases = _bad_cases(tmp_path)
    assert len(cases) >= 12
    for path, kwargs, pattern in cases:
        with pytest.raises(ValueError, match=r"^load_user_data\(\): .*" + pattern) as info:
            load_user_data(path, **kwargs)
        assert "\n" not in str(info.value), path


def test_user_data_type_errors(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"`target` must be a str; got int"):
        load_user_data(tmp_path / "a.csv", target=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`path` must be a str or path; got int"):
        load_user_data(3, target="y")  # type: ignore[arg-type]
