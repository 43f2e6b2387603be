"""Soft-DTW and the soft-DTW divergence: brute force over alignments, DTW limit, published values,
variable lengths, bands, long series, half precision and the double-backward error."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Optional

import pytest
import torch

import losslab
from losslab._autograd.soft_dtw import diagonal_range, soft_dtw_values
from losslab.losses.timeseries.soft_dtw import (
    SoftDTWLoss,
    soft_dtw_loss,
    squared_euclidean_cost,
)
from losslab.losses.timeseries.soft_dtw_divergence import (
    SoftDTWDivergenceLoss,
    soft_dtw_divergence_loss,
)
from tests.cases.timeseries_dtw import prefix_mask, ref_series, ref_soft_dtw

LOSSES = [soft_dtw_loss, soft_dtw_divergence_loss]
F64 = torch.float64


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(seed: int, *shape: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=_g(seed), dtype=dtype)


# ---------------------------------------------------------------------------- brute force
def _paths(n: int, m: int, band: Optional[int]) -> Iterator[list[tuple[int, int]]]:
    """Every monotone alignment path from (0, 0) to (n - 1, m - 1) inside the band."""

    def walk(path: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
        i, j = path[-1]
        if (i, j) == (n - 1, m - 1):
            yield list(path)
            return
        for di, dj in ((1, 0), (0, 1), (1, 1)):
            a, b = i + di, j + dj
            if a < n and b < m and (band is None or abs(a - b) <= band):
                path.append((a, b))
                yield from walk(path)
                path.pop()

    yield from walk([(0, 0)])


def _brute_force(cost: torch.Tensor, gamma: float, band: Optional[int] = None):
    """(value, expected alignment matrix) over the Gibbs distribution of all alignments."""
    paths = list(_paths(cost.shape[0], cost.shape[1], band))
    scores = torch.tensor([sum(float(cost[i, j]) for i, j in p) for p in paths], dtype=F64)
    value = -gamma * torch.logsumexp(-scores / gamma, 0)
    probs = torch.softmax(-scores / gamma, 0)
    expected = torch.zeros_like(cost)
    for prob, p in zip(probs, paths):
        for i, j in p:
            expected[i, j] += prob
    return value, expected


@pytest.mark.parametrize(
    ("n", "m", "band", "gamma"),
    [(3, 4, None, 1.0), (4, 4, None, 0.1), (4, 3, 1, 0.5), (4, 4, 0, 1.0), (1, 4, None, 0.3)],
)
def test_value_and_gradient_equal_brute_force_over_alignments(n, m, band, gamma) -> None:
    cost = torch.rand(2, n, m, generator=_g(n * 10 + m), dtype=F64) * 2
    cost.requires_grad_(True)
    values = soft_dtw_values(cost, gamma, band)
    (grad,) = torch.autograd.grad(values.sum(), cost)
    for b in range(2):
        want, expected = _brute_force(cost[b].detach(), gamma, band)
        torch.testing.assert_close(values[b], want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad[b], expected, rtol=1e-10, atol=1e-12)
    # Every alignment passes through both corners: those cells have probability 1.
    assert torch.allclose(grad[:, 0, 0], torch.ones(2, dtype=F64))
    assert torch.allclose(grad[:, -1, -1], torch.ones(2, dtype=F64))
    assert bool((grad >= 0).all()) and bool((grad <= 1 + 1e-12).all())


def test_lengths_inside_a_padded_cost_equal_brute_force() -> None:
    cost = torch.rand(3, 5, 4, generator=_g(3), dtype=F64).requires_grad_(True)
    n_len, m_len = torch.tensor([5, 2, 3]), torch.tensor([3, 4, 1])
    values = soft_dtw_values(cost, 0.4, None, n_len, m_len)
    (grad,) = torch.autograd.grad(values.sum(), cost)
    for b in range(3):
        n, m = int(n_len[b]), int(m_len[b])
        want, expected = _brute_force(cost[b, :n, :m].detach(), 0.4)
        torch.testing.assert_close(values[b], want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad[b, :n, :m], expected, rtol=1e-10, atol=1e-12)
        assert bool((grad[b, n:] == 0).all()) and bool((grad[b, :, m:] == 0).all())


def test_diagonal_ranges_cover_exactly_the_band() -> None:
    for n, m, band in [(5, 3, None), (4, 6, 2), (5, 5, 0), (1, 1, 0), (6, 4, 3)]:
        cells = set()
        for d in range(2, n + m + 1):
            lo, hi = diagonal_range(d, n, m, band)
            cells |= {(i, d - i) for i in range(lo, hi + 1)}
        want = {
            (i, j)
            for i in range(1, n + 1)
            for j in range(1, m + 1)
            if band is None or abs(i - j) <= band
        }
        assert cells == want


# ---------------------------------------------------------------------------- published values
def test_tslearn_documented_values() -> None:
    """tslearn's cdist_soft_dtw docstring (squared Euclidean cost, gamma=0.01)."""
    a = torch.tensor([[1.0, 2.0, 2.0, 3.0]], dtype=F64)
    b = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=F64)
    # [[-0.01098612, 1.], [1., 0.]]: three zero-cost alignments of a with itself.
    torch.testing.assert_close(
        soft_dtw_loss(a, a, gamma=0.01), torch.tensor(-0.01 * math.log(3.0), dtype=F64)
    )
    assert abs(soft_dtw_loss(a, b, gamma=0.01).item() - 1.0) < 5e-9
    assert abs(soft_dtw_loss(b, b, gamma=0.01).item()) < 5e-9


def test_soft_dtw_goes_negative_and_the_divergence_does_not() -> None:
    x = _randn(0, 3, 8, 2)
    assert bool((soft_dtw_loss(x, x, reduction="none") < 0).all())
    assert soft_dtw_divergence_loss(x, x, reduction="none").tolist() == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------------------- hand values
def test_bandwidth_zero_is_the_squared_euclidean_distance() -> None:
    x, y = _randn(1, 4, 7, 3), _randn(2, 4, 7, 3)
    got = soft_dtw_loss(x, y, gamma=0.5, bandwidth=0, reduction="none")
    torch.testing.assert_close(got, ((x - y) ** 2).sum((1, 2)), rtol=1e-14, atol=0)


def test_a_series_of_length_one_has_a_single_alignment() -> None:
    x, y = _randn(3, 3, 1, 2), _randn(4, 3, 5, 2)
    got = soft_dtw_loss(x, y, gamma=3.0, reduction="none")
    torch.testing.assert_close(got, ((x - y) ** 2).sum((1, 2)), rtol=1e-14, atol=0)


def test_a_band_wider_than_the_series_changes_nothing() -> None:
    x, y = _randn(5, 2, 6), _randn(6, 2, 4)
    for fn in LOSSES:
        torch.testing.assert_close(
            fn(x, y, bandwidth=6, reduction="none"), fn(x, y, reduction="none"), rtol=0, atol=0
        )


def test_symmetric_in_its_arguments() -> None:
    x, y = _randn(7, 3, 6, 2), _randn(8, 3, 5, 2)
    for fn in LOSSES:
        torch.testing.assert_close(
            fn(x, y, gamma=0.3, reduction="none"),
            fn(y, x, gamma=0.3, reduction="none"),
            rtol=1e-14,
            atol=1e-14,
        )


def test_reductions() -> None:
    x, y, w = _randn(9, 4, 5), _randn(10, 4, 3), torch.tensor([1.0, 0.0, 2.0, 1.0], dtype=F64)
    for fn in LOSSES:
        per = fn(x, y, reduction="none")
        assert per.shape == (4,)
        torch.testing.assert_close(fn(x, y), per.mean())
        torch.testing.assert_close(fn(x, y, sample_weight=w), (per * w).sum() / w.sum())
        torch.testing.assert_close(fn(x, y, sample_weight=w, reduction="sum"), (per * w).sum())


# ---------------------------------------------------------------------------- DTW limit
def test_small_gamma_approaches_dtw_within_the_bound() -> None:
    x, y = _randn(11, 3, 7, 2), _randn(12, 3, 5, 2)
    n, m = 7, 5
    dtw = torch.tensor(
        [ref_soft_dtw(ref_series(x, b, None), ref_series(y, b, None), 0.0) for b in range(3)],
        dtype=F64,
    )
    previous = None
    for gamma in (1.0, 0.1, 1e-2, 1e-3):
        gap = dtw - soft_dtw_loss(x, y, gamma=gamma, reduction="none")
        # softmin <= min, and each of the at most N + M - 2 softmins loses <= gamma log 3.
        assert bool((gap >= -1e-12).all())
        assert bool((gap <= (n + m - 2) * gamma * math.log(3.0) + 1e-12).all())
        assert bool((gap <= n * m * gamma * math.log(3.0)).all())
        if previous is not None:
            assert bool((gap <= previous + 1e-12).all())
        previous = gap


def test_small_gamma_gradient_is_the_dtw_path_for_equal_series() -> None:
    x = _randn(13, 1, 5, 2)
    cost = squared_euclidean_cost(x, x).requires_grad_(True)
    (grad,) = torch.autograd.grad(soft_dtw_values(cost, 1e-5).sum(), cost)
    torch.testing.assert_close(grad[0], torch.eye(5, dtype=F64), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------- gradients
GRAD_SETTINGS = [
    pytest.param({}, id="plain"),
    pytest.param({"bandwidth": 1}, id="band"),
    pytest.param({"masks": True}, id="masks"),
    pytest.param({"bandwidth": 2, "masks": True, "gamma": 0.2}, id="band+masks"),
]


@pytest.mark.parametrize("fn", LOSSES)
@pytest.mark.parametrize("setting", GRAD_SETTINGS)
def test_gradcheck_both_inputs(fn, setting) -> None:
    setting = dict(setting)
    kwargs = {"gamma": setting.pop("gamma", 0.7)}
    if "bandwidth" in setting:
        kwargs["bandwidth"] = setting["bandwidth"]
    x = _randn(14, 2, 5, 2).requires_grad_(True)
    y = _randn(15, 2, 4, 2).requires_grad_(True)
    if setting.get("masks"):
        kwargs["mask"] = prefix_mask([5, 3], 5)
        kwargs["target_mask"] = prefix_mask([4, 2], 4)
    assert torch.autograd.gradcheck(
        lambda a, b: fn(a, b, **kwargs, reduction="none"), (x, y), eps=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("fn", LOSSES)
@pytest.mark.parametrize("bandwidth", [None, 1])
def test_variable_lengths_equal_each_series_alone(fn, bandwidth) -> None:
    lengths_x, lengths_y = [6, 2, 4, 1], [5, 3, 3, 2]
    x = _randn(16, 4, 6, 3).requires_grad_(True)
    y = _randn(17, 4, 5, 3).requires_grad_(True)
    mask, target_mask = prefix_mask(lengths_x, 6), prefix_mask(lengths_y, 5)
    batch = fn(
        x, y, gamma=0.4, bandwidth=bandwidth, mask=mask, target_mask=target_mask, reduction="none"
    )
    gx, gy = torch.autograd.grad(batch.sum(), (x, y))
    for b, (n, m) in enumerate(zip(lengths_x, lengths_y)):
        xb = x[b : b + 1, :n].detach().requires_grad_(True)
        yb = y[b : b + 1, :m].detach().requires_grad_(True)
        alone = fn(xb, yb, gamma=0.4, bandwidth=bandwidth, reduction="none")
        ax, ay = torch.autograd.grad(alone.sum(), (xb, yb))
        torch.testing.assert_close(batch[b], alone[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gx[b, :n], ax[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gy[b, :m], ay[0], rtol=1e-10, atol=1e-12)
        assert bool((gx[b, n:] == 0).all()) and bool((gy[b, m:] == 0).all())


@pytest.mark.parametrize("fn", LOSSES)
def test_padding_may_hold_nan_and_gets_exactly_zero_gradient(fn) -> None:
    mask, target_mask = prefix_mask([4, 2], 4), prefix_mask([3, 1], 3)
    x = torch.where(mask, _randn(18, 2, 4), torch.tensor(math.nan, dtype=F64))
    y = torch.where(target_mask, _randn(19, 2, 3), torch.tensor(math.inf, dtype=F64))
    x.requires_grad_(True)
    y.requires_grad_(True)
    loss = fn(x, y, mask=mask, target_mask=target_mask)
    gx, gy = torch.autograd.grad(loss, (x, y))
    assert torch.isfinite(loss)
    assert bool(torch.isfinite(gx).all()) and bool(torch.isfinite(gy).all())
    assert bool((gx[~mask] == 0).all()) and bool((gy[~target_mask] == 0).all())


def test_mask_on_one_side_only() -> None:
    x, y = _randn(20, 2, 5), _randn(21, 2, 3)
    mask = prefix_mask([5, 2], 5)
    got = soft_dtw_loss(x, y, mask=mask, reduction="none")
    torch.testing.assert_close(got[1], soft_dtw_loss(x[1:, :2], y[1:], reduction="none")[0])
    got = soft_dtw_loss(y, x, target_mask=mask, reduction="none")
    torch.testing.assert_close(got[1], soft_dtw_loss(y[1:], x[1:, :2], reduction="none")[0])


def test_double_backward_raises_a_clear_error() -> None:
    x = _randn(22, 2, 4).requires_grad_(True)
    y = _randn(23, 2, 3)
    for fn in LOSSES:
        (grad,) = torch.autograd.grad(fn(x, y), x, create_graph=True)  # the first one works
        assert grad.requires_grad
        with pytest.raises(NotImplementedError, match=r"soft-DTW does not support double backward"):
            grad.sum().backward()


# ---------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("kwargs", [{}, {"bandwidth": 1}, {"gamma": 1e-3}, {"gamma": 10.0}])
def test_divergence_of_equal_series_is_zero_with_zero_gradient(kwargs) -> None:
    x = _randn(24, 3, 6, 2)
    mask = prefix_mask([6, 4, 1], 6)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    for extra in ({}, {"mask": mask, "target_mask": mask}):
        loss = soft_dtw_divergence_loss(a, b, **kwargs, **extra, reduction="none")
        assert loss.tolist() == [0.0, 0.0, 0.0]
        ga, gb = torch.autograd.grad(loss.sum(), (a, b))
        assert ga.abs().max() < 1e-12 and gb.abs().max() < 1e-12


@pytest.mark.parametrize("seed", range(6))
def test_divergence_is_non_negative_on_random_series(seed) -> None:
    g = _g(100 + seed)
    n, m = int(torch.randint(1, 9, (), generator=g)), int(torch.randint(1, 9, (), generator=g))
    scale = [0.01, 0.3, 1.0, 3.0, 10.0, 100.0][seed]
    x = torch.randn(8, n, 2, generator=g, dtype=F64) * scale
    y = x[:, :m] if m <= n and seed % 2 else torch.randn(8, m, 2, generator=g, dtype=F64) * scale
    m = y.shape[1]
    for gamma in (1e-3, 0.1, 1.0, 10.0):
        for band in (None, abs(n - m), abs(n - m) + 1):
            got = soft_dtw_divergence_loss(x, y, gamma=gamma, bandwidth=band, reduction="none")
            assert bool((got >= -1e-9 * max(1.0, scale**2)).all()), (gamma, band, got)


def test_divergence_references_its_three_terms() -> None:
    x, y = _randn(25, 3, 5, 2), _randn(26, 3, 7, 2)
    want = soft_dtw_loss(x, y, gamma=0.3, reduction="none") - 0.5 * (
        soft_dtw_loss(x, x, gamma=0.3, reduction="none")
        + soft_dtw_loss(y, y, gamma=0.3, reduction="none")
    )
    torch.testing.assert_close(
        soft_dtw_divergence_loss(x, y, gamma=0.3, reduction="none"), want, rtol=0, atol=1e-14
    )


# ---------------------------------------------------------------------------- numerics
def test_cost_is_formed_from_differences_not_the_expansion() -> None:
    """Series near 1e8 differing by O(1): |x|^2 + |y|^2 - 2xy would lose every digit."""
    base = _randn(27, 2, 6, 2)
    other = _randn(28, 2, 5, 2)
    got = soft_dtw_loss(1e8 + base, 1e8 + other, gamma=0.5, reduction="none")
    want = soft_dtw_loss(base, other, gamma=0.5, reduction="none")
    # 1e8 + v rounds v to ~1.5e-8 in float64: the differences keep ~1e-8 absolute accuracy.
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    expansion = (
        (1e8 + base).square().sum(-1)[:, :, None]
        + (1e8 + other).square().sum(-1)[:, None, :]
        - 2 * (1e8 + base) @ (1e8 + other).transpose(1, 2)
    )
    exact = squared_euclidean_cost(base, other)
    assert (expansion - exact).abs().max() > 1e-2  # what the expansion would have cost
    torch.testing.assert_close(
        squared_euclidean_cost(1e8 + base, 1e8 + other), exact, rtol=0, atol=1e-6
    )


def test_long_series_small_gamma_is_finite_and_fast() -> None:
    """Length 1000, gamma = 1e-3, float32: finite value and gradient, close to float64."""
    x = torch.sin(torch.linspace(0, 12, 1000))[None] + 0.1 * _randn(
        29, 1, 1000, dtype=torch.float32
    )
    y = torch.cos(torch.linspace(0, 12, 1000))[None] + 0.1 * _randn(
        30, 1, 1000, dtype=torch.float32
    )
    x.requires_grad_(True)
    start = time.perf_counter()
    loss = soft_dtw_loss(x, y, gamma=1e-3)
    (grad,) = torch.autograd.grad(loss, x)
    elapsed = time.perf_counter() - start
    assert torch.isfinite(loss) and bool(torch.isfinite(grad).all())
    assert elapsed < 5.0, f"{elapsed:.2f} s"
    x64 = x.detach().double().requires_grad_(True)
    loss64 = soft_dtw_loss(x64, y.double(), gamma=1e-3)
    (grad64,) = torch.autograd.grad(loss64, x64)
    torch.testing.assert_close(loss.double(), loss64, rtol=1e-4, atol=0)
    # E is a probability matrix: the gradient's scale is that of the costs' derivatives.
    assert (grad.double() - grad64).abs().max() < 1e-2 * grad64.abs().max()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32(dtype) -> None:
    x = _randn(31, 3, 6, 2).to(dtype).requires_grad_(True)
    y = _randn(32, 3, 4, 2).to(dtype)
    for fn in LOSSES:
        loss = fn(x, y, gamma=0.1)
        assert loss.dtype == dtype
        (grad,) = torch.autograd.grad(loss, x)
        assert grad.dtype == dtype and bool(torch.isfinite(grad).all())
        want = fn(x.detach().float(), y.float(), gamma=0.1)
        torch.testing.assert_close(loss.float(), want.to(dtype).float(), rtol=0, atol=0)


def test_float32_pred_float64_target_computes_in_float64() -> None:
    x, y = _randn(33, 2, 5, dtype=torch.float32), _randn(34, 2, 4)
    got = soft_dtw_loss(x, y, reduction="none")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, soft_dtw_loss(x.double(), y, reduction="none").float())


# ---------------------------------------------------------------------------- options, module
def test_validate_false_trusts_the_masks() -> None:
    x, y = _randn(35, 2, 4), _randn(36, 2, 3)
    holey = torch.tensor([[True, False, True, False], [True, True, True, True]])
    with pytest.raises(ValueError, match="prefix mask"):
        soft_dtw_loss(x, y, mask=holey)
    assert torch.isfinite(soft_dtw_loss(x, y, mask=holey, validate=False))


def test_band_too_narrow_for_a_series_without_validation_gives_inf() -> None:
    x, y = _randn(37, 2, 6), _randn(38, 2, 6)
    mask = prefix_mask([6, 2], 6)
    got = soft_dtw_loss(x, y, bandwidth=1, mask=mask, validate=False, reduction="none")
    assert math.isfinite(got[0].item()) and got[1].item() == math.inf


def test_module_metadata_and_registry() -> None:
    for cls, fn, key in [
        (SoftDTWLoss, soft_dtw_loss, "soft_dtw"),
        (SoftDTWDivergenceLoss, soft_dtw_divergence_loss, "soft_dtw_divergence"),
    ]:
        assert losslab.lookup(key) is cls
        assert cls.family == "timeseries" and cls.input_kind == "values"
        assert cls.pointwise is False and cls.needs_global_stats is False
        assert cls.call_arguments() == ("sample_weight", "mask", "target_mask")
        module = cls(gamma=0.2, bandwidth=3)
        x, y = _randn(39, 2, 5), _randn(40, 2, 4)
        mask = prefix_mask([5, 3], 5)
        torch.testing.assert_close(
            module(x, y, mask=mask), fn(x, y, gamma=0.2, bandwidth=3, mask=mask), rtol=0, atol=0
        )
        assert "gamma=0.2, bandwidth=3" in repr(module)
        with pytest.raises(ValueError, match=r"`gamma` must be in \(0, inf\)"):
            cls(gamma=0.0)
        with pytest.raises(TypeError, match=r"`bandwidth` must be an int >= 0 or None"):
            cls(bandwidth=2.0)
