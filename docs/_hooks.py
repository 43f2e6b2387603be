"""MkDocs hooks: the API reference pages and the registry table, generated at every build.

``reference_pages()`` walks ``losslab.__all__`` and ``losslab.functional.__all__`` (plus the
``__all__`` of the public subpackages) and writes one page per family, so a new loss appears
in the reference, grouped with its family, without anyone editing the docs. A public name
that no rule places is reported by ``unplaced()``; the build then logs a warning, which
``mkdocs build --strict`` turns into a failure (and ``tests/docs`` checks the same).

``registry_table()`` is the table of registry keys (key, aliases, family, input, class,
one-line description) from ``losslab.entries()``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections import defaultdict
from typing import Any

log = logging.getLogger("mkdocs.hooks.losslab")

# Loss families: page name -> (title, the module prefix of its losses, intro line).
FAMILIES: dict[str, tuple[str, str, str]] = {
    "regression": (
        "Regression",
        "losslab.losses.regression",
        "Squared, absolute and robust errors, quantiles and likelihoods. Inputs: `(pred, target)` "
        "of the same shape.",
    ),
    "classification": (
        "Classification",
        "losslab.losses.classification",
        "Binary, multi-label and multiclass losses from logits (and `bce_probs` from "
        "probabilities). Class axes are dim 1.",
    ),
    "segmentation": (
        "Segmentation",
        "losslab.losses.segmentation",
        "Overlap, Lovasz and distance-based losses over `(B, C, *spatial)` logits, with one "
        "input pipeline (`mode`, `activation`, `ignore_index`, `classes`, `include_background`, "
        "`aggregate`) and one empty-class policy.",
    ),
    "ranking": (
        "Ranking",
        "losslab.losses.ranking",
        "Pairwise and listwise learning-to-rank losses over padded `(B, n)` lists with a boolean "
        "`mask`, or flat `(N,)` items with `group` ids.",
    ),
    "timeseries": (
        "Time series",
        "losslab.losses.timeseries",
        "Forecasting errors over `(B, T)` or `(B, T, F)` series, and soft-DTW.",
    ),
    "adversarial": (
        "GAN penalties",
        "losslab.losses.adversarial",
        "Gradient penalties take a critic and samples, not `(pred, target)`: they are not in "
        "the registry and cannot appear in spec strings.",
    ),
    "regularization": (
        "Regularization",
        "losslab.losses.regularization",
        "Penalties over a model's parameters (biases and normalization layers excluded by "
        "default). They take no `(pred, target)`; in a composition they ignore them.",
    ),
}

# Everything public that is not a loss: page -> title, intro, sections of (title, names).
# A name is ``namespace:attribute``; the identifier rendered is its canonical path.
OTHER_PAGES: dict[str, tuple[str, str, list[tuple[str, list[str]]]]] = {
    "core": (
        "Core",
        "Composition, specs, the registry, the loss base class and the execution backend.",
        [
            (
                "Composition and specs",
                ["losslab:parse", "losslab:SpecError", "losslab:WeightedSum", "losslab:LossOutput"],
            ),
            ("The loss base class", ["losslab:Loss"]),
            (
                "Registry",
                ["losslab:lookup", "losslab:available", "losslab:entries", "losslab:register"],
            ),
            (
                "Execution backend",
                ["losslab:set_backend", "losslab:get_backend", "losslab:use_backend"],
            ),
            ("Namespaces", ["losslab:functional"]),
        ],
    ),
    "multitask": (
        "Multi-task",
        "`losslab.MultiTaskLoss` and the task weightings of `losslab.multitask`.",
        [
            ("Namespace", ["losslab:multitask"]),
            (
                "The multi-task loss",
                [
                    "losslab.multitask:MultiTaskLoss",
                    "losslab.multitask:WEIGHTINGS",
                    "losslab.multitask:make_weighting",
                ],
            ),
            (
                "Loss weightings",
                [
                    "losslab.multitask:FixedWeighting",
                    "losslab.multitask:EqualWeighting",
                    "losslab.multitask:UncertaintyWeighting",
                    "losslab.multitask:DynamicWeightAverage",
                    "losslab.multitask:RandomLossWeighting",
                ],
            ),
            (
                "Gradient weightings",
                [
                    "losslab.multitask:GradNorm",
                    "losslab.multitask:PCGrad",
                    "losslab.multitask:MGDA",
                    "losslab.multitask:CAGrad",
                ],
            ),
            (
                "Base classes",
                [
                    "losslab.multitask:Weighting",
                    "losslab.multitask:LossWeighting",
                    "losslab.multitask:GradientWeighting",
                ],
            ),
        ],
    ),
    "metrics": (
        "Metrics",
        "`losslab.metrics` (imported on first use; needs torchmetrics).",
        [
            (
                "Task sets",
                [
                    "losslab.metrics:for_task",
                    "losslab.metrics:TASK_METRICS",
                    "losslab.metrics:binary_metrics",
                    "losslab.metrics:multiclass_metrics",
                    "losslab.metrics:regression_metrics",
                    "losslab.metrics:segmentation_metrics",
                    "losslab.metrics:ranking_metrics",
                    "losslab.metrics:forecasting_metrics",
                ],
            ),
            (
                "From your own functions",
                [
                    "losslab.metrics:metric_from_batch_fn",
                    "losslab.metrics:metric_from_fn",
                    "losslab.metrics:BatchMeanMetric",
                    "losslab.metrics:FullDataMetric",
                ],
            ),
            ("Classification", ["losslab.metrics:BestF1"]),
            ("Segmentation", ["losslab.metrics:OverlapScores"]),
            (
                "Ranking",
                [
                    "losslab.metrics:RankingNDCG",
                    "losslab.metrics:RankingMRR",
                    "losslab.metrics:RankingMAP",
                    "losslab.metrics:RankingPrecision",
                ],
            ),
            (
                "Forecasting",
                [
                    "losslab.metrics:MASE",
                    "losslab.metrics:SMAPE",
                    "losslab.metrics:WAPE",
                    "losslab.metrics:MeanPinballLoss",
                    "losslab.metrics:QuantileCoverage",
                ],
            ),
        ],
    ),
    "doctor": (
        "Check (doctor)",
        "`losslab.check` and `losslab.testing.assert_healthy`; the CLI is `losslab check`.",
        [
            (
                "Running the probes",
                [
                    "losslab.doctor:check",
                    "losslab.doctor:available_probes",
                    "losslab.testing:assert_healthy",
                ],
            ),
            (
                "Results",
                ["losslab.doctor:Report", "losslab.doctor:Finding", "losslab.doctor:Sample"],
            ),
        ],
    ),
    "compare": (
        "Compare",
        "The Python API behind `losslab compare` (needs `losslab[cli]`).",
        [
            (
                "Running a comparison",
                ["losslab.compare.runner:run_comparison", "losslab.compare.runner:Comparison"],
            ),
            (
                "Data",
                [
                    "losslab.compare.datasets:load_dataset",
                    "losslab.compare.datasets:list_datasets",
                    "losslab.compare.userdata:load_user_data",
                ],
            ),
            ("Reports", ["losslab.compare.render:write_report"]),
        ],
    ),
    "distributed": (
        "Distributed",
        "Autograd-aware collectives (`losslab.distributed`).",
        [
            ("Namespace", ["losslab:distributed"]),
            ("Functions and constants", ["losslab.distributed:*"]),
        ],
    ),
}

# Namespaces whose ``__all__`` must be covered entirely by the pages.
PUBLIC_NAMESPACES = (
    "losslab",
    "losslab.functional",
    "losslab.multitask",
    "losslab.metrics",
    "losslab.doctor",
    "losslab.testing",
    "losslab.distributed",
)


def _resolve(namespace: str, name: str) -> Any:
    module = importlib.import_module(namespace)
    try:
        return getattr(module, name)
    except AttributeError:  # a submodule not imported by its package
        return importlib.import_module(f"{namespace}.{name}")


def identifier(namespace: str, name: str) -> str:
    """The dotted path rendered for ``namespace.name``: where it is defined, when it has one."""
    obj = _resolve(namespace, name)
    if inspect.ismodule(obj):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and module and qualname:
        return f"{module}.{qualname}"
    return f"{namespace}.{name}"  # data (a tuple, a dict): documented where it is exported


def _directive(path: str, **options: Any) -> str:
    lines = [f"::: {path}"]
    if options:
        lines.append("    options:")
        lines.extend(f"      {key}: {value}" for key, value in options.items())
    return "\n".join(lines)


def _family_of(obj: Any) -> str | None:
    module = getattr(obj, "__module__", "") or ""
    for page, (_, prefix, _) in FAMILIES.items():
        if module == prefix or module.startswith(prefix + "."):
            return page
    return None


def _loss_names() -> list[tuple[str, str]]:
    """(namespace, name) of every public loss-family object, ``losslab`` first."""
    import losslab
    import losslab.functional

    seen: set[int] = set()
    out = []
    for namespace, names in (
        ("losslab", losslab.__all__),
        ("losslab.functional", losslab.functional.__all__),
    ):
        for name in names:
            obj = _resolve(namespace, name)
            if _family_of(obj) is None or id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append((namespace, name))
    return out


def _keys_by_module() -> dict[str, list[str]]:
    import losslab

    keys: dict[str, list[str]] = defaultdict(list)
    for entry in losslab.entries():
        keys[entry.cls.__module__].append(entry.key)
    return keys


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0].rstrip(".") if doc.strip() else ""


def _anchor(module: str) -> str:
    return module.rsplit(".", 1)[-1].replace("_", "-")


def _public_path(obj: Any) -> str:
    """``losslab.functional.x`` for a function, ``losslab.X`` for the rest (where exported)."""
    import losslab
    import losslab.functional

    name = obj.__name__
    if inspect.isfunction(obj) and getattr(losslab.functional, name, None) is obj:
        return f"losslab.functional.{name}"
    if getattr(losslab, name, None) is obj:
        return f"losslab.{name}"
    return f"{obj.__module__}.{name}"


def _family_page(page: str, members: list[tuple[str, str]]) -> str:
    title, _, intro = FAMILIES[page]
    keys = _keys_by_module()
    by_module: dict[str, list[Any]] = defaultdict(list)
    for namespace, name in members:
        obj = _resolve(namespace, name)
        by_module[obj.__module__].append(obj)
    lines = [f"# {title}", "", intro, ""]
    if any(keys.get(m) for m in by_module):
        lines += ["| key | description |", "|---|---|"]
        for module in sorted(by_module):
            for cls in (o for o in by_module[module] if inspect.isclass(o)):
                key = getattr(cls, "key", "")
                if key and key in keys.get(module, []):
                    lines.append(f"| [`{key}`](#{_anchor(module)}) | {_first_line(cls)} |")
        lines.append("")
    for module in sorted(by_module):
        objs = sorted(by_module[module], key=lambda o: (inspect.isclass(o), o.__name__))
        mod = importlib.import_module(module)
        names = ", ".join(f"`{k}`" for k in keys.get(module, [])) or module.rsplit(".", 1)[-1]
        lines += [f"## {names} {{#{_anchor(module)}}}", "", _first_line(mod) + ".", ""]
        paths = [_public_path(o) for o in objs]
        lines += ["Import as " + ", ".join(f"`{p}`" for p in paths if p) + ".", ""]
        for obj in objs:
            lines += [_directive(f"{obj.__module__}.{obj.__qualname__}"), ""]
    return "\n".join(lines)


def _other_page(page: str) -> str:
    title, intro, sections = OTHER_PAGES[page]
    lines = [f"# {title}", "", intro, ""]
    for section, names in sections:
        lines += [f"## {section}", ""]
        for item in _expand(names):
            namespace, name = item.split(":")
            obj = _resolve(namespace, name)
            if inspect.ismodule(obj):
                lines += [
                    _directive(
                        obj.__name__,
                        members="false",
                        show_root_heading="true",
                        show_root_full_path="true",
                    ),
                    "",
                ]
            else:
                lines += [_directive(identifier(namespace, name)), ""]
    return "\n".join(lines)


def _expand(names: list[str]) -> list[str]:
    """``namespace:*`` stands for every name of ``namespace.__all__``, in its order."""
    out: list[str] = []
    for item in names:
        namespace, name = item.split(":")
        if name == "*":
            out.extend(f"{namespace}:{n}" for n in importlib.import_module(namespace).__all__)
        else:
            out.append(item)
    return out


def registry_table() -> str:
    """Markdown table of every registered key: the names usable in spec strings."""
    import losslab

    lines = [
        "| key | family | input | class (module) | description |",
        "|---|---|---|---|---|",
    ]
    for e in losslab.entries():
        key = f"`{e.key}`" + "".join(f" (`{a}`)" for a in e.aliases)
        path = f"{e.cls.__module__}.{e.cls.__qualname__}"
        cls = f"`{e.cls.__qualname__}`"
        if e.family in FAMILIES:
            family = f"[{e.family}]({e.family}.md)"
            cls = f"[{cls}]({e.family}.md#{path})"
        else:
            family = e.family
        short = e.cls.__module__.removeprefix("losslab.losses.")
        lines.append(f"| {key} | {family} | {e.input_kind} | {cls} (`{short}`) | {e.summary} |")
    return "\n".join(lines)


def _index_page() -> str:
    import losslab

    return "\n".join(
        [
            "# API reference",
            "",
            "Generated from the docstrings at every build. Every loss is a pure function (also in "
            "`losslab.functional`) and an `nn.Module` (in `losslab`) whose `forward` is one call to "
            "it; the pages group them by family:",
            "",
            *(f"- [{title}]({page}.md)" for page, (title, _, _) in FAMILIES.items()),
            "",
            "and the rest of the package: "
            + ", ".join(f"[{t}]({p}.md)" for p, (t, _, _) in OTHER_PAGES.items())
            + ".",
            "",
            "## Registry keys",
            "",
            f"The {len(losslab.available())} keys below (and their aliases) name losses in spec "
            'strings (`losslab.parse("0.5*bce + 0.5*dice(smooth=1)")`), in `losslab.lookup`, '
            "and in `losslab compare --loss`. `losslab list` prints the same table.",
            "",
            registry_table(),
            "",
        ]
    )


def reference_pages() -> dict[str, str]:
    """``{path under docs/: markdown}`` of the generated reference."""
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for namespace, name in _loss_names():
        page = _family_of(_resolve(namespace, name))
        assert page is not None
        members[page].append((namespace, name))
    pages = {"reference/index.md": _index_page()}
    for page in FAMILIES:
        pages[f"reference/{page}.md"] = _family_page(page, members.get(page, []))
    for page in OTHER_PAGES:
        pages[f"reference/{page}.md"] = _other_page(page)
    return pages


def documented_objects(pages: dict[str, str]) -> list[Any]:
    """The objects that the ``::: path`` directives of ``pages`` render."""
    out = []
    for text in pages.values():
        for line in text.splitlines():
            if line.startswith("::: "):
                out.append(_import_path(line[4:].strip()))
    return out


def _import_path(path: str) -> Any:
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def unplaced(pages: dict[str, str] | None = None) -> list[str]:
    """Public names (``namespace.name``) that no generated page documents."""
    pages = reference_pages() if pages is None else pages
    documented = {id(o) for o in documented_objects(pages)}
    missing = []
    for namespace in PUBLIC_NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            if id(getattr(module, name)) not in documented:
                missing.append(f"{namespace}.{name}")
    return missing


# ----------------------------------------------------------------------------- mkdocs hooks
def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    pages = reference_pages()
    for path, content in pages.items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    for name in unplaced(pages):
        log.warning("API reference: public name %s is on no reference page (docs/_hooks.py)", name)
    return files


RESULTS = "benchmarks/RESULTS.md"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    # The performance page includes benchmarks/RESULTS.md (written by `make bench`); in a
    # checkout without it, say so on the page instead of failing the snippet include.
    root = os.path.dirname(config["config_file_path"])
    include = f'--8<-- "{RESULTS}"'
    if include in markdown and not os.path.exists(os.path.join(root, RESULTS)):
        log.info("%s not found; the performance page shows a note instead", RESULTS)
        markdown = markdown.replace(
            include,
            f'!!! note "No results in this checkout"\n    `{RESULTS}` is written by '
            "`make bench`; it is not present in the tree this site was built from.",
        )
    return markdown
