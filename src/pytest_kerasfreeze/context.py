"""The current test's context: what is recorded for the reports, and the provenance.

The only module that knows "the test that is running". The plugin makes a
:class:`TestContext` current for each test; the user-facing checks (helpers,
``snapshot()``, ``weight_tracker``, markers) hand it to the engine explicitly, so the
engine itself never looks it up. Outside pytest (a plain script) there is none.

It is a plain stack, not a ``ContextVar``: a test that trains in a thread of its own
must still find its context (pytest runs one test at a time per process; a pytester
run inside a test nests one on top).

Example::

    ctx = TestContext()
    activate(ctx)
    try:
        ...  # checks made here are noted in ctx.results
    finally:
        deactivate(ctx)
"""

from __future__ import annotations

from typing import Any

from pytest_kerasfreeze.engine.attribution import AttributionLog
from pytest_kerasfreeze.engine.captures import Mode
from pytest_kerasfreeze.engine.findings import Finding
from pytest_kerasfreeze.engine.provenance import Provenance
from pytest_kerasfreeze.engine.results import CallRecord, CheckResult, TestResults

_ACTIVE: list[TestContext] = []


class TestContext:
    """What one test has recorded: checks, training calls, findings, provenance."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self) -> None:
        self.results = TestResults()
        self.provenance = Provenance()
        self.attribution = AttributionLog()
        # how snapshots are taken when a check does not say (ini kerasfreeze_mode and
        # kerasfreeze_digest_above; None: a quarter of the memory available)
        self.mode: Mode = "auto"
        self.digest_above: int | None = None
        # (id of the model, finding) in the order found, for the checks that follow
        self._diagnosed: list[tuple[int, Finding]] = []

    def add_check(self, result: CheckResult) -> None:
        self.results.checks.append(result)

    def add_record(self, record: CallRecord) -> None:
        self.results.records.append(record)

    def add_finding(self, model: Any, finding: Finding) -> None:
        self._diagnosed.append((id(model), finding))
        self.results.add_finding(finding)

    def mark(self) -> int:
        """A position in the findings, for :meth:`findings_for`."""
        return len(self._diagnosed)

    def findings_for(self, model: Any, since: int = 0) -> list[Finding]:
        """The findings about ``model`` found after position ``since``."""
        return [f for model_id, f in self._diagnosed[since:] if model_id == id(model)]


def current() -> TestContext | None:
    """The context of the test that is running, or ``None`` outside a test."""
    return _ACTIVE[-1] if _ACTIVE else None


def activate(ctx: TestContext) -> None:
    _ACTIVE.append(ctx)


def deactivate(ctx: TestContext) -> None:
    if ctx in _ACTIVE:
        _ACTIVE.remove(ctx)
