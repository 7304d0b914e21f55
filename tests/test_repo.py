"""The repository keeps its promises: the README's commands and what CI runs."""

import configparser
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_starts_with_what_it_is_for_then_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = text.index("```bash")
    title, purpose = text[:first_block].strip().split("\n", 1)
    assert title == "# pytest-kerasfreeze"
    sentences = [s for s in purpose.replace("\n", " ").split(". ") if s.strip()]
    assert len(sentences) == 2, sentences
    examples, tests = readme_commands()[:2]
    assert "pytest -p kerasfreeze examples/" in examples
    assert "tox run" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def load_compare():
    spec = importlib.util.spec_from_file_location("peer_compare", ROOT / "peer" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PEER_SUITE = """
import os, pytest

def test_same():
    pass

def test_differs():
    assert os.environ.get("PEER_RUN") != "on"

@pytest.mark.xfail(strict=True)
def test_expected():
    assert False

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    pass
"""


def test_the_peer_comparison_finds_a_test_that_ends_differently(pytester, monkeypatch, capsys):
    """``peer/run.py`` fails when any test ends differently with the plugin: its comparison,
    on two real JUnit files of one suite."""
    compare = load_compare()
    pytester.makepyfile(test_peer=PEER_SUITE)
    pytester.runpytest("-p", "no:randomly", "--junitxml=off.xml", "-o", "junit_family=xunit1")
    pytester.runpytest("-p", "no:randomly", "--junitxml=same.xml", "-o", "junit_family=xunit1")
    monkeypatch.setenv("PEER_RUN", "on")
    pytester.runpytest("-p", "no:randomly", "--junitxml=on.xml", "-o", "junit_family=xunit1")
    assert compare.main(["off.xml", "same.xml"]) == 0
    assert "0 with a different outcome" in capsys.readouterr().out
    assert compare.main(["off.xml", "on.xml"]) == 1
    out = capsys.readouterr().out
    assert "test_peer::test_differs: passed -> failed" in out
    assert "{'passed': 4, 'xfailed': 1}" in out and "1 with a different outcome" in out
    assert compare.main(["off.xml", "missing.xml"]) == 2


def load_runner(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "peer"))  # run.py imports compare.py beside it
    spec = importlib.util.spec_from_file_location("peer_run", ROOT / "peer" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_peer_runs_give_each_worker_a_jax_cache_of_its_own(monkeypatch, tmp_path):
    """``peer/run.py --jax-cache``: each xdist worker of each run gets its own folder in its
    `--tx` spec (as execnet reads it), and the second run's folders start with every entry
    the first run's wrote, hard-linked (an entry is never rewritten)."""
    import execnet

    run = load_runner(monkeypatch)
    assert run.worker_args("2", None, "off") == ["-n", "2"]
    assert run.worker_args("0", tmp_path, "off") == ["-n", "0"]
    args = run.worker_args("2", tmp_path, "off")
    assert args[:2] == ["--dist", "load"] and args[2::2] == ["--tx", "--tx"]
    specs = [execnet.XSpec(spec) for spec in args[3::2]]
    assert all(spec.popen for spec in specs)
    assert [spec.env["JAX_COMPILATION_CACHE_DIR"] for spec in specs] == [
        str(tmp_path / "off-gw0"),
        str(tmp_path / "off-gw1"),
    ]
    assert all(spec.env["JAX_PERSISTENT_CACHE_ENABLE_XLA_CACHES"] == "none" for spec in specs)
    try:
        run.worker_args("auto", tmp_path, "off")
    except SystemExit as error:
        assert "--jax-cache needs a number of --workers" in str(error)
    else:
        raise AssertionError("--workers auto with --jax-cache was accepted")

    for folder, names in {"off-gw0": "ab", "off-gw1": "bc"}.items():
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / f"jit_{name}-cache").write_bytes(name.encode())
    assert run.seed_cache(tmp_path, "off", "on") == 3
    for folder in ("on-gw0", "on-gw1"):
        held = sorted(entry.name for entry in (tmp_path / folder).iterdir())
        assert held == ["jit_a-cache", "jit_b-cache", "jit_c-cache"], folder
    assert (tmp_path / "on-gw1" / "jit_a-cache").samefile(tmp_path / "off-gw0" / "jit_a-cache")
    (tmp_path / "on-gw1" / "jit_d-cache").write_bytes(b"d")  # compiled in the second run
    assert len(run.entries_of(tmp_path, "on")) - 3 == 1


def tox_config():
    config = configparser.ConfigParser(interpolation=None)
    config.read_string((ROOT / "tox.ini").read_text())
    return config


RUNTIMES = {
    "tensorflow": "env KERAS_BACKEND=tensorflow",
    "jax": "env KERAS_BACKEND=jax",
    "torch": "env KERAS_BACKEND=torch",
    "tf_keras": "env TF_USE_LEGACY_KERAS=1",
}


def keras_env_commands():
    return tox_config()["testenv:keras"]["commands"].strip().splitlines()


def test_one_environment_serves_every_keras_runtime():
    """CI's env list is the linters, `keras` (every runtime, from one environment) and
    `oldest`; the nightly is run by hand (CI stays green when it breaks). No env shares
    another's env_dir: tox recreates an env_dir that another env name set up."""
    config = tox_config()
    assert config["tox"]["env_list"].replace(",", " ").split() == ["lint", "keras", "oldest"]
    assert not [section for section in config.sections() if "env_dir" in config[section]]
    assert "tox run -e keras-nightly" in (ROOT / "README.md").read_text()


def test_every_runtime_runs_the_tests_the_examples_and_its_peer_suite():
    """The README's main job runs in CI: the examples, on each runtime; and a peer's suite
    (Keras' own tests where the wheel ships them, the user patterns everywhere)."""
    commands = keras_env_commands()
    for runtime, prefix in RUNTIMES.items():
        # the tests that end the same everywhere (conftest.BACKEND_FREE_FILES) run once
        only = "" if runtime == "tensorflow" else '-m "not backend_free" '
        assert f"{prefix} pytest tests/ -n 2 -p no:randomly {only}{{posargs}}" in commands, runtime
        assert f"{prefix} pytest examples/ -p no:randomly -q" in commands, runtime
        peer = [c for c in commands if c.startswith(f"{prefix} python peer/run.py ")]
        suites = ["keras", "patterns"] if runtime != "tf_keras" else ["patterns"]
        assert [c.split()[4] for c in peer] == suites, runtime
        # on JAX, the run with the plugin loads what the run without it compiled
        assert all(("--jax-cache" in c) == (runtime == "jax") for c in peer), runtime


def test_the_loading_variants_run_the_tests_that_depend_on_loading():
    commands = keras_env_commands()
    # one run without autoloading (`-p kerasfreeze`) and without rewriting: a test that
    # needs either fails there; the runtimes' runs have both
    variants = [c for c in commands if "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1" in c]
    assert len(variants) == 1 and [c for c in commands if "--assert=plain" in c] == variants
    assert "-p kerasfreeze -p xdist" in variants[0] and "-m sessions" in variants[0]
