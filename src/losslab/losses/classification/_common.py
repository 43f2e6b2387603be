"""Checks and views shared by the classification losses."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from losslab._checks import (
    check_class_ids,
    check_floating,
    check_reduction,
    check_same_device,
    check_sample_weight,
    check_tensor,
    fail,
    fmt,
)


def check_class_inputs(
    fn: str,
    logits: Tensor,
    target: Tensor,
    *,
    soft_allowed: bool,
    reduction: str,
    sample_weight: Optional[Tensor],
    validate: bool,
) -> bool:
    """Shape, dtype and device checks of (logits, target); True for soft targets.

    Class ids have shape (N, d1, ...) and an integer dtype; soft targets are floating
    with exactly ``logits``' shape. Nothing is broadcast.
    """
    check_floating(fn, "logits", logits)
    check_tensor(fn, "target", target)
    shape = tuple(logits.shape)
    if logits.dim() < 2:
        fail(
            fn,
            "logits",
            "have shape (N, C) or (N, C, d1, ...), classes along dim 1",
            shape,
            raw_got=True,
        )
    if shape[1] < 2:
        # Softmax over one class is identically 1: the loss would be 0 whatever the data.
        fail(
            fn,
            "logits",
            "have at least 2 classes along dim 1",
            shape,
            raw_got=True,
            hint="For one logit per sample use bce_with_logits_loss.",
        )
    check_same_device(fn, "target", target, "logits", logits)
    ids_shape = (shape[0], *shape[2:])
    soft = soft_allowed and target.is_floating_point() and tuple(target.shape) == shape
    if not soft:
        if tuple(target.shape) == ids_shape:
            if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
                also = f"; soft targets must have `logits`' shape {shape}" if soft_allowed else ""
                fail(
                    fn,
                    "target",
                    "be an integer tensor of class ids",
                    f"dtype {fmt(target.dtype)}",
                    kind=TypeError,
                    raw_got=True,
                    hint=f"Convert it with `.long()`{also}.",
                )
        else:
            if soft_allowed:
                expected = f"have shape {ids_shape} (class ids) or {shape} (probabilities), as `logits` {shape} implies"
            else:
                expected = f"have shape {ids_shape} (class ids), as `logits` {shape} implies"
            hint = None
            if tuple(target.shape) == shape:
                hint = (
                    "One-hot or soft targets must be floating point."
                    if soft_allowed
                    else "Pass class ids, not one-hot targets."
                )
            fail(fn, "target", expected, tuple(target.shape), raw_got=True, hint=hint)
    check_reduction(fn, reduction)
    check_sample_weight(fn, sample_weight, shape[0], logits, validate=validate)
    return soft


def along_classes(w: Tensor, like: Tensor) -> Tensor:
    """View a per-class (C,) tensor so that it multiplies dim 1 of ``like``."""
    return w.reshape((1, w.shape[0]) + (1,) * (like.dim() - 2))


def check_class_target(
    fn: str,
    logits: Tensor,
    target: Tensor,
    *,
    ignore_index: Optional[int],
    sample_weight: Optional[Tensor],
    validate: bool,
    reduction: str,
) -> None:
    """(logits (N, C, ...), class ids (N, ...)) for softmax-based losses, ids in range."""
    check_class_inputs(
        fn,
        logits,
        target,
        soft_allowed=False,
        reduction=reduction,
        sample_weight=sample_weight,
        validate=validate,
    )
    check_class_ids(
        fn, "target", target, logits.shape[1], ignore_index=ignore_index, validate=validate
    )
