"""The ``losslab`` command line: ``list`` now; ``check`` and ``compare`` later.

Each command parses, calls the library, and renders. Known errors become one line on
stderr plus a hint and exit code 2; tracebacks only with ``LOSSLAB_DEBUG=1``.
"""

from __future__ import annotations

from losslab.cli.app import app, main

__all__ = ["app", "main", "run"]


def run() -> None:
    """The ``losslab`` script."""
    raise SystemExit(main())
