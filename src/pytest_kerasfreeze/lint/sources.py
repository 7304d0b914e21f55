"""Reading what the lint checks: a ``.py`` file, or a notebook's code cells in order.

A notebook becomes one module (its code cells joined, IPython magics and shell lines
blanked so the line numbers stay), with a map from each line back to its cell, so a flag
set in cell 3 and a ``fit()`` in cell 7 are seen in order, and each position is told as
``cell:line``. Anything that cannot be read is a :class:`SourceError` with a message that
names the file (and the line, for a syntax error).

Example::

    source = read_source(Path("train.ipynb"))
    source.position(12)  # (3, 2): code cell 3, its line 2
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = (".py", ".ipynb")
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
# IPython's own syntax in a cell: `%magic`, `!shell`, `?obj`, `obj?`
_MAGIC = re.compile(r"^\s*([%!?]|[\w.]+\?\??\s*$)")


TOO_DEEP = "nested too deeply to be checked (Python's recursion limit)"


class SourceError(Exception):
    """A path that cannot be checked: missing, unreadable, binary, not JSON, not Python."""


@dataclass
class Source:
    """The text of one file as Python, and where each of its lines came from."""

    path: str
    text: str
    # for a notebook: the (1-based code-cell number, line in that cell) of each line
    cells: list[tuple[int, int]] | None = None
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lines = self.text.splitlines()

    def position(self, line: int) -> tuple[int | None, int]:
        """``(cell, line in cell)`` for a notebook, ``(None, line)`` for a script."""
        if self.cells is None or not 1 <= line <= len(self.cells):
            return None, line
        return self.cells[line - 1]

    def label(self, line: int) -> str:
        """How a message names a line: ``line 12``, or ``cell 3, line 2`` in a notebook."""
        cell, in_cell = self.position(line)
        return f"line {in_cell}" if cell is None else f"cell {cell}, line {in_cell}"

    def silenced(self, line: int, code: str) -> bool:
        """Whether ``# noqa`` (bare, or naming ``code``) is on that line."""
        if not 1 <= line <= len(self.lines):
            return False
        match = _NOQA.search(self.lines[line - 1])
        if match is None:
            return False
        codes = match.group("codes")
        return codes is None or code.upper() in re.split(r"[,\s]+", codes.upper())

    def parse(self) -> ast.Module:
        """The module's tree; a :class:`SourceError` naming the line when it does not parse."""
        try:
            return ast.parse(self.text, filename=self.path)
        except SyntaxError as err:
            line = err.lineno or 1
            cell, in_cell = self.position(line)
            where = f"{self.path}:{in_cell}" if cell is None else f"{self.path}:{cell}:{in_cell}"
            raise SourceError(f"{where}: syntax error: {err.msg}") from None
        except ValueError as err:  # source with null bytes
            raise SourceError(f"{self.path}: cannot be parsed: {err}") from None
        except RecursionError:
            raise SourceError(f"{self.path}: {TOO_DEEP}") from None


def read_source(path: Path) -> Source:
    """The :class:`Source` of a ``.py`` file or an ``.ipynb`` notebook."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SourceError(f"{path}: cannot be read: {err.strerror or err}") from None
    if b"\x00" in data:
        raise SourceError(f"{path}: a binary file, not Python source")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SourceError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if path.suffix == ".ipynb":
        return _notebook(str(path), text)
    return Source(str(path), text)


def _notebook(path: str, text: str) -> Source:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise SourceError(
            f"{path}: not a notebook: invalid JSON at line {err.lineno} column {err.colno} "
            f"({err.msg})"
        ) from None
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        raise SourceError(f"{path}: not a notebook: no list of cells")
    lines: list[str] = []
    where: list[tuple[int, int]] = []
    number = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number += 1
        body = cell.get("source", "")
        body = "".join(body) if isinstance(body, list) else str(body)
        cell_magic = body.lstrip().startswith("%%")  # the whole cell is not Python
        for i, line in enumerate(body.splitlines(), start=1):
            lines.append("" if cell_magic or _MAGIC.match(line) else line)
            where.append((number, i))
    return Source(path, "\n".join(lines) + "\n", cells=where)


def python_files(path: Path) -> list[Path]:
    """The ``.py`` and ``.ipynb`` files of a directory, sorted, skipping hidden and
    virtual-environment folders; a file is returned as it is."""
    if not path.is_dir():
        return [path]
    found = []
    for candidate in sorted(path.rglob("*")):
        parts = candidate.relative_to(path).parts
        if any(p.startswith(".") or p in ("__pycache__", "node_modules") for p in parts[:-1]):
            continue
        if candidate.suffix in SUFFIXES and candidate.is_file():
            found.append(candidate)
    return found
