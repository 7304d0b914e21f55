"""Which weights break a check: the halves of a verdict, from plain changes.

``frozen``: the selected weights that moved (with ``by``: that optimizer updated);
``trains``: the declared-trainable selected weights that did not move; ``trains_only``:
both that and the weights outside the selection (and outside ``allow``) that moved.

Example::

    halves("frozen", selected, everything, set(), None)
    # [(Breach.MOVED, [changes that moved], selected)]

A half says which way it breaks as a :class:`Breach`; its words are the report's
(``engine/messages/reports.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum

from pytest_kerasfreeze.engine.changes import OptimizerRef, WeightChange


class Breach(Enum):
    """How a weight breaks one half of a check."""

    MOVED = "moved"  # it must not move, and it did
    STUCK = "stuck"  # it must train, and it did not move
    UPDATED_BY = "updated_by"  # by=: the named optimizer updated it


Half = tuple[Breach, list[WeightChange], list[WeightChange]]  # (breach, offending, population)


def halves(
    expect: str,
    selected: Sequence[WeightChange],
    everything: Sequence[WeightChange],
    allowed: set[str],
    by: OptimizerRef | None = None,
) -> list[Half]:
    """Every part of the expectation with what broke it (possibly nothing) and the
    weights it looked at. ``allowed``: paths outside the selection that may move."""
    out: list[Half] = []
    if expect in ("trains", "trains_only"):
        pool = [c for c in selected if c.declared_trainable]
        out.append((Breach.STUCK, [c for c in pool if not c.moved], pool))
    if expect == "frozen" and by is not None:
        stepped = [c for c in selected if any(by.matches(m) for m in c.moved_by)]
        out.append((Breach.UPDATED_BY, stepped, list(selected)))
    elif expect == "frozen":
        out.append((Breach.MOVED, [c for c in selected if c.moved], list(selected)))
    if expect == "trains_only":
        inside = {c.path for c in selected} | allowed
        outside = [c for c in everything if c.path not in inside]
        out.append((Breach.MOVED, [c for c in outside if c.moved], outside))
    return out


def foreseen(failed: Sequence[Half], predicted: Mapping[str, tuple[bool, str]]) -> dict[str, str]:
    """The plan's *why* of each offending weight whose fate the plan foresaw (it said
    "will train" of one that moved, "will not" of one that did not)."""
    return {
        c.path: predicted[c.path][1]
        for breach, bad, _ in failed
        for c in bad
        if c.path in predicted and predicted[c.path][0] == (breach is not Breach.STUCK)
    }
