"""The corpus' labels are true (issue 23): every script and notebook of tests/lint_corpus/
is run for real, on this Keras, in one subprocess (tests/corpus_runner.py: tiny models, CPU,
numpy copies of the weights before and after the step that matters), and its mistake shows
exactly on the runtimes its ``# shows on:`` header names — none for the correct twins.

tox runs this file in each runtime's env (TensorFlow, JAX, PyTorch, tf_keras), so each
label is confirmed on each Keras; a run takes about 20-90 s on 2 cores. Under pytest-xdist
every test of this file goes to one worker (tests/conftest.py, ONE_WORKER_FILES): the
corpus runs once per run, not once per worker."""

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "lint_corpus"
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".py", ".ipynb"))
RUNTIMES = {"tf_keras", "tensorflow", "jax", "torch"}
# where the `# shows on:` headers were measured (TRAP_SEMANTICS' versions); older Keras
# releases (the tox env `oldest`) may differ, and are not what the labels describe
MEASURED_ON = {"keras": (3, 15), "tf_keras": (2, 21)}


def header(path, key):
    match = re.search(rf"# {key}: *([a-z_, ]+)", path.read_text())
    return None if match is None else {s.strip() for s in match.group(1).split(",")} - {"none"}


def runtime():
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        return "tf_keras"
    return os.environ.get("KERAS_BACKEND", "tensorflow")


@pytest.fixture(scope="module")
def results(tmp_path_factory, pytestconfig):
    library = "tf_keras" if runtime() == "tf_keras" else "keras"
    measured, installed = MEASURED_ON[library], _installed(library)
    if _version(installed) < measured:  # asked before running the corpus (~30 s) for nothing
        pytest.skip(
            f"the labels say what Keras {'.'.join(map(str, measured))} does (the trap "
            f"table's measurements); this is {installed}"
        )
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and getattr(pytestconfig, "workerinput", {}).get("one_worker_files"):
        # once per run (conftest's scheduler): a second worker here means the file was split
        ran = tmp_path_factory.getbasetemp().parent / "lint-corpus-ran-on"
        with open(ran, "a") as out:
            out.write(f"{worker}\n")
        others = set(ran.read_text().split()) - {worker}
        assert not others, (
            f"the corpus also ran on {sorted(others)}: tests/conftest.py's scheduler "
            "no longer hands this file to one worker (ONE_WORKER_FILES)"
        )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(
        [sys.executable, str(HERE / "corpus_runner.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["runtime"] == runtime()
    assert _version(answer["keras"]) == _version(installed), (answer["keras"], installed)
    return answer["results"]


def _installed(library):
    """The installed version of ``library``, read without importing it (the
    `keras-nightly` env installs the `keras` package as the `keras-nightly` distribution)."""
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return metadata.version(f"{library}-nightly")


def _version(text):
    return tuple(int(p) for p in re.findall(r"\d+", text)[:2])


def test_every_file_says_where_its_mistake_shows():
    for path in FILES:
        shows = header(path, "shows on")
        assert shows is not None and shows <= RUNTIMES, path.name
        clean = "# expect: clean" in path.read_text()
        assert (shows == set()) == clean, f"{path.name}: a mistake shows somewhere, a twin nowhere"
        runs = header(path, "runs on")
        assert runs is None or shows <= runs, path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_label_is_confirmed_by_running_it(path, results):
    runs = header(path, "runs on")
    if runs is not None and runtime() not in runs:
        assert path.name not in results
        pytest.skip(f"{path.name} runs on {', '.join(sorted(runs))} only")
    result = results[path.name]
    assert result["shows"] is not None, f"{path.name} failed outside Keras: {result['raised']}"
    expected = runtime() in header(path, "shows on")
    assert result["shows"] == expected, (path.name, result)
