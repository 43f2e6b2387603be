"""The contract every registered loss keeps, run over the case database."""

from __future__ import annotations

import copy
import inspect
import io
import pickle
import re
from typing import Any

import pytest
import torch

import losslab
from losslab._registry import entries
from tests.cases import CASES, Case, Sample
from tests.cases._base import generator, split_kwargs

REDUCTIONS = ("mean", "sum", "none")
# Presets are weighted sums of cased losses; tests/segmentation checks them against their parts.
INPUT_LOSSES = [
    e.key for e in entries() if e.input_kind != "none" and not getattr(e.cls, "preset", False)
]


def _samples(case: Case) -> list[Sample]:
    return case.samples(generator(1234))


def _sample_params() -> list[Any]:
    params = []
    for key, case in CASES.items():
        for i, s in enumerate(_samples(case)):
            params.append(pytest.param(case, i, id=f"{key}-{i}-{s.note}"))
    return params


def _extreme_params() -> list[Any]:
    return [
        pytest.param(case, i, id=f"{key}-{i}-{s.note}")
        for key, case in CASES.items()
        for i, s in enumerate(case.extremes())
    ]


def _error_params() -> list[Any]:
    return [
        pytest.param(case, i, id=f"{key}-{i}-{e.note}")
        for key, case in CASES.items()
        for i, e in enumerate(case.errors())
    ]


SAMPLE_PARAMS = _sample_params()
CASE_PARAMS = [pytest.param(case, id=key) for key, case in CASES.items()]


def _clone(x: Any, dtype: torch.dtype | None = None, grad: bool = False) -> Any:
    if isinstance(x, torch.Tensor):
        y = x.detach().clone()
        if dtype is not None and y.is_floating_point():
            y = y.to(dtype)
        return y.requires_grad_(grad and y.is_floating_point())
    return x


def _call(
    case: Case, sample: Sample, reduction: str, dtype: torch.dtype | None = None
) -> torch.Tensor:
    args = tuple(_clone(a, dtype) for a in sample.args)
    kwargs = {k: _clone(v, dtype) for k, v in sample.kwargs.items()}
    return case.function(*args, **kwargs, reduction=reduction)


# ------------------------------------------------------------------------------ registry
def test_every_registered_loss_has_a_case() -> None:
    missing = sorted(set(INPUT_LOSSES) - set(CASES))
    assert not missing, f"registered losses without a case in tests/cases: {missing}"


def test_every_case_is_registered() -> None:
    for key, case in CASES.items():
        assert losslab.lookup(key) is case.module


# ------------------------------------------------------------------------------ values
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("case", "index"), SAMPLE_PARAMS)
def test_value_matches_reference(case: Case, index: int, reduction: str) -> None:
    sample = _samples(case)[index]
    got = _call(case, sample, reduction)
    want = case.reference(*sample.args, **sample.kwargs, reduction=reduction)
    assert got.dtype == torch.float64
    assert got.shape == want.shape
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("case", "index"), SAMPLE_PARAMS)
def test_module_equals_function(case: Case, index: int) -> None:
    sample = _samples(case)[index]
    init, call = split_kwargs(case.module, sample.kwargs)
    for reduction in REDUCTIONS:
        module = case.module(**init, reduction=reduction)
        got = module(*sample.args, **call)
        want = case.function(*sample.args, **sample.kwargs, reduction=reduction)
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize(("case", "index"), SAMPLE_PARAMS)
def test_reductions_agree(case: Case, index: int) -> None:
    sample = _samples(case)[index]
    none = _call(case, sample, "none")
    total = _call(case, sample, "sum")
    expected = sample.none_shape if sample.none_shape is not None else case.none_shape(*sample.args)
    assert none.shape == expected
    torch.testing.assert_close(none.sum(), total, rtol=1e-12, atol=1e-12)
    assert _call(case, sample, "mean").dim() == 0


@pytest.mark.parametrize(("case", "index"), SAMPLE_PARAMS)
def test_gradcheck(case: Case, index: int) -> None:
    sample = _samples(case)[index]
    if not sample.gradcheck:
        pytest.skip("not differentiable at these points")
    base = [_clone(a) for a in sample.args]

    def f(*differentiable: torch.Tensor) -> torch.Tensor:
        args = list(base)
        for pos, value in zip(sample.grad, differentiable):
            args[pos] = value
        return case.function(*args, **sample.kwargs, reduction="sum")

    inputs = tuple(_clone(sample.args[p], grad=True) for p in sample.grad)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("case", "index"), SAMPLE_PARAMS)
def test_batch_split_invariance(case: Case, index: int) -> None:
    sample = _samples(case)[index]
    if not (case.module.pointwise and not case.module.needs_global_stats and sample.batch_split):
        pytest.skip("not additive over the batch by documentation")
    n = sample.args[0].shape[0] if sample.args[0].dim() else 0
    if n < 2:
        pytest.skip("batch of one")
    cut = n // 2

    def part(sl: slice) -> torch.Tensor:
        def take(x: Any) -> Any:
            return x[sl] if isinstance(x, torch.Tensor) and x.dim() and x.shape[0] == n else x

        init, call = split_kwargs(case.module, sample.kwargs)
        args = tuple(take(a) for a in sample.args)
        return case.function(
            *args, **init, **{k: take(v) for k, v in call.items()}, reduction="sum"
        )

    whole = _call(case, sample, "sum")
    torch.testing.assert_close(
        part(slice(0, cut)) + part(slice(cut, n)), whole, rtol=1e-10, atol=1e-12
    )


# ------------------------------------------------------------------------------ numerics
@pytest.mark.parametrize(("case", "index"), _extreme_params())
def test_extremes_finite(case: Case, index: int) -> None:
    sample = case.extremes()[index]
    for dtype in (torch.float32, torch.float64):
        args = [_clone(a, dtype) for a in sample.args]
        for p in sample.grad:
            args[p].requires_grad_(True)
        kwargs = {k: _clone(v, dtype) for k, v in sample.kwargs.items()}
        for reduction in ("mean", "none"):
            loss = case.function(*args, **kwargs, reduction=reduction)
            assert torch.isfinite(loss).all(), f"non-finite loss in {dtype}: {loss}"
            grads = torch.autograd.grad(loss.sum(), [args[p] for p in sample.grad])
            for g in grads:
                assert torch.isfinite(g).all(), f"non-finite gradient in {dtype}: {g}"


@pytest.mark.parametrize(("case", "index"), SAMPLE_PARAMS)
def test_fp16_inputs(case: Case, index: int) -> None:
    sample = _samples(case)[index]
    if not sample.low_precision:
        pytest.skip("sample is not meaningful in half precision")
    half = _call(case, sample, "mean", dtype=torch.float16)
    assert half.dtype == torch.float16, "half inputs give a half loss, as torch's losses do"
    # The same inputs, rounded to fp16 then computed in float32: the loss works in float32.
    rounded = Sample(
        tuple(_clone(a, torch.float16) for a in sample.args),
        {k: _clone(v, torch.float16) for k, v in sample.kwargs.items()},
    )
    ref = _call(case, rounded, "mean", dtype=torch.float32)
    assert torch.isfinite(half)
    torch.testing.assert_close(half.float(), ref, rtol=case.low_precision_rtol, atol=1e-3)


@pytest.mark.parametrize(("case", "index"), SAMPLE_PARAMS)
def test_bf16_autocast(case: Case, index: int) -> None:
    sample = _samples(case)[index]
    if not sample.low_precision:
        pytest.skip("sample is not meaningful in half precision")
    rounded = Sample(
        tuple(_clone(a, torch.bfloat16) for a in sample.args),
        {k: _clone(v, torch.bfloat16) for k, v in sample.kwargs.items()},
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _call(case, rounded, "mean")
    assert got.dtype == torch.float32, "under autocast a loss is float32, as torch's are"
    want = _call(case, rounded, "mean", dtype=torch.float32)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(("case", "index"), _error_params())
def test_error_inputs(case: Case, index: int) -> None:
    err = case.errors()[index]
    with pytest.raises(err.exc) as info:
        case.function(*err.args, **err.kwargs)
    assert type(info.value) is err.exc
    assert re.search(err.match, str(info.value)), (
        f"message {str(info.value)!r} does not match {err.match!r}"
    )


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_enough_error_inputs(case: Case) -> None:
    assert len(case.errors()) >= 12


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_column_against_flat_raises(case: Case) -> None:
    if case.shape_trap is not None:
        args, kwargs = case.shape_trap()
    else:
        args, kwargs = (torch.randn(6, 1), torch.randn(6)), {}
    with pytest.raises(ValueError, match=r"\(6, 1\)|\(6,\)"):
        case.function(*args, **kwargs)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_unknown_reduction_suggests(case: Case) -> None:
    sample = _samples(case)[0]
    with pytest.raises(ValueError, match=r"`reduction` must be one of .*Did you mean 'sum'\?"):
        case.function(*sample.args, **sample.kwargs, reduction="summ")


# ------------------------------------------------------------------------------ module
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_module_copy_pickle_state_dict(case: Case) -> None:
    sample = _samples(case)[0]
    init, call = split_kwargs(case.module, sample.kwargs)
    module = case.module(**init)
    want = module(*sample.args, **call)
    for other in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        torch.testing.assert_close(other(*sample.args, **call), want, rtol=0, atol=0)
    fresh = case.module(**init)
    fresh.load_state_dict(module.state_dict())
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    assert module.to("cpu") is module
    torch.testing.assert_close(module.to(torch.float64)(*sample.args, **call), want)
    assert repr(module).startswith(case.module.__name__)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_signature_parity(case: Case) -> None:
    """The module's constructor takes exactly the function's keyword-only hyperparameters."""
    fn_params = inspect.signature(case.function).parameters
    init_params = inspect.signature(case.module.__init__).parameters
    kw_only = {n: p for n, p in fn_params.items() if p.kind is p.KEYWORD_ONLY}
    for name, p in init_params.items():
        if name == "self":
            continue
        assert p.kind is p.KEYWORD_ONLY, f"{case.module.__name__}({name}) must be keyword-only"
        assert name in kw_only, (
            f"{case.module.__name__} takes {name!r}, {case.function.__name__} does not"
        )
        assert p.default == kw_only[name].default, f"default of {name!r} differs"
    per_call = set(kw_only) - set(init_params)
    assert per_call <= {"sample_weight", "mask", "group", "var", "insample", "target_mask"}, (
        per_call
    )
    assert list(kw_only)[-1] == "reduction", "reduction comes last"
    assert case.function.__name__.endswith("_loss") and case.module.__name__.endswith("Loss")


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_metadata(case: Case) -> None:
    cls = case.module
    assert cls.input_kind in ("logits", "probs", "values", "scores")
    first = next(iter(inspect.signature(case.function).parameters))
    expected = {"logits": "logits", "probs": "probs", "values": "pred", "scores": "scores"}[
        cls.input_kind
    ]
    assert first == expected, (
        f"first argument of {case.function.__name__} must be named {expected!r}"
    )
    assert cls.__doc__ and case.function.__doc__ and ">>>" in case.function.__doc__


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_composes_and_round_trips(case: Case) -> None:
    sample = _samples(case)[0]
    init, call = split_kwargs(case.module, sample.kwargs)
    module = case.module(**init)
    total = 0.25 * module + 0.75 * case.module(**init)
    out = total.evaluate(*sample.args, **call)
    torch.testing.assert_close(out.total, module(*sample.args, **call))
    rebuilt = losslab.parse(module.to_spec())
    assert type(rebuilt) is case.module
    torch.testing.assert_close(rebuilt(*sample.args, **call), module(*sample.args, **call))
    assert losslab.parse(total.to_spec()).to_spec() == total.to_spec()
