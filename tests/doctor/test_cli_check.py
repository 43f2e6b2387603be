"""``losslab check TARGET``: loading files and modules, exit codes, table and JSON output."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

import losslab.cli.check  # noqa: F401  (registers the command)
from losslab.cli.app import main
from losslab.cli.check import load_target

FAST = ["--probe", "returns_tensor", "--probe", "inplace", "--probe", "determinism"]

LOSSES = """
import torch
import torch.nn.functional as F

print("a print at import time")


def my_mse(pred, target):
    return ((pred - target) ** 2).mean()


def bce_positives_only(logits, target):
    pos = target > 0.5
    if not pos.any():
        return 0.0  # planted bug: a Python float when the batch has no positive
    return F.binary_cross_entropy_with_logits(logits[pos], target[pos])


def bce_dropout(logits, target):  # planted bug: randomness (a warning)
    return F.dropout(F.binary_cross_entropy_with_logits(logits, target, reduction="none")).mean()


def one_arg(pred):
    return pred.sum()


def needs_insample(pred, target, *, insample):
    return (pred - target).abs().mean() / insample.mean()


def needs_three(pred, target, scale):
    return ((pred - target) ** 2).mean() * scale


class MyL1(torch.nn.Module):
    def forward(self, pred, target):
        return (pred - target).abs().mean()


class Weighted(torch.nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, pred, target):
        return self.weight * ((pred - target) ** 2).mean()


class NotALoss:
    pass


class Holder:
    @staticmethod
    def l1(pred, target):
        return (pred - target).abs().mean()


weighted = Weighted(2.0)
NUMBER = 3
"""


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "losses.py").write_text(LOSSES)
    (tmp_path / "syntax.py").write_text("import torch\n\ndef f(pred, target)\n    return pred\n")
    (tmp_path / "broken_import.py").write_text(
        "import torch\nx = 1\nraise RuntimeError('boom at import')\n"
    )
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(5)\n")
    (tmp_path / "missing_dep.py").write_text("import not_a_real_package_xyz\n")
    (tmp_path / "uses_sibling.py").write_text(
        "from helper_mod import scale\n\ndef loss(pred, target):\n    return scale * ((pred - target) ** 2).mean()\n"
    )
    (tmp_path / "helper_mod.py").write_text("scale = 2.0\n")
    (tmp_path / "notes.txt").write_text("not python")
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "lossmod.py").write_text(
        "def mae(pred, target):\n    return (pred - target).abs().mean()\n"
    )
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------- exit 2
BAD = [
    (["nocolon"], r"`TARGET` must be path/to/file\.py:function or package\.module:function"),
    (["losses.py"], r"Add `:function_name` after the file"),
    (["losses.py:"], r"`TARGET` must be"),
    (["missing.py:f"], r"`TARGET` file not found: missing\.py"),
    (["notes.txt:f"], r"must point at a Python file"),
    (["syntax.py:f"], r"syntax\.py:3: syntax error: expected ':'"),
    (
        ["broken_import.py:f"],
        r"importing broken_import\.py failed at line 3: RuntimeError: boom at import",
    ),
    (["exits.py:f"], r"importing exits\.py failed at line 2: SystemExit: 5"),
    (["missing_dep.py:f"], r"ModuleNotFoundError: No module named 'not_a_real_package_xyz'"),
    (["losses.py:my_mes"], r"`losses\.py` has no function 'my_mes'\. Did you mean 'my_mse'\?"),
    (["losses.py:zzzz"], r"has no function 'zzzz'\. Its callables: .*bce_dropout"),
    (["losses.py:NUMBER"], r"`losses\.py:NUMBER` is not callable \(a int\)"),
    (
        ["losses.py:one_arg"],
        r"must take \(pred, target\) as its first two positional parameters; it takes pred",
    ),
    (["losses.py:needs_insample"], r"needs `insample` beyond \(pred, target\)"),
    (["losses.py:needs_three"], r"needs `scale` beyond \(pred, target\)"),
    (["losses.py:Weighted"], r"`losses\.py:Weighted\(\)` could not be built with no arguments"),
    (["losses.py:NotALoss"], r"is a class, not a loss function"),
    (["losses.py:Holder.l2"], r"`losses\.py:Holder` has no function 'l2'\. Its callables: l1\."),
    (["no_such_pkg_abc.mod:f"], r"cannot import module 'no_such_pkg_abc\.mod': No module named"),
    (["mypkg.lossmod:mea"], r"Did you mean 'mae'\?"),
    (
        ["losses.py:my_mse", "--task", "regresion"],
        r"`--task` must be one of .* Did you mean 'regression'\?",
    ),
    (
        ["losses.py:my_mse", "--task", "binary", "--input-kind", "value"],
        r"`--input-kind` must be one of logits, probs",
    ),
    (
        ["losses.py:my_mse", "--probe", "inplac"],
        r"`--probe` must be one of .* Did you mean 'inplace'\?",
    ),
    (["losses.py:my_mse", "--timeout", "0"], r"`--timeout` must be a positive number"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_usage_errors_exit_2_with_one_line(
    files: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    errors = [line for line in err.splitlines() if line.startswith("losslab: error: ")]
    assert len(errors) == 1, err
    assert re.search(message, errors[0]), errors[0]
    assert "Traceback" not in err
    assert "a print at import time" not in out  # the loaded code prints to stderr


def test_click_usage_errors_exit_2(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys)[0] == 2  # no TARGET
    assert run(capsys, "losses.py:my_mse", "--fail-on", "info")[0] == 2
    assert run(capsys, "losses.py:my_mse", "--format", "yaml")[0] == 2


# --------------------------------------------------------------------------------- exit 0/1
def test_healthy_loss_exits_0_with_a_table(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "losses.py:my_mse", *FAST)
    assert code == 0, err
    assert "returns_tensor" in out and "inplace" in out and "determinism" in out
    assert "losses.py:my_mse (regression, values): 3 probes, 0 errors" in out
    assert "a print at import time" in err


def test_planted_bug_exits_1(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "losses.py:bce_positives_only", "--task", "binary", *FAST)
    assert code == 1
    assert "Python float" in out and "all targets negative" in out


def test_fail_on_warning(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["losses.py:bce_dropout", "--task", "binary", *FAST]
    assert run(capsys, *args)[0] == 0
    assert run(capsys, *args, "--fail-on", "error")[0] == 0
    code, out, _ = run(capsys, *args, "--fail-on", "warning")
    assert code == 1 and "determinism" in out


def test_json_output_is_only_json(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "losses.py:bce_positives_only", "--task", "binary", "--format", "json", *FAST
    )
    assert code == 1
    data = json.loads(out)  # nothing else on stdout, not even the import-time print
    assert data["target"] == "losses.py:bce_positives_only"
    assert data["task"] == "binary" and data["input_kind"] == "logits" and data["worst"] == "error"
    assert {f["probe"] for f in data["findings"]} == {"returns_tensor", "inplace", "determinism"}
    err_finding = next(f for f in data["findings"] if f["severity"] == "error")
    assert err_finding["fix"] and err_finding["evidence"]["input"].startswith(
        "all targets negative"
    )
    assert "a print at import time" in err


@pytest.mark.parametrize(
    "target",
    [
        "losses.py:MyL1",
        "losses.py:weighted",
        "losses.py:Holder.l1",
        "uses_sibling.py:loss",
        "mypkg.lossmod:mae",
        "losslab.functional:mse_loss",
    ],
)
def test_targets_that_load(files: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    code, out, err = run(capsys, target, "--probe", "returns_tensor")
    assert code == 0, err
    assert f"{target} (regression, values): 1 probe, 0 errors" in out


def test_absolute_path_and_other_directory(
    files: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    code, _, err = run(capsys, f"{files / 'uses_sibling.py'}:loss", "--probe", "returns_tensor")
    assert code == 0, err
    assert str(files) not in sys.path  # the file's folder is on sys.path only while checking


def test_all_probes_on_a_file(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "losses.py:bce_positives_only", "--task", "binary", "--format", "json"
    )
    assert code == 1, err
    data = json.loads(out)
    from losslab.doctor.check import available_probes

    assert {f["probe"] for f in data["findings"]} == set(available_probes())


def test_load_target_returns_the_callable(files: Path) -> None:
    fn = load_target("losses.py:my_mse")
    assert callable(fn) and fn.__name__ == "my_mse"
    module = load_target("losses.py:MyL1")
    assert type(module).__name__ == "MyL1"
    with pytest.raises(ValueError, match="no function"):
        load_target("losses.py:nope")


def test_debug_shows_the_traceback(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOSSLAB_DEBUG", "1")
    with pytest.raises(ValueError, match="file not found"):
        main(["check", "missing.py:f"])
