"""Pictures of a diff: one horizontal bar per sub-model and layer, its moved share.

A bar's colour and hatch say the flag of the weights its layers declared trainable
(trainable, frozen, mixed, or state only: no declared-trainable weight, e.g.
BatchNormalization statistics); the solid part is the share that moved, the light
part the rest. Layers of a compile-order trap and of shared weights carry a marker.
Colours are the Okabe-Ito palette, each category with its own hatch, so a picture
reads with any colour vision and in greyscale.

Large models stay readable: beyond ``MAX_PLOT_ROWS`` rows only the top-level
sub-models are drawn, and only those with moved weights or findings are opened down to
their layers; the rest is capped with a last "... N more" row.

matplotlib is imported when a picture is drawn (the optional extra ``plot``), and
only its Agg canvas is used: no window, no pyplot state.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_kerasfreeze.engine.changes import WeightChange
from pytest_kerasfreeze.engine.findings import COMPILE_ORDER, SHARED
from pytest_kerasfreeze.engine.messages import pictures as words
from pytest_kerasfreeze.engine.messages.html import Figures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Okabe & Ito (2008), "Color Universal Design": distinct for every common colour
# vision. The four category colours also differ in greyscale (luma 0, 106, 162 and 213
# of 255), their light tints (the part that did not move) stay lighter than any of
# them but yellow, and each category has its own hatch.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
COLORS = {
    words.TRAINABLE: OKABE_ITO["bluish green"],
    words.FROZEN: OKABE_ITO["black"],
    words.MIXED: OKABE_ITO["orange"],
    words.STATE_ONLY: OKABE_ITO["yellow"],
}
HATCHES = {words.TRAINABLE: "//", words.FROZEN: "", words.MIXED: "xx", words.STATE_ONLY: ".."}
TRAP_COLOR = OKABE_ITO["vermillion"]
TRAP_MARKER = "X"
SHARED_COLOR = OKABE_ITO["reddish purple"]
SHARED_MARKER = "D"
EDGE = "#333333"
LIGHT = 0.78  # how far the unmoved part of a bar is mixed towards white
CHAR_WIDTH = 0.0105  # of a counts character, in bar widths (9 pt on a 9-inch figure)
MARK_STEP = 0.045  # between the markers of one row, in bar widths


@dataclass(frozen=True)
class Row:
    """One bar: a sub-model or layer (or the last "... N more" row: ``total`` 0)."""

    path: str
    label: str
    moved: int
    total: int
    category: str
    trap: bool = False
    shared: bool = False

    @property
    def share(self) -> float:
        return self.moved / self.total if self.total else 0.0


def available() -> bool:
    """Whether matplotlib can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def grey(color: str) -> float:
    """The grey (ITU-R 601 luma, 0..255) a greyscale conversion makes of ``#RRGGBB``."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b


def lighter(color: str, amount: float = LIGHT) -> str:
    """``color`` mixed towards white by ``amount`` (0..1)."""
    channels = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02X}" for c in channels)


# -- from figures to rows -------------------------------------------------------------
def _node_paths(change: WeightChange, model: str) -> set[str]:
    """The layer paths through which a weight is reached: its own and, for a shared
    weight, the same layer under each other sub-model that owns it."""
    layer_path = change.path.rpartition("/")[0]
    paths = {layer_path} if layer_path else set()
    name = layer_path.rpartition("/")[2]
    if name:
        for owner in change.owners:
            paths.add(name if owner in (model, "") else f"{owner}/{name}")
    return paths


def _ancestors(path: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b", "a/b/c"]``."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def categories(figures: Figures) -> dict[str, str]:
    """``{path: category}`` for every path of ``figures.by_submodel``, from the flags
    of the weights each one holds that its layers declared trainable."""
    flags: dict[str, set[bool]] = {}
    for change in figures.changes:
        if not change.declared_trainable:
            continue
        for node in _node_paths(change, figures.model):
            for path in _ancestors(node):
                flags.setdefault(path, set()).add(change.trainable)
    out = {}
    for path in figures.by_submodel:
        seen = flags.get(path, set())
        if not seen:
            out[path] = words.STATE_ONLY
        elif len(seen) == 2:
            out[path] = words.MIXED
        else:
            out[path] = words.TRAINABLE if True in seen else words.FROZEN
    return out


def _under(path: str, layers: Iterable[str]) -> bool:
    return any(path == layer or path.startswith(layer + "/") for layer in layers)


def _finding_layers(figures: Figures, kind: str) -> list[str]:
    """The layers named by findings of ``kind``; the model's own name stands for all."""
    layers = [layer for f in figures.findings if f.kind == kind for layer in f.layers]
    if any(layer in (figures.model, "") and layer not in figures.by_submodel for layer in layers):
        return [p for p in figures.by_submodel if "/" not in p]
    return layers


def rows(figures: Figures, max_rows: int = words.MAX_PLOT_ROWS) -> list[Row]:
    """The bars of a picture, top to bottom: every sub-model and layer when they fit in
    ``max_rows``; else the top-level ones, opened down to their layers where weights
    moved or a finding points, the most telling first when even those do not fit, and
    a last "... N more" row."""
    by_submodel = figures.by_submodel
    cats = categories(figures)
    traps = _finding_layers(figures, COMPILE_ORDER)
    shared = _finding_layers(figures, SHARED)
    noted = traps + shared

    def interesting(path: str) -> bool:
        moved = by_submodel[path][0] > 0
        return moved or any(p == path or p.startswith(path + "/") for p in noted)

    paths = list(by_submodel)
    if len(paths) > max_rows:
        shown = []
        for path in paths:
            parent = path.rpartition("/")[0]
            # opened: every ancestor is shown and telling
            if not parent or all(a in by_submodel and interesting(a) for a in _ancestors(parent)):
                shown.append(path)
        paths = shown
    hidden = 0
    if len(paths) > max_rows:
        keep = set(sorted(paths, key=lambda p: (not interesting(p),))[: max_rows - 1])
        hidden = len(paths) - len(keep)
        paths = [p for p in paths if p in keep]
    visible = set(paths)
    out = []
    for path in paths:
        moved, total = by_submodel[path]
        inside = sum(1 for p in by_submodel if p.startswith(path + "/") and p not in visible)
        label = words.row_label(path)
        if inside and not any(p.startswith(path + "/") for p in visible):
            label = words.collapsed_label(label, inside)
        out.append(
            Row(path, label, moved, total, cats[path], _under(path, traps), _under(path, shared))
        )
    if hidden:
        out.append(Row("", words.more_rows(hidden), 0, 0, ""))
    return out


# -- drawing --------------------------------------------------------------------------
def figure(figures: Figures, *, title: str | None = None) -> Figure:
    """A matplotlib ``Figure`` of a diff: one bar per sub-model and layer.

    ``figures`` is a :class:`~pytest_kerasfreeze.engine.results.DiffFigures` (model name,
    changes, per-sub-model counts, findings); ``title`` replaces the default title
    ("Model 'clf': 2 of 4 watched weights moved"). Raises ``ImportError`` without matplotlib.

    Example::

        from pytest_kerasfreeze.engine.plots import figure
        from pytest_kerasfreeze.engine.results import DiffFigures

        d = before.diff(before.retake())
        fig = figure(DiffFigures(d.model_name, tuple(d.changes), d.by_submodel(),
                                 tuple(d.findings())))
        fig.savefig("weights.png")
    """
    if not available():  # also where parts of it were imported before it went away
        raise ImportError(words.matplotlib_missing())
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(words.matplotlib_missing()) from err
    bars = rows(figures)
    height = 1.6 + 0.3 * max(len(bars), 2)
    fig = Figure(figsize=(9.0, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: savefig and draw never need a window
    ax = fig.add_subplot()
    # the counts and markers right of the bars, inside the axes (so the layout keeps
    # them): the markers' column after the widest counts
    widest = max((len(words.counts(b.moved, b.total)) for b in bars if b.total), default=3)
    marks_at = 1.045 + CHAR_WIDTH * widest
    marks = max((int(b.trap) + int(b.shared) for b in bars), default=0)
    for i, bar in enumerate(bars):
        if bar.total:  # not the "... N more" row
            _draw_bar(ax, i, bar, marks_at)
    ax.set_yticks(range(len(bars)), [bar.label for bar in bars])
    for label, bar in zip(ax.get_yticklabels(), bars, strict=True):
        if not bar.total:
            label.set_fontstyle("italic")
    ax.set_ylim(max(len(bars), 1) - 0.5, -0.5)  # the first row on top
    ax.set_xlim(0, marks_at + MARK_STEP * marks - (0.0 if marks else 0.02))
    ax.spines["bottom"].set_bounds(0, 1)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xlabel(words.X_LABEL)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#cccccc", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    moved = sum(c.moved for c in figures.changes)
    ax.set_title(title or words.title(figures.model, moved, len(figures.changes)), loc="left")
    from matplotlib.legend_handler import HandlerTuple

    handles, labels = _legend(bars)
    if handles:
        pairs = HandlerTuple(ndivide=None, pad=0)  # a category: its solid and light patch
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncol=min(len(handles), 3),
            frameon=False,
            handler_map={tuple: pairs},
        )
    return fig


def _draw_bar(ax: Any, i: int, bar: Row, marks_at: float) -> None:
    """Row ``i``: the moved share solid, the rest light, the counts, the markers."""
    color, hatch = COLORS[bar.category], HATCHES[bar.category]
    style = {
        "height": 0.7,
        "hatch": hatch,
        "edgecolor": TRAP_COLOR if bar.trap else EDGE,
        "linewidth": 2.2 if bar.trap else 0.8,
    }
    ax.barh(i, bar.share, color=color, gid=f"moved:{bar.path}", **style)
    ax.barh(i, 1 - bar.share, left=bar.share, color=lighter(color), gid=f"rest:{bar.path}", **style)
    counts = words.counts(bar.moved, bar.total)
    ax.text(1.012, i, counts, va="center", ha="left", fontsize=9, gid=f"counts:{bar.path}")
    column = marks_at
    for flagged, marker_color, marker in (
        (bar.trap, TRAP_COLOR, TRAP_MARKER),
        (bar.shared, SHARED_COLOR, SHARED_MARKER),
    ):
        if flagged:
            ax.plot(
                [column],
                [i],
                marker=marker,
                color=marker_color,
                markeredgecolor=EDGE,
                markersize=9,
                linestyle="none",
                clip_on=False,
            )
            column += MARK_STEP


def _legend(bars: list[Row]) -> tuple[list[Any], list[str]]:
    """Per category drawn, its solid and its light patch side by side; per kind of
    finding marked, its marker. ``(handles, labels)``."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    labels = []
    for c in words.CATEGORIES:
        if any(bar.category == c for bar in bars):
            solid = Patch(facecolor=COLORS[c], hatch=HATCHES[c], edgecolor=EDGE)
            light = Patch(facecolor=lighter(COLORS[c]), hatch=HATCHES[c], edgecolor=EDGE)
            handles.append((solid, light))
            labels.append(words.CATEGORY_LABELS[c])
    for flagged, label, color, marker in (
        (any(bar.trap for bar in bars), words.TRAP_LABEL, TRAP_COLOR, TRAP_MARKER),
        (any(bar.shared for bar in bars), words.SHARED_LABEL, SHARED_COLOR, SHARED_MARKER),
    ):
        if flagged:
            handles.append(
                Line2D(
                    [],
                    [],
                    marker=marker,
                    color=color,
                    markeredgecolor=EDGE,
                    markersize=9,
                    linestyle="none",
                )
            )
            labels.append(label)
    return handles, labels


def png(figures: Figures, *, title: str | None = None, dpi: int = 100) -> bytes:
    """The picture of :func:`figure` as PNG bytes.

    Example::

        Path("weights.png").write_bytes(png(figures))
    """
    fig = figure(figures, title=title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def check_title(check: str, figures: Figures, passed: bool) -> str:
    """The title of one check's picture: its label and outcome, then the model."""
    moved = sum(c.moved for c in figures.changes)
    return words.check_picture_title(check, figures.model, moved, len(figures.changes), passed)
