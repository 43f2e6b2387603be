"""The documentation site: its code runs, its reference is complete, and it builds.

* Every ```python block of ``docs/**/*.md`` runs, and every ```pycon block passes as a doctest;
  the blocks of one page run in order in one namespace, as a reader would run them. A block
  right after ``<!-- no-run -->`` is skipped (kept for snippets that need ``torchrun``).
* The generated API reference renders every name of the public ``__all__`` lists.
* Every ``losslab.X(...)`` / ``LF.x(...)`` call written in the migration tables names options
  that exist (and builds, for modules with constant arguments).
* ``mkdocs build --strict`` passes (slow; skipped without mkdocs).
"""

from __future__ import annotations

import ast
import doctest
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md"))

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<lang>[\w-]*)[^\n]*$")


def _blocks(text: str) -> list[tuple[str, str, int, bool]]:
    """(language, code, first line, skipped) of every fenced block of a Markdown page."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group("indent"), m.group("fence"), m.group("lang")
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = [
            ln[len(indent) :] if ln.startswith(indent) else ln.lstrip() for ln in lines[start:j]
        ]
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        skipped = k >= 0 and lines[k].strip() == "<!-- no-run -->"
        out.append((lang, "\n".join(body) + "\n", start + 1, skipped))
        i = j + 1
    return out


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hooks() -> Any:
    return _load("losslab_docs_hooks", DOCS / "_hooks.py")


# ----------------------------------------------------------------------------- code on the pages
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import losslab

    monkeypatch.chdir(tmp_path)  # a page that writes files writes them here
    torch.manual_seed(0)
    backend = losslab.get_backend()
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    try:
        for lang, code, line, skipped in _blocks(page.read_text()):
            where = f"{page.relative_to(ROOT)}:{line}"
            if skipped or lang not in ("python", "pycon"):
                continue
            if lang == "python":
                exec(compile(code, where, "exec"), namespace)
                continue
            test = doctest.DocTestParser().get_doctest(code, namespace, where, str(page), line)
            runner = doctest.DocTestRunner(optionflags=flags)
            runner.run(test, clear_globs=False)
            namespace.update(test.globs)
            assert runner.failures == 0, f"doctest failed in {where} (see the output above)"
    finally:
        losslab.set_backend(backend)
        for key in [
            k
            for k, v in list(losslab._registry._KEYS.items())
            if v.__module__ == namespace["__name__"]
        ]:
            losslab._registry._unregister(key)  # pages may register losses of their own


def test_no_run_is_rare() -> None:
    # Skipping is for multi-process (torchrun / DDP) snippets of the distributed guide only.
    skipped = [
        (p.name, line)
        for p in PAGES
        for lang, _, line, s in _blocks(p.read_text())
        if s and lang in ("python", "pycon")
    ]
    assert len(skipped) <= 4, skipped
    assert all(name == "distributed.md" for name, _ in skipped), skipped


# ----------------------------------------------------------------------------- API reference
def test_reference_covers_every_public_name(hooks: Any) -> None:
    import losslab
    import losslab.functional

    pages = hooks.reference_pages()
    documented = {id(obj) for obj in hooks.documented_objects(pages)}
    for namespace in (losslab, losslab.functional):
        missing = [n for n in namespace.__all__ if id(getattr(namespace, n)) not in documented]
        assert not missing, f"{namespace.__name__}: not in the API reference: {missing}"
    assert hooks.unplaced(pages) == []


def test_reference_groups_losses_by_family(hooks: Any) -> None:
    import losslab

    pages = hooks.reference_pages()
    for entry in losslab.entries():
        if entry.family in hooks.FAMILIES:
            page = pages[f"reference/{entry.family}.md"]
            assert f"::: {entry.cls.__module__}.{entry.cls.__qualname__}" in page, entry.key
            assert f"[`{entry.key}`](#" in page, entry.key


def test_registry_table_lists_every_key(hooks: Any) -> None:
    import losslab

    table = hooks.registry_table()
    rows = table.splitlines()[2:]
    keys = [re.match(r"\| `(\w+)`", r).group(1) for r in rows]  # type: ignore[union-attr]
    assert keys == [e.key for e in losslab.entries()]
    for entry in losslab.entries():
        assert f"#{entry.cls.__module__}.{entry.cls.__qualname__})" in table, entry.key


def test_a_missing_name_is_reported(hooks: Any) -> None:
    pages = hooks.reference_pages()
    pages["reference/regression.md"] = pages["reference/regression.md"].replace(
        "::: losslab.losses.regression.mse.mse_loss\n", ""
    )
    assert "losslab.mse_loss" in hooks.unplaced(pages)
    assert "losslab.functional.mse_loss" in hooks.unplaced(pages)


# ----------------------------------------------------------------------------- migration tables
_SPAN = re.compile(r"`([^`\n]+)`")


def _migration_spans() -> list[tuple[str, str]]:
    """(page, code) of every inline code span of docs/migration that writes a losslab call."""
    spans = []
    for page in sorted((DOCS / "migration").glob("*.md")):
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # inline spans only
        spans += [(page.name, c) for c in _SPAN.findall(text) if c.startswith(("losslab.", "LF."))]
    return spans


def test_migration_tables_name_real_options() -> None:
    import losslab
    import losslab.functional as LF

    spans = _migration_spans()
    assert len(spans) >= 60, len(spans)
    calls = 0
    for page, code in spans:
        tree = ast.parse(code, mode="eval")  # every span is a Python expression
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            path = ast.unparse(node.func).split(".")
            if path[0] not in ("losslab", "LF"):
                continue
            obj: Any = {"losslab": losslab, "LF": LF}[path[0]]
            for attr in path[1:]:
                obj = getattr(obj, attr)
            params = inspect.signature(obj).parameters
            for kw in node.keywords:
                assert kw.arg in params, f"{page}: {code}: no option {kw.arg!r}"
            calls += 1
            if inspect.isclass(obj) and not node.args:
                try:
                    kwargs = {str(kw.arg): ast.literal_eval(kw.value) for kw in node.keywords}
                except ValueError:
                    continue  # a placeholder value such as `w`
                obj(**kwargs)  # builds: the values are valid too
    assert calls >= len(spans)


# ----------------------------------------------------------------------------- examples page
def test_examples_page_lists_every_example() -> None:
    listed = set(re.findall(r"`(examples/[\w/]+\.py)`", (DOCS / "examples.md").read_text()))
    present = {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py")}
    assert listed == present, (sorted(listed - present), sorted(present - listed))


# ----------------------------------------------------------------------------- the site builds
@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed")
    pytest.importorskip("material", reason="mkdocs-material is not installed")
    exe = shutil.which("mkdocs", path=os.path.dirname(sys.executable)) or shutil.which("mkdocs")
    cmd = [exe] if exe else [sys.executable, "-m", "mkdocs"]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [*cmd, "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    site = tmp_path / "site"
    for page in (
        "reference/index.html",
        "reference/segmentation/index.html",
        "guides/performance/index.html",
        "chooser/index.html",
    ):
        assert (site / page).is_file(), page
    ref = (site / "reference/index.html").read_text()
    import losslab

    for key in losslab.available():
        assert f"<code>{key}</code>" in ref, key
