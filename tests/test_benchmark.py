"""The benchmark script runs and reports every figure the performance issue asks for.

It is run once, on the quickest backend to import (a smoke run: `--quick`, a small model,
one repetition): the figures themselves are read from full runs, never asserted here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kmodels import BACKEND, LEGACY

ROOT = Path(__file__).resolve().parent.parent

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
    "2 JAX processes, digest check vs 1 process",
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
    assert list(figures) == FIGURES
    for name, figure in figures.items():
        assert figure["value"] == figure["value"], name  # not NaN
        assert figure["unit"] in ("ratio", "us", "ms", "mib"), name
        assert isinstance(figure["ok"], bool), name
    assert "heavy imports: []" in figures["plugin load (pytest --co)"]["detail"]
    for name in FIGURES:
        assert name in run.stdout
