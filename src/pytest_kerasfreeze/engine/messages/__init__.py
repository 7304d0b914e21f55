"""Every text a user reads — reports, failure messages, findings, errors — with every
cap and every plural, in one package of pure functions of plain data:

* :mod:`~pytest_kerasfreeze.engine.messages.reports`: diff reports, failure messages, the
  lines of the terminal section;
* :mod:`~pytest_kerasfreeze.engine.messages.explain`: the summary, explanation and fix of each
  kind of finding;
* :mod:`~pytest_kerasfreeze.engine.messages.errors`: what bad input is told;
* :mod:`~pytest_kerasfreeze.engine.messages.static`: the findings of ``kerasfreeze-lint``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pytest_kerasfreeze.engine.changes import WeightChange

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


# -- the cells of one weight, in every table (text, HTML) ---------------------------------
def number(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def rel_text(change: WeightChange) -> str:
    if change.min_rel_delta is not None:  # a digest: only a lower bound is known
        return f"≥{number(change.min_rel_delta)}" if change.min_rel_delta else "-"
    if change.started_at_zero:
        return "from 0"
    return number(change.rel_delta)


def changed_text(change: WeightChange, nonfinite: int = 0) -> str:
    if change.changed_elements is None:
        text = "yes (digest)" if change.moved else "no"
    else:
        text = f"{change.changed_fraction or 0:.1%} ({change.changed_elements}/{change.size})"
    if change.nonfinite:
        text += "  became NaN/Inf"
    elif nonfinite:
        text += f"  holds NaN/Inf ({nonfinite}/{change.size})"
    return text


def flag_text(change: WeightChange) -> str:
    if not change.declared_trainable:
        return "non-trainable"
    if change.trainable:
        return "trainable"
    # a frozen parent overrules the layer's and the variable's own flags: say both
    return "frozen (own: trainable)" if change.own_trainable else "frozen"


def weight_cells(c: WeightChange, nonfinite: int = 0) -> tuple[str, ...]:
    """weight, shape, dtype, max |Δ|, rel Δ, changed, flag now, moved by."""
    movers = ", ".join(str(m) for m in c.moved_by)
    return (
        c.path,
        str(c.shape),
        c.dtype,
        number(c.max_abs_delta),
        rel_text(c),
        changed_text(c, nonfinite),
        flag_text(c),
        movers,
    )
