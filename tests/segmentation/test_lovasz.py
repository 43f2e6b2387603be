"""Family tests of the Lovasz hinge and Lovasz-softmax: hand values, the Lovasz extension's
definitions, agreements between the two losses, empty/ignore handling, numerics."""

from __future__ import annotations

import itertools

import pytest
import torch

import losslab
from losslab.losses.segmentation.lovasz_hinge import (
    LovaszHingeLoss,
    lovasz_hinge_loss,
    lovasz_increments,
)
from losslab.losses.segmentation.lovasz_softmax import LovaszSoftmaxLoss, lovasz_softmax_loss
from tests.cases.segmentation_lovasz import jaccard_of_set

D = torch.float64


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- hand values
def test_hinge_hand_example_value_and_gradient() -> None:
    # errors 1 - x s: [-1, 0, 1.5, 4]; sorted 4 (fg), 1.5 (bg), 0 (bg), -1 (fg) with |y| = 2:
    # J = 1/2, 2/3, 3/4, 1 -> increments 1/2, 1/6, 1/12, 1/4 -> 4/2 + 1.5/6 = 2.25.
    x = torch.tensor([[[2.0, -1.0, 0.5, -3.0]]], dtype=D, requires_grad=True)
    t = torch.tensor([[[1.0, 0.0, 0.0, 1.0]]], dtype=D)
    loss = lovasz_hinge_loss(x, t)
    assert loss.item() == pytest.approx(2.25, abs=1e-15)
    (grad,) = torch.autograd.grad(loss, x)
    # d loss / d x_i = -s_i * increment_i where the error is positive.
    torch.testing.assert_close(grad, torch.tensor([[[0.0, 0.0, 1 / 6, -1 / 2]]], dtype=D))


def test_softmax_hand_example() -> None:
    probs = torch.tensor([[[0.9, 0.2, 0.6, 0.3]]], dtype=D)
    t = torch.tensor([[[1.0, 0.0, 0.0, 1.0]]], dtype=D)
    # errors 0.1, 0.2, 0.6, 0.7: same order and increments as the hinge example.
    want = 0.7 / 2 + 0.6 / 6 + 0.2 / 12 + 0.1 / 4
    got = lovasz_softmax_loss(probs, t, mode="binary", activation=None)
    assert got.item() == pytest.approx(want, abs=1e-15)


def test_perfect_prediction_with_margin_is_zero() -> None:
    t = (torch.rand(2, 1, 4, 4, generator=_g()) < 0.5).double()
    assert lovasz_hinge_loss(4.0 * (2 * t - 1), t).item() == 0.0
    ids = torch.randint(0, 3, (2, 4, 4), generator=_g(1))
    onehot_logits = 1e4 * torch.nn.functional.one_hot(ids, 3).permute(0, 3, 1, 2).double()
    assert lovasz_softmax_loss(onehot_logits, ids).item() == 0.0


# ---------------------------------------------------------------------------- definitions
def _level_set_form(errors: list[float], gt: list[float]) -> float:
    """Lovasz extension for errors >= 0 as the integral of J over level sets (ties handled)."""
    levels = [*sorted(set(errors), reverse=True), 0.0]
    total = 0.0
    for hi, lo in zip(levels, levels[1:]):
        chosen = {j for j, e in enumerate(errors) if e >= hi}
        total += (hi - lo) * jaccard_of_set(chosen, gt, [1.0] * len(gt))
    return total


def test_hinge_equals_level_set_integral_with_ties() -> None:
    g = _g(2)
    x = torch.randint(-3, 4, (3, 1, 3, 4), generator=g).double() / 2  # many ties
    t = (torch.rand(3, 1, 3, 4, generator=g) < 0.4).double()
    got = lovasz_hinge_loss(x, t, reduction="none")
    for b in range(3):
        s = 2 * t[b].reshape(-1) - 1
        errors = torch.clamp(1 - x[b].reshape(-1) * s, min=0).tolist()
        assert got[b].item() == pytest.approx(
            _level_set_form(errors, t[b].reshape(-1).tolist()), abs=1e-12
        )


def test_softmax_equals_level_set_integral() -> None:
    g = _g(3)
    x = torch.randn(2, 3, 3, 3, generator=g, dtype=D)
    ids = torch.randint(0, 3, (2, 3, 3), generator=g)
    got = lovasz_softmax_loss(x, ids, present_only=False, reduction="none")
    p = torch.softmax(x, 1)
    for b in range(2):
        per_class = []
        for c in range(3):
            gt = (ids[b] == c).double().reshape(-1)
            errors = (gt - p[b, c].reshape(-1)).abs().tolist()
            per_class.append(_level_set_form(errors, gt.tolist()))
        assert got[b].item() == pytest.approx(sum(per_class) / 3, abs=1e-12)


def test_increments_match_jaccard_differences_and_sum_to_one() -> None:
    g = _g(4)
    gt = (torch.rand(5, 40, generator=g) < 0.3).double()
    w = torch.rand(5, 40, generator=g, dtype=D)
    w[w < 0.2] = 0.0  # ignored pixels interleaved
    w[0] = 0.0  # all ignored
    gt[1] = 0.0  # no foreground
    inc = lovasz_increments(gt, w)
    for r in range(5):
        g_list, w_list = gt[r].tolist(), w[r].tolist()
        previous = 0.0
        for i in range(40):
            current = jaccard_of_set(set(range(i + 1)), g_list, w_list)
            assert inc[r, i].item() == pytest.approx(current - previous, abs=1e-13)
            previous = current
    torch.testing.assert_close(inc.sum(-1)[1:], torch.ones(4, dtype=D))
    assert inc[0].abs().sum().item() == 0.0


# ---------------------------------------------------------------------------- agreements
def test_binary_softmax_equals_two_class_softmax_foreground() -> None:
    g = _g(5)
    x = torch.randn(3, 1, 4, 4, generator=g, dtype=D)
    ids = torch.randint(0, 2, (3, 4, 4), generator=g)
    binary = lovasz_softmax_loss(x, ids, mode="binary", reduction="none")
    two = torch.cat([torch.zeros_like(x), x], 1)  # softmax(0, x)[1] == sigmoid(x)
    fg_only = lovasz_softmax_loss(two, ids, classes=[1], reduction="none")
    torch.testing.assert_close(binary, fg_only, rtol=1e-12, atol=1e-14)
    # Both classes: the mean of the foreground term and the background term (sigmoid(-x), 1 - t).
    both = lovasz_softmax_loss(two, ids, present_only=False, reduction="none")
    background = lovasz_softmax_loss(
        -x, 1 - ids, mode="binary", present_only=False, reduction="none"
    )
    fg_all = lovasz_softmax_loss(x, ids, mode="binary", present_only=False, reduction="none")
    torch.testing.assert_close(both, (fg_all + background) / 2, rtol=1e-12, atol=1e-14)


def test_batch_aggregate_is_one_image_of_all_pixels() -> None:
    g = _g(6)
    x = torch.randn(3, 1, 4, 5, generator=g, dtype=D)
    t = (torch.rand(3, 1, 4, 5, generator=g) < 0.5).double()
    flat_x = x.permute(1, 0, 2, 3).reshape(1, 1, 3 * 4, 5)
    flat_t = t.permute(1, 0, 2, 3).reshape(1, 1, 3 * 4, 5)
    torch.testing.assert_close(
        lovasz_hinge_loss(x, t, aggregate="batch"), lovasz_hinge_loss(flat_x, flat_t)
    )
    xm = torch.randn(3, 4, 4, 5, generator=g, dtype=D)
    ids = torch.randint(0, 4, (3, 4, 5), generator=g)
    torch.testing.assert_close(
        lovasz_softmax_loss(xm, ids, aggregate="batch"),
        lovasz_softmax_loss(xm.permute(1, 0, 2, 3).reshape(1, 4, 12, 5), ids.reshape(1, 12, 5)),
    )


def test_integer_sample_weight_in_batch_mode_repeats_images() -> None:
    g = _g(7)
    x = torch.randn(3, 1, 2, 3, generator=g, dtype=D)
    t = (torch.rand(3, 1, 2, 3, generator=g) < 0.5).double()
    sw = torch.tensor([2.0, 0.0, 3.0], dtype=D)
    repeated = torch.tensor([0, 0, 2, 2, 2])
    torch.testing.assert_close(
        lovasz_hinge_loss(x, t, aggregate="batch", sample_weight=sw),
        lovasz_hinge_loss(x[repeated], t[repeated], aggregate="batch"),
    )
    xm = torch.randn(3, 3, 2, 3, generator=g, dtype=D)
    ids = torch.randint(0, 3, (3, 2, 3), generator=g)
    torch.testing.assert_close(
        lovasz_softmax_loss(xm, ids, aggregate="batch", sample_weight=sw),
        lovasz_softmax_loss(xm[repeated], ids[repeated], aggregate="batch"),
    )


@pytest.mark.parametrize("which", ["hinge", "softmax"])
def test_image_sum_is_additive_over_batch_halves(which: str) -> None:
    g = _g(8)
    if which == "hinge":
        x = torch.randn(5, 1, 3, 4, generator=g, dtype=D)
        t = torch.randint(0, 2, (5, 3, 4), generator=g)
        fn, kw = lovasz_hinge_loss, {}
    else:
        x = torch.randn(5, 3, 3, 4, generator=g, dtype=D)
        t = torch.randint(0, 3, (5, 3, 4), generator=g)
        fn, kw = lovasz_softmax_loss, {}
    t[1] = 255
    sw = torch.rand(5, generator=g, dtype=D)
    whole = fn(x, t, ignore_index=255, sample_weight=sw, reduction="sum", **kw)
    halves = sum(
        fn(x[s], t[s], ignore_index=255, sample_weight=sw[s], reduction="sum", **kw)
        for s in (slice(0, 2), slice(2, 5))
    )
    torch.testing.assert_close(whole, halves, rtol=1e-12, atol=1e-14)


def test_present_only_is_the_skip_policy() -> None:
    # Class 2 absent from the target but predicted: penalized only with present_only=False.
    ids = torch.zeros(1, 2, 2, dtype=torch.long)
    ids[0, 0, 0] = 1
    x = torch.zeros(1, 3, 2, 2, dtype=D)
    x[:, 2] = 3.0
    present = lovasz_softmax_loss(x, ids)
    everything = lovasz_softmax_loss(x, ids, present_only=False)
    p = torch.softmax(x, 1)
    # The absent class costs its largest error (J jumps to 1 at the first false positive)...
    only_absent = lovasz_softmax_loss(x, ids, classes=[2], present_only=False)
    assert only_absent.item() == pytest.approx(p[0, 2].max().item(), abs=1e-14)
    # ...and enters the class average only with present_only=False (2 present classes + it).
    torch.testing.assert_close(everything, (2 * present + only_absent) / 3)
    # An image with no present class is left out of the mean over images.
    ids2 = torch.cat([ids, torch.full_like(ids, 255)])
    x2 = torch.cat([x, x])
    torch.testing.assert_close(lovasz_softmax_loss(x2, ids2, ignore_index=255), present)


# ---------------------------------------------------------------------------- empty / ignore
def _matrix_inputs(kind: str, content: str, ignore: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = _g(9)
    c = 1 if kind == "hinge" else 3
    x = torch.randn(2, c, 4, 4, generator=g, dtype=D)
    ids = torch.randint(0, c if c > 1 else 2, (2, 4, 4), generator=g)
    if content in ("empty target", "both"):
        ids.zero_()
    if content in ("empty pred", "both"):
        x = torch.full_like(x, -30.0)
        if kind == "softmax":
            x[:, 0] = 30.0  # everything predicted background
    if ignore == "some":
        ids[:, 0, :] = 255
    elif ignore == "all":
        ids.fill_(255)
    return x, ids


@pytest.mark.parametrize("kind", ["hinge", "softmax"])
@pytest.mark.parametrize("aggregate", ["image", "batch"])
def test_empty_ignore_matrix(kind: str, aggregate: str) -> None:
    fn = lovasz_hinge_loss if kind == "hinge" else lovasz_softmax_loss
    for content, ignore in itertools.product(
        ["empty target", "empty pred", "both", "neither"], ["none", "some", "all"]
    ):
        for dtype in (torch.float32, D):
            x, ids = _matrix_inputs(kind, content, ignore)
            x = x.to(dtype).requires_grad_(True)
            for reduction in ("mean", "sum", "none"):
                loss = fn(x, ids, ignore_index=255, aggregate=aggregate, reduction=reduction)
                (grad,) = torch.autograd.grad(loss.sum(), x)
                assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (content, ignore)
                if ignore == "all":
                    assert (loss == 0).all() and (grad == 0).all(), (content, reduction)
                if ignore == "some":
                    assert (grad[..., 0, :] == 0).all(), "ignored pixels get no gradient"


def test_hinge_ignored_pixels_do_not_matter() -> None:
    g = _g(10)
    x = torch.randn(2, 1, 3, 4, generator=g, dtype=D)
    ids = torch.randint(0, 2, (2, 3, 4), generator=g)
    ids[:, :, 0] = 255
    y = x.clone()
    y[..., 0] = 1e4  # anything at ignored pixels
    torch.testing.assert_close(
        lovasz_hinge_loss(x, ids, ignore_index=255), lovasz_hinge_loss(y, ids, ignore_index=255)
    )
    kept = lovasz_hinge_loss(x[..., 1:].contiguous(), ids[..., 1:].contiguous())
    torch.testing.assert_close(lovasz_hinge_loss(x, ids, ignore_index=255), kept)


# ---------------------------------------------------------------------------- numerics
def test_float32_large_image_matches_float64() -> None:
    g = _g(11)
    x = torch.randn(1, 1, 256, 512, generator=g, dtype=D)
    t = (torch.rand(1, 1, 256, 512, generator=g) < 0.3).double()
    x64 = x.clone().requires_grad_(True)
    x32 = x.float().requires_grad_(True)
    l64 = lovasz_hinge_loss(x64, t)
    l32 = lovasz_hinge_loss(x32, t.float())
    (g64,) = torch.autograd.grad(l64, x64)
    (g32,) = torch.autograd.grad(l32, x32)
    assert abs(l32.item() - l64.item()) <= 1e-5 * l64.item()
    # Increments ~1/N: each keeps its relative precision in float32 (closed form, suffix sums).
    nonzero = g64 != 0
    rel = ((g32.double() - g64).abs()[nonzero] / g64.abs()[nonzero]).max().item()
    assert rel < 1e-3, rel


def test_half_inputs_give_half_output_and_module_is_registered() -> None:
    x = torch.randn(2, 3, 4, 4).half()
    ids = torch.randint(0, 3, (2, 4, 4))
    assert lovasz_softmax_loss(x, ids).dtype == torch.float16
    assert losslab.lookup("lovasz_hinge") is LovaszHingeLoss
    assert losslab.lookup("lovasz_softmax") is LovaszSoftmaxLoss
    module = LovaszSoftmaxLoss(ignore_index=255, aggregate="batch")
    torch.testing.assert_close(
        module(x.float(), ids),
        lovasz_softmax_loss(x.float(), ids, ignore_index=255, aggregate="batch"),
    )


def test_increments_keep_relative_precision_in_float32() -> None:
    # Differences of consecutive Jaccard values (the paper's code) lose every digit once the
    # increments (~1/N) reach float32's epsilon; the closed form keeps ~1e-7 relative error.
    gt = (torch.rand(1, 1 << 20, generator=_g(12)) < 0.3).double()
    want = lovasz_increments(gt, torch.ones_like(gt))
    got = lovasz_increments(gt.float(), torch.ones_like(gt.float())).double()
    nonzero = want != 0
    assert ((got - want).abs()[nonzero] / want[nonzero]).max().item() < 1e-5
