"""Cases for the distance-map segmentation losses (boundary, hausdorff_dt).

The references are written from the papers' formulas in float64 with
``scipy.ndimage.distance_transform_edt``, looping over images and classes (allowed in a
reference only); they share nothing with the implementation.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from losslab.losses.segmentation.boundary import BoundaryLoss
from losslab.losses.segmentation.hausdorff import HausdorffDTLoss
from tests.cases._base import Case, ErrorInput, Sample, rand, randn

# ---------------------------------------------------------------------------- reference


def _edt_to(region: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the nearest pixel of ``region`` (scipy measures to zeros)."""
    return distance_transform_edt(~region)


def ref_signed(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Kervadec's map: d(., fg) outside, -(d(., bg) - 1) inside, 0 with no contour."""
    out = np.zeros(fg.shape)
    if fg.any() and bg.any():
        out[bg] = _edt_to(fg)[bg]
        out[fg] = 1.0 - _edt_to(bg)[fg]
    return out


def ref_unsigned(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Distance to the other side: d(., bg) inside, d(., fg) outside, 0 with no contour."""
    out = np.zeros(fg.shape)
    if fg.any() and bg.any():
        out[bg] = _edt_to(fg)[bg]
        out[fg] = _edt_to(bg)[fg]
    return out


def _ref_inputs(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: str,
    activation: Any,
    ignore_index: Optional[int],
    classes: Any,
    include_background: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p, t, valid), each (B, K, *spatial) float64 / bool, over the chosen classes."""
    x = logits.detach().to(torch.float64)
    channels = x.shape[1]
    act = {"binary": "sigmoid", "multiclass": "softmax", "multilabel": "sigmoid"}[mode]
    act = act if activation == "auto" else activation
    if act == "sigmoid":
        p = 1.0 / (1.0 + torch.exp(-x))
    elif act == "softmax":
        e = torch.exp(x - x.max(dim=1, keepdim=True).values)
        p = e / e.sum(dim=1, keepdim=True)
    else:
        p = x
    if target.shape == logits.shape:
        t = target.to(torch.float64)
        valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        t = torch.where(valid, t, torch.zeros_like(t))
    else:
        ids = target.long()
        keep = (
            torch.ones_like(ids, dtype=torch.bool) if ignore_index is None else ids != ignore_index
        )
        if mode == "binary":
            t = (ids == 1).to(torch.float64).unsqueeze(1)
        else:
            t = torch.stack([(ids == c).to(torch.float64) for c in range(channels)], dim=1)
        valid = keep.unsqueeze(1).expand(t.shape)
        t = t * valid
    chosen = list(classes) if classes is not None else list(range(channels))
    if not include_background:
        chosen = [c for c in chosen if c != 0]
    return p[:, chosen], t[:, chosen], valid[:, chosen]


def _ref_reduce(
    num: np.ndarray,
    cnt: np.ndarray,
    *,
    aggregate: str,
    sample_weight: Optional[torch.Tensor],
    reduction: str,
) -> torch.Tensor:
    """num, cnt: (B, K) sums of the elementwise loss and valid counts."""
    b = num.shape[0]
    sw = np.ones(b) if sample_weight is None else sample_weight.detach().double().numpy()
    if aggregate == "batch":
        num = (num * sw[:, None]).sum(0, keepdims=True)
        cnt = (cnt * sw[:, None]).sum(0, keepdims=True)
    per_unit, counted = [], []
    for u in range(num.shape[0]):
        vals = [num[u, k] / cnt[u, k] for k in range(num.shape[1]) if cnt[u, k] > 0]
        per_unit.append(sum(vals) / len(vals) if vals else 0.0)
        counted.append(1.0 if vals else 0.0)
    per = np.array(per_unit)
    if aggregate == "batch":
        return torch.tensor(per[0], dtype=torch.float64)
    if reduction == "none":
        return torch.tensor(per * sw, dtype=torch.float64)
    if reduction == "sum":
        return torch.tensor((per * sw).sum(), dtype=torch.float64)
    w = sw * np.array(counted)
    return torch.tensor((per * w).sum() / w.sum() if w.sum() > 0 else 0.0, dtype=torch.float64)


def _ref_loss(
    kind: str,
    logits,
    target,
    *,
    mode="binary",
    activation="auto",
    ignore_index=None,
    classes=None,
    include_background=True,
    aggregate="image",
    alpha=2.0,
    sample_weight=None,
    validate=True,
    reduction="mean",
) -> torch.Tensor:
    p, t, valid = _ref_inputs(
        logits,
        target,
        mode=mode,
        activation=activation,
        ignore_index=ignore_index,
        classes=classes,
        include_background=include_background,
    )
    pn, tn, vn = p.numpy(), t.numpy(), valid.numpy()
    b, k = pn.shape[:2]
    num, cnt = np.zeros((b, k)), np.zeros((b, k))
    for i in range(b):
        for c in range(k):
            v = vn[i, c]
            fg = (tn[i, c] > 0.5) & v
            if kind == "boundary":
                elem = pn[i, c] * ref_signed(fg, v & ~fg)
            else:
                pf = (pn[i, c] > 0.5) & v
                w = ref_unsigned(fg, v & ~fg) ** alpha + ref_unsigned(pf, v & ~pf) ** alpha
                elem = (pn[i, c] - tn[i, c]) ** 2 * w
            num[i, c] = elem[v].sum()
            cnt[i, c] = v.sum()
    return _ref_reduce(
        num, cnt, aggregate=aggregate, sample_weight=sample_weight, reduction=reduction
    )


def ref_boundary(logits, target, **kwargs: Any) -> torch.Tensor:
    kwargs.pop("alpha", None)
    return _ref_loss("boundary", logits, target, **kwargs)


def ref_hausdorff_dt(logits, target, **kwargs: Any) -> torch.Tensor:
    return _ref_loss("hausdorff", logits, target, **kwargs)


# ---------------------------------------------------------------------------- samples


def _blobs(g: torch.Generator, b: int, *spatial: int, density: float = 0.35) -> torch.Tensor:
    """Boolean masks with some structure: a random box per image plus a sprinkle of pixels."""
    m = torch.rand(b, *spatial, generator=g) < density * 0.3
    for i in range(b):
        lo = [int(torch.randint(0, max(1, n // 2), (1,), generator=g)) for n in spatial]
        hi = [
            lo[j] + 1 + int(torch.randint(1, max(2, spatial[j] - lo[j]), (1,), generator=g))
            for j in range(len(spatial))
        ]
        box = tuple([i] + [slice(a, z) for a, z in zip(lo, hi)])
        m[box] = True
    return m


def _samples(g: torch.Generator, *, hausdorff: bool) -> list[Sample]:
    extra = (lambda a: {"alpha": a}) if hausdorff else (lambda a: {})
    # 0: binary 2D, class-id target
    t0 = _blobs(g, 3, 12, 10).long()
    s0 = Sample((randn(g, 3, 1, 12, 10, scale=2.0), t0), note="binary 2d ids")
    # 1: multiclass 2D ids with 255, foreground classes only, per-image weights
    ids = torch.randint(0, 3, (2, 5, 6), generator=g)
    ids[:, 1:4, 2:5] = 2
    ids[rand(g, 2, 5, 6) < 0.15] = 255
    s1 = Sample(
        (randn(g, 2, 3, 5, 6, scale=2.0), ids),
        {
            "mode": "multiclass",
            "ignore_index": 255,
            "include_background": False,
            "sample_weight": rand(g, 2, low=0.2, high=2.0),
            **extra(1.0),
        },
        note="multiclass ignore 255 no background sample_weight",
    )
    # 2: multiclass 3D, dense one-hot target, a class subset
    ids3 = torch.randint(0, 3, (2, 3, 4, 4), generator=g)
    ids3[0, 1:3, 1:3, 1:3] = 1
    onehot = torch.stack([(ids3 == c).to(torch.float64) for c in range(3)], dim=1)
    s2 = Sample(
        (randn(g, 2, 3, 3, 4, 4, scale=2.0), onehot),
        {"mode": "multiclass", "classes": [0, 2], **extra(3.5)},
        note="multiclass 3d one-hot classes",
    )
    # 3: multilabel, soft targets, elementwise ignore -1
    soft = rand(g, 2, 3, 8, 8)
    soft[rand(g, 2, 3, 8, 8) < 0.1] = -1.0
    s3 = Sample(
        (randn(g, 2, 3, 8, 8, scale=2.0), soft),
        {"mode": "multilabel", "ignore_index": -1},
        note="multilabel soft ignore -1",
    )
    # 4: probabilities, dense binary target: empty / full / normal / all-ignored images
    tb = _blobs(g, 4, 7, 7).to(torch.float64).unsqueeze(1)
    tb[0] = 0.0
    tb[1] = 1.0
    tb[3] = -1.0
    tb[2, 0, 0, :3] = -1.0
    s4 = Sample(
        (rand(g, 4, 1, 7, 7, low=0.05, high=0.95), tb),
        {
            "activation": None,
            "ignore_index": -1,
            "sample_weight": torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64),
            **extra(1.5),
        },
        note="probs empty full all-ignored images",
    )
    # 5: binary 3D ids with an ignore label
    t5 = _blobs(g, 2, 6, 7, 5).long()
    t5[1, 0] = 7
    s5 = Sample(
        (randn(g, 2, 1, 6, 7, 5, scale=2.0), t5), {"ignore_index": 7}, note="binary 3d ignore"
    )
    return [s0, s1, s2, s3, s4, s5]


def _extremes() -> list[Sample]:
    t = torch.zeros(2, 6, 6, dtype=torch.long)
    t[0, 1:4, 2:5] = 1
    full = torch.ones(2, 6, 6, dtype=torch.long)
    big = torch.full((2, 1, 6, 6), 30.0)
    big[:, :, :3] = -30.0
    ids = torch.randint(0, 3, (2, 5, 5), generator=torch.Generator().manual_seed(0))
    huge = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1)) * 1e4
    return [
        Sample((big.clone(), t.clone()), note="logits +-30"),
        Sample(
            (torch.full((2, 1, 6, 6), -30.0), torch.zeros(2, 6, 6, dtype=torch.long)),
            note="empty target empty prediction",
        ),
        Sample(
            (torch.full((2, 1, 6, 6), 30.0), torch.zeros(2, 6, 6, dtype=torch.long)),
            note="empty target full prediction",
        ),
        Sample(
            (torch.full((2, 1, 6, 6), -30.0), full.clone()), note="full target empty prediction"
        ),
        Sample(
            (big.clone(), torch.full((2, 6, 6), 255, dtype=torch.long)),
            {"ignore_index": 255},
            note="all ignored",
        ),
        Sample((huge, ids), {"mode": "multiclass"}, note="softmax logits 1e4"),
    ]


# ---------------------------------------------------------------------------- errors


def seg_errors(fn: str, **good: Any) -> list[ErrorInput]:
    """Bad inputs every distance-map loss refuses (``good``: options of a valid call)."""
    x = torch.randn(2, 1, 5, 5)
    ids = torch.randint(0, 2, (2, 5, 5))
    x3 = torch.randn(2, 3, 5, 5)
    ids3 = torch.randint(0, 3, (2, 5, 5))
    return [
        ErrorInput(
            (x.long(), ids),
            dict(good),
            TypeError,
            rf"{fn}\(\): `logits` must be a floating-point tensor; got dtype int64",
            "int logits",
        ),
        ErrorInput(
            (x.tolist(), ids),
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
            (x, ids.bool()),
            dict(good),
            TypeError,
            r"`target` must be integer class ids or a floating-point mask; got dtype bool",
            "bool target",
        ),
        ErrorInput(
            (x, ids[:, :4]),
            dict(good),
            ValueError,
            r"`target` must have shape \(2, 5, 5\) \(class ids\) or \(2, 1, 5, 5\) \(dense\).*got \(2, 4, 5\)",
            "target shape",
        ),
        ErrorInput(
            (x3, ids3),
            dict(good),
            ValueError,
            r"`logits` must have one channel \(B, 1, \*spatial\) in mode='binary'; got \(2, 3, 5, 5\)",
            "3 channels in binary",
        ),
        ErrorInput(
            (x, ids),
            {**good, "mode": "binery"},
            ValueError,
            r"`mode` must be one of .*Did you mean 'binary'\?",
            "mode typo",
        ),
        ErrorInput(
            (x, ids),
            {**good, "activation": "softmax"},
            ValueError,
            r"`activation` must be 'sigmoid' or None in mode='binary'",
            "softmax in binary",
        ),
        ErrorInput(
            (x, ids),
            {**good, "include_background": False},
            ValueError,
            r"`include_background` must be True in mode='binary'",
            "binary without background",
        ),
        ErrorInput(
            (x3, ids3),
            {**good, "mode": "multiclass", "include_background": False, "classes": [0, 1]},
            ValueError,
            r"`classes` must not contain 0 when include_background=False",
            "classes with 0",
        ),
        ErrorInput(
            (x3, ids3),
            {**good, "mode": "multiclass", "classes": [1, 5]},
            ValueError,
            r"`classes` must hold channel indices below C = 3",
            "class out of range",
        ),
        ErrorInput(
            (x3, ids3 + 2),
            {**good, "mode": "multiclass"},
            ValueError,
            r"`target` must hold class ids in \[0, 3\).*Set ignore_index=",
            "ids out of range",
        ),
        ErrorInput(
            (x, ids),
            {**good, "ignore_index": 1.5},
            TypeError,
            r"`ignore_index` must be an int or None; got float",
            "float ignore_index",
        ),
        ErrorInput(
            (x, ids.double().unsqueeze(1) * 2),
            dict(good),
            ValueError,
            r"`target` must have values in \[0, 1\]",
            "dense target above 1",
        ),
        ErrorInput(
            (x, ids),
            {**good, "aggregate": "images"},
            ValueError,
            r"`aggregate` must be one of 'image' \| 'batch'; got 'images'. Did you mean 'image'\?",
            "aggregate typo",
        ),
        ErrorInput(
            (x, ids),
            {**good, "reduction": "meen"},
            ValueError,
            r"`reduction` must be one of 'mean' \| 'sum' \| 'none'; got 'meen'",
            "reduction typo",
        ),
        ErrorInput(
            (x, ids),
            {**good, "sample_weight": torch.ones(3)},
            ValueError,
            r"`sample_weight` must have shape \(N,\) = \(2,\)",
            "sample_weight length",
        ),
        ErrorInput(
            (x, ids),
            {**good, "sample_weight": -torch.ones(2)},
            ValueError,
            r"`sample_weight` must have values in \[0, inf\)",
            "negative sample_weight",
        ),
        ErrorInput(
            (torch.randn(2, 1, 7), torch.randint(0, 2, (2, 7))),
            dict(good),
            ValueError,
            r"`logits` must have 2 or 3 spatial dimensions.*got \(2, 1, 7\)",
            "1 spatial dim",
        ),
        ErrorInput(
            (torch.randn(2, 1, 3, 3, 3, 3), torch.randint(0, 2, (2, 3, 3, 3, 3))),
            dict(good),
            ValueError,
            r"`logits` must have 2 or 3 spatial dimensions.*got \(2, 1, 3, 3, 3, 3\)",
            "4 spatial dims",
        ),
        ErrorInput(
            (x.sigmoid() * 2, ids),
            {**good, "activation": None},
            ValueError,
            r"`logits` must have values in \[0, 1\]",
            "probabilities above 1",
        ),
    ]


def _trap() -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (torch.randn(6, 1), torch.randint(0, 2, (6,))), {}


def _none_shape(logits: torch.Tensor, target: torch.Tensor) -> tuple[int, ...]:
    return (logits.shape[0],)


BOUNDARY = Case(
    key="boundary",
    module=BoundaryLoss,
    reference=ref_boundary,
    samples=lambda g: _samples(g, hausdorff=False),
    errors=lambda: seg_errors("boundary_loss"),
    extremes=_extremes,
    none_shape=_none_shape,
    shape_trap=_trap,
)

HAUSDORFF_DT = Case(
    key="hausdorff_dt",
    module=HausdorffDTLoss,
    reference=ref_hausdorff_dt,
    samples=lambda g: _samples(g, hausdorff=True),
    errors=lambda: [
        *seg_errors("hausdorff_dt_loss"),
        ErrorInput(
            (torch.randn(2, 1, 5, 5), torch.randint(0, 2, (2, 5, 5))),
            {"alpha": 0.0},
            ValueError,
            r"hausdorff_dt_loss\(\): `alpha` must be in \(0, 8\]; got 0.0",
            "alpha 0",
        ),
        ErrorInput(
            (torch.randn(2, 1, 5, 5), torch.randint(0, 2, (2, 5, 5))),
            {"alpha": 9.0},
            ValueError,
            r"`alpha` must be in \(0, 8\]; got 9.0",
            "alpha too big",
        ),
        ErrorInput(
            (torch.randn(2, 1, 5, 5), torch.randint(0, 2, (2, 5, 5))),
            {"alpha": True},
            TypeError,
            r"`alpha` must be a real number; got bool",
            "bool alpha",
        ),
        ErrorInput(
            (torch.randn(2, 1, 5, 5), torch.randint(0, 2, (2, 5, 5))),
            {"alpha": float("nan")},
            ValueError,
            r"`alpha` must be a finite number",
            "NaN alpha",
        ),
    ],
    extremes=_extremes,
    none_shape=_none_shape,
    shape_trap=_trap,
)

CASES = [BOUNDARY, HAUSDORFF_DT]

__all__ = ["CASES", "ref_signed", "ref_unsigned", "seg_errors"]
