"""The semantics and performance probes of ``losslab check``: shape_traps, reductions,
batch_invariance, minimum, performance.

Each probe is run on (a) healthy losses (losslab's own, and plain correct code), which must get
no error (and, for the probe's own property, no warning), (b) planted bugs written here, a few
lines each, which must be flagged with the expected severity, and (c) functions that raise,
hang, or return garbage, on which every probe must still return JSON-able findings without
raising. Contexts come from ``losslab.doctor.inputs.build_context``, the doctor's own inputs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from typing import Any, Callable, Optional

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import losslab.functional as LF
from losslab.doctor._types import SEVERITIES, Context, Finding, Probe
from losslab.doctor.inputs import build_context
from losslab.doctor.probes import batch_invariance, minimum, performance, reductions, shape_traps

PROBES: dict[str, Probe] = {
    "shape_traps": shape_traps.PROBE,
    "reductions": reductions.PROBE,
    "batch_invariance": batch_invariance.PROBE,
    "minimum": minimum.PROBE,
    "performance": performance.PROBE,
}
RANK = {s: i for i, s in enumerate(SEVERITIES)}


def run(
    probe: str, fn: Callable[..., Any], task: str, kind: Optional[str] = None, **ctx_changes: Any
) -> list[Finding]:
    ctx = build_context(fn, task=task, input_kind=kind)
    if ctx_changes:
        ctx = dataclasses.replace(ctx, **ctx_changes)
    findings = PROBES[probe].run(ctx)
    assert findings and all(isinstance(f, Finding) for f in findings)
    for f in findings:
        assert f.probe == probe
        assert f.severity in SEVERITIES
        json.dumps(f.to_dict(), allow_nan=False)  # evidence is strict JSON
        if f.severity in ("warning", "error"):
            assert f.message and "\n" not in f.message and f.fix, f
    return findings


def worst(findings: list[Finding]) -> str:
    return max((f.severity for f in findings), key=RANK.__getitem__)


def flagged(findings: list[Finding], severity: str) -> list[Finding]:
    return [f for f in findings if f.severity == severity]


# --------------------------------------------------------------------------- planted bugs
def mse_no_check(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean()


def mse_checked(pred: Tensor, target: Tensor) -> Tensor:
    if pred.shape != target.shape:
        raise ValueError("shape mismatch")
    return ((pred - target) ** 2).mean()


def mse_squeezes_pred(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred.squeeze() - target) ** 2).mean()  # (B,) pred against a (B, 1) target


def bce_squeezes(logits: Tensor, target: Tensor) -> Tensor:
    # squeezing both sides is a fix, not a bug: the matched-shape value
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), target.reshape(-1))


def seg_broadcast_bce(logits: Tensor, target: Tensor) -> Tensor:
    # binary segmentation without a shape check: (B, 1, H, W) against (B, H, W)
    return F.softplus(logits).mean() - (logits * target).mean()


def mse_feature_weight_wrong_axis(
    pred: Tensor, target: Tensor, weight: Optional[Tensor] = None
) -> Tensor:
    err = (pred - target) ** 2
    if weight is not None:
        err = err * weight[:, None]  # meant the last axis: lines up with the middle one
    return err.mean()


def mse_feature_weight_right_axis(
    pred: Tensor, target: Tensor, weight: Optional[Tensor] = None
) -> Tensor:
    if pred.shape != target.shape:
        raise ValueError("shape mismatch")
    err = (pred - target) ** 2
    return (err * weight).mean() if weight is not None else err.mean()


def mae_sample_weight_last_axis(
    pred: Tensor, target: Tensor, *, sample_weight: Optional[Tensor] = None
) -> Tensor:
    err = (pred - target).abs()
    if sample_weight is not None:
        err = err * sample_weight  # (B,) broadcasts along the LAST axis
    return err.mean()


def ce_class_weight_per_row(
    logits: Tensor, target: Tensor, *, class_weight: Optional[Tensor] = None
) -> Tensor:
    nll = F.cross_entropy(logits, target, reduction="none")
    if class_weight is not None:
        nll = nll * class_weight  # (B,) * (C,): should be class_weight[target]
    return nll.mean()


def ce_class_weight_gathered(
    logits: Tensor, target: Tensor, *, class_weight: Optional[Tensor] = None
) -> Tensor:
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError("shape mismatch")
    nll = F.cross_entropy(logits, target, reduction="none")
    if class_weight is None:
        return nll.mean()
    w = class_weight[target]
    return (nll * w).sum() / w.sum()


def mse_reduction_ignored(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    return ((pred - target) ** 2).mean()


def bce_none_is_mean(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    loss = F.softplus(logits) - logits * target
    return loss.sum() if reduction == "sum" else loss.mean()


def ce_sum_is_mean(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    loss = F.cross_entropy(logits, target, reduction="none")
    if reduction == "none":
        return loss
    if reduction not in ("mean", "sum"):
        raise ValueError(reduction)
    return loss.mean()


def mse_mean_over_batch(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    loss = (pred - target) ** 2
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / (2 * loss.shape[0])  # a documented-nowhere normalization
    raise ValueError(reduction)


def mse_fixed_divisor(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).sum() / 32


def ce_position_weights(logits: Tensor, target: Tensor) -> Tensor:
    nll = F.cross_entropy(logits, target, reduction="none")
    w = torch.linspace(1.0, 2.0, nll.shape[0], dtype=nll.dtype)
    return (w * nll).mean()


def mse_sum_over_fixed_count(pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    loss = (pred - target) ** 2
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / 32  # "mean" over a hard-coded batch size


def mse_negated(pred: Tensor, target: Tensor) -> Tensor:
    return -((pred - target) ** 2).mean()


def mae_plus(pred: Tensor, target: Tensor) -> Tensor:
    return (pred + target).abs().mean()


def dice_score_not_loss(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.softmax(logits, 1)
    hot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(p.dtype)
    return (2 * (p * hot).sum() + 1) / (p.sum() + hot.sum() + 1)


def mse_shrunk_target(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - 0.5 * target) ** 2).mean()


class _Flip(torch.autograd.Function):
    """Identity forward, negated backward: descent becomes ascent."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        return -g


def mse_ascent_backward(pred: Tensor, target: Tensor) -> Tensor:
    return ((_Flip.apply(pred) - target) ** 2).mean()


def bce_ascent_backward(logits: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(_Flip.apply(logits), target)


def mae_pairwise(pred: Tensor, target: Tensor) -> Tensor:
    d = (pred.reshape(-1, 1) - target.reshape(1, -1)).abs()  # (n, n) for the diagonal
    return d.diagonal().mean()


def ce_row_loop(logits: Tensor, target: Tensor) -> Tensor:
    total = logits.new_zeros(())
    for i in range(logits.shape[0]):
        total = total - torch.log_softmax(logits[i], 0)[target[i]]
    return total / logits.shape[0]


def seg_pixel_outer(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.softmax(logits, 1).flatten(2)
    hot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(p.dtype).flatten(2)
    inter = (p.unsqueeze(-1) * hot.unsqueeze(-2)).diagonal(dim1=-2, dim2=-1).sum(-1)
    return 1 - ((2 * inter + 1) / (p.sum(-1) + hot.sum(-1) + 1)).mean()


# --------------------------------------------------------------------------- healthy losses
HEALTHY = [
    (LF.mse_loss, "regression", None),
    (LF.bce_with_logits_loss, "binary", None),
    (LF.bce_probs_loss, "binary", "probs"),
    (LF.cross_entropy_loss, "multiclass", None),
    (LF.bce_with_logits_loss, "multilabel", None),
    (functools.partial(LF.dice_loss, mode="multiclass"), "segmentation", None),
    (LF.ranknet_loss, "ranking", None),
    (LF.time_weighted_mse_loss, "forecasting", None),
]


@pytest.mark.parametrize("probe", [p for p in PROBES if p != "performance"])
@pytest.mark.parametrize(
    "fn,task,kind", HEALTHY, ids=[f"{t}-{getattr(f, '__name__', 'dice')}" for f, t, _ in HEALTHY]
)
def test_healthy_losslab_losses_get_no_warning(probe: str, fn: Any, task: str, kind: Any) -> None:
    findings = run(probe, fn, task, kind)
    assert RANK[worst(findings)] < RANK["warning"], findings


def test_performance_healthy_is_information_only() -> None:
    for fn, task in ((LF.mse_loss, "regression"), (mse_checked, "regression")):
        findings = run("performance", fn, task)
        if worst(findings) == "warning":  # a burst of load on a shared machine: measure again
            findings = run("performance", fn, task)
        assert worst(findings) == "info", findings
        assert {f.message.split(" ")[0] for f in findings}  # time and growth both reported
        assert len(findings) == 2


# ------------------------------------------------------------------------------ shape_traps
@pytest.mark.parametrize(
    "fn,task",
    [
        (mse_no_check, "regression"),
        (mse_no_check, "forecasting"),  # (T, T, 1) against (T, T)
        (mse_squeezes_pred, "regression"),  # only the (B,) vs (B, 1) target direction
        (mse_no_check, "multilabel"),
    ],
)
def test_shape_traps_flags_silent_broadcast(fn: Any, task: str) -> None:
    errors = flagged(run("shape_traps", fn, task), "error")
    assert errors, fn
    ev = errors[0].evidence
    assert ev["called_with"]["pred"] != ev["called_with"]["target"]
    assert "returned" in ev and "value_with_matched_shapes" in ev


def test_shape_traps_binary_segmentation_broadcast() -> None:
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(4, 1, 6, 6, generator=g) > 0.5).float()
    logits = 2 * target - 1 + torch.randn(4, 1, 6, 6, generator=g)
    ctx = build_context(seg_broadcast_bce, task="segmentation", sample=(logits, target))
    findings = shape_traps.PROBE.run(ctx)
    assert flagged(findings, "error"), findings


@pytest.mark.parametrize(
    "fn,task", [(mse_checked, "regression"), (bce_squeezes, "binary"), (LF.mse_loss, "forecasting")]
)
def test_shape_traps_passes_checked_or_squeezing_functions(fn: Any, task: str) -> None:
    findings = run("shape_traps", fn, task)
    assert worst(findings) == "ok", findings


@pytest.mark.parametrize(
    "fn,task,keyword,follows",
    [
        (mse_feature_weight_wrong_axis, "regression", "weight", 1),
        (mae_sample_weight_last_axis, "forecasting", "sample_weight", 2),
        (ce_class_weight_per_row, "multiclass", "class_weight", 0),
    ],
)
def test_shape_traps_flags_weight_on_the_wrong_axis(
    fn: Any, task: str, keyword: str, follows: int
) -> None:
    warnings = [f for f in flagged(run("shape_traps", fn, task), "warning") if keyword in f.message]
    assert warnings, fn
    ev = warnings[0].evidence
    assert ev["keyword"] == keyword and ev["follows_axis"] == follows
    assert ev["expected_axis"] != follows
    assert ev["value"] != ev["value_after_permuting_axis_with_weights"]


@pytest.mark.parametrize(
    "fn,task",
    [(mse_feature_weight_right_axis, "regression"), (ce_class_weight_gathered, "multiclass")],
)
def test_shape_traps_passes_weights_on_the_right_axis(fn: Any, task: str) -> None:
    findings = run("shape_traps", fn, task)
    assert worst(findings) == "ok", findings
    assert any("follows axis" in f.message for f in findings)


def test_shape_traps_without_weight_argument_and_scalar_weight() -> None:
    assert any(
        "no weight argument" in f.message for f in run("shape_traps", mse_checked, "regression")
    )
    # losslab's mse takes a scalar `weight` (and a per-sample `sample_weight`)
    findings = run("shape_traps", LF.mse_loss, "regression")
    assert any("takes no vector" in f.message for f in findings)
    assert any("`sample_weight` (length 4) follows axis 0" in f.message for f in findings)


# ------------------------------------------------------------------------------- reductions
@pytest.mark.parametrize(
    "fn,task,what",
    [
        (mse_reduction_ignored, "regression", 'reduction="none" returns a scalar'),
        (mse_reduction_ignored, "regression", 'reduction="meen" is accepted'),
        (bce_none_is_mean, "binary", 'reduction="none" returns a scalar'),
        (ce_sum_is_mean, "multiclass", "sums to"),
        (mse_mean_over_batch, "forecasting", 'reduction="mean" gives'),
    ],
)
def test_reductions_flags(fn: Any, task: str, what: str) -> None:
    warnings = flagged(run("reductions", fn, task), "warning")
    assert any(what in f.message for f in warnings), warnings


def test_reductions_evidence_has_both_values() -> None:
    (f,) = [f for f in run("reductions", ce_sum_is_mean, "multiclass") if "sums to" in f.message]
    assert f.evidence["none_sum"] != f.evidence["sum"]
    (f,) = [
        f for f in run("reductions", mse_mean_over_batch, "forecasting") if "gives" in f.message
    ]
    assert f.evidence["mean"] != f.evidence["none.mean()"]


def test_reductions_not_applicable_and_weighted_mean() -> None:
    assert worst(run("reductions", mse_checked, "regression")) == "ok"
    # ranknet's mean is over the pairs of the batch (documented): information, no warning
    findings = run("reductions", LF.ranknet_loss, "ranking")
    assert worst(findings) in ("ok", "info"), findings


# ------------------------------------------------------------------------ batch_invariance
@pytest.mark.parametrize(
    "fn,task",
    [
        (mse_fixed_divisor, "regression"),
        (ce_position_weights, "multiclass"),
        (mse_sum_over_fixed_count, "regression"),
    ],
)
def test_batch_invariance_flags(fn: Any, task: str) -> None:
    warnings = flagged(run("batch_invariance", fn, task), "warning")
    assert warnings, fn
    ev = warnings[0].evidence
    assert "split" in ev or "permutation" in ev


def test_batch_invariance_position_weights_fail_permutation() -> None:
    findings = run("batch_invariance", ce_position_weights, "multiclass")
    (perm,) = [f for f in findings if "permuting" in f.message]
    assert perm.severity == "warning"
    assert perm.evidence["value"] != perm.evidence["value_permuted"]


def test_batch_invariance_is_information_when_the_task_allows_it() -> None:
    findings = run("batch_invariance", mse_fixed_divisor, "regression", batch_invariant=False)
    assert worst(findings) == "info"
    assert any("depends on the batch split" in f.message for f in findings)


def test_batch_invariance_skips_nondeterministic_functions() -> None:
    def noisy(pred: Tensor, target: Tensor) -> Tensor:
        return ((pred - target) ** 2).mean() * (1 + 0.1 * torch.rand(()))

    findings = run("batch_invariance", noisy, "regression")
    assert worst(findings) == "info" and "nondeterministic" in findings[0].message


# --------------------------------------------------------------------------------- minimum
@pytest.mark.parametrize(
    "fn,task,what",
    [
        (mse_negated, "regression", "minimum is not at the target"),
        (mae_plus, "regression", "minimum is not at the target"),
        (dice_score_not_loss, "segmentation", "minimum is not at the target"),
        (mse_ascent_backward, "regression", "no gradient step lowers the loss"),
        (bce_ascent_backward, "binary", "no gradient step lowers the loss"),
    ],
)
def test_minimum_flags_errors(fn: Any, task: str, what: str) -> None:
    errors = flagged(run("minimum", fn, task), "error")
    assert any(what in f.message for f in errors), errors


def test_minimum_flags_a_shifted_minimum_as_warning() -> None:
    findings = run("minimum", mse_shrunk_target, "forecasting")
    assert worst(findings) == "warning"
    (f,) = flagged(findings, "warning")
    assert "not a local minimum" in f.message and "lower_at" in f.evidence


def test_minimum_accepts_a_non_zero_minimum_and_a_log_link() -> None:
    def mse_plus_one(pred: Tensor, target: Tensor) -> Tensor:
        return ((pred - target) ** 2).mean() + 1.0

    assert worst(run("minimum", mse_plus_one, "regression")) == "ok"
    g = torch.Generator().manual_seed(3)
    counts = torch.poisson(3 * torch.rand(16, generator=g) + 0.5, generator=g)
    ctx = build_context(
        LF.poisson_nll_loss, task="regression", sample=(torch.randn(16, generator=g), counts)
    )
    findings = minimum.PROBE.run(ctx)
    assert worst(findings) == "info"
    assert any("log(target)" in f.message for f in findings)


def test_minimum_descent_evidence() -> None:
    (f,) = [f for f in run("minimum", LF.mse_loss, "regression") if "descent" in f.message]
    assert f.severity == "ok"
    trajectory = f.evidence["trajectory"]
    assert trajectory[-1] < trajectory[0]


# ----------------------------------------------------------------------------- performance
@pytest.mark.parametrize(
    "fn,task,what",
    [
        (mae_pairwise, "regression", "grows like"),
        (ce_row_loop, "multiclass", "slower than"),
        (seg_pixel_outer, "segmentation", "per-sample size"),
    ],
)
def test_performance_flags(fn: Any, task: str, what: str) -> None:
    start = time.perf_counter()
    findings = run("performance", fn, task)
    assert time.perf_counter() - start < 5.0  # the probe budgets itself (~1.2 s of timing)
    assert not flagged(findings, "error")
    assert any(what in f.message for f in flagged(findings, "warning")), findings


def test_performance_evidence() -> None:
    findings = run("performance", mae_pairwise, "regression")
    timing, growth = findings
    assert timing.evidence["ms_per_call"] is not None and timing.evidence["baseline_ms_per_call"]
    assert "bytes" in timing.evidence and timing.evidence["memory"]
    assert growth.evidence["batch"]["exponent"] > 1.6
    assert len(growth.evidence["batch"]["elements"]) == len(growth.evidence["batch"]["ms"])


def test_performance_restores_threads() -> None:
    threads = torch.get_num_threads()
    run("performance", LF.mse_loss, "regression")
    assert torch.get_num_threads() == threads


# -------------------------------------------------------------- robustness: never raises
def _raises(pred: Tensor, target: Tensor) -> Tensor:
    raise RuntimeError("boom")


def _returns_none(pred: Tensor, target: Tensor) -> Any:
    return None


def _returns_string(pred: Tensor, target: Tensor) -> Any:
    return "loss"


def _returns_nan(pred: Tensor, target: Tensor) -> Tensor:
    return (pred * float("nan")).mean()


def _returns_matrix(pred: Tensor, target: Tensor) -> Tensor:
    return torch.ones(3, 3)


def _returns_int(pred: Tensor, target: Tensor) -> Tensor:
    return torch.tensor(3)


def _returns_float(pred: Tensor, target: Tensor) -> float:
    return float(((pred - target) ** 2).mean().detach())


def _returns_list(pred: Tensor, target: Tensor) -> Any:
    return [pred.sum()]


def _random(
    pred: Tensor, target: Tensor, reduction: str = "mean", sample_weight: Any = None
) -> Tensor:
    return torch.rand(()) + 0 * pred.sum()


def _raises_on_keywords(pred: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
    if kwargs:
        raise TypeError("no keywords")
    return ((pred - target) ** 2).mean()


def _hangs(pred: Tensor, target: Tensor) -> Tensor:
    time.sleep(5)
    return pred.sum()


def _exits(pred: Tensor, target: Tensor) -> Tensor:
    raise SystemExit(3)


GARBAGE = [
    _raises,
    _returns_none,
    _returns_string,
    _returns_nan,
    _returns_matrix,
    _returns_int,
    _returns_float,
    _returns_list,
    _random,
    _raises_on_keywords,
    _exits,
]


@pytest.mark.parametrize("probe", list(PROBES))
@pytest.mark.parametrize("fn", GARBAGE, ids=[f.__name__ for f in GARBAGE])
def test_never_raises_on_garbage(probe: str, fn: Any) -> None:
    findings = run(probe, fn, "regression")
    # the only errors are true ones: these two compute an unchecked (pred - target) ** 2
    real = probe == "shape_traps" and fn in (_returns_float, _raises_on_keywords)
    assert ("error" in {f.severity for f in findings}) == real, findings


@pytest.mark.parametrize("probe", list(PROBES))
def test_never_raises_on_a_hang(probe: str) -> None:
    ctx = build_context(_hangs, task="binary", timeout=0.05)
    start = time.perf_counter()
    findings = PROBES[probe].run(ctx)
    assert findings and time.perf_counter() - start < 2.0
    assert all(f.severity in ("ok", "info") for f in findings), findings


@pytest.mark.parametrize("probe", list(PROBES))
def test_never_raises_on_a_broken_context(probe: str) -> None:
    ctx = build_context(LF.mse_loss, task="regression")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("generator broken")

    ctx = dataclasses.replace(ctx, make_sample=broken, perfect=broken, baseline=broken)
    findings = PROBES[probe].run(ctx)
    assert findings and all(isinstance(f, Finding) for f in findings)
    assert "error" not in {f.severity for f in findings}
    empty = dataclasses.replace(ctx, samples=[])
    assert PROBES[probe].run(empty)


def test_probe_names_and_titles() -> None:
    for name, probe in PROBES.items():
        assert probe.name == name and probe.title
    assert isinstance(build_context(LF.mse_loss, task="regression"), Context)
