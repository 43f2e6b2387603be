"""Input handling shared by every segmentation loss: modes, activation, ignore, class subsets.

``prepare()`` checks ``(logits, target)`` once and returns a :class:`Prepared` view
(``prepare_inputs()``: the same checks and fields but ``probs``, for callers that activate
later, in slices):

* ``probs``: (B, C, N) activated predictions in the compute dtype (all C classes: softmax
  needs them all), spatial dimensions flattened to N;
* ``ids``: (B, N) int64 class ids (ignored positions replaced by 0) when the target is given
  as class ids, else ``None``; no one-hot tensor is ever built from them;
* ``dense``: (B, C, N) float targets when given densely (binary, multilabel, one-hot or soft);
* ``valid``: (B, 1, N) or (B, C, N) boolean mask of the positions that count, or ``None``;
* ``selected``: the class channels the loss reports (after ``classes`` and
  ``include_background``), or ``None`` for all.

Modes (``mode``):

* ``"binary"``: logits (B, 1, *spatial); target (B, 1, *spatial) floating in [0, 1] or
  (B, *spatial) integer ids in {0, 1}. Activation ``sigmoid``.
* ``"multiclass"``: logits (B, C, *spatial), C >= 2; target (B, *spatial) integer ids in
  [0, C) or (B, C, *spatial) floating (one-hot or soft). Activation ``softmax``.
* ``"multilabel"``: logits (B, C, *spatial); target (B, C, *spatial) floating in [0, 1].
  Activation ``sigmoid``.

``ignore_index`` marks target positions that do not count: compared with the class ids, or
elementwise with a dense binary/multilabel target; it is masked before anything else, so 255
never reaches an index operation.

**Value checks.** Type, shape and option checks raise at once. The checks of the *values*
(class ids in range, dense targets and probabilities in [0, 1]: one host sync each, with
``validate``) are the ones that can fail on one rank only under ``sync="global"``.
:func:`prepare` runs them at once; :func:`prepare_inputs` returns them as
``Inputs.check_values`` instead, and :func:`~losslab.losses.segmentation._overlap.overlap_stats`
(the next step of every caller, before anything indexes with the ids or any collective) runs
them through :func:`losslab.distributed.check_on_every_rank`, so every rank raises or none
does. Without a process group these are the same checks at the same cost; only an input with
two faults may now report its shape or option fault (``classes``, ``sample_weight``'s shape)
before its value fault.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from losslab._autograd.overlap_stats import activate
from losslab._checks import (
    check_choice,
    check_class_ids,
    check_floating,
    check_ignore_index,
    check_range,
    check_same_device,
    check_tensor,
    fail,
    fmt,
)
from losslab._reduce import compute_dtype

__all__ = [
    "ACTIVATIONS",
    "MODES",
    "Inputs",
    "Prepared",
    "check_common_options",
    "prepare",
    "prepare_inputs",
]

MODES = ("binary", "multiclass", "multilabel")
ACTIVATIONS = ("auto", "sigmoid", "softmax", None)
_NATURAL = {"binary": "sigmoid", "multiclass": "softmax", "multilabel": "sigmoid"}


@dataclass(frozen=True)
class Inputs:
    """:func:`prepare_inputs`'s result: everything :class:`Prepared` holds but ``probs``."""

    logits: Tensor  # (B, C, N) raw inputs in the compute dtype
    ids: Optional[Tensor]  # (B, N) int64, or None
    dense: Optional[Tensor]  # (B, C, N) float, or None
    valid: Optional[Tensor]  # (B, 1, N) or (B, C, N) bool, or None
    selected: Optional[Tensor]  # (C',) int64 class channels, or None for all
    activation: Optional[str]
    spatial: tuple[int, ...]
    # The value checks still to run (see the module docstring); a no-op once they have run.
    check_values: Callable[[], None]

    @property
    def batch(self) -> int:
        return self.logits.shape[0]

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]


@dataclass(frozen=True)
class Prepared(Inputs):
    probs: Tensor  # (B, C, N) activated


def check_common_options(
    fn: str,
    *,
    mode: str,
    activation: Optional[str],
    ignore_index: Optional[int],
    classes: Optional[Sequence[int]],
    include_background: bool,
) -> tuple[str, Optional[str], Optional[int], Optional[tuple[int, ...]]]:
    """Options every segmentation loss shares (the constructor and the function both call it)."""
    check_choice(fn, "mode", mode, MODES)
    check_choice(fn, "activation", activation, ACTIVATIONS)
    if activation == "softmax" and mode != "multiclass":
        fail(
            fn,
            "activation",
            f"be 'sigmoid' or None in mode={mode!r} (softmax needs classes)",
            activation,
        )
    ignore_index = check_ignore_index(fn, ignore_index)
    if not isinstance(include_background, bool):
        fail(
            fn,
            "include_background",
            "be a bool",
            type(include_background).__name__,
            kind=TypeError,
            raw_got=True,
        )
    if not include_background and mode == "binary":
        fail(
            fn,
            "include_background",
            "be True in mode='binary' (its one channel is the foreground)",
            include_background,
        )
    if classes is not None:
        if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
            fail(
                fn,
                "classes",
                "be None or a non-empty sequence of class indices",
                classes,
                kind=TypeError,
            )
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
            fail(fn, "classes", "hold ints", classes, kind=TypeError)
        if len(set(classes)) != len(classes) or min(classes) < 0:
            fail(fn, "classes", "hold distinct non-negative class indices", list(classes))
        if not include_background and 0 in classes:
            fail(fn, "classes", "not contain 0 when include_background=False", list(classes))
        classes = tuple(classes)
    return mode, activation, ignore_index, classes


def prepare(
    fn: str,
    logits: Tensor,
    target: Tensor,
    *,
    mode: str,
    activation: Optional[str],
    ignore_index: Optional[int],
    classes: Optional[tuple[int, ...]],
    include_background: bool,
    validate: bool,
) -> Prepared:
    """Check and normalize ``(logits, target)``; see the module docstring. Every check runs
    here, the value checks included."""
    raw = prepare_inputs(
        fn,
        logits,
        target,
        mode=mode,
        activation=activation,
        ignore_index=ignore_index,
        classes=classes,
        include_background=include_background,
        validate=validate,
    )
    raw.check_values()
    # Every field of the Inputs as it is (a new field needs no copy line), checks now done.
    fields = {**vars(raw), "check_values": _checked}
    return Prepared(**fields, probs=activate(raw.logits, raw.activation))


def prepare_inputs(
    fn: str,
    logits: Tensor,
    target: Tensor,
    *,
    mode: str,
    activation: Optional[str],
    ignore_index: Optional[int],
    classes: Optional[tuple[int, ...]],
    include_background: bool,
    validate: bool,
) -> Inputs:
    """:func:`prepare` without the activation: the overlap losses activate inside their sums,
    a slice of images at a time. The value checks are returned, not run: the caller runs
    ``Inputs.check_values()`` (``overlap_stats`` does, first thing) before using the values."""
    check_floating(fn, "logits", logits)
    check_tensor(fn, "target", target)
    check_same_device(fn, "target", target, "logits", logits)
    if logits.dim() < 3:
        fail(
            fn,
            "logits",
            "have shape (B, C, *spatial) with at least one spatial dimension",
            tuple(logits.shape),
            raw_got=True,
        )
    batch, channels, *spatial_list = logits.shape
    spatial = tuple(spatial_list)
    if mode == "binary" and channels != 1:
        fail(
            fn,
            "logits",
            "have one channel (B, 1, *spatial) in mode='binary'",
            tuple(logits.shape),
            raw_got=True,
            hint="Use mode='multiclass' or 'multilabel' for several channels.",
        )
    if mode == "multiclass" and channels < 2:
        fail(
            fn,
            "logits",
            "have at least 2 channels in mode='multiclass'",
            tuple(logits.shape),
            raw_got=True,
            hint="Use mode='binary' for one foreground channel.",
        )
    dtype = compute_dtype(logits)
    # Explicit N, not -1: an empty batch (a rank's empty shard under sync="global") reshapes.
    n = math.prod(logits.shape[2:])
    x = logits.to(dtype).reshape(batch, channels, n)

    ids: Optional[Tensor] = None
    dense: Optional[Tensor] = None
    valid: Optional[Tensor] = None
    checks: list[Callable[[], None]] = []  # the value checks, in the order they would run
    ids_shape = (batch, *spatial)
    if mode != "multilabel" and tuple(target.shape) == ids_shape and not target.is_floating_point():
        if target.dtype == torch.bool or target.is_complex():
            fail(
                fn,
                "target",
                "be integer class ids or a floating-point mask",
                f"dtype {fmt(target.dtype)}",
                kind=TypeError,
                raw_got=True,
            )
        num = 2 if mode == "binary" else channels
        raw_ids = target
        checks.append(
            lambda: check_class_ids(
                fn, "target", raw_ids, num, ignore_index=ignore_index, validate=validate
            )
        )
        flat = target.reshape(batch, n)
        if ignore_index is not None:
            keep = flat != ignore_index
            valid = keep.unsqueeze(1)
            flat = torch.where(keep, flat, torch.zeros_like(flat))  # 255 never indexes anything
        if mode == "binary":
            dense = flat.to(dtype).unsqueeze(1)  # one channel: the foreground indicator itself
        else:
            ids = flat.long()
    elif tuple(target.shape) == tuple(logits.shape):
        if not target.is_floating_point():
            hint = (
                "Class ids have shape (B, *spatial)."
                if mode != "multilabel"
                else "Convert it with `.float()`."
            )
            fail(
                fn,
                "target",
                f"be floating point when it has `logits`' shape {tuple(logits.shape)}",
                f"dtype {fmt(target.dtype)}",
                kind=TypeError,
                raw_got=True,
                hint=hint,
            )
        t = target.to(dtype).reshape(batch, channels, n)
        if ignore_index is not None:
            if mode == "multiclass":
                fail(
                    fn,
                    "ignore_index",
                    "be None for a dense multiclass target (ignore applies to class ids)",
                    ignore_index,
                    hint="Pass class ids (B, *spatial) to ignore positions.",
                )
            keep = t != ignore_index
            valid = keep
            t = torch.where(keep, t, torch.zeros_like(t))
        mask = valid
        checks.append(
            lambda: check_range(fn, "target", t, low=0.0, high=1.0, validate=validate, mask=mask)
        )
        dense = t
    else:
        if mode == "multilabel":
            expected = f"have `logits`' shape {tuple(logits.shape)}"
        else:
            expected = f"have shape {ids_shape} (class ids) or {tuple(logits.shape)} (dense), as `logits` implies"
        fail(
            fn,
            "target",
            expected,
            tuple(target.shape),
            raw_got=True,
            hint="Nothing is broadcast: reshape explicitly.",
        )

    act = _NATURAL[mode] if activation == "auto" else activation
    if act is None:
        checks.append(lambda: check_range(fn, "logits", x, low=0.0, high=1.0, validate=validate))

    selected = None
    if classes is not None or not include_background:
        chosen = list(classes) if classes is not None else list(range(channels))
        if not include_background:
            chosen = [c for c in chosen if c != 0]
        if max(chosen) >= channels:
            fail(fn, "classes", f"hold channel indices below C = {channels}", list(chosen))
        selected = torch.tensor(chosen, dtype=torch.long, device=logits.device)
    if not (validate and checks):
        return Inputs(x, ids, dense, valid, selected, act, spatial, _checked)

    def check_values() -> None:
        for check in checks:
            check()

    return Inputs(x, ids, dense, valid, selected, act, spatial, check_values)


def _checked() -> None:
    """``Inputs.check_values`` once the checks have run (or with ``validate=False``)."""
