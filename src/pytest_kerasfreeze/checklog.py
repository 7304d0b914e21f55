"""The log of checks made during one test, reachable from anywhere while it runs.

The plugin makes a :class:`CheckLog` current for each test; every check — a marker's,
``assert_frozen``/``assert_trains``, ``WeightDiff.assert_*`` — and every recorded
training call adds a JSON-ready entry to it, which the terminal and JSON reports read.
Outside a test (a plain script) there is no current log and nothing is noted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_kerasfreeze.diagnosis import Finding
    from pytest_kerasfreeze.provenance import Provenance
    from pytest_kerasfreeze.weightdiff import WeightDiff

# The logs made current, innermost last. A plain list, not a ContextVar: a test that
# trains in a thread of its own must still find its log (pytest runs one test at a
# time per process; pytester runs nest).
_CURRENT: list[CheckLog] = []


def selector_text(selectors: Sequence[Any]) -> str:
    """``'base', 'head'`` — how selectors are shown in labels and messages."""
    return ", ".join(repr(getattr(s, "name", s)) for s in selectors)


class CheckLog:
    """Checks and training records of one test, as plain JSON-ready dicts."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        # (id of the model, finding) in the order found, for the checks that follow
        self.diagnosed: list[tuple[int, Finding]] = []
        self.provenance: Provenance | None = None

    def add_finding(self, model: Any, finding: Finding) -> None:
        self.diagnosed.append((id(model), finding))
        entry = finding.to_dict()
        if not any(
            (f["kind"], f["model"], f["summary"])
            == (entry["kind"], entry["model"], entry["summary"])
            for f in self.findings
        ):
            self.findings.append(entry)

    def findings_for(self, model: Any, since: int = 0) -> list[Finding]:
        return [f for model_id, f in self.diagnosed[since:] if model_id == id(model)]

    def make_current(self) -> None:
        _CURRENT.append(self)

    def reset(self) -> None:
        if self in _CURRENT:
            _CURRENT.remove(self)

    def has_data(self) -> bool:
        return bool(self.checks or self.records or self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"checks": self.checks, "records": self.records, "findings": self.findings}


def current() -> CheckLog | None:
    return _CURRENT[-1] if _CURRENT else None


def counts(diff: WeightDiff, layers: Sequence[Any] = ()) -> dict[str, Any]:
    """Moved/total of the weights of ``layers`` (all if none), and every sub-model's."""
    changes = diff.select(*layers)
    return {
        "moved": sum(c.moved for c in changes),
        "total": len(changes),
        "by_submodel": {p: [m, t] for p, (m, t) in diff.by_submodel().items()},
    }


def note_check(
    source: str,
    expect: str,
    diff: WeightDiff,
    layers: Sequence[Any],
    failure: str | None,
    call: str | None = None,
) -> None:
    """Add one check's outcome to the current log, if a test is running."""
    log = current()
    if log is None:
        return
    if source.startswith("@pytest.mark."):
        kind, label = "marker", source
    else:
        kind = "helper" if source.startswith("assert_") else "diff"
        label = f"{source}({selector_text(layers)})"
    log.checks.append(
        {
            "source": kind,
            "check": label,
            "expect": expect,
            "model": diff.model_name,
            "call": call,
            "layers": [str(getattr(s, "name", s)) for s in layers] or ["<whole model>"],
            "atol": diff.atol,
            "rtol": diff.rtol,
            "passed": failure is None,
            **counts(diff, layers),
            "failure": failure,
        }
    )


def note_unchecked(
    kind: str, label: str, layers: Sequence[Any], atol: float, rtol: float, failure: str
) -> None:
    """Note a strict marker that checked nothing: a failed check with no model."""
    log = current()
    if log is None:
        return
    log.checks.append(
        {
            "source": "marker",
            "check": label,
            "expect": kind,
            "model": None,
            "call": None,
            "layers": [str(getattr(s, "name", s)) for s in layers],
            "atol": atol,
            "rtol": rtol,
            "passed": False,
            "checked_nothing": True,
            "moved": 0,
            "total": 0,
            "by_submodel": {},
            "failure": failure,
        }
    )
