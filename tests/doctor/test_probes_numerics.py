"""The numerics probes of ``losslab check``: extremes, bounded_grad, gradcheck, low_precision,
dtype_device.

Each probe is run on (a) healthy losses (losslab's own, over the case database, and torch's
built-ins), (b) planted bugs written here, a few lines each, which must be flagged by the right
probe with the right severity, and (c) functions that raise, hang or return garbage, on which
the probe must still return findings without raising.

Contexts come from ``losslab.doctor.inputs.build_context``, except for the sweep over
losslab's registry, which builds them from the case database (tests/cases) so that every
registered loss gets inputs inside its domain and its per-call arguments.
"""

from __future__ import annotations

import inspect
import json
import time
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from losslab.doctor._types import SEVERITIES, Context, Finding, Sample
from losslab.doctor.inputs import SIZE, build_context
from losslab.doctor.probes import bounded_grad, dtype_device, extremes, gradcheck, low_precision
from tests.cases import CASES
from tests.cases._base import generator

PROBES = {
    "extremes": extremes.PROBE,
    "bounded_grad": bounded_grad.PROBE,
    "gradcheck": gradcheck.PROBE,
    "low_precision": low_precision.PROBE,
    "dtype_device": dtype_device.PROBE,
}

# ------------------------------------------------------------------------------ contexts
CLASSES = SIZE["multiclass"]  # classes of the generated multiclass samples


def make_ctx(fn: Callable[..., Any], task: str, kind: str, *, timeout: float = 10.0) -> Context:
    """The doctor's own context: realistic inputs, edge and extreme samples for the task."""
    return build_context(fn, task=task, input_kind=kind, timeout=timeout)


def _case_sample(fn: Callable[..., Any], s: Any, dtype: torch.dtype = torch.float32) -> Sample:
    """A case-database sample as a doctor Sample: extra positional inputs become keywords."""
    names = list(inspect.signature(fn).parameters)
    kwargs = dict(s.kwargs)
    for name, value in zip(names[2:], s.args[2:]):
        kwargs[name] = value

    def cast(x: Any) -> Any:
        return x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x

    return Sample(cast(s.args[0]), cast(s.args[1]), {k: cast(v) for k, v in kwargs.items()}, s.note)


def case_ctx(key: str) -> Context:
    """A context over the case database's samples for one registered loss."""
    case = CASES[key]
    fn = case.function
    all_samples = case.samples(generator(1234))
    plain = [s for s in all_samples if s.gradcheck and s.low_precision] or all_samples

    def make_sample(
        batch: Any = None, size: Any = None, dtype: torch.dtype = torch.float32, **_: Any
    ) -> Sample:
        return _case_sample(fn, plain[0], dtype)

    return Context(
        fn=fn,
        task=case.module.family,
        input_kind=case.module.input_kind,
        samples=[_case_sample(fn, s) for s in plain],
        edge_samples=[],
        extreme_samples=[_case_sample(fn, s) for s in case.extremes()],
        make_sample=make_sample,
        has_reduction=True,
        batch_invariant=False,
        perfect=lambda s: s.target,
    )


def run(probe: str, ctx: Context) -> list[Finding]:
    findings = PROBES[probe].run(ctx)
    assert findings, f"{probe} returned no finding"
    for f in findings:
        assert isinstance(f, Finding)
        assert f.probe == probe
        assert f.severity in SEVERITIES
        assert "\n" not in f.message
        if f.severity in ("warning", "error"):
            assert f.fix and "\n" not in f.fix, f
    json.dumps([f.to_dict() for f in findings], allow_nan=False)  # evidence is strict JSON
    return findings


def worst(findings: list[Finding]) -> str:
    return max((f.severity for f in findings), key=SEVERITIES.index)


def flagged(findings: list[Finding], severity: str) -> list[Finding]:
    return [f for f in findings if f.severity == severity]


# ------------------------------------------------------------------------------ planted bugs
def naive_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)  # log(sigmoid(x)): log(0) once sigmoid rounds to 0 or 1
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


def eps_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)  # finite, but 1 - p is 0 in half once |x| > 8: log(1e-7) = -16
    return -(target * torch.log(p + 1e-7) + (1 - target) * torch.log(1 - p + 1e-7)).mean()


def log_probs_bce(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * torch.log(probs) + (1 - target) * torch.log(1 - probs)).mean()


def single_where_bce(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # masks log's output but not its input: finite value, 0 * inf = NaN gradient at 0 and 1
    pos = torch.where(probs > 0, torch.log(probs), torch.zeros_like(probs))
    neg = torch.where(probs < 1, torch.log(1 - probs), torch.zeros_like(probs))
    return -(target * pos + (1 - target) * neg).mean()


def exp_regression(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (torch.exp(pred) - target * pred).mean()  # Poisson with a log link: exp(1e4) = inf


def naive_log_cosh(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.log(torch.cosh(pred - target)).mean()  # cosh(1e4) = inf, log(cosh) ~ 1e4


def keras_clip_bce(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = probs.clamp(1e-7, 1 - 1e-7)  # Keras's epsilon: finite, but 1/p = 1e7 at the clamp
    return -(target * torch.log(p) + (1 - target) * torch.log1p(-p)).mean()


def naive_softmax_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    e = torch.exp(logits)  # exp(12) = 1.6e5 > 65504: inf / inf in float16
    p = e / e.sum(1, keepdim=True)
    return -torch.log(p.gather(1, target[:, None])).mean()


def probit_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # sound numerics, but log_ndtr has no CPU kernel for half dtypes
    log_p = torch.special.log_ndtr(logits)
    log_q = torch.special.log_ndtr(-logits)
    return -(target * log_p + (1 - target) * log_q).mean()


class _WrongMSE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(pred, target)
        return ((pred - target) ** 2).mean()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        pred, target = ctx.saved_tensors
        return grad * (pred - target) / pred.numel(), None  # forgets the factor 2


def wrong_backward_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _WrongMSE.apply(pred, target)


class _WrongBCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum")

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        logits, target = ctx.saved_tensors
        return grad * (target - torch.sigmoid(logits)), None  # sign flipped


def wrong_backward_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _WrongBCE.apply(logits, target)


def float_inside(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred.float() - target.float()) ** 2).mean()  # float64 in, float32 out


def float_roundtrip(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # casts back, so the dtype looks right, but the precision is float32's
    return ((pred.float() - target.float()) ** 2).mean().to(pred.dtype)


def cpu_weights_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    weight = torch.tensor([1.0, 2.0, 1.0, 1.0, 3.0])  # float32, on the CPU, whatever the input
    return F.cross_entropy(logits, target, weight=weight)


def numpy_weights_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    w = torch.from_numpy(np.linspace(0.5, 1.5, pred.shape[0]))  # float64, on the CPU
    return (w * (pred - target) ** 2).mean()


def cpu_accumulator(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(1)  # created on the CPU: the loss stays there
    total += ((pred - target) ** 2).mean()
    return total[0]


def cpu_buffer(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    losses = torch.zeros(pred.shape)  # a CPU buffer filled from the inputs
    losses[:] = (pred - target) ** 2
    return losses.mean()


def item_branch(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if float((target != 0).sum()) == 0:  # data-dependent: cannot run without data
        return pred.sum() * 0
    return ((pred - target) ** 2).mean()


def mixed_dtype_matmul(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mix = torch.eye(CLASSES)  # float32 whatever the input: half @ float raises
    return F.cross_entropy(logits @ mix, target)


# ------------------------------------------------------------------------------ (a) healthy
@pytest.mark.parametrize("key", sorted(CASES))
def test_registered_losses_have_no_error(key: str) -> None:
    ctx = case_ctx(key)
    for name in PROBES:
        findings = run(name, ctx)
        errors = flagged(findings, "error")
        assert not errors, f"{key}: {name}: {[f.to_dict() for f in errors]}"


@pytest.mark.parametrize(
    "key", ["bce", "ce", "mse", "huber", "dice", "ranknet", "listnet", "soft_dtw", "focal"]
)
def test_core_losses_are_all_ok(key: str) -> None:
    ctx = case_ctx(key)
    for name in PROBES:
        findings = run(name, ctx)
        assert worst(findings) == "ok", f"{key}: {name}: {[f.to_dict() for f in findings]}"


def test_bce_probs_bounded_gradient_is_ok() -> None:
    # losslab's bce_probs bounds its gradient by 1/(eps(1-eps)) = 1e6 at eps = 1e-6
    findings = run("bounded_grad", case_ctx("bce_probs"))
    assert worst(findings) == "ok"
    assert 9e5 < max(c["per_element"] for c in findings[0].evidence["checked"]) < 1.1e6


@pytest.mark.parametrize(
    ("fn", "task", "kind"),
    [
        (F.binary_cross_entropy_with_logits, "binary", "logits"),
        (F.cross_entropy, "multiclass", "logits"),
        (F.mse_loss, "regression", "values"),
        (F.smooth_l1_loss, "regression", "values"),
        (torch.nn.BCEWithLogitsLoss(), "multilabel", "logits"),
        (F.cross_entropy, "segmentation", "logits"),
        (F.l1_loss, "forecasting", "values"),
    ],
    ids=[
        "bce_with_logits",
        "cross_entropy",
        "mse",
        "smooth_l1",
        "BCEWithLogitsLoss",
        "segmentation_ce",
        "forecast_l1",
    ],
)
def test_torch_losses_are_ok(fn: Callable[..., Any], task: str, kind: str) -> None:
    ctx = make_ctx(fn, task, kind)
    for name in PROBES:
        findings = run(name, ctx)
        assert worst(findings) == "ok", f"{name}: {[f.to_dict() for f in findings]}"


# ------------------------------------------------------------------------------ (b) extremes
def test_extremes_flags_naive_bce() -> None:
    findings = run("extremes", make_ctx(naive_bce, "binary", "logits"))
    errors = flagged(findings, "error")
    assert errors
    f = errors[0]
    assert f.evidence["sample"].startswith("saturated logits +-30")
    assert f.evidence["value"] in ("nan", "inf")
    assert "logsigmoid" in f.fix
    assert f.evidence["index"] == []  # a scalar loss; no reduction="none" to locate it


def test_extremes_flags_unclamped_log_of_probs() -> None:
    findings = run("extremes", make_ctx(log_probs_bce, "binary", "probs"))
    errors = flagged(findings, "error")
    assert errors
    assert errors[0].evidence["sample"].startswith("probabilities exactly 0 and 1")
    assert all("eps >= 6e-5" in f.fix for f in errors)


def test_extremes_flags_nan_gradient_behind_finite_value() -> None:
    findings = run("extremes", make_ctx(single_where_bce, "binary", "probs"))
    errors = flagged(findings, "error")
    assert errors
    for f in errors:
        assert f.evidence["where"] == "gradient"
        assert f.evidence["gradient"] == "nan"
        assert f.evidence["pred_at_index"] in (0.0, 1.0)
        assert "double-where" in f.fix
        assert "the loss itself is finite" in f.message


def test_extremes_flags_naive_log_cosh_and_locates_the_element() -> None:
    def log_cosh(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> Any:
        out = torch.log(torch.cosh(pred - target))  # cosh overflows; log(cosh) is ~|x|
        return out if reduction == "none" else out.mean()

    findings = run("extremes", make_ctx(log_cosh, "regression", "values"))
    errors = flagged(findings, "error")
    assert errors
    for f in errors:
        assert f.evidence["value"] == "inf"
        assert len(f.evidence["element_index"]) == 1
        assert f.evidence["element_value"] == "inf"
        assert abs(f.evidence["pred_at_index"]) == 1e4
    assert flagged(run("extremes", make_ctx(naive_log_cosh, "regression", "values")), "error")


def test_extremes_exponential_link_is_a_warning() -> None:
    # exp(pred) is a log link: at 1e4 the loss is truly infinite (exp(100) = 2.7e43 at 1/100)
    findings = run("extremes", make_ctx(exp_regression, "regression", "values"))
    assert worst(findings) == "warning"
    f = flagged(findings, "warning")[0]
    assert f.evidence["value_at_1/100"] > 1e30
    assert "exponentially" in f.message


def test_extremes_reports_a_crash_as_warning_and_a_rejection_as_info() -> None:
    def crash(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.abs().max() > 100:
            raise ZeroDivisionError("boom")
        return ((pred - target) ** 2).mean()

    def rejects(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.abs().max() > 100:
            raise ValueError("pred must be in [-100, 100]")
        return ((pred - target) ** 2).mean()

    assert worst(run("extremes", make_ctx(crash, "regression", "values"))) == "warning"
    assert worst(run("extremes", make_ctx(rejects, "regression", "values"))) == "info"


# ------------------------------------------------------------------------------ (b) bounded_grad
def test_bounded_grad_flags_unclamped_log() -> None:
    findings = run("bounded_grad", make_ctx(log_probs_bce, "binary", "probs"))
    by_sample = {f.evidence["sample"]: f for f in findings}
    tiny = by_sample["probabilities 1e-7 / 1 - 1e-7"]
    assert tiny.severity == "warning"
    assert 5e6 < tiny.evidence["per_element"] < 1e8
    assert by_sample["probabilities exactly 0 / 1"].severity == "error"


def test_bounded_grad_flags_torch_binary_cross_entropy() -> None:
    # torch clamps the log at -100 but its gradient is 1/max(p(1-p), 1e-12): 1e12 at 0 and 1
    findings = run("bounded_grad", make_ctx(F.binary_cross_entropy, "binary", "probs"))
    severities = {f.evidence["sample"]: f.severity for f in findings}
    assert severities == {
        "probabilities 1e-7 / 1 - 1e-7": "warning",
        "probabilities exactly 0 / 1": "error",
    }


def test_bounded_grad_flags_keras_style_clip() -> None:
    findings = run("bounded_grad", make_ctx(keras_clip_bce, "binary", "probs"))
    assert worst(findings) in ("warning", "error")
    assert all(f.fix for f in findings if f.severity != "ok")


def test_bounded_grad_multiclass_probs_and_logits() -> None:
    def nll_of_probs(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(torch.log(probs), target)  # log of a softmax output

    findings = run("bounded_grad", make_ctx(nll_of_probs, "multiclass", "probs"))
    assert worst(findings) == "error"  # log(0) for the one-hot probabilities
    assert worst(run("bounded_grad", make_ctx(F.cross_entropy, "multiclass", "logits"))) == "ok"


def test_bounded_grad_not_applicable_to_values() -> None:
    (f,) = run("bounded_grad", make_ctx(F.mse_loss, "regression", "values"))
    assert f.severity == "ok" and "not applicable" in f.message


# ------------------------------------------------------------------------------ (b) gradcheck
@pytest.mark.parametrize(
    ("fn", "task", "kind"),
    [(wrong_backward_mse, "regression", "values"), (wrong_backward_bce, "binary", "logits")],
    ids=["mse_missing_factor_2", "bce_sign_flipped"],
)
def test_gradcheck_flags_wrong_backward(fn: Callable[..., Any], task: str, kind: str) -> None:
    (f,) = run("gradcheck", make_ctx(fn, task, kind))
    assert f.severity == "error"
    assert f.evidence["max_abs_diff"] > 1e-3
    assert f.evidence["smooth_mismatch"] > 0
    assert "backward" in f.fix


def test_gradcheck_flags_float32_computation() -> None:
    (f,) = run("gradcheck", make_ctx(float_inside, "regression", "values"))
    assert f.severity == "warning" and "computes in float32" in f.message
    (f,) = run("gradcheck", make_ctx(float_roundtrip, "regression", "values"))
    assert f.severity == "warning" and "computes in float32" in f.message


def test_gradcheck_reports_a_kink_as_info() -> None:
    ctx = make_ctx(F.mse_loss, "regression", "values")
    # the points the probe checks (deterministic): plant a hinge corner exactly there
    corners = []
    for seed in (0, 1):
        sample = gradcheck.small_sample(ctx, seed)
        assert sample is not None
        corners.append(gradcheck.nudge(ctx, sample, seed))

    def hinge_at(points: list[torch.Tensor]) -> Callable[..., torch.Tensor]:
        def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            corner = sum(torch.relu(pred - c).sum() for c in points)
            return corner + F.mse_loss(pred, target)

        return loss

    ctx.fn = hinge_at(corners)
    (f,) = run("gradcheck", ctx)
    assert f.severity == "info" and "not differentiable" in f.message
    assert f.evidence["diagnosis"][0]["kinks"] > 0
    ctx.fn = hinge_at(corners[:1])  # a kink at the first point only
    (f,) = run("gradcheck", ctx)
    assert f.severity == "info" and "second point" in f.message


def test_gradcheck_nudges_off_natural_kinks() -> None:
    # |r| at r = 0 (the perfect prediction) and hinge corners: nudged away, so ok
    def l1_perfect(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().mean()

    ctx = make_ctx(l1_perfect, "regression", "values")
    base = ctx.make_sample

    def perfect_sample(**kw: Any) -> Sample:
        s = base(**kw)
        return Sample(s.target.clone(), s.target, s.kwargs, "perfect prediction")

    ctx.make_sample = perfect_sample
    assert worst(run("gradcheck", ctx)) == "ok"


# ------------------------------------------------------------------------------ (b) low_precision
def test_low_precision_flags_naive_bce() -> None:
    findings = run("low_precision", make_ctx(naive_bce, "binary", "logits"))
    errors = flagged(findings, "error")
    assert errors
    modes = {f.evidence["mode"] for f in errors}
    assert "float16 inputs" in modes
    assert all(f.evidence["float32_value"] != "nan" for f in errors)


def test_low_precision_flags_exp_overflow_in_fp16() -> None:
    findings = run("low_precision", make_ctx(naive_softmax_ce, "multiclass", "logits"))
    errors = flagged(findings, "error")
    assert any(
        f.evidence["mode"] == "float16 inputs" and "scaled" in f.evidence["sample"] for f in errors
    )
    # bfloat16 has float32's range: no overflow there
    assert not any(f.evidence["mode"] == "bfloat16 inputs" for f in errors)


def test_low_precision_flags_lost_digits_as_warning() -> None:
    findings = run("low_precision", make_ctx(eps_bce, "binary", "logits"))
    assert worst(findings) == "warning"
    f = flagged(findings, "warning")[0]
    assert isinstance(f.evidence["value"], float) and isinstance(f.evidence["float32_value"], float)
    assert f.evidence["relative_error"] > f.evidence["rtol"]


def test_low_precision_unsupported_cpu_op_is_info() -> None:
    findings = run("low_precision", make_ctx(probit_bce, "binary", "logits"))
    assert worst(findings) == "info"
    assert flagged(findings, "ok")  # the ok finding is there: autocast works
    infos = flagged(findings, "info")
    assert infos and all("torch CPU limitation" in f.message for f in infos)


def test_low_precision_dtype_mix_is_warning() -> None:
    findings = run("low_precision", make_ctx(mixed_dtype_matmul, "multiclass", "logits"))
    assert worst(findings) == "warning"
    assert any("fails on float16 inputs" in f.message for f in findings)


def test_low_precision_overflowing_value_is_info() -> None:
    def big(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred.float() - target.float()) ** 2).mean().mul(1e6).to(pred.dtype)

    findings = run("low_precision", make_ctx(big, "regression", "values"))
    assert "error" not in {f.severity for f in findings}
    assert any("range" in f.message for f in flagged(findings, "info"))


# ------------------------------------------------------------------------------ (b) dtype_device
def test_dtype_device_flags_cpu_weights() -> None:
    findings = run("dtype_device", make_ctx(cpu_weights_ce, "multiclass", "logits"))
    device = [f for f in findings if f.evidence.get("device") == "meta"]
    assert [f.severity for f in device] == ["warning"]
    assert device[0].fix == dtype_device.FIX_DEVICE
    assert any("cpu" in str(f.evidence.get("error", "")) for f in device)


def test_dtype_device_flags_float32_weights_failing_in_float64() -> None:
    findings = run("dtype_device", make_ctx(cpu_weights_ce, "multiclass", "logits"))
    (f,) = [f for f in findings if f.evidence.get("input") == "float64"]
    assert f.severity == "warning" and "dtype mismatch" in f.message
    assert "Double" in f.evidence["error"] or "double" in f.evidence["error"]


def test_dtype_device_flags_float_inside() -> None:
    findings = run("dtype_device", make_ctx(float_inside, "regression", "values"))
    (f,) = [f for f in findings if f.evidence.get("input") == "float64"]
    assert f.severity == "warning" and "float32" in f.message
    assert f.evidence["output"] == "float32"


def test_dtype_device_flags_numpy_weights() -> None:
    findings = run("dtype_device", make_ctx(numpy_weights_mse, "regression", "values"))
    dtype = {f.evidence.get("input"): f for f in findings if "input" in f.evidence}
    assert dtype["float32"].severity == "warning" and "float64" in dtype["float32"].message
    device = [f for f in findings if f.evidence.get("device") == "meta"]
    assert device and device[0].severity == "warning"


@pytest.mark.parametrize("fn", [cpu_accumulator, cpu_buffer], ids=["accumulator", "buffer"])
def test_dtype_device_flags_cpu_results(fn: Callable[..., Any]) -> None:
    findings = run("dtype_device", make_ctx(fn, "regression", "values"))
    device = [f for f in findings if f.evidence.get("device") == "meta"]
    assert [f.severity for f in device] == ["warning"]
    assert device[0].fix == dtype_device.FIX_DEVICE


def test_dtype_device_data_dependent_is_info() -> None:
    findings = run("dtype_device", make_ctx(item_branch, "regression", "values"))
    assert worst(findings) == "info"
    (f,) = flagged(findings, "info")
    assert "meta" in f.message and "item()" in f.evidence["error"]


def test_dtype_device_numpy_inside_is_warning() -> None:
    def via_numpy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        scale = float(np.abs(target.detach().numpy()).mean())
        return ((pred - target) ** 2).mean() / scale

    findings = run("dtype_device", make_ctx(via_numpy, "regression", "values"))
    device = [f for f in findings if f.evidence.get("device") == "meta"]
    assert [f.severity for f in device] == ["warning"]
    assert device[0].fix == dtype_device.FIX_NUMPY


def test_dtype_device_moves_modules_with_buffers() -> None:
    # the class weights are a buffer: the user moves the module with .to(device)
    module = torch.nn.CrossEntropyLoss(weight=torch.linspace(0.5, 1.5, CLASSES))
    findings = run("dtype_device", make_ctx(module, "multiclass", "logits"))
    assert not [f for f in findings if f.evidence.get("device") == "meta"]
    assert worst(findings) == "ok"
    assert module.weight.device.type == "cpu"  # a copy was moved, not the user's module
    assert module.weight.dtype == torch.float32  # and a copy was cast to float64
    assert worst(run("gradcheck", make_ctx(module, "multiclass", "logits"))) == "ok"


def test_dtype_device_retries_without_validation() -> None:
    def validating(
        pred: torch.Tensor, target: torch.Tensor, *, validate: bool = True
    ) -> torch.Tensor:
        if validate and bool((target.abs() > 1e6).any()):
            raise ValueError("target out of range")
        return ((pred - target) ** 2).mean()

    (f,) = run("dtype_device", make_ctx(validating, "regression", "values"))
    assert f.severity == "ok"


# ------------------------------------------------------------------------------ (c) robustness
def _raises(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("always fails")


def _hangs(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    time.sleep(5)
    return pred.sum()


def _garbage_string(pred: torch.Tensor, target: torch.Tensor) -> Any:
    return "loss"


def _garbage_none(pred: torch.Tensor, target: torch.Tensor) -> Any:
    return None


def _garbage_int(pred: torch.Tensor, target: torch.Tensor) -> Any:
    return torch.ones(3, dtype=torch.long)


def _garbage_tuple(pred: torch.Tensor, target: torch.Tensor) -> Any:
    return (pred.sum(), {"x": 1})


def _garbage_nan(pred: torch.Tensor, target: torch.Tensor) -> Any:
    return torch.full((7, 2), float("nan"))


def _garbage_empty(pred: torch.Tensor, target: torch.Tensor) -> Any:
    return pred[:0].sum(0, keepdim=True)[:0]


def _garbage_random(pred: torch.Tensor, target: torch.Tensor) -> Any:
    return torch.randn(()) * pred.sum()  # nondeterministic, fine for these probes


def _flaky(pred: torch.Tensor, target: torch.Tensor) -> Any:
    if pred.dtype != torch.float32:
        raise TypeError("only float32")
    return ((pred - target) ** 2).mean()


class _BackwardRaises(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        raise RuntimeError("backward exploded")


def _backward_raises(pred: torch.Tensor, target: torch.Tensor) -> Any:
    return _BackwardRaises.apply(pred - target)


def _mutates(pred: torch.Tensor, target: torch.Tensor) -> Any:
    target.mul_(0)
    with torch.no_grad():
        pred.zero_()
    return pred.sum()


GARBAGE = [
    _raises,
    _garbage_string,
    _garbage_none,
    _garbage_int,
    _garbage_tuple,
    _garbage_nan,
    _garbage_empty,
    _garbage_random,
    _flaky,
    _backward_raises,
    _mutates,
    print,
]


@pytest.mark.parametrize("probe", sorted(PROBES))
@pytest.mark.parametrize("fn", GARBAGE, ids=lambda f: getattr(f, "__name__", "fn"))
@pytest.mark.parametrize(("task", "kind"), [("binary", "logits"), ("regression", "values")])
def test_probe_never_raises(probe: str, fn: Callable[..., Any], task: str, kind: str) -> None:
    ctx = make_ctx(fn, task, kind)
    before = [s.pred.clone() for s in ctx.samples]
    run(probe, ctx)
    # the probes call the function on copies: the context's samples are untouched
    assert all(torch.equal(a, s.pred) for a, s in zip(before, ctx.samples))


@pytest.mark.parametrize("probe", sorted(PROBES))
@pytest.mark.parametrize("fn", [_raises, _garbage_string, _garbage_none], ids=lambda f: f.__name__)
def test_not_a_loss_is_left_to_returns_tensor(probe: str, fn: Callable[..., Any]) -> None:
    # a function that always raises or never returns a float tensor: reported once, by the
    # returns_tensor probe; these probes only say they could not check
    findings = run(probe, make_ctx(fn, "binary", "logits"))
    assert worst(findings) in ("ok", "info"), [f.to_dict() for f in findings]


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_probe_survives_a_hang(probe: str) -> None:
    ctx = make_ctx(_hangs, "regression", "values", timeout=0.05)
    t0 = time.perf_counter()
    run(probe, ctx)
    assert time.perf_counter() - t0 < 4.0


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_probe_survives_a_broken_context(probe: str) -> None:
    def broken_make_sample(**_: Any) -> Sample:
        raise RuntimeError("no generator")

    ctx = make_ctx(F.mse_loss, "regression", "values")
    ctx.make_sample = broken_make_sample
    run(probe, ctx)
    empty = make_ctx(F.mse_loss, "regression", "values")
    empty.samples, empty.extreme_samples = [], []
    empty.make_sample = broken_make_sample
    run(probe, empty)


def test_gradcheck_error_on_backward_that_raises() -> None:
    (f,) = run("gradcheck", make_ctx(_backward_raises, "regression", "values"))
    assert f.severity == "error" and "backward exploded" in f.message


# ------------------------------------------------------------------------------ budget
def test_probes_are_cheap() -> None:
    ctx = make_ctx(F.cross_entropy, "multiclass", "logits")
    for name in PROBES:  # warm up torch's lazy initialisations
        run(name, ctx)
    t0 = time.perf_counter()
    for name in PROBES:
        run(name, ctx)
    assert time.perf_counter() - t0 < 2.0
