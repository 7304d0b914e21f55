"""Reports and failure messages, and the lines of the terminal section.

Modelled on ``numpy.testing.assert_allclose``: what was expected (and with which
tolerance), how many weights broke it, the largest changes, the offenders grouped by
sub-model with shape, dtype, max |Δ|, relative change and share of elements changed,
then the rest as counts, then *why* and *how to fix*. Listings are capped so a
500-layer model stays readable.

Everything here is a pure function of plain data (strings, numbers,
:class:`~pytest_kerasfreeze.engine.changes.WeightChange`,
:class:`~pytest_kerasfreeze.engine.findings.Finding`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any

from pytest_kerasfreeze.engine.changes import WeightChange
from pytest_kerasfreeze.engine.findings import Finding
from pytest_kerasfreeze.engine.messages import (
    MAX_LINES_PER_TEST,
    MAX_SUBMODEL_ROWS,
    MAX_TOP_SUBMODELS,
    MAX_WEIGHT_ROWS,
    names,
    number,
    plural,
    selection_text,
    weight_cells,
)
from pytest_kerasfreeze.engine.verdicts import Breach


# -- expectations ---------------------------------------------------------------------
@dataclass(frozen=True)
class Expectation:
    """What a check expected: ``kind`` is "frozen", "trains" or "trains_only"."""

    kind: str
    layers: tuple[Any, ...]
    atol: float
    rtol: float
    exclude: tuple[Any, ...] = ()
    by: str | None = None  # frozen: no selected weight is updated by this optimizer

    @property
    def target(self) -> str:
        return selection_text(self.layers, self.exclude)

    def describe(self) -> str:
        if self.kind == "frozen" and self.by:
            return f"no weight of {self.target} is updated by {self.by}"
        if self.kind == "frozen":
            return f"no weight of {self.target} moves"
        if self.kind == "trains":
            return f"every declared-trainable weight of {self.target} moves"
        return (
            f"every declared-trainable weight of {self.target} moves, and no other "
            f"weight of the model moves"
        )

    def tolerance(self) -> str:
        return tolerance_text(self.atol, self.rtol)


def tolerance_text(atol: float, rtol: float) -> str:
    if atol == 0 and rtol == 0:
        return "exact: any change of value counts"
    return f"atol={atol:g}, rtol={rtol:g}"


# -- tables of weights ----------------------------------------------------------------
_HEADER = ("weight", "shape", "dtype", "max |Δ|", "rel Δ", "changed", "flag now", "moved by")


def _group(change: WeightChange, model_name: str) -> str:
    """The top-level sub-model a weight belongs to (its first path part)."""
    head, sep, _ = change.path.partition("/")
    return head if sep else model_name


def _row(c: WeightChange, nonfinite: int = 0) -> tuple[str, ...]:
    return weight_cells(c, nonfinite)


def weight_table(
    changes: Sequence[WeightChange],
    model_name: str,
    population: Sequence[WeightChange],
    verb: str,
    nonfinite: Mapping[str, int] | None = None,
) -> list[str]:
    """One table of ``changes`` (capped) with a heading per top-level sub-model that
    counts within ``population`` (the weights the check looked at)."""
    nonfinite = nonfinite or {}
    groups: dict[str, list[WeightChange]] = {}
    for change in changes:
        groups.setdefault(_group(change, model_name), []).append(change)
    totals: dict[str, int] = {}
    for change in population:
        group = _group(change, model_name)
        totals[group] = totals.get(group, 0) + 1
    entries: list[str | tuple[str, ...]] = []  # a str is a heading, a tuple a table row
    budget = MAX_WEIGHT_ROWS
    group_names = list(groups)
    for i, name in enumerate(group_names):
        members = groups[name]
        if budget <= 0:
            rest = sum(len(groups[n]) for n in group_names[i:])
            entries.append(
                f"  ... and {plural(rest, 'more weight')} in "
                f"{plural(len(group_names) - i, 'more sub-model')}"
            )
            break
        entries.append(f"  {name}: {members_of(len(members), totals.get(name, 0))} {verb}")
        shown = members[:budget]
        budget -= len(shown)
        entries.extend(_row(c, nonfinite.get(c.path, 0)) for c in shown)
        if len(members) > len(shown):
            entries.append(
                f"    ... and {plural(len(members) - len(shown), 'more weight')} of {name}"
            )
    rows = [e for e in entries if isinstance(e, tuple)]
    keep = [i for i in range(len(_HEADER)) if i < 7 or any(r[i] for r in rows)]
    widths = {i: max(len(r[i]) for r in [_HEADER, *rows]) for i in keep}

    def fmt(row: tuple[str, ...]) -> str:
        return "    " + "  ".join(row[i].ljust(widths[i]) for i in keep).rstrip()

    return [fmt(_HEADER)] + [fmt(e) if isinstance(e, tuple) else e for e in entries]


def members_of(n: int, total: int) -> str:
    """``"1 of 2 weights"``, ``"2 of 2 weights"``."""
    return f"{n} of {plural(total, 'weight')}"


def largest_change(changes: Sequence[WeightChange]) -> str | None:
    """``Max |Δ|: 0.17 (head/kernel); max rel Δ: 0.15 (head/kernel)`` over ``changes``."""
    measured = [c for c in changes if c.moved and c.max_abs_delta is not None]
    if not measured:
        return None
    biggest = max(measured, key=lambda c: c.max_abs_delta or 0.0)
    text = f"Max |Δ|: {number(biggest.max_abs_delta)} ({biggest.path})"
    relative = [c for c in measured if c.rel_delta is not None and not c.started_at_zero]
    if relative:
        top = max(relative, key=lambda c: c.rel_delta or 0.0)
        text += f"; max rel Δ: {number(top.rel_delta)} ({top.path})"
    zero = [c.path for c in measured if c.started_at_zero]
    if zero:
        text += f"; started at 0 (no relative change): {names(zero, 4)}"
    return text


def submodel_lines(
    by_submodel: Mapping[str, tuple[int, int]], skip: Iterable[str] = ()
) -> list[str]:
    skipped = set(skip)
    items = [(p, mt) for p, mt in by_submodel.items() if p not in skipped]
    width = max((len(p) for p, _ in items[:MAX_SUBMODEL_ROWS]), default=0)
    lines = [f"  {p.ljust(width)}  {m} / {t} moved" for p, (m, t) in items[:MAX_SUBMODEL_ROWS]]
    if len(items) > MAX_SUBMODEL_ROWS:
        lines.append(f"  ... and {len(items) - MAX_SUBMODEL_ROWS} more sub-models and layers")
    return lines


def shared_lines(changes: Sequence[WeightChange]) -> list[str]:
    shared = [c for c in changes if len(c.owners) > 1]
    lines = [f"  {c.path}: shared by {', '.join(c.owners)}" for c in shared[:MAX_WEIGHT_ROWS]]
    if len(shared) > MAX_WEIGHT_ROWS:
        lines.append(f"  ... and {plural(len(shared) - MAX_WEIGHT_ROWS, 'more shared weight')}")
    return lines


# -- reports and failures -------------------------------------------------------------
def diff_report(
    model_name: str,
    changes: Sequence[WeightChange],
    by_submodel: Mapping[str, tuple[int, int]],
    atol: float,
    rtol: float,
    digest: bool = False,
) -> str:
    """The report of a diff with no expectation: what moved and every sub-model's counts."""
    moved = [c for c in changes if c.moved]
    lines = [
        f"Weights of model {model_name!r}: {len(moved)} of "
        f"{plural(len(changes), 'watched weight')} moved ({tolerance_text(atol, rtol)})"
    ]
    if digest:
        lines.append(DIGEST_NOTE)
    if moved:
        biggest = largest_change(moved)
        lines += ["", "Moved:", *weight_table(moved, model_name, changes, "moved")]
        if biggest:
            lines.append(biggest)
    lines += ["", "Per sub-model and layer (moved / total):", *submodel_lines(by_submodel)]
    shared = shared_lines(changes)
    if shared:
        lines += ["", "Shared weights (reached through several sub-models):", *shared]
    return "\n".join(lines)


DIGEST_NOTE = (
    "(digest snapshot: the values were not kept, so a change is known exactly but not "
    "its size; max |Δ| and the changed share are not available)"
)


def findings_lines(findings: Sequence[Finding]) -> list[str]:
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
    title: str,
    model_name: str,
    expectation: Expectation,
    halves: Sequence[tuple[Breach, Sequence[WeightChange], Sequence[WeightChange]]],
    by_submodel: Mapping[str, tuple[int, int]],
    findings: Sequence[Finding] = (),
    nonfinite: Mapping[str, int] | None = None,
    digest: bool = False,
    whys: Mapping[str, str] | None = None,
) -> str:
    """The message of a failed check.

    ``whys``: ``{path: why}`` from the plan made before the call (``explain()``), for
    the offending weights whose fate it foresaw; said in the diagnosis.

    ``halves`` lists, for each part of the expectation that failed, ``(breach,
    offending, population)``: ``population`` is the weights that part looked at
    (``trains_only`` has two parts).
    """
    offending = [c for _, bad, _ in halves for c in bad]
    lines = heading_lines(title, model_name, expectation, halves, expectation.tolerance())
    biggest = largest_change(offending)
    if biggest:
        lines.append(biggest)
    if digest:
        lines.append(DIGEST_NOTE)
    for breach, bad, pool in halves:
        what = breach_words(breach, expectation)
        lines += ["", f"Weights {_where(breach, expectation)}that {what}:"]
        lines += weight_table(bad, model_name, pool, what, nonfinite)
    bad_paths = {c.path.rsplit("/", 1)[0] for c in offending}
    bad_nodes = {p for p in by_submodel if any(b == p or b.startswith(p + "/") for b in bad_paths)}
    others = submodel_lines(by_submodel, skip=bad_nodes)
    if others:
        lines += ["", "Other sub-models and layers (moved / total):", *others]
    shared = shared_lines(offending)
    if shared:
        lines += ["", "Shared weights (reached through several sub-models):", *shared]
    lines += findings_lines(findings)
    if whys:
        lines += ([] if findings else ["", "Diagnosis:"]) + why_lines(whys)
    return "\n".join(lines)


def why_lines(whys: Mapping[str, str]) -> list[str]:
    """The plan's *why* of each weight that did the unexpected thing: one line per
    reason, naming its weights (capped)."""
    by_reason: dict[str, list[str]] = {}
    for path, text in whys.items():
        by_reason.setdefault(text, []).append(path)
    items = list(by_reason.items())
    lines = ["  [explain] why these weights did so, as foreseen before the call:"]
    lines += [f"    {names(paths)}: {text}" for text, paths in items[:MAX_WEIGHT_ROWS]]
    if len(items) > MAX_WEIGHT_ROWS:
        lines.append(f"    ... and {plural(len(items) - MAX_WEIGHT_ROWS, 'more reason')}")
    return lines


def heading_lines(
    title: str,
    model_name: str,
    expectation: Expectation,
    halves: Sequence[tuple[Breach, Sized, Sized]],
    how: str,
    said: Mapping[Breach, str] | None = None,
) -> list[str]:
    """The head of a failed check: what broke it, what was expected (``how``: the
    tolerance, or the prediction it was judged on), the share of each half.
    ``said``: other words for a breach (the plan's "will train" for moved)."""
    said = said or {}

    def words(breach: Breach) -> str:
        return said.get(breach) or breach_words(breach, expectation)

    head = "; ".join(
        f"{len(bad)} of {population_word(breach, expectation, len(pool))} {words(breach)}"
        for breach, bad, pool in halves
    )
    lines = [
        f"{title}: {head} in model {model_name!r}",
        f"Expected: {expectation.describe()} ({how})",
    ]
    for breach, bad, pool in halves:
        share = len(bad) / len(pool) if len(pool) else 0.0
        label = "Mismatched weights" if len(halves) == 1 else f"Weights that {words(breach)}"
        lines.append(f"{label}: {len(bad)} / {len(pool)} ({share:.1%})")
    return lines


def breach_words(breach: Breach, expectation: Expectation) -> str:
    """``"moved"``, ``"did not move"``, ``"were updated by q_online.optimizer"``."""
    if breach is Breach.STUCK:
        return "did not move"
    if breach is Breach.UPDATED_BY:
        return f"were updated by {expectation.by}"
    return "moved"


def population_word(breach: Breach, expectation: Expectation, n: int) -> str:
    """``"6 weights of 'base'"``, ``"1 declared-trainable weight of 'head'"``: what one
    half of a check looked at."""
    if breach is Breach.STUCK:
        return f"{plural(n, 'declared-trainable weight')} of {expectation.target}"
    if expectation.kind == "trains_only":
        return f"{plural(n, 'weight')} outside {expectation.target}"
    return f"{plural(n, 'weight')} of {expectation.target}"


def _where(breach: Breach, expectation: Expectation) -> str:
    if expectation.kind != "trains_only":
        return ""
    return "of the selection " if breach is Breach.STUCK else "outside the selection "


# -- the terminal section -------------------------------------------------------------
def _top_submodels(by_submodel: Mapping[str, Mapping[str, int]]) -> str:
    top = [(p, c) for p, c in by_submodel.items() if "/" not in p]
    text = ", ".join(f"{p} {c['moved']}/{c['total']}" for p, c in top[:MAX_TOP_SUBMODELS])
    if len(top) > MAX_TOP_SUBMODELS:
        text += f", ... {len(top) - MAX_TOP_SUBMODELS} more"
    return text


def check_line(check: Mapping[str, Any]) -> str:
    """One check of the terminal section, from its JSON form."""
    status = "PASS" if check["passed"] else "FAIL"
    if check.get("checked_nothing"):
        return f"  {status}  {check['check']} checked nothing: no trained model held its layers"
    where = f" on {check['call']}" if check.get("call") else f" on {check['model']!r}"
    return (
        f"  {status}  {check['check']}{where}: {check['moved']}/{check['total']} selected "
        f"weights moved [{_top_submodels(check['by_submodel'])}]"
    )


def record_line(record: Mapping[str, Any]) -> str:
    """One recorded training call of the terminal section, from its JSON form."""
    return (
        f"  record {record['model']}.{record['method']}(): {record['moved']}/{record['total']} "
        f"weights moved [{_top_submodels(record['by_submodel'])}]"
    )


def finding_line(finding: Mapping[str, Any]) -> str:
    return f"  finding  {finding.get('kind', '?')}: {finding.get('summary', '')}"


def capped_lines(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES_PER_TEST:
        return lines
    return [*lines[:MAX_LINES_PER_TEST], f"  ... and {len(lines) - MAX_LINES_PER_TEST} more"]


def session_summary(checks: int, failed: int, records: int, findings: int, tests: int) -> str:
    return (
        f"{plural(checks, 'check')} ({failed} failed), {plural(records, 'training call')} "
        f"recorded, {plural(findings, 'finding')}, in {plural(tests, 'test')}"
    )


def honoured_traps_lines(found: list[tuple[str, str]]) -> list[str]:
    """The always-on lines for flag changes this Keras honours and another does not
    (``found``: node id, finding summary): not warnings, so ``-W error`` stays harmless."""
    if not found:
        return []
    lines = [
        f"{plural(len(found), 'trainable change')} made after compile() or after the first "
        "fit() that this Keras honours and another Keras does not (the same code trains "
        "other weights there):"
    ]
    lines += capped_lines([f"  {nodeid}: {summary}" for nodeid, summary in found])
    lines.append(
        "Set `trainable` before compile() to train the same weights everywhere; "
        "--kerasfreeze-report shows every check and finding, --kerasfreeze-trap=warn "
        "warns in every test."
    )
    return lines
