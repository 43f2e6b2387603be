"""OverlapScores / segmentation_metrics: Dice and IoU of hard masks, streamed.

References: an independent float64 numpy reference (loops over images and classes, its own
thresholding, ignore masking and empty policy) on ALL the data, torchmetrics' DiceScore and
Multiclass/Multilabel/BinaryJaccardIndex where their semantics match ours, and 1 - DiceLoss /
1 - JaccardLoss (smooth=0, aggregate="batch") on hard one-hot inputs.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryJaccardIndex,
    MulticlassJaccardIndex,
    MultilabelJaccardIndex,
)
from torchmetrics.segmentation import DiceScore

from losslab.losses.segmentation.dice import dice_loss
from losslab.losses.segmentation.jaccard import jaccard_loss
from losslab.metrics.segmentation import OverlapScores, segmentation_metrics
from tests._distributed import run_workers

SIZES = (1, 7, 3, 0, 5, 2)  # 18 images in uneven batches, with an empty one (a no-op)
IGNORE = 255
SPATIAL = {"2d": (6, 5), "3d": (3, 4, 5)}
POLICIES = ("skip", "ratio", "zero")
AVERAGES = ("macro", "micro", "weighted")


# ---- data ----------------------------------------------------------------------------------
def _data(mode, spatial, *, seed=0, n=18, ignore=True, absent=True):
    """(preds, target) with, unless disabled: ignored positions (255), a class absent from
    target and prediction everywhere (0/0), a class only predicted (false positives only),
    and a class absent from every third image (0/0 per image)."""
    g = torch.Generator().manual_seed(seed)
    if mode == "multiclass":
        c = 4
        logits = 2.0 * torch.randn(n, c, *spatial, generator=g)
        target = torch.randint(0, c, (n, *spatial), generator=g)
        if absent:
            target[target == 2] = 0
            logits[:, 2] = -50.0  # class 2: never predicted, never a target
            target[target == 3] = 1  # class 3: predicted, never a target
            for b in range(0, n, 3):  # class 1: absent from every third image
                target[b][target[b] == 1] = 0
                logits[b, 1] = -50.0
    else:
        c = 4 if mode == "multilabel" else 1
        logits = 2.0 * torch.randn(n, c, *spatial, generator=g)
        target = (torch.rand(n, c, *spatial, generator=g) < 0.4).float()
        if absent and mode == "multilabel":
            target[:, 1] = 0.0
            logits[:, 1] = -50.0  # label 1: 0/0
            target[:, 2] = 0.0  # label 2: false positives only
            target[::3, 3] = 0.0
            logits[::3, 3] = -50.0  # label 3: absent from every third image
        if absent and mode == "binary":
            target[::3] = 0.0
            logits[::3] = -50.0  # images with nothing at all (0/0 per image)
    if ignore:
        drop = torch.rand(target.shape, generator=g) < 0.15
        target[drop] = IGNORE
    if mode == "binary":
        target = target[:, 0].long()  # class ids (B, *spatial) with preds (B, 1, *spatial)
    return logits, target


def _batches(preds, target, sizes=SIZES):
    start = 0
    for size in sizes:
        yield preds[start : start + size], target[start : start + size]
        start += size
    assert start == preds.shape[0]


def _stream(metric, preds, target, sizes=SIZES):
    for p, t in _batches(preds, target, sizes):
        metric.update(p, t)
    return metric.compute()


def _f64(metric):
    metric.set_dtype(torch.float64)
    return metric


# ---- independent float64 reference (numpy loops) -------------------------------------------
def _ref_counts(preds, target, *, mode, input="logits", threshold=0.5, ignore_index=None):
    """Per (image, class) TP, FP, FN as numpy float64 arrays (B, C)."""
    x = preds.double().numpy()
    y = target.numpy()
    if mode == "binary":
        x = x if x.ndim == y.ndim + 1 else x[:, None]
        y = y[:, None] if y.ndim == x.ndim - 1 else y
    n, c = x.shape[:2]
    if mode == "multiclass":
        hard = np.argmax(x, axis=1)
    else:
        prob = 1.0 / (1.0 + np.exp(-x)) if input == "logits" else x
        hard = prob >= threshold
    tp, fp, fn = (np.zeros((n, c)) for _ in range(3))
    for b in range(n):
        for k in range(c):
            if mode == "multiclass":
                valid = np.ones(y[b].shape, bool) if ignore_index is None else y[b] != ignore_index
                p, t = (hard[b] == k) & valid, (y[b] == k) & valid
            else:
                valid = (
                    np.ones(y[b, k].shape, bool)
                    if ignore_index is None
                    else y[b, k] != ignore_index
                )
                p, t = hard[b, k] & valid, (y[b, k] == 1) & valid
            tp[b, k] = np.sum(p & t)
            fp[b, k] = np.sum(p & ~t)
            fn[b, k] = np.sum(~p & t)
    return tp, fp, fn


def _policy(num, den, empty):
    if den == 0:
        return {"skip": math.nan, "ratio": 1.0, "zero": 0.0}[empty]
    return num / den


def _nanmean(values):
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _reference(counts, *, empty, average, aggregate):
    """The dict compute() returns, from per-image counts, in float64."""
    tp, fp, fn = counts
    n, c = tp.shape
    out = {}
    for name, num, den in (
        ("dice", lambda a, b_, d: 2 * a, lambda a, b_, d: 2 * a + b_ + d),
        ("iou", lambda a, b_, d: a, lambda a, b_, d: a + b_ + d),
    ):
        if aggregate == "dataset":
            T, P, N = tp.sum(0), fp.sum(0), fn.sum(0)
            per = [_policy(num(T[k], P[k], N[k]), den(T[k], P[k], N[k]), empty) for k in range(c)]
            micro = _policy(num(T.sum(), P.sum(), N.sum()), den(T.sum(), P.sum(), N.sum()), empty)
        else:
            per = [
                _nanmean(
                    [
                        _policy(
                            num(tp[b, k], fp[b, k], fn[b, k]),
                            den(tp[b, k], fp[b, k], fn[b, k]),
                            empty,
                        )
                        for b in range(n)
                    ]
                )
                for k in range(c)
            ]
            micro = _nanmean(
                [
                    _policy(
                        num(tp[b].sum(), fp[b].sum(), fn[b].sum()),
                        den(tp[b].sum(), fp[b].sum(), fn[b].sum()),
                        empty,
                    )
                    for b in range(n)
                ]
            )
        support = tp.sum(0) + fn.sum(0)
        if average == "macro":
            avg = _nanmean(per)
        elif average == "micro":
            avg = micro
        else:
            total = support.sum()
            avg = (
                sum(s * v for s, v in zip(support, per) if s > 0) / total if total > 0 else math.nan
            )
        out[name] = avg
        if c > 1:
            for k in range(c):
                out[f"{name}_{k}"] = per[k]
    if n == 0:
        out = {k: math.nan for k in out}
    # compute() orders the averages first, then dice per class, then iou per class
    order = ["dice", "iou"] + [f"{m}_{k}" for m in ("dice", "iou") for k in range(c) if c > 1]
    return {k: out[k] for k in order}


def _assert_dict(got, expected, tol=1e-12):
    assert list(got) == list(expected)
    for key, value in expected.items():
        g = float(got[key])
        if math.isnan(value):
            assert math.isnan(g), (key, g)
        else:
            assert g == pytest.approx(value, abs=tol, rel=tol), (key, g, value)


# ---- (1) all the data, uneven batches, against the reference -------------------------------
@pytest.mark.parametrize("aggregate", ["dataset", "image"])
@pytest.mark.parametrize("empty", POLICIES)
@pytest.mark.parametrize("dims", ["2d", "3d"])
@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_streaming_matches_reference(mode, dims, empty, aggregate):
    preds, target = _data(mode, SPATIAL[dims], seed=len(dims) + len(mode))
    counts = _ref_counts(preds, target, mode=mode, ignore_index=IGNORE)
    c = 1 if mode == "binary" else 4
    for average in AVERAGES:
        opts = dict(mode=mode, num_classes=c, ignore_index=IGNORE, empty=empty)
        opts.update(average=average, aggregate=aggregate)
        expected = _reference(counts, empty=empty, average=average, aggregate=aggregate)
        streamed = _stream(_f64(OverlapScores(**opts)), preds, target)
        _assert_dict(streamed, expected)
        one_shot = OverlapScores(**opts)
        one_shot.update(preds, target)
        _assert_dict(one_shot.compute(), expected, tol=1e-6)  # float32 output


def test_reference_cases_hit_every_policy_branch():
    """The data above does contain 0/0 classes, per image and over the dataset."""
    for mode in ("multiclass", "multilabel"):
        tp, fp, fn = _ref_counts(*_data(mode, (6, 5)), mode=mode, ignore_index=IGNORE)
        per_class = tp.sum(0) + fp.sum(0) + fn.sum(0)
        assert (per_class == 0).sum() == 1  # one class 0/0 over the dataset
        assert ((tp.sum(0) == 0) & (fp.sum(0) > 0) & (fn.sum(0) == 0)).sum() == 1  # FP-only
        assert ((tp + fp + fn) == 0).any(1).all()  # every image has a 0/0 class


def test_probs_and_threshold_match_reference():
    preds, target = _data("multilabel", (6, 5), seed=3)
    probs = torch.sigmoid(preds.double())
    counts = _ref_counts(
        probs, target, mode="multilabel", input="probs", threshold=0.3, ignore_index=IGNORE
    )
    metric = _f64(
        OverlapScores(
            mode="multilabel", num_classes=4, input="probs", threshold=0.3, ignore_index=IGNORE
        )
    )
    _assert_dict(
        _stream(metric, probs, target),
        _reference(counts, empty="skip", average="macro", aggregate="dataset"),
    )
    # the same decisions from logits: sigmoid(x) >= 0.3
    from_logits = _f64(
        OverlapScores(mode="multilabel", num_classes=4, threshold=0.3, ignore_index=IGNORE)
    )
    _assert_dict(
        _stream(from_logits, preds, target),
        _reference(counts, empty="skip", average="macro", aggregate="dataset"),
    )


@pytest.mark.parametrize("layout", ["ids", "channel mask", "flat mask", "flat ids", "bool"])
def test_binary_layouts_agree(layout):
    logits, ids = _data("binary", (6, 5), seed=4, ignore=False)  # (B, 1, H, W), (B, H, W)
    mask = ids[:, None].double()
    pairs = {
        "ids": (logits, ids),
        "channel mask": (logits, mask),
        "flat mask": (logits[:, 0], mask[:, 0]),
        "flat ids": (logits[:, 0], ids),
        "bool": (logits[:, 0], ids.bool()),
    }
    expected = _reference(
        _ref_counts(logits, ids, mode="binary"), empty="skip", average="macro", aggregate="dataset"
    )
    _assert_dict(_stream(_f64(OverlapScores(mode="binary")), *pairs[layout]), expected)


@pytest.mark.parametrize("ignore", [False, True])
def test_integer_and_bool_multilabel_masks(ignore):
    preds, target = _data("multilabel", (6, 5), seed=5, ignore=ignore)
    opts = dict(mode="multilabel", num_classes=4, ignore_index=IGNORE if ignore else None)
    expected = _f64(OverlapScores(**opts))
    expected.update(preds, target)
    masks = (target.long(), target.to(torch.uint8)) + (() if ignore else (target.bool(),))
    for t in masks:
        metric = _f64(OverlapScores(**opts))
        metric.update(preds, t)
        _assert_dict(metric.compute(), {k: float(v) for k, v in expected.compute().items()})


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_half_inputs_count_like_float32(mode, dtype):
    preds, target = _data(mode, (6, 5), seed=16)
    low = preds.to(dtype)
    half = OverlapScores(mode=mode, num_classes=4, ignore_index=IGNORE)
    single = OverlapScores(mode=mode, num_classes=4, ignore_index=IGNORE)
    half.update(low, target)
    single.update(low.float(), target)
    for key in ("tp", "fp", "fn"):
        assert torch.equal(getattr(half, key), getattr(single, key)), key


def test_uint8_target_with_label_255():
    preds, target = _data("multiclass", (6, 5), seed=6)
    as_uint8 = _f64(OverlapScores(mode="multiclass", num_classes=4, ignore_index=255))
    as_long = _f64(OverlapScores(mode="multiclass", num_classes=4, ignore_index=255))
    _assert_dict(
        _stream(as_uint8, preds, target.to(torch.uint8)),
        {k: float(v) for k, v in _stream(as_long, preds, target).items()},
    )


@pytest.mark.parametrize("empty,expected", [("skip", math.nan), ("ratio", 1.0), ("zero", 0.0)])
@pytest.mark.parametrize("aggregate", ["dataset", "image"])
def test_binary_all_empty_follows_policy(empty, expected, aggregate):
    for average in AVERAGES:
        metric = OverlapScores(mode="binary", empty=empty, average=average, aggregate=aggregate)
        metric.update(torch.full((2, 1, 3, 3), -5.0), torch.zeros(2, 3, 3, dtype=torch.long))
        out = metric.compute()
        # weighted: no class has a target, so there are no weights: NaN whatever the policy
        want = math.nan if average == "weighted" else expected
        for value in out.values():
            assert (math.isnan(want) and value.isnan()) or value.item() == want, (average, value)


def test_false_positive_only_class_scores_zero_under_every_policy():
    logits = torch.tensor([[[[5.0, 5.0]], [[0.0, 0.0]], [[0.0, 9.0]]]])  # predicted ids [0, 2]
    target = torch.tensor([[[0, 0]]])
    for empty in POLICIES:
        values = OverlapScores(mode="multiclass", num_classes=3, empty=empty)
        values.update(logits, target)
        out = values.compute()
        assert out["dice_2"].item() == 0.0 and out["iou_2"].item() == 0.0  # FP only: 0
        assert out["dice_0"].item() == pytest.approx(2 / 3)  # 2*1 / (2*1 + 0 + 1)
        one = {"skip": math.nan, "ratio": 1.0, "zero": 0.0}[empty]  # class 1: 0/0
        assert (math.isnan(one) and out["dice_1"].isnan()) or out["dice_1"].item() == one


def test_threshold_is_exact_where_float32_sigmoid_saturates():
    # sigmoid(20) = 1 - 2.1e-9 < t = 1 - 1e-9 < sigmoid(21); float32 rounds both to 1.0
    t = 1.0 - 1e-9
    assert torch.sigmoid(torch.tensor(20.0)).item() >= t  # the naive rule would say positive
    metric = OverlapScores(mode="binary", threshold=t)
    metric.update(torch.tensor([[[20.0, 21.0]]]), torch.tensor([[1, 1]]))
    assert metric.tp.tolist() == [1] and metric.fn.tolist() == [1]


def test_multiclass_argmax_ties_take_the_first_class():
    metric = OverlapScores(mode="multiclass", num_classes=3)
    metric.update(torch.zeros(1, 3, 1, 2), torch.tensor([[[0, 1]]]))
    assert metric.tp.tolist() == [1, 0, 0] and metric.fp.tolist() == [1, 0, 0]


# ---- torchmetrics where the semantics match ------------------------------------------------
@pytest.mark.filterwarnings("ignore:DiceScore metric currently defaults:UserWarning")
@pytest.mark.parametrize("average", ["none", "macro", "micro", "weighted"])
def test_dice_matches_torchmetrics_dice_score(average):
    """DiceScore (global, index input) has no ignore_index; its 0/0 is NaN, left out of macro
    (nanmean) and of weighted (zero support): our "skip"."""
    preds, target = _data("multiclass", SPATIAL["3d"], seed=7, ignore=False)
    theirs = DiceScore(
        num_classes=4, average=average, input_format="index", aggregation_level="global"
    )
    for p, t in _batches(preds, target):
        if p.shape[0]:
            theirs.update(p.argmax(1), t)
    ours = _f64(
        OverlapScores(
            mode="multiclass", num_classes=4, average="macro" if average == "none" else average
        )
    )
    out = _stream(ours, preds, target)
    got = torch.stack([out[f"dice_{k}"] for k in range(4)]) if average == "none" else out["dice"]
    torch.testing.assert_close(
        got.float(), theirs.compute().reshape(got.shape).float(), equal_nan=True
    )


@pytest.mark.parametrize("average", ["macro", "micro", "weighted", "none"])
def test_iou_matches_torchmetrics_multiclass_jaccard(average):
    """MulticlassJaccardIndex drops ignore_index=255 positions like we do and leaves classes
    with TP + FP + FN = 0 out of macro ("skip"); per class it reports zero_division=0 for
    them ("zero"). (With an ignore_index inside [0, C) it also drops that class from the
    macro average; we count it from its false positives.)"""
    preds, target = _data("multiclass", SPATIAL["2d"], seed=8)
    theirs = MulticlassJaccardIndex(num_classes=4, average=average, ignore_index=IGNORE)
    for p, t in _batches(preds, target):
        if p.shape[0]:
            theirs.update(p, t)
    empty = "zero" if average == "none" else "skip"
    ours = _f64(
        OverlapScores(
            mode="multiclass",
            num_classes=4,
            ignore_index=IGNORE,
            empty=empty,
            average="macro" if average == "none" else average,
        )
    )
    out = _stream(ours, preds, target)
    got = torch.stack([out[f"iou_{k}"] for k in range(4)]) if average == "none" else out["iou"]
    torch.testing.assert_close(got.float(), theirs.compute().float())


@pytest.mark.parametrize("zero_division,empty", [(0.0, "zero"), (1.0, "ratio")])
def test_iou_matches_torchmetrics_multilabel_jaccard(zero_division, empty):
    """Multilabel macro in torchmetrics keeps 0/0 labels with zero_division: "zero" / "ratio"."""
    preds, target = _data("multilabel", SPATIAL["3d"], seed=9)
    probs = torch.sigmoid(preds)
    theirs = MultilabelJaccardIndex(
        num_labels=4, average="macro", ignore_index=IGNORE, zero_division=zero_division
    )
    for p, t in _batches(probs, target):
        if p.shape[0]:
            theirs.update(p, t.long())
    ours = _f64(
        OverlapScores(
            mode="multilabel", num_classes=4, input="probs", ignore_index=IGNORE, empty=empty
        )
    )
    torch.testing.assert_close(
        _stream(ours, probs, target)["iou"].float(), theirs.compute().float()
    )


def test_iou_matches_torchmetrics_binary_jaccard():
    preds, target = _data("binary", SPATIAL["2d"], seed=10)
    probs = torch.sigmoid(preds)
    theirs = BinaryJaccardIndex(threshold=0.3, ignore_index=IGNORE)
    for p, t in _batches(probs, target):
        if p.shape[0]:
            theirs.update(p[:, 0], t)
    ours = _f64(OverlapScores(mode="binary", input="probs", threshold=0.3, ignore_index=IGNORE))
    torch.testing.assert_close(
        _stream(ours, probs, target)["iou"].float(), theirs.compute().float()
    )


# ---- the same statistics as the losses -------------------------------------------------------
def _one_hot_probs(mode, preds, threshold=0.5):
    if mode == "multiclass":
        top = preds.argmax(1, keepdim=True)
        return torch.zeros_like(preds, dtype=torch.float64).scatter_(1, top, 1.0)
    return (torch.sigmoid(preds.double()) >= threshold).double()


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("empty", POLICIES)
def test_dice_and_iou_equal_one_minus_losses(mode, empty):
    """Metric == 1 - loss(hard one-hot, smooth=0, aggregate="batch", same empty policy).

    The two agree whenever the policies mean the same thing: "ratio" always (0/0 -> 1 in
    both, from the same ratio()); "skip" when every class without target is also never
    predicted (the loss skips classes without target, the metric only 0/0 ones); "zero"
    when no class lacks a target (the loss's "zero" sets an empty class's *loss* to 0, the
    metric sets a 0/0 class's *score* to 0)."""
    absent = empty == "ratio"  # FP-only and 0/0 classes: only "ratio" means the same there
    preds, target = _data(mode, (6, 5), seed=11, absent=absent)
    if empty == "skip" and mode != "binary":  # a class absent from both, no FP-only class
        if mode == "multiclass":
            target[target == 2] = 0
        else:
            target[:, 2] = torch.where(target[:, 2] == IGNORE, target[:, 2], 0.0)
        preds[:, 2] = -50.0
    probs = _one_hot_probs(mode, preds)
    c = 1 if mode == "binary" else 4
    metric = _f64(
        OverlapScores(mode=mode, num_classes=c, input="probs", ignore_index=IGNORE, empty=empty)
    )
    out = _stream(metric, probs, target)
    opts = dict(
        mode=mode, activation=None, smooth=0.0, aggregate="batch", empty=empty, ignore_index=IGNORE
    )
    assert out["dice"].item() == pytest.approx(
        1.0 - dice_loss(probs, target, **opts).item(), abs=1e-12
    )
    assert out["iou"].item() == pytest.approx(
        1.0 - jaccard_loss(probs, target, **opts).item(), abs=1e-12
    )
    # the decisions on logits are the ones the one-hot encodes
    from_logits = _f64(OverlapScores(mode=mode, num_classes=c, ignore_index=IGNORE, empty=empty))
    _assert_dict(_stream(from_logits, preds, target), {k: float(v) for k, v in out.items()})


# ---- (2) distributed: 2 processes, rank 1 gets no batch (and a split run) -------------------
def _ddp_setups():
    return {
        "mc": (dict(mode="multiclass", num_classes=4, ignore_index=IGNORE), "multiclass", (6, 5)),
        "mc_image": (
            dict(
                mode="multiclass",
                num_classes=4,
                ignore_index=IGNORE,
                aggregate="image",
                average="micro",
            ),
            "multiclass",
            (3, 4, 5),
        ),
        "ml": (
            dict(
                mode="multilabel",
                num_classes=4,
                ignore_index=IGNORE,
                average="weighted",
                empty="ratio",
            ),
            "multilabel",
            (6, 5),
        ),
        "bin": (
            dict(mode="binary", ignore_index=IGNORE, aggregate="image", empty="zero"),
            "binary",
            (6, 5),
        ),
    }


def _ddp_run(rank, world, shard):
    """shard="idle": rank 0 gets every batch, rank 1 none; "split": batches alternate."""
    out = {}
    for key, (opts, mode, spatial) in _ddp_setups().items():
        metric = _f64(OverlapScores(**opts))
        preds, target = _data(mode, spatial, seed=12)
        for i, (p, t) in enumerate(_batches(preds, target)):
            if (shard == "idle" and rank == 0) or (shard == "split" and i % world == rank):
                metric.update(p, t)
        out[key] = {k: v.double() for k, v in metric.compute().items()}
    return out


def _ddp_worker(rank, world):
    warnings.simplefilter("ignore")  # compute-before-update on the idle rank
    return {shard: _ddp_run(rank, world, shard) for shard in ("idle", "split")}


@pytest.mark.slow
def test_ddp_two_processes_with_an_idle_rank():
    expected = _ddp_run(0, 1, "idle")
    results = run_workers(2, _ddp_worker, timeout=90)
    assert [sorted(r) for r in results] == [["idle", "split"]] * 2
    for by_shard in results:
        for values in by_shard.values():
            for key, value in values.items():
                _assert_dict(value, {k: float(v) for k, v in expected[key].items()})


# ---- (3) checkpoints, reset, compute before update, dtypes ---------------------------------
@pytest.mark.parametrize("aggregate", ["dataset", "image"])
def test_state_dict_round_trip_mid_stream(aggregate):
    preds, target = _data("multiclass", (6, 5), seed=13)
    opts = dict(mode="multiclass", num_classes=4, ignore_index=IGNORE, aggregate=aggregate)
    batches = list(_batches(preds, target))
    first = _f64(OverlapScores(**opts))
    for p, t in batches[:3]:
        first.update(p, t)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = _f64(OverlapScores(**opts))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for p, t in batches[3:]:
        first.update(p, t)
        resumed.update(p, t)
    _assert_dict(resumed.compute(), {k: float(v) for k, v in first.compute().items()})
    keys = {"tp", "fp", "fn", "images"}
    if aggregate == "image":
        keys |= {
            "image_dice",
            "image_iou",
            "image_count",
            "image_micro_dice",
            "image_micro_iou",
            "image_micro_count",
        }
    assert set(first.state_dict()) == keys  # config_id is not persistent
    assert first.state_dict()["tp"].dtype == torch.int64


def test_reset_then_same_stream_gives_same_value():
    preds, target = _data("multilabel", (6, 5), seed=14)
    metric = _f64(
        OverlapScores(mode="multilabel", num_classes=4, ignore_index=IGNORE, aggregate="image")
    )
    first = {k: float(v) for k, v in _stream(metric, preds, target).items()}
    metric.reset()
    assert metric.images.item() == 0 and metric.image_count.sum().item() == 0
    _assert_dict(_stream(metric, preds, target), first)


@pytest.mark.parametrize("empty", POLICIES)
def test_compute_before_update_warns_and_is_nan(empty):
    metric = OverlapScores(mode="multiclass", num_classes=3, empty=empty, average="micro")
    with pytest.warns(UserWarning, match="before the ``update``"):
        out = metric.compute()
    assert len(out) == 8 and all(v.isnan() for v in out.values())


def test_empty_batch_is_a_no_op():
    metric = OverlapScores(mode="multiclass", num_classes=3)
    metric.update(torch.zeros(0, 3, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long))
    assert metric.images.item() == 0
    with pytest.raises(ValueError, match=r"class-id shape \(0, 4, 4\)"):
        metric.update(torch.zeros(0, 3, 4, 4), torch.zeros(0, 4, dtype=torch.long))


def test_counts_keep_their_dtype_under_to_and_set_dtype():
    metric = OverlapScores(mode="binary", aggregate="image")
    metric.update(torch.randn(2, 1, 4, 4), torch.randint(0, 2, (2, 4, 4)))
    before = {k: v.clone() for k, v in metric.state_dict().items()}
    for change in (
        lambda m: m.to(torch.float16),
        lambda m: m.half(),
        lambda m: m.set_dtype(torch.float16),
    ):
        metric = change(metric)
        for key, value in metric.state_dict().items():
            assert value.dtype == before[key].dtype and torch.equal(value, before[key]), key
    assert metric.compute()["dice"].dtype == torch.float16  # the output follows set_dtype


def test_compute_groups_do_not_merge_different_thresholds():
    """Equal counts after the first batch must not make a collection share one update."""
    first = (torch.tensor([[[2.0, -2.0]]]), torch.tensor([[1, 0]]))
    second = (torch.tensor([[[0.1, 0.1]]]), torch.tensor([[1, 0]]))  # p = 0.525: between
    collection = MetricCollection(
        {
            "low": OverlapScores(mode="binary", threshold=0.5),
            "high": OverlapScores(mode="binary", threshold=0.6),
        }
    )
    collection.update(*first)
    collection.update(*second)
    values = collection.compute()
    assert set(values) == {"low_dice", "low_iou", "high_dice", "high_iou"}
    assert values["low_dice"].item() == pytest.approx(2 * 2 / (2 * 2 + 1))  # TP 2, FP 1
    assert values["high_dice"].item() == pytest.approx(2 * 1 / (2 * 1 + 1))  # TP 1, FN 1


# ---- segmentation_metrics ------------------------------------------------------------------
def test_segmentation_metrics_collection_keys_and_forward():
    preds, target = _data("multiclass", (6, 5), seed=15)
    metrics = segmentation_metrics(
        mode="multiclass", num_classes=4, ignore_index=IGNORE, prefix="val/"
    )
    assert isinstance(metrics, MetricCollection)
    batch_value = metrics(preds[:7], target[:7])  # forward: the value of this batch
    alone = OverlapScores(mode="multiclass", num_classes=4, ignore_index=IGNORE)
    alone.update(preds[:7], target[:7])
    _assert_dict(batch_value, {f"val/{k}": float(v) for k, v in alone.compute().items()}, tol=1e-6)
    metrics.update(preds[7:], target[7:])
    values = metrics.compute()
    keys = ["dice", "iou"] + [f"{m}_{k}" for m in ("dice", "iou") for k in range(4)]
    assert list(values) == [f"val/{k}" for k in keys]
    assert all(v.dim() == 0 for v in values.values())
    full = OverlapScores(mode="multiclass", num_classes=4, ignore_index=IGNORE)
    full.update(preds, target)
    _assert_dict(values, {f"val/{k}": float(v) for k, v in full.compute().items()}, tol=1e-6)


def test_binary_has_no_per_class_keys():
    metrics = segmentation_metrics(mode="binary")
    metrics.update(torch.randn(2, 4, 4), torch.randint(0, 2, (2, 4, 4)))
    assert list(metrics.compute()) == ["dice", "iou"]


# ---- errors --------------------------------------------------------------------------------
UPDATE_ERRORS = [
    # (options, preds, target, exception, message regex)
    (
        dict(mode="binary"),
        torch.zeros(4, 1),
        torch.zeros(4),
        ValueError,
        r"OverlapScores\.update\(\): `target` must have `preds`' shape \(4, 1\); got \(4,\)",
    ),
    (
        dict(mode="binary"),
        torch.zeros(4),
        torch.zeros(4),
        ValueError,
        r"`preds` must have shape \(B, \*spatial\)",
    ),
    (
        dict(mode="binary"),
        torch.zeros(2, 1, 3),
        torch.zeros(2, 3),
        TypeError,
        r"`target` must be integer class ids when it has shape \(2, 3\)",
    ),
    (
        dict(mode="binary"),
        torch.zeros(2, 2, 3),
        torch.zeros(2, 3, dtype=torch.long),
        ValueError,
        r"`target` must have `preds`' shape \(2, 2, 3\); got \(2, 3\)",
    ),
    (
        dict(mode="binary"),
        torch.zeros(2, 3, dtype=torch.long),
        torch.zeros(2, 3),
        TypeError,
        r"`preds` must be a floating-point tensor",
    ),
    (dict(mode="binary"), [0.0], torch.zeros(1), TypeError, r"`preds` must be a torch\.Tensor"),
    (
        dict(mode="binary"),
        torch.zeros(2, 3),
        torch.full((2, 3), 2),
        ValueError,
        r"`target` must hold class ids in \[0, 2\)",
    ),
    (
        dict(mode="binary"),
        torch.zeros(2, 3),
        torch.full((2, 3), 0.5),
        ValueError,
        r"`target` must hold 0/1 labels; got 6 value",
    ),
    (
        dict(mode="binary"),
        torch.zeros(2, 3),
        torch.zeros(2, 3, dtype=torch.complex64),
        TypeError,
        r"`target` must be a real tensor",
    ),
    (
        dict(mode="binary", input="probs"),
        torch.full((2, 3), 1.5),
        torch.zeros(2, 3),
        ValueError,
        r"`preds` must have values in \[0, 1\]",
    ),
    (
        dict(mode="multiclass", num_classes=3),
        torch.zeros(2, 4, 5),
        torch.zeros(2, 5, dtype=torch.long),
        ValueError,
        r"`preds` must have num_classes = 3 channels",
    ),
    (
        dict(mode="multiclass", num_classes=3),
        torch.zeros(2, 3),
        torch.zeros(2, dtype=torch.long),
        ValueError,
        r"`preds` must have shape \(B, C, \*spatial\)",
    ),
    (
        dict(mode="multiclass", num_classes=3),
        torch.zeros(2, 3, 5),
        torch.zeros(2, 5),
        TypeError,
        r"`target` must be an integer tensor of class ids",
    ),
    (
        dict(mode="multiclass", num_classes=3),
        torch.zeros(2, 3, 5),
        torch.zeros(2, 1, 5, dtype=torch.long),
        ValueError,
        r"class-id shape \(2, 5\) that `preds` \(2, 3, 5\) implies; got \(2, 1, 5\)",
    ),
    (
        dict(mode="multiclass", num_classes=3),
        torch.zeros(2, 3, 5),
        torch.full((2, 5), 255),
        ValueError,
        r"hold class ids in \[0, 3\).*Set ignore_index=255",
    ),
    (
        dict(mode="multiclass", num_classes=3, ignore_index=255),
        torch.zeros(2, 3, 5),
        torch.full((2, 5), -1),
        ValueError,
        r"hold class ids in \[0, 3\) or ignore_index=255",
    ),
    (
        dict(mode="multilabel", num_classes=3),
        torch.zeros(2, 3, 5),
        torch.zeros(2, 5),
        ValueError,
        r"`target` must have the same shape as `preds` \(2, 3, 5\)",
    ),
    (
        dict(mode="multilabel", num_classes=3, ignore_index=255),
        torch.zeros(2, 3, 5),
        torch.full((2, 3, 5), 0.3),
        ValueError,
        r"hold 0/1 labels or ignore_index=255",
    ),
]


@pytest.mark.parametrize("opts,preds,target,kind,match", UPDATE_ERRORS)
def test_update_errors(opts, preds, target, kind, match):
    metric = OverlapScores(**opts)
    with pytest.raises(kind, match=match):
        metric.update(preds, target)
    assert metric.images.item() == 0  # nothing was counted


OPTION_ERRORS = [
    (dict(mode="multiclas"), ValueError, r"`mode` must be one of .*Did you mean 'multiclass'"),
    (dict(mode="multiclass"), ValueError, r"`num_classes` must be given in mode='multiclass'"),
    (dict(mode="multiclass", num_classes=1), ValueError, r"`num_classes` must be an int >= 2"),
    (dict(mode="multilabel", num_classes=2.0), TypeError, r"`num_classes` must be an int >= 1"),
    (
        dict(mode="binary", num_classes=2),
        ValueError,
        r"`num_classes` must be None or 1 in mode='binary'",
    ),
    (dict(mode="binary", input="prob"), ValueError, r"`input` must be one of 'logits' \| 'probs'"),
    (dict(mode="binary", threshold=1.5), ValueError, r"`threshold` must be in \[0, 1\]"),
    (dict(mode="binary", threshold="0.5"), TypeError, r"`threshold` must be a real number"),
    (dict(mode="binary", ignore_index=255.0), TypeError, r"`ignore_index` must be an int or None"),
    (
        dict(mode="binary", empty="nan"),
        ValueError,
        r"`empty` must be one of 'ratio' \| 'skip' \| 'zero'",
    ),
    (
        dict(mode="binary", average="none"),
        ValueError,
        r"`average` must be one of 'macro' \| 'micro' \| 'weighted'",
    ),
    (
        dict(mode="binary", aggregate="batch"),
        ValueError,
        r"`aggregate` must be one of 'dataset' \| 'image'",
    ),
]


@pytest.mark.parametrize("opts,kind,match", OPTION_ERRORS)
def test_option_errors(opts, kind, match):
    with pytest.raises(kind, match=r"^OverlapScores\(\): " + match):
        OverlapScores(**opts)
    with pytest.raises(kind, match=r"^segmentation_metrics\(\): " + match):
        segmentation_metrics(**opts)


def test_prefix_must_be_a_string():
    with pytest.raises(
        TypeError, match=r"segmentation_metrics\(\): `prefix` must be a string or None"
    ):
        segmentation_metrics(mode="binary", prefix=1)
