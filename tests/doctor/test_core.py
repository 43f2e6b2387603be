"""The doctor's core: generated inputs (build_context), check(), the three core probes
(returns_tensor, inplace, determinism), report rendering and losslab.testing.assert_healthy."""

from __future__ import annotations

import functools
import importlib
import io
import json
import re
import time
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import losslab.functional as LF
from losslab.doctor._types import Context, Finding, Report, Sample, severity_rank
from losslab.doctor.check import PROBE_CRASH, available_probes, check
from losslab.doctor.inputs import ALLOWED_KINDS, TASKS, build_context, call_keywords
from losslab.doctor.probes import determinism, inplace, returns_tensor
from losslab.doctor.report import evidence_summary, format_text, print_report, summary, to_json
from losslab.testing import assert_healthy

check_module = importlib.import_module("losslab.doctor.check")

CORE = ["determinism", "inplace", "returns_tensor"]
WARNING = severity_rank("warning")


def mse(pred, target):
    return ((pred - target) ** 2).mean()


def worst(findings: list[Finding]) -> str:
    return max((f.severity for f in findings), key=severity_rank, default="ok")


def run_probe(probe: Any, fn: Any, task: str = "regression", **kw: Any) -> list[Finding]:
    findings = probe.run(build_context(fn, task=task, **kw))
    assert findings and all(isinstance(f, Finding) and f.probe == probe.name for f in findings)
    for f in findings:
        json.dumps(f.to_dict())
        if f.severity != "ok":
            assert f.message and "\n" not in f.message
    return findings


# ------------------------------------------------------------------------------- build_context
SHAPES = {
    # task: (pred shape, target shape, target dtype)
    "binary": ((16,), (16,), torch.float32),
    "multiclass": ((16, 5), (16,), torch.int64),
    "multilabel": ((8, 4), (8, 4), torch.float32),
    "regression": ((16,), (16,), torch.float32),
    "segmentation": ((4, 3, 8, 8), (4, 8, 8), torch.int64),
    "ranking": ((4, 8), (4, 8), torch.float32),
    "forecasting": ((4, 12), (4, 12), torch.float32),
}
TASK_KINDS = [
    (t, k) for t in TASKS for k in ALLOWED_KINDS[t] if not (t == "ranking" and k == "logits")
]


@pytest.mark.parametrize("task,kind", TASK_KINDS)
def test_context_shapes_and_dtypes(task: str, kind: str) -> None:
    ctx = build_context(mse, task=task, input_kind=kind)
    pred_shape, target_shape, target_dtype = SHAPES[task]
    assert ctx.task == task and ctx.input_kind == kind
    s = ctx.samples[0]
    assert tuple(s.pred.shape) == pred_shape and s.pred.dtype == torch.float32
    assert tuple(s.target.shape) == target_shape and s.target.dtype == target_dtype
    assert not s.pred.requires_grad and s.note
    assert len(ctx.samples) == 3 and ctx.samples[2].pred.shape[0] != pred_shape[0]
    for group in (ctx.samples, ctx.edge_samples, ctx.extreme_samples):
        for x in group:
            assert isinstance(x, Sample) and x.note
            assert x.pred.dim() == len(pred_shape) and x.target.dtype == target_dtype
    # values the task promises
    t = s.target
    if task in ("binary", "multilabel"):
        assert set(t.unique().tolist()) == {0.0, 1.0}
    if task == "multiclass":
        assert set(t.tolist()) == set(range(5))
    if task == "segmentation":
        assert int(t.min()) == 0 and int(t.max()) < 3
    if task == "ranking":
        assert t.min() >= 0 and t.max() <= 4 and bool((t == t.round()).all())
    if kind == "probs":
        assert bool(((s.pred > 0) & (s.pred < 1)).all())
        if task in ("multiclass", "segmentation"):
            assert torch.allclose(s.pred.sum(1), torch.ones(()))
    # the perfect prediction has pred's shape and dtype and is a better prediction
    perfect = ctx.perfect(s)
    assert perfect.shape == s.pred.shape and perfect.dtype == s.pred.dtype
    base = ctx.baseline
    assert base is not None
    assert float(base(perfect, t)) < float(base(s.pred, t))


@pytest.mark.parametrize("task", TASKS)
def test_generators_are_seeded_and_leave_the_global_rng_alone(task: str) -> None:
    before = torch.random.get_rng_state()
    a = build_context(mse, task=task)
    b = build_context(mse, task=task)
    assert torch.equal(torch.random.get_rng_state(), before)
    for x, y in zip(
        [*a.samples, *a.edge_samples, *a.extreme_samples],
        [*b.samples, *b.edge_samples, *b.extreme_samples],
    ):
        assert torch.equal(x.pred, y.pred) and torch.equal(x.target, y.target) and x.note == y.note
    assert not torch.equal(a.samples[0].pred, a.samples[1].pred)
    s1, s2 = a.make_sample(seed=7), a.make_sample(seed=7)
    assert torch.equal(s1.pred, s2.pred) and torch.equal(s1.target, s2.target)
    small = a.make_sample(batch=3, size=4, dtype=torch.float64, seed=1)
    assert small.pred.shape[0] == 3 and small.pred.dtype == torch.float64
    if small.target.is_floating_point():
        assert small.target.dtype == torch.float64
    assert a.make_sample(device="meta").pred.device.type == "meta"


def test_make_sample_size_meaning() -> None:
    def shape(task: str, **kw: Any) -> tuple[int, ...]:
        return tuple(build_context(mse, task=task).make_sample(**kw).pred.shape)

    assert shape("regression", batch=2) == (2,)
    assert shape("regression", batch=2, size=3) == (2, 3)
    assert shape("binary", batch=2, size=3) == (2, 3)
    assert shape("multiclass", batch=2, size=7) == (2, 7)
    assert shape("segmentation", batch=2, size=5) == (2, 3, 5, 5)
    assert shape("ranking", batch=2, size=20) == (2, 20)
    assert shape("forecasting", batch=2, size=30) == (2, 30)
    with pytest.raises(ValueError, match="batch"):
        build_context(mse, task="regression").make_sample(batch=0)


def test_flags_from_task_and_signature() -> None:
    assert build_context(LF.mse_loss, task="regression").has_reduction
    assert not build_context(mse, task="regression").has_reduction
    assert not build_context(LF.MSELoss(), task="regression").has_reduction  # set at build time
    for task in TASKS:
        expected = task not in ("segmentation", "ranking")
        assert build_context(mse, task=task).batch_invariant is expected
    assert call_keywords(LF.ranknet_loss) >= {"mask", "sample_weight", "reduction"}
    assert call_keywords(LF.RankNetLoss()) == {"mask", "group", "sample_weight"}
    assert call_keywords(lambda p, t, w=None, *, mask=None, **kw: p) == {"w", "mask"}


def test_edge_samples_follow_the_signature() -> None:
    def plain(logits, target):
        return logits.sum()

    def with_keywords(logits, target, *, mask=None, ignore_index=-1, sample_weight=None):
        return logits.sum()

    notes = [s.note for s in build_context(plain, task="binary").edge_samples]
    assert any("negative" in n for n in notes) and any("single-element" in n for n in notes)
    assert not any("mask" in n or "ignored" in n or "weight" in n for n in notes)

    edges = {s.note: s for s in build_context(with_keywords, task="binary").edge_samples}
    empty = next(s for n, s in edges.items() if n.startswith("empty mask"))
    assert empty.kwargs["mask"].dtype == torch.bool and not bool(empty.kwargs["mask"].any())
    ignored = next(s for n, s in edges.items() if n.startswith("all targets ignored"))
    assert ignored.kwargs["ignore_index"] == -1 and bool((ignored.target == -1).all())
    zero = next(s for n, s in edges.items() if "weight" in n)
    assert (
        zero.kwargs["sample_weight"].shape == (16,)
        and float(zero.kwargs["sample_weight"].sum()) == 0
    )
    single = next(s for n, s in edges.items() if "single" in n)
    assert single.pred.shape == (1,)

    # ranking: lists with no valid pair, an empty mask, padded lists
    notes = [s.note for s in build_context(LF.ranknet_loss, task="ranking").edge_samples]
    assert any("no valid pair" in n for n in notes) and any("padded" in n for n in notes)
    # segmentation without an int default: label 255
    seg = build_context(functools.partial(LF.cross_entropy_loss), task="segmentation")
    ignored = [s for s in seg.edge_samples if s.note.startswith("all targets ignored")]
    assert ignored and bool((ignored[0].target == 255).all())


def test_extreme_samples() -> None:
    logits = build_context(mse, task="binary").extreme_samples
    mags = {float(s.pred.abs().max()) for s in logits}
    assert mags == {30.0, 100.0, 1e4}
    assert all(bool((s.pred > 0).any() and (s.pred < 0).any()) for s in logits)
    probs = build_context(mse, task="binary", input_kind="probs").extreme_samples
    assert any(bool((s.pred == 0).any() and (s.pred == 1).any()) for s in probs)
    cls = build_context(mse, task="multiclass", input_kind="probs").extreme_samples
    assert torch.equal(cls[0].pred.sum(1), torch.ones(16))
    values = build_context(mse, task="regression").extreme_samples
    assert max(float(s.pred.abs().max()) for s in values) == 1e4
    scores = build_context(mse, task="ranking").extreme_samples
    assert max(float(s.pred.abs().max()) for s in scores) > 1e3


def test_user_sample() -> None:
    pred, target = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 3, (6,))
    ctx = build_context(mse, task="multiclass", sample=(pred, target))
    s0 = ctx.samples[0]
    assert torch.equal(s0.pred, pred) and s0.pred.data_ptr() != pred.data_ptr()  # a copy
    for s in ctx.samples[1:]:
        assert s.pred.shape == pred.shape and s.pred.dtype == torch.float64
        assert not torch.equal(s.pred, pred) and torch.equal(s.target, target)
    rows = ctx.make_sample(batch=10, seed=3)
    assert rows.pred.shape == (10, 3) and rows.target.shape == (10,)
    assert all(s.pred.dtype == torch.float64 for s in ctx.extreme_samples)
    # probabilities stay probabilities when perturbed
    p = torch.softmax(torch.randn(6, 3), 1)
    ctx = build_context(mse, task="multiclass", input_kind="probs", sample=Sample(p, target))
    assert torch.allclose(ctx.samples[1].pred.sum(1), torch.ones(6))
    # with kwargs
    ctx = build_context(
        LF.mse_loss, task="regression", sample=(pred[:, 0], pred[:, 1], {"weight": 2.0})
    )
    assert ctx.samples[0].kwargs == {"weight": 2.0}


def test_user_sample_survives_a_function_that_mangles_it() -> None:
    pred, target = torch.randn(8), torch.randn(8)
    keep = target.clone()

    def zeroes_target(p, t):
        t.zero_()
        return ((p - t) ** 2).mean()

    check(zeroes_target, task="regression", sample=(pred, target), probes=CORE)
    assert torch.equal(target, keep)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"task": "regresion"}, ValueError, "Did you mean 'regression'"),
        ({"task": "classification"}, ValueError, "must be one of binary"),
        ({"task": 3}, TypeError, "task"),
        ({"task": "regression", "input_kind": "logits"}, ValueError, "values"),
        ({"task": "binary", "input_kind": "logit"}, ValueError, "Did you mean 'logits'"),
        ({"task": "binary", "sample": [1, 2]}, TypeError, "pred must be a torch.Tensor"),
        ({"task": "binary", "sample": "x"}, TypeError, "`sample` must be"),
        (
            {"task": "binary", "sample": (torch.ones(3, dtype=torch.long), torch.ones(3))},
            TypeError,
            "floating",
        ),
        ({"task": "binary", "sample": (torch.ones(3), torch.ones(3), [1])}, TypeError, "kwargs"),
        ({"task": "binary", "sample": (torch.ones(()), torch.ones(()))}, ValueError, "batch"),
        ({"task": "binary", "timeout": 0}, ValueError, "timeout"),
        ({"task": "binary", "timeout": "1"}, TypeError, "timeout"),
    ],
)
def test_bad_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        build_context(mse, **kwargs)
    with pytest.raises(exc, match=match):
        check(mse, probes=["returns_tensor"], **kwargs)


def test_fn_not_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        build_context(3, task="regression")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- check
def test_check_runs_every_probe_in_name_order() -> None:
    names = available_probes()
    assert set(CORE) <= set(names) and list(names) == sorted(names)
    report = check(LF.mse_loss, task="regression")
    assert isinstance(report, Report)
    seen = list(dict.fromkeys(f.probe for f in report.findings))
    assert seen == list(names)
    assert report.task == "regression" and report.input_kind == "values"
    assert report.target == "losslab.losses.regression.mse.mse_loss"
    assert not report.failed("error"), format_text(report, min_severity="error")


@pytest.mark.parametrize(
    "fn,task",
    [
        (LF.bce_with_logits_loss, "binary"),
        (LF.cross_entropy_loss, "multiclass"),
        (LF.bce_with_logits_loss, "multilabel"),
        (LF.ranknet_loss, "ranking"),
        (functools.partial(LF.dice_loss, mode="multiclass"), "segmentation"),
        (LF.smape_loss, "forecasting"),
        (LF.MSELoss(), "regression"),
    ],
    ids=["bce", "ce", "multilabel", "ranknet", "dice", "smape", "module"],
)
def test_core_probes_pass_healthy_losslab_losses(fn: Any, task: str) -> None:
    report = check(fn, task=task, probes=CORE)
    assert {f.severity for f in report.findings} == {"ok"}, report.to_dict()


def test_probe_selection() -> None:
    report = check(mse, probes=["returns_tensor", "inplace", "returns_tensor"])
    assert [f.probe for f in report.findings] == ["inplace", "returns_tensor"]
    assert [f.probe for f in check(mse, probes="determinism").findings] == ["determinism"]
    with pytest.raises(ValueError, match="Did you mean 'inplace'"):
        check(mse, probes=["in_place"])
    with pytest.raises(ValueError, match="at least one"):
        check(mse, probes=[])
    with pytest.raises(TypeError, match="probe names"):
        check(mse, probes=[3])  # type: ignore[list-item]


def test_a_crashing_probe_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: Context) -> list[Finding]:
        torch.set_grad_enabled(False)  # and it leaves a mess behind
        torch.set_default_dtype(torch.float64)
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(inplace.PROBE, "run", boom)
    monkeypatch.setattr(determinism.PROBE, "run", lambda ctx: [])
    monkeypatch.setattr(returns_tensor.PROBE, "run", lambda ctx: ["not a finding"])
    report = check(mse, probes=CORE)
    assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32
    by = report.by_probe()
    assert by["inplace"][0].severity == "warning"
    assert by["inplace"][0].message == f"{PROBE_CRASH}: it raised RuntimeError: kaboom"
    assert by["determinism"][0].message == f"{PROBE_CRASH}: it returned no finding"
    assert by["returns_tensor"][0].message.startswith(PROBE_CRASH)


def test_a_probe_raising_systemexit_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    def leave(ctx: Context) -> list[Finding]:
        raise SystemExit(4)

    monkeypatch.setattr(inplace.PROBE, "run", leave)
    report = check(mse, probes=["inplace"])
    assert report.findings[0].message.startswith(PROBE_CRASH)


def test_a_probe_crash_raises_under_losslab_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: Context) -> list[Finding]:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(inplace.PROBE, "run", boom)
    monkeypatch.setenv("LOSSLAB_DEBUG", "1")
    with pytest.raises(RuntimeError, match="kaboom"):
        check(mse, probes=["inplace"])


def test_a_probe_module_that_fails_to_import(monkeypatch: pytest.MonkeyPatch) -> None:
    real = check_module.importlib.import_module

    def fake(name: str, *args: Any) -> Any:
        if name.endswith(".inplace"):
            raise ImportError("no such thing")
        return real(name, *args)

    monkeypatch.setattr(check_module.importlib, "import_module", fake)
    report = check(mse, probes=["inplace", "returns_tensor"])
    assert report.by_probe()["inplace"][0].message.startswith(PROBE_CRASH)
    assert report.by_probe()["returns_tensor"][0].severity == "ok"


def raises(pred, target):
    raise RuntimeError("CUDA error: device-side assert triggered")


def hangs(pred, target):
    while True:
        pass


def returns_string(pred, target):
    return "loss"


def returns_none(pred, target):
    return None


def returns_list(pred, target):
    return [((pred - target) ** 2).mean()]


@pytest.mark.parametrize("fn", [raises, returns_string, returns_none, returns_list])
def test_misbehaving_functions_never_crash_the_doctor(fn: Any) -> None:
    report = check(fn, probes=CORE)
    assert report.by_probe()["returns_tensor"][0].severity == "error"
    assert not any(f.message.startswith(PROBE_CRASH) for f in report.findings)
    json.dumps(report.to_dict())


@pytest.mark.timeout(60, method="thread")
def test_a_hanging_function_is_bounded() -> None:
    start = time.perf_counter()
    report = check(hangs, probes=CORE, timeout=1.0)
    elapsed = time.perf_counter() - start
    rt = report.by_probe()["returns_tensor"][0]
    assert rt.severity == "error" and "within 1 s" in rt.message
    assert elapsed < 8, elapsed  # one timeout per probe, not one per input


def test_global_state_is_restored() -> None:
    def messy(pred, target):
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.manual_seed(99)
        return ((pred - target) ** 2).mean()

    rng = torch.random.get_rng_state()
    check(messy, probes=CORE)
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
    assert torch.equal(torch.random.get_rng_state(), rng)


# ------------------------------------------------------------------------------ returns_tensor
def float_when_no_positive(logits, target):
    pos = target > 0.5
    if not pos.any():
        return 0.0
    return F.binary_cross_entropy_with_logits(logits[pos], target[pos])


def item(pred, target):
    return ((pred - target) ** 2).mean().item()


def int_tensor(pred, target):
    return (pred > target).sum()


def vector(pred, target):
    return (pred - target) ** 2


def shape_one(pred, target):
    return ((pred - target) ** 2).mean().reshape(1)


def detached(pred, target):
    return torch.tensor(float(((pred - target) ** 2).mean().detach()))


_LEAF = torch.ones((), requires_grad=True)


def other_leaf(pred, target):
    return _LEAF * 2.0


def nan_when_all_ignored(logits, target, ignore_index=-100):
    valid = target != ignore_index
    return F.cross_entropy(logits[valid], target[valid], reduction="sum") / valid.sum()


def rejects_empty(logits, target, *, mask=None):
    if mask is not None and not mask.any():
        raise ValueError("mask is empty")
    return logits.mean()


def index_error_on_single(pred, target):
    return ((pred - target) ** 2).mean() + pred[3] * 0


def rounds(pred, target):
    return ((pred.round() - target) ** 2).mean()


def default_none(pred, target, reduction="none"):
    loss = (pred - target) ** 2
    return loss if reduction == "none" else loss.mean()


def numpy_number(pred, target):
    import numpy as np

    return np.float32(1.0)


def sqrt_zero(pred, target):  # d/dx sqrt at 0: inf * 0 = nan on the all-zero target
    return (pred * 0 + target).abs().sqrt().mean() + (pred - target).pow(2).mean()


@pytest.mark.parametrize(
    "fn,task,severity,match",
    [
        (float_when_no_positive, "binary", "error", r"Python float \(0\.0\).*all targets negative"),
        (item, "regression", "error", r"Python float .* and 4 other inputs"),
        (int_tensor, "regression", "error", "int64 tensor"),
        (vector, "regression", "error", r"shape \(16,\) under the default reduction"),
        (shape_one, "regression", "warning", r"shape \(1,\) instead of a 0-d"),
        (detached, "regression", "error", "no gradient path"),
        (other_leaf, "regression", "error", "none reaches pred"),
        (nan_when_all_ignored, "multiclass", "error", "non-finite value.*all targets ignored"),
        (rejects_empty, "ranking", "warning", "rejects an edge case.*ValueError: mask is empty"),
        (index_error_on_single, "regression", "error", "IndexError.*single-element"),
        (rounds, "regression", "warning", "zero everywhere"),
        (numpy_number, "regression", "error", "NumPy float32"),
        (returns_list, "regression", "error", "returned a list"),
        (sqrt_zero, "regression", "error", "gradient .* not finite.*all targets zero"),
    ],
)
def test_returns_tensor_flags(fn: Any, task: str, severity: str, match: str) -> None:
    findings = run_probe(returns_tensor.PROBE, fn, task)
    bad = [f for f in findings if f.severity == severity]
    assert any(re.search(match, f.message) for f in bad), [f.message for f in findings]
    for f in bad:
        assert f.fix and "input" in f.evidence and "pred" in f.evidence


def test_returns_tensor_accepts_a_default_reduction_none() -> None:
    findings = run_probe(returns_tensor.PROBE, default_none)
    assert worst(findings) == "ok"


def test_returns_tensor_ok_lists_the_inputs() -> None:
    (f,) = run_probe(returns_tensor.PROBE, LF.bce_with_logits_loss, "binary")
    assert f.severity == "ok"
    assert any("ignored" in n for n in f.evidence["inputs"])


# ------------------------------------------------------------------------------------ inplace
def smooth_inplace(logits, target):
    target.mul_(0.9).add_(0.05)
    return F.binary_cross_entropy_with_logits(logits, target)


def through_data(logits, target):
    logits.data.sub_(logits.data.max(1, keepdim=True).values)
    return F.cross_entropy(logits, target)


def clamp_noop(logits, target):
    target.clamp_(0, 1)  # 0/1 targets: the values stay, the write is still there
    return F.binary_cross_entropy_with_logits(logits, target)


def resizes(pred, target):
    target.resize_(0)
    return pred.sum() * 0


def switches_grad_off(pred, target):
    pred.requires_grad_(False)
    return ((pred - target) ** 2).mean()


def runs_backward(pred, target):
    loss = ((pred - target) ** 2).mean()
    loss.backward(retain_graph=True)
    return loss


def mask_inplace(scores, target, *, mask=None):
    if mask is not None:
        mask[:, 0] = True
    return scores.mean()


class _ScaleBackwardInplace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, t):
        ctx.save_for_backward(t)
        return ((x - t) ** 2).mean()

    @staticmethod
    def backward(ctx, g):
        (t,) = ctx.saved_tensors
        t.mul_(2)  # writes into the caller's target during the backward
        return g * torch.ones_like(t), None


def backward_inplace(pred, target):
    return _ScaleBackwardInplace.apply(pred, target)


@pytest.mark.parametrize(
    "fn,task,match",
    [
        (
            smooth_inplace,
            "binary",
            r"`target` was modified in place \(values changed\) by the call",
        ),
        (through_data, "multiclass", "`pred` was modified in place"),
        (clamp_noop, "binary", r"written in place \(values unchanged"),
        (resizes, "regression", r"`target` was modified in place \(resized\)"),
        (switches_grad_off, "regression", "requires_grad` was switched off"),
        (runs_backward, "regression", "filled `pred.grad`"),
        (mask_inplace, "ranking", "`mask` was modified in place"),
        (backward_inplace, "regression", "`target` was modified in place .* by the backward"),
    ],
)
def test_inplace_flags(fn: Any, task: str, match: str) -> None:
    findings = run_probe(inplace.PROBE, fn, task)
    flagged = [f for f in findings if f.severity == "warning"]
    assert any(re.search(match, f.message) for f in flagged), [f.message for f in findings]
    assert all(f.fix and "argument" in f.evidence for f in flagged)


def test_inplace_ok_and_not_checked() -> None:
    assert worst(run_probe(inplace.PROBE, LF.ranknet_loss, "ranking")) == "ok"
    (f,) = run_probe(inplace.PROBE, raises)
    assert f.severity == "info" and "not checked" in f.message


# -------------------------------------------------------------------------------- determinism
def dropout(logits, target):
    return F.dropout(F.binary_cross_entropy_with_logits(logits, target, reduction="none")).mean()


def draws_but_ignores(pred, target):
    _ = torch.rand(())
    return ((pred - target) ** 2).mean()


def random_float(pred, target):
    return float(torch.rand(()))


class Counter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, pred, target):
        self.calls += 1
        return ((pred - target) ** 2).mean() * self.calls


@pytest.mark.parametrize(
    "fn,task,match",
    [
        (dropout, "binary", r"different values \(random numbers drawn inside\)"),
        (draws_but_ignores, "regression", "draws from the global random number generator"),
        (random_float, "regression", "different values"),
        (Counter(), "regression", r"different values \(hidden state"),
    ],
)
def test_determinism_flags(fn: Any, task: str, match: str) -> None:
    findings = run_probe(determinism.PROBE, fn, task)
    assert worst(findings) == "warning"
    assert any(re.search(match, f.message) for f in findings), findings
    assert all(f.fix for f in findings)


def test_determinism_ok_and_not_checked() -> None:
    (f,) = run_probe(determinism.PROBE, LF.cross_entropy_loss, "multiclass")
    assert f.severity == "ok"
    (f,) = run_probe(determinism.PROBE, raises)
    assert f.severity == "info"
    (f,) = run_probe(determinism.PROBE, returns_string)
    assert f.severity == "info"


# ------------------------------------------------------------------------------------- report
def _report() -> Report:
    return check(float_when_no_positive, task="binary", probes=CORE, target="my_file.py:bce")


def test_report_rendering() -> None:
    report = _report()
    line = summary(report)
    assert line.startswith("my_file.py:bce (binary, logits): 3 probes, 1 error, 0 warnings")
    assert line.endswith("worst: error")
    data = json.loads(to_json(report))
    assert data["worst"] == "error" and data["summary"] == line
    assert {f["probe"] for f in data["findings"]} == set(CORE)
    text = format_text(report, min_severity="error")
    assert "[error] returns_tensor" in text and "fix:" in text and "[ok]" not in text
    assert "[ok] inplace" in format_text(report)
    with pytest.raises(ValueError, match="min_severity"):
        format_text(report, min_severity="fatal")
    assert len(evidence_summary({"input": "x" * 500})) <= 90


def test_print_report_table_and_json() -> None:
    report = _report()
    buf = io.StringIO()
    print_report(report, format="table", file=buf)
    out = buf.getvalue()
    assert "returns_tensor" in out and "error" in out and summary(report) in out
    buf = io.StringIO()
    print_report(report, format="json", file=buf)
    assert json.loads(buf.getvalue())["target"] == "my_file.py:bce"
    with pytest.raises(ValueError, match="format"):
        print_report(report, format="yaml")


# ------------------------------------------------------------------------------ assert_healthy
def test_assert_healthy_passes_and_returns_the_report() -> None:
    report = assert_healthy(LF.bce_with_logits_loss, task="binary", probes=CORE)
    assert isinstance(report, Report) and report.worst == "ok"
    # a warning does not fail by default
    assert_healthy(dropout, task="binary", probes=CORE)


def test_assert_healthy_fails_with_the_findings() -> None:
    with pytest.raises(AssertionError) as info:
        assert_healthy(float_when_no_positive, task="binary", probes=CORE)
    text = str(info.value)
    assert "fail_on='error'" in text and "[error] returns_tensor" in text
    assert "all targets negative" in text and "fix:" in text and "[ok]" not in text
    with pytest.raises(AssertionError, match=r"\[warning\] determinism"):
        assert_healthy(dropout, task="binary", probes=CORE, fail_on="warning")
    with pytest.raises(ValueError, match="fail_on"):
        assert_healthy(mse, task="regression", fail_on="fatal")
