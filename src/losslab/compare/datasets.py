"""Embedded datasets of ``losslab compare``: real data shipped inside installed packages.

Nothing is downloaded: every dataset comes from data bundled with scikit-learn
(``sklearn.datasets.load_*``) or statsmodels (``statsmodels.datasets``, the optional extra
``losslab[datasets]``). :func:`load_dataset` turns one into a :class:`~losslab.compare._types.TaskData`
and :func:`list_datasets` describes them all (``losslab compare --list-datasets``).

==============  ============  =============================================================
name            task          what it is (options, defaults)
==============  ============  =============================================================
digits-binary   binary        sklearn digits, one digit (``positive=9``) against the rest
                              (about 10 % positives); the default of ``losslab compare``
breast-cancer   binary        sklearn breast cancer, malignant = 1; ``imbalance=None`` or a
                              positive:negative ratio to subsample the malignant class to
digits          multiclass    sklearn digits, 10 classes
diabetes        regression    sklearn diabetes, target standardized with train statistics
digits-seg      segmentation  32x32 images composed of 2-4 sklearn digits, per-pixel digit
                              labels, 11 classes (derived; ``n_images=1000``)
diabetes-rank   ranking       sklearn diabetes, graded relevance 0-4 from target quintiles,
                              seeded random queries (derived; ``query_size=15``)
sunspots        forecasting   statsmodels yearly sunspots 1700-2008 (``window=22``,
                              ``horizon=5``)
co2             forecasting   statsmodels weekly Mauna Loa CO2 1958-2001, gaps interpolated
                              (``window=104``, ``horizon=13``)
==============  ============  =============================================================

Rules shared by every dataset:

* Splits are 60/20/20 (train/val/test), drawn from ``seed`` with ``numpy.random.default_rng``
  (one independent stream per purpose: subsampling, splitting, composing), so the same seed
  gives bit-identical tensors. Per split size ``n``: ``val = test = max(1, floor(0.2 n + 0.5))``
  and ``train`` the rest. Classification splits are stratified: that rule is applied per class
  (so every class of a split-able dataset is in every split). Regression splits are plain
  seeded permutations. Ranking splits whole queries (no query crosses splits). Forecasting
  splits are chronological and do not depend on ``seed`` (see :func:`_forecasting`).
* Inputs are float32 and standardized with statistics of the training split only (per
  feature; a constant feature is centred and left unscaled). Targets follow
  :class:`~losslab.compare._types.Split`: float 0/1 (binary), int64 ids (multiclass,
  segmentation), float32 (regression, forecasting), int64 grades (ranking).
* ``max_rows`` (at least 20) subsamples, seeded, before splitting, for tiny test runs:
  stratified for classification (every class keeps at least 3 rows), whole images
  (segmentation: at most ``max_rows`` composed images), whole items before queries are formed
  (ranking), the most recent ``max_rows + window + horizon - 1`` points (forecasting).
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, cast

import numpy as np
import torch

from losslab._checks import check_float, check_int_option, fail, suggest
from losslab.compare._types import Split, TaskData

__all__ = ["DATASETS", "DatasetInfo", "list_datasets", "load_dataset"]

_FN = "load_dataset"
#: The smallest ``max_rows`` (also the smallest user data set, see userdata.py).
MIN_ROWS = 20
#: The smallest class of a classification dataset: one row in each split.
MIN_PER_CLASS = 3


# ----------------------------------------------------------------------------- seeded helpers
def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """An independent numpy stream per (seed, purpose): changing one use never shifts another."""
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode())])


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def split_sizes(n: int) -> tuple[int, int, int]:
    """``(train, val, test)`` sizes of a 60/20/20 split of ``n >= 3`` items, each at least 1."""
    val = max(1, _round_half_up(0.2 * n))
    return n - 2 * val, val, val


def random_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded 60/20/20 split of ``range(n)`` (indices in a seeded random order)."""
    perm = rng_for(seed, "split").permutation(n)
    n_train, n_val, _ = split_sizes(n)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded 60/20/20 split applied per class (every class needs >= 3 rows)."""
    rng = rng_for(seed, "split")
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_train, n_val, _ = split_sizes(len(idx))
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    # Shuffle each split so classes are interleaved (the trainer shuffles again per epoch).
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return train, val, test


def subsample(
    n_or_labels: Any, max_rows: Optional[int], seed: int, *, stratify: bool
) -> np.ndarray:
    """Sorted indices of at most ``max_rows`` rows (all rows when ``max_rows`` is None or larger).

    Stratified: each class keeps ``MIN_PER_CLASS`` rows, the rest is shared in proportion to
    the remaining class sizes (largest remainders), so the total is exactly ``max_rows``.
    """
    labels = np.asarray(n_or_labels) if stratify else None
    n = len(labels) if labels is not None else int(n_or_labels)
    if max_rows is None or max_rows >= n:
        return np.arange(n)
    rng = rng_for(seed, "subsample")
    if labels is None:
        return np.sort(rng.choice(n, size=max_rows, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    base = np.minimum(counts, MIN_PER_CLASS)
    left = max_rows - int(base.sum())
    if left < 0:
        fail(
            _FN,
            "max_rows",
            f"be at least {int(base.sum())} here (3 rows for each of {len(classes)} classes)",
            max_rows,
        )
    spare = counts - base
    share = spare / spare.sum() * left
    quota = np.floor(share).astype(np.int64)
    # Largest remainders get the rows lost to flooring (ties broken by class order).
    order = np.argsort(-(share - quota), kind="stable")
    quota[order[: left - int(quota.sum())]] += 1
    quota += base
    keep = [
        rng.choice(np.flatnonzero(labels == cls), size=int(q), replace=False)
        for cls, q in zip(classes, quota)
    ]
    return np.sort(np.concatenate(keep))


def standardize(
    train: np.ndarray, *others: np.ndarray, axis: Any = 0
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Centre and scale with the training statistics (float64 math; std 0 -> scale 1)."""
    train = np.asarray(train, dtype=np.float64)
    mean = train.mean(axis=axis, keepdims=True)
    std = train.std(axis=axis, keepdims=True)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    out = [(np.asarray(a, dtype=np.float64) - mean) / std for a in (train, *others)]
    return out, mean, std


def as_float32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def as_int64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


def tabular_task(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    seed: int,
    max_rows: Optional[int],
    *,
    standardize_target: bool = False,
) -> tuple[Split, Split, Split, dict[str, Any]]:
    """Subsample, split (stratified for classification) and standardize a tabular dataset.

    Returns the three splits and the extra metadata (``target_mean`` / ``target_std`` when the
    regression target is standardized).
    """
    classification = task in ("binary", "multiclass")
    keep = subsample(y if classification else len(y), max_rows, seed, stratify=classification)
    x, y = x[keep], y[keep]
    idx = stratified_split(y, seed) if classification else random_split(len(y), seed)
    (xs_train, xs_val, xs_test), _, _ = standardize(*(x[i] for i in idx))
    extra: dict[str, Any] = {}
    ys = [y[i] for i in idx]
    if task == "binary":
        targets = [as_float32(v) for v in ys]
    elif task == "multiclass":
        targets = [as_int64(v) for v in ys]
    else:
        if standardize_target:
            ys, mean, std = standardize(*ys)
            extra = {"target_mean": float(mean.item()), "target_std": float(std.item())}
        targets = [as_float32(v) for v in ys]
    xs = [as_float32(v) for v in (xs_train, xs_val, xs_test)]
    splits = tuple(Split(xv, yv) for xv, yv in zip(xs, targets))
    return splits[0], splits[1], splits[2], extra


# ----------------------------------------------------------------------------- package data
def _missing(package: str, extra: str, name: str, exc: BaseException) -> None:
    fail(
        _FN,
        "name",
        f"name a dataset whose packages are installed ({name!r} needs {package})",
        f"{name!r} ({type(exc).__name__}: {exc})",
        raw_got=True,
        hint=f"Install it with `pip install 'losslab[{extra}]'`.",
    )


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.flags.writeable = False
    return arrays


@functools.cache
def _sklearn(loader: str, name: str) -> tuple[np.ndarray, ...]:
    try:
        import sklearn.datasets as skd
    except ImportError as exc:
        _missing("scikit-learn", "cli", name, exc)
    bunch = getattr(skd, loader)()
    return _read_only(np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target))


@functools.cache
def _statsmodels_series(module: str, column: str, name: str) -> np.ndarray:
    try:
        import importlib

        mod = importlib.import_module(f"statsmodels.datasets.{module}")
    except ImportError as exc:
        _missing("statsmodels", "datasets", name, exc)
    frame = mod.load_pandas().data
    return _read_only(np.asarray(frame[column], dtype=np.float64))[0]


# ----------------------------------------------------------------------------- the builders
_DIGITS_SOURCE = (
    "scikit-learn's bundled digits (sklearn.datasets.load_digits): 1,797 8x8 images of "
    "handwritten digits with grey levels 0-16, a copy of the test part of the UCI 'Optical "
    "Recognition of Handwritten Digits' data set (E. Alpaydin, C. Kaynak, 1998; UCI, CC BY 4.0)"
)
_CANCER_SOURCE = (
    "scikit-learn's bundled Breast Cancer Wisconsin (Diagnostic) data "
    "(sklearn.datasets.load_breast_cancer): 569 tumours (212 malignant, 357 benign), 30 features "
    "of cell nuclei in images of fine needle aspirates (W. H. Wolberg, W. N. Street, "
    "O. L. Mangasarian, 1995; UCI, CC BY 4.0)"
)
_DIABETES_SOURCE = (
    "scikit-learn's bundled diabetes data (sklearn.datasets.load_diabetes): 442 patients, 10 "
    "baseline variables (age, sex, BMI, blood pressure, six blood serum measurements), target a "
    "quantitative measure of disease progression one year after baseline (B. Efron, T. Hastie, "
    "I. Johnstone, R. Tibshirani, 'Least Angle Regression', Annals of Statistics 32(2), 2004; "
    "shipped with scikit-learn, BSD-3-Clause, no separate data license stated)"
)


def _digits_binary(seed: int, max_rows: Optional[int], *, positive: int = 9) -> TaskData:
    positive = _digit_option("positive", positive)
    x, digit = _sklearn("load_digits", "digits-binary")
    y = (digit == positive).astype(np.int64)
    train, val, test, extra = tabular_task(x / 16.0, y, "binary", seed, max_rows)
    return TaskData(
        name="digits-binary",
        task="binary",
        train=train,
        val=val,
        test=test,
        description=f"8x8 handwritten digits, 64 pixels; positive = digit {positive} "
        "(about 10 % of the examples), negative = the other nine digits",
        provenance=f"{_DIGITS_SOURCE}. Derived: label 1 for digit {positive} (option `positive`), "
        "0 for the others; pixels divided by 16, then standardized with training-split statistics.",
        extra={"positive": positive, **extra},
    )


def _breast_cancer(
    seed: int, max_rows: Optional[int], *, imbalance: Optional[float] = None
) -> TaskData:
    x, target = _sklearn("load_breast_cancer", "breast-cancer")
    # sklearn codes malignant as 0 and benign as 1: flip it so that malignant is the positive class.
    y = (target == 0).astype(np.int64)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    note = "natural ratio 212:357"
    if imbalance is not None:
        natural = n_pos / n_neg
        imbalance = check_float(_FN, "imbalance", imbalance, low=0.0, low_open=True, high=natural)
        keep_pos = _round_half_up(imbalance * n_neg)
        if keep_pos < MIN_PER_CLASS:
            fail(
                _FN,
                "imbalance",
                f"keep at least {MIN_PER_CLASS} malignant examples (one per split), so be at "
                f"least {(MIN_PER_CLASS - 0.5) / n_neg:.4f}",
                imbalance,
            )
        pos = np.flatnonzero(y == 1)
        kept = rng_for(seed, "imbalance").choice(pos, size=keep_pos, replace=False)
        rows = np.sort(np.concatenate([np.flatnonzero(y == 0), kept]))
        x, y = x[rows], y[rows]
        note = (
            f"malignant subsampled (seeded) to round({imbalance:g} * {n_neg}) = {keep_pos} "
            f"examples (option `imbalance`)"
        )
    train, val, test, extra = tabular_task(x, y, "binary", seed, max_rows)
    return TaskData(
        name="breast-cancer",
        task="binary",
        train=train,
        val=val,
        test=test,
        description="breast tumours, 30 features of cell nuclei; positive = malignant",
        provenance=f"{_CANCER_SOURCE}. Derived: sklearn codes malignant as 0, here malignant = 1 "
        f"(positive); {note}; features standardized with training-split statistics.",
        extra={"imbalance": imbalance, **extra},
    )


def _digits(seed: int, max_rows: Optional[int]) -> TaskData:
    x, digit = _sklearn("load_digits", "digits")
    train, val, test, extra = tabular_task(
        x / 16.0, digit.astype(np.int64), "multiclass", seed, max_rows
    )
    return TaskData(
        name="digits",
        task="multiclass",
        train=train,
        val=val,
        test=test,
        num_classes=10,
        description="8x8 handwritten digits, 64 pixels; class = the digit 0-9",
        provenance=f"{_DIGITS_SOURCE}. Pixels divided by 16, then standardized with "
        "training-split statistics.",
        extra=extra,
    )


def _diabetes(seed: int, max_rows: Optional[int]) -> TaskData:
    x, target = _sklearn("load_diabetes", "diabetes")
    train, val, test, extra = tabular_task(
        x, target.astype(np.float64), "regression", seed, max_rows, standardize_target=True
    )
    return TaskData(
        name="diabetes",
        task="regression",
        train=train,
        val=val,
        test=test,
        description="diabetes patients, 10 baseline variables; target = disease progression "
        "after one year, standardized (train mean 0, std 1)",
        provenance=f"{_DIABETES_SOURCE}. Features and target standardized with training-split "
        "statistics; the target's are in extra (target_mean, target_std: y = z * std + mean).",
        extra=extra,
    )


#: Composition constants of ``digits-seg`` (documented in its provenance).
SEG_CANVAS = 32
SEG_CELL = 16
SEG_INK = 4.0  # a pixel is labelled with its digit where the grey level (0-16) is above this


def _digits_seg(seed: int, max_rows: Optional[int], *, n_images: int = 1000) -> TaskData:
    n_images = _int_option("n_images", n_images, low=MIN_ROWS)
    if max_rows is not None:
        n_images = min(n_images, max_rows)
    pixels, digit = _sklearn("load_digits", "digits-seg")
    images = pixels.reshape(-1, 8, 8)
    # The source digits are split first, so no handwritten digit appears in two splits.
    pools = stratified_split(digit, seed)
    counts = split_sizes(n_images)
    rng = rng_for(seed, "compose")
    xs, ys = [], []
    cells_per_row = SEG_CANVAS // SEG_CELL
    for pool, count in zip(pools, counts):
        canvas = np.zeros((count, SEG_CANVAS, SEG_CANVAS), dtype=np.float64)
        label = np.zeros((count, SEG_CANVAS, SEG_CANVAS), dtype=np.int64)
        for i in range(count):
            k = int(rng.integers(2, 5))  # 2, 3 or 4 digits
            cells = rng.choice(cells_per_row * cells_per_row, size=k, replace=False)
            picks = rng.choice(pool, size=k, replace=True)
            offsets = rng.integers(0, SEG_CELL - 8 + 1, size=(k, 2))
            for cell, pick, (dr, dc) in zip(cells, picks, offsets):
                r = (cell // cells_per_row) * SEG_CELL + dr
                c = (cell % cells_per_row) * SEG_CELL + dc
                img = images[pick]
                canvas[i, r : r + 8, c : c + 8] = img / 16.0
                label[i, r : r + 8, c : c + 8] = np.where(img > SEG_INK, digit[pick] + 1, 0)
        xs.append(canvas)
        ys.append(label)
    # One scalar mean and std over all training pixels.
    xs, _, _ = standardize(*xs, axis=None)
    splits = [Split(as_float32(x[:, None]), as_int64(y)) for x, y in zip(xs, ys)]
    return TaskData(
        name="digits-seg",
        task="segmentation",
        train=splits[0],
        val=splits[1],
        test=splits[2],
        num_classes=11,
        description="32x32 images of 2-4 handwritten digits; pixel class = 0 background, "
        "d + 1 on the ink of digit d",
        provenance=f"Derived from {_DIGITS_SOURCE}. Composed here: the source digits are split "
        "60/20/20 (seeded, stratified) so no digit image is shared between splits; each image "
        "is a 32x32 canvas of four 16x16 cells, 2-4 of them (seeded) each hold one 8x8 digit "
        "(drawn with replacement from its split's pool, original resolution) at a seeded offset "
        "0-8 inside the cell; input = grey level / 16, standardized with the training pixels' "
        f"mean and std; label = digit + 1 where the grey level is above {SEG_INK:g} of 16, "
        "else 0 (background, including faint ink); 11 classes.",
        extra={"canvas": SEG_CANVAS, "ink_threshold": SEG_INK, "n_images": n_images},
    )


def _diabetes_rank(seed: int, max_rows: Optional[int], *, query_size: int = 15) -> TaskData:
    query_size = _int_option("query_size", query_size, low=2)
    x, target = _sklearn("load_diabetes", "diabetes-rank")
    keep = subsample(len(target), max_rows, seed, stratify=False)
    x, target = x[keep], target[keep].astype(np.float64)
    n = len(target)
    n_queries = max(1, _round_half_up(n / query_size))
    if n_queries < 3:
        fail(
            _FN,
            "query_size",
            f"leave at least 3 queries (one per split) among the {n} items",
            f"{query_size} ({n_queries} queries)",
            raw_got=True,
            hint="Lower query_size or raise max_rows.",
        )
    # Seeded random partition: shuffle the items, cut into n_queries near-equal queries.
    perm = rng_for(seed, "queries").permutation(n)
    query = np.empty(n, dtype=np.int64)
    for q, members in enumerate(np.array_split(perm, n_queries)):
        query[members] = q
    # The query ids are in random order already: the first ones train, then val, then test.
    q_train, q_val, _ = split_sizes(n_queries)
    bounds = (0, q_train, q_train + q_val, n_queries)
    order = np.argsort(query, kind="stable")  # items of a query next to each other
    idx = [order[(query[order] >= lo) & (query[order] < hi)] for lo, hi in zip(bounds, bounds[1:])]
    # Grades 0-4: the quintile of the target among the training items.
    cuts = np.quantile(target[idx[0]], [0.2, 0.4, 0.6, 0.8])
    grade = np.searchsorted(cuts, target, side="right").astype(np.int64)
    xs, _, _ = standardize(*(x[i] for i in idx))
    splits = [
        Split(as_float32(xv), as_int64(grade[i]), as_int64(query[i])) for xv, i in zip(xs, idx)
    ]
    return TaskData(
        name="diabetes-rank",
        task="ranking",
        train=splits[0],
        val=splits[1],
        test=splits[2],
        description="queries of diabetes patients (10 baseline variables) to rank by disease "
        "progression after one year; graded relevance 0-4",
        provenance=f"Derived from {_DIABETES_SOURCE}. Relevance = the quintile (0-4) of the "
        "target among the training items (cuts in extra); queries: the items are shuffled "
        f"(seeded) and cut into round(n / {query_size}) near-equal queries (option `query_size`; "
        "a random partition, so a query is a random set of patients); 60/20/20 of the queries "
        "go to train/val/test, no query crosses splits; group = query id, unique over all "
        "splits; features standardized with training-split statistics.",
        extra={"query_size": query_size, "relevance_cuts": [float(c) for c in cuts]},
    )


_SUNSPOTS_SOURCE = (
    "statsmodels' bundled yearly sunspot numbers 1700-2008, 309 years "
    "(statsmodels.datasets.sunspots; National Geophysical Data Center, NOAA; public domain)"
)
_CO2_SOURCE = (
    "statsmodels' bundled weekly atmospheric CO2 (ppmv) at Mauna Loa Observatory, Hawaii, "
    "1958-03-29 to 2001-12-29, 2,284 weeks (statsmodels.datasets.co2; C. D. Keeling, "
    "T. P. Whorf, Scripps Institution of Oceanography, CDIAC 2004; public domain)"
)


def _forecasting(
    name: str,
    series: np.ndarray,
    *,
    window: int,
    horizon: int,
    season: int,
    max_rows: Optional[int],
) -> tuple[Split, Split, Split, dict[str, Any]]:
    """Chronological windows: ``window`` past values -> the next ``horizon`` values.

    The series (``max_rows``: its last ``max_rows + window + horizon - 1`` points) is cut at
    ``T1 = floor(0.6 L + 0.5)`` and ``T2 = floor(0.8 L + 0.5)``. A window whose targets start at
    ``t`` is train if its targets end before ``T1``, val if they lie in ``[T1, T2)``, test if
    they start at ``T2`` or later; windows whose targets straddle a cut are dropped, so every
    target time belongs to one split (inputs may look back into an earlier split). The series is
    scaled with the mean and std of its training part ``[0, T1)``.
    """
    window = _int_option("window", window, low=2)
    horizon = _int_option("horizon", horizon, low=1)
    if max_rows is not None:
        series = series[-(max_rows + window + horizon - 1) :]
    length = len(series)
    t1, t2 = _round_half_up(0.6 * length), _round_half_up(0.8 * length)
    starts = np.arange(window, length - horizon + 1)
    ends = starts + horizon  # exclusive
    masks = [ends <= t1, (starts >= t1) & (ends <= t2), starts >= t2]
    if not all(m.any() for m in masks):
        fail(
            _FN,
            "window",
            f"leave at least one window in each split of the {length} points of {name!r} "
            "(window + horizon must fit in the first 60 % and horizon in each later 20 %)",
            f"window={window}, horizon={horizon}",
            raw_got=True,
            hint="Lower window or horizon, or raise max_rows.",
        )
    _, mean, std = standardize(series[:t1], axis=None)
    scaled = (series - mean.item()) / std.item()
    offsets_in = np.arange(-window, 0)
    offsets_out = np.arange(horizon)
    splits = []
    for m in masks:
        s = starts[m]
        x = scaled[s[:, None] + offsets_in]
        y = scaled[s[:, None] + offsets_out]
        splits.append(Split(as_float32(x), as_float32(y)))
    extra = {
        "window": window,
        "horizon": horizon,
        "season": season,
        "scale_mean": float(mean.item()),
        "scale_std": float(std.item()),
        "series_length": length,
    }
    return splits[0], splits[1], splits[2], extra


def _sunspots(
    seed: int, max_rows: Optional[int], *, window: int = 22, horizon: int = 5
) -> TaskData:
    series = _statsmodels_series("sunspots", "SUNACTIVITY", "sunspots")
    train, val, test, extra = _forecasting(
        "sunspots", series, window=window, horizon=horizon, season=1, max_rows=max_rows
    )
    return TaskData(
        name="sunspots",
        task="forecasting",
        train=train,
        val=val,
        test=test,
        description=f"yearly sunspot numbers: the past {extra['window']} years -> the next "
        f"{extra['horizon']}",
        provenance=f"{_SUNSPOTS_SOURCE}. Windows and chronological 60/20/20 splits over time "
        "(targets never cross splits); scaled with the training part's mean and std (extra: "
        "scale_mean, scale_std); season 1 for MASE (the ~11-year solar cycle has no fixed "
        "length).",
        extra=extra,
    )


def _co2(seed: int, max_rows: Optional[int], *, window: int = 104, horizon: int = 13) -> TaskData:
    raw = _statsmodels_series("co2", "co2", "co2")
    missing = np.isnan(raw)
    t = np.arange(len(raw))
    # 59 weeks are missing (the longest gap is 16 weeks, in 1963): linear interpolation between
    # the neighbouring observed weeks (the series is regular: one value per week).
    series = raw.copy()
    series[missing] = np.interp(t[missing], t[~missing], raw[~missing])
    train, val, test, extra = _forecasting(
        "co2", series, window=window, horizon=horizon, season=52, max_rows=max_rows
    )
    return TaskData(
        name="co2",
        task="forecasting",
        train=train,
        val=val,
        test=test,
        description=f"weekly CO2 at Mauna Loa: the past {extra['window']} weeks -> the next "
        f"{extra['horizon']}",
        provenance=f"{_CO2_SOURCE}. The {int(missing.sum())} missing weeks are filled by linear "
        "interpolation between the neighbouring observed weeks (all before 1987, inside the "
        "training period); windows and chronological 60/20/20 splits over time (targets never "
        "cross splits); scaled with the training part's mean and std (extra: scale_mean, "
        "scale_std; the upward trend puts later splits above the training range); season 52 "
        "(weeks per year) for MASE.",
        extra={**extra, "interpolated": int(missing.sum())},
    )


def _int_option(name: str, value: Any, *, low: int) -> int:
    return int(cast(int, check_int_option(_FN, name, value, low=low)))


def _digit_option(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        fail(_FN, name, "be an int digit 0-9", type(value).__name__, kind=TypeError, raw_got=True)
    if not 0 <= int(value) <= 9:
        fail(_FN, name, "be a digit 0-9", value)
    return int(value)


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class DatasetInfo:
    """One embedded dataset: how to build it and what ``--list-datasets`` shows."""

    name: str
    task: str
    description: str
    provenance: str
    sizes: Mapping[str, int]  # with the default options and no max_rows
    builder: Callable[..., TaskData] = field(repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)  # name -> default
    requires: Optional[str] = None  # the extra needed beyond `losslab[cli]`, e.g. "datasets"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "provenance": self.provenance,
            "sizes": dict(self.sizes),
            "options": dict(self.options),
            "requires": self.requires,
        }


def _sizes(train: int, val: int, test: int) -> dict[str, int]:
    return {"train": train, "val": val, "test": test}


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "digits-binary",
            "binary",
            "handwritten 8x8 digits, one digit (9) against the rest: about 10 % positives",
            _DIGITS_SOURCE + "; derived: positive = one digit.",
            _sizes(1079, 359, 359),
            _digits_binary,
            {"positive": 9},
        ),
        DatasetInfo(
            "breast-cancer",
            "binary",
            "breast tumours, 30 features; positive = malignant (37 %, or `imbalance` ratio)",
            _CANCER_SOURCE + "; malignant recoded as 1 (sklearn codes it 0).",
            _sizes(343, 113, 113),
            _breast_cancer,
            {"imbalance": None},
        ),
        DatasetInfo(
            "digits",
            "multiclass",
            "handwritten 8x8 digits, 10 classes",
            _DIGITS_SOURCE + ".",
            _sizes(1079, 359, 359),
            _digits,
        ),
        DatasetInfo(
            "diabetes",
            "regression",
            "diabetes progression after one year from 10 baseline variables (standardized)",
            _DIABETES_SOURCE + ".",
            _sizes(266, 88, 88),
            _diabetes,
        ),
        DatasetInfo(
            "digits-seg",
            "segmentation",
            "32x32 images of 2-4 handwritten digits, per-pixel digit labels (11 classes)",
            "derived: composed from " + _DIGITS_SOURCE + ".",
            _sizes(600, 200, 200),
            _digits_seg,
            {"n_images": 1000},
        ),
        DatasetInfo(
            "diabetes-rank",
            "ranking",
            "random queries of ~15 diabetes patients, graded relevance 0-4 by progression",
            "derived: grades from target quintiles, seeded random queries, from "
            + _DIABETES_SOURCE
            + ".",
            _sizes(262, 90, 90),
            _diabetes_rank,
            {"query_size": 15},
        ),
        DatasetInfo(
            "sunspots",
            "forecasting",
            "yearly sunspot numbers 1700-2008: 22 past years -> next 5",
            _SUNSPOTS_SOURCE + "; chronological splits.",
            _sizes(159, 58, 58),
            _sunspots,
            {"window": 22, "horizon": 5},
            requires="datasets",
        ),
        DatasetInfo(
            "co2",
            "forecasting",
            "weekly Mauna Loa CO2 1958-2001: 104 past weeks -> next 13",
            _CO2_SOURCE + "; 59 missing weeks interpolated; chronological splits.",
            _sizes(1254, 445, 445),
            _co2,
            {"window": 104, "horizon": 13},
            requires="datasets",
        ),
    )
}


def list_datasets() -> list[dict[str, Any]]:
    """Every embedded dataset as a plain dict: name, task, description, provenance, sizes
    (with the default options), options (name -> default) and requires (the extra needed beyond
    ``losslab[cli]``, or None). Loads nothing.

    >>> [d["name"] for d in list_datasets()][:3]
    ['digits-binary', 'breast-cancer', 'digits']
    """
    return [info.to_dict() for info in DATASETS.values()]


def load_dataset(
    name: str, *, seed: int = 0, max_rows: Optional[int] = None, **options: Any
) -> TaskData:
    """Load an embedded dataset as a :class:`~losslab.compare._types.TaskData`.

    Args:
        name: a name of :data:`DATASETS` (``losslab compare --list-datasets``).
        seed: draws the splits, subsamples and derived structure (same seed, same tensors).
        max_rows: at most this many rows (at least 20; ``None`` keeps all), subsampled seeded
            before splitting; see the module docstring for what a row is per task.
        **options: the dataset's own options (``positive``, ``imbalance``, ``n_images``,
            ``query_size``, ``window``, ``horizon``).

    Raises:
        ValueError: unknown name (with did-you-mean) or option, an option out of range, a
            missing optional package (with the pip command).
        TypeError: a non-string name, non-integer seed or max_rows, a wrongly typed option.

    >>> data = load_dataset("digits-binary")
    >>> data.task, data.train.x.shape, round(float(data.train.y.mean()), 3)
    ('binary', torch.Size([1079, 64]), 0.1)
    >>> load_dataset("digit")
    Traceback (most recent call last):
    ...
    ValueError: load_dataset(): `name` must be one of 'digits-binary' | 'breast-cancer' | 'digits' | 'diabetes' | 'digits-seg' | 'diabetes-rank' | 'sunspots' | 'co2'; got 'digit'. Did you mean 'digits'? See `losslab compare --list-datasets`.
    """
    if not isinstance(name, str):
        fail(_FN, "name", "be a str", type(name).__name__, kind=TypeError, raw_got=True)
    info = DATASETS.get(name)
    if info is None:
        choices = " | ".join(repr(n) for n in DATASETS)
        hint = suggest(name, DATASETS)
        hint = f"{hint} " if hint else ""
        fail(
            _FN,
            "name",
            f"be one of {choices}",
            name,
            hint=f"{hint}See `losslab compare --list-datasets`.",
        )
    seed = _int_option("seed", seed, low=0)
    max_rows = check_int_option(_FN, "max_rows", max_rows, low=MIN_ROWS, allow_none=True)
    for key in options:
        if key not in info.options:
            if info.options:
                expected = f"name options of {name!r} ({', '.join(info.options)})"
            else:
                expected = f"be empty: {name!r} takes no options"
            fail(_FN, "options", expected, key, hint=suggest(key, info.options))
    return info.builder(seed, max_rows, **options)
