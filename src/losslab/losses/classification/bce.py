"""Binary cross-entropy from logits with pos_weight (or "auto"), label smoothing and ignore_index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import torch
from torch import Tensor

from losslab._autograd.bce_logits import bce_logits_elementwise
from losslab._checks import (
    check_float,
    check_ignore_index,
    check_pointwise,
    check_range,
    check_reduction,
    check_same_device,
    fail,
    fmt,
    is_sequence,
    suggest,
)
from losslab._reduce import compute_dtype, output_dtype, reduce
from losslab._registry import register
from losslab.losses.base import Loss
from losslab.losses.classification._common import along_classes

__all__ = ["BCEWithLogitsLoss", "bce_with_logits_loss"]

PosWeight = Union[float, str, Tensor, Sequence[float], None]
_POS_WEIGHT_EXPECTED = "be None, a positive number, a 1-D tensor (C,) or 'auto'"


def _check_binary_ignore_index(fn: str, ignore_index: object) -> Optional[int]:
    """ignore_index for binary targets: an int outside [0, 1], where valid targets live."""
    ignore_index = check_ignore_index(fn, ignore_index)
    if ignore_index in (0, 1):
        fail(
            fn,
            "ignore_index",
            "be None or an int outside [0, 1] (0 and 1 are valid targets)",
            ignore_index,
            hint="Use e.g. -1 or 255 to mark positions to skip.",
        )
    return ignore_index


def _check_label_smoothing(fn: str, label_smoothing: object) -> float:
    return check_float(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True)


def _as_pos_weight(
    fn: str, pos_weight: PosWeight, *, validate: bool, ref: Optional[Tensor] = None
) -> PosWeight:
    """None, a float > 0, "auto", or a positive floating 1-D tensor (sequences become tensors)."""
    if pos_weight is None:
        return None
    if isinstance(pos_weight, str):
        if pos_weight != "auto":
            fail(
                fn,
                "pos_weight",
                _POS_WEIGHT_EXPECTED,
                pos_weight,
                hint=suggest(pos_weight, ["auto"]),
            )
        return "auto"
    if is_sequence(pos_weight):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos_weight):
            fail(
                fn, "pos_weight", "be a tensor or a sequence of numbers", pos_weight, kind=TypeError
            )
        pos_weight = torch.tensor(
            [float(v) for v in pos_weight],
            dtype=torch.float32,
            device=ref.device if ref is not None else None,
        )
    if isinstance(pos_weight, Tensor):
        if not pos_weight.is_floating_point():
            fail(
                fn,
                "pos_weight",
                "be a floating-point tensor",
                f"dtype {fmt(pos_weight.dtype)}",
                kind=TypeError,
                raw_got=True,
            )
        if pos_weight.dim() != 1:
            fail(
                fn,
                "pos_weight",
                "be a 1-D tensor (C,) aligned with dim 1 of `logits`",
                tuple(pos_weight.shape),
                raw_got=True,
                hint="Pass a Python float for one weight shared by every class.",
            )
        if ref is not None:
            check_same_device(fn, "pos_weight", pos_weight, "logits", ref)
        check_range(fn, "pos_weight", pos_weight, low=0.0, low_open=True, validate=validate)
        return pos_weight
    if isinstance(pos_weight, bool) or not isinstance(pos_weight, (int, float)):
        fail(
            fn,
            "pos_weight",
            _POS_WEIGHT_EXPECTED,
            type(pos_weight).__name__,
            kind=TypeError,
            raw_got=True,
        )
    return check_float(fn, "pos_weight", pos_weight, low=0.0, low_open=True)


def _check_options(
    fn: str,
    pos_weight: PosWeight,
    label_smoothing: float,
    ignore_index: Optional[int],
    validate: bool,
    logits: Optional[Tensor] = None,
) -> tuple[PosWeight, float, Optional[int]]:
    """Hyperparameter checks, shared by the function and the module's constructor.

    With ``logits`` (in the function) a sequence ``pos_weight`` is built on their device.
    """
    return (
        _as_pos_weight(fn, pos_weight, validate=validate, ref=logits),
        _check_label_smoothing(fn, label_smoothing),
        _check_binary_ignore_index(fn, ignore_index),
    )


def _class_dims(x: Tensor) -> list[int]:
    """Every dim except the class axis (dim 1); all dims for 0-d and 1-D inputs."""
    return [d for d in range(x.dim()) if d != 1] if x.dim() >= 2 else list(range(x.dim()))


def _auto_pos_weight(y: Tensor, valid: Optional[Tensor]) -> Tensor:
    """n_neg / n_pos per class (dim 1), from raw targets over the valid positions; detached.

    A class with no positive, or with no negative, gets 1.0: n_neg / n_pos = 0 would switch
    a class made only of positives off entirely (no loss, no gradient).
    """
    with torch.no_grad():
        dims = _class_dims(y)
        v = torch.ones_like(y) if valid is None else valid.to(y.dtype)
        n_pos = (y * v).sum(dims)
        n_neg = ((1.0 - y) * v).sum(dims)
        ratio = n_neg / n_pos.clamp_min(torch.finfo(y.dtype).tiny)
        return torch.where((n_pos > 0) & (n_neg > 0), ratio, torch.ones_like(ratio))


def bce_with_logits_loss(
    logits: Tensor,
    target: Tensor,
    *,
    pos_weight: PosWeight = None,
    label_smoothing: float = 0.0,
    ignore_index: Optional[int] = None,
    sample_weight: Optional[Tensor] = None,
    validate: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary cross-entropy from logits (torch's ``binary_cross_entropy_with_logits``, class axis = dim 1).

    .. math::

        \ell_i = w_{c(i)}\, y'_i \log\bigl(1 + e^{-x_i}\bigr) + (1 - y'_i) \log\bigl(1 + e^{x_i}\bigr),
        \qquad y' = y (1 - \varepsilon) + \varepsilon / 2

    with :math:`w_c` the positive-class weight of the class :math:`c(i)` of element :math:`i`
    (its index along dim 1). This equals torch's
    :math:`(1 - y')x + (1 + (w - 1) y') \log(1 + e^{-x})` and is computed as two
    ``logsigmoid`` terms, each non-negative, so there is no cancellation at large
    :math:`|x|` (logits of :math:`\pm 10^4` are exact in float32).

    ``mean`` divides by the valid, weighted count (``sample_weight`` times the number of
    non-ignored elements); it is **not** divided by ``pos_weight``.

    Args:
        logits: any shape (N, C, d1, ...) or (N,), floating point.
        target: floating point, the shape of ``logits``, values in [0, 1] (soft labels
            allowed). Nothing is broadcast.
        pos_weight: weight of the positive term. ``None`` (1), a float > 0, a 1-D tensor
            or sequence of length C **aligned with dim 1** (torch aligns it with the last
            dim, which is wrong for (N, C, H, W) inputs; refused for 1-D logits, where only
            a float makes sense), or ``"auto"``: per class (dim 1; the whole batch for 1-D
            logits) :math:`n_{neg} / n_{pos}` from the raw (unsmoothed), non-ignored
            targets of the batch (sums of :math:`1 - y` and :math:`y`; sample weights do
            not enter), detached; 1.0 for a class with no positive or no negative. It
            depends on the batch, so "auto" is not additive over batch splits.
        label_smoothing: :math:`\varepsilon \in [0, 1)`; targets move towards 1/2 (Keras'
            convention): :math:`y' = y (1 - \varepsilon) + \varepsilon / 2`.
        ignore_index: positions whose target equals it are masked before anything else:
            they are excluded from the value checks, from "auto" and from the mean's count.
            Must lie outside [0, 1].
        sample_weight: (N,) non-negative weights along dim 0.
        validate: check target values (one host sync).
        reduction: ``"mean" | "sum" | "none"``; ``none`` returns ``logits``' shape
            (0 at ignored positions).

    References: torch.nn.BCEWithLogitsLoss; Szegedy et al., "Rethinking the Inception
    Architecture for Computer Vision", CVPR 2016 (label smoothing).

    >>> import torch
    >>> logits = torch.tensor([[2.0, -1.0], [0.5, 3.0], [-2.0, 0.0]])
    >>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    >>> bce_with_logits_loss(logits, target, ignore_index=-1)
    tensor(0.7180)
    >>> bce_with_logits_loss(logits, target, ignore_index=-1, pos_weight="auto")  # class 0: 1/2
    tensor(0.4926)
    >>> bce_with_logits_loss(logits, target, ignore_index=-1, pos_weight=[2.0, 1.0])
    tensor(1.1687)
    """
    fn = "bce_with_logits_loss"
    check_pointwise(
        fn,
        "logits",
        logits,
        target,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    pos_weight, label_smoothing, ignore_index = _check_options(
        fn, pos_weight, label_smoothing, ignore_index, validate, logits
    )
    if isinstance(pos_weight, Tensor):
        if logits.dim() < 2:
            fail(
                fn,
                "pos_weight",
                f"be a float or 'auto' for {logits.dim()}-D `logits` (a tensor aligns with the class axis, dim 1)",
                pos_weight,
            )
        if pos_weight.shape[0] != logits.shape[1]:
            fail(
                fn,
                "pos_weight",
                f"have shape (C,) = ({logits.shape[1]},), aligned with dim 1 of `logits` {tuple(logits.shape)}",
                tuple(pos_weight.shape),
                raw_got=True,
            )

    valid = None if ignore_index is None else target != ignore_index
    check_range(fn, "target", target, low=0.0, high=1.0, validate=validate, mask=valid)

    dtype = torch.promote_types(compute_dtype(logits), compute_dtype(target))
    x = logits.to(dtype)
    y = target.to(dtype)
    if valid is not None:
        # Ignored labels (255, -1) never enter the arithmetic, nor "auto"'s counts.
        y = torch.where(valid, y, torch.zeros_like(y))

    if isinstance(pos_weight, str):
        w: Union[float, Tensor, None] = _auto_pos_weight(y, valid)
    elif isinstance(pos_weight, Tensor):
        w = pos_weight.to(dtype)
    else:  # a float (validated above) or None
        w = pos_weight if isinstance(pos_weight, float) else None
    if isinstance(w, Tensor) and w.dim() == 1:
        w = along_classes(w, x)

    if label_smoothing:
        y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing

    # log(1 + e^{-x}) = -logsigmoid(x) and log(1 + e^{x}) = -logsigmoid(-x): both exact and
    # finite at |x| = 1e4, with gradients sigmoid(-x), sigmoid(x) that never overflow
    # (fused softplus passes forward, analytic backward: losslab._autograd.bce_logits).
    loss = bce_logits_elementwise(x, y, w)
    return reduce(
        loss, reduction, sample_weight=sample_weight, mask=valid, out_dtype=output_dtype(logits)
    )


@register
class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy from logits with pos_weight (or "auto"), label smoothing and ignore_index."""

    key = "bce"
    family = "classification"
    input_kind = "logits"
    pointwise = True
    function = staticmethod(bce_with_logits_loss)

    def __init__(
        self,
        *,
        pos_weight: PosWeight = None,
        label_smoothing: float = 0.0,
        ignore_index: Optional[int] = None,
        validate: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        pos_weight, label_smoothing, ignore_index = _check_options(
            "BCEWithLogitsLoss", pos_weight, label_smoothing, ignore_index, validate
        )
        check_reduction("BCEWithLogitsLoss", reduction)
        self._store(
            pos_weight=pos_weight,
            label_smoothing=label_smoothing,
            ignore_index=ignore_index,
            validate=validate,
            reduction=reduction,
        )
