"""Hypothesis fuzzing of the spec parser: parse or SpecError, never anything else."""

from __future__ import annotations

import builtins
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import losslab
from losslab import SpecError, WeightedSum, parse
from losslab.losses.base import Loss


def _builds_with_defaults(cls: type) -> bool:
    try:
        cls()
    except TypeError:
        return False
    return True


KEYS = [
    e.key
    for e in losslab.entries()
    if e.input_kind != "none"
    and _builds_with_defaults(e.cls)
    and not getattr(e.cls, "preset", False)
]
NAMES = st.sampled_from(
    [*KEYS, "l2", "msee", "os", "eval", "__import__", "_x", "self", "True", "None"]
)
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.sampled_from(
        ["1e999", "1e308", "0", "0.0", "-0", "1_000", "0x10", "1j", "nan", "inf", "9" * 400]
    ),
)
VALUES = st.one_of(
    NUMBERS,
    st.sampled_from(
        ["True", "False", "None", "'mean'", "'sum'", "'none'", "[1, 2]", "[]", "(1,)", "{}", "x"]
    ),
    st.text(max_size=6).map(repr),
)
KWARG = st.builds(
    lambda k, v: f"{k}={v}",
    st.sampled_from(["weight", "reduction", "validate", "name", "_x", "bogus"]),
    VALUES,
)
CALL = st.builds(lambda n, kws: f"{n}({', '.join(kws)})", NAMES, st.lists(KWARG, max_size=3))
ATOM = st.one_of(
    NAMES,
    NUMBERS,
    CALL,
    st.sampled_from(["mse.weight", "lambda: 1", "os.system('x')", "[mse]", "...", "*mse"]),
)
OPS = st.sampled_from(
    [" + ", " - ", "*", " / ", " ** ", " % ", " // ", " @ ", " and ", " < ", ", ", ""]
)


def _expr(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, op, b: f"{a}{op}{b}", children, OPS, children),
        st.builds(lambda a: f"({a})", children),
        st.builds(lambda a: f"-{a}", children),
    )


EXPRESSIONS = st.recursive(ATOM, _expr, max_leaves=12)
GARBAGE = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("parse() must not evaluate code")


def _check(spec: str) -> None:
    """parse() returns a Loss or raises SpecError, with eval/exec unavailable while it runs."""
    saved = builtins.eval, builtins.exec
    builtins.eval = builtins.exec = _refuse  # type: ignore[assignment]
    try:
        result = parse(spec)
    except SpecError:
        return
    finally:
        builtins.eval, builtins.exec = saved  # type: ignore[assignment]
    assert isinstance(result, Loss)


@settings(
    max_examples=2000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(spec=EXPRESSIONS)
def test_grammar_fuzz(spec: str) -> None:
    _check(spec)


@settings(
    max_examples=500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(spec=GARBAGE)
def test_text_fuzz(spec: str) -> None:
    _check(spec)


WEIGHTS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda w: w != 0)
TERM = st.builds(lambda key, w: (key, w), st.sampled_from(KEYS), WEIGHTS)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(terms=st.lists(TERM, min_size=1, max_size=5))
def test_round_trip(terms: list[tuple[str, float]]) -> None:
    total = sum((w * losslab.lookup(k)() for k, w in terms), start=0)
    spec = total.to_spec()
    again = parse(spec)
    assert again.to_spec() == spec
    weights = [w for _, w, _ in again.terms()] if isinstance(again, WeightedSum) else [1.0]
    assert weights == [w for _, w in terms]
    assert parse(total.to_dict()).to_spec() == spec
