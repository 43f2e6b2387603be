"""Safe loss specs: ``parse("0.5*bce + 0.5*dice(smooth=1)")`` and the dict forms.

The string form is parsed with ``ast.parse(mode="eval")`` and walked with an
allow-list: numbers, ``+ - * /``, unary minus, registry names and calls of them with
constant keyword arguments (numbers, strings, booleans, ``None`` and flat lists of
those). Nothing is evaluated by Python: no ``eval``/``exec``, no attribute access, no
imports, no dunder names. Anything else raises :class:`SpecError` naming the position.

Dict forms (what ``yaml.safe_load`` gives)::

    {"loss": "focal", "options": {"gamma": 2.0}}          # one term; "weight", "name" optional
    {"terms": [{"loss": "bce", "weight": 0.5}, ...]}      # a weighted sum (or a bare list)
    "0.5*bce + 0.5*dice(smooth=1)"                        # a string anywhere a term dict goes
    {"_target_": "losslab.SigmoidFocalLoss", "gamma": 2}  # Hydra style, losslab classes only
"""

from __future__ import annotations

import ast
import importlib
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

from losslab._registry import lookup
from losslab.losses.base import Loss

if TYPE_CHECKING:
    from losslab.compose.weighted_sum import WeightedSum

__all__ = ["SpecError", "parse", "sum_to_spec", "term_to_dict", "term_to_spec"]

MAX_SPEC_LENGTH = 10_000
MAX_DEPTH = 64
MAX_LITERAL_ITEMS = 4096

Spec = Union[str, Mapping[str, Any], Sequence[Mapping[str, Any]]]
_Terms = list[tuple[Optional[str], float, Loss]]


class SpecError(ValueError):
    """A spec that losslab refuses to build; ``position`` is the 0-based column, if known."""

    def __init__(self, message: str, *, spec: Any = None, position: Optional[int] = None) -> None:
        where = f" at position {position}" if position is not None else ""
        snippet = ""
        if isinstance(spec, str) and position is not None:
            snippet = f": {spec[position : position + 24]!r}"
        super().__init__(f"parse(): {message}{where}{snippet}")
        self.spec = spec
        self.position = position


def parse(spec: Spec, *, params: Any = None) -> Loss:
    """Build a loss from a spec string, a dict, or a list of term dicts.

    Args:
        spec: ``"0.5*bce + 0.5*dice(smooth=1)"``, a dict form, or a list of term dicts.
        params: a model or parameter iterable for parameter regularizers (``l2``).

    Returns:
        The loss module for a single unweighted term, else a ``WeightedSum``.

    >>> parse("0.5*mse + 0.5*huber(delta=2.0)").to_spec()
    '0.5*mse + 0.5*huber(delta=2.0)'
    >>> parse("__import__('os')")
    Traceback (most recent call last):
    ...
    losslab.compose.spec.SpecError: parse(): names must not start with '_' at position 0: "__import__('os')"
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        terms = _parse_string(spec, params)
    elif isinstance(spec, Mapping):
        terms = _parse_mapping(spec, params)
    elif isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        terms = [t for item in spec for t in _parse_term_dict(item, params, where="terms")]
    else:
        raise SpecError(
            f"the spec must be a str, a dict or a list of dicts; got {type(spec).__name__}",
            spec=spec,
        )
    return _assemble(terms, spec)


def _assemble(terms: _Terms, spec: Any) -> Loss:
    if not terms:
        raise SpecError("the spec has no loss term", spec=spec)
    if len(terms) == 1 and terms[0][1] == 1.0 and terms[0][0] is None:
        return terms[0][2]
    from losslab.compose.weighted_sum import WeightedSum

    try:
        return WeightedSum.from_terms(terms)
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc), spec=spec) from exc


# ----------------------------------------------------------------------------- strings
def _parse_string(spec: str, params: Any) -> _Terms:
    if len(spec) > MAX_SPEC_LENGTH:
        raise SpecError(
            f"the spec must be at most {MAX_SPEC_LENGTH} characters; got {len(spec)}",
            spec=spec[:40],
        )
    if "\x00" in spec:
        raise SpecError(
            "the spec must not contain NUL characters", spec=spec, position=spec.index("\x00")
        )
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" and the like are errors here
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(spec.strip(), mode="eval")
    except SyntaxError as exc:
        pos = (exc.offset - 1) if exc.offset else None
        raise SpecError(f"invalid syntax ({exc.msg})", spec=spec, position=pos) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise SpecError(f"the spec cannot be parsed ({type(exc).__name__})", spec=spec) from None
    offset = len(spec) - len(spec.lstrip())
    walker = _Walker(spec, offset, params)
    try:
        value = walker.visit(tree.body, 0)
    except RecursionError:
        raise SpecError("the spec is nested too deeply", spec=spec) from None
    if isinstance(value, float):
        raise SpecError("the spec is a number, not a loss", spec=spec, position=offset)
    return value


class _Walker:
    """Evaluate an allow-listed expression tree into numbers and weighted terms."""

    def __init__(self, spec: str, offset: int, params: Any) -> None:
        self.spec = spec
        self.offset = offset
        self.params = params

    def error(self, message: str, node: ast.AST) -> SpecError:
        col = getattr(node, "col_offset", None)
        return SpecError(
            message, spec=self.spec, position=None if col is None else col + self.offset
        )

    def visit(self, node: ast.AST, depth: int) -> Union[float, _Terms]:
        if depth > MAX_DEPTH:
            raise self.error(f"the spec is nested more than {MAX_DEPTH} levels deep", node)
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return [self.build(node, node.id, {})]
        if isinstance(node, ast.Call):
            return [self.call(node)]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.visit(node.operand, depth + 1)
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return self.scale(inner, sign, node)
        if isinstance(node, ast.BinOp) and isinstance(
            node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)
        ):
            left = self.visit(node.left, depth + 1)
            right = self.visit(node.right, depth + 1)
            return self.binop(node, left, right)
        raise self.error(f"{_describe(node)} is not allowed in a spec", node)

    def number(self, node: ast.Constant) -> float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(
                f"only numbers and loss names may be combined; got {value!r}"[:120], node
            )
        try:
            out = float(value)
        except OverflowError:
            raise self.error("the number is too large", node) from None
        if not math.isfinite(out):
            raise self.error("numbers must be finite", node)
        return out

    def finite(self, value: float, node: ast.AST) -> float:
        if not math.isfinite(value):
            raise self.error("the weight overflows (not finite)", node)
        return value

    def scale(
        self, value: Union[float, _Terms], factor: float, node: ast.AST
    ) -> Union[float, _Terms]:
        if isinstance(value, float):
            return self.finite(value * factor, node)
        return [(n, self.finite(w * factor, node), t) for n, w, t in value]

    def binop(self, node: ast.BinOp, left: Any, right: Any) -> Union[float, _Terms]:
        op = node.op
        left_num, right_num = isinstance(left, float), isinstance(right, float)
        if isinstance(op, (ast.Add, ast.Sub)):
            if left_num and right_num:
                return self.finite(left + right if isinstance(op, ast.Add) else left - right, node)
            if left_num or right_num:
                raise self.error("a constant cannot be added to a loss", node)
            return left + (right if isinstance(op, ast.Add) else self.scale(right, -1.0, node))
        if isinstance(op, ast.Mult):
            if left_num and right_num:
                return self.finite(left * right, node)
            if left_num:
                return self.scale(right, left, node)
            if right_num:
                return self.scale(left, right, node)
            raise self.error("a loss cannot multiply a loss (a spec is a weighted sum)", node)
        # Div
        if not right_num:
            raise self.error("only a number can divide", node.right)
        if right == 0.0:
            raise self.error("division by zero", node.right)
        return self.scale(left, 1.0 / right, node)

    def call(self, node: ast.Call) -> tuple[Optional[str], float, Loss]:
        if not isinstance(node.func, ast.Name):
            raise self.error(
                f"only a loss name may be called; got {_describe(node.func)}", node.func
            )
        if node.func.id.startswith("_"):
            raise self.error("names must not start with '_'", node.func)
        if node.args:
            raise self.error("loss options must be keyword arguments (name=value)", node.args[0])
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise self.error("`**` is not allowed in a spec", kw)
            if kw.arg.startswith("_"):
                raise self.error("option names must not start with '_'", kw)
            kwargs[kw.arg] = self.literal(kw.value, 0)
        return self.build(node, node.func.id, kwargs)

    def literal(self, node: ast.AST, depth: int) -> Any:
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or isinstance(value, (bool, str)):
                if isinstance(value, str) and len(value) > 200:
                    raise self.error("string options must be at most 200 characters", node)
                return value
            if isinstance(value, (int, float)):
                try:
                    out = float(value) if isinstance(value, float) else int(value)
                    float(out)
                except OverflowError:
                    raise self.error("the number is too large", node) from None
                if isinstance(out, float) and math.isnan(out):
                    raise self.error("NaN is not an option value", node)
                return out
            raise self.error(
                f"option values must be numbers, strings, booleans or None; got {type(value).__name__}",
                node,
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.literal(node.operand, depth)
            if isinstance(inner, bool) or not isinstance(inner, (int, float)):
                raise self.error("a sign must precede a number", node)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, (ast.List, ast.Tuple)) and depth == 0:
            if len(node.elts) > MAX_LITERAL_ITEMS:
                raise self.error(f"lists must have at most {MAX_LITERAL_ITEMS} items", node)
            return [self.literal(e, depth + 1) for e in node.elts]
        raise self.error(f"{_describe(node)} is not an allowed option value", node)

    def build(
        self, node: ast.AST, name: str, kwargs: dict[str, Any]
    ) -> tuple[Optional[str], float, Loss]:
        if name.startswith("_"):
            raise self.error("names must not start with '_'", node)
        term_name = kwargs.pop("name", None)
        try:
            module = _instantiate(name, kwargs, self.params)
            if term_name is not None:
                module.named(term_name)
        except (TypeError, ValueError) as exc:
            raise self.error(str(exc), node) from exc
        return (term_name, 1.0, module)


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access",
        ast.Lambda: "a lambda",
        ast.Subscript: "subscripting",
        ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operator",
        ast.IfExp: "a conditional expression",
        ast.Dict: "a dict",
        ast.List: "a list",
        ast.Tuple: "a tuple",
        ast.Set: "a set",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a generator",
        ast.Starred: "unpacking",
        ast.JoinedStr: "an f-string",
        ast.NamedExpr: "an assignment expression",
    }
    if isinstance(node, ast.BinOp):
        return f"the operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"the unary operator {type(node.op).__name__}"
    return kinds.get(type(node), type(node).__name__)


# ----------------------------------------------------------------------------- building
def _instantiate(name: str, kwargs: Mapping[str, Any], params: Any) -> Loss:
    cls = lookup(name)
    if cls.input_kind == "none":
        if params is None:
            raise ValueError(
                f"`{name}` regularizes parameters: pass them as parse(spec, params=model)"
            )
        return cls(params, **kwargs)  # type: ignore[call-arg]
    return cls(**kwargs)


def _parse_mapping(spec: Mapping[str, Any], params: Any) -> _Terms:
    if "terms" in spec:
        extra = set(spec) - {"terms"}
        if extra:
            raise SpecError(
                f"a dict with `terms` must have no other keys; got {sorted(extra)}", spec=spec
            )
        items = spec["terms"]
        if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
            raise SpecError("`terms` must be a list of term dicts", spec=spec)
        return [t for item in items for t in _parse_term_dict(item, params, where="terms")]
    return _parse_term_dict(spec, params, where="spec")


def _parse_term_dict(item: Any, params: Any, *, where: str) -> _Terms:
    if isinstance(item, str):
        return _parse_string(item, params)
    if not isinstance(item, Mapping):
        raise SpecError(
            f"each entry of `{where}` must be a dict or a spec string; got {type(item).__name__}",
            spec=item,
        )
    item = dict(item)
    weight = item.pop("weight", 1.0)
    name = item.pop("name", None)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(float(weight))
    ):
        raise SpecError(f"`weight` must be a finite number; got {weight!r}", spec=item)
    if "_target_" in item:
        module = _from_target(item.pop("_target_"), item, params)
    else:
        if "loss" not in item:
            raise SpecError(
                "a term dict needs a `loss` key (a registry name) or `_target_`", spec=item
            )
        key = item.pop("loss")
        options = item.pop("options", {})
        if item:
            raise SpecError(
                f"a term dict takes the keys loss, weight, name and options; got {sorted(map(str, item))} "
                "(loss options go under `options`)",
                spec=item,
            )
        if not isinstance(key, str) or key.startswith("_") or not key.isidentifier():
            raise SpecError(f"`loss` must be a registry name; got {key!r}", spec=key)
        if not isinstance(options, Mapping):
            raise SpecError(f"`options` must be a dict; got {type(options).__name__}", spec=options)
        for k in options:
            if not isinstance(k, str) or k.startswith("_"):
                raise SpecError(
                    f"option names must be strings not starting with '_'; got {k!r}", spec=options
                )
        try:
            module = _instantiate(key, dict(options), params)
        except (TypeError, ValueError) as exc:
            raise SpecError(str(exc), spec=item) from exc
    if name is not None:
        try:
            module.named(name)
        except ValueError as exc:
            raise SpecError(str(exc), spec=item) from exc
    return [(name, float(weight), module)]


def _from_target(target: Any, kwargs: dict[str, Any], params: Any) -> Loss:
    """Hydra-style ``_target_``: a ``losslab.`` import path to a Loss class, plus kwargs."""
    if not isinstance(target, str) or not target.startswith("losslab.") or "__" in target:
        raise SpecError(
            f"`_target_` must be an import path inside losslab; got {target!r}", spec=target
        )
    module_path, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_path), attr)
    except (ImportError, AttributeError):
        raise SpecError(
            f"`_target_` names nothing importable; got {target!r}", spec=target
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, Loss)):
        raise SpecError(f"`_target_` must name a losslab Loss class; got {target!r}", spec=target)
    try:
        if obj.input_kind == "none":
            return obj(params, **kwargs)  # type: ignore[call-arg]
        return obj(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc), spec=target) from exc


# ----------------------------------------------------------------------------- printing
def _literal_repr(value: Any, owner: Loss, name: str) -> str:
    if value is None or isinstance(value, (bool, str, int)):
        return repr(value)
    if isinstance(value, float):
        if math.isinf(value):  # `inf` is not a literal; 1e999 parses back to it
            return "1e999" if value > 0 else "-1e999"
        return repr(value)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        return "[" + ", ".join(_literal_repr(v, owner, name) for v in value) + "]"
    raise ValueError(
        f"to_spec(): `{name}` of {type(owner).__name__} has no spec form; got {type(value).__name__}."
    )


def _check_registered(loss: Loss) -> None:
    key = type(loss).key
    try:
        registered = lookup(key) is type(loss) if key else False
    except ValueError:
        registered = False
    if not registered:
        raise ValueError(
            f"to_spec(): `loss` must be a registered loss class; got {type(loss).__name__}."
        )


def term_to_spec(loss: Loss, *, name: Optional[str] = None) -> str:
    _check_registered(loss)
    kwargs = loss.spec_kwargs()
    if name is not None:
        kwargs["name"] = name
    if not kwargs:
        return type(loss).key
    args = ", ".join(f"{k}={_literal_repr(v, loss, k)}" for k, v in kwargs.items())
    return f"{type(loss).key}({args})"


def term_to_dict(loss: Loss, *, weight: float, name: Optional[str] = None) -> dict[str, Any]:
    _check_registered(loss)
    out: dict[str, Any] = {"loss": type(loss).key}
    if weight != 1.0:
        out["weight"] = weight
    if name is not None:
        out["name"] = name
    options = loss.spec_kwargs()
    for k, v in options.items():
        _literal_repr(v, loss, k)  # refuses values with no plain form
    if options:
        out["options"] = options
    return out


def sum_to_spec(total: WeightedSum) -> str:
    parts: list[str] = []
    for i, (name, weight, term) in enumerate(total.terms()):
        text = term_to_spec(term, name=name)
        sign = "-" if weight < 0 else "+"
        magnitude = abs(weight)
        body = text if magnitude == 1.0 else f"{magnitude!r}*{text}"
        if i == 0:
            parts.append(f"-{body}" if sign == "-" else body)
        else:
            parts.append(f" {sign} {body}")
    return "".join(parts)
