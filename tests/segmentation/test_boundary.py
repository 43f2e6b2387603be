"""Distance transforms, boundary loss and Hausdorff DT loss: scipy, hand values, paper properties,
the empty/ignore matrix and batch additivity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

import losslab
import losslab.losses.segmentation.distance as distance_mod
from losslab.losses.segmentation.boundary import BoundaryLoss, boundary_loss
from losslab.losses.segmentation.distance import distance_transform, signed_distance
from losslab.losses.segmentation.hausdorff import HausdorffDTLoss, hausdorff_dt_loss
from tests.cases.segmentation_boundary import ref_boundary, ref_hausdorff_dt, ref_signed

LOSSES = [boundary_loss, hausdorff_dt_loss]
REFS = {boundary_loss: ref_boundary, hausdorff_dt_loss: ref_hausdorff_dt}


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _scipy_dt(mask: torch.Tensor) -> np.ndarray:
    out = []
    for m in mask.numpy():
        if m.any():
            out.append(distance_transform_edt(~m))
        else:
            out.append(np.full(m.shape, math.sqrt(sum(n * n for n in m.shape))))
    return np.stack(out)


# ------------------------------------------------------------------------------ distance transforms
@pytest.mark.parametrize("shape", [(3, 17, 23), (2, 1, 9), (2, 9, 11, 13), (1, 4, 1, 6)])
@pytest.mark.parametrize("density", [0.02, 0.3, 0.9])
def test_distance_transform_equals_scipy(shape: tuple[int, ...], density: float) -> None:
    mask = torch.rand(shape, generator=_g(len(shape))) < density
    mask[0] = False  # one image without any True: the grid diagonal
    got = distance_transform(mask, dtype=torch.float64)
    np.testing.assert_allclose(got.numpy(), _scipy_dt(mask), rtol=0, atol=1e-6)
    assert not got.requires_grad
    assert distance_transform(mask).dtype == torch.float32


def test_distance_transform_chunked_equals_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    mask = torch.rand(2, 12, 7, 9, generator=_g(3)) < 0.1
    whole = distance_transform(mask, dtype=torch.float64)
    monkeypatch.setattr(distance_mod, "_BLOCK", 200)  # forces many chunks of lines per pass
    torch.testing.assert_close(distance_transform(mask, dtype=torch.float64), whole, rtol=0, atol=0)


def test_distance_transform_hand_values() -> None:
    m = torch.zeros(1, 3, 3, dtype=torch.bool)
    m[0, 1, 1] = True
    s2 = math.sqrt(2.0)
    want = torch.tensor([[[s2, 1, s2], [1, 0, 1], [s2, 1, s2]]], dtype=torch.float64)
    torch.testing.assert_close(distance_transform(m, dtype=torch.float64), want)
    empty = torch.zeros(1, 3, 4, dtype=torch.bool)
    torch.testing.assert_close(distance_transform(empty), torch.full((1, 3, 4), 5.0))


def test_signed_distance_kervadec_convention() -> None:
    mask = torch.rand(3, 10, 12, generator=_g(5)) < 0.4
    mask[1] = False
    mask[2] = True
    got = signed_distance(mask, dtype=torch.float64)
    want = np.stack([ref_signed(m, ~m) for m in mask.numpy()])
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)
    # negative (or 0 on the inner contour) inside, positive outside; empty and full masks give 0
    assert (got[0][mask[0]] <= 0).all() and (got[0][~mask[0]] >= 1).all()
    assert (got[1] == 0).all() and (got[2] == 0).all()
    # the authors' one_hot2dist on a 1-D profile: 1 just outside, 0 on the inner contour
    line = torch.tensor([[[0, 0, 1, 1, 1, 1, 1, 0]]], dtype=torch.bool)
    torch.testing.assert_close(
        signed_distance(line), torch.tensor([[[2.0, 1.0, 0.0, -1.0, -2.0, -1.0, 0.0, 1.0]]])
    )


@pytest.mark.parametrize("fn", [distance_transform, signed_distance])
def test_distance_bad_inputs(fn) -> None:
    name = fn.__name__
    with pytest.raises(
        TypeError, match=rf"{name}\(\): `mask` must be a boolean tensor; got dtype int64"
    ):
        fn(torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"`mask` must be a torch.Tensor; got list"):
        fn([[[True]]])
    with pytest.raises(
        ValueError, match=r"`mask` must have shape \(B, H, W\) or \(B, D, H, W\).*got \(3, 3\)"
    ):
        fn(torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"`dtype` must be a floating torch.dtype"):
        fn(torch.zeros(1, 3, 3, dtype=torch.bool), dtype=torch.int64)


# ------------------------------------------------------------------------------ hand values
def _square_example() -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.zeros(1, 5, 5, dtype=torch.long)
    target[0, 1:4, 1:4] = 1
    logits = torch.full((1, 1, 5, 5), -2.0, dtype=torch.float64)
    logits[0, 0, 2, 2] = 2.0
    return logits, target


def test_boundary_hand_value() -> None:
    # 3x3 square in a 5x5 image: phi = -1 at the centre, 0 on the inner ring, 1 on the 12 edge
    # pixels of the border and sqrt(2) on its 4 corners.
    logits, target = _square_example()
    lo, hi = 1 / (1 + math.exp(2.0)), 1 / (1 + math.exp(-2.0))
    want = (lo * (12 + 4 * math.sqrt(2.0)) - hi) / 25
    assert boundary_loss(logits, target).item() == pytest.approx(want, rel=1e-12)


def test_hausdorff_dt_hand_value() -> None:
    # d_t: centre 2, inner ring 1, border 1 (edges) / sqrt(2) (corners).
    # prediction p > 0.5 only at the centre: d_p = 1 there, then 1 / sqrt(2) on the ring, 2 /
    # sqrt(5) / sqrt(8) on the border.
    logits, target = _square_example()
    lo, hi = 1 / (1 + math.exp(2.0)), 1 / (1 + math.exp(-2.0))
    centre = (hi - 1) ** 2 * (4 + 1)
    ring = (lo - 1) ** 2 * (4 * (1 + 1) + 4 * (1 + 2))
    border = lo**2 * (4 * (1 + 4) + 8 * (1 + 5) + 4 * (2 + 8))
    want = (centre + ring + border) / 25
    assert hausdorff_dt_loss(logits, target).item() == pytest.approx(want, rel=1e-12)
    # alpha = 1 uses the distances themselves
    r5, r8, r2 = math.sqrt(5), math.sqrt(8), math.sqrt(2)
    want1 = (
        (hi - 1) ** 2 * 3
        + (lo - 1) ** 2 * (4 * 2 + 4 * (1 + r2))
        + lo**2 * (4 * 3 + 8 * (1 + r5) + 4 * (r2 + r8))
    ) / 25
    assert hausdorff_dt_loss(logits, target, alpha=1.0).item() == pytest.approx(want1, rel=1e-12)


def test_boundary_gradient_is_the_signed_map() -> None:
    # The loss is linear in the probabilities: d loss / d p = phi / (pixels * images).
    target = torch.rand(2, 8, 9, generator=_g(1)) < 0.3
    probs = torch.rand(2, 1, 8, 9, generator=_g(2), dtype=torch.float64).requires_grad_(True)
    boundary_loss(probs, target.long(), activation=None).backward()
    phi = signed_distance(target, dtype=torch.float64).unsqueeze(1)
    torch.testing.assert_close(probs.grad, phi / (8 * 9 * 2))


def test_boundary_ranks_predictions_by_distance() -> None:
    # Kervadec et al.: the loss is the (signed) area between contours; the perfect region
    # reaches the minimum, a shifted region costs more, a farther shift even more.
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 4:10, 4:10] = 1

    def region(shift: int) -> torch.Tensor:
        p = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
        p[0, 0, 4 + shift : 10 + shift, 4:10] = 1.0
        return p

    values = [boundary_loss(region(s), target, activation=None).item() for s in (0, 1, 3)]
    assert values[0] < values[1] < values[2]
    assert values[0] == pytest.approx(
        signed_distance(target.bool())[target.bool()].sum().item() / 256
    )


@pytest.mark.parametrize("fn", LOSSES)
def test_perfect_prediction(fn) -> None:
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:6, 3:7] = 1
    logits = (target.double() * 60 - 30).unsqueeze(1)
    value = fn(logits, target)
    if fn is hausdorff_dt_loss:
        assert 0 <= value.item() < 1e-20
    else:
        assert value.item() < 0  # the minimum: every inside pixel contributes phi <= 0


# ------------------------------------------------------------------------------ options
@pytest.mark.parametrize("fn", LOSSES)
def test_include_background_false_equals_foreground_classes(fn) -> None:
    x = torch.randn(2, 3, 6, 7, generator=_g(4), dtype=torch.float64)
    ids = torch.randint(0, 3, (2, 6, 7), generator=_g(5))
    a = fn(x, ids, mode="multiclass", include_background=False, reduction="none")
    b = fn(x, ids, mode="multiclass", classes=[1, 2], reduction="none")
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("fn", LOSSES)
def test_ids_equal_one_hot(fn) -> None:
    x = torch.randn(2, 3, 5, 4, 3, generator=_g(6), dtype=torch.float64)
    ids = torch.randint(0, 3, (2, 5, 4, 3), generator=_g(7))
    onehot = torch.nn.functional.one_hot(ids, 3).movedim(-1, 1).double()
    torch.testing.assert_close(fn(x, ids, mode="multiclass"), fn(x, onehot, mode="multiclass"))


@pytest.mark.parametrize("fn", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_aggregate_batch_matches_reference(fn, weighted: bool) -> None:
    x = torch.randn(3, 3, 6, 5, generator=_g(8), dtype=torch.float64)
    ids = torch.randint(0, 3, (3, 6, 5), generator=_g(9))
    ids[0, :2] = 255
    kw = dict(mode="multiclass", ignore_index=255, aggregate="batch")
    if weighted:
        kw["sample_weight"] = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    for reduction in ("mean", "sum", "none"):
        got = fn(x, ids, **kw, reduction=reduction)
        assert got.shape == ()
        torch.testing.assert_close(
            got, REFS[fn](x, ids, **kw, reduction=reduction), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize("fn", LOSSES)
def test_batch_split_sum_is_additive(fn) -> None:
    x = torch.randn(5, 1, 7, 6, generator=_g(10), dtype=torch.float64)
    ids = (torch.rand(5, 7, 6, generator=_g(11)) < 0.4).long()
    ids[1] = 0
    ids[3, :3] = 255
    sw = torch.rand(5, generator=_g(12), dtype=torch.float64)
    kw = dict(ignore_index=255, aggregate="image", reduction="sum")
    whole = fn(x, ids, sample_weight=sw, **kw)
    halves = fn(x[:2], ids[:2], sample_weight=sw[:2], **kw) + fn(
        x[2:], ids[2:], sample_weight=sw[2:], **kw
    )
    torch.testing.assert_close(whole, halves, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn", LOSSES)
def test_ignored_pixels_do_not_matter(fn) -> None:
    # whatever the logits at ignored pixels, the loss is the same (and they get zero gradient)
    x = torch.randn(2, 1, 8, 8, generator=_g(13), dtype=torch.float64)
    ids = (torch.rand(2, 8, 8, generator=_g(14)) < 0.4).long()
    ids[:, :, :2] = 255
    y = x.clone()
    y[:, :, :, :2] = torch.randn(2, 1, 8, 2, generator=_g(15), dtype=torch.float64) * 30
    y.requires_grad_(True)
    a = fn(x, ids, ignore_index=255)
    b = fn(y, ids, ignore_index=255)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    b.backward()
    assert (y.grad[:, :, :, :2] == 0).all()


# ------------------------------------------------------------------------------ empty / ignore
@pytest.mark.parametrize("fn", LOSSES)
@pytest.mark.parametrize("target_kind", ["empty", "full", "some"])
@pytest.mark.parametrize("pred_kind", ["empty", "full", "random"])
@pytest.mark.parametrize("ignore", ["none", "some", "all"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_ignore_matrix(
    fn, target_kind: str, pred_kind: str, ignore: str, dtype: torch.dtype
) -> None:
    ids = torch.zeros(2, 6, 7, dtype=torch.long)
    if target_kind == "full":
        ids[:] = 1
    elif target_kind == "some":
        ids[:, 1:4, 2:5] = 1
    if pred_kind == "random":
        logits = torch.randn(2, 1, 6, 7, generator=_g(16), dtype=dtype)
    else:
        logits = torch.full((2, 1, 6, 7), 30.0 if pred_kind == "full" else -30.0, dtype=dtype)
    logits.requires_grad_(True)
    if ignore == "some":
        ids[:, 0] = 255
    elif ignore == "all":
        ids[:] = 255
    for aggregate in ("image", "batch"):
        for reduction in ("mean", "sum", "none"):
            loss = fn(logits, ids, ignore_index=255, aggregate=aggregate, reduction=reduction)
            (grad,) = torch.autograd.grad(loss.sum(), logits)
            assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
            if ignore == "all":
                assert (loss == 0).all() and (grad == 0).all()
    if target_kind == "empty" and pred_kind == "empty":
        assert fn(logits, ids, ignore_index=255).abs().item() < 1e-10  # nothing anywhere costs ~0


@pytest.mark.parametrize("fn", LOSSES)
def test_zero_sample_weights_give_zero(fn) -> None:
    x = torch.randn(2, 1, 5, 5, generator=_g(17), dtype=torch.float64, requires_grad=True)
    ids = (torch.rand(2, 5, 5, generator=_g(18)) < 0.5).long()
    loss = fn(x, ids, sample_weight=torch.zeros(2, dtype=torch.float64))
    loss.backward()
    assert loss.item() == 0 and (x.grad == 0).all()


# ------------------------------------------------------------------------------ modules
def test_registry_and_modules() -> None:
    assert losslab.lookup("boundary") is BoundaryLoss
    assert losslab.lookup("hausdorff_dt") is HausdorffDTLoss
    logits, target = _square_example()
    torch.testing.assert_close(BoundaryLoss()(logits, target), boundary_loss(logits, target))
    m = HausdorffDTLoss(alpha=1.0, reduction="none")
    torch.testing.assert_close(
        m(logits, target), hausdorff_dt_loss(logits, target, alpha=1.0, reduction="none")
    )
    assert "alpha=1.0" in repr(m)
    with pytest.raises(ValueError, match=r"HausdorffDTLoss\(\): `alpha` must be in \(0, 8\]"):
        HausdorffDTLoss(alpha=-1.0)
    with pytest.raises(
        ValueError, match=r"BoundaryLoss\(\): `include_background` must be True in mode='binary'"
    ):
        BoundaryLoss(include_background=False)
    with pytest.raises(ValueError, match=r"BoundaryLoss\(\): `aggregate` must be one of"):
        BoundaryLoss(aggregate="pixel")


def test_half_inputs_compute_in_float32() -> None:
    logits, target = _square_example()
    half = boundary_loss(logits.half(), target)
    assert half.dtype == torch.float16
    torch.testing.assert_close(
        half.float(), boundary_loss(logits.half().float(), target), rtol=1e-3, atol=1e-4
    )
