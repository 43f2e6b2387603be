"""Collect the public names of every loss file in a family package."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any


def collect(package: str, path: Iterable[str], namespace: dict[str, Any]) -> list[str]:
    """Import each non-private module of ``package`` and copy its ``__all__`` into ``namespace``."""
    names: list[str] = []
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for name in module.__all__:
            namespace[name] = getattr(module, name)
            names.append(name)
    return names
