"""Cases for the focal family, ASL, Poly-1 focal and the class-balanced loss.

The references are float64 formulas written from the papers with plain torch ops (sigmoid,
softmax, log) and torch's own BCE / cross-entropy where the formula contains them; none calls
losslab.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F

from losslab.losses.classification.asymmetric import AsymmetricLoss
from losslab.losses.classification.class_balanced import ClassBalancedLoss
from losslab.losses.classification.focal import SigmoidFocalLoss
from losslab.losses.classification.poly_focal import PolyFocalLoss
from losslab.losses.classification.softmax_focal import SoftmaxFocalLoss
from tests.cases._base import Case, ErrorInput, Sample, rand, randn, ref_reduce

GAMMAS = (0.0, 0.25, 0.5, 2.0, 5.0)
EXTREME_LOGITS = (30.0, -30.0, 1e4, -1e4, 0.0)


def _per_class(value: Any, like: torch.Tensor) -> Any:
    """A per-class hyperparameter as a float64 tensor along dim 1 of ``like``; numbers as is."""
    if value is None or isinstance(value, (int, float)):
        return value
    return torch.as_tensor(value, dtype=torch.float64).reshape((1, -1) + (1,) * (like.dim() - 2))


def _hard(g: torch.Generator, *shape: int) -> torch.Tensor:
    return (torch.rand(*shape, generator=g, dtype=torch.float64) > 0.6).to(torch.float64)


def _weights(g: torch.Generator, n: int) -> torch.Tensor:
    return rand(g, n, low=0.1, high=2.0)


# ---------------------------------------------------------------------------- shared errors
def logit_errors(fn: str, **good: Any) -> list[ErrorInput]:
    """Bad inputs every pointwise (logits, float target in [0, 1]) loss must refuse."""
    x, t = torch.randn(4, 3), torch.rand(4, 3)
    col, flat = torch.randn(4, 1), torch.rand(4)
    return [
        ErrorInput(
            (col, flat),
            dict(good),
            ValueError,
            rf"{fn}\(\): `target` must have the same shape as `logits` \(4, 1\); got \(4,\)",
            "(B,1) vs (B,)",
        ),
        ErrorInput(
            (flat, col),
            dict(good),
            ValueError,
            r"`target` must have the same shape as `logits` \(4,\); got \(4, 1\)",
            "(B,) vs (B,1)",
        ),
        ErrorInput(
            (x, t[:2]),
            dict(good),
            ValueError,
            r"`target` must have the same shape",
            "batch mismatch",
        ),
        ErrorInput(
            (x.long(), t),
            dict(good),
            TypeError,
            r"`logits` must be a floating-point tensor; got dtype int64",
            "int logits",
        ),
        ErrorInput(
            (x, (t > 0.5).long()),
            dict(good),
            TypeError,
            r"`target` must be a floating-point tensor; got dtype int64",
            "int target",
        ),
        ErrorInput(
            (x, t > 0.5),
            dict(good),
            TypeError,
            r"`target` must be a floating-point tensor; got dtype bool",
            "bool target",
        ),
        ErrorInput(
            (x.tolist(), t),
            dict(good),
            TypeError,
            r"`logits` must be a torch.Tensor; got list",
            "list logits",
        ),
        ErrorInput(
            (x, 1.0),
            dict(good),
            TypeError,
            r"`target` must be a torch.Tensor; got float",
            "float target",
        ),
        ErrorInput(
            (x, t + 1.0),
            dict(good),
            ValueError,
            rf"{fn}\(\): `target` must have values in \[0, 1\]; got 12 value\(s\) outside",
            "target > 1",
        ),
        ErrorInput(
            (x, t - 2.0),
            dict(good),
            ValueError,
            r"`target` must have values in \[0, 1\]",
            "target < 0",
        ),
        ErrorInput(
            (x, torch.full((4, 3), float("nan"))),
            dict(good),
            ValueError,
            r"`target` must have values in \[0, 1\]; got 12 value\(s\) outside, e\.g\. nan",
            "NaN target",
        ),
        ErrorInput(
            (x, torch.tensor([[0.0, 1.0, 255.0]] * 4)),
            dict(good),
            ValueError,
            r"`target` must have values in \[0, 1\]; got 4 value\(s\) outside, e\.g\. 255",
            "255 without ignore_index",
        ),
        ErrorInput(
            (x, torch.tensor([[0.0, 2.0, 255.0]] * 4)),
            {**good, "ignore_index": 255},
            ValueError,
            r"`target` must have values in \[0, 1\]; got 4 value\(s\) outside, e\.g\. 2",
            "bad value beside ignore_index",
        ),
        ErrorInput(
            (x, t),
            {**good, "ignore_index": 1.5},
            TypeError,
            r"`ignore_index` must be an int or None; got float",
            "float ignore_index",
        ),
        ErrorInput(
            (x, t),
            {**good, "ignore_index": True},
            TypeError,
            r"`ignore_index` must be an int or None; got bool",
            "bool ignore_index",
        ),
        ErrorInput(
            (x, t),
            {**good, "reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. Did you mean 'mean'\?",
            "reduction typo",
        ),
        ErrorInput(
            (x, t),
            {**good, "reduction": None},
            ValueError,
            r"`reduction` must be one of",
            "reduction None",
        ),
        ErrorInput(
            (x, t),
            {**good, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (x, t),
            {**good, "sample_weight": torch.ones(4, 1)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\).*got \(4, 1\)",
            "sample_weight (N,1)",
        ),
        ErrorInput(
            (x, t),
            {**good, "sample_weight": -torch.ones(4)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
        ErrorInput(
            (x, t),
            {**good, "sample_weight": torch.ones(4, dtype=torch.long)},
            TypeError,
            r"`sample_weight` must be a floating-point tensor",
            "int sample_weight",
        ),
    ]


def class_id_errors(fn: str, **good: Any) -> list[ErrorInput]:
    """Bad inputs every (logits (N, C, ...), class ids (N, ...)) loss must refuse."""
    x, t = torch.randn(4, 3), torch.tensor([0, 2, 1, 0])
    return [
        ErrorInput(
            (x, t[:, None]),
            dict(good),
            ValueError,
            rf"{fn}\(\): `target` must have shape \(4,\) \(class ids\), as `logits` \(4, 3\) implies; got \(4, 1\)",
            "(N,1) ids",
        ),
        ErrorInput(
            (x, t[:3]), dict(good), ValueError, r"`target` must have shape \(4,\)", "batch mismatch"
        ),
        ErrorInput(
            (x, t.float()),
            dict(good),
            TypeError,
            r"`target` must be an integer tensor of class ids; got dtype float32. Convert it with `.long\(\)`",
            "float class ids",
        ),
        ErrorInput(
            (x, t > 0),
            dict(good),
            TypeError,
            r"`target` must be an integer tensor of class ids; got dtype bool",
            "bool class ids",
        ),
        ErrorInput(
            (x.long(), t),
            dict(good),
            TypeError,
            r"`logits` must be a floating-point tensor; got dtype int64",
            "int logits",
        ),
        ErrorInput(
            (x[:, 0], t),
            dict(good),
            ValueError,
            r"`logits` must have shape \(N, C\) or \(N, C, d1, ...\), classes along dim 1; got \(4,\)",
            "1-D logits",
        ),
        ErrorInput(
            (x[:, :1], t * 0),
            dict(good),
            ValueError,
            r"`logits` must have at least 2 classes along dim 1; got \(4, 1\)",
            "one class",
        ),
        ErrorInput(
            (x, torch.tensor([0, 3, 1, 0])),
            dict(good),
            ValueError,
            r"`target` must hold class ids in \[0, 3\); got 1 id\(s\) outside, e\.g\. 3. Set ignore_index=3",
            "id == C",
        ),
        ErrorInput(
            (x, torch.tensor([0, -1, 1, 0])),
            dict(good),
            ValueError,
            r"`target` must hold class ids in \[0, 3\); got 1 id\(s\) outside, e\.g\. -1",
            "negative id",
        ),
        ErrorInput(
            (x, t),
            {**good, "reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. Did you mean 'mean'\?",
            "reduction typo",
        ),
        ErrorInput(
            (x, t),
            {**good, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (x, t),
            {**good, "sample_weight": -torch.ones(4)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
        ErrorInput(
            (x, t),
            {**good, "sample_weight": torch.ones(4, dtype=torch.long)},
            TypeError,
            r"`sample_weight` must be a floating-point tensor",
            "int sample_weight",
        ),
    ]


def _sigmoid_extremes(**kwargs: Any) -> list[Sample]:
    """Logits of +-30, +-1e4 and 0 against targets 1 (row 0) and 0 (row 1), one sample per gamma."""
    x = torch.tensor([EXTREME_LOGITS, EXTREME_LOGITS], dtype=torch.float64)
    y = torch.tensor([[1.0] * 5, [0.0] * 5], dtype=torch.float64)
    return [
        Sample((x.clone(), y.clone()), {**kwargs, "gamma": g}, note=f"saturated gamma={g:g}")
        for g in GAMMAS
    ]


# ---------------------------------------------------------------------------- sigmoid focal
def _focal_ref(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: Any = 0.25,
    gamma: float = 2.0,
    ignore_index: Optional[int] = None,
    normalize: bool = False,
    sample_weight: Optional[torch.Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
    epsilon: float = 0.0,
) -> torch.Tensor:
    """torchvision's sigmoid_focal_loss formula (plus the Poly-1 term), in float64."""
    x, y = logits.double(), target.double()
    mask = None if ignore_index is None else target != ignore_index
    if mask is not None:
        y = torch.where(mask, y, torch.zeros_like(y))
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    a = _per_class(alpha, x)
    if a is not None:
        loss = loss * (a * y + (1 - a) * (1 - y))
    # Poly-1: the paper's code adds epsilon * (1 - pt)^(gamma + 1) after alpha-weighting FL.
    loss = loss + epsilon * (1 - p_t) ** (gamma + 1)
    if normalize:
        loss = loss / max(float(y.sum()), 1.0)
    return ref_reduce(loss, reduction, sample_weight=sample_weight, mask=mask)


def _focal_samples(g: torch.Generator) -> list[Sample]:
    y_ignored = _hard(g, 5, 4)
    y_ignored[0, 1] = y_ignored[3, 2] = 255.0
    all_ignored = torch.full((3, 2), -1.0, dtype=torch.float64)
    return [
        Sample((randn(g, 6, 3, scale=2.0), _hard(g, 6, 3)), note="2d hard defaults"),
        Sample(
            (randn(g, 4, 3, 2, 2), rand(g, 4, 3, 2, 2)),
            {
                "alpha": torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64),
                "gamma": 0.5,
                "sample_weight": _weights(g, 4),
            },
            note="4d soft per-class alpha gamma 0.5 sample_weight",
        ),
        Sample(
            (randn(g, 7), _hard(g, 7)),
            {"alpha": None, "gamma": 0.0},
            note="1d gamma 0 no alpha (BCE)",
        ),
        Sample(
            (randn(g, 5, 4), y_ignored),
            {"alpha": [0.1, 0.3, 0.6, 0.8], "gamma": 1.5, "ignore_index": 255},
            note="ignore 255 alpha list",
        ),
        Sample(
            (randn(g, 4, 3), _hard(g, 4, 3)),
            {"normalize": True, "alpha": 0.75},
            note="normalize",
            batch_split=False,
        ),
        Sample((randn(g, 3, 2), all_ignored), {"ignore_index": -1}, note="all ignored"),
    ]


FOCAL = Case(
    key="focal",
    module=SigmoidFocalLoss,
    reference=_focal_ref,
    samples=_focal_samples,
    errors=lambda: [
        *logit_errors("sigmoid_focal_loss"),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"gamma": -1.0},
            ValueError,
            r"sigmoid_focal_loss\(\): `gamma` must be in \[0, inf\); got -1.0",
            "negative gamma",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"gamma": float("nan")},
            ValueError,
            r"`gamma` must be a finite number; got nan",
            "NaN gamma",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"gamma": torch.tensor(2.0)},
            TypeError,
            r"`gamma` must be a real number; got Tensor",
            "tensor gamma",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"alpha": 1.5},
            ValueError,
            r"`alpha` must be in \[0, 1\]; got 1.5",
            "alpha > 1",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"alpha": -0.1},
            ValueError,
            r"`alpha` must be in \[0, 1\]; got -0.1",
            "alpha < 0",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.rand(4, 3)),
            {"alpha": [0.2, 0.3]},
            ValueError,
            r"`alpha` must have shape \(C,\) = \(3,\); got \(2,\)",
            "alpha length",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.rand(4, 3)),
            {"alpha": torch.tensor([0.2, 1.3, 0.1])},
            ValueError,
            r"`alpha` must have values in \[0, 1\]",
            "per-class alpha > 1",
        ),
        ErrorInput(
            (torch.randn(4), torch.rand(4)),
            {"alpha": [0.2, 0.3, 0.4, 0.5]},
            ValueError,
            r"`alpha` must be a number or None for 1-D `logits` \(a per-class `alpha` aligns with dim 1\)",
            "per-class alpha on 1-D logits",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.rand(4, 3)),
            {"alpha": "0.25"},
            TypeError,
            r"`alpha` must be a 1-D tensor or a sequence of numbers; got str",
            "string alpha",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.rand(4, 3)),
            {"alpha": torch.tensor([[0.2, 0.3, 0.4]])},
            ValueError,
            r"`alpha` must have shape \(C,\) = \(3,\); got \(1, 3\)",
            "2-D alpha",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.rand(4, 3)),
            {"normalize": "yes"},
            ValueError,
            r"`normalize` must be one of False \| True; got 'yes'",
            "normalize str",
        ),
    ],
    extremes=lambda: [
        *_sigmoid_extremes(alpha=0.25),
        Sample(
            (
                torch.tensor([EXTREME_LOGITS] * 2, dtype=torch.float64).T.contiguous(),
                torch.tensor([[1.0, 0.0]] * 5, dtype=torch.float64),
            ),
            {"alpha": [0.3, 0.9], "gamma": 0.25, "normalize": True},
            note="saturated per-class alpha normalize",
        ),
    ],
)


# ---------------------------------------------------------------------------- softmax focal
def _softmax_focal_ref(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: Any = None,
    gamma: float = 2.0,
    ignore_index: Optional[int] = None,
    sample_weight: Optional[torch.Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """-alpha_y (1 - p_y)^gamma log p_y from the float64 softmax."""
    x = logits.double()
    mask = None if ignore_index is None else target != ignore_index
    ids = target if mask is None else torch.where(mask, target, torch.zeros_like(target))
    p = torch.softmax(x, dim=1)
    p_y = p.gather(1, ids.unsqueeze(1)).squeeze(1)
    loss = -((1 - p_y) ** gamma) * torch.log(p_y)
    if isinstance(alpha, (int, float)):
        loss = loss * alpha
    elif alpha is not None:
        loss = loss * torch.as_tensor(alpha, dtype=torch.float64)[ids]
    return ref_reduce(loss, reduction, sample_weight=sample_weight, mask=mask)


def _ids(g: torch.Generator, num_classes: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, num_classes, shape, generator=g)


def _softmax_focal_samples(g: torch.Generator) -> list[Sample]:
    t_255 = _ids(g, 4, 3, 2, 3)
    t_255[0, 0, 0] = t_255[2, 1, 2] = 255
    t_neg = _ids(g, 3, 5)
    t_neg[1] = -1
    return [
        Sample((randn(g, 6, 4, scale=2.0), _ids(g, 4, 6)), note="2d defaults"),
        Sample(
            (randn(g, 3, 4, 2, 3), t_255),
            {
                "alpha": torch.tensor([0.5, 1.0, 2.0, 0.25], dtype=torch.float64),
                "gamma": 0.5,
                "ignore_index": 255,
                "sample_weight": _weights(g, 3),
            },
            note="4d ignore 255 per-class alpha gamma 0.5 sample_weight",
        ),
        Sample((randn(g, 5, 3), _ids(g, 3, 5)), {"gamma": 0.0}, note="gamma 0 (cross-entropy)"),
        Sample(
            (randn(g, 5, 3), t_neg),
            {"alpha": 0.5, "gamma": 1.5, "ignore_index": -1},
            note="scalar alpha ignore -1",
        ),
        Sample(
            (randn(g, 4, 2, 3), _ids(g, 2, 4, 3)),
            {"alpha": [0.25, 0.75], "gamma": 3.0},
            note="3d two classes alpha list",
        ),
        Sample((randn(g, 2, 3), torch.full((2,), 7)), {"ignore_index": 7}, note="all ignored"),
    ]


def _softmax_extremes() -> list[Sample]:
    rows = [[1e4, -1e4, 0.0], [30.0, -30.0, 0.0], [0.0, 0.0, 0.0]]
    x = torch.tensor(rows * 3, dtype=torch.float64)
    t = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    return [
        Sample(
            (x.clone(), t.clone()),
            {"gamma": g, "alpha": [0.25, 1.0, 0.5]},
            note=f"saturated gamma={g:g}",
        )
        for g in GAMMAS
    ]


SOFTMAX_FOCAL = Case(
    key="softmax_focal",
    module=SoftmaxFocalLoss,
    reference=_softmax_focal_ref,
    samples=_softmax_focal_samples,
    errors=lambda: [
        *class_id_errors("softmax_focal_loss"),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 255, 1, 0])),
            {"ignore_index": -100},
            ValueError,
            r"`target` must hold class ids in \[0, 3\) or ignore_index=-100; got 1 id\(s\) outside, e\.g\. 255",
            "255 beside ignore_index=-100",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 2, 1, 0])),
            {"ignore_index": "255"},
            TypeError,
            r"`ignore_index` must be an int or None; got str",
            "str ignore_index",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 2, 1, 0])),
            {"alpha": 0.0},
            ValueError,
            r"softmax_focal_loss\(\): `alpha` must be in \(0, inf\); got 0.0",
            "alpha 0",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 2, 1, 0])),
            {"alpha": [1.0, 2.0]},
            ValueError,
            r"`alpha` must have shape \(C,\) = \(3,\); got \(2,\)",
            "alpha length",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 2, 1, 0])),
            {"alpha": [1.0, -2.0, 1.0]},
            ValueError,
            r"`alpha` must have values in \[0, inf\)",
            "negative per-class alpha",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 2, 1, 0])),
            {"gamma": -0.5},
            ValueError,
            r"`gamma` must be in \[0, inf\); got -0.5",
            "negative gamma",
        ),
        ErrorInput(
            (torch.randn(4, 3, 2), torch.zeros(4, 3, dtype=torch.long)),
            {},
            ValueError,
            r"`target` must have shape \(4, 2\)",
            "class dim left in target",
        ),
    ],
    extremes=_softmax_extremes,
    none_shape=lambda logits, target: tuple(target.shape),
    shape_trap=lambda: ((torch.randn(6, 3), torch.zeros(6, 1, dtype=torch.long)), {}),
)


# ---------------------------------------------------------------------------- ASL
def _asl_ref(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    ignore_index: Optional[int] = None,
    sample_weight: Optional[torch.Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """The paper's formula with p_m = max(p - clip, 0), in float64."""
    x, y = logits.double(), target.double()
    mask = None if ignore_index is None else target != ignore_index
    if mask is not None:
        y = torch.where(mask, y, torch.zeros_like(y))
    p = torch.sigmoid(x)
    p_m = (p - clip).clamp(min=0)
    loss = -y * (1 - p) ** gamma_pos * torch.log(p) - (1 - y) * p_m**gamma_neg * torch.log(1 - p_m)
    return ref_reduce(loss, reduction, sample_weight=sample_weight, mask=mask)


def _asl_samples(g: torch.Generator) -> list[Sample]:
    y_255 = _hard(g, 4, 5)
    y_255[1, :2] = 255.0
    return [
        Sample((randn(g, 6, 5, scale=2.0), _hard(g, 6, 5)), note="defaults"),
        Sample(
            (randn(g, 5, 4), rand(g, 5, 4)),
            {"gamma_pos": 1.0, "gamma_neg": 2.0, "clip": 0.0, "sample_weight": _weights(g, 5)},
            note="soft targets clip 0 sample_weight",
        ),
        Sample(
            (randn(g, 4, 3, 2, scale=3.0), _hard(g, 4, 3, 2)),
            {"gamma_neg": 0.5, "clip": 0.1},
            note="3d gamma_neg 0.5 clip 0.1",
        ),
        Sample((randn(g, 4, 5), y_255), {"gamma_pos": 0.5, "ignore_index": 255}, note="ignore 255"),
        Sample(
            (rand(g, 8, low=2.0, high=5.0), _hard(g, 8)),
            {"gamma_neg": 0.0, "clip": 0.2},
            note="p_m > 0.5 branch gamma_neg 0",
        ),
    ]


ASL = Case(
    key="asl",
    module=AsymmetricLoss,
    reference=_asl_ref,
    samples=_asl_samples,
    errors=lambda: [
        *logit_errors("asymmetric_loss"),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"gamma_pos": -1.0},
            ValueError,
            r"asymmetric_loss\(\): `gamma_pos` must be in \[0, inf\); got -1.0",
            "negative gamma_pos",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"gamma_neg": -0.5},
            ValueError,
            r"`gamma_neg` must be in \[0, inf\); got -0.5",
            "negative gamma_neg",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"clip": 1.0},
            ValueError,
            r"`clip` must be in \[0, 1\); got 1.0",
            "clip 1",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"clip": -0.05},
            ValueError,
            r"`clip` must be in \[0, 1\); got -0.05",
            "negative clip",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"clip": None},
            TypeError,
            r"`clip` must be a real number; got NoneType",
            "clip None",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"gamma_neg": "4"},
            TypeError,
            r"`gamma_neg` must be a real number; got str",
            "str gamma_neg",
        ),
    ],
    extremes=lambda: [
        Sample(
            s.args,
            {"gamma_pos": s.kwargs["gamma"], "gamma_neg": s.kwargs["gamma"], "clip": clip},
            note=f"{s.note} clip={clip:g}",
        )
        for clip in (0.0, 0.05)
        for s in _sigmoid_extremes()
    ],
)


# ---------------------------------------------------------------------------- Poly-1 focal
def _poly_ref(
    logits: torch.Tensor, target: torch.Tensor, *, epsilon: float = 1.0, **kwargs: Any
) -> torch.Tensor:
    """Focal formula + epsilon * (1 - p_t)^(gamma + 1), unweighted (the PolyLoss paper's code)."""
    return _focal_ref(logits, target, epsilon=epsilon, **kwargs)


def _poly_samples(g: torch.Generator) -> list[Sample]:
    y_neg = _hard(g, 6, 2)
    y_neg[2] = -1.0
    return [
        Sample((randn(g, 5, 3, scale=2.0), _hard(g, 5, 3)), note="defaults"),
        Sample(
            (randn(g, 4, 3, 2), rand(g, 4, 3, 2)),
            {"epsilon": -1.0, "alpha": None, "gamma": 0.5},
            note="epsilon -1 soft no alpha",
        ),
        Sample(
            (randn(g, 3, 4, 2, 2), _hard(g, 3, 4, 2, 2)),
            {"epsilon": 2.0, "alpha": [0.1, 0.4, 0.6, 0.9], "sample_weight": _weights(g, 3)},
            note="4d epsilon 2 per-class alpha sample_weight",
        ),
        Sample(
            (randn(g, 6, 2), y_neg),
            {"epsilon": 0.5, "gamma": 0.0, "ignore_index": -1},
            note="gamma 0 ignore -1",
        ),
    ]


POLY_FOCAL = Case(
    key="poly_focal",
    module=PolyFocalLoss,
    reference=_poly_ref,
    samples=_poly_samples,
    errors=lambda: [
        *logit_errors("poly_focal_loss"),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"epsilon": -1.5},
            ValueError,
            r"poly_focal_loss\(\): `epsilon` must be in \[-1, inf\); got -1.5",
            "epsilon < -1",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"epsilon": float("inf")},
            ValueError,
            r"`epsilon` must be a finite number; got inf",
            "infinite epsilon",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"gamma": -2.0},
            ValueError,
            r"`gamma` must be in \[0, inf\); got -2.0",
            "negative gamma",
        ),
        ErrorInput(
            (torch.randn(3), torch.rand(3)),
            {"alpha": 2.0},
            ValueError,
            r"`alpha` must be in \[0, 1\]; got 2.0",
            "alpha > 1",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.rand(4, 3)),
            {"alpha": [0.5] * 4},
            ValueError,
            r"`alpha` must have shape \(C,\) = \(3,\); got \(4,\)",
            "alpha length",
        ),
    ],
    extremes=lambda: [
        Sample(s.args, {**s.kwargs, "epsilon": eps}, note=f"{s.note} epsilon={eps:g}")
        for eps in (-1.0, 1.0)
        for s in _sigmoid_extremes(alpha=0.25)
    ],
)


# ---------------------------------------------------------------------------- class-balanced
def _cb_weights(counts: Any, beta: float) -> torch.Tensor:
    """(1 - beta) / (1 - beta^n), scaled to sum to C, with Python floats."""
    n = [float(c) for c in (counts.tolist() if isinstance(counts, torch.Tensor) else counts)]
    raw = [(1.0 - beta) / (1.0 - beta**c) for c in n]
    return torch.tensor([w * len(n) / math.fsum(raw) for w in raw], dtype=torch.float64)


def _cb_ref(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    samples_per_class: Any,
    beta: float = 0.9999,
    base: str = "focal",
    gamma: float = 2.0,
    sync: str = "local",
    sample_weight: Optional[torch.Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    x = logits.double()
    if samples_per_class == "batch":
        # Effective-number weights of the classes present in this batch, mean 1 over them;
        # absent classes have no sample to weight (their entry is never read).
        present = sorted(set(target.tolist()))
        counts = [float((target == c).sum()) for c in present]
        sub = _cb_weights(counts, beta)
        w = torch.zeros(x.shape[1], dtype=torch.float64)
        w[present] = sub
    else:
        w = _cb_weights(samples_per_class, beta)
    onehot = F.one_hot(target, x.shape[1]).double()
    if base == "ce":
        per_sample = F.cross_entropy(x, target, reduction="none")
    else:
        bce = F.binary_cross_entropy_with_logits(x, onehot, reduction="none")
        if base == "focal":
            p = torch.sigmoid(x)
            p_t = p * onehot + (1 - p) * (1 - onehot)
            bce = bce * (1 - p_t) ** gamma
        per_sample = bce.sum(dim=1)
    return ref_reduce(w[target] * per_sample, reduction, sample_weight=sample_weight)


def _cb_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample(
            (randn(g, 6, 4, scale=2.0), _ids(g, 4, 6)),
            {"samples_per_class": torch.tensor([1000.0, 100.0, 10.0, 1.0], dtype=torch.float64)},
            note="focal beta 0.9999",
        ),
        Sample(
            (randn(g, 5, 3), _ids(g, 3, 5)),
            {
                "samples_per_class": [50, 20, 3],
                "beta": 0.99,
                "base": "ce",
                "sample_weight": _weights(g, 5),
            },
            note="ce beta 0.99 sample_weight",
        ),
        Sample(
            (randn(g, 5, 3), _ids(g, 3, 5)),
            {"samples_per_class": [7, 70, 700], "beta": 0.9, "base": "bce"},
            note="bce beta 0.9",
        ),
        Sample(
            (randn(g, 4, 5), _ids(g, 5, 4)),
            {"samples_per_class": [3, 1, 4, 1, 5], "beta": 0.0, "gamma": 0.5},
            note="beta 0 focal gamma 0.5",
        ),
        Sample(
            (randn(g, 3, 2), _ids(g, 2, 3)),
            {
                "samples_per_class": [2.5, 400.0],
                "beta": 0.999,
                "base": "ce",
                "sample_weight": torch.zeros(3, dtype=torch.float64),
            },
            note="all-zero sample weights",
        ),
        Sample(
            (randn(g, 7, 4, scale=2.0), torch.tensor([0, 0, 0, 2, 2, 0, 3])),
            {"samples_per_class": "batch", "beta": 0.99, "base": "focal", "gamma": 1.5},
            note="batch counts, class 1 absent",
        ),
        Sample(
            (randn(g, 5, 3), torch.tensor([2, 2, 1, 2, 1])),
            {
                "samples_per_class": "batch",
                "beta": 0.9,
                "base": "ce",
                "sync": "global",
                "sample_weight": _weights(g, 5),
            },
            note="batch counts ce, sync global without a process group",
        ),
        Sample(
            (randn(g, 4, 3), torch.tensor([1, 1, 1, 1])),
            {"samples_per_class": "batch", "beta": 0.0, "base": "bce"},
            note="batch counts, beta 0, one class",
        ),
    ]


def _cb_extremes() -> list[Sample]:
    x = _softmax_extremes()[0].args[0]
    t = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    counts = [500, 20, 1]
    samples = [
        Sample(
            (x.clone(), t.clone()),
            {"samples_per_class": counts, "base": "focal", "gamma": g},
            note=f"saturated focal gamma={g:g}",
        )
        for g in GAMMAS
    ]
    samples += [
        Sample(
            (x.clone(), t.clone()), {"samples_per_class": counts, "base": b}, note=f"saturated {b}"
        )
        for b in ("ce", "bce")
    ]
    return samples


CLASS_BALANCED = Case(
    key="class_balanced",
    module=ClassBalancedLoss,
    reference=_cb_ref,
    samples=_cb_samples,
    errors=lambda: [
        *class_id_errors("class_balanced_loss", samples_per_class=[5, 3, 1]),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": [5, 0, 1]},
            ValueError,
            r"class_balanced_loss\(\): `samples_per_class` must hold finite counts > 0; got 1 bad count\(s\), e\.g\. 0\. A class with 0 samples has effective number .* infinite weight",
            "zero count",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": torch.tensor([5.0, -2.0, 1.0])},
            ValueError,
            r"`samples_per_class` must hold finite counts > 0; got 1 bad count\(s\), e\.g\. -2",
            "negative count",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": [5, float("nan"), 1]},
            ValueError,
            r"`samples_per_class` must hold finite counts > 0",
            "NaN count",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": [5, 1]},
            ValueError,
            r"`samples_per_class` must have shape \(C,\) = \(3,\); got \(2,\)",
            "counts length",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": torch.ones(1, 3)},
            ValueError,
            r"`samples_per_class` must have shape \(C,\) = \(3,\); got \(1, 3\)",
            "2-D counts",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": "5,3,1"},
            ValueError,
            r"`samples_per_class` must be one of 'batch'; got '5,3,1'",
            "str counts",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": {"a": 1}},
            TypeError,
            r'`samples_per_class` must be a 1-D tensor, a sequence of counts or "batch"; got dict',
            "dict counts",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": "batch", "sync": "globl"},
            ValueError,
            r"class_balanced_loss\(\): `sync` must be one of 'local' \| 'global'; got 'globl'\. Did you mean 'global'\?",
            "sync typo",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": [5, "3", 1]},
            TypeError,
            r"`samples_per_class` must be a tensor or a sequence of numbers",
            "str in counts",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": [5, 3, 1], "beta": 1.0},
            ValueError,
            r"`beta` must be in \[0, 1\); got 1.0",
            "beta 1",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": [5, 3, 1], "beta": -0.1},
            ValueError,
            r"`beta` must be in \[0, 1\); got -0.1",
            "negative beta",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": [5, 3, 1], "base": "focall"},
            ValueError,
            r"`base` must be one of 'ce' \| 'bce' \| 'focal'; got 'focall'. Did you mean 'focal'\?",
            "base typo",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"samples_per_class": [5, 3, 1], "gamma": -1.0},
            ValueError,
            r"`gamma` must be in \[0, inf\); got -1.0",
            "negative gamma",
        ),
        ErrorInput(
            (torch.randn(4, 3, 2), torch.zeros(4, 2, dtype=torch.long)),
            {"samples_per_class": [5, 3, 1]},
            ValueError,
            r"`logits` must have shape \(N, C\); got \(4, 3, 2\)",
            "3-D logits",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {},
            TypeError,
            r"missing 1 required keyword-only argument: 'samples_per_class'",
            "no counts",
        ),
    ],
    extremes=_cb_extremes,
    none_shape=lambda logits, target: tuple(target.shape),
    shape_trap=lambda: (
        (torch.randn(6, 3), torch.zeros(6, 1, dtype=torch.long)),
        {"samples_per_class": [1, 2, 3]},
    ),
)

CASES = [FOCAL, SOFTMAX_FOCAL, ASL, POLY_FOCAL, CLASS_BALANCED]

__all__ = ["CASES", "class_id_errors", "logit_errors"]
