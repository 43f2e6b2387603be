"""Cases for the Lovasz hinge and Lovasz-softmax losses.

The references are brute force in float64: the Lovasz extension computed from its
definition, sum over sorted positions of error_i * (J(first i) - J(first i-1)), with J the
(weighted) Jaccard loss of a set evaluated by explicit Python loops over its pixels.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab.losses.segmentation.lovasz_hinge import LovaszHingeLoss
from losslab.losses.segmentation.lovasz_softmax import LovaszSoftmaxLoss
from tests.cases._base import Case, ErrorInput, Sample, randn


# ---------------------------------------------------------------------------- reference
def jaccard_of_set(chosen: set[int], gt: list[float], w: list[float]) -> float:
    """Jaccard loss when the pixels in ``chosen`` are mispredicted: 1 - |y \\ S| / (|y| + |S \\ y|),
    pixel masses ``w``; 0 for an empty union."""
    inter = 0.0
    union = 0.0
    for j in range(len(gt)):
        if gt[j] == 1.0:
            union += w[j]
            if j not in chosen:
                inter += w[j]
        elif j in chosen:
            union += w[j]
    return 0.0 if union == 0.0 else 1.0 - inter / union


def lovasz_by_definition(errors: list[float], gt: list[float], w: list[float]) -> float:
    """Lovasz extension of the Jaccard loss at ``errors`` (pixels of weight 0 left out)."""
    order = sorted((j for j in range(len(w)) if w[j] > 0), key=lambda j: -errors[j])
    chosen: set[int] = set()
    previous = 0.0  # J of the empty set
    total = 0.0
    for j in order:
        chosen.add(j)
        current = jaccard_of_set(chosen, gt, w)
        total += errors[j] * (current - previous)
        previous = current
    return total


def reduce_units_ref(
    per_unit: list[float],
    counted: list[bool],
    aggregate: str,
    sample_weight: Optional[Tensor],
    reduction: str,
) -> Tensor:
    if aggregate == "batch":
        return torch.tensor(per_unit[0] if counted[0] else 0.0, dtype=torch.float64)
    sw = [1.0] * len(per_unit) if sample_weight is None else sample_weight.double().tolist()
    values = torch.tensor(
        [v * s if c else 0.0 for v, c, s in zip(per_unit, counted, sw)], dtype=torch.float64
    )
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    den = sum(s for c, s in zip(counted, sw) if c)
    return values.sum() / den if den > 0 else values.sum() * 0.0


def _units(
    errors: Tensor, gt: Tensor, w: Tensor, aggregate: str
) -> list[tuple[list[float], list[float], list[float]]]:
    """Per unit lists for one class: errors, gt, w are (B, N) float64."""
    if aggregate == "batch":
        return [(errors.reshape(-1).tolist(), gt.reshape(-1).tolist(), w.reshape(-1).tolist())]
    return [(e.tolist(), t.tolist(), m.tolist()) for e, t, m in zip(errors, gt, w)]


def hinge_reference(
    logits: Tensor,
    target: Tensor,
    *,
    ignore_index: Optional[int] = None,
    aggregate: str = "image",
    sync: str = "local",  # without a process group "global" is "local"
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    b = logits.shape[0]
    x = logits.double().reshape(b, -1)
    t = target.double().reshape(b, -1)
    valid = torch.ones_like(t) if ignore_index is None else (t != ignore_index).double()
    t = t * valid
    errors = torch.clamp(1.0 - x * (2.0 * t - 1.0), min=0.0)  # relu: sorting order unchanged
    w = valid.clone()
    if sample_weight is not None and aggregate == "batch":
        w = w * sample_weight.double().reshape(-1, 1)
    per_unit = [lovasz_by_definition(e, g, m) for e, g, m in _units(errors, t, w, aggregate)]
    return reduce_units_ref(per_unit, [True] * len(per_unit), aggregate, sample_weight, reduction)


def softmax_reference(
    logits: Tensor,
    target: Tensor,
    *,
    mode: str = "multiclass",
    activation: Optional[str] = "auto",
    ignore_index: Optional[int] = None,
    classes: Optional[list[int]] = None,
    include_background: bool = True,
    aggregate: str = "image",
    present_only: bool = True,
    sync: str = "local",  # without a process group "global" is "local"
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    b, c = logits.shape[:2]
    x = logits.double().reshape(b, c, -1)
    act = {"binary": "sigmoid", "multilabel": "sigmoid", "multiclass": "softmax"}[mode]
    act = act if activation == "auto" else activation
    p = torch.softmax(x, 1) if act == "softmax" else torch.sigmoid(x) if act == "sigmoid" else x
    if target.is_floating_point() and target.shape == logits.shape:
        t = target.double().reshape(b, c, -1)
        valid = torch.ones_like(t) if ignore_index is None else (t != ignore_index).double()
        t = t * valid
    else:
        ids = target.reshape(b, 1, -1)
        valid = torch.ones(ids.shape, dtype=torch.float64)
        if ignore_index is not None:
            valid = (ids != ignore_index).double()
        t = torch.cat([(ids == k).double() for k in range(c)], 1) * valid
        valid = valid.expand(b, c, -1)
    chosen = list(range(c)) if classes is None else list(classes)
    if not include_background:
        chosen = [k for k in chosen if k != 0]
    w = valid.clone()
    if sample_weight is not None and aggregate == "batch":
        w = w * sample_weight.double().reshape(-1, 1, 1)
    n_units = 1 if aggregate == "batch" else b
    sums = [0.0] * n_units
    counts = [0] * n_units
    for k in chosen:
        units = _units((t[:, k] - p[:, k]).abs(), t[:, k], w[:, k], aggregate)
        for u, (e, g, m) in enumerate(units):
            present = sum(gi * mi for gi, mi in zip(g, m)) > 0
            if present_only and not present:
                continue
            sums[u] += lovasz_by_definition(e, g, m)
            counts[u] += 1
    per_unit = [s / n if n else 0.0 for s, n in zip(sums, counts)]
    return reduce_units_ref(per_unit, [n > 0 for n in counts], aggregate, sample_weight, reduction)


# ---------------------------------------------------------------------------- inputs
def _randint(g: torch.Generator, high: int, *shape: int) -> Tensor:
    return torch.randint(0, high, shape, generator=g)


def _bits(g: torch.Generator, *shape: int) -> Tensor:
    return (torch.rand(*shape, generator=g, dtype=torch.float64) < 0.5).double()


def _hinge_samples(g: torch.Generator) -> list[Sample]:
    ids = _randint(g, 2, 4, 3, 4)
    ids[0, 0, :3] = 255
    ids[2, 1:, :] = 255
    mixed = _randint(g, 2, 3, 3, 3)
    mixed[0] = 0  # empty target
    mixed[1] = 255  # all ignored
    dense_ign = _bits(g, 3, 1, 3, 4)
    dense_ign[1, 0, 0, :2] = 255.0
    return [
        Sample((randn(g, 3, 1, 4, 5, scale=2.0), _bits(g, 3, 1, 4, 5)), note="float target"),
        Sample(
            (randn(g, 4, 1, 3, 4, scale=2.0), ids),
            {"ignore_index": 255, "sample_weight": torch.rand(4, generator=g, dtype=torch.float64)},
            note="ids ignore 255 sample_weight",
        ),
        Sample(
            (randn(g, 2, 1, 2, 3, 4, scale=2.0), _bits(g, 2, 1, 2, 3, 4)),
            {"aggregate": "batch", "sample_weight": torch.tensor([0.5, 2.0], dtype=torch.float64)},
            note="3d batch sample_weight",
            none_shape=(),
        ),
        Sample(
            (randn(g, 3, 1, 3, 3, scale=2.0), mixed),
            {"ignore_index": 255},
            note="empty and all-ignored images",
        ),
        Sample(
            (randn(g, 3, 1, 3, 4, scale=2.0), dense_ign),
            {"ignore_index": 255, "aggregate": "batch"},
            note="dense ignore batch",
            none_shape=(),
        ),
        Sample(
            (randn(g, 3, 1, 3, 4, scale=2.0), _bits(g, 3, 1, 3, 4)),
            {"aggregate": "batch", "sync": "global"},
            note="sync global batch (one process: local)",
            none_shape=(),
        ),
    ]


def _softmax_samples(g: torch.Generator) -> list[Sample]:
    ids = _randint(g, 4, 3, 3, 4)
    ids_ign = _randint(g, 3, 3, 3, 4)
    ids_ign[0, 0] = 255
    ids_ign[1] = 255  # all ignored: no present class
    ids3 = _randint(g, 3, 2, 2, 3, 3)
    ml = _bits(g, 2, 3, 4, 4)
    ml[0, 1, :2, :] = 255.0
    ml[1, 2] = 0.0  # absent class in image 1
    bin_t = _bits(g, 3, 1, 4, 4)
    bin_t[0] = 0.0  # empty image
    onehot = torch.nn.functional.one_hot(_randint(g, 3, 2, 4, 3), 3).permute(0, 3, 1, 2).double()
    return [
        Sample((randn(g, 3, 4, 3, 4, scale=2.0), ids), note="multiclass ids"),
        Sample(
            (randn(g, 3, 3, 3, 4, scale=2.0), ids_ign),
            {
                "ignore_index": 255,
                "present_only": False,
                "sample_weight": torch.rand(3, generator=g, dtype=torch.float64),
            },
            note="ids 255 all classes sample_weight",
        ),
        Sample(
            (randn(g, 3, 3, 3, 4, scale=2.0), ids_ign),
            {
                "ignore_index": 255,
                "sample_weight": torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
            },
            note="ids 255 present all-ignored image",
        ),
        Sample(
            (randn(g, 2, 3, 2, 3, 3, scale=2.0), ids3),
            {
                "aggregate": "batch",
                "classes": [1, 2],
                "sample_weight": torch.tensor([0.5, 1.5], dtype=torch.float64),
            },
            note="3d batch classes sample_weight",
            none_shape=(),
        ),
        Sample(
            (randn(g, 2, 3, 4, 4, scale=2.0), ml),
            {"mode": "multilabel", "ignore_index": 255, "include_background": False},
            note="multilabel ignore no background",
        ),
        Sample(
            (randn(g, 3, 1, 4, 4, scale=2.0), bin_t),
            {"mode": "binary", "present_only": False},
            note="binary empty image all",
        ),
        Sample(
            (randn(g, 2, 3, 4, 3, scale=2.0), onehot),
            {"activation": "softmax", "aggregate": "batch"},
            note="dense one-hot batch",
            none_shape=(),
        ),
        Sample(
            (randn(g, 3, 3, 3, 4, scale=2.0), ids_ign),
            {
                "ignore_index": 255,
                "aggregate": "batch",
                "sync": "global",
                "sample_weight": torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64),
            },
            note="sync global batch ignore sample_weight (one process: local)",
            none_shape=(),
        ),
        Sample(
            (randn(g, 3, 4, 3, 4, scale=2.0), ids),
            {"sync": "global"},
            note="sync global image mean (one process: local)",
        ),
    ]


def _extreme_logits(*shape: int) -> Tensor:
    values = torch.tensor([30.0, -30.0, 1e4, -1e4, 0.0, 15.0])
    n = 1
    for s in shape:
        n *= s
    return values.repeat(n // len(values) + 1)[:n].reshape(shape).double()


def _hinge_extremes() -> list[Sample]:
    x = _extreme_logits(2, 1, 3, 4)
    t = (torch.arange(24).reshape(2, 1, 3, 4) % 3 == 0).double()
    ids = (torch.arange(24).reshape(2, 3, 4) % 2).long()
    ids[1] = 255
    return [
        Sample((x, t), note="logits +-30 +-1e4"),
        Sample((x, t), {"aggregate": "batch"}, note="batch +-1e4"),
        Sample((x, ids), {"ignore_index": 255}, note="+-1e4 with all-ignored image"),
        Sample((x, torch.full_like(ids, 255)), {"ignore_index": 255}, note="all ignored"),
    ]


def _softmax_extremes() -> list[Sample]:
    x = _extreme_logits(2, 3, 3, 4)
    ids = (torch.arange(24).reshape(2, 3, 4) % 3).long()
    ids[1, 0] = 255
    ml = (torch.arange(72).reshape(2, 3, 3, 4) % 2).double()
    return [
        Sample((x, ids), {"ignore_index": 255}, note="multiclass +-30 +-1e4"),
        Sample(
            (x, ids),
            {"ignore_index": 255, "aggregate": "batch", "present_only": False},
            note="batch all classes +-1e4",
        ),
        Sample((x, ml), {"mode": "multilabel"}, note="multilabel +-1e4"),
        Sample((x, torch.full_like(ids, 255)), {"ignore_index": 255}, note="all ignored"),
    ]


# ---------------------------------------------------------------------------- errors
def _hinge_errors() -> list[ErrorInput]:
    x = torch.randn(2, 1, 3, 3)
    t = (torch.rand(2, 1, 3, 3) < 0.5).float()
    ids = torch.randint(0, 2, (2, 3, 3))
    fn = r"lovasz_hinge_loss\(\): "
    e = ErrorInput
    return [
        e(
            (x, t[:1]),
            {},
            ValueError,
            fn + r"`target` must have shape \(2, 3, 3\) \(class ids\) or \(2, 1, 3, 3\)",
            "batch mismatch",
        ),
        e(
            (x.long(), t),
            {},
            TypeError,
            fn + r"`logits` must be a floating-point tensor; got dtype int64",
            "int logits",
        ),
        e(
            (x.tolist(), t),
            {},
            TypeError,
            fn + r"`logits` must be a torch.Tensor; got list",
            "list logits",
        ),
        e(
            (x, 1.0),
            {},
            TypeError,
            fn + r"`target` must be a torch.Tensor; got float",
            "float target",
        ),
        e(
            (torch.randn(2, 2, 3, 3), t),
            {},
            ValueError,
            r"`logits` must have one channel",
            "two channels",
        ),
        e(
            (torch.randn(2, 1), torch.ones(2, 1)),
            {},
            ValueError,
            r"`logits` must have shape \(B, C, \*spatial\)",
            "no spatial dim",
        ),
        e(
            (x, t * 0.5),
            {},
            ValueError,
            fn + r"`target` must hold hard labels in \{0, 1\}.*soft value",
            "soft target",
        ),
        e((x, t * 2.0), {}, ValueError, r"`target` must have values in \[0, 1\]", "target 2.0"),
        e(
            (x, ids * 2),
            {},
            ValueError,
            r"`target` must hold class ids in \[0, 2\).*Set ignore_index=2",
            "id 2",
        ),
        e(
            (x, ids.bool()),
            {},
            TypeError,
            r"`target` must be integer class ids or a floating-point mask",
            "bool ids",
        ),
        e(
            (x, t.long()),
            {},
            TypeError,
            r"`target` must be floating point when it has `logits`' shape",
            "int dense",
        ),
        e(
            (x, t),
            {"reduction": "summ"},
            ValueError,
            r"`reduction` must be one of .*Did you mean 'sum'\?",
            "reduction",
        ),
        e(
            (x, t),
            {"aggregate": "images"},
            ValueError,
            r"`aggregate` must be one of 'image' \| 'batch'.*Did you mean 'image'",
            "aggregate typo",
        ),
        e(
            (x, t),
            {"ignore_index": 255.0},
            TypeError,
            r"`ignore_index` must be an int or None; got float",
            "float ignore",
        ),
        e(
            (x, t),
            {"sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(2,\)",
            "sample_weight length",
        ),
        e(
            (x, t),
            {"sample_weight": -torch.ones(2)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
        e(
            (x, torch.full_like(t, float("nan"))),
            {},
            ValueError,
            r"`target` must have values in",
            "NaN target",
        ),
        e(
            (x, t),
            {"sync": "globl"},
            ValueError,
            fn + r"`sync` must be one of 'local' \| 'global'.*Did you mean 'global'",
            "sync typo",
        ),
    ]


def _softmax_errors() -> list[ErrorInput]:
    x = torch.randn(2, 3, 3, 3)
    ids = torch.randint(0, 3, (2, 3, 3))
    ml = (torch.rand(2, 3, 3, 3) < 0.5).float()
    fn = r"lovasz_softmax_loss\(\): "
    e = ErrorInput
    return [
        e(
            (x, ids),
            {"mode": "multiclas"},
            ValueError,
            fn + r"`mode` must be one of .*Did you mean 'multiclass'",
            "mode typo",
        ),
        e(
            (torch.randn(2, 1, 3, 3), ids),
            {"mode": "binary", "activation": "softmax"},
            ValueError,
            r"`activation` must be 'sigmoid' or None in mode='binary'",
            "softmax in binary",
        ),
        e(
            (x, ids),
            {"present_only": "yes"},
            ValueError,
            r"`present_only` must be one of True \| False",
            "present_only str",
        ),
        e(
            (x, ids),
            {"classes": [5]},
            ValueError,
            r"`classes` must hold channel indices below C = 3",
            "class 5",
        ),
        e(
            (x, ids),
            {"classes": [0, 1], "include_background": False},
            ValueError,
            r"`classes` must not contain 0 when include_background=False",
            "class 0 no background",
        ),
        e(
            (x, ml),
            {"ignore_index": 255},
            ValueError,
            r"`ignore_index` must be None for a dense multiclass target",
            "ignore on dense multiclass",
        ),
        e(
            (torch.randn(2, 1, 3, 3), ids),
            {},
            ValueError,
            r"`logits` must have at least 2 channels",
            "one channel",
        ),
        e((x, ids + 1), {}, ValueError, fn + r"`target` must hold class ids in \[0, 3\)", "id 3"),
        e(
            (x, ml * 0.5),
            {"mode": "multilabel"},
            ValueError,
            fn + r"`target` must hold hard labels",
            "soft target",
        ),
        e(
            (x, ml.long()),
            {"mode": "multilabel"},
            TypeError,
            r"`target` must be floating point",
            "int multilabel",
        ),
        e(
            (x, ids),
            {"aggregate": "pixel"},
            ValueError,
            r"`aggregate` must be one of 'image' \| 'batch'",
            "aggregate",
        ),
        e(
            (x, ids),
            {"reduction": "avg"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'",
            "reduction",
        ),
        e(
            (x, ids),
            {"sample_weight": torch.ones(2, 1)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(2,\)",
            "sample_weight (B,1)",
        ),
        e(
            (x.long(), ids),
            {},
            TypeError,
            fn + r"`logits` must be a floating-point tensor",
            "int logits",
        ),
        e(
            (x * 5, ids),
            {"activation": None},
            ValueError,
            r"`logits` must have values in \[0, 1\]",
            "probs out of range",
        ),
        e((x, ids), {"classes": (1.5,)}, TypeError, r"`classes` must hold ints", "float classes"),
        e(
            (x, ids[:, :2]),
            {},
            ValueError,
            r"`target` must have shape \(2, 3, 3\) \(class ids\)",
            "ids shape",
        ),
        e(
            (x, ids),
            {"sync": "all"},
            ValueError,
            fn + r"`sync` must be one of 'local' \| 'global'; got 'all'",
            "sync",
        ),
    ]


def _trap(kwargs: dict[str, Any], channels: int):  # type: ignore[no-untyped-def]
    return lambda: ((torch.randn(6, channels, 1), torch.zeros(6, dtype=torch.long)), kwargs)


def _per_image(logits: Tensor, target: Tensor) -> tuple[int, ...]:
    return (logits.shape[0],)


LOVASZ_HINGE = Case(
    key="lovasz_hinge",
    module=LovaszHingeLoss,
    reference=hinge_reference,
    samples=_hinge_samples,
    errors=_hinge_errors,
    extremes=_hinge_extremes,
    none_shape=_per_image,
    shape_trap=_trap({}, 1),
    low_precision_rtol=5e-3,
)

LOVASZ_SOFTMAX = Case(
    key="lovasz_softmax",
    module=LovaszSoftmaxLoss,
    reference=softmax_reference,
    samples=_softmax_samples,
    errors=_softmax_errors,
    extremes=_softmax_extremes,
    none_shape=_per_image,
    shape_trap=_trap({}, 2),
    low_precision_rtol=5e-3,
)

CASES = [LOVASZ_HINGE, LOVASZ_SOFTMAX]
