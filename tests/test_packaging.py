"""The distributions hold what they promise.

The wheel: the package alone (typed, with its pytest11 entry point), the license file and
the version of ``pytest_kerasfreeze.__version__``. The sdist: everything the README tells
users to run (tests with their conftest.py and kmodels.py, examples, tox.ini), and its tests
collect where it is unpacked.

Both are built once per test run, from a copy of the source tree without what a fresh clone
does not have (egg-info, caches, build/ and dist/), so nothing is written into the checkout.
"""

from __future__ import annotations

import configparser
import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

import pytest_kerasfreeze

pytest.importorskip("build")

ROOT = Path(__file__).resolve().parent.parent
VERSION = pytest_kerasfreeze.__version__
DIST_INFO = f"pytest_kerasfreeze-{VERSION}.dist-info"
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".tox",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*cache",
    ".hypothesis",
    "kerasfreeze.json",
)


def _build(out: Path) -> None:
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE)
    # No --sdist/--wheel: build makes the sdist, then the wheel from the unpacked sdist.
    command = [sys.executable, "-m", "build", "--outdir", str(out / "dist"), str(source)]
    run = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{(run.stdout + run.stderr)[-6000:]}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding source/ (what was built) and dist/ (the sdist and the wheel).

    Under pytest-xdist the first worker that needs it builds and the others wait for its
    result in the run's shared temporary directory: one build per run.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    out = base / "kerasfreeze-packaging"
    try:
        out.mkdir()
    except FileExistsError:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if (out / "FAILED").exists():
                pytest.fail(f"the build failed:\n{(out / 'FAILED').read_text()}")
            if (out / "DONE").exists():
                return out
            time.sleep(0.2)
        pytest.fail(f"no build in {out} after 900 s")
    try:
        _build(out)
    except BaseException as error:
        (out / "FAILED").write_text(str(error))
        raise
    (out / "DONE").touch()
    return out


def _only(directory: Path, pattern: str) -> Path:
    [found] = directory.glob(pattern)
    return found


@pytest.fixture(scope="module")
def wheel(built: Path) -> Iterator[zipfile.ZipFile]:
    path = _only(built / "dist", "*.whl")
    assert path.name == f"pytest_kerasfreeze-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        yield archive


@pytest.fixture(scope="module")
def sdist(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, unpacked (by each xdist worker in its own directory)."""
    path = _only(built / "dist", "*.tar.gz")
    assert path.name == f"pytest_kerasfreeze-{VERSION}.tar.gz"
    target = tmp_path_factory.mktemp("sdist")
    with tarfile.open(path) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(target, filter="data")
        else:  # Python releases before the extraction filters (PEP 706)
            archive.extractall(target)
    return target / f"pytest_kerasfreeze-{VERSION}"


def _metadata(wheel: zipfile.ZipFile) -> Message:
    return email.parser.Parser().parsestr(wheel.read(f"{DIST_INFO}/METADATA").decode())


def _files(directory: Path, pattern: str) -> set[str]:
    return {
        p.relative_to(directory).as_posix()
        for p in directory.glob(pattern)
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_wheel_holds_the_package_and_nothing_else(wheel, built):
    names = set(wheel.namelist())
    package = {n for n in names if n.startswith("pytest_kerasfreeze/")}
    assert {
        "pytest_kerasfreeze/__init__.py",
        "pytest_kerasfreeze/plugin.py",
        "pytest_kerasfreeze/py.typed",
        "pytest_kerasfreeze/engine/messages/__init__.py",
        "pytest_kerasfreeze/_keras/__init__.py",
    } <= package
    source = built / "source" / "src"
    assert _files(source, "pytest_kerasfreeze/**/*.py") <= package
    assert names - package == {
        f"{DIST_INFO}/{name}"
        for name in (
            "METADATA",
            "WHEEL",
            "RECORD",
            "entry_points.txt",
            "top_level.txt",
            "licenses/LICENSE",
        )
    }
    assert not [n for n in names if n.startswith(("tests/", "examples/")) or n.endswith(".pyc")]


def test_the_wheel_registers_the_pytest_plugin(wheel):
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(f"{DIST_INFO}/entry_points.txt").decode())
    assert dict(entry_points["pytest11"]) == {"kerasfreeze": "pytest_kerasfreeze.plugin"}


def test_the_wheel_metadata(wheel):
    metadata = _metadata(wheel)
    assert metadata["Name"] == "pytest-kerasfreeze"
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Author"] == "The pytest-kerasfreeze developers"
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert 'matplotlib>=3.7; extra == "plot"' in metadata.get_all("Requires-Dist")
    license_text = wheel.read(f"{DIST_INFO}/licenses/LICENSE").decode()
    assert license_text == (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")


def test_the_sdist_carries_what_the_readme_runs(sdist, built):
    names = _files(sdist, "**/*")
    assert {
        "tests/conftest.py",
        "tests/kmodels.py",
        "examples/conftest.py",
        "tox.ini",
        "mypy.ini",
        ".ci/run",
        "README.md",
        "ARCHITECTURE.md",
        "CHANGELOG.md",
        "LICENSE",
        "pyproject.toml",
        "src/pytest_kerasfreeze/py.typed",
    } <= names
    source = built / "source"
    for pattern in ("tests/*.py", "examples/**/*", "benchmarks/**/*", "peer/**/*", "src/**/*.py"):
        assert _files(source, pattern) <= names, pattern
    assert not [n for n in names if n.endswith(".pyc") or n.startswith(("dist/", "build/"))]
    pkg_info = email.parser.Parser().parsestr((sdist / "PKG-INFO").read_text())
    assert pkg_info["Version"] == VERSION


def test_the_sdist_tests_collect(sdist):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(sdist / "src"), os.environ.get("PYTHONPATH")) if p
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, *args]
        return subprocess.run(
            command, cwd=sdist, env=env, capture_output=True, text=True, timeout=300
        )

    # the unpacked package is the one its tests import, not the one installed here
    where = run("-c", "import pytest_kerasfreeze; print(pytest_kerasfreeze.__file__)")
    package = Path(where.stdout.strip()).resolve().parent
    assert package == (sdist / "src" / "pytest_kerasfreeze").resolve(), where.stdout + where.stderr

    collect = run(
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "tests/test_selection.py",
    )
    output = collect.stdout + collect.stderr
    assert collect.returncode == 0, output
    counted = re.search(r"^(\d+) tests? collected", collect.stdout, re.MULTILINE)
    assert counted, output
    assert int(counted.group(1)) > 0
    assert "tests/test_selection.py::" in collect.stdout


USER_TEST = """
import keras
import numpy as np
import pytest

import pytest_kerasfreeze


def model():
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)], name="base")
    base.trainable = False
    inputs = keras.Input((4,))
    net = keras.Model(inputs, keras.layers.Dense(1, name="head")(base(inputs)))
    net.compile(optimizer="adam", loss="mse")
    return net


@pytest.mark.frozen("base")
def test_frozen_base():
    model().fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0)


@pytest.mark.frozen("head")
def test_head_is_not_frozen():
    model().fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0)


def test_installed_from_the_wheel():
    print("PACKAGE", pytest_kerasfreeze.__file__)
"""


def test_the_wheel_installed_alone_runs_a_user_test_file(built, tmp_path):
    """The built wheel, installed by pip into a new virtual environment, runs a user's
    test file outside any checkout: the markers are there and check. Keras and pytest
    come from this environment, added after the install by a path file behind the new
    one's own site-packages (so its .pth files — this checkout's editable install — are
    not run, and pip never sees that install): ``--no-deps``, offline."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    wheel_path = _only(built / "dist", "*.whl")
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    # Only now this environment's packages (pip must not see this checkout's install)
    import site

    (Path(own) / "zz_outer_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_user.py").write_text(USER_TEST)
    # a user's project: the plugin loads by its entry point (whatever this run was told)
    ours = ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS")
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env["PYTEST_ADDOPTS"] = "-p no:randomly -p no:cacheprovider"
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-s", "test_user.py"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert "1 failed, 2 passed" in output, output
    assert "2 of 2 weights of 'head' moved" in output, output
    package = re.search(r"PACKAGE (\S+)", run.stdout)
    assert package, output
    assert Path(package.group(1)).resolve().is_relative_to(venv.resolve()), output
