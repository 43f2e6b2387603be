"""``losslab check TARGET``: run the doctor on a loss function of your own.

``TARGET`` is ``path/to/file.py:function`` or ``package.module:function`` (the current
directory is importable, as with ``python -m``; the file's own directory too, for its sibling
imports). ``function`` may be dotted (``MyLosses.focal``). It names:

* a function or any callable object taking ``(pred, target)``;
* an ``nn.Module`` instance (a module-level ``loss = MyLoss(gamma=2)``);
* an ``nn.Module`` subclass, which is instantiated with no arguments (give its constructor
  defaults, or point ``TARGET`` at an instance). Other classes are refused: calling them
  would build an object, not compute a loss.

Everything is checked before a probe runs; a problem (a missing file, a syntax error, an
import that fails, a missing or non-callable name, a signature without two positional
parameters or with a required extra argument, an unknown option value) raises ``ValueError``
with one line, which :func:`losslab.cli.app.main` prints with a hint and exit code 2. Exit code
1 means a finding reached ``--fail-on``. Whatever the loaded code prints goes to stderr, so
``--format json`` writes only the report's JSON to stdout.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from losslab._checks import suggest
from losslab.cli.app import FormatOption, OutputFormat, app

__all__ = ["check", "load_target"]

USAGE = "path/to/file.py:function or package.module:function"


class FailOn(str, Enum):
    warning = "warning"
    error = "error"


# ------------------------------------------------------------------------------ loading
@contextlib.contextmanager
def _importable(*folders: str) -> Iterator[None]:
    """``folders`` on ``sys.path`` for the duration of the command (the loaded code may import
    its siblings lazily, at call time)."""
    added = [f for f in folders if f not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for f in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(f)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _split(spec: str) -> tuple[str, str]:
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name or not all(p.isidentifier() for p in name.split(".")):
        hint = " Add `:function_name` after the file." if spec.endswith(".py") and not sep else ""
        raise ValueError(f"`TARGET` must be {USAGE}; got {spec!r}.{hint}")
    return where, name


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where or Path(where).is_file()


def _load_file(where: str) -> Any:
    path = Path(where)
    if not path.exists():
        raise ValueError(f"`TARGET` file not found: {where}.")
    if not path.is_file() or path.suffix != ".py":
        raise ValueError(f"`TARGET` must point at a Python file (.py); got {where}.")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {where}: {_one_line(exc)}.") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise ValueError(
            f"{where}:{exc.lineno}: syntax error: {exc.msg} (fix the file, then rerun)."
        ) from None
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    mod_name = f"_losslab_check_{path.stem if path.stem.isidentifier() else 'file'}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise ValueError(f"cannot load {where} as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit included: the file is the user's code
        sys.modules.pop(mod_name, None)
        line = _line_in(exc, resolved)
        at = f" at line {line}" if line else ""
        raise ValueError(f"importing {where} failed{at}: {_one_line(exc)}.") from None
    return module


def _line_in(exc: BaseException, path: Path) -> Optional[int]:
    """The last line of ``path`` in the exception's traceback."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        with contextlib.suppress(OSError, ValueError):
            if Path(frame.filename).resolve() == path:
                line = frame.lineno
    return line


def _load_module(where: str) -> Any:
    if not all(p.isidentifier() for p in where.split(".")):
        raise ValueError(f"`TARGET` must be {USAGE}; got {where!r} before the ':'.")
    try:
        return importlib.import_module(where)
    except KeyboardInterrupt:
        raise
    except ModuleNotFoundError as exc:
        raise ValueError(f"cannot import module {where!r}: {exc}.") from None
    except BaseException as exc:
        raise ValueError(f"importing {where} failed: {_one_line(exc)}.") from None


def _callables(module: Any, private: bool) -> list[str]:
    names = []
    for name, value in vars(module).items():
        if name.startswith("__") or (name.startswith("_") and not private):
            continue
        if callable(value):
            names.append(name)
    return sorted(names)


def _resolve(module: Any, where: str, name: str) -> Any:
    obj = module
    for i, part in enumerate(name.split(".")):
        if not hasattr(obj, part):
            scope = where if i == 0 else f"{where}:{'.'.join(name.split('.')[:i])}"
            pool = _callables(obj, part.startswith("_"))
            hint = suggest(part, pool)
            if hint is None and pool:
                shown = ", ".join(pool[:8]) + (", ..." if len(pool) > 8 else "")
                hint = f"Its callables: {shown}."
            raise ValueError(f"`{scope}` has no function {part!r}." + (f" {hint}" if hint else ""))
        obj = getattr(obj, part)
    return obj


def _instantiate(cls: type, label: str) -> Any:
    import torch

    if not issubclass(cls, torch.nn.Module):
        raise ValueError(
            f"`{label}` is a class, not a loss function; point TARGET at a function, an "
            "nn.Module instance or an nn.Module subclass."
        )
    try:
        return cls()
    except Exception as exc:
        raise ValueError(
            f"`{label}()` could not be built with no arguments ({_one_line(exc)}); give its "
            "constructor defaults, or point TARGET at a module-level instance."
        ) from None


def _check_signature(fn: Callable[..., Any], label: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and C extensions: nothing to inspect, the probes will tell
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    if len(positional) < 2 and not var_positional:
        got = ", ".join(p.name for p in positional) or "nothing"
        raise ValueError(
            f"`{label}` must take (pred, target) as its first two positional parameters; it "
            f"takes {got}."
        )
    extra = [
        p.name
        for p in params
        if p.default is p.empty
        and (
            (p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and positional.index(p) >= 2)
            or p.kind is p.KEYWORD_ONLY
        )
    ]
    if extra:
        names = ", ".join(f"`{n}`" for n in extra)
        raise ValueError(
            f"`{label}` needs {names} beyond (pred, target); give "
            f"{'it a default' if len(extra) == 1 else 'them defaults'} or wrap it with "
            "functools.partial in a file."
        )


def load_target(spec: str) -> Callable[..., Any]:
    """The loss named by ``spec`` (``file.py:fn`` or ``package.module:fn``), checked to be
    callable as ``fn(pred, target)``; ``ValueError`` with one line otherwise."""
    where, name = _split(spec)
    module = _load_file(where) if _is_file(where) else _load_module(where)
    label = f"{where}:{name}"
    obj = _resolve(module, where, name)
    if inspect.isclass(obj):
        obj = _instantiate(obj, label)
    elif not callable(obj):
        raise ValueError(
            f"`{label}` is not callable (a {type(obj).__name__}); point TARGET at a loss "
            "function or an nn.Module."
        )
    _check_signature(obj, label)
    return obj


# -------------------------------------------------------------------------------- options
def _check_options(
    task: str, input_kind: Optional[str], probe: Optional[list[str]], timeout: float
) -> None:
    from losslab.doctor.check import available_probes
    from losslab.doctor.inputs import ALLOWED_KINDS, TASKS

    if task not in TASKS:
        hint = suggest(task, TASKS)
        raise ValueError(
            f"`--task` must be one of {', '.join(TASKS)}; got {task!r}."
            + (f" {hint}" if hint else "")
        )
    if input_kind is not None and input_kind not in ALLOWED_KINDS[task]:
        allowed = ALLOWED_KINDS[task]
        hint = suggest(input_kind, allowed)
        raise ValueError(
            f"`--input-kind` must be one of {', '.join(allowed)} for --task {task}; got "
            f"{input_kind!r}." + (f" {hint}" if hint else "")
        )
    if probe:
        known = available_probes()
        for name in probe:
            if name not in known:
                hint = suggest(name, known)
                raise ValueError(
                    f"`--probe` must be one of {', '.join(known)}; got {name!r}."
                    + (f" {hint}" if hint else "")
                )
    if not timeout > 0:
        raise ValueError(f"`--timeout` must be a positive number of seconds; got {timeout}.")


# -------------------------------------------------------------------------------- command
def check(
    target: Annotated[str, typer.Argument(help=f"The loss: {USAGE}.", show_default=False)],
    task: Annotated[
        str,
        typer.Option(
            "--task",
            help="binary, multiclass, multilabel, regression, segmentation, ranking or "
            "forecasting: the shapes of the generated inputs.",
        ),
    ] = "regression",
    input_kind: Annotated[
        Optional[str],
        typer.Option(
            "--input-kind",
            help="What pred is: logits or probs (classification, segmentation), values, "
            "scores. Default: the task's usual kind.",
        ),
    ] = None,
    output: FormatOption = OutputFormat.table,
    fail_on: Annotated[
        FailOn, typer.Option("--fail-on", help="Exit 1 when a finding reaches this severity.")
    ] = FailOn.error,
    probe: Annotated[
        Optional[list[str]],
        typer.Option("--probe", "-p", help="Run only this probe (repeat it); default: all."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds one call of the loss may take.")
    ] = 10.0,
) -> None:
    """Check a loss function of your own: gradients, extremes, dtypes, shapes, speed."""
    from losslab.doctor.check import check as run_check
    from losslab.doctor.report import print_report

    _check_options(task, input_kind, probe, timeout)
    stdout = sys.stdout
    with _importable(os.getcwd()), contextlib.redirect_stdout(sys.stderr):
        where = target.rpartition(":")[0]
        folders = [str(Path(where).resolve().parent)] if where and _is_file(where) else []
        with _importable(*folders):
            fn = load_target(target)
            report = run_check(
                fn,
                task=task,
                input_kind=input_kind,
                probes=probe or None,
                timeout=timeout,
                target=target,
            )
    print_report(report, format=output.value, file=stdout)
    if report.failed(fail_on.value):
        raise typer.Exit(1)


app.command("check")(check)
