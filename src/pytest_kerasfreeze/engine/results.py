"""The results of one test, as typed records with one JSON form each.

:class:`CheckResult` (one check: a marker's, a helper's, a ``WeightDiff.assert_*``, a
guard's), :class:`CallRecord` (one training call recorded for ``weight_tracker``) and
:class:`TestResults` (everything of one test). Their ``to_json()`` is the only place
the JSON shapes are written; the terminal section and the ``--kerasfreeze-json`` file
read those shapes (they travel between pytest-xdist processes as plain data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_kerasfreeze.engine.changes import WeightChange
from pytest_kerasfreeze.engine.findings import Finding

SCHEMA_VERSION = 2  # of each test's entry in the JSON file ("schema")

CheckSource = Literal["marker", "helper", "diff", "guard"]
Expect = Literal["frozen", "trains", "trains_only", "inference_mode"]


def counts_json(by_submodel: dict[str, tuple[int, int]]) -> dict[str, dict[str, int]]:
    """``{path: (moved, total)}`` in its one JSON shape: ``{path: {"moved", "total"}}``."""
    return {path: {"moved": m, "total": t} for path, (m, t) in by_submodel.items()}


@dataclass(frozen=True)
class DiffFigures:
    """The figures of a judged diff — never its values: what pictures and HTML reports
    of a check are drawn from, kept until the test ends."""

    model: str
    changes: tuple[WeightChange, ...]
    by_submodel: dict[str, tuple[int, int]]
    findings: tuple[Finding, ...] = ()

    def to_json(self, atol: float = 0.0, rtol: float = 0.0) -> dict[str, Any]:
        """``WeightDiff.to_dict()``: every weight and every sub-model's counts."""
        return {
            "model": self.model,
            "atol": atol,
            "rtol": rtol,
            "moved": sum(c.moved for c in self.changes),
            "total": len(self.changes),
            "weights": [c.to_dict() for c in self.changes],
            "by_submodel": counts_json(self.by_submodel),
        }


@dataclass
class CheckResult:
    """One check made during a test, and its outcome.

    Example::

        CheckResult(source="helper", check="assert_frozen('base')", expect="frozen",
                    model="clf", moved=0, total=2, passed=True)
    """

    source: CheckSource
    check: str
    expect: Expect
    model: str | None
    moved: int
    total: int
    passed: bool
    call: str | None = None
    layers: list[str] = field(default_factory=list)
    atol: float = 0.0
    rtol: float = 0.0
    by_submodel: dict[str, tuple[int, int]] = field(default_factory=dict)
    failure: str | None = None
    checked_nothing: bool = False
    movers: dict[str, list[str]] = field(default_factory=dict)  # weight path -> movers
    # what a picture or an HTML report of the check needs (not in the JSON)
    figures: DiffFigures | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "check": self.check,
            "expect": self.expect,
            "model": self.model,
            "call": self.call,
            "layers": list(self.layers),
            "atol": self.atol,
            "rtol": self.rtol,
            "passed": self.passed,
            "checked_nothing": self.checked_nothing,
            "moved": self.moved,
            "total": self.total,
            "by_submodel": counts_json(self.by_submodel),
            "movers": {path: list(m) for path, m in self.movers.items()},
            "failure": self.failure,
        }


@dataclass
class CallRecord:
    """One ``fit()`` / ``train_on_batch()`` recorded for the ``weight_tracker`` fixture."""

    model: str
    method: str
    moved: int
    total: int
    by_submodel: dict[str, tuple[int, int]]
    findings: list[str] = field(default_factory=list)  # summaries
    movers: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.method,
            "moved": self.moved,
            "total": self.total,
            "by_submodel": counts_json(self.by_submodel),
            "movers": {path: list(m) for path, m in self.movers.items()},
            "findings": list(self.findings),
        }


@dataclass
class TestResults:
    """Every check, recorded call and finding of one test."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    checks: list[CheckResult] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def add_finding(self, finding: Finding) -> None:
        if all(f.key != finding.key for f in self.findings):
            self.findings.append(finding)

    def __bool__(self) -> bool:
        return bool(self.checks or self.records or self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "checks": [c.to_json() for c in self.checks],
            "records": [r.to_json() for r in self.records],
            "findings": [f.to_dict() for f in self.findings],
        }
