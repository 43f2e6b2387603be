"""Cases for the robust regression losses: float64 references written from the formulas.

References: torch.nn.functional.l1_loss / huber_loss / smooth_l1_loss where torch has the loss,
otherwise the paper formula in plain float64 torch ops (no stable rewrites, no losslab code).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from losslab.losses.regression import (
    BarronLoss,
    CauchyLoss,
    CharbonnierLoss,
    GemanMcClureLoss,
    HuberLoss,
    LogCoshLoss,
    MAELoss,
    SmoothL1Loss,
    WelschLoss,
    WingLoss,
)
from tests.cases._base import Case, ErrorInput, Sample, rand, randn, ref_reduce
from tests.cases.regression import pointwise_errors

F64 = torch.float64


def _w(g: torch.Generator, n: int) -> torch.Tensor:
    return rand(g, n, low=0.1, high=2.0)


def _common_errors(fn: str, **good: object) -> list[ErrorInput]:
    """pointwise_errors plus dtype, device and sample_weight traps every pointwise loss refuses."""
    p, t = torch.randn(4, 3), torch.randn(4, 3)
    return [
        *pointwise_errors(fn, **good),
        ErrorInput(
            (p > 0, t),
            dict(good),
            TypeError,
            rf"{fn}\(\): `pred` must be a floating-point tensor; got dtype bool",
            "bool pred",
        ),
        ErrorInput(
            (p, torch.randn(4, 3, dtype=torch.complex64)),
            dict(good),
            TypeError,
            r"`target` must be a floating-point tensor; got dtype complex64",
            "complex target",
        ),
        ErrorInput(
            (p, torch.empty(4, 3, device="meta")),
            dict(good),
            ValueError,
            r"`target` must be on the same device as `pred` \(cpu\); got meta",
            "target on another device",
        ),
        ErrorInput(
            (torch.tensor(1.0), torch.tensor(0.0)),
            {**good, "sample_weight": torch.ones(1)},
            ValueError,
            r"`sample_weight` must be None for a 0-d `pred`",
            "0-d pred with sample_weight",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": [1.0, 1.0, 1.0, 1.0]},
            TypeError,
            r"`sample_weight` must be a torch.Tensor; got list",
            "list sample_weight",
        ),
    ]


def _float_errors(
    fn: str, name: str, *, positive: bool, low_closed: bool = False, **good: object
) -> list[ErrorInput]:
    """Bad values of a real hyperparameter that must be > 0 (or >= 0 with ``low_closed``)."""
    p, t = torch.randn(4, 3), torch.randn(4, 3)
    lo = r"\[0, inf\)" if low_closed else r"\(0, inf\)"
    out = [
        ErrorInput(
            (p, t),
            {**good, name: -1.0},
            ValueError,
            rf"{fn}\(\): `{name}` must be in {lo}; got -1.0",
            f"negative {name}",
        ),
        ErrorInput(
            (p, t),
            {**good, name: float("nan")},
            ValueError,
            rf"`{name}` must be a finite number; got nan",
            f"NaN {name}",
        ),
        ErrorInput(
            (p, t),
            {**good, name: float("inf")},
            ValueError,
            rf"`{name}` must be a finite number; got inf",
            f"inf {name}",
        ),
        ErrorInput(
            (p, t),
            {**good, name: True},
            TypeError,
            rf"`{name}` must be a real number; got bool",
            f"bool {name}",
        ),
        ErrorInput(
            (p, t),
            {**good, name: torch.tensor(1.0)},
            TypeError,
            rf"`{name}` must be a real number; got Tensor",
            f"tensor {name}",
        ),
        ErrorInput(
            (p, t),
            {**good, name: "1.0"},
            TypeError,
            rf"`{name}` must be a real number; got str",
            f"str {name}",
        ),
    ]
    if positive and not low_closed:
        out.append(
            ErrorInput(
                (p, t),
                {**good, name: 0.0},
                ValueError,
                rf"`{name}` must be in \(0, inf\); got 0.0",
                f"zero {name}",
            )
        )
    return out


def _extremes(**kwargs: object) -> list[Sample]:
    """Errors where naive code overflows: 0, +-30, +-1e4, 1e-30 and +-1e30 (float32-finite)."""
    x = torch.tensor([0.0, 30.0, -30.0, 1e4, -1e4, 1e-30, 1e30, -1e30])
    return [
        Sample((x.clone(), torch.zeros(8)), dict(kwargs), note="extreme pred"),
        Sample((torch.zeros(8), x.clone()), dict(kwargs), note="extreme target"),
    ]


# ---------------------------------------------------------------------------- mae
def _mae_ref(pred, target, *, sample_weight=None, validate=True, reduction="mean"):
    return ref_reduce(
        F.l1_loss(pred, target, reduction="none"), reduction, sample_weight=sample_weight
    )


def _mae_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 6), randn(g, 6)), note="1d"),
        Sample((randn(g, 4, 3, 2), randn(g, 4, 3, 2, scale=3.0)), note="3d"),
        Sample((randn(g, 5, 2), randn(g, 5, 2)), {"sample_weight": _w(g, 5)}, note="sample_weight"),
        Sample(
            (randn(g, 3), randn(g, 3)),
            {"sample_weight": torch.zeros(3, dtype=F64)},
            note="all-zero weights",
        ),
        # e = 0 exactly: the subgradient is 0 there, as in torch (central differences agree).
        Sample(
            (
                torch.tensor([0.5, -1.0, 2.0, 1e3], dtype=F64),
                torch.tensor([0.5, -1.0, -2.0, 0.0], dtype=F64),
            ),
            note="ties and large",
        ),
    ]


MAE = Case(
    key="mae",
    module=MAELoss,
    reference=_mae_ref,
    samples=_mae_samples,
    errors=lambda: _common_errors("mae_loss"),
    extremes=_extremes,
)


# ---------------------------------------------------------------------------- huber
def _huber_ref(pred, target, *, delta=1.0, sample_weight=None, validate=True, reduction="mean"):
    return ref_reduce(
        F.huber_loss(pred, target, reduction="none", delta=delta),
        reduction,
        sample_weight=sample_weight,
    )


def _huber_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 8, scale=2.0), randn(g, 8)), note="default delta, both branches"),
        Sample((randn(g, 4, 3, 2), randn(g, 4, 3, 2)), {"delta": 0.5}, note="3d delta=0.5"),
        Sample(
            (randn(g, 5, 2, scale=3.0), randn(g, 5, 2)),
            {"delta": 3.0, "sample_weight": _w(g, 5)},
            note="delta=3 sample_weight",
        ),
        Sample(
            (
                torch.tensor([2.0, -2.0, 0.0, 1e3, -1e3, 1.999], dtype=F64),
                torch.zeros(6, dtype=F64),
            ),
            {"delta": 2.0},
            note="|e| == delta, 0, large",
        ),
    ]


HUBER = Case(
    key="huber",
    module=HuberLoss,
    reference=_huber_ref,
    samples=_huber_samples,
    errors=lambda: [
        *_common_errors("huber_loss"),
        *_float_errors("huber_loss", "delta", positive=True),
    ],
    extremes=lambda: [*_extremes(), *_extremes(delta=1e-3)],
)


# ---------------------------------------------------------------------------- smooth_l1
def _smooth_l1_ref(pred, target, *, beta=1.0, sample_weight=None, validate=True, reduction="mean"):
    return ref_reduce(
        F.smooth_l1_loss(pred, target, reduction="none", beta=beta),
        reduction,
        sample_weight=sample_weight,
    )


def _smooth_l1_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 8, scale=2.0), randn(g, 8)), note="default beta"),
        Sample((randn(g, 4, 3), randn(g, 4, 3)), {"beta": 0.0}, note="beta=0 is L1"),
        Sample(
            (randn(g, 5, 2), randn(g, 5, 2)),
            {"beta": 0.25, "sample_weight": _w(g, 5)},
            note="beta=0.25 sample_weight",
        ),
        Sample(
            (
                torch.tensor([[2.5, -2.5], [0.0, 1e3], [-7.0, 0.3]], dtype=F64),
                torch.zeros(3, 2, dtype=F64),
            ),
            {"beta": 2.5},
            note="|e| == beta, 0, large",
        ),
    ]


SMOOTH_L1 = Case(
    key="smooth_l1",
    module=SmoothL1Loss,
    reference=_smooth_l1_ref,
    samples=_smooth_l1_samples,
    errors=lambda: [
        *_common_errors("smooth_l1_loss"),
        *_float_errors("smooth_l1_loss", "beta", positive=False, low_closed=True),
    ],
    extremes=lambda: [*_extremes(), *_extremes(beta=0.0), *_extremes(beta=1e-3)],
)


# ---------------------------------------------------------------------------- log_cosh
def _log_cosh_ref(pred, target, *, sample_weight=None, validate=True, reduction="mean"):
    return ref_reduce(torch.log(torch.cosh(pred - target)), reduction, sample_weight=sample_weight)


def _log_cosh_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 8, scale=3.0), randn(g, 8)), note="1d"),
        Sample((randn(g, 4, 3, 2, scale=10.0), randn(g, 4, 3, 2)), note="3d wide"),
        Sample((randn(g, 5, 2), randn(g, 5, 2)), {"sample_weight": _w(g, 5)}, note="sample_weight"),
        Sample(
            (
                torch.tensor([0.0, 2.0, -2.0, 1e-8, 1.9999, 25.0, -25.0], dtype=F64),
                torch.zeros(7, dtype=F64),
            ),
            note="0, switch point, tiny, large",
        ),
    ]


LOG_COSH = Case(
    key="log_cosh",
    module=LogCoshLoss,
    reference=_log_cosh_ref,
    samples=_log_cosh_samples,
    errors=lambda: _common_errors("log_cosh_loss"),
    extremes=_extremes,
)


# ---------------------------------------------------------------------------- charbonnier
def _charbonnier_ref(
    pred, target, *, eps=1e-3, sample_weight=None, validate=True, reduction="mean"
):
    e = pred - target
    return ref_reduce(torch.sqrt(e**2 + eps**2) - eps, reduction, sample_weight=sample_weight)


def _charbonnier_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 8), randn(g, 8)), note="default eps"),
        Sample((randn(g, 4, 3, 2), randn(g, 4, 3, 2)), {"eps": 1.0}, note="3d eps=1"),
        Sample(
            (randn(g, 5, 2), randn(g, 5, 2)),
            {"eps": 0.1, "sample_weight": _w(g, 5)},
            note="eps=0.1 sample_weight",
        ),
        Sample(
            (torch.tensor([0.0, 1e-8, -1e-3, 1e3], dtype=F64), torch.zeros(4, dtype=F64)),
            {"eps": 1e-3},
            note="0, tiny, e == eps, large",
        ),
    ]


CHARBONNIER = Case(
    key="charbonnier",
    module=CharbonnierLoss,
    reference=_charbonnier_ref,
    samples=_charbonnier_samples,
    errors=lambda: [
        *_common_errors("charbonnier_loss"),
        *_float_errors("charbonnier_loss", "eps", positive=True),
    ],
    extremes=lambda: [*_extremes(), *_extremes(eps=1e-6), *_extremes(eps=1e3)],
)


# ---------------------------------------------------------------------------- Barron's family
def _z(pred, target, scale):
    return (pred - target) / scale


def _cauchy_ref(pred, target, *, scale=1.0, sample_weight=None, validate=True, reduction="mean"):
    z = _z(pred, target, scale)
    return ref_reduce(torch.log(0.5 * z**2 + 1.0), reduction, sample_weight=sample_weight)


def _geman_mcclure_ref(
    pred, target, *, scale=1.0, sample_weight=None, validate=True, reduction="mean"
):
    z = _z(pred, target, scale)
    return ref_reduce(2.0 * z**2 / (z**2 + 4.0), reduction, sample_weight=sample_weight)


def _welsch_ref(pred, target, *, scale=1.0, sample_weight=None, validate=True, reduction="mean"):
    z = _z(pred, target, scale)
    return ref_reduce(1.0 - torch.exp(-0.5 * z**2), reduction, sample_weight=sample_weight)


def _scale_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 8, scale=2.0), randn(g, 8)), note="default scale"),
        Sample((randn(g, 4, 3, 2), randn(g, 4, 3, 2)), {"scale": 0.5}, note="3d scale=0.5"),
        Sample(
            (randn(g, 5, 2, scale=3.0), randn(g, 5, 2)),
            {"scale": 2.0, "sample_weight": _w(g, 5)},
            note="scale=2 sample_weight",
        ),
        Sample(
            (torch.tensor([0.0, 1e-9, 2.0, -30.0, 1e3], dtype=F64), torch.zeros(5, dtype=F64)),
            {"scale": 0.7},
            note="0, tiny, large",
        ),
    ]


def _scale_case(key: str, module: type, fn: str, ref) -> Case:
    return Case(
        key=key,
        module=module,
        reference=ref,
        samples=_scale_samples,
        errors=lambda: [*_common_errors(fn), *_float_errors(fn, "scale", positive=True)],
        extremes=lambda: [*_extremes(), *_extremes(scale=1e-3), *_extremes(scale=1e3)],
    )


CAUCHY = _scale_case("cauchy", CauchyLoss, "cauchy_loss", _cauchy_ref)
GEMAN_MCCLURE = _scale_case(
    "geman_mcclure", GemanMcClureLoss, "geman_mcclure_loss", _geman_mcclure_ref
)
WELSCH = _scale_case("welsch", WelschLoss, "welsch_loss", _welsch_ref)


def _barron_ref(
    pred, target, *, alpha=1.0, scale=1.0, sample_weight=None, validate=True, reduction="mean"
):
    """Barron (2019), eq. (1) plus its limits, elementwise; alpha a float or a tensor."""
    z = _z(pred, target, scale)
    a = alpha.to(F64) if isinstance(alpha, torch.Tensor) else torch.tensor(float(alpha), dtype=F64)
    a = a.expand_as(z)
    b = (a - 2.0).abs()
    # The general formula is NaN at the limits; torch.where picks the limits there.
    general = b / a * ((z**2 / b + 1.0) ** (a / 2.0) - 1.0)
    loss = torch.where(
        a == 2.0,
        0.5 * z**2,
        torch.where(
            a == 0.0,
            torch.log(0.5 * z**2 + 1.0),
            torch.where(a == -math.inf, 1.0 - torch.exp(-0.5 * z**2), general),
        ),
    )
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _barron_samples(g: torch.Generator) -> list[Sample]:
    per_element = torch.tensor(
        [[2.0, 0.0, -math.inf], [-2.0, 0.5, 1.5], [3.5, -7.0, 1.0], [0.25, -0.5, 2.0]], dtype=F64
    )
    return [
        Sample((randn(g, 8, scale=2.0), randn(g, 8)), note="default alpha=1"),
        Sample(
            (randn(g, 4, 3, 2), randn(g, 4, 3, 2)),
            {"alpha": 2.0, "scale": 0.7},
            note="alpha=2 scale=0.7",
        ),
        Sample(
            (randn(g, 5, 2, scale=3.0), randn(g, 5, 2)),
            {"alpha": 0.0, "sample_weight": _w(g, 5)},
            note="alpha=0 sample_weight",
        ),
        Sample(
            (randn(g, 6, scale=3.0), randn(g, 6)),
            {"alpha": -math.inf, "scale": 2.0},
            note="alpha=-inf scale=2",
        ),
        Sample(
            (randn(g, 4, 3, scale=2.0), randn(g, 4, 3)),
            {"alpha": per_element, "scale": 1.5, "sample_weight": _w(g, 4)},
            note="per-element alpha tensor",
            batch_split=False,  # the contract splits per-call arguments only, not a (N, ...) alpha
        ),
        Sample(
            (randn(g, 5, 2, scale=2.0), randn(g, 5, 2)),
            {"alpha": torch.tensor(4.0, dtype=F64), "scale": 0.5},
            note="0-d alpha=4",
        ),
    ]


def _barron_errors() -> list[ErrorInput]:
    fn = "barron_loss"
    p, t = torch.randn(4, 3), torch.randn(4, 3)
    return [
        *_common_errors(fn),
        *_float_errors(fn, "scale", positive=True),
        ErrorInput(
            (p, t),
            {"alpha": math.inf},
            ValueError,
            r"barron_loss\(\): `alpha` must be a finite number or -inf \(the Welsch loss\); got inf",
            "alpha=+inf",
        ),
        ErrorInput(
            (p, t),
            {"alpha": 1e39},
            ValueError,
            r"`alpha` must be finite in the compute dtype float32; got inf after rounding",
            "alpha overflows float32",
        ),
        ErrorInput(
            (p, t),
            {"alpha": math.nan},
            ValueError,
            r"`alpha` must be a finite number; got nan",
            "alpha=NaN",
        ),
        ErrorInput(
            (p, t),
            {"alpha": True},
            TypeError,
            r"`alpha` must be a real number; got bool",
            "bool alpha",
        ),
        ErrorInput(
            (p, t),
            {"alpha": "cauchy"},
            TypeError,
            r"`alpha` must be a real number; got str",
            "str alpha",
        ),
        ErrorInput(
            (p, t),
            {"alpha": torch.tensor(1)},
            TypeError,
            r"`alpha` must be a floating-point tensor; got dtype int64",
            "int alpha tensor",
        ),
        ErrorInput(
            (p, t),
            {"alpha": torch.ones(3)},
            ValueError,
            r"`alpha` must be 0-d or have the same shape as `pred` \(4, 3\); got \(3,\). alpha is never broadcast",
            "alpha (3,) vs (4, 3)",
        ),
        ErrorInput(
            (p, t),
            {"alpha": torch.ones(4, 1)},
            ValueError,
            r"`alpha` must be 0-d or have the same shape as `pred` \(4, 3\); got \(4, 1\)",
            "alpha (4, 1) vs (4, 3)",
        ),
        ErrorInput(
            (p, t),
            {"alpha": torch.ones(1)},
            ValueError,
            r"`alpha` must be 0-d or have the same shape as `pred` \(4, 3\); got \(1,\)",
            "alpha (1,)",
        ),
        ErrorInput(
            (p, t),
            {"alpha": torch.full((4, 3), math.inf)},
            ValueError,
            r"`alpha` must have values in \[-inf, inf\) \(no NaN, no \+inf\); got 12 value\(s\) outside, e.g. inf",
            "alpha tensor +inf",
        ),
        ErrorInput(
            (p, t),
            {"alpha": torch.tensor(math.nan)},
            ValueError,
            r"`alpha` must have values in \[-inf, inf\).*e.g. nan",
            "alpha tensor NaN",
        ),
        ErrorInput(
            (p, t),
            {"alpha": torch.empty((), device="meta")},
            ValueError,
            r"`alpha` must be on the same device as `pred` \(cpu\); got meta",
            "alpha on another device",
        ),
    ]


def _barron_extremes() -> list[Sample]:
    x = torch.tensor([0.0, 30.0, -30.0, 1e4, -1e4, 1e-30])
    out = [s for a in (1.0, 0.5, 0.0, -2.0, -math.inf, -1e6) for s in _extremes(alpha=a)]
    out += [s for a in (1.0, 0.0, -2.0) for s in _extremes(alpha=a, scale=1e-3)]
    # alpha >= 2 grows like |z|^alpha: 1e30 overflows by right; stay at |e| <= 1e4.
    out += [
        Sample((x.clone(), torch.zeros(6)), {"alpha": a}, note=f"alpha={a}")
        for a in (2.0, 1.999, 3.0)
    ]
    out.append(
        Sample(
            (x.clone(), torch.zeros(6)),
            {"alpha": torch.tensor([2.0, 0.0, -math.inf, 1e-7, 2 - 1e-6, -2.0])},
            note="alpha tensor near limits",
        )
    )
    return out


BARRON = Case(
    key="barron",
    module=BarronLoss,
    reference=_barron_ref,
    samples=_barron_samples,
    errors=_barron_errors,
    extremes=_barron_extremes,
)


# ---------------------------------------------------------------------------- wing
def _wing_ref(
    pred, target, *, width=10.0, curvature=2.0, sample_weight=None, validate=True, reduction="mean"
):
    a = (pred - target).abs()
    c = width - width * math.log(1.0 + width / curvature)
    loss = torch.where(a < width, width * torch.log(1.0 + a / curvature), a - c)
    return ref_reduce(loss, reduction, sample_weight=sample_weight)


def _wing_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 8, scale=8.0), randn(g, 8)), note="paper defaults, both branches"),
        Sample(
            (randn(g, 4, 3, 2), randn(g, 4, 3, 2)),
            {"width": 1.0, "curvature": 0.5},
            note="3d w=1 eps=0.5",
        ),
        Sample(
            (randn(g, 5, 2, scale=4.0), randn(g, 5, 2)),
            {"width": 5.0, "curvature": 1.0, "sample_weight": _w(g, 5)},
            note="w=5 sample_weight",
        ),
        # Kinks at e = 0 and |e| = w: no gradcheck there.
        Sample(
            (torch.tensor([0.0, 3.0, -3.0, 1e3], dtype=F64), torch.zeros(4, dtype=F64)),
            {"width": 3.0, "curvature": 0.1},
            note="0 and |e| == w",
            gradcheck=False,
        ),
    ]


def _wing_errors() -> list[ErrorInput]:
    fn = "wing_loss"
    return [
        *_common_errors(fn),
        *_float_errors(fn, "width", positive=True),
        *_float_errors(fn, "curvature", positive=True),
    ]


WING = Case(
    key="wing",
    module=WingLoss,
    reference=_wing_ref,
    samples=_wing_samples,
    errors=_wing_errors,
    extremes=lambda: [*_extremes(), *_extremes(width=0.1, curvature=1e-3)],
)

CASES = [MAE, HUBER, SMOOTH_L1, LOG_COSH, CHARBONNIER, CAUCHY, GEMAN_MCCLURE, WELSCH, BARRON, WING]

__all__ = ["CASES"]
