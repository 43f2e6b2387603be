"""The command line: exit codes, JSON output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import losslab
from losslab.cli import main


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for entry in losslab.entries():
        assert entry.key in out


def test_list_json_is_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--format", "json", "--family", "regression"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["family"] == "regression" for r in rows)
    assert {"key", "family", "input_kind", "summary", "aliases", "class"} <= set(rows[0])


def test_bad_family_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--family", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("losslab: error: `--family` must be one of") and "hint:" in err


def test_usage_error_exit_2() -> None:
    assert main(["no-such-command"]) == 2
    assert main(["list", "--format", "xml"]) == 2


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from losslab.cli import run; run()", "list", "-f", "json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    assert json.loads(out.stdout)
