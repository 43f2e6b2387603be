"""The Dice family: the usual formula, the empty/ignore matrix, aggregation, presets."""

from __future__ import annotations

import itertools
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab.functional import (
    dice_loss,
    focal_tversky_loss,
    generalized_dice_loss,
    jaccard_loss,
    log_cosh_dice_loss,
    log_dice_loss,
    tversky_loss,
)

OVERLAP: list[Callable[..., torch.Tensor]] = [
    dice_loss,
    jaccard_loss,
    tversky_loss,
    focal_tversky_loss,
    log_dice_loss,
    log_cosh_dice_loss,
    generalized_dice_loss,
]


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_multiclass_dice_equals_the_usual_formula() -> None:
    """softmax + one-hot, per-class ratio, mean over classes (the recipe users write)."""
    g = _g(0)
    logits = torch.randn(4, 5, 16, 16, generator=g)
    target = torch.randint(0, 5, (4, 16, 16), generator=g)
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(target, 5).permute(0, 3, 1, 2).float()
    dims = (0, 2, 3)
    usual = 1 - ((2 * (p * onehot).sum(dims) + 1.0) / (p.sum(dims) + onehot.sum(dims) + 1.0)).mean()
    got = dice_loss(logits, target, mode="multiclass", aggregate="batch", smooth=1.0)
    torch.testing.assert_close(got, usual, rtol=1e-6, atol=1e-6)
    per_image = (2 * (p * onehot).sum((2, 3)) + 1.0) / (p.sum((2, 3)) + onehot.sum((2, 3)) + 1.0)
    torch.testing.assert_close(
        dice_loss(logits, target, mode="multiclass"),
        (1 - per_image.mean(1)).mean(),
        rtol=1e-6,
        atol=1e-6,
    )


def test_no_one_hot_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("one_hot called")

    monkeypatch.setattr(F, "one_hot", refuse)
    monkeypatch.setattr(torch.nn.functional, "one_hot", refuse)
    logits = torch.randn(2, 4, 8, 8)
    target = torch.randint(0, 4, (2, 8, 8))
    target[0, 0, 0] = 255
    for fn in OVERLAP:
        fn(logits, target, mode="multiclass", ignore_index=255)


def test_tversky_special_cases() -> None:
    g = _g(1)
    logits, target = (
        torch.randn(3, 1, 6, 6, generator=g),
        torch.randint(0, 2, (3, 1, 6, 6), generator=g).float(),
    )
    # (TP + s/2) / (TP + FP/2 + FN/2 + s/2) is Dice with smoothing s
    torch.testing.assert_close(
        tversky_loss(logits, target, alpha=0.5, beta=0.5, smooth=0.5),
        dice_loss(logits, target, smooth=1.0),
    )
    torch.testing.assert_close(
        tversky_loss(logits, target, alpha=1.0, beta=1.0), jaccard_loss(logits, target)
    )
    # alpha weights false positives: predicting everything raises the loss more with a larger alpha
    everything = torch.full_like(logits, 10.0)
    sparse = torch.zeros_like(target)
    sparse[:, :, 0, 0] = 1
    assert tversky_loss(everything, sparse, alpha=0.9, beta=0.1) > tversky_loss(
        everything, sparse, alpha=0.1, beta=0.9
    )


def test_ignored_pixels_do_not_matter() -> None:
    g = _g(2)
    logits = torch.randn(2, 3, 5, 5, generator=g)
    target = torch.randint(0, 3, (2, 5, 5), generator=g)
    target[:, :2] = 255
    changed = logits.clone()
    changed[:, :, :2] = torch.randn(2, 3, 2, 5, generator=g) * 10
    for fn in OVERLAP:
        a = fn(logits, target, mode="multiclass", ignore_index=255)
        b = fn(changed, target, mode="multiclass", ignore_index=255)
        torch.testing.assert_close(a, b)


CONDITIONS = {
    "empty target": (torch.full((2, 1, 4, 4), 3.0), torch.zeros(2, 1, 4, 4)),
    "empty prediction": (torch.full((2, 1, 4, 4), -30.0), torch.ones(2, 1, 4, 4)),
    "both empty": (torch.full((2, 1, 4, 4), -30.0), torch.zeros(2, 1, 4, 4)),
    "neither": (torch.full((2, 1, 4, 4), 30.0), torch.ones(2, 1, 4, 4)),
}


@pytest.mark.parametrize("fn", OVERLAP, ids=lambda f: f.__name__)
@pytest.mark.parametrize("condition", list(CONDITIONS))
@pytest.mark.parametrize("ignored", ["none", "some", "all"])
@pytest.mark.parametrize("empty", ["ratio", "skip", "zero"])
def test_empty_ignore_matrix(
    fn: Callable[..., torch.Tensor], condition: str, ignored: str, empty: str
) -> None:
    if fn is generalized_dice_loss and empty == "zero":
        pytest.skip("refused by design: one ratio over classes has no per-class loss to zero")
    logits, target = CONDITIONS[condition]
    logits = logits.clone().requires_grad_(True)
    target = target.clone()
    if ignored == "some":
        target[:, :, 0] = 255.0
    elif ignored == "all":
        target[:] = 255.0
    loss = fn(logits, target, ignore_index=255 if ignored != "none" else None, empty=empty)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    target_empty = condition in ("empty target", "both empty") or ignored == "all"
    if ignored == "all":
        assert loss.item() == 0.0 and (logits.grad == 0).all()
    elif target_empty and empty in ("skip", "zero"):
        assert loss.item() == 0.0
    elif condition == "both empty":  # smoothed ratio of nothing over nothing: a perfect score
        assert loss.item() == pytest.approx(0.0, abs=1e-6)
    elif condition in ("empty target", "empty prediction"):
        # false positives on an empty class, or a missed class, cost most of the maximum
        worst = fn(torch.full_like(logits, -30.0), torch.ones_like(target), empty=empty)
        assert worst.item() > 0
        assert loss.item() > 0.8 * worst.item() > 0


def test_empty_policies_with_zero_smoothing() -> None:
    """smooth = 0: nothing predicted for an absent class is 0/0, counted as a perfect score."""
    logits = torch.full((1, 1, 3, 3), -1e4)
    target = torch.zeros(1, 1, 3, 3)
    assert dice_loss(logits, target, smooth=0.0).item() == 0.0
    logits = torch.full((1, 1, 3, 3), 1e4, requires_grad=True)
    loss = dice_loss(logits, target, smooth=0.0)  # pure false positives on an absent class
    assert loss.item() == 1.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_skip_leaves_fully_empty_images_out_of_the_mean() -> None:
    g = _g(3)
    logits = torch.randn(2, 1, 4, 4, generator=g)
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, :2] = 1.0  # image 1 has no foreground
    both = dice_loss(logits, target, empty="skip")
    first = dice_loss(logits[:1], target[:1], empty="skip")
    torch.testing.assert_close(both, first)
    per_image = dice_loss(logits, target, empty="skip", reduction="none")
    assert per_image[1].item() == 0.0


@pytest.mark.parametrize("fn", OVERLAP, ids=lambda f: f.__name__)
def test_image_aggregate_is_batch_split_invariant(fn: Callable[..., torch.Tensor]) -> None:
    g = _g(4)
    logits = torch.randn(6, 3, 5, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (6, 5, 5), generator=g)
    kw = dict(mode="multiclass", aggregate="image")
    whole = fn(logits, target, **kw, reduction="sum")
    halves = fn(logits[:3], target[:3], **kw, reduction="sum") + fn(
        logits[3:], target[3:], **kw, reduction="sum"
    )
    torch.testing.assert_close(whole, halves)
    mean = fn(logits, target, **kw)
    torch.testing.assert_close(mean, whole / 6)


def test_batch_aggregate_depends_on_the_batch_by_design() -> None:
    g = _g(5)
    logits = torch.randn(4, 1, 6, 6, generator=g, dtype=torch.float64)
    target = torch.zeros(4, 1, 6, 6, dtype=torch.float64)
    target[0, 0, :3] = 1
    target[2, 0, :1] = 1
    whole = dice_loss(logits, target, aggregate="batch")
    halves = (
        dice_loss(logits[:2], target[:2], aggregate="batch")
        + dice_loss(logits[2:], target[2:], aggregate="batch")
    ) / 2
    assert abs(whole.item() - halves.item()) > 1e-3


def test_three_dimensional_and_class_subsets() -> None:
    g = _g(6)
    logits = torch.randn(2, 4, 3, 4, 5, generator=g)
    target = torch.randint(0, 4, (2, 3, 4, 5), generator=g)
    onehot = F.one_hot(target, 4).permute(0, 4, 1, 2, 3).float()
    only = dice_loss(logits, target, mode="multiclass", classes=[2])
    p = torch.softmax(logits, 1)[:, 2]
    t = onehot[:, 2]
    ref = 1 - (2 * (p * t).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + t.sum((1, 2, 3)) + 1)
    torch.testing.assert_close(only, ref.mean())
    no_bg = dice_loss(logits, target, mode="multiclass", include_background=False)
    subset = dice_loss(logits, target, mode="multiclass", classes=[1, 2, 3])
    torch.testing.assert_close(no_bg, subset)


def test_class_weight_weights_the_class_average() -> None:
    g = _g(7)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    target = torch.randint(0, 3, (2, 4, 4), generator=g)
    per_class = torch.stack(
        [
            dice_loss(logits, target, mode="multiclass", classes=[c], reduction="none")
            for c in range(3)
        ],
        1,
    )
    w = torch.tensor([1.0, 3.0, 0.5])
    got = dice_loss(logits, target, mode="multiclass", class_weight=w, reduction="none")
    torch.testing.assert_close(got, (per_class * w).sum(1) / w.sum())


@pytest.mark.parametrize(
    ("key", "first", "make"),
    [
        (
            "bce_dice",
            "bce",
            lambda g: (
                torch.randn(2, 1, 4, 4, generator=g),
                torch.randint(0, 2, (2, 1, 4, 4), generator=g).float(),
            ),
        ),
        (
            "focal_dice",
            "focal",
            lambda g: (
                torch.randn(2, 3, 4, 4, generator=g),
                torch.randint(0, 2, (2, 3, 4, 4), generator=g).float(),
            ),
        ),
        (
            "ce_dice",
            "ce",
            lambda g: (
                torch.randn(2, 3, 4, 4, generator=g),
                torch.randint(0, 3, (2, 4, 4), generator=g),
            ),
        ),
    ],
)
def test_presets_report_components(key: str, first: str, make: Callable[..., Any]) -> None:
    logits, target = make(_g(8))
    options = {"mode": "multilabel"} if key == "focal_dice" else {}
    preset = losslab.lookup(key)(**options, dice_weight=0.7)
    out = preset.evaluate(logits, target)
    assert set(out.components) == {first, "dice"}
    assert out.weights == {first: 0.5, "dice": 0.7}
    mode = {"bce_dice": "binary", "focal_dice": "multilabel", "ce_dice": "multiclass"}[key]
    torch.testing.assert_close(out.components["dice"], dice_loss(logits, target, mode=mode))
    torch.testing.assert_close(
        out.total, 0.5 * out.components[first] + 0.7 * out.components["dice"]
    )
    rebuilt = losslab.parse(preset.to_spec())
    assert type(rebuilt) is type(preset)
    torch.testing.assert_close(rebuilt(logits, target), preset(logits, target))
    assert losslab.parse(key).to_spec() == key


def test_preset_errors() -> None:
    with pytest.raises(
        ValueError, match=r"BCEDiceLoss\(\): `mode` must be one of 'binary' \| 'multilabel'"
    ):
        losslab.BCEDiceLoss(mode="multiclass")
    with pytest.raises(ValueError, match=r"`dice_weight` must be in \[0, inf\)"):
        losslab.CEDiceLoss(dice_weight=-1.0)


def test_half_and_autocast() -> None:
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    half = dice_loss(logits.half(), target, mode="multiclass")
    assert half.dtype == torch.float16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dice_loss(logits.bfloat16(), target, mode="multiclass")
    assert out.dtype == torch.float32
    _ = itertools
