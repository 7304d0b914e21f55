"""kerasfreeze-lint's speed against ruff and pyflakes, on the same trees (issue 23).

Each tool runs as its command line (interpreter start included, as a pre-commit hook runs
it; bytecode cached, as installed) on the ``.py`` files of each tree: the lint corpus, the
package's own sources, and the installed Keras' ``keras/src`` as a large real tree.
Reported: the median wall time of ``--repeat`` runs and lines per second (all lines of the
files, blank and comments too).

    python benchmarks/lint_bench.py
    python benchmarks/lint_bench.py --repeat 5 --json lint-bench.json
    python benchmarks/lint_bench.py --quick     # the corpus only, one run: a smoke run
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def trees(quick: bool) -> dict[str, Path]:
    found = {"lint corpus": ROOT / "tests" / "lint_corpus"}
    if quick:
        return found
    found["package sources"] = ROOT / "src" / "pytest_kerasfreeze"
    spec = importlib.util.find_spec("keras")
    if spec is not None and spec.origin is not None:
        found["keras/src"] = Path(spec.origin).parent / "src"
    return found


def tools() -> dict[str, list[str]]:
    found = {"kerasfreeze-lint": [sys.executable, "-m", "pytest_kerasfreeze.lint"]}
    if importlib.util.find_spec("pyflakes") is not None:  # each other tool where installed
        found["pyflakes"] = [sys.executable, "-m", "pyflakes"]
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if Path(ruff).exists():
        found["ruff check"] = [ruff, "check", "--no-cache", "--isolated", "--exit-zero", "-q"]
    return found


def lines_of(files: list[Path]) -> int:
    return sum(len(f.read_bytes().splitlines()) for f in files)


def median_wall(command: list[str], repeat: int) -> float:
    """Median wall time of ``repeat`` runs after one untimed run, which leaves each tool's
    bytecode cached as an installed package has it (``PYTHONDONTWRITEBYTECODE`` is
    dropped for the tools: with it, a source checkout is compiled again at every start)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    rows = []
    for tree, path in trees(args.quick).items():
        files = sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        lines = lines_of(files)
        for tool, command in tools().items():
            seconds = median_wall([*command, *map(str, files)], repeat)
            rows.append(
                {
                    "tree": tree,
                    "files": len(files),
                    "lines": lines,
                    "tool": tool,
                    "seconds": round(seconds, 3),
                    "lines_per_second": round(lines / seconds),
                }
            )
    print(f"{'tree':<16} {'files':>6} {'lines':>8}  {'tool':<17} {'seconds':>8} {'lines/s':>10}")
    for r in rows:
        print(
            f"{r['tree']:<16} {r['files']:>6} {r['lines']:>8}  {r['tool']:<17} "
            f"{r['seconds']:>8.3f} {r['lines_per_second']:>10}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
