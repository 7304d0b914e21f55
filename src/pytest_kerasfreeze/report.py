"""Human-readable reports, modelled on ``numpy.testing.assert_allclose``.

A report says what was expected (and with which tolerance), which weights broke the
expectation grouped by sub-model with shape, dtype, max |Δ|, relative change and the
share of elements changed, then the sub-models that behaved as counts.  Listings are
capped so a 500-layer model stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_kerasfreeze.checklog import selector_text

if TYPE_CHECKING:
    from pytest_kerasfreeze.weightdiff import WeightChange, WeightDiff

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
        return selector_text(self.layers)

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


def _changed(change: WeightChange, nonfinite: int = 0) -> str:
    text = f"{change.changed_fraction:.1%} ({change.changed_elements}/{change.size})"
    if change.nonfinite:
        text += "  became NaN/Inf"
    elif nonfinite:
        text += f"  holds NaN/Inf ({nonfinite}/{change.size})"
    return text


def _flag(change: WeightChange) -> str:
    if not change.declared_trainable:
        return "non-trainable"
    return "trainable" if change.trainable else "frozen"


_HEADER = ("weight", "shape", "dtype", "max |Δ|", "rel Δ", "changed", "flag now")


def _row(c: WeightChange, nonfinite: int = 0) -> tuple[str, ...]:
    return (
        c.path,
        str(c.shape),
        c.dtype,
        _num(c.max_abs_delta),
        _num(c.rel_delta),
        _changed(c, nonfinite),
        _flag(c),
    )


def _grouped_rows(
    diff: WeightDiff, changes: Sequence[WeightChange], nonfinite: Mapping[str, int] = {}
) -> list[str]:
    """One table of ``changes`` (capped), with a heading line per top-level sub-model."""
    groups: dict[str, list[WeightChange]] = {}
    for change in changes:
        groups.setdefault(_group(change, diff.model_name), []).append(change)
    counts = diff.by_submodel()
    entries: list[str | tuple[str, ...]] = []  # a str is a heading, a tuple a table row
    budget = MAX_WEIGHT_ROWS
    names = list(groups)
    for i, name in enumerate(names):
        members = groups[name]
        if budget <= 0:
            rest = sum(len(groups[n]) for n in names[i:])
            entries.append(f"  ... and {rest} more weights in {len(names) - i} more sub-models")
            break
        moved, total = counts[name] if name in counts else _count(diff, name)
        entries.append(f"  {name}: {moved} of {total} weights moved")
        shown = members[:budget]
        budget -= len(shown)
        entries.extend(_row(c, nonfinite.get(c.path, 0)) for c in shown)
        if len(members) > len(shown):
            entries.append(f"    ... and {len(members) - len(shown)} more weights of {name}")
    rows = [e for e in entries if isinstance(e, tuple)]
    widths = [max(len(r[i]) for r in [_HEADER, *rows]) for i in range(len(_HEADER))]

    def fmt(row: tuple[str, ...]) -> str:
        return "    " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return [fmt(_HEADER)] + [fmt(e) if isinstance(e, tuple) else e for e in entries]


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


def findings_lines(findings: Sequence[Any]) -> list[str]:
    """The "Diagnosis" section: each finding's summary, explanation and fix, indented."""
    if not findings:
        return []
    lines = ["", "Diagnosis:"]
    for finding in findings:
        lines.append(f"  [{finding.kind}] {finding.summary}")
        lines += [f"    {line}" for line in finding.explanation.splitlines()]
        lines.append(f"    Fix: {finding.fix}")
    return lines


def failure_message(
    diff: WeightDiff,
    expectation: Expectation,
    offending: Sequence[WeightChange],
    title: str,
    findings: Sequence[Any] = (),
    nonfinite: Mapping[str, int] = {},
) -> str:
    """The message of a failed check: expectation, offenders by sub-model, the rest."""
    selected = diff.select(*expectation.layers)
    if expectation.kind == "frozen":
        verb, pool = "moved", selected
    else:
        verb, pool = "did not move", [c for c in selected if c.declared_trainable]
    share = len(offending) / len(pool)
    kind = "weights" if expectation.kind == "frozen" else "declared-trainable weights"
    lines = [
        f"{title}: {len(offending)} of {len(pool)} {kind} of {expectation.target} "
        f"{verb} in model {diff.model_name!r}",
        f"Expected: {expectation.describe()} ({expectation.tolerance()})",
        f"Mismatched weights: {len(offending)} / {len(pool)} ({share:.1%})",
        "",
        f"Weights that {verb}:",
        *_grouped_rows(diff, offending, nonfinite),
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
    lines += findings_lines(findings)
    return "\n".join(lines)
