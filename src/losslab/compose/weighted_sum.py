"""``WeightedSum``: what ``0.5 * a + 0.5 * b`` builds.

Terms are flat (``2 * (a + b)`` distributes), named by registry key (``dice``,
``dice_2``) unless ``.named()`` says otherwise, and keyword arguments of a call are
routed to the terms whose function accepts them.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Optional

from torch import Tensor, nn

from losslab.compose.output import LossOutput
from losslab.losses.base import Loss

__all__ = ["WeightedSum"]

Term = tuple[Optional[str], float, Loss]


def _accepted_kwargs(term: Loss) -> Optional[frozenset[str]]:
    """Keyword names a term accepts per call; ``None`` means any (``**kwargs``)."""
    if type(term).function is not None:
        return frozenset(type(term).call_arguments())
    sig = inspect.signature(term.forward)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return frozenset(
        p.name
        for i, p in enumerate(sig.parameters.values())
        if i >= term._n_inputs() and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


class WeightedSum(Loss):
    """A weighted sum of named loss terms: ``total = sum_k weight_k * term_k(pred, target)``.

    Build it with the algebra (``0.5 * BCEWithLogitsLoss() + 0.5 * DiceLoss()``) or
    :func:`losslab.parse`. Calling it returns the total tensor; :meth:`evaluate` returns
    a :class:`LossOutput` with every unweighted component.
    """

    key = "weighted_sum"
    family = "composition"

    def __init__(
        self,
        terms: Sequence[Loss],
        weights: Sequence[float],
        names: Optional[Sequence[Optional[str]]] = None,
    ) -> None:
        super().__init__()
        if len(terms) != len(weights) or not terms:
            raise ValueError(
                "WeightedSum(): `weights` must have one entry per term (at least one term); "
                f"got {len(terms)} term(s) and {len(weights)} weight(s)."
            )
        names = list(names) if names is not None else [None] * len(terms)
        explicit = [n for n in names if n is not None]
        if len(set(explicit)) != len(explicit):
            dup = next(n for n in explicit if explicit.count(n) > 1)
            raise ValueError(f"WeightedSum(): term names must be unique; got {dup!r} twice.")
        final: list[str] = []
        taken = set(explicit)
        for term, name in zip(terms, names):
            if not isinstance(term, Loss):
                raise TypeError(
                    f"WeightedSum(): every term must be a losslab Loss; got {type(term).__name__}."
                )
            if isinstance(term, WeightedSum):
                raise TypeError(
                    "WeightedSum(): terms must be flat; use the algebra to combine sums."
                )
            if name is None:
                base = term.name
                name, k = base, 2
                while name in taken:
                    name, k = f"{base}_{k}", k + 1
                taken.add(name)
            final.append(name)
        # A ModuleList, not a ModuleDict keyed by name: a term named "double" or "train" would
        # clash with nn.Module's own attributes.
        self.term_list = nn.ModuleList(terms)
        self.term_names = tuple(final)
        self.term_weights = {n: float(w) for n, w in zip(final, weights)}
        self._explicit = {n for n, given in zip(final, names) if given is not None}
        self._routes = {n: _accepted_kwargs(t) for n, t in zip(final, terms)}

    @property
    def term_modules(self) -> dict[str, Loss]:
        """Term name -> module, in order."""
        return dict(zip(self.term_names, self.term_list))  # type: ignore[arg-type]

    @classmethod
    def from_terms(cls, terms: Sequence[Term]) -> WeightedSum:
        return cls([t for _, _, t in terms], [w for _, w, _ in terms], [n for n, _, _ in terms])

    def terms(self) -> list[Term]:
        """(explicit name or None, weight, module) per term, as the algebra flattens them."""
        return [
            (n if n in self._explicit else None, self.term_weights[n], t)
            for n, t in self.term_modules.items()
        ]

    @property
    def input_kinds(self) -> set[str]:
        return {t.input_kind for t in self.term_modules.values()}

    @property
    def pointwise_all(self) -> bool:
        return all(t.pointwise for t in self.term_modules.values())

    def evaluate(self, *inputs: Tensor, **kwargs: Any) -> LossOutput:
        if len(inputs) > 2:
            raise TypeError(
                "WeightedSum(): takes (pred, target) positionally; pass further inputs by keyword "
                f"(for example var=...) so they reach the terms that accept them; got {len(inputs)} "
                "positional inputs."
            )
        used: set[str] = set()
        components: dict[str, Tensor] = {}
        for name, term in self.term_modules.items():
            accepted = self._routes[name]
            routed = (
                kwargs if accepted is None else {k: v for k, v in kwargs.items() if k in accepted}
            )
            used.update(routed)
            components[name] = (
                term(*inputs[: term._n_inputs()], **routed) if term._n_inputs() else term(**routed)
            )
        unused = set(kwargs) - used
        if unused:
            arg = sorted(unused)[0]
            raise TypeError(
                f"WeightedSum(): keyword `{arg}` is accepted by no term "
                f"({', '.join(self.term_modules)}); got {arg}=..."
            )
        shapes = {n: tuple(v.shape) for n, v in components.items()}
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{n} {s}" for n, s in shapes.items())
            raise ValueError(
                "WeightedSum(): every term must return the same shape (reduction='none' "
                f"mixes per-element and per-sample losses); got {listing}."
            )
        total: Optional[Tensor] = None
        for name, value in components.items():
            part = self.term_weights[name] * value
            total = part if total is None else total + part
        assert total is not None  # at least one term, checked in __init__
        return LossOutput(total=total, components=components, weights=dict(self.term_weights))

    def forward(self, *inputs: Tensor, **kwargs: Any) -> Tensor:
        return self.evaluate(*inputs, **kwargs).total

    @classmethod
    def _n_inputs(cls) -> int:
        return 2

    def spec_kwargs(self) -> dict[str, Any]:
        return {}

    def to_spec(self) -> str:
        from losslab.compose.spec import sum_to_spec

        return sum_to_spec(self)

    def to_dict(self) -> dict[str, Any]:
        from losslab.compose.spec import term_to_dict

        return {"terms": [term_to_dict(t, weight=w, name=n) for n, w, t in self.terms()]}

    def extra_repr(self) -> str:
        return ", ".join(f"{n}: {w:g}" for n, w in self.term_weights.items())
