"""Hand-computed values for the time-series error losses (time-weighted MSE/MAE, MASE, sMAPE,
WAPE), and comparisons with torch's plain losses and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_absolute_error

import losslab
from losslab.losses.timeseries._time_weights import time_weights
from losslab.losses.timeseries.mase import MASELoss, mase_loss
from losslab.losses.timeseries.smape import SMAPELoss, smape_loss
from losslab.losses.timeseries.time_weighted_mae import TimeWeightedMAELoss, time_weighted_mae_loss
from losslab.losses.timeseries.time_weighted_mse import TimeWeightedMSELoss, time_weighted_mse_loss
from losslab.losses.timeseries.wape import WAPELoss, wape_loss
from tests.cases.timeseries_errors import ref_mase_scale, ref_schedule

F64 = torch.float64
TIME_WEIGHTED = [time_weighted_mse_loss, time_weighted_mae_loss]


# ---------------------------------------------------------------------------- schedules
# T = 4, t = 0 the first step; by hand.
SCHEDULES_T4 = [
    (dict(decay=0.5, normalize=False), [1.0, 0.5, 0.25, 0.125]),
    (dict(decay=0.5), [32 / 15, 16 / 15, 8 / 15, 4 / 15]),  # mean of the raw weights 15/32
    (dict(decay=0.5, reverse=True, normalize=False), [0.125, 0.25, 0.5, 1.0]),
    (dict(decay=0.5, reverse=True), [4 / 15, 8 / 15, 16 / 15, 32 / 15]),
    (dict(decay=2.0), [4 / 15, 8 / 15, 16 / 15, 32 / 15]),  # the 1/decay path for decay > 1
    (dict(decay=2.0, normalize=False), [1.0, 2.0, 4.0, 8.0]),
    (dict(schedule="linear", normalize=False), [4.0, 3.0, 2.0, 1.0]),
    (dict(schedule="linear"), [1.6, 1.2, 0.8, 0.4]),  # mean 2.5
    (dict(schedule="linear", reverse=True, normalize=False), [1.0, 2.0, 3.0, 4.0]),
    (dict(schedule="linear", reverse=True), [0.4, 0.8, 1.2, 1.6]),
    (dict(schedule=[1.0, 3.0, 0.0, 4.0]), [0.5, 1.5, 0.0, 2.0]),  # mean 2
    (dict(schedule=[1.0, 3.0, 0.0, 4.0], reverse=True, normalize=False), [4.0, 0.0, 3.0, 1.0]),
]


@pytest.mark.parametrize("fn", TIME_WEIGHTED)
@pytest.mark.parametrize(("options", "expected"), SCHEDULES_T4)
def test_schedule_values_by_hand(fn, options, expected) -> None:
    # a unit error everywhere: the elementwise loss is the weight itself
    pred, target = torch.ones(2, 4, dtype=F64), torch.zeros(2, 4, dtype=F64)
    got = fn(pred, target, **options, reduction="none")
    want = torch.tensor([expected, expected], dtype=F64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)
    assert ref_schedule(4, **options) == pytest.approx(expected, abs=1e-15)


def test_tensor_schedule_by_hand() -> None:
    w = torch.tensor([1.0, 3.0, 0.0, 4.0], dtype=F64)
    got = time_weighted_mse_loss(
        torch.ones(1, 4, dtype=F64),
        torch.zeros(1, 4, dtype=F64),
        schedule=w,
        reverse=True,
        reduction="none",
    )
    torch.testing.assert_close(got, torch.tensor([[2.0, 0.0, 1.5, 0.5]], dtype=F64), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_created_weights_follow_the_input(dtype: torch.dtype) -> None:
    ref = torch.zeros(2, 4, dtype=dtype)
    for schedule in ("exponential", "linear", [1.0, 2.0, 3.0, 4.0]):
        w = time_weights("f", schedule, 4, decay=0.9, reverse=False, normalize=True, ref=ref)
        compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
        assert w.dtype == compute and w.device == ref.device
    # the device follows the input too (meta: no data, but a device of its own)
    meta = torch.zeros(2, 4, device="meta")
    w = time_weights("f", "exponential", 4, decay=0.9, reverse=True, normalize=True, ref=meta)
    assert w.device.type == "meta"


def test_float64_weights_are_exact_to_1e15() -> None:
    """float64 inputs get float64 weights: float32 weights would be off by about 1e-8."""
    hand = [4 * 0.9**t / (1 + 0.9 + 0.81 + 0.729) for t in range(4)]
    ref = torch.zeros(1, 4, dtype=F64)
    w = time_weights("f", "exponential", 4, decay=0.9, reverse=False, normalize=True, ref=ref)
    assert w.dtype == F64
    torch.testing.assert_close(w, torch.tensor(hand, dtype=F64), rtol=0, atol=1e-15)
    got = time_weighted_mae_loss(
        torch.ones(1, 4, dtype=F64), torch.zeros(1, 4, dtype=F64), reduction="none"
    )
    torch.testing.assert_close(got[0], torch.tensor(hand, dtype=F64), rtol=0, atol=1e-15)
    # a float32 tensor schedule is used in the input's (float64) compute dtype
    w32 = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float32)
    got = time_weighted_mse_loss(
        torch.ones(1, 4, dtype=F64), torch.zeros(1, 4, dtype=F64), schedule=w32, reduction="none"
    )
    assert got.dtype == F64
    torch.testing.assert_close(
        got[0], torch.tensor([4 / 15, 8 / 15, 16 / 15, 32 / 15], dtype=F64), rtol=0, atol=1e-15
    )


@pytest.mark.parametrize(
    ("fn", "plain"), [(time_weighted_mse_loss, F.mse_loss), (time_weighted_mae_loss, F.l1_loss)]
)
@pytest.mark.parametrize("shape", [(5, 7), (3, 6, 4)])
def test_uniform_weights_equal_the_plain_loss_exactly(fn, plain, shape) -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    steps = shape[1]
    for options in (
        dict(decay=1.0),
        dict(decay=1.0, normalize=False),
        dict(schedule=torch.ones(steps)),
        dict(schedule=torch.full((steps,), 3.0)),  # normalized to ones
        dict(schedule=[1.0] * steps, reverse=True),
    ):
        for reduction in ("mean", "sum", "none"):
            got = fn(pred, target, **options, reduction=reduction)
            torch.testing.assert_close(
                got, plain(pred, target, reduction=reduction), rtol=0, atol=0
            )


@pytest.mark.parametrize("fn", TIME_WEIGHTED)
def test_three_d_equals_the_per_feature_loop(fn) -> None:
    g = torch.Generator().manual_seed(1)
    pred, target = (
        torch.randn(4, 6, 3, generator=g, dtype=F64),
        torch.randn(4, 6, 3, generator=g, dtype=F64),
    )
    options = dict(schedule="linear", reverse=True)
    whole = fn(pred, target, **options, reduction="none")
    per_feature = torch.stack(
        [fn(pred[..., f], target[..., f], **options, reduction="none") for f in range(3)], dim=-1
    )
    torch.testing.assert_close(whole, per_feature, rtol=0, atol=0)
    means = [fn(pred[..., f], target[..., f], **options) for f in range(3)]
    torch.testing.assert_close(
        fn(pred, target, **options), torch.stack(means).mean(), rtol=1e-14, atol=0
    )


@pytest.mark.parametrize("fn", TIME_WEIGHTED)
def test_time_dim_last_equals_time_dim_one(fn) -> None:
    g = torch.Generator().manual_seed(2)
    pred, target = (
        torch.randn(3, 5, 2, generator=g, dtype=F64),
        torch.randn(3, 5, 2, generator=g, dtype=F64),
    )
    want = fn(pred, target, decay=0.7, reduction="none")
    for time_dim in (2, -1):
        got = fn(
            pred.transpose(1, 2),
            target.transpose(1, 2),
            decay=0.7,
            time_dim=time_dim,
            reduction="none",
        )
        torch.testing.assert_close(got.transpose(1, 2), want, rtol=0, atol=0)
    # (B, T) with time_dim=-1 is time_dim=1
    torch.testing.assert_close(
        fn(pred[..., 0], target[..., 0], time_dim=-1),
        fn(pred[..., 0], target[..., 0]),
        rtol=0,
        atol=0,
    )


def test_sample_weighted_mean_by_hand() -> None:
    pred, target = torch.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=F64), torch.zeros(2, 2, dtype=F64)
    # linear T=2, normalized: [4/3, 2/3]; series losses [4/3 + 2/3, 4 * 2] = [2, 8]
    got = time_weighted_mse_loss(
        pred, target, schedule="linear", sample_weight=torch.tensor([3.0, 1.0], dtype=F64)
    )
    assert got.item() == pytest.approx((3 * 2 + 1 * 8) / (3 * 2 + 1 * 2), abs=1e-15)


def test_growing_schedule_over_a_long_horizon_is_finite_in_float32() -> None:
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(2, 400, generator=g, requires_grad=True)
    target = torch.zeros(2, 400)
    # 1.5**399 overflows float32 (and 0.5**399 underflows): the normalized weights do not
    for decay in (1.5, 0.5):
        loss = time_weighted_mse_loss(pred, target, decay=decay)
        (grad,) = torch.autograd.grad(loss, pred)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        want = time_weighted_mse_loss(pred.detach().double(), target.double(), decay=decay)
        torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=0)


def test_module_stores_a_tensor_schedule_as_a_buffer() -> None:
    w = torch.tensor([0.5, 1.0, 2.0])
    module = TimeWeightedMAELoss(schedule=w, reverse=True)
    assert "schedule" in dict(module.named_buffers())
    assert "schedule" in module.state_dict()
    pred, target = torch.randn(4, 3, dtype=F64), torch.randn(4, 3, dtype=F64)
    module = module.to(F64)
    assert module.schedule.dtype == F64
    want = time_weighted_mae_loss(pred, target, schedule=w.double(), reverse=True)
    torch.testing.assert_close(module(pred, target), want, rtol=0, atol=0)
    # the spec holds the weights as a list, which the module accepts: a round trip
    rebuilt = losslab.parse(module.to_spec())
    assert isinstance(rebuilt, TimeWeightedMAELoss)
    torch.testing.assert_close(rebuilt(pred, target), want, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"TimeWeightedMAELoss\(\): `schedule` must have values"):
        TimeWeightedMAELoss(schedule=torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"TimeWeightedMSELoss\(\): `time_dim` must not be 0"):
        TimeWeightedMSELoss(time_dim=0)


def test_validate_false_skips_the_schedule_value_checks() -> None:
    # with validate=False nothing syncs: a negative weight is used as given
    got = time_weighted_mse_loss(
        torch.ones(1, 2),
        torch.zeros(1, 2),
        schedule=torch.tensor([2.0, -1.0]),
        normalize=False,
        validate=False,
        reduction="none",
    )
    torch.testing.assert_close(got, torch.tensor([[2.0, -1.0]]))


# ---------------------------------------------------------------------------- MASE
def test_mase_by_hand_m1() -> None:
    history = torch.tensor([[1.0, 3.0, 2.0, 4.0], [0.0, 2.0, 4.0, 6.0]], dtype=F64)
    # scales: (2 + 1 + 2) / 3 = 5/3 and (2 + 2 + 2) / 3 = 2
    pred = torch.tensor([[5.0, 5.0], [7.0, 9.0]], dtype=F64)
    target = torch.tensor([[4.0, 7.0], [8.0, 8.0]], dtype=F64)
    none = mase_loss(pred, target, insample=history, reduction="none")
    want = torch.tensor([[1 / (5 / 3), 2 / (5 / 3)], [1 / 2, 1 / 2]], dtype=F64)
    torch.testing.assert_close(none, want, rtol=1e-15, atol=0)
    torch.testing.assert_close(mase_loss(pred, target, insample=history), want.mean())
    # the overall mean is the mean of the per-series MASE (equal horizons)
    per_series = torch.stack(
        [
            mase_loss(pred[b : b + 1], target[b : b + 1], insample=history[b : b + 1])
            for b in range(2)
        ]
    )
    torch.testing.assert_close(mase_loss(pred, target, insample=history), per_series.mean())


def test_mase_by_hand_seasonal_m4() -> None:
    # two "years" of a quarterly series; lag-4 differences 1, 2, 0, 2: scale 5/4
    history = torch.tensor([[1.0, 2.0, 3.0, 4.0, 2.0, 4.0, 3.0, 6.0]], dtype=F64)
    pred, target = torch.tensor([[3.0, 5.0]], dtype=F64), torch.tensor([[2.0, 2.0]], dtype=F64)
    got = mase_loss(pred, target, insample=history, m=4, reduction="none")
    torch.testing.assert_close(got, torch.tensor([[0.8, 2.4]], dtype=F64), rtol=1e-15, atol=0)
    assert mase_loss(pred, target, insample=history, m=4).item() == pytest.approx(1.6, abs=1e-15)
    # with m=1 the scale is (1+1+1+2+2+1+3)/7 = 11/7
    got1 = mase_loss(pred, target, insample=history, m=1)
    assert got1.item() == pytest.approx(2.0 / (11 / 7), abs=1e-15)


def test_mase_per_feature_scales_and_numpy() -> None:
    g = torch.Generator().manual_seed(4)
    history = torch.randn(3, 9, 2, generator=g, dtype=F64)
    pred, target = (
        torch.randn(3, 4, 2, generator=g, dtype=F64),
        torch.randn(3, 4, 2, generator=g, dtype=F64),
    )
    for m in (1, 4):
        got = mase_loss(pred, target, insample=history, m=m, reduction="none")
        for f in range(2):
            x = history[:, :, f].numpy()
            scale = np.abs(x[:, m:] - x[:, :-m]).mean(axis=1)
            want = np.abs(pred[:, :, f].numpy() - target[:, :, f].numpy()) / scale[:, None]
            np.testing.assert_allclose(got[:, :, f].numpy(), want, rtol=1e-14, atol=0)
            one = mase_loss(
                pred[..., f], target[..., f], insample=history[..., f], m=m, reduction="none"
            )
            torch.testing.assert_close(got[..., f], one, rtol=0, atol=0)
    assert ref_mase_scale(history, 4, 1).shape == (3, 1, 2)


def test_mase_constant_series() -> None:
    history = torch.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]])
    pred = torch.tensor([[1.0, 2.0], [3.0, 5.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0], [3.0, 3.0]])
    with pytest.raises(ValueError, match=r"`insample` must vary within every series.*series 1"):
        mase_loss(pred, target, insample=history)
    none = mase_loss(pred, target, insample=history, validate=False, reduction="none")
    assert none[1, 0].item() == 0.0 and none[1, 1].item() == math.inf  # perfect, then inf
    assert not torch.isnan(none).any()
    (grad,) = torch.autograd.grad(none.sum(), pred)
    assert torch.isfinite(grad).all() and (grad[1] == 0).all()
    assert mase_loss(pred, target, insample=history, validate=False).item() == math.inf


def test_mase_module_takes_the_history_per_call() -> None:
    g = torch.Generator().manual_seed(5)
    pred, target = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    history = torch.randn(3, 7, generator=g)
    module = MASELoss(m=2)
    assert MASELoss.call_arguments() == ("insample", "sample_weight")
    torch.testing.assert_close(
        module(pred, target, insample=history),
        mase_loss(pred, target, insample=history, m=2),
        rtol=0,
        atol=0,
    )
    with pytest.raises(TypeError, match=r"`m` is set when the loss is built"):
        module(pred, target, insample=history, m=1)


# ---------------------------------------------------------------------------- sMAPE
def test_smape_by_hand() -> None:
    pred = torch.tensor([[110.0, 90.0, 5.0, 1.0, 0.0, 3.0]], dtype=F64)
    target = torch.tensor([[100.0, 100.0, 0.0, -1.0, 0.0, 1.0]], dtype=F64)
    want = torch.tensor([[20 / 210, 20 / 190, 2.0, 2.0, 0.0, 1.0]], dtype=F64)
    torch.testing.assert_close(smape_loss(pred, target, reduction="none"), want, rtol=1e-15, atol=0)
    torch.testing.assert_close(smape_loss(pred, target), want.mean(), rtol=1e-15, atol=0)
    # the documented asymmetry: an over-forecast costs less than an under-forecast
    none = smape_loss(pred, target, reduction="none")
    assert none[0, 0] < none[0, 1]
    # bounded by 2, a fraction not a percentage
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)
    values = smape_loss(x, y, reduction="none")
    assert (values >= 0).all() and (values <= 2).all()


def test_smape_zero_over_zero_is_zero_with_zero_gradient() -> None:
    pred = torch.tensor([[0.0, 0.0, 2.0], [0.0, 1.0, -1.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    loss = smape_loss(pred, target, reduction="none")
    assert torch.isfinite(loss).all()
    assert loss[0, 0].item() == 0.0 and loss[0, 1].item() == 0.0 and loss[1, 0].item() == 0.0
    (grad,) = torch.autograd.grad(loss.sum(), pred)
    assert torch.isfinite(grad).all()
    assert grad[0, 0].item() == 0.0 and grad[1, 0].item() == 0.0
    # y = 1, yhat = 2: d/dyhat 2 (yhat - y) / (y + yhat) = 4 y / (y + yhat)^2 = 4/9
    assert grad[0, 2].item() == pytest.approx(4 / 9, rel=1e-6)
    # opposite signs: the term is 2 everywhere nearby, so its gradient is 0
    assert grad[1, 2].item() == pytest.approx(0.0, abs=1e-7)
    for dtype in (torch.float16, torch.bfloat16):
        half = smape_loss(
            torch.zeros(2, 3, dtype=dtype, requires_grad=True), torch.zeros(2, 3, dtype=dtype)
        )
        assert half.dtype == dtype and half.item() == 0.0


def test_smape_module() -> None:
    pred, target = torch.rand(3, 4) + 0.5, torch.rand(3, 4) + 0.5
    torch.testing.assert_close(
        SMAPELoss(reduction="sum")(pred, target),
        smape_loss(pred, target, reduction="sum"),
        rtol=0,
        atol=0,
    )
    assert SMAPELoss.pointwise and SMAPELoss.family == "timeseries"


# ---------------------------------------------------------------------------- WAPE
def test_wape_by_hand() -> None:
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 10.0]], dtype=F64)
    target = torch.tensor([[2.0, 2.0, 2.0], [1.0, 1.0, 8.0]], dtype=F64)
    # series: 2/6 and 4/10; batch: 6/16
    torch.testing.assert_close(
        wape_loss(pred, target, reduction="none"),
        torch.tensor([1 / 3, 0.4], dtype=F64),
        rtol=1e-15,
        atol=0,
    )
    assert wape_loss(pred, target).item() == pytest.approx((1 / 3 + 0.4) / 2, abs=1e-15)
    assert wape_loss(pred, target, reduction="sum").item() == pytest.approx(1 / 3 + 0.4, abs=1e-15)
    for reduction in ("mean", "sum", "none"):
        got = wape_loss(pred, target, aggregate="batch", reduction=reduction)
        assert got.shape == () and got.item() == pytest.approx(0.375, abs=1e-15)
    # weighted: series mean (3 * 1/3 + 1 * 0.4) / 4; batch (3 * 2 + 1 * 4) / (3 * 6 + 1 * 10)
    s = torch.tensor([3.0, 1.0], dtype=F64)
    assert wape_loss(pred, target, sample_weight=s).item() == pytest.approx(1.4 / 4, abs=1e-15)
    got = wape_loss(pred, target, aggregate="batch", sample_weight=s)
    assert got.item() == pytest.approx(10 / 28, abs=1e-15)


def test_wape_batch_against_sklearn() -> None:
    """Batch WAPE = MAE / mean |y| over every element."""
    g = torch.Generator().manual_seed(7)
    pred, target = (
        torch.randn(6, 5, 3, generator=g, dtype=F64),
        torch.randn(6, 5, 3, generator=g, dtype=F64),
    )
    y, p = target.reshape(-1).numpy(), pred.reshape(-1).numpy()
    want = mean_absolute_error(y, p) / np.abs(y).mean()
    got = wape_loss(pred, target, aggregate="batch")
    assert got.item() == pytest.approx(want, rel=1e-13)
    # per series: the same with the series' own elements
    for b in range(6):
        yb, pb = target[b].reshape(-1).numpy(), pred[b].reshape(-1).numpy()
        assert wape_loss(pred, target, reduction="none")[b].item() == pytest.approx(
            mean_absolute_error(yb, pb) / np.abs(yb).mean(), rel=1e-13
        )


def test_wape_zero_denominator_without_validation() -> None:
    pred = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 2.0]], requires_grad=True)
    target = torch.tensor([[2.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"for series 1; 2 such series"):
        wape_loss(pred, target)
    none = wape_loss(pred, target, validate=False, reduction="none")
    assert none.tolist() == [0.5, 0.0, math.inf]  # a perfect zero forecast is 0, never NaN
    (grad,) = torch.autograd.grad(none[:2].sum(), pred)
    assert torch.isfinite(grad).all()
    # the batch ratio needs only a non-zero total
    assert wape_loss(pred, target, aggregate="batch").item() == pytest.approx(4 / 4)


def test_wape_metadata_and_module() -> None:
    # aggregate="batch" is a batch statistic: sync="global" makes it exact across processes.
    assert not WAPELoss.pointwise and WAPELoss.needs_global_stats
    assert "batch statistic" in (WAPELoss.__doc__ or "")
    assert "statistic" in (wape_loss.__doc__ or "")
    pred, target = torch.rand(3, 4), torch.rand(3, 4) + 0.1
    module = WAPELoss(aggregate="batch", reduction="none")
    torch.testing.assert_close(
        module(pred, target), wape_loss(pred, target, aggregate="batch"), rtol=0, atol=0
    )
    assert losslab.parse(module.to_spec()).aggregate == "batch"


def test_registered_metadata() -> None:
    for cls, key in (
        (TimeWeightedMSELoss, "time_weighted_mse"),
        (TimeWeightedMAELoss, "time_weighted_mae"),
        (MASELoss, "mase"),
        (SMAPELoss, "smape"),
        (WAPELoss, "wape"),
    ):
        assert losslab.lookup(key) is cls
        assert cls.family == "timeseries" and cls.input_kind == "values"
