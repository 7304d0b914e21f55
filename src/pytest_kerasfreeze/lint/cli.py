"""The console script ``kerasfreeze-lint PATH...`` (also ``python -m pytest_kerasfreeze.lint``).

Exit status: 0 when nothing is found, 1 when something is, 2 on a usage error (a missing
path, a directory without Python files, a file that does not parse or is not text, a
notebook that is not JSON) — the other files are still checked and their findings told.

Example::

    $ kerasfreeze-lint gan.py notebooks/
    gan.py:41:9: KF102 discriminator: the Keras 2 GAN recipe: ...
        Fix: set discriminator.trainable = True right before ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_kerasfreeze.lint.checker import lint_paths
from pytest_kerasfreeze.lint.rules import RULES


def parser() -> argparse.ArgumentParser:
    rules = "\n".join(f"  {code}  {what}" for code, what in RULES.items())
    result = argparse.ArgumentParser(
        prog="kerasfreeze-lint",
        description="Find the Keras freeze mistakes that can be seen in the source "
        "(scripts and notebooks), without running them.",
        epilog=f"rules:\n{rules}\n\nsilence a line with `# noqa: KF101` or `# noqa`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    result.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (text)"
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lint on the command line's paths; returns the exit status."""
    args = parser().parse_args(argv)
    report = lint_paths([Path(p) for p in args.paths])
    if args.format == "json":
        print(report.json())
    elif report.findings:
        print(report.text())
    for error in report.errors:
        print(f"kerasfreeze-lint: error: {error}", file=sys.stderr)
    if args.format == "text" and report.findings:
        n = len(report.findings)
        print(f"Found {n} finding{'s' if n != 1 else ''} in {report.files} files.", file=sys.stderr)
    return report.exit_code
