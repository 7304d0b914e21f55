"""FreezeGuard in two-process training runs on localhost (issue 25): JAX's
``jax.distributed`` (gloo collectives on the CPU) with DataParallel and ModelParallel,
and TensorFlow's MultiWorkerMirroredStrategy with tf_keras (under KERAS_BACKEND=
tensorflow too: the workers choose their Keras). Keras 3.15's own ``fit()`` does not run
under MultiWorkerMirroredStrategy; a strict xfail says so, and turns red when it does.

Each test starts two worker processes (tests/multiprocess_worker.py) with free ports
and a strict timeout, and judges the plugin against the truth the workers wrote: each
process's own numpy copies of the pieces it holds, combined here.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY

pytestmark = pytest.mark.multiprocess

WORKER = Path(__file__).with_name("multiprocess_worker.py")
SRC = Path(__file__).resolve().parent.parent / "src"
LIMIT = 150  # seconds for a whole two-process run
# MultiWorkerMirroredStrategy's workers run tf_keras (Keras 3's fit() does not run under it,
# see the xfail below): in the tf_keras run only, not again in the Keras 3 TensorFlow run
ENGINE = "tf_keras" if LEGACY else {"jax": "jax"}.get(BACKEND)

needs_jax = pytest.mark.skipif(
    ENGINE != "jax", reason="jax.distributed runs under KERAS_BACKEND=jax"
)
needs_tf = pytest.mark.skipif(
    ENGINE != "tf_keras",
    reason="MultiWorkerMirroredStrategy runs in the tf_keras run (TF_USE_LEGACY_KERAS=1)",
)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_pair(tmp_path, scenario, mode, timeout=LIMIT, combine_timeout="60", engine=None):
    """Both workers' results and truths; kills them both at ``timeout``."""
    engine = engine or ENGINE
    ports = ",".join(map(str, free_ports(2)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERASFREEZE_COMBINE_TIMEOUT=combine_timeout)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    for name in ("XLA_FLAGS", "TF_CONFIG", "KERAS_BACKEND", "TF_USE_LEGACY_KERAS"):
        env.pop(name, None)  # the worker sets its own
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), engine, str(i), ports, scenario, mode, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    logs = []
    try:
        for worker in workers:
            left = max(1.0, timeout - (time.monotonic() - started))
            logs.append(worker.communicate(timeout=left)[0].decode(errors="replace"))
    except subprocess.TimeoutExpired:
        for worker in workers:
            worker.kill()
        pytest.fail(f"the two-process run did not end within {timeout} s (a hang)")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    wall = time.monotonic() - started
    results = []
    for i in range(2):
        path = tmp_path / f"result-{i}.json"
        results.append(json.loads(path.read_text()) if path.exists() else None)
    return results, logs, wall


def truth(tmp_path, processes=(0, 1)):
    """{epoch: set of weight paths that moved since the start}, from every process's
    own copies: a weight moved when any process's copy of any of its pieces did."""
    moved = {}
    for i in processes:
        with np.load(tmp_path / f"truth-{i}.npz") as arrays:
            kept = {key: arrays[key] for key in arrays.files}
        for key, array in kept.items():
            when, path, piece = key.split("|")
            if when == "begin":
                continue
            epoch = int(when.removeprefix("epoch"))
            start = kept[f"begin|{path}|{piece}"]
            if not np.array_equal(start.view(np.uint32), array.view(np.uint32)):
                moved.setdefault(epoch, set()).add(_weight(path))
            moved.setdefault(epoch, set())
    return moved


def _weight(path):
    """``finetune/backbone/features/kernel:0`` (tf_keras) and ``features/kernel``
    (Keras 3) alike: the layer and the weight."""
    layer, weight = path.split(":")[0].split("/")[-2:]
    return f"{layer}/{weight}"


def guard_moved(check):
    return {_weight(p) for p in check["moved"]}


def assert_both(results, logs):
    for i, result in enumerate(results):
        assert result is not None, f"process {i} wrote no result:\n{logs[i][-3000:]}"


@needs_jax
@pytest.mark.parametrize("mode", ["copy", "digest"])
def test_jax_data_parallel_a_correct_freeze_passes_on_both(tmp_path, mode):
    results, logs, _ = run_pair(tmp_path, "freeze", mode)
    assert_both(results, logs)
    moved = truth(tmp_path)
    assert moved[0] == {"head/kernel", "head/bias"}  # the truth: the head trained
    for result in results:
        assert result["error"] is None, result.get("traceback")
        assert result["epochs"] == 3
        assert [c["passed"] for c in result["checks"]] == [True, True, True]
        assert [guard_moved(c) for c in result["checks"]] == [moved[e] for e in range(3)]
    assert results[0]["checks"] == results[1]["checks"]  # the same figures everywhere


@needs_jax
@pytest.mark.parametrize("mode", ["copy", "digest"])
def test_jax_model_parallel_a_violation_on_one_process_raises_on_both(tmp_path, mode):
    results, logs, _ = run_pair(tmp_path, "raise", mode)
    assert_both(results, logs)
    # the truth: only process 1's piece of the frozen kernel changed, at epoch 2
    assert truth(tmp_path, [0])[1] == {"head/kernel", "head/bias"}
    assert truth(tmp_path, [1])[1] == {"head/kernel", "head/bias", "features/kernel"}
    for result in results:
        assert result["error"] == "FreezeAssertionError", result.get("traceback")
        assert [(c["epoch"], c["passed"]) for c in result["checks"]] == [(0, True), (1, False)]
        assert "1 of 2 weights of 'backbone' moved" in result["message"]
        assert "epoch 2" in result["message"]
        assert guard_moved(result["checks"][1]) == truth(tmp_path)[1]
    assert results[0]["checks"] == results[1]["checks"]
    if mode == "copy":  # figures combined from both processes' pieces: half the columns
        [figures] = [f for f in results[0]["checks"][1]["figures"] if "features/kernel" in f[0]]
        assert figures[4] == pytest.approx(0.5)
        assert figures[2] == pytest.approx(1e-3, rel=1e-3)


@needs_jax
def test_jax_stop_stops_both_processes_at_the_same_epoch(tmp_path):
    results, logs, _ = run_pair(tmp_path, "stop", "digest")
    assert_both(results, logs)
    for result in results:
        assert result["error"] is None, result.get("traceback")
        assert result["epochs"] == 2  # of 3: both stopped after the check of epoch 2
        [warning] = result["warnings"]
        assert "backbone" in warning and "stop" in warning.lower()


@needs_jax
def test_jax_a_killed_process_gives_a_clear_error_and_no_hang(tmp_path):
    results, logs, wall = run_pair(tmp_path, "killed", "digest", combine_timeout="10")
    assert results[1] is None  # process 1 died before writing anything
    survivor = results[0]
    assert survivor is not None, logs[0][-3000:]
    assert survivor["is_multiprocess_error"], survivor.get("traceback")
    assert survivor["process"] == 1
    assert survivor["message"].startswith(
        "process 1 of this JAX multi-process run did not reach check 2 within 10 s "
        "(this is process 0)"
    )
    assert [c["passed"] for c in survivor["checks"]] == [True]
    assert wall < LIMIT


@needs_tf
@pytest.mark.parametrize("mode", ["copy", "digest"])
def test_multi_worker_mirrored_a_correct_freeze_passes_on_both(tmp_path, mode):
    results, logs, _ = run_pair(tmp_path, "freeze", mode)
    assert_both(results, logs)
    moved = truth(tmp_path)
    assert moved[0] == {"head/kernel", "head/bias"}
    for result in results:
        assert result["error"] is None, result.get("traceback")
        assert [c["passed"] for c in result["checks"]] == [True, True, True]
        assert [guard_moved(c) for c in result["checks"]] == [moved[e] for e in range(3)]
        assert all(c["drift"] == [] for c in result["checks"])
    assert results[0]["checks"] == results[1]["checks"]


@needs_tf
def test_multi_worker_mirrored_one_drifting_worker_raises_on_both(tmp_path):
    results, logs, _ = run_pair(tmp_path, "raise", "digest")
    assert_both(results, logs)
    assert truth(tmp_path, [0])[1] == {"head/kernel", "head/bias"}
    assert truth(tmp_path, [1])[1] == {"head/kernel", "head/bias", "features/kernel"}
    for result in results:
        assert result["error"] == "FreezeAssertionError", result.get("traceback")
        assert [(c["epoch"], c["passed"]) for c in result["checks"]] == [(0, True), (1, False)]
        assert result["checks"][1]["drift"] == ["replica drift"]
        assert "features" in result["message"] and "epoch 2" in result["message"]
    assert results[0]["checks"] == results[1]["checks"]


@needs_tf
def test_multi_worker_mirrored_a_killed_worker_gives_a_clear_error(tmp_path):
    results, logs, wall = run_pair(tmp_path, "killed", "digest", combine_timeout="10")
    assert results[1] is None
    survivor = results[0]
    assert survivor is not None, logs[0][-3000:]
    assert survivor["is_multiprocess_error"], survivor.get("traceback")
    assert survivor["process"] == 1
    assert (
        "process 1 of this TensorFlow multi-process run did not reach check 2"
        in (survivor["message"])
    )
    assert wall < LIMIT


@pytest.mark.skipif(BACKEND != "tensorflow" or LEGACY, reason="Keras 3 on TensorFlow")
@pytest.mark.xfail(
    strict=True,
    reason="Keras 3.15's TensorFlow trainer cannot fit() under MultiWorkerMirroredStrategy: "
    "_maybe_symbolic_build reduces a tuple of PerReplica batches (ValueError) before any "
    "callback runs; built by hand, its metrics' reduction fails next",
)
def test_keras3_multi_worker_mirrored_fit(tmp_path):
    results, logs, _ = run_pair(tmp_path, "freeze", "digest", engine="tensorflow")
    assert_both(results, logs)
    for result in results:
        assert result["error"] is None, result["message"]
