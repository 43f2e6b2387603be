"""The ``losslab`` command line: ``list``, ``check`` and ``compare``.

Each command parses, calls the library, and renders. Known errors become one line on
stderr plus a hint and exit code 2; tracebacks only with ``LOSSLAB_DEBUG=1``.
"""

from __future__ import annotations

from losslab.cli import check as _check  # noqa: F401  (registers the command)
from losslab.cli import compare as _compare  # noqa: F401  (registers the command)
from losslab.cli.app import app, main

__all__ = ["app", "main", "run"]


def run() -> None:
    """The ``losslab`` script."""
    raise SystemExit(main())
