"""The repository keeps its promises: the README's commands and what CI runs."""

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


def test_every_backend_env_has_its_peer_suite_env():
    tox = (ROOT / "tox.ini").read_text()
    for env in ("tensorflow", "jax", "torch", "tf_keras"):
        assert f"[testenv:kerassuite-{env}]" in tox
        assert f"env_dir = {{work_dir}}{{/}}{env}\n" in tox
        assert f"kerassuite-{env}" in tox.split("[testenv]")[0]


def test_every_runtime_env_runs_the_examples():
    """The README's main job runs in CI: the examples, on each runtime."""
    tox = (ROOT / "tox.ini").read_text()
    assert "    pytest examples/ -p no:randomly -q\n" in tox.split("[examples]")[1].split("\n[")[0]
    for env in ("tensorflow", "jax", "torch", "tf_keras"):
        section = tox.split(f"[testenv:{env}]\n")[1].split("\n[")[0]
        assert "commands = {[examples]commands}" in section, env
