"""Spec strings and dict forms: parse, round trip, refusal of everything else."""

from __future__ import annotations

import builtins
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import losslab
from losslab import MSELoss, SpecError, WeightedSum, parse
from tests.cases import CASES
from tests.cases._base import generator, split_kwargs


def test_parse_single_term_returns_the_module() -> None:
    loss = parse("mse(weight=2.0)")
    assert type(loss) is MSELoss and loss.weight == 2.0
    assert parse("  mse ").to_spec() == "mse"


def test_parse_weighted_sum() -> None:
    loss = parse("0.5*mse + 0.25 * mse(weight=2.0) - mse/4")
    assert isinstance(loss, WeightedSum)
    assert [w for _, w, _ in loss.terms()] == [0.5, 0.25, -0.25]
    assert loss.to_spec() == "0.5*mse + 0.25*mse(weight=2.0) - 0.25*mse"


def test_numbers_combine_and_aliases_resolve() -> None:
    loss = parse("2*0.25*l2_error + (1 - 0.5)*mse")
    assert [w for _, w, _ in loss.terms()] == [0.5, 0.5]
    assert all(type(t) is MSELoss for _, _, t in loss.terms())


def test_names_round_trip() -> None:
    loss = parse("mse(name='main') + 0.1*mse(weight=2.0, name='aux')")
    assert list(loss.term_weights) == ["main", "aux"]
    again = parse(loss.to_spec())
    assert list(again.term_weights) == ["main", "aux"]
    assert again.to_spec() == loss.to_spec()


def test_regularizer_needs_params() -> None:
    net = nn.Linear(3, 2)
    loss = parse("mse + 1e-4*l2", params=net)
    assert loss.to_spec() == "mse + 0.0001*l2"
    assert loss.term_modules["l2"].parameter_names == ["weight"]
    with pytest.raises(
        SpecError, match=r"`l2` regularizes parameters: pass them as parse\(spec, params=model\)"
    ):
        parse("mse + 1e-4*l2")


def test_penalty_with_filter_has_no_spec_form() -> None:
    pen = losslab.L2Penalty(nn.Linear(2, 2), filter=lambda name, p: True)
    with pytest.raises(ValueError, match=r"`filter` of L2Penalty has no spec form"):
        pen.to_spec()
    assert (
        losslab.L2Penalty(nn.Linear(2, 2), exclude_bias=False).to_spec() == "l2(exclude_bias=False)"
    )


@pytest.mark.parametrize(
    ("spec", "match", "position"),
    [
        (
            "__import__('os').system('true')",
            r"only a loss name may be called; got attribute access",
            0,
        ),
        ("__import__('os')", r"names must not start with '_'", 0),
        ("__builtins__", r"names must not start with '_'", 0),
        ("mse.__class__", r"attribute access is not allowed", 0),
        ("mse.weight", r"attribute access is not allowed", 0),
        ("(lambda: mse)()", r"only a loss name may be called; got a lambda", 1),
        ("lambda: 1", r"a lambda is not allowed", 0),
        ("mse * mse", r"a loss cannot multiply a loss", 0),
        ("mse ** 2", r"the operator Pow is not allowed", 0),
        ("2 ** 100000 * mse", r"the operator Pow is not allowed", 0),
        ("1e999 * mse", r"numbers must be finite", 0),
        ("1e308 * 1e308 * mse", r"the weight overflows", 0),
        ("mse / 0", r"division by zero", 6),
        ("1 / mse", r"only a number can divide", 4),
        ("mse + 1", r"a constant cannot be added to a loss", 0),
        ("0.5", r"the spec is a number, not a loss", 0),
        ("mse(2.0)", r"loss options must be keyword arguments", 4),
        ("mse(**{'weight': 2})", r"`\*\*` is not allowed", 4),
        ("mse(weight=[1, [2]])", r"a list is not an allowed option value", 15),
        ("mse(weight=-1.0)", r"`weight` must be in \[0, inf\); got -1.0", 0),
        ("mse(weihgt=1.0)", r"unexpected keyword argument 'weihgt'", 0),
        ("msee", r"got 'msee'. Did you mean 'mse'\?", 0),
        ("os.system", r"attribute access is not allowed", 0),
        ("[mse]", r"a list is not allowed|List", 0),
        ("mse if 1 else mse", r"a conditional expression is not allowed", 0),
        ("mse(weight=1 + 1)", r"the operator Add is not an allowed option value", 11),
        ("mse(_x=1)", r"option names must not start with '_'", 4),
        ("f'{mse}'", r"an f-string is not allowed", 0),
        ("mse; import os", r"invalid syntax", None),
        ("", r"invalid syntax", None),
        ("(" * 300 + "mse" + ")" * 300, r"invalid syntax|nested|cannot be parsed", None),
        ("-" * 5000 + "mse", r"nested|cannot be parsed", None),
        ("+".join(["mse"] * 200), r"nested more than 64 levels", None),
        (
            "mse(weight=" + "9" * 5000 + ")",
            r"invalid syntax|too large|cannot be parsed|weight",
            None,
        ),
        ("x" * 20000, r"at most 10000 characters", None),
        ("mse\x00", r"NUL", 3),
        ("mse(name='not valid')", r"`name` must be a Python identifier", 0),
        ("mse(name='a') + mse(name='a')", r"term names must be unique", None),
    ],
)
def test_hostile_and_invalid_specs(spec: str, match: str, position: Any) -> None:
    with pytest.raises(SpecError, match=match) as info:
        parse(spec)
    if position is not None:
        assert info.value.position == position


def test_nothing_is_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = tmp_path / "pwned"
    for name in ("eval", "exec"):  # ast.parse itself needs compile()
        monkeypatch.setattr(builtins, name, _forbidden(name))
    hostile = [
        f"__import__('os').system('touch {sentinel}')",
        f"open('{sentinel}', 'w')",
        f"mse(weight=__import__('os').system('touch {sentinel}'))",
        "globals()",
        "breakpoint()",
        "mse.__class__.__subclasses__()",
    ]
    for spec in hostile:
        with pytest.raises(SpecError):
            parse(spec)
    assert not sentinel.exists()


def _forbidden(name: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"parse() called {name}()")

    return refuse


# ------------------------------------------------------------------------------ dict forms
def test_dict_forms_build_the_same_objects() -> None:
    text = parse("0.5*mse + 0.5*mse(weight=2.0, name='double')")
    as_dict = text.to_dict()
    assert as_dict == {
        "terms": [
            {"loss": "mse", "weight": 0.5},
            {"loss": "mse", "weight": 0.5, "name": "double", "options": {"weight": 2.0}},
        ]
    }
    for form in (as_dict, as_dict["terms"], json.loads(json.dumps(as_dict))):
        rebuilt = parse(form)
        assert rebuilt.to_spec() == text.to_spec()


def test_term_dict_keeps_hyperparameters() -> None:
    assert MSELoss(weight=2.0).to_dict() == {"loss": "mse", "options": {"weight": 2.0}}
    assert MSELoss().to_dict() == {"loss": "mse"}
    built = parse({"loss": "mse", "weight": 0.5, "options": {"weight": 2.0}})
    assert built.to_spec() == "0.5*mse(weight=2.0)"


def test_yaml_config() -> None:
    config = yaml.safe_load(
        """
        loss:
          terms:
            - {loss: mse, weight: 0.7}
            - {loss: l2_error, weight: 0.3, name: aux}
        other: "0.5*mse + 0.5*mse"
        """
    )
    loss = parse(config["loss"])
    assert list(loss.term_weights) == ["mse", "aux"]
    assert parse(config["other"]).to_spec() == "0.5*mse + 0.5*mse"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"loss": "mse", "weight": "a lot"}, r"`weight` must be a finite number"),
        ({"loss": "mse", "weight": float("inf")}, r"`weight` must be a finite number"),
        ({"weight": 1.0}, r"needs a `loss` key"),
        ({"loss": "__import__"}, r"`loss` must be a registry name"),
        (
            {"loss": "mse", "options": {"__class__": 1}},
            r"option names must be strings not starting with '_'",
        ),
        (
            {"loss": "mse", "gamma": 2},
            r"takes the keys loss, weight, name and options; got \['gamma'\]",
        ),
        ({"loss": "mse", "options": [1]}, r"`options` must be a dict; got list"),
        ({"terms": "mse"}, r"`terms` must be a list of term dicts"),
        ({"terms": [], "extra": 1}, r"a dict with `terms` must have no other keys"),
        ({"terms": []}, r"the spec has no loss term"),
        ({"terms": [3]}, r"each entry of `terms` must be a dict or a spec string"),
        ({"loss": "mse", "options": {"bogus": 2}}, r"unexpected keyword argument 'bogus'"),
        (
            {"_target_": "os.system", "command": "true"},
            r"`_target_` must be an import path inside losslab",
        ),
        ({"_target_": "losslab.__builtins__"}, r"`_target_` must be an import path inside losslab"),
        ({"_target_": "losslab.parse"}, r"`_target_` must name a losslab Loss class"),
        ({"_target_": "losslab.Nope"}, r"`_target_` names nothing importable"),
        (42, r"the spec must be a str, a dict or a list of dicts; got int"),
    ],
)
def test_bad_dict_specs(spec: Any, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        parse(spec)


def _hydra_instantiate(config: dict[str, Any]) -> Any:
    """What hydra.utils.instantiate does with a flat `_target_` dict: import the path, call it."""
    config = dict(config)
    module_path, _, attr = config.pop("_target_").rpartition(".")
    return getattr(importlib.import_module(module_path), attr)(**config)


@pytest.mark.parametrize(
    "entry",
    [
        e
        for e in losslab.entries()
        if e.input_kind != "none" and not getattr(e.cls, "preset", False)
    ],
    ids=lambda e: e.key,
)
def test_every_module_builds_from_a_target_dict(entry: Any) -> None:
    path = f"{entry.cls.__module__}.{entry.cls.__qualname__}"
    case = CASES[entry.key]
    init, _ = split_kwargs(case.module, case.samples(generator(0))[0].kwargs)
    default = entry.cls(**init)
    kwargs = default.to_dict().get("options", {})
    for built in (
        _hydra_instantiate({"_target_": path, **kwargs}),
        parse({"_target_": path, **kwargs}),
    ):
        assert type(built) is entry.cls
        assert built.to_spec() == default.to_spec()
    short = f"losslab.{entry.cls.__name__}"
    assert type(parse({"_target_": short, **kwargs})) is entry.cls


def test_target_dict_for_penalty_takes_params() -> None:
    net = nn.Linear(2, 2)
    pen = parse({"_target_": "losslab.L1Penalty", "exclude_bias": False}, params=net)
    assert isinstance(pen, losslab.L1Penalty) and pen.parameter_names == ["weight", "bias"]
    torch.testing.assert_close(pen(), net.weight.abs().sum() + net.bias.abs().sum())
