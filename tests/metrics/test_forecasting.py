"""Forecasting metrics: float64 references on all data in uneven batches, routing, API, errors.

The distributed test of the forecasting set shares one run_workers call with the ranking set:
tests/metrics/test_ranking.py::test_distributed_two_processes_match_one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torchmetrics.regression import (
    SymmetricMeanAbsolutePercentageError,
    WeightedMeanAbsolutePercentageError,
)

from losslab.metrics.forecasting import (
    MASE,
    SMAPE,
    WAPE,
    MeanPinballLoss,
    QuantileCoverage,
    forecasting_metrics,
)

SIZES = (1, 7, 64, 3, 12, 2)  # series per batch: uneven on purpose
LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


def _data(
    seed: int, *, features: bool = False, zeros: bool = False
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches of (quantile preds (B, T[, F], Q), target (B, T[, F]), history (B, 9[, F]))."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for b in SIZES:
        shape = (b, 6, 2) if features else (b, 6)
        target = torch.randn(shape, generator=gen, dtype=torch.float64) * 2.0 + 1.0
        center = target + torch.randn(shape, generator=gen, dtype=torch.float64)
        width = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1
        z = torch.tensor([-1.645, -0.674, 0.0, 0.674, 1.645], dtype=torch.float64)
        preds = center.unsqueeze(-1) + width.unsqueeze(-1) * z
        if zeros:  # exact zeros: both zero (sMAPE term 0) and zero target only
            target[0, 0] = 0.0
            preds[0, 0, ..., 2] = 0.0
            target[-1, -1] = 0.0
        hist_shape = (b, 9, 2) if features else (b, 9)
        history = torch.randn(hist_shape, generator=gen, dtype=torch.float64).cumsum(1)
        out.append((preds, target, history))
    return out


# ------------------------------------------------------------ independent references
def _np(batches: list, i: int) -> np.ndarray:
    return np.concatenate([b[i].numpy() for b in batches])


def _ref_mase(point: np.ndarray, target: np.ndarray, history: np.ndarray, m: int) -> float:
    scale = np.mean(np.abs(history[:, m:] - history[:, :-m]), axis=1, keepdims=True)
    return float(np.mean(np.abs(point - target) / scale))


def _ref_smape(point: np.ndarray, target: np.ndarray) -> float:
    # Not sklearn's mean_absolute_percentage_error (|e| / |y|): the symmetric form, by hand.
    den = np.abs(target) + np.abs(point)
    terms = np.where(den == 0, 0.0, 2.0 * np.abs(target - point) / np.where(den == 0, 1.0, den))
    return float(np.mean(terms))


def _ref_wape(point: np.ndarray, target: np.ndarray) -> float:
    return float(np.sum(np.abs(target - point)) / np.sum(np.abs(target)))


def _ref_pinball(preds: np.ndarray, target: np.ndarray, levels: tuple[float, ...]) -> float:
    from sklearn.metrics import mean_pinball_loss

    per_level = [
        mean_pinball_loss(target.reshape(-1), preds[..., q].reshape(-1), alpha=tau)
        for q, tau in enumerate(levels)
    ]
    return float(np.mean(per_level))


def _ref_coverage(preds: np.ndarray, target: np.ndarray, lo: int, hi: int) -> float:
    return float(np.mean((preds[..., lo] <= target) & (target <= preds[..., hi])))


# ------------------------------------------------------------------------ references
@pytest.mark.parametrize(("features", "m"), [(False, 1), (True, 3)])
def test_streaming_equals_float64_reference(features: bool, m: int) -> None:
    batches = _data(1, features=features, zeros=True)
    preds, target, history = (_np(batches, i) for i in range(3))
    point = preds[..., 2]
    time_dim = 1 if not features else -2
    want = {
        "mase": _ref_mase(point, target, history, m),
        "smape": _ref_smape(point, target),
        "wape": _ref_wape(point, target),
        "pinball": _ref_pinball(preds, target, LEVELS),
        "coverage@90": _ref_coverage(preds, target, 0, 4),
        "coverage@50": _ref_coverage(preds, target, 1, 3),
    }
    streamed = forecasting_metrics(quantiles=LEVELS, m=m, time_dim=time_dim)
    one_shot = forecasting_metrics(quantiles=LEVELS, m=m, time_dim=time_dim)
    for collection in (streamed, one_shot):
        for metric in collection.values():
            metric.set_dtype(torch.float64)
    for p, y, h in batches:
        streamed.update(p, y, insample=h)
    all_p, all_y, all_h = (torch.cat(x) for x in zip(*batches))
    one_shot.update(all_p, all_y, insample=all_h)
    for collection in (streamed, one_shot):
        got = {name: v.item() for name, v in collection.compute().items()}
        assert got.keys() == want.keys()
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-12, abs=1e-12), name


def test_point_forecasts_float32_match_reference() -> None:
    batches = [(p[..., 2].float(), y.float(), h.float()) for p, y, h in _data(2)]
    point, target, history = (_np(batches, i).astype(np.float64) for i in range(3))
    metrics = forecasting_metrics(m=2)
    assert sorted(metrics.keys()) == ["mase", "smape", "wape"]
    for p, y, h in batches:
        metrics.update(p, y, insample=h)
    got = {name: v for name, v in metrics.compute().items()}
    assert all(v.dtype == torch.float32 for v in got.values())
    want = {
        "mase": _ref_mase(point, target, history, 2),
        "smape": _ref_smape(point, target),
        "wape": _ref_wape(point, target),
    }
    for name in want:
        assert got[name].item() == pytest.approx(want[name], rel=1e-6), name


def test_smape_and_wape_match_torchmetrics_without_zeros() -> None:
    ours_s, ours_w = SMAPE(), WAPE()
    theirs_s, theirs_w = (
        SymmetricMeanAbsolutePercentageError(),
        WeightedMeanAbsolutePercentageError(),
    )
    for preds, target, _ in _data(3):
        point = preds[..., 2].float()
        for metric in (ours_s, ours_w, theirs_s, theirs_w):
            metric.update(point, target.float())
    assert ours_s.compute().item() == pytest.approx(theirs_s.compute().item(), rel=1e-5)
    assert ours_w.compute().item() == pytest.approx(theirs_w.compute().item(), rel=1e-5)


def test_hand_values() -> None:
    coverage = QuantileCoverage(quantiles=(0.1, 0.5, 0.9), interval=(0.1, 0.9))
    # rows: inside, on the lower edge, above, crossed quantiles (empty interval), NaN target
    preds = torch.tensor(
        [[[0.0, 1.0, 2.0], [1.0, 1.5, 2.0], [0.0, 0.5, 1.0], [3.0, 2.0, 1.0], [0.0, 1.0, 2.0]]]
    )
    target = torch.tensor([[1.0, 1.0, 5.0, 2.0, float("nan")]])
    coverage.update(preds, target)
    assert coverage.compute().item() == pytest.approx(2.0 / 5.0)
    assert coverage.nominal == pytest.approx(0.8)
    wape = WAPE()
    wape.update(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]]))
    assert wape.compute().item() == 0.0  # exact forecasts of zeros
    wape.update(torch.tensor([[1.0]]), torch.tensor([[0.0]]))
    assert wape.compute().item() == math.inf
    smape = SMAPE()
    smape.update(torch.tensor([[0.0, -1.0]]), torch.tensor([[0.0, 1.0]]))  # 0, then the maximum 2
    assert smape.compute().item() == pytest.approx(1.0)


def test_mase_zero_scale_policy() -> None:
    constant = torch.ones(1, 4)
    with pytest.raises(ValueError, match=r"MASE\.update\(\): `insample` must vary within every"):
        MASE().update(torch.ones(1, 2), torch.zeros(1, 2), insample=constant)
    lenient = MASE(validate=False)
    lenient.update(torch.ones(1, 2), torch.ones(1, 2), insample=constant)
    assert lenient.compute().item() == 0.0  # exact forecast: 0, never NaN
    lenient.update(torch.ones(1, 2), torch.zeros(1, 2), insample=constant)
    assert lenient.compute().item() == math.inf


# ----------------------------------------------------------------- collection routing
def test_insample_reaches_mase_only() -> None:
    metrics = forecasting_metrics(quantiles=LEVELS)
    history = torch.randn(2, 5)
    assert "insample" in metrics["mase"]._filter_kwargs(insample=history)
    for name in ("smape", "wape", "pinball", "coverage@90"):
        assert metrics[name]._filter_kwargs(insample=history) == {}
    preds, target, history = _data(4)[1]
    metrics.update(preds, target, insample=history)
    assert all(math.isfinite(v.item()) for v in metrics.compute().values())
    with pytest.raises(TypeError, match=r"MASE\.update\(\): `insample` must be given"):
        metrics.update(preds, target)


def test_collection_keys() -> None:
    assert sorted(forecasting_metrics(quantiles=LEVELS, prefix="val/").keys()) == [
        "val/coverage@50",
        "val/coverage@90",
        "val/mase",
        "val/pinball",
        "val/smape",
        "val/wape",
    ]
    # No median: no point forecast, so no point metric; no symmetric pair for 0.3: no coverage.
    assert sorted(forecasting_metrics(quantiles=(0.1, 0.3, 0.9)).keys()) == [
        "coverage@80",
        "pinball",
    ]
    assert sorted(forecasting_metrics(quantiles=(1 / 3, 2 / 3)).keys()) == [
        "coverage@33_3333",
        "pinball",
    ]
    assert sorted(forecasting_metrics(quantiles=torch.tensor([0.5])).keys()) == [
        "mase",
        "pinball",
        "smape",
        "wape",
    ]
    collection = forecasting_metrics(quantiles=(0.1, 0.5, 0.9))
    collection.update(torch.zeros(2, 3, 3), torch.ones(2, 3), insample=torch.randn(2, 4))
    assert "insample" not in forecasting_metrics(quantiles=(0.1, 0.9))["pinball"]._filter_kwargs(
        insample=torch.zeros(1)
    )


def test_collection_never_merges_different_metrics() -> None:
    # First batch: exact forecasts, every metric's sums are 0 and n. Without the `config`
    # state MetricCollection would merge MASE, sMAPE and pinball into one compute group.
    perfect = (torch.ones(2, 3, 3), torch.ones(2, 3))
    later = _data(5)[2]
    history = torch.randn(2, 4).cumsum(1)
    collection = forecasting_metrics(quantiles=(0.25, 0.5, 0.75))
    single = {
        "mase": MASE(quantiles=(0.25, 0.5, 0.75)),
        "smape": SMAPE(quantiles=(0.25, 0.5, 0.75)),
        "wape": WAPE(quantiles=(0.25, 0.5, 0.75)),
        "pinball": MeanPinballLoss(quantiles=(0.25, 0.5, 0.75)),
        "coverage@50": QuantileCoverage(quantiles=(0.25, 0.5, 0.75), interval=(0.25, 0.75)),
    }
    later_preds = later[0][..., 1:4]
    for preds, target, hist in ((*perfect, history), (later_preds, later[1], later[2])):
        collection.update(preds, target, insample=hist)
        for name, metric in single.items():
            metric.update(preds, target, **({"insample": hist} if name == "mase" else {}))
    got = {name: v.item() for name, v in collection.compute().items()}
    assert got == {name: m.compute().item() for name, m in single.items()}
    assert len(set(got.values())) == len(got)


# ------------------------------------------------------------------- torchmetrics API
def test_compute_before_update_reset_and_state_dict_round_trip() -> None:
    for metric in (MASE(), SMAPE(), WAPE(), MeanPinballLoss(quantiles=(0.5,))):
        with pytest.warns(UserWarning, match="before the ``update``"):
            assert math.isnan(metric.compute().item())
    batches = _data(6)
    full = forecasting_metrics(quantiles=LEVELS, m=2)
    for p, y, h in batches:
        full.update(p, y, insample=h)
    want = {name: v.item() for name, v in full.compute().items()}

    first = forecasting_metrics(quantiles=LEVELS, m=2)
    for p, y, h in batches[:3]:
        first.update(p, y, insample=h)
    saved = first.state_dict()
    assert any(key.endswith("wape.scale") for key in saved)
    assert not any(key.endswith("config") for key in saved)
    resumed = forecasting_metrics(quantiles=LEVELS, m=2)
    resumed.load_state_dict(saved)
    for p, y, h in batches[3:]:
        resumed.update(p, y, insample=h)
    got = {name: v.item() for name, v in resumed.compute().items()}
    assert got == pytest.approx(want, rel=1e-7)

    full.reset()
    for p, y, h in batches:
        full.update(p, y, insample=h)
    assert {name: v.item() for name, v in full.compute().items()} == want


def test_empty_batches_are_no_ops() -> None:
    metric = MeanPinballLoss(quantiles=(0.1, 0.9))
    metric.update(torch.zeros(0, 4, 2), torch.zeros(0, 4))
    mase = MASE()
    mase.update(torch.zeros(0, 3), torch.zeros(0, 3), insample=torch.zeros(0, 5))
    assert metric.count.item() == 0.0 and mase.count.item() == 0.0


def test_half_inputs_and_set_dtype() -> None:
    metric = SMAPE()
    metric.set_dtype(torch.float16)
    assert metric.total.dtype == torch.float64
    metric.update(
        torch.tensor([[110.0, 90.0]], dtype=torch.bfloat16),
        torch.tensor([[100.0, 100.0]], dtype=torch.bfloat16),
    )
    value = metric.compute()
    assert value.dtype == torch.float16
    assert value.item() == pytest.approx((20 / 210 + 20 / 190) / 2, rel=1e-3)


# ----------------------------------------------------------------------------- errors
_Q3 = (0.1, 0.5, 0.9)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: SMAPE().update(torch.zeros(4, 1), torch.zeros(4)),
            ValueError,
            r"SMAPE\.update\(\): `target` must have the same shape as `preds` \(4, 1\); got \(4,\)",
        ),
        (
            lambda: WAPE().update(torch.zeros(4), torch.zeros(4)),
            ValueError,
            r"WAPE\.update\(\): `target` must have at least 2 dimensions \(B, T\)",
        ),
        (
            lambda: SMAPE().update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3)),
            TypeError,
            r"SMAPE\.update\(\): `preds` must be a floating-point tensor",
        ),
        (
            lambda: WAPE().update(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)),
            TypeError,
            r"WAPE\.update\(\): `target` must be a floating-point tensor",
        ),
        (
            lambda: MASE().update(torch.zeros(2, 3), torch.zeros(2, 3)),
            TypeError,
            r"MASE\.update\(\): `insample` must be given",
        ),
        (
            lambda: MASE().update(torch.zeros(2, 3), torch.zeros(2, 3), insample=torch.zeros(3, 5)),
            ValueError,
            r"MASE\.update\(\): `insample` must have `target`'s shape \(2, 3\) except "
            r"along time_dim=1: \(2, T_in\); got \(3, 5\)",
        ),
        (
            lambda: MASE(m=4).update(
                torch.zeros(2, 3), torch.zeros(2, 3), insample=torch.randn(2, 4)
            ),
            ValueError,
            r"MASE\.update\(\): `insample` must have more than m = 4 steps",
        ),
        (
            lambda: MASE().update(
                torch.zeros(2, 3), torch.zeros(2, 3), insample=torch.zeros(2, 5, dtype=torch.long)
            ),
            TypeError,
            r"MASE\.update\(\): `insample` must be a floating-point tensor",
        ),
        (
            lambda: MASE(time_dim=2).update(
                torch.zeros(2, 3), torch.zeros(2, 3), insample=torch.randn(2, 5)
            ),
            ValueError,
            r"MASE\.update\(\): `time_dim` must index a non-batch dimension",
        ),
        (
            lambda: MeanPinballLoss(quantiles=_Q3).update(torch.zeros(2, 3, 2), torch.zeros(2, 3)),
            ValueError,
            r"MeanPinballLoss\.update\(\): `preds` must have shape \(B, T\[, F\], Q\) "
            r"with Q = len\(quantiles\) = 3",
        ),
        (
            lambda: QuantileCoverage(quantiles=_Q3, interval=(0.1, 0.9)).update(
                torch.zeros(2, 3, 3), torch.zeros(2, 3, 3)
            ),
            ValueError,
            r"`target` must have shape `preds`.shape\[:-1\] = \(2, 3\); got \(2, 3, 3\)\. "
            r"One target value",
        ),
        (
            lambda: SMAPE(quantiles=_Q3).update(torch.zeros(2, 3), torch.zeros(2, 3)),
            ValueError,
            r"SMAPE\.update\(\): `preds` must have shape \(B, T\[, F\], Q\)",
        ),
        (
            lambda: MeanPinballLoss(quantiles=(0.9, 0.1)),
            ValueError,
            r"MeanPinballLoss\(\): `quantiles` must be strictly increasing",
        ),
        (
            lambda: MeanPinballLoss(quantiles=(0.0, 0.5)),
            ValueError,
            r"`quantiles` must hold values in \(0, 1\)",
        ),
        (lambda: MeanPinballLoss(quantiles="0.5"), TypeError, r"`quantiles` must be a sequence"),
        (
            lambda: SMAPE(quantiles=(0.1, 0.9)),
            ValueError,
            r"SMAPE\(\): `0\.5` must be one of the levels `quantiles` = \[0\.1, 0\.9\]",
        ),
        (
            lambda: QuantileCoverage(quantiles=_Q3, interval=(0.2, 0.9)),
            ValueError,
            r"QuantileCoverage\(\): `interval` must be one of the levels",
        ),
        (
            lambda: QuantileCoverage(quantiles=_Q3, interval=(0.9, 0.1)),
            ValueError,
            r"`interval` must be \(lo, hi\) with lo < hi",
        ),
        (
            lambda: QuantileCoverage(quantiles=_Q3, interval=0.8),
            TypeError,
            r"`interval` must be a pair \(lo, hi\)",
        ),
        (lambda: MASE(m=0), ValueError, r"MASE\(\): `m` must be an int >= 1"),
        (lambda: MASE(time_dim=0), ValueError, r"MASE\(\): `time_dim` must not be 0"),
        (lambda: MASE(validate="yes"), TypeError, r"`validate` must be True or False"),
        (lambda: forecasting_metrics(m=1.5), TypeError, r"forecasting_metrics\(\): `m` must be"),
        (
            lambda: forecasting_metrics(quantiles=()),
            ValueError,
            r"forecasting_metrics\(\): `quantiles` must be non-empty",
        ),
        (lambda: forecasting_metrics(prefix=1), TypeError, r"`prefix` must be a string or None"),
    ],
)
def test_errors(make: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        make()
