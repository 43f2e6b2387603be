"""The registry: key or alias -> Loss class, with a did-you-mean on unknown names.

Classes register themselves with the :func:`register` decorator; keys carry no
``_loss`` / ``_penalty`` suffix (``focal``, ``dice``, ``bce``, ``l2``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from losslab.losses.base import Loss

__all__ = ["RegistryEntry", "available", "entries", "lookup", "register"]

_KEYS: dict[str, type[Loss]] = {}
_ALIASES: dict[str, str] = {}

L = TypeVar("L", bound="type[Loss]")


@dataclass(frozen=True)
class RegistryEntry:
    """One registered loss, as ``losslab list`` shows it."""

    key: str
    family: str
    input_kind: str
    summary: str
    aliases: tuple[str, ...]
    cls: type

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "family": self.family,
            "input_kind": self.input_kind,
            "summary": self.summary,
            "aliases": list(self.aliases),
            "class": f"{self.cls.__module__}.{self.cls.__qualname__}",
        }


def register(cls: L) -> L:
    """Class decorator: register ``cls`` under ``cls.key`` and ``cls.aliases``."""
    key = cls.key
    if not key or not key.isidentifier() or key != key.lower():
        raise ValueError(f"register(): `key` must be a lower-case identifier; got {key!r}.")
    for name in (key, *cls.aliases):
        if name in _KEYS or name in _ALIASES:
            owner = _KEYS.get(name) or _KEYS[_ALIASES[name]]
            if owner is not cls:
                raise ValueError(
                    f"register(): `key` must be unique; got {name!r}, already used by "
                    f"{owner.__qualname__}."
                )
    _KEYS[key] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = key
    return cls


def _ensure_loaded() -> None:
    # Importing the package registers every built-in loss.
    import losslab.losses  # noqa: F401


def lookup(name: str) -> type[Loss]:
    """The Loss class registered as ``name`` (a key or an alias).

    >>> lookup("mse").__name__
    'MSELoss'
    >>> lookup("msee")
    Traceback (most recent call last):
    ...
    ValueError: lookup(): `name` must be a registered loss key; got 'msee'. Did you mean 'mse'?
    """
    _ensure_loaded()
    if not isinstance(name, str):
        raise TypeError(f"lookup(): `name` must be a str; got {type(name).__name__}.")
    key = _ALIASES.get(name, name)
    if key in _KEYS:
        return _KEYS[key]
    close = difflib.get_close_matches(name, [*_KEYS, *_ALIASES], n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else " See `losslab list`."
    raise ValueError(f"lookup(): `name` must be a registered loss key; got {name!r}.{hint}")


def available() -> list[str]:
    """Every registered key, sorted."""
    _ensure_loaded()
    return sorted(_KEYS)


def entries() -> list[RegistryEntry]:
    """Every registered loss with its metadata, sorted by family then key."""
    _ensure_loaded()
    rows = []
    for key, cls in _KEYS.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append(
            RegistryEntry(
                key=key,
                family=cls.family,
                input_kind=cls.input_kind,
                summary=doc[0].rstrip(".") if doc else "",
                aliases=tuple(cls.aliases),
                cls=cls,
            )
        )
    return sorted(rows, key=lambda e: (e.family, e.key))


def _unregister(key: str) -> None:
    """Remove ``key`` (tests only)."""
    cls = _KEYS.pop(key, None)
    if cls is not None:
        for alias in cls.aliases:
            _ALIASES.pop(alias, None)
