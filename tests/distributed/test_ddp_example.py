"""examples/ddp_segmentation.py runs alone and for two steps under torchrun with 2 processes."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ddp_segmentation.py"


def _load():
    spec = importlib.util.spec_from_file_location("ddp_segmentation", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runs_as_one_process() -> None:
    out = _load().main(["--tiny"])
    assert out["world_size"] == 1 and len(out["losses"]) == 2
    assert all(0.0 < v < 10.0 for v in out["losses"])
    assert 0.0 <= out["dice"] <= 1.0 and 0.0 <= out["iou"] <= out["dice"] + 1e-12


@pytest.mark.slow
def test_two_steps_under_torchrun() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(EXAMPLE),
        "--tiny",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    # Known, not ours: on an oversubscribed CPU rank 0 sometimes aborts at interpreter exit
    # *after* the run completed and printed its last line ("terminate called without an
    # active exception": a joinable std::thread destroyed during finalization, with no Python
    # frame on the stack per faulthandler; about one run in six beside a busy process, with or
    # without destroy_process_group, also with the DDP wrapper freed before it). Only that
    # exact failure is retried, once; anything else fails.
    teardown = "terminate called without an active exception"
    if proc.returncode != 0 and teardown in proc.stderr and "world_size=2" in proc.stdout:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    final = re.search(r"world_size=2 .* dice term spread across ranks (\S+)", proc.stdout)
    assert final, proc.stdout + proc.stderr
    # The Dice term is synchronized: bit-identical on both ranks at every step.
    assert float(final.group(1)) == 0.0
    assert proc.stdout.count("step ") == 2
