#!/usr/bin/env python3
"""Run a peer's test suite twice, without and with pytest-kerasfreeze, and fail if any test
ends differently (issue 11: a test that asks for no check must end exactly as without the
plugin).

    python peer/run.py keras     [--workers N] [--out DIR] [pytest args...]
    python peer/run.py patterns  [--workers N] [--out DIR] [pytest args...]

``keras``: a slice of Keras' own test suite, the ``*_test.py`` files shipped inside the
installed ``keras`` package (``peer/keras/slice.txt``, minus ``peer/keras/deselect.txt``),
run in place with Keras' own pytest settings. Keras 3 only: the tf_keras wheel ships no
tests.

``patterns``: ``peer/patterns/``, an ordinary user's suite written from keras-io recipes,
Keras 2-era code and the suite habits that once broke the plugin; no test in it asks the
plugin for anything. Runs on every Keras, tf_keras included.

The backend is Keras' own choice (``KERAS_BACKEND``; ``TF_USE_LEGACY_KERAS=1`` for
tf_keras). Each run writes a JUnit XML file (and a log) under ``--out``; the comparison
is per test id. Exit status: 0 when every test ended the same, 1 when one did not, 2 when
a run could not be compared (nothing collected, no XML, the plugin not loaded).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from compare import compare, outcomes

HERE = Path(__file__).resolve().parent


def backend() -> str:
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        return "tf_keras"
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def keras_args(active: str) -> tuple[list[str], dict[str, str]]:
    """The pytest command line and environment for the slice of Keras' suite."""
    if active == "tf_keras":
        raise SystemExit(
            "peer/run.py keras: the tf_keras wheel ships no tests; run "
            "`python peer/run.py patterns` for tf_keras."
        )
    site = Path(sysconfig.get_paths()["purelib"])
    files = []
    for line in (HERE / "keras" / "slice.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("jax: "):
            if active != "jax":
                continue
            line = line[len("jax: ") :]
        if not (site / line).is_file():
            raise SystemExit(f"peer/run.py keras: {site / line} is missing (is keras installed?)")
        files.append(str(site / line))
    deselect = [
        line.strip()
        for line in (HERE / "keras" / "deselect.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    args = ["-c", str(HERE / "keras" / "pytest.ini"), f"--rootdir={site}", "-p", "conftest"]
    args += ["-k", " and ".join(f"not ({term})" for term in deselect), *files]
    path = os.pathsep.join(filter(None, [str(HERE / "keras"), os.environ.get("PYTHONPATH")]))
    return args, {"PYTHONPATH": path}


def patterns_args() -> tuple[list[str], dict[str, str]]:
    folder = HERE / "patterns"
    return ["-c", str(folder / "pytest.ini"), f"--rootdir={folder}", str(folder)], {}


def run_once(label: str, args: list[str], env: dict[str, str], out: Path) -> Path:
    xml, log = out / f"{label}.xml", out / f"{label}.log"
    command = [sys.executable, "-m", "pytest", *args, f"--junitxml={xml}"]
    start = time.perf_counter()
    with open(log, "w") as stream:
        subprocess.run(command, env=env, stdout=stream, stderr=subprocess.STDOUT, check=False)
    lines = log.read_text().strip().splitlines()
    last = lines[-1] if lines else "(no output)"
    print(f"  {label:<4} {last}  [{time.perf_counter() - start:.0f} s wall, log {log}]")
    return xml


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("suite", choices=["keras", "patterns"])
    parser.add_argument("--workers", default="2", help="pytest-xdist workers (0: none)")
    parser.add_argument("--out", help="where the logs and XML go (default: a temp folder)")
    options, extra = parser.parse_known_args(argv)
    active = backend()
    args, env_extra = keras_args(active) if options.suite == "keras" else patterns_args()
    out = Path(options.out or tempfile.mkdtemp(prefix=f"peer-{options.suite}-{active}-"))
    out.mkdir(parents=True, exist_ok=True)
    common = ["-q", "-rfE", "-p", "no:cacheprovider", "-p", "no:randomly"]
    common += ["-o", "junit_family=xunit1", "-n", options.workers, *extra]
    # the plugin's warnings are errors in both runs, whatever the suite's own settings
    # filter (Keras' ignores every UserWarning): harmless must hold under -W error too
    common += ["-W", "error::pytest_kerasfreeze.exceptions.KerasFreezeWarning"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env_extra}
    print(f"peer/run.py {options.suite} on {active}: without, then with pytest-kerasfreeze")
    off = run_once("off", [*args, *common, "-p", "no:kerasfreeze"], env, out)
    report = out / "on.kerasfreeze.json"
    on = run_once("on", [*args, *common, f"--kerasfreeze-json={report}"], env, out)
    for xml in (off, on):
        if not xml.is_file() or not outcomes(str(xml)):
            print(f"peer/run.py: {xml} has no test results; see its log", file=sys.stderr)
            return 2
    if not report.is_file():
        print(f"peer/run.py: the plugin was not loaded in the second run ({report} missing)")
        return 2
    return 1 if compare(str(off), str(on), details=True) else 0


if __name__ == "__main__":
    sys.exit(main())
