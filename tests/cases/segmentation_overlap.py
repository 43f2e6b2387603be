"""Cases for the overlap losses (Dice family): a one-hot float64 reference written apart."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from losslab.losses.segmentation import (
    DiceLoss,
    FocalTverskyLoss,
    GeneralizedDiceLoss,
    JaccardLoss,
    LogCoshDiceLoss,
    LogDiceLoss,
    TverskyLoss,
)
from tests.cases._base import Case, ErrorInput, Sample, randn

COMMON_DEFAULTS: dict[str, Any] = dict(
    mode="binary",
    activation="auto",
    class_weight=None,
    ignore_index=None,
    classes=None,
    include_background=True,
    aggregate="image",
    smooth=1.0,
    eps=1e-6,
    empty="ratio",
    sample_weight=None,
    validate=True,
    reduction="mean",
)


def reference(
    logits: torch.Tensor, target: torch.Tensor, per_class: Callable[..., torch.Tensor], **kw: Any
) -> torch.Tensor:
    """Softmax/sigmoid, an explicit one-hot, per-class sums, the empty policy, in float64."""
    o = {**COMMON_DEFAULTS, **kw}
    x = logits.double()
    b, c = x.shape[:2]
    act = o["activation"]
    if act == "auto":
        act = "softmax" if o["mode"] == "multiclass" else "sigmoid"
    p = torch.softmax(x, 1) if act == "softmax" else torch.sigmoid(x) if act == "sigmoid" else x
    p = p.reshape(b, c, -1)
    valid = torch.ones_like(p)
    if target.is_floating_point():
        t = target.double().reshape(b, c, -1)
        if o["ignore_index"] is not None:
            valid = (t != o["ignore_index"]).double()
            t = t * valid
    else:
        ids = target.reshape(b, -1).long()
        if o["ignore_index"] is not None:
            keep = ids != o["ignore_index"]
            valid = keep.double().unsqueeze(1).expand(b, c, -1)
            ids = torch.where(keep, ids, torch.zeros_like(ids))
        if o["mode"] == "binary":
            t = ids.double().unsqueeze(1)
        else:
            t = F.one_hot(ids, c).permute(0, 2, 1).double()
        t = t * valid
    p = p * valid
    tp, ps, ts = (p * t).sum(-1), p.sum(-1), t.sum(-1)
    p2, t2 = (p * p).sum(-1), (t * t).sum(-1)
    chosen = list(range(c)) if o["classes"] is None else list(o["classes"])
    if not o["include_background"]:
        chosen = [k for k in chosen if k != 0]
    tp, ps, ts, p2, t2 = (v[:, chosen] for v in (tp, ps, ts, p2, t2))
    sw = o["sample_weight"]
    if o["aggregate"] == "batch":
        w = torch.ones(b, 1, dtype=torch.float64) if sw is None else sw.double().reshape(b, 1)
        tp, ps, ts, p2, t2 = ((v * w).sum(0, keepdim=True) for v in (tp, ps, ts, p2, t2))
    loss = per_class(tp=tp, ps=ps, ts=ts, p2=p2, t2=t2, s=float(o["smooth"]), eps=float(o["eps"]))
    cw = (
        torch.ones(c, dtype=torch.float64)
        if o["class_weight"] is None
        else torch.as_tensor(o["class_weight"], dtype=torch.float64)
    )
    cw = cw[chosen].expand_as(loss).clone()
    empty = ts == 0
    if o["empty"] == "skip":
        cw[empty] = 0.0
    elif o["empty"] == "zero":
        loss = torch.where(empty, torch.zeros_like(loss), loss)
    units = []
    counted = []
    for u in range(loss.shape[0]):  # plain loops: this is the reference
        total = float(cw[u].sum())
        counted.append(total > 0)
        units.append(float((loss[u] * cw[u]).sum()) / total if total > 0 else 0.0)
    per_unit = torch.tensor(units, dtype=torch.float64)
    if o["aggregate"] == "batch":
        return per_unit[0]
    weights = torch.ones(b, dtype=torch.float64) if sw is None else sw.double()
    if o["reduction"] == "none":
        return per_unit * weights
    if o["reduction"] == "sum":
        return (per_unit * weights).sum()
    weights = weights * torch.tensor(counted, dtype=torch.float64)
    return (per_unit * weights).sum() / weights.sum() if weights.sum() > 0 else per_unit.sum() * 0.0


def _score(num: torch.Tensor, den: torch.Tensor, s: float, eps: float) -> torch.Tensor:
    out = torch.empty_like(num)
    for idx in range(num.numel()):
        d = float(den.reshape(-1)[idx]) + s
        out.reshape(-1)[idx] = 1.0 if d <= 0 else (float(num.reshape(-1)[idx]) + s) / max(d, eps)
    return out


def _dice(squared: bool = False) -> Callable[..., torch.Tensor]:
    def f(tp, ps, ts, p2, t2, s, eps):  # type: ignore[no-untyped-def]
        den = p2 + t2 if squared else ps + ts
        return 1.0 - _score(2 * tp, den, s, eps)

    return f


def _ref(
    per_class_for: Callable[[dict[str, Any]], Callable[..., torch.Tensor]],
    extra: tuple[str, ...] = (),
) -> Callable[..., torch.Tensor]:
    def ref(logits: torch.Tensor, target: torch.Tensor, **kw: Any) -> torch.Tensor:
        hp = {k: kw.pop(k) for k in extra if k in kw}
        return reference(logits, target, per_class_for(hp), **kw)

    return ref


def _ids(g: torch.Generator, *shape: int, high: int) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=g)


def _samples(extra: dict[str, Any]) -> Callable[[torch.Generator], list[Sample]]:
    def make(g: torch.Generator) -> list[Sample]:
        ids = _ids(g, 2, 3, 5, high=4)
        ids[0, 0, :2] = 255
        empty_ml = (torch.rand(2, 3, 4, 4, generator=g) > 0.5).double()
        empty_ml[1, 2] = 0.0  # class 2 empty in image 1
        ids3 = _ids(g, 2, 2, 3, 4, high=3)
        return [
            Sample(
                (randn(g, 3, 1, 4, 5), (torch.rand(3, 1, 4, 5, generator=g) > 0.5).double()),
                {**extra},
                note="binary dense",
            ),
            Sample(
                (randn(g, 2, 4, 3, 5, scale=2.0), ids),
                {
                    **extra,
                    "mode": "multiclass",
                    "ignore_index": 255,
                    "class_weight": [1.0, 2.0, 0.5, 1.0],
                    "sample_weight": torch.tensor([1.0, 3.0], dtype=torch.float64),
                },
                note="multiclass ids ignore 255 class_weight sample_weight",
            ),
            Sample(
                (randn(g, 2, 4, 3, 5), _ids(g, 2, 3, 5, high=4)),
                {
                    **extra,
                    "mode": "multiclass",
                    "aggregate": "batch",
                    "classes": [1, 3],
                    "include_background": False,
                    "sample_weight": torch.tensor([0.5, 2.0], dtype=torch.float64),
                },
                note="multiclass batch classes",
                none_shape=(),
            ),
            Sample(
                (randn(g, 2, 3, 4, 4), empty_ml),
                {**extra, "mode": "multilabel", "empty": "skip"},
                note="multilabel empty skip",
            ),
            Sample(
                (randn(g, 2, 3, 2, 3, 4), ids3),
                {**extra, "mode": "multiclass", "empty": "zero", "smooth": 0.5},
                note="3d multiclass empty zero",
            ),
            Sample(
                (
                    randn(g, 2, 1, 3, 3),
                    torch.tensor([[[1, 0, 255], [0, 1, 1], [255, 255, 0]], [[0] * 3] * 3]),
                ),
                {**extra, "ignore_index": 255, "smooth": 0.0},
                note="binary ids ignore smooth 0",
            ),
        ]

    return make


def _extremes(extra: dict[str, Any]) -> Callable[[], list[Sample]]:
    def make() -> list[Sample]:
        out = []
        for value in (30.0, -30.0, 1e4, -1e4, 0.0):
            logits = torch.full((2, 1, 3, 3), value)
            logits[0, 0, 0, 0] = -value
            for tgt, note in (
                (torch.zeros(2, 1, 3, 3), "empty target"),
                (torch.ones(2, 1, 3, 3), "full target"),
            ):
                out.append(Sample((logits, tgt), {**extra}, note=f"{note} logits {value:g}"))
            ids = torch.full((2, 3, 3), 255)
            out.append(
                Sample((logits, ids), {**extra, "ignore_index": 255}, note=f"all ignored {value:g}")
            )
            mc = torch.full((2, 3, 3, 3), value)
            out.append(
                Sample(
                    (mc, torch.zeros(2, 3, 3, dtype=torch.long)),
                    {**extra, "mode": "multiclass", "empty": "skip"},
                    note=f"multiclass one class {value:g}",
                )
            )
        return out

    return make


def _errors(fn: str, extra: dict[str, Any]) -> Callable[[], list[ErrorInput]]:
    def make() -> list[ErrorInput]:
        x1, t1 = torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 4).round()
        x3, ids = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        mc = {**extra, "mode": "multiclass"}
        return [
            ErrorInput(
                (x1.long(), t1),
                dict(extra),
                TypeError,
                rf"{fn}\(\): `logits` must be a floating-point tensor",
                "int logits",
            ),
            ErrorInput(
                (torch.randn(2, 4), t1),
                dict(extra),
                ValueError,
                r"`logits` must have shape \(B, C, \*spatial\)",
                "2-D logits",
            ),
            ErrorInput(
                (x3, t1),
                dict(extra),
                ValueError,
                r"`logits` must have one channel \(B, 1, \*spatial\) in mode='binary'",
                "binary with 3 channels",
            ),
            ErrorInput(
                (x1, t1),
                {**mc},
                ValueError,
                r"`logits` must have at least 2 channels in mode='multiclass'",
                "multiclass with 1 channel",
            ),
            ErrorInput(
                (x3, ids.unsqueeze(1)),
                mc,
                ValueError,
                r"`target` must have shape \(2, 4, 4\) \(class ids\) or \(2, 3, 4, 4\) \(dense\)",
                "(B,1,H,W) ids",
            ),
            ErrorInput(
                (x3, ids.float()),
                mc,
                ValueError,
                r"`target` must have shape \(2, 4, 4\)",
                "float ids",
            ),
            ErrorInput(
                (x3, ids + 3),
                mc,
                ValueError,
                r"`target` must hold class ids in \[0, 3\); got .* Set ignore_index",
                "ids out of range",
            ),
            ErrorInput(
                (x3, ids.bool()),
                mc,
                TypeError,
                r"`target` must be integer class ids or a floating-point mask",
                "bool target",
            ),
            ErrorInput(
                (x1, t1 * 2),
                dict(extra),
                ValueError,
                r"`target` must have values in \[0, 1\]",
                "target > 1",
            ),
            ErrorInput(
                (x3, ids),
                {**extra, "mode": "multiclas"},
                ValueError,
                r"`mode` must be one of .*Did you mean 'multiclass'\?",
                "mode typo",
            ),
            ErrorInput(
                (x1, t1),
                {**extra, "activation": "softmax"},
                ValueError,
                r"`activation` must be 'sigmoid' or None in mode='binary'",
                "softmax binary",
            ),
            ErrorInput(
                (x1, t1),
                {**extra, "include_background": False},
                ValueError,
                r"`include_background` must be True in mode='binary'",
                "binary without background",
            ),
            ErrorInput(
                (x3, ids),
                {**mc, "classes": [0, 1], "include_background": False},
                ValueError,
                r"`classes` must not contain 0 when include_background=False",
                "classes with background",
            ),
            ErrorInput(
                (x3, ids),
                {**mc, "classes": [1, 5]},
                ValueError,
                r"`classes` must hold channel indices below C = 3",
                "class out of range",
            ),
            ErrorInput(
                (x3, ids),
                {**mc, "class_weight": [1.0, 2.0]},
                ValueError,
                r"`class_weight` must have shape \(C,\) = \(3,\)",
                "class_weight length",
            ),
            ErrorInput(
                (x3, ids),
                {**mc, "class_weight": [1.0, -2.0, 1.0]},
                ValueError,
                r"`class_weight` must have values in \[0, inf\)",
                "negative class_weight",
            ),
            ErrorInput(
                (x1, t1),
                {**extra, "smooth": -1.0},
                ValueError,
                r"`smooth` must be in \[0, inf\)",
                "negative smooth",
            ),
            ErrorInput(
                (x1, t1), {**extra, "eps": 0.0}, ValueError, r"`eps` must be in \(0, 1\]", "eps 0"
            ),
            ErrorInput(
                (x1, t1),
                {**extra, "empty": "skp"},
                ValueError,
                r"`empty` must be one of 'ratio' \| 'skip' \| 'zero'; got 'skp'. Did you mean 'skip'\?",
                "empty typo",
            ),
            ErrorInput(
                (x1, t1),
                {**extra, "aggregate": "images"},
                ValueError,
                r"`aggregate` must be one of 'image' \| 'batch'.*Did you mean 'image'\?",
                "aggregate typo",
            ),
            ErrorInput(
                (x1, t1),
                {**extra, "sample_weight": torch.ones(3)},
                ValueError,
                r"`sample_weight` must have shape \(N,\) = \(2,\)",
                "sample_weight length",
            ),
            ErrorInput(
                (x3, F.one_hot(ids, 3).permute(0, 3, 1, 2).float()),
                {**mc, "ignore_index": 255},
                ValueError,
                r"`ignore_index` must be None for a dense multiclass target",
                "ignore with dense multiclass",
            ),
            ErrorInput(
                (x1, t1.reshape(2, 4, 4, 1)),
                dict(extra),
                ValueError,
                r"`target` must have shape \(2, 4, 4\) \(class ids\) or \(2, 1, 4, 4\)",
                "transposed target",
            ),
            ErrorInput(
                (x1, t1),
                {**extra, "reduction": "meen"},
                ValueError,
                r"Did you mean 'mean'\?",
                "reduction typo",
            ),
        ]

    return make


def _case(
    key: str,
    module: type,
    ref: Callable[..., torch.Tensor],
    extra: Optional[dict[str, Any]] = None,
    more_errors: Callable[[], list[ErrorInput]] = lambda: [],
) -> Case:
    extra = extra or {}
    fn = module.function.__name__
    base = _errors(fn, extra)
    return Case(
        key=key,
        module=module,
        reference=ref,
        samples=_samples(extra),
        errors=lambda: [*base(), *more_errors()],
        extremes=_extremes(extra),
        none_shape=lambda logits, target: (logits.shape[0],),
        low_precision_rtol=5e-3,
    )


def _tversky(hp: dict[str, Any], focal: bool = False) -> Callable[..., torch.Tensor]:
    a, b = hp.get("alpha", 0.3 if focal else 0.5), hp.get("beta", 0.7 if focal else 0.5)
    gamma = hp.get("gamma", 0.75)

    def f(tp, ps, ts, p2, t2, s, eps):  # type: ignore[no-untyped-def]
        index = _score(tp, tp + a * (ps - tp) + b * (ts - tp), s, eps)
        return (1.0 - index).clamp_min(0.0) ** gamma if focal else 1.0 - index

    return f


x1_, t1_ = torch.randn(2, 1, 3, 3), torch.rand(2, 1, 3, 3).round()
CASES = [
    _case(
        "dice",
        DiceLoss,
        _ref(lambda hp: _dice(hp.get("squared", False)), ("squared",)),
        more_errors=lambda: [
            ErrorInput(
                (x1_, t1_),
                {"squared": 1},
                ValueError,
                r"`squared` must be one of False \| True; got 1",
                "squared int",
            )
        ],
    ),
    _case(
        "jaccard",
        JaccardLoss,
        _ref(lambda hp: lambda tp, ps, ts, p2, t2, s, eps: 1.0 - _score(tp, ps + ts - tp, s, eps)),
    ),
    _case(
        "tversky",
        TverskyLoss,
        _ref(_tversky, ("alpha", "beta")),
        {"alpha": 0.3, "beta": 0.7},
        more_errors=lambda: [
            ErrorInput(
                (x1_, t1_),
                {"alpha": -0.1},
                ValueError,
                r"`alpha` must be in \[0, inf\)",
                "negative alpha",
            )
        ],
    ),
    _case(
        "focal_tversky",
        FocalTverskyLoss,
        _ref(lambda hp: _tversky(hp, focal=True), ("alpha", "beta", "gamma")),
        {"gamma": 1.5},
        more_errors=lambda: [
            ErrorInput(
                (x1_, t1_), {"gamma": 0.0}, ValueError, r"`gamma` must be in \(0, inf\)", "gamma 0"
            )
        ],
    ),
    _case(
        "log_dice",
        LogDiceLoss,
        _ref(
            lambda hp: (
                lambda tp, ps, ts, p2, t2, s, eps: (
                    -torch.log((1.0 - _dice()(tp, ps, ts, p2, t2, s, eps)).clamp_min(eps))
                )
            )
        ),
    ),
    _case(
        "log_cosh_dice",
        LogCoshDiceLoss,
        _ref(
            lambda hp: (
                lambda tp, ps, ts, p2, t2, s, eps: torch.log(
                    torch.cosh(_dice()(tp, ps, ts, p2, t2, s, eps))
                )
            )
        ),
    ),
]


def _gdl_ref(
    logits: torch.Tensor, target: torch.Tensor, *, weighting: str = "square", **kw: Any
) -> torch.Tensor:
    """Sudre's formula per unit, built from per-class sums captured through the generic reference."""
    o = {**COMMON_DEFAULTS, **kw}
    captured: dict[str, torch.Tensor] = {}

    def grab(tp, ps, ts, p2, t2, s, eps):  # type: ignore[no-untyped-def]
        captured.update(tp=tp, ps=ps, ts=ts)
        return torch.zeros_like(tp)

    reference(logits, target, grab, **{**kw, "class_weight": None, "empty": "ratio"})
    tp, ps, ts = captured["tp"], captured["ps"], captured["ts"]
    chosen = list(range(logits.shape[1])) if o["classes"] is None else list(o["classes"])
    if not o["include_background"]:
        chosen = [k for k in chosen if k != 0]
    v = (
        torch.ones(logits.shape[1], dtype=torch.float64)
        if o["class_weight"] is None
        else torch.as_tensor(o["class_weight"], dtype=torch.float64)
    )
    v = v[chosen]
    losses, counted = [], []
    for u in range(tp.shape[0]):
        w = []
        for c in range(tp.shape[1]):
            vol = float(ts[u, c])
            raw = {
                "square": 1 / vol**2 if vol > 0 else None,
                "simple": 1 / vol if vol > 0 else None,
                "uniform": 1.0 if vol > 0 else None,
            }[weighting]
            w.append(raw)
        finite = [x for x in w if x is not None]
        fill = max(finite) if finite else 1.0
        ww = (
            torch.tensor(
                [(0.0 if o["empty"] == "skip" else fill) if x is None else x for x in w],
                dtype=torch.float64,
            )
            * v
        )
        num = 2 * float((ww * tp[u]).sum()) + o["smooth"]
        den = float((ww * (ps[u] + ts[u])).sum()) + o["smooth"]
        losses.append(1.0 - (1.0 if den <= 0 else num / max(den, o["eps"])))
        counted.append(not (o["empty"] == "skip" and float(ts[u].sum()) == 0))
    per_unit = torch.tensor(losses, dtype=torch.float64) * torch.tensor(
        counted, dtype=torch.float64
    )
    if o["aggregate"] == "batch":
        return per_unit[0]
    sw = (
        torch.ones(tp.shape[0], dtype=torch.float64)
        if o["sample_weight"] is None
        else o["sample_weight"].double()
    )
    if o["reduction"] == "none":
        return per_unit * sw
    if o["reduction"] == "sum":
        return (per_unit * sw).sum()
    sw = sw * torch.tensor(counted, dtype=torch.float64)
    return (per_unit * sw).sum() / sw.sum() if sw.sum() > 0 else per_unit.sum() * 0.0


def _gdl_samples(g: torch.Generator) -> list[Sample]:
    base = _samples({})(g)
    out = [s for s in base if s.kwargs.get("empty") != "zero"]
    out += [
        Sample(s.args, {**s.kwargs, "weighting": w}, note=f"{s.note} {w}", none_shape=s.none_shape)
        for s in base[1:3]
        for w in ("simple", "uniform")
    ]
    out.append(
        Sample(base[3].args, {**base[3].kwargs, "empty": "ratio"}, note="multilabel empty ratio")
    )
    return out


CASES.append(
    Case(
        key="generalized_dice",
        module=GeneralizedDiceLoss,
        reference=_gdl_ref,
        samples=_gdl_samples,
        errors=lambda: [
            *_errors("generalized_dice_loss", {})()[:-6],
            ErrorInput(
                (x1_, t1_),
                {"weighting": "squares"},
                ValueError,
                r"`weighting` must be one of 'square' \| 'simple' \| 'uniform'; got 'squares'. Did you mean 'square'\?",
                "weighting typo",
            ),
            ErrorInput(
                (x1_, t1_),
                {"empty": "zero"},
                ValueError,
                r"`empty` must be 'ratio' or 'skip'",
                "empty zero",
            ),
        ],
        extremes=lambda: [s for s in _extremes({})() if s.kwargs.get("empty") != "zero"],
        none_shape=lambda logits, target: (logits.shape[0],),
        low_precision_rtol=5e-3,
    )
)

# dice also runs with squared denominators
_dice_samples = CASES[0].samples
CASES[0].samples = lambda g: [
    *_dice_samples(g),
    *[
        Sample(
            s.args, {**s.kwargs, "squared": True}, note=s.note + " squared", none_shape=s.none_shape
        )
        for s in _dice_samples(g)[:3]
    ],
]
_ = math
