"""The minimum is at the target, and a gradient step lowers the loss.

1. The loss at a perfect prediction (``ctx.perfect(sample)``) must not exceed the loss at the
   sample's prediction, nor at that prediction with its rows shuffled (no information about
   the target left): otherwise the minimum is somewhere else (a flipped sign,
   ``pred + target``, a score returned instead of ``1 - score``): an error. Losses with a
   non-zero minimum are fine: values are compared, never required to be 0.
2. Near the perfect prediction the loss must not go lower either: moving part of the way
   towards the shuffled predictions (and, for values, small random noise and a few descent steps
   from the perfect prediction) must not lower it beyond rounding. A perfect prediction that
   beats the random one but is not a local minimum (a shrunk or shifted target) is a warning
   for values and probabilities, information for logits and scores (whose perfect prediction
   is a proxy: the infimum is at infinity, and tied targets may be ordered either way).
   For values, when the minimum sits at ``log(target)`` (a log link, as in a Poisson NLL that
   takes log rates) this is reported as information.
3. From the sample's prediction, a step ``pred - lr * grad`` (normalized, a few step sizes)
   must lower the loss: if none does, the gradient points uphill (a sign error in a custom
   backward): an error. Then a few more steps show the descent continues.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from losslab.doctor._types import Context, Finding, Sample
from losslab.doctor.probes._util import (
    GuardedProbe,
    call,
    failed_finding,
    fresh,
    grad_of,
    num,
    scalar,
    shape_of,
)

__all__ = ["PROBE", "MinimumProbe"]

NAME = "minimum"
MIXES = (0.1, 0.5)  # perfect + t * (random - perfect)
STEPS = (0.3, 0.1, 0.03, 0.01, 0.003)  # descent step sizes, relative to the prediction's scale
FIX_MINIMUM = (
    "check the sign and the target of every term: the loss must be lowest at a perfect "
    "prediction (e.g. 1 - dice, not dice; pred - target, not pred + target)"
)
FIX_DESCENT = (
    "the gradient points uphill: check the sign of the custom backward (or the loss), "
    "e.g. with torch.autograd.gradcheck"
)


def _project(ctx: Context, x: Tensor) -> Tensor:
    """Keep probabilities valid after a step: in [0, 1], rows summing to 1 over classes."""
    if ctx.input_kind != "probs":
        return x
    x = x.clamp(0.0, 1.0)
    classes = ctx.task == "multiclass" or (
        ctx.task == "segmentation" and x.dim() >= 2 and x.shape[1] > 1
    )
    if classes and x.dim() >= 2:
        x = x / x.sum(1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return x


class _Loss:
    """The loss as a function of the prediction (the sample's target and keywords fixed)."""

    def __init__(self, ctx: Context, sample: Sample) -> None:
        self.ctx, self.sample = ctx, sample
        self.calls = 0

    def __call__(self, x: Tensor) -> Optional[float]:
        p, t, k = fresh(self.sample, pred=x)
        self.calls += 1
        out, failed = call(self.ctx, p, t, k)
        return None if failed is not None else scalar(out)

    def grad(self, x: Tensor) -> tuple[Optional[float], Optional[Tensor], Optional[str]]:
        p, t, k = fresh(self.sample, pred=x, grad=True)
        out, failed = call(self.ctx, p, t, k)
        if failed is not None:
            return None, None, failed.reason
        g, reason = grad_of(self.ctx, out, p)
        return scalar(out), g, reason


def _rms(x: Tensor) -> float:
    return float(x.detach().to(torch.float64).pow(2).mean().sqrt()) if x.numel() else 0.0


def _direction(g: Tensor) -> Tensor:
    """The gradient normalized to unit RMS (a step of ``lr`` moves each element by ~lr)."""
    return g / max(_rms(g), 1e-30)


class MinimumProbe(GuardedProbe):
    name = NAME
    title = "minimum at a perfect prediction; a descent step lowers the loss"

    def _run(self, ctx: Context) -> list[Finding]:
        if not ctx.samples:
            return [Finding(NAME, "info", "not checked: no sample input for this task")]
        sample = ctx.samples[0]
        pred = sample.pred.detach()
        base = {"sample": sample.note, "pred": shape_of(pred), "target": shape_of(sample.target)}
        if not pred.is_floating_point():
            return [Finding(NAME, "info", "not checked: the prediction is not floating point")]
        loss = _Loss(ctx, sample)
        p, t, k = fresh(sample)
        out, failed = call(ctx, p, t, k)
        if failed is not None:
            return [failed_finding(NAME, "the sample input", failed, **base)]
        at_pred = scalar(out)
        if at_pred is None:
            return [
                Finding(
                    NAME,
                    "info",
                    f"not checked: the function does not return a scalar (got {shape_of(out)})",
                    evidence=base,
                )
            ]
        if at_pred != at_pred or at_pred in (float("inf"), float("-inf")):
            return [
                Finding(
                    NAME,
                    "info",
                    f"not checked: the loss is not finite ({num(at_pred)}; the extremes probe "
                    "reports where)",
                    evidence=base,
                )
            ]
        again = loss(pred)
        noise = abs(at_pred - again) if again is not None else float("inf")
        if noise != noise or noise == float("inf") or noise > 1e-3 * (abs(at_pred) + 1e-12):
            return [
                Finding(
                    NAME,
                    "info",
                    "not checked: two identical calls gave different values (nondeterministic)",
                    evidence={**base, "values": [num(at_pred), num(again)]},
                )
            ]
        findings = self._minimum(ctx, sample, loss, at_pred, noise, base)
        findings += self._descent(ctx, sample, loss, at_pred, noise, base)
        return findings

    # --------------------------------------------------------------------------- 1. and 2.
    def _minimum(
        self,
        ctx: Context,
        sample: Sample,
        loss: _Loss,
        at_pred: float,
        noise: float,
        base: dict[str, Any],
    ) -> list[Finding]:
        try:
            perfect = ctx.perfect(sample).detach().to(sample.pred.dtype)
        except Exception as exc:
            return [Finding(NAME, "info", f"not checked: no perfect prediction ({exc})"[:200])]
        at_perfect = loss(perfect)
        if at_perfect is None or not math.isfinite(at_perfect):
            return [
                Finding(
                    NAME,
                    "info",
                    "not checked: the function fails (or returns no finite scalar) at a "
                    "perfect prediction",
                    evidence=base,
                )
            ]
        far = [("the sample's prediction", at_pred)]
        for what, r in self._randoms(sample):
            v = loss(r)
            if v is not None and math.isfinite(v):
                far.append((what, v))
        worst_far = max(abs(v) for _, v in far)
        span = max(abs(v - at_perfect) for _, v in far)
        tol = 1e-6 + 1e-4 * max(worst_far, abs(at_perfect)) + 3 * noise
        ev = {
            **base,
            "loss_at_perfect": num(at_perfect),
            "loss_at_sample_pred": num(at_pred),
            "loss_elsewhere": {what: num(v) for what, v in far},
        }
        what, lowest = min(far, key=lambda wv: wv[1])
        if lowest < at_perfect - tol:
            alt = self._log_link(ctx, sample, loss, perfect, lowest, tol)
            if alt is not None:
                return [alt]
            return [
                Finding(
                    NAME,
                    "error",
                    f"the loss is lower at {what} ({lowest:.6g}) than at a perfect prediction "
                    f"({at_perfect:.6g}): the minimum is not at the target",
                    fix=FIX_MINIMUM,
                    evidence=ev,
                )
            ]

        # Near the perfect prediction: nothing may be lower (beyond rounding).
        near = self._neighbours(ctx, sample, loss, perfect)
        local_tol = tol + 1e-3 * span
        lower = [(w, v) for w, v in near if math.isfinite(v) and v < at_perfect - local_tol]
        if lower:
            what, v = min(lower, key=lambda wv: wv[1])
            alt = self._log_link(ctx, sample, loss, perfect, at_pred, tol)
            if alt is not None:
                return [alt]
            # Logits and scores have no finite perfect prediction (the infimum is at
            # infinity, ties may be broken either way): there it is worth knowing, no more.
            exact = ctx.input_kind in ("values", "probs")
            return [
                Finding(
                    NAME,
                    "warning" if exact else "info",
                    f"the perfect prediction is not a local minimum: {what} lowers the loss "
                    f"from {at_perfect:.6g} to {v:.6g}"
                    + ("" if exact else " (for logits/scores the perfect prediction is a proxy)"),
                    fix=FIX_MINIMUM + "; a loss with a bias at the target (e.g. soft-DTW) needs "
                    "its debiased form (a divergence)"
                    if exact
                    else "",
                    evidence={**ev, "lower_at": what, "loss_there": num(v)},
                )
            ]
        return [
            Finding(
                NAME,
                "ok",
                f"lowest at the perfect prediction ({at_perfect:.6g}; the sample's prediction "
                f"gives {at_pred:.6g}; {len(near)} nearby predictions are not lower)",
                evidence={**ev, "neighbours": [what for what, _ in near]},
            )
        ]

    def _randoms(self, sample: Sample) -> list[tuple[str, Tensor]]:
        """Predictions that carry no information about the target, in the valid domain: the
        sample's prediction with its rows shuffled (realistic predictions have skill, so a
        minimum at ``-target`` or at twice the target hides behind them)."""
        pred = sample.pred.detach()
        n = pred.shape[0] if pred.dim() else 0
        if n < 2:
            return []
        gen = torch.Generator().manual_seed(23)
        out: list[tuple[str, Tensor]] = []
        for i in range(2):
            perm = torch.randperm(n, generator=gen)
            if bool((perm == torch.arange(n)).all()):
                perm = torch.roll(perm, 1 + i)
            out.append(
                (f"the sample's prediction, rows shuffled ({i + 1})", pred[perm.to(pred.device)])
            )
        return out

    def _neighbours(
        self, ctx: Context, sample: Sample, loss: _Loss, perfect: Tensor
    ) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for what, r in self._randoms(sample):
            for mix in MIXES:
                v = loss(_project(ctx, perfect + mix * (r.to(perfect.dtype) - perfect)))
                if v is not None:
                    found.append((f"moving {mix:g} of the way to {what}", v))
        if ctx.input_kind != "values":
            return found
        # Values: the perfect prediction is a stationary point; small noise and descent
        # steps from it must not lower the loss.
        scale = max(_rms(sample.target.to(perfect.dtype)), _rms(perfect), 1e-3)
        gen = torch.Generator().manual_seed(5)
        for i in range(2):
            e = torch.randn(perfect.shape, generator=gen).to(perfect.dtype).to(perfect.device)
            v = loss(perfect + 0.05 * scale * e)
            if v is not None:
                found.append((f"noise of 5 % of the target's scale (draw {i + 1})", v))
        _, g, _ = loss.grad(perfect)
        if g is not None and _rms(g) > 0 and bool(torch.isfinite(g).all()):
            d = _direction(g.to(perfect.dtype))
            for lr in (0.1, 0.01):
                v = loss(perfect - lr * scale * d)
                if v is not None:
                    found.append(
                        (f"a descent step of {lr:g} x scale from the perfect prediction", v)
                    )
        return found

    def _log_link(
        self,
        ctx: Context,
        sample: Sample,
        loss: _Loss,
        perfect: Tensor,
        at_pred: float,
        tol: float,
    ) -> Optional[Finding]:
        """Values with a minimum at ``log(target)`` (log-rate inputs, e.g. a Poisson NLL with
        log_input=True): information, not an error."""
        if ctx.input_kind != "values" or bool((perfect < 0).any()):
            return None
        logp = perfect.clamp_min(1e-6).log()
        at_log = loss(logp)
        if at_log is None or at_log > at_pred + tol:
            return None
        near = self._neighbours(ctx, sample, loss, logp)
        span = abs(at_pred - at_log)
        if any(math.isfinite(v) and v < at_log - tol - 1e-3 * span for _, v in near):
            return None
        return Finding(
            NAME,
            "info",
            f"the minimum is at log(target) ({at_log:.6g}), not at the target: the function "
            "takes log-scale predictions (a log link)",
            evidence={**{"sample": sample.note}, "loss_at_log_target": num(at_log)},
        )

    # ------------------------------------------------------------------------------- 3.
    def _descent(
        self,
        ctx: Context,
        sample: Sample,
        loss: _Loss,
        at_pred: float,
        noise: float,
        base: dict[str, Any],
    ) -> list[Finding]:
        pred = sample.pred.detach()
        _, g, reason = loss.grad(pred)
        if reason is not None:
            return [Finding(NAME, "info", f"descent not checked: {reason}"[:300], evidence=base)]
        if g is None:
            return [Finding(NAME, "info", "descent not checked: no gradient path", evidence=base)]
        if not bool(torch.isfinite(g).all()):
            return [
                Finding(NAME, "info", "descent not checked: non-finite gradient", evidence=base)
            ]
        if _rms(g) == 0.0:
            return [
                Finding(
                    NAME,
                    "info",
                    "descent not checked: the gradient is zero at the sample's prediction",
                    evidence=base,
                )
            ]
        scale = max(_rms(pred), 1e-3)
        d = _direction(g.to(pred.dtype))
        tol = 1e-7 + 1e-6 * abs(at_pred) + 3 * noise
        tried: list[tuple[float, Any]] = []
        chosen: Optional[float] = None
        for lr in STEPS:
            v = loss(_project(ctx, pred - lr * scale * d))
            tried.append((lr, num(v) if v is not None else "failed"))
            if v is not None and v < at_pred - tol:
                chosen = lr
                break
        ev = {**base, "loss": num(at_pred), "steps": [[lr, v] for lr, v in tried]}
        if chosen is None:
            return [
                Finding(
                    NAME,
                    "error",
                    f"no gradient step lowers the loss (from {at_pred:.6g}; "
                    f"step sizes {', '.join(f'{lr:g}' for lr, _ in tried)} x scale): the "
                    "gradient does not point downhill",
                    fix=FIX_DESCENT,
                    evidence=ev,
                )
            ]
        trajectory = self._steps(ctx, loss, pred, chosen * scale)
        ev["trajectory"] = [num(at_pred), *[num(v) for v in trajectory]]
        return [
            Finding(
                NAME,
                "ok",
                f"gradient descent lowers the loss ({at_pred:.6g} -> "
                f"{(trajectory[-1] if trajectory else at_pred):.6g} in "
                f"{max(len(trajectory), 1)} step(s))",
                evidence=ev,
            )
        ]

    def _steps(self, ctx: Context, loss: _Loss, x: Tensor, lr: float, n: int = 3) -> list[float]:
        out: list[float] = []
        for _ in range(n):
            _, g, _ = loss.grad(x)
            if g is None or _rms(g) == 0.0 or not bool(torch.isfinite(g).all()):
                break
            x = _project(ctx, x - lr * _direction(g.to(x.dtype)))
            v = loss(x)
            if v is None:
                break
            out.append(v)
        return out


PROBE = MinimumProbe()
