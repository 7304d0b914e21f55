#!/usr/bin/env python3
"""Run a peer's test suite twice, without and with pytest-kerasfreeze, and fail if any test
ends differently (issue 11: a test that asks for no check must end exactly as without the
plugin).

    python peer/run.py keras     [--workers N] [--out DIR] [--jax-cache DIR] [pytest args...]
    python peer/run.py patterns  [--workers N] [--out DIR] [--jax-cache DIR] [pytest args...]

``keras``: a slice of Keras' own test suite, the ``*_test.py`` files shipped inside the
installed ``keras`` package (``peer/keras/slice.txt``, minus ``peer/keras/deselect.txt``),
run in place with Keras' own pytest settings. Keras 3 only: the tf_keras wheel ships no
tests.

``patterns``: ``peer/patterns/``, an ordinary user's suite written from keras-io recipes,
Keras 2-era code and the suite habits that once broke the plugin; no test in it asks the
plugin for anything. Runs on every Keras, tf_keras included.

The backend is Keras' own choice (``KERAS_BACKEND``; ``TF_USE_LEGACY_KERAS=1`` for
tf_keras). Each run writes a JUnit XML file (and a log) under ``--out``; the comparison
is per test id.

``--jax-cache DIR`` (JAX only): JAX's persistent compilation cache, so that the second run
loads what the first compiled instead of compiling it again. Each process gets a folder of
its own (``DIR/off-gw0``, ...), which no other process uses at the same time: JAX writes an
entry in place, without a lock unless the cache has a size cap, whose eviction scan reads
the whole folder on every write. Before the second run, each of its folders is seeded with
hard links to every entry the first run wrote (an entry is written once and never changed:
without a size cap a read writes nothing). A cached executable is the one XLA would build,
and the key is the lowered computation with its compile options, so a computation the
plugin changed misses the cache and is compiled: the comparison stays what it was.

Exit status: 0 when every test ended the same, 1 when one did not, 2 when
a run could not be compared (nothing collected, no XML, the plugin not loaded).
"""

from __future__ import annotations

import argparse
import os
import shutil
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


JAX_CACHE_SETTINGS = {
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",  # Keras' tests compile small things
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    # JAX puts XLA's GPU autotuning cache under the cache folder and leaves that path in
    # the key (jax/_src/cache_key.py does not clear it): no two folders would share a key
    "JAX_PERSISTENT_CACHE_ENABLE_XLA_CACHES": "none",
}


def worker_args(workers: str, cache: Path | None, label: str) -> list[str]:
    """pytest-xdist's options: ``-n N``, or with a JAX cache one ``--tx`` per worker, each
    worker's own cache folder set in its environment before it imports JAX."""
    if cache is None or workers == "0":
        return ["-n", workers]
    if not workers.isdigit():
        raise SystemExit(f"peer/run.py: --jax-cache needs a number of --workers, not {workers!r}")
    if "//" in str(cache):  # execnet separates a spec's keys with //
        raise SystemExit(f"peer/run.py: --jax-cache {cache} contains '//'")
    args = ["--dist", "load"]
    for number in range(int(workers)):
        folder = cache / f"{label}-gw{number}"
        env = {"JAX_COMPILATION_CACHE_DIR": str(folder), **JAX_CACHE_SETTINGS}
        args += ["--tx", "popen" + "".join(f"//env:{k}={v}" for k, v in env.items())]
    return args


def entries_of(cache: Path, run: str) -> dict[str, Path]:
    """The cache entries one run's folders hold, by name (a name is the entry's key)."""
    return {e.name: e for d in sorted(cache.glob(f"{run}-*")) for e in d.iterdir()}


def seed_cache(cache: Path, source: str, target: str) -> int:
    """Hard-link every entry of the ``source`` run's folders into each ``target`` folder
    (copies where links are refused); returns how many entries there are."""
    entries = entries_of(cache, source)
    targets = [cache / d.name.replace(source, target, 1) for d in cache.glob(f"{source}-*")]
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        for name, entry in entries.items():
            if not (folder / name).exists():
                try:
                    os.link(entry, folder / name)
                except OSError:
                    shutil.copyfile(entry, folder / name)
    return len(entries)


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
    parser.add_argument("--jax-cache", help="JAX's compilation cache, one folder per worker")
    options, extra = parser.parse_known_args(argv)
    active = backend()
    args, env_extra = keras_args(active) if options.suite == "keras" else patterns_args()
    out = Path(options.out or tempfile.mkdtemp(prefix=f"peer-{options.suite}-{active}-"))
    out.mkdir(parents=True, exist_ok=True)
    common = ["-q", "-rfE", "-p", "no:cacheprovider", "-p", "no:randomly"]
    common += ["-o", "junit_family=xunit1", *extra]
    # the plugin's warnings are errors in both runs, whatever the suite's own settings
    # filter (Keras' ignores every UserWarning): harmless must hold under -W error too
    common += ["-W", "error::pytest_kerasfreeze.exceptions.KerasFreezeWarning"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env_extra}
    cache = Path(options.jax_cache).resolve() if options.jax_cache and active == "jax" else None
    if cache is not None and options.workers == "0":  # one process: its environment
        env.update({"JAX_COMPILATION_CACHE_DIR": str(cache / "off-main"), **JAX_CACHE_SETTINGS})
    print(f"peer/run.py {options.suite} on {active}: without, then with pytest-kerasfreeze")
    off_workers = worker_args(options.workers, cache, "off")
    off = run_once("off", [*args, *common, *off_workers, "-p", "no:kerasfreeze"], env, out)
    if cache is not None:
        entries = seed_cache(cache, "off", "on")
        if options.workers == "0":
            env["JAX_COMPILATION_CACHE_DIR"] = str(cache / "on-main")
    report = out / "on.kerasfreeze.json"
    on_workers = worker_args(options.workers, cache, "on")
    on = run_once("on", [*args, *common, *on_workers, f"--kerasfreeze-json={report}"], env, out)
    if cache is not None:
        new = len(entries_of(cache, "on")) - entries
        print(f"  JAX's compilation cache: {entries} entries after the first run, {new} new in the")
        print("  second (computations compiled with the plugin that were not compiled without)")
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
