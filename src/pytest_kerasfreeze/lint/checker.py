"""Linting files: the findings of each, with ``# noqa`` applied, and how they are written.

Example::

    report = lint_paths([Path("train.py"), Path("notebooks/")])
    print(report.text())  # train.py:12:1: KF102 discriminator: the Keras 2 GAN recipe ...
    report.exit_code      # 0 clean, 1 findings, 2 a path could not be checked
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_kerasfreeze.lint.flow import Flow
from pytest_kerasfreeze.lint.rules import LintFinding
from pytest_kerasfreeze.lint.sources import (
    TOO_DEEP,
    Source,
    SourceError,
    python_files,
    read_source,
)

# The words that every rule needs somewhere in the file: a file without any of them is
# parsed (a syntax error is still told) but not walked.
TRIGGERS = ("trainable", "enable_lora", "add_weight")


@dataclass(frozen=True)
class Located:
    """A finding in a file: its path and, in a notebook, its code cell."""

    path: str
    cell: int | None
    finding: LintFinding

    @property
    def line(self) -> int:
        return self.finding.line

    def position(self) -> str:
        """``path:line:col``, or ``path:cell:line:col`` in a notebook."""
        cell = "" if self.cell is None else f"{self.cell}:"
        return f"{self.path}:{cell}{self.finding.line}:{self.finding.col}"

    def text(self) -> str:
        """``path:line:col: KFnnn message`` and its ``Fix:`` line."""
        f = self.finding
        return f"{self.position()}: {f.code} {f.message}\n    Fix: {f.fix}"

    def to_json(self) -> dict[str, object]:
        f = self.finding
        data: dict[str, object] = {
            "path": self.path,
            "line": f.line,
            "col": f.col,
            "code": f.code,
            "message": f.message,
            "fix": f.fix,
        }
        if self.cell is not None:
            data["cell"] = self.cell
        return data


def lint_source(source: Source) -> list[Located]:
    """The findings of one parsed source, positions in its own terms (cell and line in a
    notebook), silenced lines left out. Raises :class:`SourceError` if it does not parse.

    Example::

        lint_source(Source("x.py", "m.trainable = False\\n"))  # []: m is not known
    """
    tree = source.parse()
    if not any(word in source.text for word in TRIGGERS):
        return []
    try:
        findings = Flow(tree, source.label).run()
    except RecursionError:
        raise SourceError(f"{source.path}: {TOO_DEEP}") from None
    found = []
    for finding in findings:
        if source.silenced(finding.line, finding.code):
            continue
        cell, line = source.position(finding.line)
        if cell is not None:
            finding = LintFinding(finding.code, line, finding.col, finding.message, finding.fix)
        found.append(Located(source.path, cell, finding))
    return found


def lint_file(path: Path) -> list[Located]:
    """:func:`lint_source` of a ``.py`` or ``.ipynb`` file."""
    return lint_source(read_source(path))


@dataclass
class Report:
    """Everything found in the paths given, and what could not be checked."""

    findings: list[Located] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: int = 0

    @property
    def exit_code(self) -> int:
        """2 when a path could not be checked, 1 when something was found, else 0."""
        return 2 if self.errors else 1 if self.findings else 0

    def text(self) -> str:
        return "\n".join(f.text() for f in self.findings)

    def json(self) -> str:
        return json.dumps([f.to_json() for f in self.findings], indent=2)


def lint_paths(paths: Sequence[Path]) -> Report:
    """Lint files and directories (their ``.py`` and ``.ipynb`` files); a bad path is an
    error of the report, and every other file is still checked."""
    report = Report()
    for path in paths:
        if not path.exists():
            report.errors.append(f"{path}: no such file or directory")
            continue
        files = python_files(path)
        if not files:
            report.errors.append(f"{path}: no Python files (.py, .ipynb) in this directory")
        for file in files:
            report.files += 1
            try:
                report.findings += lint_file(file)
            except SourceError as err:
                report.errors.append(str(err))
    return report
