"""``Loss``: the base module of every losslab loss.

A loss module stores its hyperparameters (tensors as buffers) and its ``forward`` is
one call to its pure function. It carries metadata as class attributes and the
composition algebra: ``0.5 * a + 0.5 * b`` is a :class:`~losslab.compose.WeightedSum`.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from typing import Any, Callable, ClassVar, Optional

from torch import Tensor, nn

from losslab import _backend
from losslab._checks import is_sequence

__all__ = ["Loss"]

INPUT_KINDS = ("logits", "probs", "values", "scores", "none", "mixed")


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not isinstance(x, Tensor)


class Loss(nn.Module):
    """Base class of losslab losses.

    Subclasses set the class attributes below, call ``self._store(...)`` with their
    hyperparameters in ``__init__``, and point ``function`` at their pure function.

    Attributes:
        key: registry key (``"focal"``), without ``_loss``.
        family: ``"regression" | "classification" | "segmentation" | ...``.
        input_kind: what the first argument is: ``logits | probs | values | scores | none``.
        pointwise: the loss is a mean of independent per-element terms.
        needs_global_stats: the value depends on statistics over the whole batch.
        aliases: other registry names.
        function: the pure function; ``forward`` calls it with the stored hyperparameters.
    """

    key: ClassVar[str] = ""
    family: ClassVar[str] = ""
    input_kind: ClassVar[str] = "values"
    pointwise: ClassVar[bool] = True
    needs_global_stats: ClassVar[bool] = False
    aliases: ClassVar[tuple[str, ...]] = ()
    function: ClassVar[Optional[Callable[..., Tensor]]] = None

    _hparam_names: tuple[str, ...]
    _term_name: Optional[str]
    _compile: Optional[bool] = None

    def __init__(self) -> None:
        super().__init__()
        self._hparam_names = ()
        self._term_name = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every loss with a ``function`` accepts ``compile=`` besides its hyperparameters.

        ``compile=True`` runs the function through ``torch.compile`` (see
        :mod:`losslab._backend`), ``False`` keeps it eager whatever the global backend, and
        ``None`` (default) follows :func:`losslab.set_backend`. It is not a hyperparameter: it
        is not stored in ``hparams`` or specs, and a pickled module keeps the flag only.
        """
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_takes_compile", False):
            return

        @functools.wraps(init)
        def __init__(self: Loss, *args: Any, compile: Optional[bool] = None, **kw: Any) -> None:
            init(self, *args, **kw)
            if compile is not None:
                if not isinstance(compile, bool):
                    raise TypeError(
                        f"{type(self).__name__}(): `compile` must be True, False or None; "
                        f"got {compile!r}."
                    )
                if type(self).function is None:
                    raise TypeError(
                        f"{type(self).__name__}(): `compile` applies to a loss with a function; "
                        "set it on each term, or use losslab.set_backend('compile')."
                    )
                self._compile = compile

        __init__._takes_compile = True  # type: ignore[attr-defined]
        cls.__init__ = __init__  # type: ignore[method-assign]

    # ------------------------------------------------------------------ hyperparameters
    def _store(self, **hparams: Any) -> None:
        """Keep hyperparameters: tensors as buffers (they follow ``.to()`` and ``state_dict``)."""
        for name, value in hparams.items():
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            elif isinstance(value, Tensor):
                self.register_buffer(name, value)
            else:
                if is_sequence(value) and not isinstance(value, (list, tuple)):
                    value = list(value)  # a config container (Hydra's ListConfig): plain list
                setattr(self, name, value)
        self._hparam_names = tuple(self._hparam_names) + tuple(hparams)

    @property
    def hparams(self) -> dict[str, Any]:
        """The stored hyperparameters, as passed to the function."""
        return {name: getattr(self, name) for name in self._hparam_names}

    @classmethod
    def call_arguments(cls) -> tuple[str, ...]:
        """Keyword arguments accepted per call (``sample_weight``, ``mask``, ...)."""
        fn = cls.function
        if fn is None:
            return ()
        init_params = set(inspect.signature(cls.__init__).parameters)
        names = []
        for i, p in enumerate(inspect.signature(fn).parameters.values()):
            if i < cls._n_inputs() or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.name not in init_params:
                names.append(p.name)
        return tuple(names)

    @classmethod
    def _n_inputs(cls) -> int:
        return 0 if cls.input_kind == "none" else 2

    def forward(self, *inputs: Tensor, **kwargs: Any) -> Tensor:
        fn = type(self).function
        if fn is None:
            raise NotImplementedError(f"{type(self).__name__} defines no `function`")
        clash = set(kwargs) & set(self._hparam_names)
        if clash:
            name = sorted(clash)[0]
            raise TypeError(
                f"{type(self).__name__}(): `{name}` is set when the loss is built, not per call; "
                f"got {name}={kwargs[name]!r} in the call."
            )
        if _backend.wants_compile(self._compile):
            fn = _backend.compiled(fn)
        return fn(*inputs, **self.hparams, **kwargs)

    def extra_repr(self) -> str:
        parts = []
        for name in self._hparam_names:
            value = getattr(self, name)
            if isinstance(value, Tensor):
                text = f"tensor{tuple(value.shape)}" if value.numel() > 8 else str(value.tolist())
            else:
                text = repr(value)
            parts.append(f"{name}={text}")
        return ", ".join(parts)

    # ------------------------------------------------------------------ naming and output
    @property
    def name(self) -> str:
        """The term name used by compositions and ``log_dict`` (default: the registry key)."""
        return self._term_name or self.key or type(self).__name__.lower()

    def named(self, name: str) -> Loss:
        """Set the name this loss has as a term of a composition; returns ``self``."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"named(): `name` must be a Python identifier; got {name!r}.")
        self._term_name = name
        return self

    def evaluate(self, *inputs: Tensor, **kwargs: Any) -> LossOutput:
        """The loss with its components: ``LossOutput(total, components, weights)``."""
        value = self(*inputs, **kwargs)
        return LossOutput(total=value, components={self.name: value}, weights={self.name: 1.0})

    # ------------------------------------------------------------------ specs
    def spec_kwargs(self) -> dict[str, Any]:
        """Hyperparameters that differ from their defaults, as plain Python values."""
        sig = inspect.signature(type(self).__init__)
        out: dict[str, Any] = {}
        for name in self._hparam_names:
            value = getattr(self, name)
            default = (
                sig.parameters[name].default if name in sig.parameters else inspect.Parameter.empty
            )
            if isinstance(value, Tensor):
                out[name] = value.detach().cpu().tolist()
            elif default is inspect.Parameter.empty or not _same(value, default):
                out[name] = value
        if self._compile is not None:  # an execution option, kept so specs round-trip
            out["compile"] = self._compile
        return out

    def to_spec(self) -> str:
        """The canonical spec string; ``losslab.parse(loss.to_spec())`` rebuilds the loss."""
        from losslab.compose.spec import term_to_spec

        return term_to_spec(self)

    def to_dict(self) -> dict[str, Any]:
        """The dict form of the spec (``{"loss": key, **kwargs}``)."""
        from losslab.compose.spec import term_to_dict

        return term_to_dict(self, weight=1.0)

    # ------------------------------------------------------------------ algebra
    def __add__(self, other: Any) -> Loss:
        if not isinstance(other, Loss):
            return NotImplemented
        from losslab.compose.weighted_sum import WeightedSum

        return WeightedSum.from_terms([*_terms_of(self), *_terms_of(other)])

    def __radd__(self, other: Any) -> Loss:
        if _is_number(other) and other == 0:  # sum([a, b]) starts from 0
            return self
        return NotImplemented

    def __sub__(self, other: Any) -> Loss:
        if not isinstance(other, Loss):
            return NotImplemented
        return self + (-1.0) * other

    def __mul__(self, factor: Any) -> Loss:
        if isinstance(factor, Loss):
            raise TypeError(
                "Loss * Loss is not a loss: composition is a weighted sum; "
                f"got {type(self).__name__} * {type(factor).__name__}."
            )
        if not _is_number(factor):
            return NotImplemented
        factor = float(factor)
        if not math.isfinite(factor):
            raise ValueError(f"Loss * factor: `factor` must be finite; got {factor!r}.")
        from losslab.compose.weighted_sum import WeightedSum

        return WeightedSum.from_terms([(n, w * factor, t) for n, w, t in _terms_of(self)])

    __rmul__ = __mul__

    def __truediv__(self, divisor: Any) -> Loss:
        if isinstance(divisor, Loss):
            raise TypeError(
                f"Loss / Loss is not a loss; got {type(self).__name__} / {type(divisor).__name__}."
            )
        if not _is_number(divisor):
            return NotImplemented
        if divisor == 0:
            raise ValueError("Loss / divisor: `divisor` must be non-zero; got 0.")
        return self * (1.0 / float(divisor))

    def __neg__(self) -> Loss:
        return self * -1.0

    def __pos__(self) -> Loss:
        return self


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _terms_of(loss: Loss) -> list[tuple[Optional[str], float, Loss]]:
    """(explicit name or None, weight, module) triples of a loss or a weighted sum."""
    from losslab.compose.weighted_sum import WeightedSum

    if isinstance(loss, WeightedSum):
        return loss.terms()
    return [(loss._term_name, 1.0, loss)]


# Imported last: losslab.compose imports this module (WeightedSum is a Loss).
from losslab.compose.output import LossOutput  # noqa: E402
