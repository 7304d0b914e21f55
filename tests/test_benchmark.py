"""The benchmark script runs and reports every figure the performance issue asks for.

It is run once, on the quickest backend to import (a smoke run: `--quick`, a small model,
one repetition): the figures themselves are read from full runs, never asserted here.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kmodels import BACKEND, LEGACY

ROOT = Path(__file__).resolve().parent.parent

# the multihost row runs two JAX processes: where JAX is not installed (the `oldest` env)
# the benchmark says so and leaves the row out
MULTIHOST_ROW = "2 JAX processes, digest check vs 1 process"
HAS_JAX = importlib.util.find_spec("jax") is not None
FIGURES = [
    "whole model, nothing moved",
    "whole model, nothing moved, all rewritten",
    "whole model, everything moved",
    "~10% selection vs whole-model baseline",
    "per-variable overhead",
    "extra peak memory / watched bytes",
    "digest: whole model, nothing moved",
    "digest: extra peak memory / watched bytes",
    "plugin load (pytest --co)",
    "frozen marker on a small CNN test",
    "FreezeGuard on a small CNN fit, 3 epochs",
    "100 recorded train_on_batch calls, extra RSS",
    "optimizer_state=True vs the weight check",
    "optimizer_state=True, optimizer reused",
    "inference_mode marker on a small CNN test",
    "explain() / summary(show_trainable=True)",
    "explain() per variable, largest / smallest model",
    MULTIHOST_ROW,
]


@pytest.mark.skipif(
    BACKEND != "torch" or LEGACY, reason="a smoke run on one backend is enough (PyTorch's)"
)
def test_benchmark_reports_every_figure(tmp_path):
    out = tmp_path / "figures.json"
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "PYTEST_ADDOPTS": ""}
    command = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--repeat", "1"]
    run = subprocess.run(
        [*command, "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(out.read_text())
    expected = [name for name in FIGURES if HAS_JAX or name != MULTIHOST_ROW]
    assert list(figures) == expected
    for name, figure in figures.items():
        assert figure["value"] == figure["value"], name  # not NaN
        assert figure["unit"] in ("ratio", "us", "ms", "mib"), name
        assert isinstance(figure["ok"], bool), name
    assert "heavy imports: []" in figures["plugin load (pytest --co)"]["detail"]
    for name in expected:
        assert name in run.stdout
    if not HAS_JAX:
        assert "2 JAX processes: not measured, JAX is not installed" in run.stdout
