"""Every example in examples/ runs with ``--tiny`` and returns sensible numbers.

Each example is imported by path (examples/ is not a package) and its ``main(["--tiny", ...])``
called in this process; the assertions check what the example claims to show: component names,
finite values, metrics in range, and a decrease of the loss where a few full-batch steps make it
reliable with the fixed seed. (examples/ddp_segmentation.py has its own test in
tests/distributed/.)
"""

from __future__ import annotations

import ast
import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MINE = [
    "train_loop",
    "lightning_module",
    "hydra_config",
    "wgan_gp",
    "multitask_uncertainty",
    "multitask_pcgrad",
    "ranking_grouped",
    "soft_dtw_forecaster",
]


def load(name: str) -> ModuleType:
    """Import examples/<name>.py as a module (cached, so each file is executed once)."""
    module_name = f"losslab_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny tensors: thread start-up costs more than it saves, and on a busy 2-core machine
    # intra-op threads slow these runs down many times. Restored afterwards.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def in_unit_interval(value: float) -> bool:
    return 0.0 <= value <= 1.0


# ----------------------------------------------------------------------------- structure
@pytest.mark.parametrize("name", MINE)
def test_example_layout(name: str) -> None:
    """A docstring that says how to run it, and main(argv=None) with --steps and --tiny."""
    source = (EXAMPLES / f"{name}.py").read_text()
    tree = ast.parse(source)
    doc = ast.get_docstring(tree)
    assert doc is not None and f"python examples/{name}.py" in doc and "--tiny" in doc
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert len(mains) == 1
    args = mains[0].args
    assert [a.arg for a in args.args] == ["argv"] and len(args.defaults) == 1
    assert '"--steps"' in source and '"--tiny"' in source
    assert 'if __name__ == "__main__":' in source
    # Public API only: nothing from losslab's private modules.
    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    ]
    assert not [m for m in imported if m and m.startswith("losslab") and "._" in m]


# ----------------------------------------------------------------------------- train loop
def test_train_loop() -> None:
    result = load("train_loop").main(["--tiny"])
    assert result["steps"] == 8 and result["epochs"] == 2
    first, last = result["initial_losses"], result["final_losses"]
    assert set(first) == {"loss/total", "loss/focal", "loss/bce", "loss/l1"}
    assert finite(*first.values(), *last.values())
    # Epoch means of a linear combination: the total is the weighted sum of the components.
    expected = 0.5 * last["loss/focal"] + 0.5 * last["loss/bce"] + 1e-3 * last["loss/l1"]
    assert last["loss/total"] == pytest.approx(expected, rel=1e-5)
    assert last["loss/total"] < first["loss/total"]
    assert last["loss/l1"] < first["loss/l1"]  # the penalized weights shrink
    assert result["penalized"] == ["0.weight"]  # the filter keeps the input layer only
    metrics = result["metrics"]
    for key in ("accuracy", "auroc", "average_precision", "f1", "mcc", "calibration_error"):
        assert key in metrics
    for key in ("accuracy", "auroc", "average_precision", "f1", "calibration_error", "best_f1"):
        assert in_unit_interval(metrics[key]), (key, metrics[key])
    assert finite(metrics["bce"]) and metrics["bce"] > 0


STEPS_RUN = {  # how many optimizer steps a result reports
    "train_loop": lambda r: r["steps"],
    "wgan_gp": lambda r: len(r["history"]),
    "multitask_uncertainty": lambda r: len(r["history"]),
    "multitask_pcgrad": lambda r: len(r["history"]),
    "ranking_grouped": lambda r: len(r["losses"]),
    "soft_dtw_forecaster": lambda r: len(r["history"]),
}


@pytest.mark.parametrize("name", sorted(STEPS_RUN))
def test_steps_option_with_tiny(name: str) -> None:
    """``--steps`` sets the number of steps and keeps the tiny sizes of ``--tiny``."""
    result = load(name).main(["--tiny", "--steps", "2"])
    assert STEPS_RUN[name](result) == 2


# ----------------------------------------------------------------------------- lightning
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # lightning 2.6 on torch 2.13
def test_lightning_module() -> None:
    pytest.importorskip("lightning")
    result = load("lightning_module").main(["--tiny"])
    assert result["steps"] == 4
    logged = result["logged"]
    for name in ("total", "focal", "bce", "l1"):
        assert f"train/{name}" in logged and f"train/{name}_step" in logged
    for key in ("val/bce", "val/auroc", "val/f1", "val/accuracy", "val/average_precision"):
        assert key in logged
    assert finite(*logged.values())
    assert logged["train/total"] == pytest.approx(
        0.5 * logged["train/focal"] + 0.5 * logged["train/bce"] + 1e-3 * logged["train/l1"],
        rel=1e-5,
    )
    for key in ("val/accuracy", "val/auroc", "val/f1", "val/average_precision"):
        assert in_unit_interval(logged[key])


# ----------------------------------------------------------------------------- hydra
HYDRA_LOSSES = {
    "focal": ("focal(alpha=None)", {"loss/total", "loss/focal"}),
    "bce_dice": ("0.5*bce + 0.5*dice", {"loss/total", "loss/bce", "loss/dice"}),
    "bce_tversky": (
        "0.3*bce + 0.7*tversky(alpha=0.3, beta=0.7)",
        {"loss/total", "loss/bce", "loss/tversky"},
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("loss", sorted(HYDRA_LOSSES))
def test_hydra_config(loss: str) -> None:
    pytest.importorskip("hydra")
    spec, components = HYDRA_LOSSES[loss]
    result = load("hydra_config").main(["--tiny", f"loss={loss}"])
    assert result["spec"] == spec
    assert result["same_without_hydra"]
    first, last = result["initial_losses"], result["final_losses"]
    assert set(first) == components
    assert finite(*first.values(), *last.values())
    assert last["loss/total"] < first["loss/total"]  # 3 full-batch steps
    assert set(result["metrics"]) == {"dice", "iou"}
    assert all(in_unit_interval(v) for v in result["metrics"].values())


@pytest.mark.slow
def test_hydra_config_overrides() -> None:
    pytest.importorskip("hydra")
    example = load("hydra_config")
    result = example.main(["--tiny", "--steps", "2", "loss=focal", "loss.gamma=3.0"])
    assert result["spec"] == "focal(alpha=None, gamma=3.0)"
    result = example.main(["--tiny", "--steps", "1", "loss.spec='0.3*bce + 0.7*dice(smooth=0.5)'"])
    assert result["spec"] == "0.3*bce + 0.7*dice(smooth=0.5)"


# ----------------------------------------------------------------------------- WGAN-GP
def test_wgan_gp() -> None:
    result = load("wgan_gp").main(["--tiny"])
    history = result["history"]
    assert len(history) == 3
    for record in history:
        assert finite(*record.values())
        assert record["penalty"] > 0  # a fresh critic's gradient norm is far from 1
        assert record["critic_loss"] == pytest.approx(
            -record["wasserstein"] + record["penalty"], rel=1e-5, abs=1e-6
        )
    assert finite(result["grad_norm"], result["distance"], result["start_distance"])
    assert 0 <= result["modes_covered"] <= 8


# ----------------------------------------------------------------------------- multi-task
def test_multitask_uncertainty() -> None:
    result = load("multitask_uncertainty").main(["--tiny"])
    first, last = result["initial"], result["final"]
    assert {"total", "cls", "reg", "uncertainty_regularizer"} <= set(first)
    assert finite(*first.values(), *last.values())
    assert last["reg"] < first["reg"]  # full-batch steps
    # Kendall et al.: the task with the larger loss (reg, > 1) gets a smaller weight; the
    # task with a loss below 1 (cls) a larger one. Both move from 1/2 at the first step.
    assert first["reg"] > 1 > first["cls"]
    assert last["weight/reg"] < 0.5 < last["weight/cls"]
    assert result["log_vars"]["reg"] > 0 > result["log_vars"]["cls"]
    metrics = result["metrics"]
    assert in_unit_interval(metrics["cls/accuracy"]) and in_unit_interval(metrics["cls/auroc"])
    assert finite(metrics["reg/rmse"], metrics["reg/r2"]) and metrics["reg/rmse"] > 0


def test_multitask_pcgrad() -> None:
    result = load("multitask_pcgrad").main(["--tiny"])
    first, last = result["initial"], result["final"]
    assert finite(*first.values(), *last.values())
    assert result["weights"] == {"cls": 1.0, "reg": 1.0}  # reduction="sum"
    assert last["total"] == pytest.approx(last["cls"] + last["reg"], rel=1e-6)
    assert last["reg"] < first["reg"]  # full-batch steps
    assert all(-1.0 <= c <= 1.0 for c in result["cosines"]) and len(result["cosines"]) == 2
    assert "weighting._extra_state" in result["state_keys"]  # the projection-order generator
    assert in_unit_interval(result["metrics"]["cls/auroc"])


# ----------------------------------------------------------------------------- ranking
@pytest.mark.parametrize("spec", ["lambda_loss", "listnet", "0.5*listnet + 0.5*ranknet"])
def test_ranking_grouped(spec: str) -> None:
    result = load("ranking_grouped").main(["--tiny", "--loss", spec])
    assert result["spec"] == spec
    # The flat (group ids) and padded (mask) layouts give the same value.
    assert result["padded_loss"] == pytest.approx(result["flat_loss"], rel=1e-5, abs=1e-6)
    assert len(result["losses"]) == 4 and finite(*result["losses"])
    for scores in (result["before"], result["after"]):
        assert set(scores) == {"ndcg@5", "mrr", "map", "precision@5"}
        assert all(in_unit_interval(v) for v in scores.values())


# ----------------------------------------------------------------------------- soft-DTW
def test_soft_dtw_forecaster() -> None:
    result = load("soft_dtw_forecaster").main(["--tiny"])
    assert result["spec"] == "0.041667*soft_dtw_divergence + 0.5*mse"
    first, last = result["initial"], result["final"]
    assert set(first) == {"total", "soft_dtw_divergence", "mse"}
    assert finite(*first.values(), *last.values())
    assert last["soft_dtw_divergence"] >= 0  # the divergence form is non-negative
    assert last["total"] < first["total"]
    for scores in (result["test"], result["seasonal_naive"]):
        assert {"mase", "smape", "wape"} <= set(scores)
        assert finite(scores["mase"]) and scores["mase"] > 0
        assert 0 <= scores["smape"] <= 2


def _run_all_tiny() -> dict[str, Any]:  # pragma: no cover - a helper for manual timing
    return {name: load(name).main(["--tiny"]) for name in MINE}
