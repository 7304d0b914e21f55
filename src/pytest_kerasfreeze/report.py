"""Human-readable reports, modelled on ``numpy.testing.assert_allclose``.

A report says what was expected (and with which tolerance), which weights broke the
expectation grouped by sub-model with shape, dtype, max |Δ|, relative change and the
share of elements changed, then the sub-models that behaved as counts.  Listings are
capped so a 500-layer model stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_kerasfreeze.diff import WeightChange, WeightDiff

MAX_WEIGHT_ROWS = 20
MAX_SUBMODEL_ROWS = 25


@dataclass(frozen=True)
class Expectation:
    """What a check expected: ``kind`` is "frozen" or "trains"."""

    kind: str
    layers: tuple[Any, ...]
    atol: float
    rtol: float

    @property
    def target(self) -> str:
        if not self.layers:
            return "the whole model"
        return ", ".join(repr(getattr(s, "name", s)) for s in self.layers)

    def describe(self) -> str:
        if self.kind == "frozen":
            return f"no weight of {self.target} moves"
        return f"every declared-trainable weight of {self.target} moves"

    def tolerance(self) -> str:
        if self.atol == 0 and self.rtol == 0:
            return "exact: any change of value counts"
        return f"atol={self.atol:g}, rtol={self.rtol:g}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "inf"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def _group(change: WeightChange, model_name: str) -> str:
    """The top-level sub-model a weight belongs to (its first path part)."""
    head, sep, _ = change.path.partition("/")
    return head if sep else model_name


def _changed(change: WeightChange) -> str:
    text = f"{change.changed_fraction:.1%} ({change.changed_elements}/{change.size})"
    if change.nonfinite:
        text += "  became NaN/Inf"
    return text


def _table(changes: Sequence[WeightChange], indent: str = "    ") -> list[str]:
    header = ("weight", "shape", "dtype", "max |Δ|", "rel Δ", "changed", "flag now")
    rows = [
        (
            c.path,
            str(c.shape),
            c.dtype,
            _num(c.max_abs_delta),
            _num(c.rel_delta),
            _changed(c),
            "trainable" if c.trainable else "frozen",
        )
        for c in changes
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _grouped_rows(diff: WeightDiff, changes: Sequence[WeightChange]) -> list[str]:
    """Per top-level sub-model, a capped table of ``changes``."""
    groups: dict[str, list[WeightChange]] = {}
    for change in changes:
        groups.setdefault(_group(change, diff.model_name), []).append(change)
    counts = diff.by_submodel()
    lines: list[str] = []
    budget = MAX_WEIGHT_ROWS
    for name, members in groups.items():
        moved, total = counts.get(name, _count(diff, name))
        lines.append(f"  {name}: {moved} of {total} weights moved")
        shown = members[: max(budget, 0)]
        budget -= len(shown)
        if shown:
            lines.extend(_table(shown))
        if len(members) > len(shown):
            lines.append(f"    ... and {len(members) - len(shown)} more weights of {name}")
    return lines


def _count(diff: WeightDiff, group: str) -> tuple[int, int]:
    members = [c for c in diff.changes if _group(c, diff.model_name) == group]
    return sum(c.moved for c in members), len(members)


def _submodel_lines(diff: WeightDiff, skip: set[str] = frozenset()) -> list[str]:
    items = [(p, mt) for p, mt in diff.by_submodel().items() if p not in skip]
    width = max((len(p) for p, _ in items[:MAX_SUBMODEL_ROWS]), default=0)
    lines = [f"  {p.ljust(width)}  {m} / {t} moved" for p, (m, t) in items[:MAX_SUBMODEL_ROWS]]
    if len(items) > MAX_SUBMODEL_ROWS:
        lines.append(f"  ... and {len(items) - MAX_SUBMODEL_ROWS} more sub-models and layers")
    return lines


def _shared_lines(changes: Sequence[WeightChange]) -> list[str]:
    shared = [c for c in changes if len(c.owners) > 1]
    lines = [f"  {c.path}: shared by {', '.join(c.owners)}" for c in shared[:MAX_WEIGHT_ROWS]]
    if len(shared) > MAX_WEIGHT_ROWS:
        lines.append(f"  ... and {len(shared) - MAX_WEIGHT_ROWS} more shared weights")
    return lines


def diff_report(diff: WeightDiff) -> str:
    """The report of a diff with no expectation: what moved and every sub-model's counts."""
    changes = diff.changes
    moved = [c for c in changes if c.moved]
    tol = Expectation("frozen", (), diff.atol, diff.rtol).tolerance()
    lines = [
        f"Weights of model {diff.model_name!r}: {len(moved)} of {len(changes)} watched "
        f"weights moved ({tol})"
    ]
    if moved:
        lines += ["", "Moved:", *_grouped_rows(diff, moved)]
    lines += ["", "Per sub-model and layer (moved / total):", *_submodel_lines(diff)]
    shared = _shared_lines(changes)
    if shared:
        lines += ["", "Shared weights (reached through several sub-models):", *shared]
    return "\n".join(lines)


def failure_message(
    diff: WeightDiff, expectation: Expectation, offending: Sequence[WeightChange]
) -> str:
    """The message of a failed check: expectation, offenders by sub-model, the rest."""
    selected = diff.select(*expectation.layers)
    if expectation.kind == "frozen":
        verb, pool = "moved", selected
        title = "assert_frozen failed"
    else:
        verb, pool = "did not move", [c for c in selected if c.declared_trainable]
        title = "assert_trains failed"
    share = len(offending) / len(pool)
    kind = "weights" if expectation.kind == "frozen" else "declared-trainable weights"
    lines = [
        f"{title}: {len(offending)} of {len(pool)} {kind} of {expectation.target} "
        f"{verb} in model {diff.model_name!r}",
        f"Expected: {expectation.describe()} ({expectation.tolerance()})",
        f"Mismatched weights: {len(offending)} / {len(pool)} ({share:.1%})",
        "",
        f"Weights that {verb}:",
        *_grouped_rows(diff, offending),
    ]
    bad_paths = {c.path.rsplit("/", 1)[0] for c in offending}
    bad_nodes = {
        p for p in diff.by_submodel() if any(b == p or b.startswith(p + "/") for b in bad_paths)
    }
    others = _submodel_lines(diff, skip=bad_nodes)
    if others:
        lines += ["", "Other sub-models and layers (moved / total):", *others]
    shared = _shared_lines(offending)
    if shared:
        lines += ["", "Shared weights (reached through several sub-models):", *shared]
    return "\n".join(lines)
