"""``pytest --kerasfreeze-lint``: one test item per ``.py`` / ``.ipynb`` file, the
pytest-mypy way (``path::kerasfreeze-lint``), failing with the file's findings.

Only :mod:`pytest_kerasfreeze.plugin` imports this module, and only when the option (or
the ini ``kerasfreeze_lint = true``) is on.

Example::

    $ pytest --kerasfreeze-lint scripts/
    scripts/gan.py::kerasfreeze-lint FAILED
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_kerasfreeze.lint.checker import lint_source
from pytest_kerasfreeze.lint.sources import SourceError, read_source

ITEM_NAME = "kerasfreeze-lint"


class LintFailure(Exception):
    """The findings (or the reason the file could not be checked), as the item's failure."""


class LintFile(pytest.File):
    """A ``.py`` or ``.ipynb`` file seen by the lint: it holds one item."""

    def collect(self) -> Iterator[LintItem]:
        yield LintItem.from_parent(self, name=ITEM_NAME)


class LintItem(pytest.Item):
    """Fails with ``path:line:col: KFnnn message`` and a ``Fix:`` line per finding."""

    # the plugin's observer (patching Keras for a test) has nothing to watch here
    is_kerasfreeze_lint = True

    def runtest(self) -> None:
        shown = os.path.relpath(self.path, self.config.rootpath)
        try:
            source = read_source(self.path)
            source.path = shown
            found = lint_source(source)
        except SourceError as err:
            raise LintFailure(f"{err}") from None
        if found:
            raise LintFailure("\n".join(f.text() for f in found))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, LintFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        # the failure's headline; not the node id itself, whose dots pytest -v would
        # turn into `::` when the two end alike
        return self.path, None, f"{ITEM_NAME}: {os.path.relpath(self.path, self.config.rootpath)}"
