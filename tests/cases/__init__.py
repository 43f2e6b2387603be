"""The loss-case database: one ``Case`` per registered loss, collected from every module here."""

from __future__ import annotations

import importlib
import pkgutil

from tests.cases._base import Case, ErrorInput, Sample

CASES: dict[str, Case] = {}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("_"):
        continue
    for _case in importlib.import_module(f"{__name__}.{_info.name}").CASES:
        if _case.key in CASES:
            raise ValueError(f"two cases for {_case.key!r}")
        CASES[_case.key] = _case

__all__ = ["CASES", "Case", "ErrorInput", "Sample"]
