"""The report of a diff as an HTML table, for notebooks (``WeightDiff._repr_html_``)
and HTML test reports.

A pure function of plain data: :func:`diff_table` takes the figures of a diff (a
:class:`~pytest_kerasfreeze.engine.results.DiffFigures`, or anything with the same four
attributes: :class:`Figures`). Every value is escaped; listings are capped like the
text report.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Protocol

from pytest_kerasfreeze.engine.changes import WeightChange
from pytest_kerasfreeze.engine.findings import Finding
from pytest_kerasfreeze.engine.messages import (
    MAX_SUBMODEL_ROWS,
    MAX_WEIGHT_ROWS,
    plural,
    weight_cells,
)


class Figures(Protocol):
    """What a table or a picture of a diff is drawn from: the model's name, every
    watched weight's change, ``{path: (moved, total)}`` per sub-model and layer, and
    the findings. :class:`~pytest_kerasfreeze.engine.results.DiffFigures` is one."""

    @property
    def model(self) -> str: ...
    @property
    def changes(self) -> Sequence[WeightChange]: ...
    @property
    def by_submodel(self) -> Mapping[str, tuple[int, int]]: ...
    @property
    def findings(self) -> Sequence[Finding]: ...


HEADER = ("weight", "shape", "dtype", "max |Δ|", "rel Δ", "changed", "flag", "moved by")
STYLE = (
    "<style>"
    ".kerasfreeze-diff table{border-collapse:collapse;margin:0.3em 0 0.8em 0}"
    ".kerasfreeze-diff th,.kerasfreeze-diff td{padding:0.15em 0.6em;text-align:left;"
    "border-bottom:1px solid #ddd;font-family:monospace;font-size:90%}"
    ".kerasfreeze-diff tr.moved td{font-weight:bold}"
    ".kerasfreeze-diff td.more{font-style:italic}"
    "</style>"
)


def _row(cells: Sequence[str], tag: str = "td", css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    inner = "".join(f"<{tag}>{html.escape(cell)}</{tag}>" for cell in cells)
    return f"<tr{attr}>{inner}</tr>"


def _more(text: str, span: int) -> str:
    return f'<tr><td class="more" colspan="{span}">{html.escape(text)}</td></tr>'


def weights_table(changes: Sequence[WeightChange]) -> str:
    """The weights, moved ones first (each group in model order), capped at
    ``MAX_WEIGHT_ROWS`` rows and a last "... and N more weights" row."""
    ordered = [c for c in changes if c.moved] + [c for c in changes if not c.moved]
    rows = [_row(HEADER, "th")]
    rows += [
        _row(weight_cells(c), css="moved" if c.moved else "") for c in ordered[:MAX_WEIGHT_ROWS]
    ]
    hidden = ordered[MAX_WEIGHT_ROWS:]
    if hidden:
        moved = sum(c.moved for c in hidden)
        rows.append(
            _more(f"... and {plural(len(hidden), 'more weight')} ({moved} moved)", len(HEADER))
        )
    return "<table>" + "".join(rows) + "</table>"


def submodel_table(by_submodel: Mapping[str, tuple[int, int]]) -> str:
    """``{path: (moved, total)}`` as rows, capped at ``MAX_SUBMODEL_ROWS``."""
    items = list(by_submodel.items())
    rows = [_row(("sub-model or layer", "moved / total"), "th")]
    rows += [_row((path, f"{m} / {t}")) for path, (m, t) in items[:MAX_SUBMODEL_ROWS]]
    if len(items) > MAX_SUBMODEL_ROWS:
        rows.append(
            _more(f"... and {len(items) - MAX_SUBMODEL_ROWS} more sub-models and layers", 2)
        )
    return "<table>" + "".join(rows) + "</table>"


def diff_table(figures: Figures) -> str:
    """The report of a diff as HTML: a heading, the weights (moved first, capped), the
    per-sub-model counts and the findings. Every text is escaped.

    Example::

        from pytest_kerasfreeze.engine.messages.html import diff_table
        from pytest_kerasfreeze.engine.results import DiffFigures

        d = before.diff(before.retake())
        page = diff_table(DiffFigures(d.model_name, tuple(d.changes), d.by_submodel()))
        assert page.startswith('<div class="kerasfreeze-diff">')
    """
    moved = sum(c.moved for c in figures.changes)
    heading = (
        f"Weights of model {figures.model!r}: {moved} of "
        f"{plural(len(figures.changes), 'watched weight')} moved"
    )
    parts = [
        '<div class="kerasfreeze-diff">',
        STYLE,
        f"<p><b>{html.escape(heading)}</b></p>",
        weights_table(figures.changes),
        "<p>Per sub-model and layer:</p>",
        submodel_table(figures.by_submodel),
    ]
    if figures.findings:
        items = "".join(
            f"<li><b>[{html.escape(f.kind)}]</b> {html.escape(f.summary)}</li>"
            for f in figures.findings
        )
        parts.append(f"<p>Diagnosis:</p><ul>{items}</ul>")
    parts.append("</div>")
    return "".join(parts)
