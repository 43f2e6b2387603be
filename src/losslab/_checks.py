"""Every input check and every error string of losslab, built from one template.

The template is::

    focal_loss(): `target` must have the same shape as `logits` (8, 3); got (8,).

``TypeError`` reports a wrong type or dtype, ``ValueError`` a wrong shape, value,
range or option. Shape, dtype and device checks always run; value checks (which
cost one host synchronisation) run when ``validate=True`` and never while
``torch.compile`` traces.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn, Optional, Union

import torch
from torch import Tensor
from typing_extensions import TypeGuard

__all__ = [
    "REDUCTIONS",
    "as_class_weight",
    "check_choice",
    "check_class_ids",
    "check_float",
    "check_floating",
    "check_int",
    "check_ndim_at_least",
    "check_range",
    "check_reduction",
    "check_same_device",
    "check_same_shape",
    "check_sample_weight",
    "check_tensor",
    "fail",
    "fmt",
    "is_compiling",
    "is_sequence",
    "suggest",
]

REDUCTIONS = ("mean", "sum", "none")


def fmt(value: Any) -> str:
    """Format a received value for an error message: shapes as tuples, dtypes short."""
    if isinstance(value, Tensor):
        if value.dim() == 0:
            return f"tensor({value.item()!r})" if value.numel() else "tensor()"
        return f"tensor of shape {tuple(value.shape)}"
    if isinstance(value, torch.Size):
        return str(tuple(value))
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def fail(
    fn: str,
    arg: str,
    expected: str,
    got: Any,
    *,
    kind: type[Exception] = ValueError,
    hint: Optional[str] = None,
    raw_got: bool = False,
) -> NoReturn:
    """Raise ``kind`` with the one message template of the project.

    >>> fail("focal_loss", "target", "have the same shape as `logits` (8, 3)", torch.Size([8]))
    Traceback (most recent call last):
    ...
    ValueError: focal_loss(): `target` must have the same shape as `logits` (8, 3); got (8,).
    """
    got_text = got if raw_got else fmt(got)
    msg = f"{fn}(): `{arg}` must {expected}; got {got_text}."
    if hint:
        msg += f" {hint}"
    raise kind(msg)


def suggest(value: str, choices: Iterable[str]) -> Optional[str]:
    """A did-you-mean hint for ``value`` among ``choices``, or ``None``."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}?" if close else None


def is_sequence(value: Any) -> TypeGuard[Sequence[Any]]:
    """A list-like option value: any ``Sequence`` but a string or a tensor.

    Config systems hand options over in their own containers (OmegaConf's ``ListConfig`` under
    Hydra, for one): they count as sequences, like lists and tuples.

    >>> is_sequence([1.0, 2.0]), is_sequence((1, 2)), is_sequence("12"), is_sequence(torch.ones(2))
    (True, True, False, False)
    """
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray, Tensor))


def is_compiling() -> bool:
    """True while ``torch.compile`` (dynamo) traces; value checks are skipped then."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return bool(compiler.is_compiling())
    return False


def _shape(t: Union[Tensor, Sequence[int]]) -> tuple[int, ...]:
    return tuple(t.shape) if isinstance(t, Tensor) else tuple(t)


def check_tensor(fn: str, name: str, x: Any) -> Tensor:
    """``x`` must be a Tensor (TypeError otherwise)."""
    if not isinstance(x, Tensor):
        fail(fn, name, "be a torch.Tensor", type(x).__name__, kind=TypeError, raw_got=True)
    return x


def check_floating(fn: str, name: str, x: Any) -> Tensor:
    """``x`` must be a floating-point Tensor (TypeError otherwise)."""
    check_tensor(fn, name, x)
    if not x.is_floating_point():
        fail(
            fn,
            name,
            "be a floating-point tensor",
            f"dtype {fmt(x.dtype)}",
            kind=TypeError,
            raw_got=True,
            hint="Convert it with `.float()`.",
        )
    return x


def check_int(fn: str, name: str, x: Any) -> Tensor:
    """``x`` must be an integer (class id) Tensor, not bool or float."""
    check_tensor(fn, name, x)
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        fail(
            fn,
            name,
            "be an integer tensor of class ids",
            f"dtype {fmt(x.dtype)}",
            kind=TypeError,
            raw_got=True,
            hint="Convert it with `.long()`.",
        )
    return x


def check_same_shape(fn: str, name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    """``x`` must have exactly ``ref``'s shape: nothing is broadcast."""
    if x.shape != ref.shape:
        hint = None
        if x.numel() == ref.numel():
            hint = "Reshape explicitly; losslab never broadcasts (B, 1) against (B,)."
        fail(
            fn,
            name,
            f"have the same shape as `{ref_name}` {_shape(ref)}",
            _shape(x),
            raw_got=True,
            hint=hint,
        )


def check_ndim_at_least(fn: str, name: str, x: Tensor, ndim: int, what: str) -> None:
    if x.dim() < ndim:
        fail(fn, name, f"have at least {ndim} dimensions {what}", _shape(x), raw_got=True)


def check_same_device(fn: str, name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if x.device != ref.device:
        fail(
            fn,
            name,
            f"be on the same device as `{ref_name}` ({ref.device})",
            str(x.device),
            raw_got=True,
        )


def check_reduction(fn: str, reduction: Any, choices: Sequence[str] = REDUCTIONS) -> str:
    return check_choice(fn, "reduction", reduction, choices)


def check_choice(fn: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` must be one of ``choices`` (type-aware: ``True`` is not ``1``); did-you-mean for strings."""
    for choice in choices:
        if value is choice or (type(value) is type(choice) and value == choice):
            return value
    options = " | ".join(repr(c) for c in choices)
    hint = (
        suggest(value, [c for c in choices if isinstance(c, str)])
        if isinstance(value, str)
        else None
    )
    fail(fn, name, f"be one of {options}", value, hint=hint)


def check_float(
    fn: str,
    name: str,
    value: Any,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """A scalar hyperparameter: a real number (not bool, not a tensor) in a range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(fn, name, "be a real number", type(value).__name__, kind=TypeError, raw_got=True)
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        fail(fn, name, "be a finite number", value)
    bad = (low is not None and (value < low or (low_open and value == low))) or (
        high is not None and (value > high or (high_open and value == high))
    )
    if bad:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        fail(fn, name, f"be in {lo}, {hi}", value)
    return value


def check_range(
    fn: str,
    name: str,
    x: Tensor,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_open: bool = False,
    high_open: bool = False,
    validate: bool = True,
    mask: Optional[Tensor] = None,
) -> None:
    """Value check of a tensor (one host sync): every (unmasked) element in range, no NaN."""
    if not validate or is_compiling() or x.numel() == 0:
        return
    with torch.no_grad():
        values = x if mask is None else x[mask]
        if values.numel() == 0:
            return
        # Fast path: one pass (aminmax; NaN propagates into both) and one host sync.
        lowest, highest = (float(v) for v in torch.stack(torch.aminmax(values)).tolist())
        fine = not (math.isnan(lowest) or math.isnan(highest))
        if fine and low is not None:
            fine = lowest > low if low_open else lowest >= low
        if fine and high is not None:
            fine = highest < high if high_open else highest <= high
        if fine:
            return
        bad = torch.isnan(values)
        if low is not None:
            bad |= (values <= low) if low_open else (values < low)
        if high is not None:
            bad |= (values >= high) if high_open else (values > high)
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        first = values[bad][0].item()
        count = int(bad.sum())
        fail(
            fn,
            name,
            f"have values in {lo}, {hi}",
            f"{count} value(s) outside, e.g. {first:g}",
            raw_got=True,
            hint="Pass validate=False to skip this check.",
        )


def check_class_ids(
    fn: str,
    name: str,
    target: Tensor,
    num_classes: int,
    *,
    ignore_index: Optional[int],
    validate: bool,
) -> None:
    """Class ids in [0, num_classes), except positions equal to ``ignore_index``."""
    if not validate or is_compiling() or target.numel() == 0:
        return
    with torch.no_grad():
        # Fast path: one min/max pass and no full-size mask while every id is in range (with
        # ignore_index = 255 present, the masked check below decides).
        lo, hi = torch.aminmax(target)
        if int(lo) >= 0 and int(hi) < num_classes:
            return
        bad = (target < 0) | (target >= num_classes)
        if ignore_index is not None:
            bad &= target != ignore_index
        if bool(bad.any()):
            first = int(target[bad][0])
            hint = (
                f"Set ignore_index={first} if that label marks pixels to skip."
                if ignore_index is None
                else None
            )
            fail(
                fn,
                name,
                f"hold class ids in [0, {num_classes})"
                + (f" or ignore_index={ignore_index}" if ignore_index is not None else ""),
                f"{int(bad.sum())} id(s) outside, e.g. {first}",
                raw_got=True,
                hint=hint,
            )


def check_ignore_index(fn: str, ignore_index: Any) -> Optional[int]:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        fail(
            fn,
            "ignore_index",
            "be an int or None",
            type(ignore_index).__name__,
            kind=TypeError,
            raw_got=True,
        )
    return ignore_index


def check_sample_weight(
    fn: str, sample_weight: Optional[Tensor], n: int, ref: Tensor, *, validate: bool
) -> Optional[Tensor]:
    """``sample_weight``: a float tensor of shape (N,), non-negative."""
    if sample_weight is None:
        return None
    check_floating(fn, "sample_weight", sample_weight)
    if sample_weight.shape != (n,):
        fail(
            fn,
            "sample_weight",
            f"have shape (N,) = ({n},), one weight per sample along dim 0",
            tuple(sample_weight.shape),
            raw_got=True,
        )
    check_same_device(fn, "sample_weight", sample_weight, "input", ref)
    check_range(fn, "sample_weight", sample_weight, low=0.0, validate=validate)
    return sample_weight


def as_class_weight(
    fn: str,
    name: str,
    weight: Union[Tensor, Sequence[float], None],
    num_classes: Optional[int],
    ref: Optional[Tensor] = None,
    *,
    validate: bool = True,
) -> Optional[Tensor]:
    """A per-class weight of shape (C,): a float tensor or a sequence of numbers, non-negative."""
    if weight is None:
        return None
    if is_sequence(weight):
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weight):
            fail(fn, name, "be a tensor or a sequence of numbers", weight, kind=TypeError)
        weight = torch.tensor(
            [float(w) for w in weight],
            dtype=torch.float32,
            device=ref.device if ref is not None else None,
        )
    if not isinstance(weight, Tensor):
        fail(
            fn,
            name,
            "be a 1-D tensor or a sequence of numbers",
            type(weight).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if not weight.is_floating_point():
        fail(
            fn,
            name,
            "be a floating-point tensor",
            f"dtype {fmt(weight.dtype)}",
            kind=TypeError,
            raw_got=True,
        )
    if weight.dim() != 1 or (num_classes is not None and weight.shape[0] != num_classes):
        expected = f"have shape (C,) = ({num_classes},)" if num_classes is not None else "be 1-D"
        fail(fn, name, expected, tuple(weight.shape), raw_got=True)
    if ref is not None:
        check_same_device(fn, name, weight, "input", ref)
    check_range(fn, name, weight, low=0.0, validate=validate)
    return weight


def check_pointwise(
    fn: str,
    pred_name: str,
    pred: Any,
    target: Any,
    *,
    reduction: Any,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
) -> None:
    """The common checks of a pointwise loss over (pred, target) of one shape."""
    check_floating(fn, pred_name, pred)
    check_floating(fn, "target", target)
    check_same_shape(fn, "target", target, pred_name, pred)
    check_same_device(fn, "target", target, pred_name, pred)
    check_reduction(fn, reduction)
    if sample_weight is not None:
        if pred.dim() == 0:
            fail(fn, "sample_weight", f"be None for a 0-d `{pred_name}`", sample_weight)
        check_sample_weight(fn, sample_weight, pred.shape[0], pred, validate=validate)


def check_int_option(
    fn: str, name: str, value: Any, *, low: int, allow_none: bool = False
) -> Optional[int]:
    """An integer hyperparameter (not bool) >= ``low``; ``None`` passes when ``allow_none``."""
    if value is None and allow_none:
        return None
    expected = f"be an int >= {low}" + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, int):
        fail(fn, name, expected, type(value).__name__, kind=TypeError, raw_got=True)
    if value < low:
        fail(fn, name, expected, value)
    return value
