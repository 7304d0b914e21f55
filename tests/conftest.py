import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import random
import textwrap

import pytest

from kmodels import clear_session, keras

INNER_PLUGINS = "-p kerasfreeze -p xdist"

# The tests whose outcome can depend on how pytest loaded the plugin and on whether it
# rewrote asserts: the tox envs `noautoload` and `norewrite` run only these (`-m sessions`).
# They are the tests that start pytest sessions (pytester), use the plugin's markers or its
# fixture in this session, and the files that test loading and hooks as such. The others
# call the engine and the checks directly, run their own subprocesses (packaging,
# distributed, the plain-script examples) or read files: the same under any loading.
SESSION_FILES = {"test_plugin.py", "test_hygiene.py"}
PLUGIN_MARKERS = ("frozen", "trains", "trains_only")
# The files whose tests end the same on every Keras runtime: they read the package's source,
# the lint corpus, the repository's files or the built distributions, and train no model.
# CI runs them once, in the TensorFlow run; the other runtimes' runs pass
# `-m "not backend_free"` (tox.ini).
BACKEND_FREE_FILES = {
    "test_architecture.py",
    "test_lint.py",
    "test_lint_pytest.py",
    "test_multihost.py",
    "test_packaging.py",
    "test_repo.py",
}

# The slow tests: CI runs them (tox sets KERASFREEZE_THOROUGH=1), the inner loop (a plain
# `pytest tests/`) skips them unless asked (`--thorough`). Each starts processes or builds
# things the rest of the suite does not: nothing here is checked by another test.
THOROUGH_FILES = {
    "test_multiprocess.py",  # two worker processes per test (about 3 minutes on JAX)
    "test_lint_corpus_runs.py",  # every lint-corpus script run for real, in a subprocess
    "test_benchmark.py",  # benchmarks/bench.py --quick in a subprocess
    "test_packaging.py",  # builds the wheel and the sdist, installs the wheel alone
}
THOROUGH_TESTS = {"test_ten_thousand_variables"}  # a 10,000-variable model, checked
# Parametrized cases the inner loop leaves to CI: a second random order of the hygiene
# suite (one pytester session of it with -n 2 costs ~25 s on TensorFlow); the first order
# runs in both.
THOROUGH_CASES = {
    "test_every_test_leaves_keras_as_it_found_it[2-one-process]",
    "test_every_test_leaves_keras_as_it_found_it[2-xdist]",
}

# The files whose tests share one costly module fixture: under pytest-xdist each file's
# tests all go to one worker (the others keep taking the rest one by one), so the fixture
# runs once per run instead of once on each worker that got one of its tests. xdist's own
# `--dist loadgroup` would do it, but its `xdist_group` mark renames `item._nodeid`, which
# pytest 9.2 no longer reads (xdist 3.8): the grouping silently does nothing there.
ONE_WORKER_FILES = {
    "test_lint_corpus_runs.py",  # runs every lint-corpus script (~60 s on one core)
}


def _one_worker_scheduling(config):
    """Whether the scheduler below hands out this run's tests: `-n N` with the default
    `--dist load` (another `--dist` is what the command line asked for)."""
    return config.getoption("dist") == "load"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's load scheduling, but each of ONE_WORKER_FILES is one unit of work, handed
    to one worker whole (largest first)."""
    if not _one_worker_scheduling(config):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return path if path.rsplit("/", 1)[-1] in ONE_WORKER_FILES else nodeid

    return OneWorkerFiles(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tell each worker whether the scheduler above hands out its units (a worker's own
    `dist` option always reads "no"): tests/test_lint_corpus_runs.py checks it held."""
    node.workerinput["one_worker_files"] = _one_worker_scheduling(node.config)


def thorough(config):
    """Whether this run includes the slow tests (CI's runs do)."""
    return bool(config.getoption("thorough") or os.environ.get("KERASFREEZE_THOROUGH"))


def pytest_addoption(parser):
    parser.addoption(
        "--thorough",
        action="store_true",
        help="run the slow tests too, as CI does (or KERASFREEZE_THOROUGH=1)",
    )


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="slow: CI runs it; --thorough or KERASFREEZE_THOROUGH=1")
    for item in items:
        if item.path.name in BACKEND_FREE_FILES:
            item.add_marker(pytest.mark.backend_free)
        if (
            item.path.name in THOROUGH_FILES
            or item.originalname in THOROUGH_TESTS
            or item.name in THOROUGH_CASES
        ):
            item.add_marker(pytest.mark.thorough)
            if not thorough(config):
                item.add_marker(skip)
        if (
            item.path.name in SESSION_FILES
            or "pytester" in item.fixturenames
            or "weight_tracker" in item.fixturenames
            or any(item.get_closest_marker(name) for name in PLUGIN_MARKERS)
        ):
            item.add_marker(pytest.mark.sessions)


def oracle_settings(config=None):
    """How many examples the oracle (test_oracle.py) draws, and from which seed: one
    setting each, KERASFREEZE_ORACLE_EXAMPLES (default 100 in a thorough run, CI's, and 30
    in the inner loop) and KERASFREEZE_ORACLE_SEED (default 0, so CI is reproducible;
    ``random`` draws a fresh one, printed in the header and handed to the xdist workers)."""
    if config is not None and "KERASFREEZE_ORACLE_EXAMPLES" not in os.environ:
        examples = "100" if thorough(config) else "30"
        os.environ["KERASFREEZE_ORACLE_EXAMPLES"] = examples  # the workers start after configure
    seed = os.environ.get("KERASFREEZE_ORACLE_SEED", "0")
    if seed == "random":
        seed = str(random.SystemRandom().randrange(2**32))
        os.environ["KERASFREEZE_ORACLE_SEED"] = seed  # the workers start after configure
    return int(os.environ.get("KERASFREEZE_ORACLE_EXAMPLES", "100")), int(seed)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "sessions: depends on plugin loading or assertion rewriting (conftest.py)"
    )
    config.addinivalue_line(
        "markers", "multiprocess: starts two worker processes on localhost (`-m multiprocess`)"
    )
    config.addinivalue_line(
        "markers", "backend_free: ends the same on every Keras runtime (conftest.py)"
    )
    config.addinivalue_line(
        "markers", "thorough: slow; CI runs it, the inner loop skips it (conftest.py)"
    )
    oracle_settings(config)


def pytest_report_header(config):
    examples, seed = oracle_settings()
    return (
        f"oracle: {examples} examples from seed {seed} "
        f"(KERASFREEZE_ORACLE_EXAMPLES, KERASFREEZE_ORACLE_SEED)"
    )


@pytest.fixture(autouse=True)
def _inner_runs(request, monkeypatch):
    """Sessions that pytester starts run their tests in file order (the random order is
    tested on purpose in test_hygiene.py); with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 (tox env
    `noautoload`) they load the plugin the way such users do: with `-p kerasfreeze`; under
    `--assert=plain` (tox env `norewrite`) they rewrite no asserts either."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # it clears PYTEST_ADDOPTS when it starts
        options = "-p no:randomly"
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            options += " " + INNER_PLUGINS
        if request.config.getoption("assertmode") == "plain":
            options += " --assert=plain"
        monkeypatch.setenv("PYTEST_ADDOPTS", options)


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    yield
    clear_session()


MODEL_SRC = textwrap.dedent(
    """
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        import tf_keras as keras
    else:
        import keras

    def make_model():
        base = keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(4, name="base_dense")], name="base"
        )
        base.trainable = False
        inp = keras.Input((3,))
        model = keras.Model(inp, keras.layers.Dense(1, name="head")(base(inp)), name="clf")
        model.compile(optimizer="sgd", loss="mse")
        return model

    X = np.ones((8, 3), "float32")
    Y = np.zeros((8, 1), "float32")
    """
)


@pytest.fixture
def user_project(pytester):
    """A pytester project with ``usermodels.make_model()``: a frozen ``base`` + ``head``."""
    pytester.makepyfile(usermodels=MODEL_SRC)
    pytester.syspathinsert()
    return pytester
