"""Two calls on the same inputs give bitwise-equal values and gradients, and draw no random numbers.

The canonical sample is called twice on fresh copies (the global RNG is *not* reset between
the calls: a loss that samples must show it), each time with a backward pass. Warnings:

* the values differ: dropout, sampling, noise or hidden state inside (the evidence gives both
  values and the largest difference);
* the values agree but the gradients differ: a nondeterministic backward;
* the values agree but the global RNG advanced: every later random number of the training
  run (data order, dropout, augmentation) shifts when the loss is added or removed.

A function that cannot be called, or returns no tensor, is reported as info here (the
``returns_tensor`` probe reports it as an error).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import GuardedProbe
from losslab.doctor.probes.returns_tensor import (
    call,
    fresh,
    gradient,
    sample_evidence,
    value_of,
)

__all__ = ["PROBE", "DeterminismProbe"]

NAME = "determinism"

FIX_RANDOM = (
    "remove the randomness from the loss (F.dropout(..., training=False), no sampling), or "
    "take a seeded torch.Generator argument and pass it to every random call"
)
FIX_RNG = (
    "pass a torch.Generator (torch.Generator().manual_seed(...)) to the random calls instead "
    "of drawing from the global RNG"
)


def _rng_state() -> list[Tensor]:
    states = [torch.random.get_rng_state()]
    if torch.cuda.is_available():
        states.extend(torch.cuda.get_rng_state_all())
    return states


def _same(a: Any, b: Any) -> bool:
    """Bitwise equality of two outputs (NaN equal to NaN at the same place)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            return False
        a, b = a.detach(), b.detach()
        if torch.equal(a, b):
            return True
        if a.is_floating_point() or a.is_complex():
            return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
        return False
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:
        return False


def _max_diff(a: Tensor, b: Tensor) -> Any:
    if a.shape != b.shape or not (a.is_floating_point() and b.is_floating_point()):
        return None
    d = (a.detach().double() - b.detach().double()).abs()
    return value_of(torch.nan_to_num(d, nan=float("inf")).max())


class DeterminismProbe(GuardedProbe):
    name = NAME
    crash_severity = "warning"
    title = "deterministic: same inputs, same value and gradient, no global RNG use"

    def _once(
        self, ctx: Context, sample: Sample
    ) -> tuple[Any, Optional[Tensor], Optional[str], bool]:
        """(output, gradient, failure, used the RNG)."""
        pred, target, kwargs = fresh(sample)
        before = _rng_state()
        out, failed = call(ctx, pred, target, kwargs)
        grad: Optional[Tensor] = None
        if failed is None and isinstance(out, Tensor) and out.requires_grad:
            grad, _ = gradient(ctx, out, pred)
        after = _rng_state()
        used = any(not torch.equal(x, y) for x, y in zip(before, after))
        return out, grad, None if failed is None else failed.reason, used

    def _run(self, ctx: Context) -> list[Finding]:
        if not ctx.samples:
            return [Finding(NAME, "info", "not checked: the context has no sample")]
        sample = ctx.samples[0]
        out1, g1, failed1, used1 = self._once(ctx, sample)
        if failed1 is not None:
            return [
                Finding(
                    NAME,
                    "info",
                    f"not checked: the call {failed1} (see returns_tensor)",
                    evidence=sample_evidence(sample),
                )
            ]
        out2, g2, failed2, used2 = self._once(ctx, sample)
        ev = sample_evidence(sample)
        used = used1 or used2
        if failed2 is not None:
            return [
                Finding(
                    NAME,
                    "warning",
                    f"the same call succeeded once, then {failed2}",
                    "remove hidden state and randomness from the loss",
                    {**ev, "uses_global_rng": used},
                )
            ]
        if not isinstance(out1, Tensor) and not isinstance(out2, Tensor) and _same(out1, out2):
            return [
                Finding(
                    NAME,
                    "info",
                    f"not checked: the function returns a {type(out1).__name__}, not a "
                    "tensor (see returns_tensor)",
                    evidence=ev,
                )
            ]
        if not _same(out1, out2):
            diff = (
                _max_diff(out1, out2)
                if isinstance(out1, Tensor) and isinstance(out2, Tensor)
                else None
            )
            cause = "random numbers drawn inside" if used else "hidden state or randomness inside"
            return [
                Finding(
                    NAME,
                    "warning",
                    f"two calls on the same inputs give different values ({cause})",
                    FIX_RANDOM
                    if used
                    else "remove hidden state (counters, caches, buffers "
                    "updated per call) and randomness from the loss",
                    {
                        **ev,
                        "first": value_of(out1),
                        "second": value_of(out2),
                        "max_abs_diff": diff,
                        "uses_global_rng": used,
                    },
                )
            ]
        if (g1 is None) != (g2 is None) or (g1 is not None and not _same(g1, g2)):
            return [
                Finding(
                    NAME,
                    "warning",
                    "two calls give the same value but different gradients (a nondeterministic "
                    "backward)",
                    "avoid nondeterministic kernels in the backward (index_add_/scatter_add_ "
                    "on GPU); see torch.use_deterministic_algorithms",
                    {
                        **ev,
                        "max_abs_grad_diff": None
                        if g1 is None or g2 is None
                        else _max_diff(g1, g2),
                    },
                )
            ]
        if used:
            return [
                Finding(
                    NAME,
                    "warning",
                    "the loss draws from the global random number generator (the values agree "
                    "here, but every later random number of the run shifts)",
                    FIX_RNG,
                    {**ev, "uses_global_rng": True},
                )
            ]
        return [
            Finding(
                NAME,
                "ok",
                "two calls gave bitwise-equal values and gradients; no global RNG use",
                evidence={"input": sample.note},
            )
        ]


PROBE = DeterminismProbe()
