"""Griffe extension: losslab's docstrings use a little reStructuredText; render it as Markdown.

The docstrings are the source of truth and stay as they are (``python -m pydoc``, IDEs and
doctests read them). Before mkdocstrings parses them, this extension rewrites, in place:

* ``.. math::`` blocks into ``$$ ... $$`` (pymdownx.arithmatex, MathJax in the browser);
* ``:math:`x``` into ``\\(x\\)``; ``:func:`~a.b``` / ``:class:`` / ``:mod:`` / ``:meth:`` /
  ``:data:`` roles into code spans;
* doctest runs (``>>>`` lines and their output) into ``pycon`` fences;
* RST literal-block markers (a paragraph ending in ``::``) into a plain colon (the indented
  block that follows is already a Markdown code block);
* Google ``Args:`` entries that document several parameters at once
  (``mode, activation, ...: as in dice_loss``) into one entry per parameter.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(func|meth|class|mod|data|attr|obj|exc):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]*)`")
_MULTI_ARG = re.compile(r"^([A-Za-z_*][\w*]*(?:\s*,\s*[A-Za-z_*][\w*]*)+)\s*:\s(.*)$", re.S)
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params):\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _role(match: re.Match[str]) -> str:
    kind, target = match.group(1), match.group(2)
    short = target.rsplit(".", 1)[-1] if match.group(0).find("`~") >= 0 else target
    if kind in ("func", "meth") and not short.endswith(")"):
        short += "()"
    return f"`{short}`"


def _math_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped.startswith(".. math::"):
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        pad = " " * base
        body: list[str] = []
        first = stripped[len(".. math::") :].strip()
        if first:
            body.append(first)
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():  # trailing blank lines belong to the text after
            body.pop()
            i -= 1
        # One display per paragraph of the directive (a blank line separates equations).
        paragraphs: list[list[str]] = [[]]
        for b in body:
            if b.strip():
                paragraphs[-1].append(b.strip())
            elif paragraphs[-1]:
                paragraphs.append([])
        if out and out[-1].strip():
            out.append("")
        for para in paragraphs:
            if not para:
                continue
            out.extend([pad + "$$", *(pad + p for p in para), pad + "$$", ""])
        if out and not out[-1].strip() and i < len(lines) and not lines[i].strip():
            out.pop()
    return out


def _doctests(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        pad = " " * base
        if out and out[-1].strip():
            out.append("")
        out.append(pad + "```pycon")
        while i < len(lines) and lines[i].strip() and _indent(lines[i]) >= base:
            out.append(pad + lines[i][base:])
            i += 1
        out.append(pad + "```")
    return out


_BORDER = re.compile(r"^\s*=+(?:\s+=+)+\s*$")


def _cells(line: str, starts: list[int]) -> list[str]:
    bounds: list[int | None] = [*starts[1:], None]
    return [line[a:b].strip() for a, b in zip(starts, bounds)]


def _simple_tables(lines: list[str]) -> list[str]:
    """RST simple tables (``====  ====`` borders) as Markdown tables."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        border = lines[i]
        base = _indent(border)
        starts = [m.start() for m in re.finditer(r"=+", border)]
        borders = [i]
        j = i + 1
        while j < len(lines) and len(borders) < 3:
            if _BORDER.match(lines[j]):
                borders.append(j)
            elif not lines[j].strip():
                break
            j += 1
        if len(borders) < 2:
            out.append(lines[i])
            i += 1
            continue

        rows: list[list[str]] = []
        for k in range(borders[0] + 1, borders[-1]):
            if k in borders:
                continue
            row = _cells(lines[k], starts)
            if rows and not row[0]:
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], row)]
            else:
                rows.append(row)
        header = rows.pop(0) if len(borders) == 3 else [""] * len(starts)
        pad = " " * base
        if out and out[-1].strip():
            out.append("")
        for row in [header, ["---"] * len(starts), *rows]:
            out.append(pad + "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        out.append("")
        i = borders[-1] + 1
        if i < len(lines) and not lines[i].strip():
            i += 1
    return out


def _literal_markers(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            head = line.rstrip()[:-2].rstrip()
            line = head + ":" if head.strip() else ""
        out.append(line)
    return out


def _split_multi_args(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if not _SECTION.match(line.strip()):
            continue
        section = _indent(line)
        entry_indent = None
        while i < len(lines):
            if not lines[i].strip():
                # a blank line ends the section unless the next line is still indented
                if i + 1 < len(lines) and lines[i + 1].strip() and _indent(lines[i + 1]) > section:
                    out.append(lines[i])
                    i += 1
                    continue
                break
            if _indent(lines[i]) <= section:
                break
            if entry_indent is None:
                entry_indent = _indent(lines[i])
            # gather one entry: its first line and the more-indented lines after it
            start = i
            i += 1
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) > entry_indent:
                i += 1
            entry = lines[start:i]
            text = " ".join(x.strip() for x in entry)
            m = _MULTI_ARG.match(text)
            if m and ":" not in entry[0].split(",")[0]:
                names = [n.strip() for n in m.group(1).split(",")]
                pad = " " * entry_indent
                out.extend(f"{pad}{name}: {m.group(2)}" for name in names)
            else:
                out.extend(entry)
    return out


def to_markdown(text: str) -> str:
    """The Markdown form of one docstring (see the module docstring)."""
    lines = text.splitlines()
    lines = _split_multi_args(lines)
    lines = _math_blocks(lines)
    lines = _doctests(lines)
    lines = _simple_tables(lines)
    lines = _literal_markers(lines)
    # Inline roles last, outside fences (doctest output keeps its text); a role may span lines.
    result: list[str] = []
    chunk: list[str] = []
    fenced = False

    def flush() -> None:
        text = "\n".join(chunk)
        text = _MATH_ROLE.sub(lambda m: "\\(" + m.group(1) + "\\)", text)
        result.extend(_ROLE.sub(_role, text).split("\n") if chunk else [])
        chunk.clear()

    for line in lines:
        if line.strip().startswith("```"):
            if not fenced:
                flush()
            fenced = not fenced
            result.append(line)
        elif fenced:
            result.append(line)
        else:
            chunk.append(line)
    flush()
    return "\n".join(result)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package before mkdocstrings parses it."""

    def __init__(self) -> None:
        super().__init__()
        self._done: set[int] = set()

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and id(obj.docstring) not in self._done:
            self._done.add(id(obj.docstring))
            obj.docstring.value = to_markdown(obj.docstring.value)
