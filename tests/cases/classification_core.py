"""Cases for BCE (logits and probabilities), cross-entropy and Poly-1 cross-entropy.

References are torch built-ins in float64 (``binary_cross_entropy_with_logits`` with an
explicitly reshaped ``pos_weight``, ``cross_entropy``) or the plain formula, combined with
masks and sample weights by hand; "auto" pos_weight is counted class by class in Python.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.losses.classification.bce import BCEWithLogitsLoss
from losslab.losses.classification.bce_probs import BCEProbsLoss
from losslab.losses.classification.cross_entropy import CrossEntropyLoss
from losslab.losses.classification.poly_ce import PolyCrossEntropyLoss
from tests.cases._base import Case, ErrorInput, Sample, rand, randn, ref_reduce

F64 = torch.float64


def _bernoulli(g: torch.Generator, *shape: int, p: float = 0.4) -> Tensor:
    return (torch.rand(*shape, generator=g, dtype=F64) < p).to(F64)


def _ids(g: torch.Generator, num_classes: int, *shape: int) -> Tensor:
    return torch.randint(0, num_classes, shape, generator=g)


def _sprinkle(g: torch.Generator, target: Tensor, value: float, frac: float = 0.25) -> Tensor:
    """``target`` with about ``frac`` of its positions set to ``value`` (an ignore label)."""
    hit = torch.rand(target.shape, generator=g) < frac
    hit.view(-1)[0] = True
    return torch.where(hit, torch.full_like(target, value), target)


# ---------------------------------------------------------------------------- shared errors
def binary_errors(fn: str, first: str, **good: Any) -> list[ErrorInput]:
    """Bad inputs of a pointwise binary loss (``first`` is ``logits`` or ``probs``)."""
    p, t = torch.rand(4, 3), (torch.rand(4, 3) > 0.5).float()
    col, flat = torch.rand(4, 1), (torch.rand(4) > 0.5).float()
    return [
        ErrorInput(
            (col, flat),
            dict(good),
            ValueError,
            rf"{fn}\(\): `target` must have the same shape as `{first}` \(4, 1\); got \(4,\)",
            "(B,1) vs (B,)",
        ),
        ErrorInput(
            (flat, col),
            dict(good),
            ValueError,
            rf"`target` must have the same shape as `{first}` \(4,\); got \(4, 1\)",
            "(B,) vs (B,1)",
        ),
        ErrorInput(
            (p, t[:2]),
            dict(good),
            ValueError,
            r"`target` must have the same shape",
            "batch mismatch",
        ),
        ErrorInput(
            (p.double().long(), t),
            dict(good),
            TypeError,
            rf"`{first}` must be a floating-point tensor; got dtype int64",
            f"int {first}",
        ),
        ErrorInput(
            (p, t.long()),
            dict(good),
            TypeError,
            r"`target` must be a floating-point tensor; got dtype int64",
            "int target",
        ),
        ErrorInput(
            (p, t.bool()),
            dict(good),
            TypeError,
            r"`target` must be a floating-point tensor; got dtype bool",
            "bool target",
        ),
        ErrorInput(
            (p.tolist(), t),
            dict(good),
            TypeError,
            rf"`{first}` must be a torch.Tensor; got list",
            f"list {first}",
        ),
        ErrorInput(
            (p, 1.0),
            dict(good),
            TypeError,
            r"`target` must be a torch.Tensor; got float",
            "float target",
        ),
        ErrorInput(
            (p, t * 1.5),
            dict(good),
            ValueError,
            r"`target` must have values in \[0, 1\]; got \d+ value\(s\) outside, e.g. 1.5",
            "target > 1",
        ),
        ErrorInput(
            (p, t - 0.5),
            dict(good),
            ValueError,
            r"`target` must have values in \[0, 1\]",
            "target < 0",
        ),
        ErrorInput(
            (p, torch.full((4, 3), float("nan"))),
            dict(good),
            ValueError,
            r"`target` must have values in \[0, 1\]; got 12 value",
            "NaN target",
        ),
        ErrorInput(
            (p, -t),
            {**good, "ignore_index": 255},
            ValueError,
            r"`target` must have values in \[0, 1\]",
            "-1 is not ignore_index 255",
        ),
        ErrorInput(
            (p, t),
            {**good, "ignore_index": 1},
            ValueError,
            r"`ignore_index` must be None or an int outside \[0, 1\]",
            "ignore_index 1",
        ),
        ErrorInput(
            (p, t),
            {**good, "ignore_index": 1.5},
            TypeError,
            r"`ignore_index` must be an int or None; got float",
            "float ignore_index",
        ),
        ErrorInput(
            (p, t),
            {**good, "label_smoothing": 1.0},
            ValueError,
            r"`label_smoothing` must be in \[0, 1\); got 1.0",
            "label_smoothing 1",
        ),
        ErrorInput(
            (p, t),
            {**good, "label_smoothing": -0.1},
            ValueError,
            r"`label_smoothing` must be in \[0, 1\); got -0.1",
            "label_smoothing -0.1",
        ),
        ErrorInput(
            (p, t),
            {**good, "reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. Did you mean 'mean'\?",
            "reduction typo",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": torch.ones(4, 1)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\).*got \(4, 1\)",
            "sample_weight (N,1)",
        ),
        ErrorInput(
            (p, t),
            {**good, "sample_weight": -torch.ones(4)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
    ]


def class_id_errors(fn: str, *, soft_allowed: bool, **good: Any) -> list[ErrorInput]:
    """Bad inputs of a softmax loss over (logits (N, C, ...), class ids (N, ...))."""
    x, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    errors = [
        ErrorInput(
            (x.tolist(), y),
            dict(good),
            TypeError,
            rf"{fn}\(\): `logits` must be a torch.Tensor; got list",
            "list logits",
        ),
        ErrorInput(
            (x.long(), y),
            dict(good),
            TypeError,
            r"`logits` must be a floating-point tensor; got dtype int64",
            "int logits",
        ),
        ErrorInput(
            (x, [0, 2, 1, 1]),
            dict(good),
            TypeError,
            r"`target` must be a torch.Tensor; got list",
            "list target",
        ),
        ErrorInput(
            (x, y.float()),
            dict(good),
            TypeError,
            r"`target` must be an integer tensor of class ids; got dtype float32. Convert it with `.long\(\)`",
            "float ids",
        ),
        ErrorInput(
            (x, y.bool()),
            dict(good),
            TypeError,
            r"`target` must be an integer tensor of class ids; got dtype bool",
            "bool ids",
        ),
        ErrorInput(
            (x, torch.tensor([0, 3, 1, 1])),
            dict(good),
            ValueError,
            r"`target` must hold class ids in \[0, 3\); got 1 id\(s\) outside, e.g. 3. Set ignore_index=3",
            "id == C",
        ),
        ErrorInput(
            (x, torch.tensor([0, -1, 1, 1])),
            dict(good),
            ValueError,
            r"`target` must hold class ids in \[0, 3\); got 1 id\(s\) outside, e.g. -1",
            "negative id",
        ),
        ErrorInput(
            (x, torch.tensor([0, 255, 7, 1])),
            {**good, "ignore_index": 255},
            ValueError,
            r"`target` must hold class ids in \[0, 3\) or ignore_index=255; got 1 id\(s\) outside, e.g. 7",
            "out of range with ignore_index",
        ),
        ErrorInput(
            (x, torch.tensor([255, 255, 255, 1])),
            dict(good),
            ValueError,
            r"must hold class ids in \[0, 3\); got 3 id\(s\) outside, e.g. 255. Set ignore_index=255",
            "255 without ignore_index",
        ),
        ErrorInput(
            (x, y[:, None]),
            dict(good),
            ValueError,
            r"`target` must have shape \(4,\) .*; got \(4, 1\)",
            "ids (B,1) vs logits (B,C)",
        ),
        ErrorInput(
            (x, y[:3]), dict(good), ValueError, r"`target` must have shape \(4,\)", "batch mismatch"
        ),
        ErrorInput(
            (torch.randn(4, 1), torch.zeros(4, dtype=torch.long)),
            dict(good),
            ValueError,
            r"`logits` must have at least 2 classes along dim 1; got \(4, 1\). For one logit per sample use bce_with_logits_loss",
            "one class (B,1)",
        ),
        ErrorInput(
            (torch.randn(4), y),
            dict(good),
            ValueError,
            r"`logits` must have shape \(N, C\) or \(N, C, d1, ...\), classes along dim 1; got \(4,\)",
            "1-D logits",
        ),
        ErrorInput(
            (x, F.one_hot(y, 3)),
            dict(good),
            ValueError,
            r"`target` must have shape \(4,\).*; got \(4, 3\)",
            "int one-hot",
        ),
        ErrorInput(
            (x, y),
            {**good, "class_weight": torch.ones(2)},
            ValueError,
            r"`class_weight` must have shape \(C,\) = \(3,\); got \(2,\)",
            "class_weight length",
        ),
        ErrorInput(
            (x, y),
            {**good, "class_weight": torch.tensor([1.0, -1.0, 1.0])},
            ValueError,
            r"`class_weight` must have values in \[0, inf\)",
            "negative class_weight",
        ),
        ErrorInput(
            (x, y),
            {**good, "class_weight": torch.ones(3, dtype=torch.long)},
            TypeError,
            r"`class_weight` must be a floating-point tensor; got dtype int64",
            "int class_weight",
        ),
        ErrorInput(
            (x, y),
            {**good, "class_weight": torch.ones(1, 3)},
            ValueError,
            r"`class_weight` must have shape \(C,\) = \(3,\); got \(1, 3\)",
            "2-D class_weight",
        ),
        ErrorInput(
            (x, y),
            {**good, "class_weight": "balanced"},
            TypeError,
            r"`class_weight` must be a 1-D tensor or a sequence of numbers; got str",
            "str class_weight",
        ),
        ErrorInput(
            (x, y),
            {**good, "label_smoothing": 1.0},
            ValueError,
            r"`label_smoothing` must be in \[0, 1\); got 1.0",
            "label_smoothing 1",
        ),
        ErrorInput(
            (x, y),
            {**good, "label_smoothing": -0.1},
            ValueError,
            r"`label_smoothing` must be in \[0, 1\); got -0.1",
            "label_smoothing -0.1",
        ),
        ErrorInput(
            (x, y),
            {**good, "ignore_index": 1.5},
            TypeError,
            r"`ignore_index` must be an int or None; got float",
            "float ignore_index",
        ),
        ErrorInput(
            (x, y),
            {**good, "ignore_index": True},
            TypeError,
            r"`ignore_index` must be an int or None; got bool",
            "bool ignore_index",
        ),
        ErrorInput(
            (x, y),
            {**good, "reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'. Did you mean 'mean'\?",
            "reduction typo",
        ),
        ErrorInput(
            (x, y),
            {**good, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (x, y),
            {**good, "sample_weight": torch.ones(4, 1)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(4,\).*got \(4, 1\)",
            "sample_weight (N,1)",
        ),
        ErrorInput(
            (x, y),
            {**good, "sample_weight": -torch.ones(4)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
    ]
    if soft_allowed:
        soft = torch.softmax(torch.randn(4, 3), 1)
        errors += [
            ErrorInput(
                (x, soft * 2.0),
                dict(good),
                ValueError,
                r"`target` must have values in \[0, 1\]",
                "soft target > 1",
            ),
            ErrorInput(
                (x, soft - 0.5),
                dict(good),
                ValueError,
                r"`target` must have values in \[0, 1\]",
                "soft target < 0",
            ),
            ErrorInput(
                (x, torch.full((4, 3), float("nan"))),
                dict(good),
                ValueError,
                r"`target` must have values in \[0, 1\]",
                "NaN soft target",
            ),
            ErrorInput(
                (x, soft[:, :2]),
                dict(good),
                ValueError,
                r"`target` must have shape \(4,\) \(class ids\) or \(4, 3\) \(probabilities\)",
                "soft target with C-1 columns",
            ),
            ErrorInput(
                (torch.randn(4, 1), torch.rand(4)),
                dict(good),
                ValueError,
                r"\(4, 1\)",
                "one logit vs (B,) float target",
            ),
        ]
    else:
        errors += [
            ErrorInput(
                (x, torch.softmax(x, 1)),
                dict(good),
                ValueError,
                r"`target` must have shape \(4,\) \(class ids\), as `logits` \(4, 3\) implies; got \(4, 3\). Pass class ids",
                "soft target refused",
            ),
        ]
    return errors


def _ids_trap() -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Class ids as a (B, 1) column against (B, C) logits."""
    return (torch.randn(6, 4), torch.zeros(6, 1, dtype=torch.long)), {}


def _ids_none_shape(logits: Tensor, target: Tensor) -> tuple[int, ...]:
    return (
        tuple(target.shape)
        if not target.is_floating_point()
        else (logits.shape[0], *logits.shape[2:])
    )


# ---------------------------------------------------------------------------- bce (logits)
def _hand_auto(y: Tensor, mask: Optional[Tensor]) -> Tensor:
    """n_neg / n_pos per class (dim 1), counted one class at a time; 1.0 if either is 0."""
    valid = torch.ones_like(y, dtype=torch.bool) if mask is None else mask
    if y.dim() < 2:
        classes = [(y[valid])]
    else:
        classes = [y.select(1, c)[valid.select(1, c)] for c in range(y.shape[1])]
    out = []
    for values in classes:
        n_pos = float(values.sum())
        n_neg = float((1 - values).sum())
        out.append(n_neg / n_pos if n_pos > 0 and n_neg > 0 else 1.0)
    return torch.tensor(out if y.dim() >= 2 else out[0], dtype=F64)


def _bce_ref(
    logits,
    target,
    *,
    pos_weight=None,
    label_smoothing=0.0,
    ignore_index=None,
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    mask = None if ignore_index is None else target != ignore_index
    y = target if mask is None else torch.where(mask, target, torch.zeros_like(target))
    if isinstance(pos_weight, str):
        pw = _hand_auto(y, mask)
    elif pos_weight is None or isinstance(pos_weight, (int, float)):
        pw = None if pos_weight is None else torch.tensor(float(pos_weight), dtype=F64)
    else:
        pw = torch.as_tensor(pos_weight, dtype=F64)
    if pw is not None and pw.dim() == 1:
        # torch aligns pos_weight with the LAST dim; reshape it to (C, 1, ..., 1) for dim 1.
        pw = pw.reshape((-1,) + (1,) * (logits.dim() - 2))
    y = y * (1 - label_smoothing) + label_smoothing / 2
    loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none")
    return ref_reduce(loss, reduction, sample_weight=sample_weight, mask=mask)


def _bce_samples(g: torch.Generator) -> list[Sample]:
    soft4d = rand(g, 3, 2, 4, 2)
    no_pos = _bernoulli(g, 6, 3)
    no_pos[:, 2] = 0.0  # class 2 has no positive: "auto" gives 1.0
    no_pos[:, 0] = 1.0  # class 0 has no negative: "auto" gives 1.0
    return [
        Sample(
            (randn(g, 5, 3, scale=2.0), _bernoulli(g, 5, 3)),
            {"pos_weight": torch.tensor([0.5, 2.0, 3.0], dtype=F64)},
            note="2d pos_weight tensor",
        ),
        Sample(
            (randn(g, 3, 2, 4, 2, scale=3.0), _sprinkle(g, soft4d, 255.0)),
            {
                "pos_weight": [2.5, 0.5],
                "ignore_index": 255,
                "sample_weight": rand(g, 3, low=0.2, high=2.0),
            },
            note="(B,C,H,W=C) pos_weight along dim 1 ignore 255 soft",
        ),
        Sample(
            (randn(g, 8, scale=2.0), _bernoulli(g, 8, p=0.3)),
            {"pos_weight": "auto", "label_smoothing": 0.1},
            note="1d auto smoothing",
            batch_split=False,
        ),
        Sample(
            (randn(g, 6, 4), rand(g, 6, 4)),
            {
                "pos_weight": 2.0,
                "label_smoothing": 0.2,
                "sample_weight": torch.tensor([1.0, 0.0, 2.0, 0.5, 0.0, 1.0], dtype=F64),
            },
            note="soft float pos_weight smoothing",
        ),
        Sample(
            (randn(g, 6, 3, scale=4.0), _sprinkle(g, no_pos, -1.0, 0.2)),
            {"pos_weight": "auto", "ignore_index": -1},
            note="auto per class ignore -1",
            batch_split=False,
        ),
        Sample(
            (randn(g, 4, 2), torch.full((4, 2), -1.0, dtype=F64)),
            {"ignore_index": -1, "pos_weight": 3.0},
            note="all ignored",
        ),
    ]


def _bce_extremes() -> list[Sample]:
    x = torch.tensor([[0.0, 30.0, -30.0], [1e4, -1e4, 1e4], [-1e4, 30.0, -30.0], [5.0, -5.0, 0.0]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.5, 1.0, 0.0]])
    return [
        Sample(
            (x.clone(), y.clone()),
            {"pos_weight": [3.0, 0.5, 1.0], "label_smoothing": 0.1},
            note="logits +-30 +-1e4",
        ),
        Sample((x.clone(), y.clone()), {"pos_weight": "auto"}, note="auto at extremes"),
        Sample(
            (x.clone(), torch.full((4, 3), 255.0)),
            {"ignore_index": 255, "pos_weight": "auto"},
            note="all ignored",
        ),
    ]


BCE = Case(
    key="bce",
    module=BCEWithLogitsLoss,
    reference=_bce_ref,
    samples=_bce_samples,
    extremes=_bce_extremes,
    errors=lambda: [
        *binary_errors("bce_with_logits_loss", "logits"),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": torch.ones(2)},
            ValueError,
            r"`pos_weight` must have shape \(C,\) = \(3,\), aligned with dim 1 of `logits` \(4, 3\); got \(2,\)",
            "pos_weight length",
        ),
        ErrorInput(
            (torch.randn(4, 3, 5), torch.ones(4, 3, 5)),
            {"pos_weight": torch.ones(5)},
            ValueError,
            r"`pos_weight` must have shape \(C,\) = \(3,\)",
            "pos_weight along the last dim",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": torch.tensor([1.0, -1.0, 1.0])},
            ValueError,
            r"`pos_weight` must have values in \(0, inf\)",
            "negative pos_weight tensor",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": torch.tensor([1.0, 0.0, 1.0])},
            ValueError,
            r"`pos_weight` must have values in \(0, inf\)",
            "zero pos_weight tensor",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": -1.0},
            ValueError,
            r"`pos_weight` must be in \(0, inf\); got -1.0",
            "negative pos_weight",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": float("inf")},
            ValueError,
            r"`pos_weight` must be a finite number",
            "inf pos_weight",
        ),
        ErrorInput(
            (torch.randn(4), torch.ones(4)),
            {"pos_weight": torch.ones(4)},
            ValueError,
            r"`pos_weight` must be a float or 'auto' for 1-D `logits`",
            "tensor pos_weight with 1-D logits",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": "atuo"},
            ValueError,
            r"`pos_weight` must be None, a positive number, a 1-D tensor \(C,\) or 'auto'; got 'atuo'. Did you mean 'auto'\?",
            "auto typo",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": torch.ones(3, dtype=torch.long)},
            TypeError,
            r"`pos_weight` must be a floating-point tensor; got dtype int64",
            "int pos_weight tensor",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": torch.ones(1, 3)},
            ValueError,
            r"`pos_weight` must be a 1-D tensor \(C,\) aligned with dim 1 of `logits`; got \(1, 3\)",
            "2-D pos_weight",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": True},
            TypeError,
            r"`pos_weight` must be None, a positive number",
            "bool pos_weight",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {"pos_weight": [1.0, "a", 2.0]},
            TypeError,
            r"`pos_weight` must be a tensor or a sequence of numbers",
            "bad sequence",
        ),
    ],
)


# ---------------------------------------------------------------------------- bce (probs)
def _bce_probs_ref(
    probs,
    target,
    *,
    eps=1e-6,
    label_smoothing=0.0,
    ignore_index=None,
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    mask = None if ignore_index is None else target != ignore_index
    y = target if mask is None else torch.where(mask, target, torch.zeros_like(target))
    y = y * (1 - label_smoothing) + label_smoothing / 2
    p = probs.to(F64)
    loss = -(
        y * torch.log(torch.clamp(p, min=eps)) + (1 - y) * torch.log(torch.clamp(1 - p, min=eps))
    )
    return ref_reduce(loss, reduction, sample_weight=sample_weight, mask=mask)


def _bce_probs_samples(g: torch.Generator) -> list[Sample]:
    edges = torch.tensor(
        [[0.0, 1.0, 0.0, 1.0], [1e-7, 1.0 - 1e-7, 0.5, 0.25], [0.999, 0.001, 0.3, 1.0]], dtype=F64
    )
    edge_y = torch.tensor(
        [[0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.5, 1.0], [1.0, 0.0, 0.0, 0.5]], dtype=F64
    )
    return [
        Sample((rand(g, 5, 3, low=0.02, high=0.98), _bernoulli(g, 5, 3)), note="2d"),
        Sample(
            (rand(g, 6, 2, 3, low=0.05, high=0.95), rand(g, 6, 2, 3)),
            {"label_smoothing": 0.1, "sample_weight": rand(g, 6, low=0.0, high=2.0)},
            note="3d soft smoothing sample_weight",
        ),
        Sample(
            (rand(g, 4, 5, low=0.01, high=0.99), _sprinkle(g, _bernoulli(g, 4, 5), 255.0)),
            {"ignore_index": 255, "sample_weight": torch.tensor([1.0, 2.0, 0.0, 0.5], dtype=F64)},
            note="ignore 255 sample_weight",
        ),
        # Exactly 0 and 1 and beyond the clamp: the value is the clamped formula; not differentiable at the clamp.
        Sample((edges, edge_y), note="exact 0 and 1", gradcheck=False),
        Sample(
            (rand(g, 5, 2, low=0.0005, high=0.9995), _bernoulli(g, 5, 2)),
            {"eps": 1e-3},
            note="eps 1e-3 clamp",
            gradcheck=False,
        ),
        Sample(
            (rand(g, 3, 2, low=0.1, high=0.9), torch.full((3, 2), -1.0, dtype=F64)),
            {"ignore_index": -1},
            note="all ignored",
        ),
    ]


def _bce_probs_extremes() -> list[Sample]:
    p = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.5, 1e-30, 1.0 - 1e-7, 0.0]])
    y = torch.tensor([[0.0, 1.0, 1.0, 0.0], [0.5, 1.0, 0.0, 0.3]])
    return [
        Sample((p.clone(), y.clone()), note="exact 0 and 1"),
        Sample(
            (p.clone(), y.clone()), {"label_smoothing": 0.2, "eps": 0.49}, note="smoothing eps 0.49"
        ),
        Sample((p.clone(), torch.full((2, 4), 255.0)), {"ignore_index": 255}, note="all ignored"),
    ]


BCE_PROBS = Case(
    key="bce_probs",
    module=BCEProbsLoss,
    reference=_bce_probs_ref,
    samples=_bce_probs_samples,
    extremes=_bce_probs_extremes,
    errors=lambda: [
        *binary_errors("bce_probs_loss", "probs"),
        ErrorInput(
            (torch.rand(4, 3) + 1.0, torch.ones(4, 3)),
            {},
            ValueError,
            r"bce_probs_loss\(\): `probs` must have values in \[0, 1\]",
            "probs > 1",
        ),
        ErrorInput(
            (torch.rand(4, 3) - 1.0, torch.ones(4, 3)),
            {},
            ValueError,
            r"`probs` must have values in \[0, 1\]",
            "probs < 0",
        ),
        ErrorInput(
            (torch.full((4, 3), float("nan")), torch.ones(4, 3)),
            {},
            ValueError,
            r"`probs` must have values in \[0, 1\]",
            "NaN probs",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.ones(4, 3)),
            {},
            ValueError,
            r"`probs` must have values in \[0, 1\].*Pass validate=False",
            "logits passed as probs",
        ),
        ErrorInput(
            (torch.rand(4, 3), torch.ones(4, 3)),
            {"eps": 0.0},
            ValueError,
            r"`eps` must be in \(0, 0.5\); got 0.0",
            "eps 0",
        ),
        ErrorInput(
            (torch.rand(4, 3), torch.ones(4, 3)),
            {"eps": 0.5},
            ValueError,
            r"`eps` must be in \(0, 0.5\); got 0.5",
            "eps 0.5",
        ),
        ErrorInput(
            (torch.rand(4, 3), torch.ones(4, 3)),
            {"eps": -1e-6},
            ValueError,
            r"`eps` must be in \(0, 0.5\)",
            "negative eps",
        ),
        ErrorInput(
            (torch.rand(4, 3), torch.ones(4, 3)),
            {"eps": "1e-6"},
            TypeError,
            r"`eps` must be a real number; got str",
            "str eps",
        ),
        ErrorInput(
            (torch.rand(4, 3), torch.ones(4, 3)),
            {"eps": torch.tensor(1e-6)},
            TypeError,
            r"`eps` must be a real number; got Tensor",
            "tensor eps",
        ),
    ],
)


# ---------------------------------------------------------------------------- cross-entropy
def _class_id_reduce(
    per: Tensor, target: Tensor, reduction: str, *, class_weight, ignore_index, sample_weight
) -> Tensor:
    """torch's per-position values (weights included) -> the documented reduction, by hand."""
    mask = (
        torch.ones_like(target, dtype=torch.bool)
        if ignore_index is None
        else target != ignore_index
    )
    safe = torch.where(mask, target, torch.zeros_like(target))
    w_y = (
        torch.ones_like(per)
        if class_weight is None
        else torch.as_tensor(class_weight, dtype=F64)[safe]
    )
    s = (
        torch.ones_like(per)
        if sample_weight is None
        else sample_weight.reshape((-1,) + (1,) * (per.dim() - 1)).expand_as(per)
    )
    weighted = torch.where(mask, per * s, torch.zeros_like(per))
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    denominator = (s * w_y * mask).sum()
    return weighted.sum() / denominator if denominator > 0 else weighted.sum() * 0.0


def _torch_ce(logits, target, class_weight, ignore_index, label_smoothing) -> Tensor:
    w = None if class_weight is None else torch.as_tensor(class_weight, dtype=F64)
    kwargs: dict[str, Any] = {"weight": w, "label_smoothing": label_smoothing, "reduction": "none"}
    if not target.is_floating_point():
        kwargs["ignore_index"] = -100 if ignore_index is None else ignore_index
    return F.cross_entropy(logits, target, **kwargs)


def _ce_ref(
    logits,
    target,
    *,
    class_weight=None,
    ignore_index=None,
    label_smoothing=0.0,
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    per = _torch_ce(logits, target, class_weight, ignore_index, label_smoothing)
    if target.is_floating_point():  # soft targets: mean over positions, as torch does
        return ref_reduce(per, reduction, sample_weight=sample_weight)
    return _class_id_reduce(
        per,
        target,
        reduction,
        class_weight=class_weight,
        ignore_index=ignore_index,
        sample_weight=sample_weight,
    )


def _ce_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 6, 4, scale=2.0), _ids(g, 4, 6)), note="2d ids"),
        Sample(
            (randn(g, 3, 4, 2, 5), _sprinkle(g, _ids(g, 4, 3, 2, 5), 255)),
            {
                "class_weight": torch.tensor([0.5, 1.0, 2.0, 0.25], dtype=F64),
                "ignore_index": 255,
                "label_smoothing": 0.1,
                "sample_weight": rand(g, 3, low=0.2, high=2.0),
            },
            note="(N,C,H,W) weights smoothing ignore 255",
        ),
        Sample(
            (randn(g, 5, 3, scale=2.0), torch.softmax(randn(g, 5, 3, scale=2.0), 1)),
            {
                "class_weight": [2.0, 1.0, 0.5],
                "label_smoothing": 0.2,
                "sample_weight": torch.tensor([1.0, 0.0, 2.0, 0.5, 1.0], dtype=F64),
            },
            note="soft targets weights smoothing",
        ),
        Sample(
            (randn(g, 7, 3), _ids(g, 3, 7)),
            {
                "ignore_index": 0,
                "sample_weight": torch.tensor([1.0, 0.0, 2.0, 0.5, 1.0, 1.0, 3.0], dtype=F64),
            },
            note="ignore a real class 0",
        ),
        Sample(
            (randn(g, 5, 3, 2, scale=15.0), _ids(g, 3, 5, 2)),
            {"label_smoothing": 0.05},
            note="large logits 3d smoothing",
        ),
        Sample(
            (randn(g, 4, 3), torch.full((4,), -1)),
            {"ignore_index": -1, "class_weight": [1.0, 2.0, 3.0], "label_smoothing": 0.1},
            note="all ignored",
        ),
    ]


def _ce_extremes() -> list[Sample]:
    x = torch.tensor([[1e4, -1e4, 0.0], [30.0, -30.0, 30.0], [-1e4, -1e4, -1e4], [0.0, 0.0, 1e4]])
    ids = torch.tensor([1, 0, 2, 0])
    soft = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    return [
        Sample(
            (x.clone(), ids.clone()),
            {"class_weight": [1.0, 0.5, 2.0], "label_smoothing": 0.1},
            note="ids logits +-1e4",
        ),
        Sample((x.clone(), soft.clone()), {"label_smoothing": 0.1}, note="soft logits +-1e4"),
        Sample(
            (x.clone(), torch.full((4,), 255)),
            {"ignore_index": 255, "class_weight": [1.0, 0.5, 2.0]},
            note="all ignored",
        ),
    ]


CE = Case(
    key="ce",
    module=CrossEntropyLoss,
    reference=_ce_ref,
    samples=_ce_samples,
    extremes=_ce_extremes,
    errors=lambda: class_id_errors("cross_entropy_loss", soft_allowed=True),
    none_shape=_ids_none_shape,
    shape_trap=_ids_trap,
)


# ---------------------------------------------------------------------------- poly-1 CE
def _poly_ref(
    logits,
    target,
    *,
    epsilon=1.0,
    class_weight=None,
    ignore_index=None,
    label_smoothing=0.0,
    sample_weight=None,
    validate=True,
    reduction="mean",
):
    per = _torch_ce(logits, target, class_weight, ignore_index, label_smoothing)
    mask = (
        torch.ones_like(target, dtype=torch.bool)
        if ignore_index is None
        else target != ignore_index
    )
    safe = torch.where(mask, target, torch.zeros_like(target))
    p_y = torch.softmax(logits, 1).gather(1, safe.unsqueeze(1)).squeeze(1)
    p_t = (1 - label_smoothing) * p_y + label_smoothing / logits.shape[1]
    w_y = (
        torch.ones_like(per)
        if class_weight is None
        else torch.as_tensor(class_weight, dtype=F64)[safe]
    )
    per = per + epsilon * w_y * (1 - p_t)
    return _class_id_reduce(
        per,
        target,
        reduction,
        class_weight=class_weight,
        ignore_index=ignore_index,
        sample_weight=sample_weight,
    )


def _poly_samples(g: torch.Generator) -> list[Sample]:
    return [
        Sample((randn(g, 6, 4, scale=2.0), _ids(g, 4, 6)), note="2d epsilon 1"),
        Sample(
            (randn(g, 3, 4, 5), _sprinkle(g, _ids(g, 4, 3, 5), 255)),
            {
                "epsilon": -1.0,
                "class_weight": torch.tensor([0.5, 1.0, 2.0, 0.25], dtype=F64),
                "ignore_index": 255,
                "label_smoothing": 0.1,
                "sample_weight": rand(g, 3, low=0.2, high=2.0),
            },
            note="epsilon -1 weights smoothing ignore 255",
        ),
        Sample(
            (randn(g, 5, 3, scale=6.0), _ids(g, 3, 5)),
            {"epsilon": 2.0, "sample_weight": torch.tensor([1.0, 0.0, 2.0, 0.5, 1.0], dtype=F64)},
            note="epsilon 2 sample_weight",
        ),
        Sample(
            (randn(g, 5, 3), _ids(g, 3, 5)),
            {"epsilon": 0.0, "class_weight": [2.0, 1.0, 0.5], "label_smoothing": 0.3},
            note="epsilon 0 is CE",
        ),
        Sample(
            (randn(g, 4, 3), torch.full((4,), 255)),
            {"ignore_index": 255, "epsilon": 3.0},
            note="all ignored",
        ),
    ]


def _poly_extremes() -> list[Sample]:
    x = torch.tensor([[1e4, -1e4, 0.0], [30.0, -30.0, 30.0], [-1e4, -1e4, -1e4], [0.0, 0.0, 1e4]])
    ids = torch.tensor([1, 0, 2, 0])
    return [
        Sample(
            (x.clone(), ids.clone()),
            {"epsilon": 2.0, "class_weight": [1.0, 0.5, 2.0], "label_smoothing": 0.1},
            note="logits +-1e4",
        ),
        Sample(
            (x.clone(), torch.tensor([0, 0, 0, 2])),
            {"epsilon": -1.0},
            note="confident right epsilon -1",
        ),
        Sample((x.clone(), torch.full((4,), -1)), {"ignore_index": -1}, note="all ignored"),
    ]


POLY_CE = Case(
    key="poly_ce",
    module=PolyCrossEntropyLoss,
    reference=_poly_ref,
    samples=_poly_samples,
    extremes=_poly_extremes,
    errors=lambda: [
        *class_id_errors("poly_cross_entropy_loss", soft_allowed=False),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"epsilon": -1.5},
            ValueError,
            r"`epsilon` must be in \[-1, inf\); got -1.5",
            "epsilon < -1",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"epsilon": float("nan")},
            ValueError,
            r"`epsilon` must be a finite number",
            "NaN epsilon",
        ),
        ErrorInput(
            (torch.randn(4, 3), torch.tensor([0, 1, 2, 0])),
            {"epsilon": "1"},
            TypeError,
            r"`epsilon` must be a real number; got str",
            "str epsilon",
        ),
    ],
    none_shape=_ids_none_shape,
    shape_trap=_ids_trap,
)

CASES = [BCE, BCE_PROBS, CE, POLY_CE]

__all__ = ["CASES", "binary_errors", "class_id_errors"]
