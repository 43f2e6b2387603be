"""The typer application and its one error-handling entry point."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from losslab._registry import entries

app = typer.Typer(
    name="losslab",
    help="Loss functions for PyTorch: list, check and compare them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table (human) or json (machine).")
]
FamilyOption = Annotated[
    Optional[str], typer.Option("--family", help="Only this family (regression, ...).")
]


@app.callback()
def _root() -> None:
    """Loss functions for PyTorch: list, check and compare them."""


@app.command("list")
def list_losses(family: FamilyOption = None, output: FormatOption = OutputFormat.table) -> None:
    """Print every registered loss: key, family, input kind and a one-line description."""
    rows = entries()
    if family is not None:
        families = sorted({e.family for e in rows})
        if family not in families:
            raise ValueError(f"`--family` must be one of {', '.join(families)}; got {family!r}.")
        rows = [e for e in rows if e.family == family]
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps([e.to_dict() for e in rows], indent=2) + "\n")
        return
    table = Table(title=f"losslab: {len(rows)} registered losses", show_lines=False)
    for column in ("key", "family", "input", "description", "aliases"):
        table.add_column(column, overflow="fold")
    for e in rows:
        table.add_row(e.key, e.family, e.input_kind, e.summary, ", ".join(e.aliases))
    Console(width=max(Console().width, 120)).print(table)


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point: exit 0 ok, 1 a finding at or above --fail-on, 2 usage or input error."""
    try:
        app(args=argv, prog_name="losslab")  # click reports usage errors itself (exit 2)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        sys.stderr.write(
            "losslab: interrupted.\nhint: finished runs are kept; rerun the same command to resume.\n"
        )
        return 130
    except (ValueError, TypeError) as exc:
        if os.environ.get("LOSSLAB_DEBUG") == "1":
            raise
        sys.stderr.write(
            f"losslab: error: {exc}\nhint: run with LOSSLAB_DEBUG=1 for a traceback.\n"
        )
        return 2
    return 0
