"""The words of a training plan (``explain(model)``): each weight's *why*, the printed
table grouped by sub-model, its HTML twin, and the failure of a check judged on it.

Pure functions of plain data; an entry is anything with the attributes of
:class:`~pytest_kerasfreeze.engine.plan.PlanEntry` (:class:`Entry`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Protocol

from pytest_kerasfreeze.engine.findings import Finding
from pytest_kerasfreeze.engine.messages import MAX_WEIGHT_ROWS, names, plural
from pytest_kerasfreeze.engine.messages.explain import MOMENTS
from pytest_kerasfreeze.engine.messages.reports import (
    Expectation,
    findings_lines,
    heading_lines,
    members_of,
)
from pytest_kerasfreeze.engine.verdicts import Breach
from pytest_kerasfreeze.traps import Direction, Phase

MAX_PLAN_ROWS = 40  # weights listed in a printed plan

_CHANGED: dict[Direction, str] = {
    "freeze": "frozen",
    "unfreeze": "set trainable",
    "create": "created",
}


class Entry(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def flag(self) -> bool: ...
    @property
    def will_train(self) -> bool: ...
    @property
    def why(self) -> str: ...
    @property
    def elsewhere(self) -> Mapping[str, bool | str]: ...
    @property
    def declared_trainable(self) -> bool: ...
    @property
    def group(self) -> str: ...


# -- why one weight trains or not ---------------------------------------------------------
def origin(location: str | None, via: str) -> str:
    """``set at x.py:3``, ``set by enable_lora() at x.py:3``; ``""`` where not recorded."""
    if location is None:
        return ""
    return f"set by {via}() at {location}" if via else f"set at {location}"


def why(
    *,
    here: str,
    model: str,
    declared: bool,
    flag: bool,
    own: bool,
    will_train: bool,
    custom: bool,
    raises: str | None,
    phase: Phase | None,
    direction: Direction | None,
    behaviour: str,
    origin: str,
    frozen_above: str | None,
) -> str:
    """One sentence: why the next training call will (not) update this weight."""
    where = f" ({origin})" if origin else ""
    if not declared:
        return "non-trainable state (statistics): the optimizer never updates it"
    if custom:
        state = "trainable" if flag else "frozen"
        return f"{model} has its own train_step, which decides; the flags say {state}{where}"
    if direction is not None and phase is not None:
        return f"{_CHANGED[direction]} {MOMENTS[phase]}{where}; {here}: {behaviour}"
    if raises:
        return f"nothing trains: {raises}"
    if will_train and frozen_above is not None:
        return (
            f"trainable under frozen sub-model {frozen_above!r}{where}: on Keras 3 a layer "
            "set back to trainable under a frozen nested sub-model trains"
        )
    if will_train:
        return f"trainable{where}"
    if frozen_above == model:
        return f"frozen: model {model!r} itself is frozen, so nothing under it trains{where}"
    if own and frozen_above is not None:
        return f"frozen: under frozen sub-model {frozen_above!r}, which hides its layers{where}"
    if own:
        return f"frozen: the flags at the last compile() or first fit() rule{where}"
    return f"frozen{where}"


def not_compiled(model: str) -> str:
    return f"{model} is not compiled: fit() raises until compile() is called"


def count_mismatch(now: int, built: int) -> str:
    return (
        f"fit() raises an optimizer ValueError: {plural(now, 'variable is', 'variables are')} "
        f"trainable now, but the optimizer was built for {built} (compile again with a new "
        "optimizer instance)"
    )


def unknown_variables(paths: Sequence[str]) -> str:
    return (
        f"fit() raises ValueError 'Unknown variable': the optimizer was built without "
        f"{names(list(paths), 4)} (compile again with a new optimizer instance)"
    )


# -- the printed plan -------------------------------------------------------------------
def _flag_cell(entry: Entry) -> str:
    if not entry.declared_trainable:
        return "non-trainable"
    return "trainable" if entry.flag else "frozen"


def _yes(value: bool | str) -> str:
    return value if isinstance(value, str) else ("yes" if value else "no")


def elsewhere_cell(entry: Entry) -> str:
    """``same everywhere``, or what differs: ``tf_keras no; jax raises``."""
    if not entry.declared_trainable:
        return ""
    odd = [(k, v) for k, v in entry.elsewhere.items() if v != entry.will_train]
    if not odd:
        return "same everywhere"
    return "; ".join(f"{k} {_yes(v)}" for k, v in odd)


def _groups(entries: Sequence[Entry], model: str) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.group or model, []).append(entry)
    return groups


def headline(model: str, here: str, trains: int, total: int, raises: str | None) -> str:
    if raises:
        return f"Training plan of model {model!r} on {here}: the next fit() raises"
    return (
        f"Training plan of model {model!r} on {here}: the next fit() trains {trains} of "
        f"{plural(total, 'weight')}"
    )


def plan_table(
    model: str,
    here: str,
    entries: Sequence[Entry],
    raises: str | None,
    custom: bool,
    slot_bytes: int,
    finding: Finding | None,
) -> str:
    """``print(plan)``: a heading, notes, then one table per top-level sub-model."""
    lines = [headline(model, here, sum(e.will_train for e in entries), len(entries), raises)]
    if raises:
        lines.append(f"  {raises}")
    if custom:
        lines.append(
            f"  {model} has a custom train_step: it decides what trains; this plan follows "
            "the flags"
        )
    if slot_bytes:
        lines.append(f"  optimizer state held for weights that will not train: {slot_bytes} bytes")
    header = ("weight", "flag", "will train", "elsewhere", "why")
    body: list[str | tuple[str, ...]] = []
    budget = MAX_PLAN_ROWS
    groups = _groups(entries, model)
    for name, members in groups.items():
        trains = sum(e.will_train for e in members)
        body.append(f"  {name}: {members_of(trains, len(members))} will train")
        shown = members[: max(budget, 0)]
        budget -= len(shown)
        body += [
            (e.path, _flag_cell(e), _yes(e.will_train), elsewhere_cell(e), e.why) for e in shown
        ]
        if len(members) > len(shown):
            body.append(f"    ... and {plural(len(members) - len(shown), 'more weight')} of {name}")
    rows = [r for r in body if isinstance(r, tuple)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "    " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    lines += ["", fmt(header)] + [fmt(r) if isinstance(r, tuple) else r for r in body]
    if finding is not None:
        lines += findings_lines([finding])
    return "\n".join(lines)


def plan_html(
    model: str, here: str, entries: Sequence[Entry], raises: str | None, custom: bool
) -> str:
    """The plan as an HTML table (notebooks); every text escaped, rows capped."""
    head = headline(model, here, sum(e.will_train for e in entries), len(entries), raises)
    cells = ("weight", "flag", "will train", "elsewhere", "why")
    rows = ["<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>"]
    for entry in entries[:MAX_PLAN_ROWS]:
        values = (
            entry.path,
            _flag_cell(entry),
            _yes(entry.will_train),
            elsewhere_cell(entry),
            entry.why,
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in values) + "</tr>")
    if len(entries) > MAX_PLAN_ROWS:
        more = plural(len(entries) - MAX_PLAN_ROWS, "more weight")
        rows.append(f'<tr><td colspan="5"><i>... and {more}</i></td></tr>')
    notes = [raises or "", "custom train_step: it decides what trains" if custom else ""]
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes if n)
    return (
        f'<div class="kerasfreeze-plan"><p><b>{html.escape(head)}</b></p>{notes_html}'
        f"<table>{''.join(rows)}</table></div>"
    )


# -- checks judged on the plan ----------------------------------------------------------
def plan_failure(
    label: str,
    model: str,
    here: str,
    expectation: Expectation,
    halves: Sequence[tuple[Breach, Sequence[Entry], Sequence[Entry]]],
    finding: Finding | None,
) -> str:
    """The message of a check judged on the plan: the helpers' shape (what was expected,
    how many broke it, the offenders grouped by sub-model, the diagnosis), in the future
    tense — nothing has trained yet."""
    lines = heading_lines(
        f"{label} failed before training",
        model,
        expectation,
        halves,
        f"predicted for the next fit() on {here}",
        FUTURE,
    )
    for breach, bad, pool in halves:
        lines += ["", f"Weights that {FUTURE[breach]}:"]
        totals = {name: len(m) for name, m in _groups(pool, model).items()}
        shown = 0
        for name, members in _groups(bad, model).items():
            lines.append(
                f"  {name}: {members_of(len(members), totals.get(name, 0))} {FUTURE[breach]}"
            )
            for entry in members[: max(MAX_WEIGHT_ROWS - shown, 0)]:
                lines.append(f"    {entry.path}: {entry.why}")
            shown += len(members)
        if shown > MAX_WEIGHT_ROWS:
            lines.append(f"  ... {plural(shown - MAX_WEIGHT_ROWS, 'more weight')} not listed")
    lines += findings_lines([finding] if finding else [])
    return "\n".join(lines)


def plan_raises(label: str, model: str, raises: str, finding: Finding | None) -> str:
    """A check judged on a plan whose next fit() raises: nothing can hold."""
    lines = [f"{label} failed before training: the next fit() of model {model!r} raises", raises]
    return "\n".join(lines + findings_lines([finding] if finding else []))


FUTURE = {Breach.MOVED: "will train", Breach.STUCK: "will not train"}


def custom_step_warning(label: str, model: str) -> str:
    return (
        f"{label} on {model!r}: the model has a custom train_step, which decides what "
        "trains; this check is judged on the flags only"
    )
