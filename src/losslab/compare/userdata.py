"""User data for ``losslab compare --data FILE --target COLUMN``: a CSV or NPZ file as a TaskData.

Formats:

* **CSV** (``.csv``, UTF-8, an optional BOM): a header row of unique column names, then one
  row per example, every row with as many cells as the header; blank lines are skipped.
  Every column except the target is a numeric feature. Read with the ``csv`` module.
* **NPZ** (``.npz``, ``numpy.savez``; no pickled objects), either
  - an array ``x`` of shape ``(N, F)`` (or ``(N,)``: one feature) holding the features, and
    the target as another 1-D array of length ``N`` named by ``target`` (usually ``y``); any
    other arrays are ignored; or
  - named columns: every array 1-D with the same length ``N``; ``target`` names one, the
    others are the features, in the file's order.

Target and task (``task=None`` infers it):

* exactly 2 distinct values -> ``binary``: the larger value (numbers) or the later in sorted
  order (text: ``"no" < "yes"``, ``"B" < "M"``) is the positive class 1, the other 0;
* integer-valued numbers or text labels with 3 to 50 distinct values -> ``multiclass``, class
  ids in the sorted order of the values;
* any other numbers -> ``regression``.

An explicit ``task`` (``binary``, ``multiclass`` or ``regression``) overrides the inference
when the target fits it: binary needs exactly 2 values, multiclass integer or text labels,
regression numbers. ``extra["classes"]`` lists the original value of each class id.

Preparation: ``max_rows`` subsamples (seeded; stratified for classification); the split is the
60/20/20 split of :mod:`losslab.compare.datasets` (stratified for classification, so every
class needs at least 3 rows); features are standardized with the training split's statistics,
and so is a regression target (``extra``: ``target_mean``, ``target_std``), as for the embedded
``diabetes`` dataset.

Every problem is one ``ValueError`` line naming the file, the column and the line (CSV, 1-based,
the header is line 1) or row index (NPZ, 0-based): a missing file, an unreadable or empty file,
another extension, a missing target column (did-you-mean), a non-numeric feature, a missing or
NaN/inf cell, a single class, fewer than 20 rows or fewer than 3 rows of a class, no feature
columns, or an explicit task the target contradicts.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import zipfile
from pathlib import Path
from typing import Any, NoReturn, Optional, Union, cast

import numpy as np

from losslab._checks import check_int_option, fail, suggest
from losslab.compare._types import TASKS, TaskData
from losslab.compare.datasets import MIN_PER_CLASS, MIN_ROWS, tabular_task

__all__ = ["USER_TASKS", "load_user_data"]

_FN = "load_user_data"
USER_TASKS = ("binary", "multiclass", "regression")
#: Most distinct values of an inferred multiclass target.
MAX_CLASSES = 50
#: Cells read as missing values in a CSV (case-insensitive, after stripping blanks).
_MISSING = {"", "nan", "na", "n/a", "null", "none", "?"}


def _bad(expected: str, got: str, hint: Optional[str] = None) -> NoReturn:
    fail(_FN, "path", expected, got, raw_got=True, hint=hint)


def _short(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} columns)" if len(names) > limit else "")


class _Table:
    """Parsed file: numeric features, raw target values and how to point at a row."""

    def __init__(
        self,
        features: np.ndarray,
        names: list[str],
        target: np.ndarray,
        where: Any,
    ) -> None:
        self.features = features  # (N, F) float64, finite
        self.names = names
        self.target = target  # (N,) float64 or str objects
        self.where = where  # row index -> "line 7" / "row 6"


# ----------------------------------------------------------------------------- CSV
def _read_csv(path: Path, shown: str, target: str) -> _Table:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            # line_num: the file line where the record ends (1-based; blank lines skipped).
            rows = [(reader.line_num, row) for row in reader if row]
    except UnicodeDecodeError as exc:
        _bad(
            "be a UTF-8 text CSV file",
            f"{shown}, which cannot be decoded ({exc.reason} at byte {exc.start})",
        )
    except (OSError, csv.Error) as exc:
        _bad("be a readable CSV file", f"{shown} ({type(exc).__name__}: {exc})")
    if not rows:
        _bad("hold a header row and data rows", f"an empty file {shown}")
    _, header = rows[0]
    names = [h.strip() for h in header]
    for i, h in enumerate(names):
        if not h:
            _bad("have a name for every header cell", f"an empty name in column {i + 1} of {shown}")
    seen: set[str] = set()
    for h in names:
        if h in seen:
            _bad("have unique column names", f"{h!r} twice in the header of {shown}")
        seen.add(h)
    t_col = _target_index(names, target, shown)
    data = rows[1:]
    if not data:
        _bad(f"hold at least {MIN_ROWS} data rows", f"a header only in {shown}")
    width = len(names)
    feature_cols = [j for j in range(width) if j != t_col]
    features = np.empty((len(data), len(feature_cols)), dtype=np.float64)
    raw_target: list[str] = []
    lines = np.array([n for n, _ in data])
    for i, (line, row) in enumerate(data):
        if len(row) != width:
            _bad(
                f"have {width} cells on every line, like its header",
                f"{len(row)} at line {line} of {shown}",
            )
        for k, j in enumerate(feature_cols):
            features[i, k] = _number(row[j], names[j], f"line {line}", shown)
        cell = row[t_col].strip()
        if cell.lower() in _MISSING:
            _missing_cell(row[t_col], names[t_col], f"line {line}", shown)
        raw_target.append(cell)
    return _Table(
        features,
        [names[j] for j in feature_cols],
        _target_values(raw_target),
        lambda i: f"line {lines[i]}",
    )


def _number(cell: str, column: str, where: str, shown: str) -> float:
    text = cell.strip()
    if text.lower() in _MISSING:
        _missing_cell(cell, column, where, shown)
    try:
        value = float(text)
    except ValueError:
        _bad(
            "hold numeric features only",
            f"{cell!r} in column {column!r} at {where} of {shown}",
            hint="Encode text features as numbers or drop the column.",
        )
    if not math.isfinite(value):
        _missing_cell(cell, column, where, shown)
    return value


def _missing_cell(cell: Any, column: str, where: str, shown: str) -> NoReturn:
    _bad(
        "hold no missing, NaN or infinite values",
        f"{cell!r} in column {column!r} at {where} of {shown}",
        hint="Fill or drop those rows first.",
    )


def _target_values(raw: list[str]) -> np.ndarray:
    """Numbers when every target cell is one, else the text labels."""
    try:
        values = np.array([float(c) for c in raw], dtype=np.float64)
    except ValueError:
        return np.array(raw, dtype=object)
    return values


def _target_index(names: list[str], target: str, shown: str) -> int:
    if target not in names:
        fail(
            _FN,
            "target",
            f"name a column of {shown} ({_short(names)})",
            target,
            hint=suggest(target, names),
        )
    return names.index(target)


# ----------------------------------------------------------------------------- NPZ
def _read_npz(path: Path, shown: str, target: str) -> _Table:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        _bad(
            "be a readable NPZ file (numpy.savez, no pickled objects)",
            f"{shown} ({type(exc).__name__}: {exc})",
        )
    if not arrays:
        _bad("hold arrays", f"an empty NPZ file {shown}")
    names = list(arrays)
    if "x" in arrays and target != "x":
        candidates = [n for n in names if n != "x"]
        _target_index(candidates, target, shown)
        x = arrays["x"]
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            _bad("hold `x` as a (N, F) array", f"shape {tuple(x.shape)} in {shown}")
        columns = {f"x[:, {j}]": x[:, j] for j in range(x.shape[1])}
        y = arrays[target]
        if y.ndim != 1 or len(y) != len(x):
            _bad(
                f"hold the target {target!r} as a 1-D array of length {len(x)} (the rows of `x`)",
                f"shape {tuple(y.shape)} in {shown}",
            )
    else:
        _target_index(names, target, shown)
        n = len(arrays[target]) if arrays[target].ndim else 0
        for k, a in arrays.items():
            if a.ndim != 1 or len(a) != n:
                _bad(
                    f"hold 1-D columns of one length ({n}, like {target!r}) or an array `x`",
                    f"{k!r} of shape {tuple(a.shape)} in {shown}",
                )
        columns = {k: a for k, a in arrays.items() if k != target}
        y = arrays[target]
    n_rows = len(y)
    features = np.empty((n_rows, len(columns)), dtype=np.float64)
    for k, (name, col) in enumerate(columns.items()):
        if col.dtype.kind not in "biuf":
            first = col[0].item() if len(col) else None
            _bad(
                "hold numeric features only",
                f"dtype {col.dtype} ({first!r} at row 0) in column {name!r} of {shown}",
                hint="Encode text features as numbers or drop the column.",
            )
        values = col.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            _missing_cell(float(values[bad[0]]), name, f"row {bad[0]}", shown)
        features[:, k] = values
    if y.dtype.kind in "biuf":
        target_values = y.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(target_values))
        if bad.size:
            _missing_cell(float(target_values[bad[0]]), target, f"row {bad[0]}", shown)
    elif y.dtype.kind in "US":
        texts = [str(v.decode() if isinstance(v, bytes) else v).strip() for v in y]
        for i, v in enumerate(texts):
            if v.lower() in _MISSING:
                _missing_cell(y[i].item(), target, f"row {i}", shown)
        target_values = _target_values(texts)
    else:
        _bad(
            "hold a numeric or text target",
            f"dtype {y.dtype} in column {target!r} of {shown}",
        )
    return _Table(features, list(columns), target_values, lambda i: f"row {i}")


# ----------------------------------------------------------------------------- target -> task
def _label(value: Any) -> Union[int, float, str]:
    """A class's original value as a plain JSON value."""
    if isinstance(value, str):
        return str(value)
    value = float(value)
    return int(value) if value.is_integer() else value


def _encode(
    table: _Table, task: Optional[str], target: str, shown: str
) -> tuple[str, np.ndarray, list[Any]]:
    """The task, the encoded target and the original value of each class."""
    values = table.target
    numeric = values.dtype != object
    distinct = np.unique(values)
    n_distinct = len(distinct)
    if n_distinct < 2:
        fail(
            _FN,
            "target",
            f"have at least 2 distinct values in {shown} (a single class cannot be compared)",
            f"{target!r}, whose only value is {_label(distinct[0])!r}",
            raw_got=True,
        )
    integer = numeric and bool(np.all(values == np.round(values)))
    if task is None:
        if n_distinct == 2:
            task = "binary"
        elif (integer or not numeric) and n_distinct <= MAX_CLASSES:
            task = "multiclass"
        elif numeric:
            task = "regression"
        else:
            first = _first_text(values)
            fail(
                _FN,
                "target",
                f"name a numeric column or one of 2-{MAX_CLASSES} class labels in {shown}",
                f"{target!r}, with {n_distinct} distinct values and text such as "
                f"{_label(values[first])!r} at {table.where(first)}",
                raw_got=True,
            )
    elif task == "binary" and n_distinct != 2:
        fail(
            _FN,
            "task",
            f"fit the target: 'binary' needs exactly 2 distinct values in column {target!r} of {shown}",
            f"'binary' with {n_distinct} values",
            raw_got=True,
        )
    elif task == "multiclass" and numeric and not integer:
        first = int(np.flatnonzero(values != np.round(values))[0])
        fail(
            _FN,
            "task",
            f"fit the target: 'multiclass' needs integer or text labels in column {target!r} of {shown}",
            f"'multiclass' with {_label(values[first])!r} at {table.where(first)}",
            raw_got=True,
        )
    elif task == "regression" and not numeric:
        first = _first_text(values)
        fail(
            _FN,
            "task",
            f"fit the target: 'regression' needs numbers in column {target!r} of {shown}",
            f"'regression' with {_label(values[first])!r} at {table.where(first)}",
            raw_got=True,
        )
    if task == "regression":
        return task, values.astype(np.float64), []
    # Class ids in the sorted order of the values: binary 1 = the larger / later value.
    ids = np.searchsorted(distinct, values).astype(np.int64)
    counts = np.bincount(ids, minlength=n_distinct)
    small = int(np.argmin(counts))
    if counts[small] < MIN_PER_CLASS:
        fail(
            _FN,
            "target",
            f"have at least {MIN_PER_CLASS} rows of every class in {shown} (one per split)",
            f"{target!r}, whose class {_label(distinct[small])!r} has {counts[small]} row"
            + ("s" if counts[small] != 1 else ""),
            raw_got=True,
        )
    return task, ids, [_label(v) for v in distinct]


def _first_text(values: np.ndarray) -> int:
    for i, v in enumerate(values):
        try:
            float(v)
        except ValueError:
            return i
    return 0  # pragma: no cover - only called for text targets


# ----------------------------------------------------------------------------- entry point
def load_user_data(
    path: Union[str, os.PathLike],
    *,
    target: str,
    task: Optional[str] = None,
    seed: int = 0,
    max_rows: Optional[int] = None,
) -> TaskData:
    """Load a CSV or NPZ file as a :class:`~losslab.compare._types.TaskData` (see the module).

    Args:
        path: a ``.csv`` or ``.npz`` file.
        target: the target column (CSV header name, NPZ array name).
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``; ``None`` infers it.
        seed: draws the subsample and the 60/20/20 split.
        max_rows: at most this many rows (at least 20), subsampled before splitting.

    Raises:
        ValueError: one line naming the file, the column and the line or row.
        TypeError: ``path`` not a str or path, ``target`` not a str, ``seed``/``max_rows`` not
            ints.
    """
    if not isinstance(path, (str, os.PathLike)):
        fail(_FN, "path", "be a str or path", type(path).__name__, kind=TypeError, raw_got=True)
    if not isinstance(target, str):
        fail(_FN, "target", "be a str", type(target).__name__, kind=TypeError, raw_got=True)
    if task is not None and task not in USER_TASKS:
        hint = suggest(task, USER_TASKS) if isinstance(task, str) else None
        if task in TASKS:
            hint = "User data supports tabular tasks only; use an embedded dataset for the others."
        choices = " | ".join(repr(t) for t in USER_TASKS)
        fail(_FN, "task", f"be None or one of {choices}", task, hint=hint)
    seed = int(cast(int, check_int_option(_FN, "seed", seed, low=0)))
    max_rows = check_int_option(_FN, "max_rows", max_rows, low=MIN_ROWS, allow_none=True)
    file = Path(path)
    shown = repr(str(path))
    if not file.is_file():
        what = "a directory" if file.is_dir() else "no such file"
        _bad("be an existing file", f"{shown} ({what})")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        table = _read_csv(file, shown, target)
    elif suffix == ".npz":
        table = _read_npz(file, shown, target)
    else:
        _bad("be a .csv or .npz file", f"{shown} (extension {file.suffix or 'none'!r})")
    n_rows, n_features = table.features.shape
    if n_features == 0:
        _bad(
            "hold at least one feature column besides the target",
            f"only {target!r} in {shown}",
        )
    if n_rows < MIN_ROWS:
        _bad(f"hold at least {MIN_ROWS} data rows", f"{n_rows} in {shown}")
    inferred = task is None
    task, y, classes = _encode(table, task, target, shown)
    train, val, test, extra = tabular_task(
        table.features, y, task, seed, max_rows, standardize_target=True
    )
    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    how = "inferred" if inferred else "given"
    if task == "binary":
        classes_text = f"; 1 = {classes[1]!r}, 0 = {classes[0]!r}"
    elif task == "multiclass":
        classes_text = f"; {len(classes)} classes, ids in the sorted order of the values"
    else:
        classes_text = "; target standardized with training-split statistics"
    return TaskData(
        name=file.name,
        task=task,
        train=train,
        val=val,
        test=test,
        num_classes=len(classes) if task == "multiclass" else None,
        description=f"user data {file.name}: {n_rows} rows, {n_features} features, target "
        f"{target!r} ({task}, {how})",
        provenance=f"user file {file.name} (sha256 {digest}...), {suffix[1:].upper()}; "
        f"features standardized with training-split statistics{classes_text}.",
        extra={
            "target": target,
            "features": table.names,
            "task_inferred": inferred,
            "classes": classes,
            "rows": n_rows,
            **extra,
        },
    )
