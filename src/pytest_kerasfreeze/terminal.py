"""Session-wide results: the "kerasfreeze" terminal section and the JSON file.

Each test's results travel on its teardown report as the plain attribute
``kerasfreeze`` (their JSON form, so pytest-xdist carries them from the workers to the
controller unchanged); the process that shows the terminal collects them here.

Example::

    session = SessionResults()
    session.add(report)              # every test report, any phase, any process
    print("\\n".join(session.summary_lines()))
    session.write_json(Path("kerasfreeze.json"))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_kerasfreeze.engine.findings import COMPILE_ORDER
from pytest_kerasfreeze.engine.messages import reports

REPORT_ATTR = "kerasfreeze"


class SessionResults:
    """Every test's checks, records and findings (their JSON form), keyed by node id."""

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, str] = {}

    def add(self, report: Any) -> None:
        """Take what a test report carries (any phase, any process)."""
        previous = self.outcomes.get(report.nodeid, "passed")
        if hasattr(report, "wasxfail") and report.when == "call":
            self.outcomes[report.nodeid] = "xfailed" if report.outcome == "skipped" else "xpassed"
        elif report.outcome == "failed" or previous == "failed":
            outcome = "failed" if report.when == "call" or previous == "failed" else "error"
            self.outcomes[report.nodeid] = outcome
        elif report.outcome == "skipped" and report.when != "teardown":
            self.outcomes[report.nodeid] = "skipped"
        else:
            self.outcomes.setdefault(report.nodeid, "passed")
        data = getattr(report, REPORT_ATTR, None)
        if data:
            self.tests[report.nodeid] = data

    def to_json(self) -> dict[str, Any]:
        return {
            nodeid: {"outcome": self.outcomes.get(nodeid, "passed"), **data}
            for nodeid, data in self.tests.items()
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")

    def honoured_trap_lines(self) -> list[str]:
        """The compile-order traps this Keras honoured (the same code trains other
        weights on another Keras): a few lines even without ``--kerasfreeze-report``."""
        found = [
            (nodeid, f["summary"])
            for nodeid, data in self.tests.items()
            for f in data["findings"]
            if f.get("kind") == COMPILE_ORDER and f.get("outcome") == "honoured"
        ]
        return reports.honoured_traps_lines(found)

    def summary_lines(self) -> list[str]:
        """The "kerasfreeze" section; empty when nothing was checked or recorded."""
        lines: list[str] = []
        n_checks = n_failed = n_records = n_findings = 0
        for nodeid, data in self.tests.items():
            body = [reports.check_line(c) for c in data["checks"]]
            body += [reports.record_line(r) for r in data["records"]]
            body += [reports.finding_line(f) for f in data["findings"]]
            lines.append(f"{nodeid} ({self.outcomes.get(nodeid, 'passed')})")
            lines.extend(reports.capped_lines(body))
            n_checks += len(data["checks"])
            n_failed += sum(not c["passed"] for c in data["checks"])
            n_records += len(data["records"])
            n_findings += len(data["findings"])
        if lines:
            lines.append(
                reports.session_summary(n_checks, n_failed, n_records, n_findings, len(self.tests))
            )
        return lines
