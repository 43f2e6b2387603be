"""Rendering of a :class:`~losslab.compare.runner.Comparison`: table, markdown, JSON, picture.

Nothing is computed here: every number (means, standard deviations, ranks, best, curves) comes
from the Comparison; these functions only format and draw. Layout of the table (terminal and
``report.md``): one row per metric, one column per loss; a cell reads ``mean ± std (rank)``,
the best loss of each metric in bold; then the run status (``2/3 ok, diverged at epoch 4``),
the training time per epoch and the peak memory of each loss.

``report.png`` (matplotlib, Agg canvas, no pyplot state touched): one bar chart per main
metric (the task's primary metric first) with the standard deviation as error bars and the
best loss highlighted, and one panel per loss with its learning curves: each logged loss
component (``loss/total``, ``loss/<term>``) averaged over the seeds per epoch.

rich and matplotlib are imported inside the functions (``import losslab`` stays light).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Optional

from losslab.compare.runner import Comparison, LossSummary, MetricStat

__all__ = [
    "format_number",
    "markdown",
    "print_table",
    "rich_table",
    "to_json",
    "write_png",
    "write_report",
]

_BEST_COLOR = "tab:orange"
_BAR_COLOR = "tab:blue"


# ----------------------------------------------------------------------------- formatting
def format_number(value: Optional[float], *, like: Optional[float] = None) -> str:
    """Four decimals in the usual range, scientific notation outside, ``n/a`` for None.

    ``like``: format ``value`` in the style chosen for ``like`` (a std next to its mean).

    >>> format_number(0.91234), format_number(12345.6), format_number(None), format_number(0.0)
    ('0.9123', '1.235e+04', 'n/a', '0.0000')
    >>> format_number(0.00031, like=0.9987), format_number(0.00031)
    ('0.0003', '3.100e-04')
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    ref = value if like is None or not math.isfinite(like) else like
    if ref == 0 or 1e-3 <= abs(ref) < 1e4:
        return f"{value:.4f}"
    return f"{value:.3e}"


def _cell(stat: Optional[MetricStat]) -> str:
    if stat is None or stat.mean is None:
        return "n/a"
    text = f"{format_number(stat.mean)} ± {format_number(stat.std, like=stat.mean)}"
    if stat.rank is not None:
        text += f" ({stat.rank})"
    return text


def _arrow(comp: Comparison, key: str) -> str:
    higher = comp.directions.get(key)
    return "" if higher is None else (" ↑" if higher else " ↓")


def _metric_name(comp: Comparison, key: str) -> str:
    name = key + _arrow(comp, key)
    return name + " (primary)" if key == comp.primary_metric else name


def _memory(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _seconds(s: float) -> str:
    return f"{s:.4f} s" if s < 10 else f"{s:.1f} s"


def _footer_rows(comp: Comparison) -> list[tuple[str, list[str]]]:
    return [
        ("runs", [s.status for s in comp.losses]),
        ("time / epoch", [_seconds(s.seconds_per_epoch) for s in comp.losses]),
        ("peak memory", [_memory(s.peak_memory_bytes) for s in comp.losses]),
    ]


def _title(comp: Comparison) -> str:
    seeds = len(comp.config.get("seeds", [])) or (comp.losses[0].runs if comp.losses else 0)
    return f"losslab compare: {comp.dataset.get('name', '?')} ({comp.task}), {seeds} seed(s)"


def _legend(comp: Comparison) -> str:
    return (
        "mean ± std over the seeds that did not diverge (std with ddof=1; 0 for one seed), "
        "(rank) per metric; ↑ higher is better, ↓ lower is better; best in bold."
    )


# ----------------------------------------------------------------------------- terminal
def rich_table(comp: Comparison) -> Any:
    """The comparison as a :class:`rich.table.Table` (best per metric in bold)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=_title(comp), caption=_legend(comp), show_lines=False)
    table.add_column("metric", overflow="fold")
    for s in comp.losses:
        table.add_column(Text(s.label), justify="right", overflow="fold")
    for key in comp.metric_keys:
        cells = []
        for s in comp.losses:
            stat = s.metrics.get(key)
            cells.append(Text(_cell(stat), style="bold" if stat is not None and stat.best else ""))
        table.add_row(Text(_metric_name(comp, key)), *cells)
    table.add_section()
    for name, values in _footer_rows(comp):
        table.add_row(Text(name), *(Text(v) for v in values))
    return table


def print_table(comp: Comparison, *, file: Any = None, width: Optional[int] = None) -> None:
    """Print :func:`rich_table` to ``file`` (default stdout).

    ``width``: the console width; default: the terminal's, or 240 columns when the output is
    not a terminal (a file, a pipe), so that cells are not folded there.
    """
    from rich.console import Console

    if width is None:
        probe = Console(file=file)
        width = probe.width if probe.is_terminal else 240
    Console(file=file, width=width).print(rich_table(comp))


# ----------------------------------------------------------------------------- markdown
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_code(text: str) -> str:
    return "`" + _md_escape(text).replace("`", "'") + "`"


def markdown(comp: Comparison, *, image: Optional[str] = "report.png") -> str:
    """``report.md``: a header (dataset, provenance, settings) and the table, best in **bold**.

    ``image``: the picture's relative path to embed, or None.
    """
    ds = comp.dataset
    lines = [f"# {_title(comp)}", ""]
    if ds.get("description"):
        lines += [str(ds["description"]), ""]
    if ds.get("provenance"):
        lines += [f"Provenance: {ds['provenance']}", ""]
    sizes = ds.get("sizes") or {}
    if sizes:
        lines += [
            "Splits: " + ", ".join(f"{k} {v}" for k, v in sizes.items()) + ".",
            "",
        ]
    train = comp.config.get("train") or {}
    if train:
        lines += ["Training: " + ", ".join(f"{k}={v}" for k, v in train.items()) + ".", ""]
    lines += [_legend(comp).replace("best in bold", "best in **bold**"), ""]
    header = "| metric | " + " | ".join(_md_code(s.label) for s in comp.losses) + " |"
    rule = "|---|" + "---:|" * len(comp.losses)
    lines += [header, rule]
    for key in comp.metric_keys:
        cells = []
        for s in comp.losses:
            stat = s.metrics.get(key)
            text = _cell(stat)
            cells.append(f"**{text}**" if stat is not None and stat.best else text)
        lines.append(f"| {_md_escape(_metric_name(comp, key))} | " + " | ".join(cells) + " |")
    for name, values in _footer_rows(comp):
        lines.append(f"| {name} | " + " | ".join(_md_escape(v) for v in values) + " |")
    specs = [s for s in comp.losses if s.spec != s.label]
    if specs:
        lines += ["", "Canonical specs (with the options filled from the data):", ""]
        lines += [f"- {_md_code(s.label)}: {_md_code(s.spec)}" for s in specs]
    if image:
        lines += ["", f"![metrics and learning curves]({image})"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- JSON
def to_json(comp: Comparison) -> str:
    """``report.json``: ``Comparison.to_dict()`` as strict JSON (no NaN), indented."""
    return json.dumps(comp.to_dict(), indent=2, allow_nan=False) + "\n"


# ----------------------------------------------------------------------------- picture
def _short(label: str, n: int = 28) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _bars(ax: Any, comp: Comparison, key: str) -> None:
    losses = comp.losses
    xs = list(range(len(losses)))
    lows, highs = [], []
    for x, s in zip(xs, losses):
        stat = s.metrics.get(key)
        if stat is None or stat.mean is None:
            ax.text(
                x,
                0.5,
                "n/a",
                ha="center",
                va="center",
                fontsize=7,
                transform=ax.get_xaxis_transform(),
            )
            continue
        std = stat.std or 0.0
        lows.append(stat.mean - std)
        highs.append(stat.mean + std)
        ax.bar(
            x,
            stat.mean,
            yerr=std,
            capsize=3,
            color=_BEST_COLOR if stat.best else _BAR_COLOR,
            edgecolor="black" if stat.best else "none",
        )
        ax.annotate(
            format_number(stat.mean),
            (x, stat.mean + std),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=6,
        )
    if lows:
        # zoom on the spread of the values: metrics close to each other stay distinguishable
        lo, hi = min(lows), max(highs)
        pad = (hi - lo) * 0.25 or abs(hi) * 0.05 or 1.0
        bottom = lo - pad if lo - pad > 0 or lo < 0 else 0.0
        ax.set_ylim(bottom, hi + pad)
    ax.set_xticks(xs)
    ax.set_xticklabels([_short(s.label) for s in losses], rotation=30, ha="right", fontsize=7)
    ax.set_title(_metric_name(comp, key), fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)


def _curves(ax: Any, s: LossSummary) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    total = s.curves.get("loss/total")
    drawn = False
    for name, series in s.curves.items():
        if not series or (name != "loss/total" and series == total):
            continue  # a single unweighted term is the total itself: drawn once
        epochs = list(range(1, len(series) + 1))
        style = {"color": "black", "linewidth": 1.8} if name == "loss/total" else {"linewidth": 1.0}
        ax.plot(epochs, list(series), marker="." if len(series) < 12 else None, label=name, **style)
        drawn = True
    ax.set_title(f"{_short(s.label, 40)} ({s.status})", fontsize=8)
    if drawn:
        ax.set_xlabel("epoch", fontsize=7)
        ax.legend(fontsize=6)
    else:
        ax.text(0.5, 0.5, "no completed epoch", ha="center", va="center", transform=ax.transAxes)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def write_png(comp: Comparison, path: Path, *, dpi: int = 100) -> Path:
    """Draw ``report.png``: metric bars (error bars: std) and learning curves per loss."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    main = list(comp.main_metrics)
    n_loss = max(1, len(comp.losses))
    cols = min(3, n_loss)
    rows = math.ceil(n_loss / cols)
    top = max(1, len(main))
    fig = Figure(figsize=(max(4.0 * top, 4.0 * cols), 3.4 + 2.8 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    subfigures: Any = fig.subfigures(2, 1, height_ratios=[3.4, 2.8 * rows])
    upper, lower = subfigures[0], subfigures[1]
    upper.suptitle(_title(comp), fontsize=10)
    axes = upper.subplots(1, top, squeeze=False)[0]
    if main:
        for ax, key in zip(axes, main):
            _bars(ax, comp, key)
    else:
        axes[0].text(0.5, 0.5, "no metric (every run diverged)", ha="center", va="center")
        axes[0].set_axis_off()
    lower.suptitle("learning curves (training loss components, mean over seeds)", fontsize=9)
    grid = lower.subplots(rows, cols, squeeze=False)
    flat = [ax for row in grid for ax in row]
    for ax, s in zip(flat, comp.losses):
        _curves(ax, s)
    for ax in flat[len(comp.losses) :]:
        ax.set_axis_off()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ----------------------------------------------------------------------------- files
def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_report(comp: Comparison, out: Path, *, png: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and (``png=True``) ``report.png`` into ``out``.

    Each file is replaced atomically. Returns ``{"json": path, "markdown": path, "png": path}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / "report.json", "markdown": out / "report.md"}
    _write_text(written["json"], to_json(comp))
    _write_text(written["markdown"], markdown(comp, image="report.png" if png else None))
    if png:
        written["png"] = write_png(comp, out / "report.png")
    return written
