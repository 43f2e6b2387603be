"""Shape traps: a (B, 1) prediction against a (B,) target, and weights along the wrong axis.

1. Silent broadcast. ``pred - target`` with shapes (B, 1) and (B,) is a (B, B) matrix, not an
   error: the loss compares every prediction with every target and training quietly learns the
   mean. The probe calls the function with a trailing singleton axis on the prediction, then on
   the target, on inputs whose axes all have the same length (so that the broadcast can
   happen); for segmentation, the target with / without its channel axis of 1 ((B, 1, H, W)
   against (B, H, W) gives (B, B, H, W)). It must raise (or, if it squeezes the axis itself,
   give the value of the matched shapes). Any other value is an error.
2. Weights along the wrong axis. For a weight-like keyword (``sample_weight``, ``weight``,
   ``class_weight``, ``pos_weight``) the probe builds inputs where the batch has the same length
   as the weighted axis ((4, 4, 4) for regression and forecasting, (C, C) for classes), so that
   a wrong broadcast raises nothing, and inputs where the lengths differ. A weight applied along
   its axis moves with that axis: permuting axis ``j`` of the inputs together with the weights
   leaves the loss unchanged. When it does not, and permuting another axis with the weights
   does, the weights follow that other axis: a warning, with both values.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import (
    call,
    close,
    failed_finding,
    fresh,
    num,
    scalar,
    shape_of,
)

__all__ = ["PROBE", "ShapeTrapsProbe"]

NAME = "shape_traps"
WEIGHT_NAMES = ("sample_weight", "weight", "class_weight", "pos_weight")
SQUARE = 4  # (4, 4, 4): every axis the same length, so a wrong-axis broadcast raises nothing
FIX_BROADCAST = (
    "check the shapes first (raise ValueError when pred.shape != target.shape) "
    "instead of letting (B, 1) broadcast against (B,)"
)
_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _weight_keywords(fn: Any) -> list[str]:
    """The weight-like keywords ``fn`` accepts per call (for a losslab ``Loss`` module: its
    function's per-call arguments; for anything else: its named parameters)."""
    try:
        from losslab.doctor.inputs import call_keywords

        accepted = set(call_keywords(fn))
    except Exception:  # inputs not importable: read the signature here
        target = fn.forward if isinstance(fn, nn.Module) else fn
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            return []
        accepted = {n for n, p in params.items() if p.kind in _KINDS}
    return [n for n in WEIGHT_NAMES if n in accepted]


def _same(a: Any, b: Any) -> bool:
    """Two outputs agree: same shape and the same values (float32 tolerance)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape:
            return False
        if a.numel() == 0:
            return True
        x = a.detach().to(torch.float64).reshape(-1)
        y = b.detach().to(torch.float64).reshape(-1)
        ref = float(torch.maximum(x.abs().max(), y.abs().max()))
        return bool(((x - y).abs() <= 1e-4 * ref + 1e-7).all())
    va, vb = scalar(a), scalar(b)
    return va is not None and vb is not None and close(va, vb)


def _unusable(out: Any) -> Optional[str]:
    """Why an output cannot be compared (None when it can)."""
    if isinstance(out, Tensor):
        if not out.is_floating_point():
            return f"the function returns a {str(out.dtype).replace('torch.', '')} tensor"
        if out.numel() and not bool(torch.isfinite(out.detach()).all()):
            return "the loss is not finite (the extremes probe reports where)"
        return None
    if scalar(out) is None:
        return f"the function returns {type(out).__name__}, not a tensor"
    return None if math.isfinite(scalar(out) or 0.0) else "the loss is not finite"


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _show(out: Any) -> Any:
    """The value returned, as evidence: a number, or the shape of a tensor."""
    v = scalar(out)
    if v is not None:
        return num(v)
    if isinstance(out, Tensor):
        return {"shape": list(out.shape)}
    return type(out).__name__


# ------------------------------------------------------------------------ 1. (B, 1) vs (B,)
def _square_sample(ctx: Context) -> tuple[Sample, str]:
    """The sample for the broadcast trap. (B, T, 1) against (B, T) broadcasts only when
    B == T, so for inputs of 2+ axes every axis gets the same length: from ``make_sample``
    when it can give that, else drawn from the sample's own values."""
    s = ctx.samples[0]
    pred = s.pred
    if pred.dim() < 2 or len(set(pred.shape)) == 1:
        return s, ""
    n = pred.shape[-1] if pred.shape[-1] >= 2 else SQUARE
    shape = (n,) * pred.dim()
    try:
        made = ctx.make_sample(batch=n, seed=31)
        if tuple(made.pred.shape) == shape and tuple(made.target.shape) == shape:
            return made, f"every axis of length {n}, so that a trailing axis of 1 can broadcast"
    except Exception:  # a generator that cannot: draw from the sample's values
        pass
    gen = torch.Generator().manual_seed(31)
    plain = {k: v for k, v in s.kwargs.items() if not isinstance(v, Tensor)}
    made = Sample(_pool(pred, shape, gen), _pool(s.target, shape, gen), plain, s.note)
    return made, f"every axis of length {n}, so that a trailing axis of 1 can broadcast"


def _broadcast(ctx: Context) -> list[Finding]:
    sample = ctx.samples[0]
    pred, target = sample.pred, sample.target
    variants: list[tuple[str, Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = []
    same = lambda x: x  # noqa: E731
    column = lambda x: x.unsqueeze(-1)  # noqa: E731
    if ctx.task == "segmentation" and pred.dim() >= 3:
        # (B, 1, H, W) against (B, H, W) broadcasts to (B, B, H, W) with no equal lengths.
        note = ""
        if target.dim() == pred.dim() - 1:
            variants.append(("target with a channel axis of 1", same, lambda x: x.unsqueeze(1)))
        elif target.shape == pred.shape and pred.shape[1] == 1:
            variants.append(("target without its channel axis", same, lambda x: x.squeeze(1)))
        else:
            return [
                Finding(
                    NAME,
                    "ok",
                    "no (B, 1, H, W) / (B, H, W) ambiguity for these input shapes",
                    evidence={"pred": shape_of(pred), "target": shape_of(target)},
                )
            ]
    elif pred.shape == target.shape and pred.dim() >= 1:
        sample, note = _square_sample(ctx)
        variants.append(("prediction with a trailing axis of 1", column, same))
        variants.append(("target with a trailing axis of 1", same, column))
    elif pred.dim() == 2 and target.dim() == 1 and pred.shape[0] == target.shape[0]:
        note = ""
        variants.append(("class ids as a (B, 1) column", same, column))
    else:
        return [
            Finding(
                NAME,
                "ok",
                "no (B, 1) / (B,) ambiguity for these input shapes: broadcast not checked",
                evidence={"pred": shape_of(pred), "target": shape_of(target)},
            )
        ]
    pred, target, kwargs = fresh(sample)
    base_ev = {"sample": sample.note, "pred": shape_of(pred), "target": shape_of(target)}
    if note:
        base_ev["why_this_shape"] = note
    ref, failed = call(ctx, pred, target, kwargs)
    if failed is not None:
        return [failed_finding(NAME, f"inputs of shape {list(pred.shape)}", failed, **base_ev)]
    why = _unusable(ref)
    if why is None:
        again, _ = call(ctx, *fresh(sample))
        why = None if _same(again, ref) else "two identical calls gave different values"
    if why is not None:
        return [Finding(NAME, "info", f"broadcast not checked: {why}", evidence=base_ev)]

    findings: list[Finding] = []
    squeezed: list[str] = []
    for what, on_pred, on_target in variants:
        p, t, k = fresh(sample)
        p, t = on_pred(p), on_target(t)
        out, failed = call(ctx, p, t, k)
        if failed is not None:
            continue  # raising is the right answer
        if _same(out, ref):
            squeezed.append(what)
            continue
        findings.append(
            Finding(
                NAME,
                "error",
                f"{list(p.shape)} against {list(t.shape)} ({what}) returned a value instead "
                "of raising: the shapes broadcast silently",
                fix=FIX_BROADCAST,
                evidence={
                    **base_ev,
                    "called_with": {"pred": list(p.shape), "target": list(t.shape)},
                    "returned": _show(out),
                    "value_with_matched_shapes": _show(ref),
                },
            )
        )
    if not findings:
        msg = "mismatched shapes (B, 1) / (B,) raise"
        if squeezed:
            msg = "mismatched shapes (B, 1) / (B,) raise or give the matched-shape value"
        findings.append(
            Finding(NAME, "ok", msg, evidence={**base_ev, "accepted_same_value": squeezed})
        )
    return findings


# ------------------------------------------------------------------- 2. weight along an axis
def _pool(x: Tensor, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """A tensor of ``shape`` drawn from the values of ``x`` (so it stays in the target's
    domain: class ids, 0/1 labels, non-negative counts...)."""
    flat = x.detach().reshape(-1)
    n = 1
    for s in shape:
        n *= s
    idx = torch.randint(0, flat.numel(), (n,), generator=gen)
    return flat[idx.to(flat.device)].reshape(shape).clone()


def _layout(ctx: Context, keyword: str) -> tuple[Optional[Sample], Optional[Sample], int, str]:
    """``(square, other, axis, why)``: inputs where every relevant axis has the weighted axis'
    length, inputs where they differ, the axis the weights belong to; ``why`` when the check
    does not apply."""
    s = ctx.samples[0]
    pred, target = s.pred, s.target
    gen = torch.Generator().manual_seed(11)
    plain = {k: v for k, v in s.kwargs.items() if not isinstance(v, Tensor)}

    def make(ps: tuple[int, ...], ts: tuple[int, ...]) -> Sample:
        return Sample(_pool(pred, ps, gen), _pool(target, ts, gen), dict(plain))

    if ctx.task in ("regression", "forecasting") and pred.shape == target.shape:
        axis = 0 if keyword == "sample_weight" else 2
        return (
            make((SQUARE,) * 3, (SQUARE,) * 3),
            make((3, 4, 5), (3, 4, 5)),
            axis,
            "",
        )
    if pred.dim() < 2 or pred.shape[0] < 1:
        return None, None, 0, "1-D inputs: there is no other axis the weights could follow"
    if keyword == "sample_weight":
        axis = 0
        partners = [a for a in range(1, pred.dim()) if pred.shape[a] >= 2]
        if not partners:
            return None, None, 0, "no axis of length >= 2 besides the batch"
        length = pred.shape[partners[0]]
    elif keyword == "pos_weight" and pred.dim() > 2:
        return None, None, 0, "pos_weight on inputs of more than 2 axes is not checked"
    else:
        axis = pred.dim() - 1 if keyword == "pos_weight" else 1
        length = pred.shape[axis]
        if length < 2:
            return None, None, 0, f"axis {axis} has length {length}"
    other = length + 1
    while other in pred.shape[1:]:
        other += 1
    rest_p, rest_t = tuple(pred.shape[1:]), tuple(target.shape[1:])
    return (
        make((length, *rest_p), (length, *rest_t)),
        make((other, *rest_p), (other, *rest_t)),
        axis,
        "",
    )


def _permute(
    sample: Sample, axis: int, perm: Tensor
) -> Optional[tuple[Tensor, Tensor, dict[str, Any]]]:
    """The inputs with ``axis`` of the prediction permuted: ``new[..., i, ...] =
    old[..., perm[i], ...]``; class ids relabelled when ``axis`` is the class axis."""
    pred, target, kwargs = fresh(sample)
    p = perm.to(pred.device)
    new_pred = pred.index_select(axis, p)
    if target.shape == pred.shape:
        new_target = target.index_select(axis, p)
    elif target.dim() == pred.dim() - 1:
        if axis == 0:
            new_target = target.index_select(0, p)
        elif axis == 1:
            if target.is_floating_point():
                return None
            n = pred.shape[1]
            inverse = torch.empty_like(p)
            inverse[p] = torch.arange(n, device=p.device)
            ok = (target >= 0) & (target < n)
            relabelled = inverse[torch.where(ok, target, torch.zeros_like(target)).long()]
            new_target = torch.where(ok, relabelled.to(target.dtype), target)
        else:
            new_target = target.index_select(axis - 1, p)
    else:
        return None
    new_kwargs: dict[str, Any] = {}
    for k, v in kwargs.items():
        if isinstance(v, Tensor) and v.shape == pred.shape:
            v = v.index_select(axis, p)
        elif isinstance(v, Tensor) and axis == 0 and v.dim() >= 1 and v.shape[0] == pred.shape[0]:
            v = v.index_select(0, p)
        new_kwargs[k] = v
    return new_pred, new_target, new_kwargs


def _weight_axis(ctx: Context, keyword: str) -> Finding:
    square, other, axis, why = _layout(ctx, keyword)
    if square is None or other is None:
        return Finding(NAME, "ok", f"`{keyword}`: not checked ({why})")
    n = square.pred.shape[axis]
    gen = torch.Generator().manual_seed(7)
    dtype = square.pred.dtype if square.pred.is_floating_point() else torch.float32
    # Weights 1, 1/4, 1/16, ... (shuffled): the loss is dominated by one slice, so moving the
    # weights to another slice changes it by far more than rounding.
    w = (0.25 ** torch.randperm(n, generator=gen).to(torch.float64)).to(
        dtype=dtype, device=square.pred.device
    )
    ev: dict[str, Any] = {
        "keyword": keyword,
        "shape": list(square.pred.shape),
        "target": list(square.target.shape),
        "weight_length": n,
        "expected_axis": axis,
    }

    plain, failed = call(ctx, *fresh(square))
    if failed is not None:
        return failed_finding(NAME, f"inputs of shape {list(square.pred.shape)}", failed, **ev)
    u = scalar(plain)
    pred, target, kwargs = fresh(square)
    weighted, failed = call(ctx, pred, target, {**kwargs, keyword: w.clone()})
    if failed is not None:
        return Finding(
            NAME,
            "ok",
            f"`{keyword}` takes no vector of length {n} here ({failed.reason}): nothing to "
            "misalign",
            evidence={**ev, "error": failed.reason},
        )
    wv = scalar(weighted)
    if u is None or wv is None or not (math.isfinite(u) and math.isfinite(wv)):
        return Finding(
            NAME,
            "info",
            f"`{keyword}`: not checked (the function does not return a finite scalar)",
            evidence={**ev, "returned": _show(weighted)},
        )

    # Inputs whose axes have different lengths: a wrong-axis broadcast raises there.
    w_other = torch.linspace(0.5, 2.0, other.pred.shape[axis], dtype=w.dtype, device=w.device)
    op, ot, ok = fresh(other)
    _, other_failed = call(ctx, op, ot, {**ok, keyword: w_other})
    ev["other_shape"] = list(other.pred.shape)
    ev["other_shape_result"] = "raised" if other_failed is not None else "value"
    if other_failed is not None:
        ev["other_shape_error"] = other_failed.reason

    def moves_with(k: int) -> tuple[Optional[bool], Any, Any]:
        """Whether the loss is unchanged when axis ``k`` is permuted together with the
        weights (None: inconclusive, the loss is not invariant to permuting ``k`` at all)."""
        perm = torch.roll(torch.arange(n), 1)
        moved = _permute(square, k, perm)
        if moved is None:
            return None, None, None
        mp, mt, mk = moved
        base = scalar(call(ctx, mp, mt, mk)[0])
        if base is None or not close(base, u):
            return None, base, None
        mp, mt, mk = _permute(square, k, perm) or moved
        value = scalar(call(ctx, mp, mt, {**mk, keyword: w[perm.to(w.device)].clone()})[0])
        if value is None:
            return None, base, None
        return close(value, wv, u), base, value

    holds, _, permuted = moves_with(axis)
    if holds is None:
        return Finding(
            NAME,
            "info",
            f"`{keyword}`: not checked (the loss is not invariant to permuting axis {axis} "
            "even without weights)",
            evidence=ev,
        )
    ev.update(value=num(wv), value_unweighted=num(u))
    if holds:
        msg = f"`{keyword}` (length {n}) follows axis {axis} of {list(square.pred.shape)}"
        if close(wv, u, rtol=1e-6):
            return Finding(
                NAME,
                "info",
                f"`{keyword}` (length {n}) had no effect on the loss: is it used?",
                evidence=ev,
            )
        return Finding(NAME, "ok", msg, evidence=ev)
    ev["value_after_permuting_axis_with_weights"] = num(permuted)
    follows = None
    for k in range(square.pred.dim()):
        if k != axis and square.pred.shape[k] == n:
            ok_k, _, _ = moves_with(k)
            if ok_k:
                follows = k
                break
    ev["follows_axis"] = follows
    where = f"axis {follows}" if follows is not None else "no single axis"
    return Finding(
        NAME,
        "warning",
        f"`{keyword}` (length {n}) is applied along {where} of {list(square.pred.shape)}, "
        f"not axis {axis}: permuting axis {axis} together with the weights changes the loss "
        f"from {wv:.6g} to {_fmt(permuted)}",
        fix=f"reshape the weights to broadcast along axis {axis} explicitly "
        f"(e.g. w.view(-1, 1, ...) for the batch, w[target] for class ids), and check their length",
        evidence=ev,
    )


def _weights(ctx: Context) -> list[Finding]:
    names = _weight_keywords(ctx.fn)
    if not names:
        return [Finding(NAME, "ok", "no weight argument: weight axes not checked")]
    return [_weight_axis(ctx, name) for name in names]


class ShapeTrapsProbe:
    name = NAME
    title = "shape traps: (B, 1) against (B,), weights along the wrong axis"

    def run(self, ctx: Context) -> list[Finding]:
        findings: list[Finding] = []
        for part in (_broadcast, _weights):
            try:
                findings.extend(part(ctx) if ctx.samples else [])
            except Exception as exc:  # the probe itself must never raise
                findings.append(
                    Finding(
                        NAME,
                        "info",
                        f"probe could not run: {type(exc).__name__}: {exc}".splitlines()[0][:200],
                    )
                )
        if not findings:
            findings.append(Finding(NAME, "info", "not checked: no sample input for this task"))
        return findings


PROBE = ShapeTrapsProbe()
