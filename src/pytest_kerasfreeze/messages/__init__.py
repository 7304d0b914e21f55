"""Every text a user reads — reports, failure messages, findings, errors — with every
cap and every plural, in one package of pure functions of plain data:

* :mod:`~pytest_kerasfreeze.messages.reports`: diff reports, failure messages, the
  lines of the terminal section;
* :mod:`~pytest_kerasfreeze.messages.explain`: the summary, explanation and fix of each
  kind of finding;
* :mod:`~pytest_kerasfreeze.messages.errors`: what bad input is told.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# -- caps -----------------------------------------------------------------------------
MAX_WEIGHT_ROWS = 20  # weights listed in a report or a failure
MAX_SUBMODEL_ROWS = 25  # sub-model count lines
MAX_LISTED_PATHS = 40  # layer paths in a selector error
MAX_NAMES = 8  # names inside one sentence of a finding
MAX_TRAINED_PATHS = 15  # layers of a trained model in the strict-marker message
MAX_LINES_PER_TEST = 30  # lines per test in the terminal section
MAX_TOP_SUBMODELS = 6  # sub-models on one terminal line


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 weight"``, ``"2 weights"``, ``"1 training call"``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def names(items: Sequence[str], cap: int = MAX_NAMES) -> str:
    """``a, b, c, ... 4 more`` — a capped list inside a sentence."""
    shown = ", ".join(items[:cap])
    return shown + (f", ... {len(items) - cap} more" if len(items) > cap else "")


def selector_text(selectors: Sequence[Any]) -> str:
    """``'base', 'head'`` — how selectors are shown in labels and messages."""
    return ", ".join(repr(getattr(s, "name", getattr(s, "path", s))) for s in selectors)


def selection_text(selectors: Sequence[Any], exclude: Sequence[Any] = ()) -> str:
    """What a check covers: ``'base'``, ``the whole model``, ``the whole model except 'head'``."""
    text = selector_text(selectors) if selectors else "the whole model"
    if exclude:
        text += f" except {selector_text(exclude)}"
    return text
