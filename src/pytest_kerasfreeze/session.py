"""Session-wide results: the terminal summary section and the JSON file.

Each test's log travels on its teardown report as the plain attribute ``kerasfreeze``
(JSON-ready, so pytest-xdist carries it from the workers to the controller unchanged);
the process that shows the terminal collects them in :meth:`SessionResults.add`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORT_ATTR = "kerasfreeze"
_MAX_LINES_PER_TEST = 30


class SessionResults:
    """Every test's checks, records and findings, keyed by node id."""

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

    # -- terminal ------------------------------------------------------------------
    def summary_lines(self) -> list[str]:
        """The "kerasfreeze" section; empty when nothing was checked or recorded."""
        lines: list[str] = []
        n_checks = n_failed = n_records = n_findings = 0
        for nodeid, data in self.tests.items():
            body = [_check_line(c) for c in data["checks"]]
            body += [_record_line(r) for r in data["records"]]
            body += [
                f"  finding  {f.get('kind', '?')}: {f.get('summary', '')}" for f in data["findings"]
            ]
            if len(body) > _MAX_LINES_PER_TEST:
                body = body[:_MAX_LINES_PER_TEST] + [
                    f"  ... and {len(body) - _MAX_LINES_PER_TEST} more"
                ]
            lines.append(f"{nodeid} ({self.outcomes.get(nodeid, 'passed')})")
            lines.extend(body)
            n_checks += len(data["checks"])
            n_failed += sum(not c["passed"] for c in data["checks"])
            n_records += len(data["records"])
            n_findings += len(data["findings"])
        if lines:
            lines.append(
                f"{n_checks} checks ({n_failed} failed), {n_records} training calls recorded, "
                f"{n_findings} findings, in {len(self.tests)} tests"
            )
        return lines


def _submodels(by_submodel: dict[str, list[int]]) -> str:
    top = [(p, mt) for p, mt in by_submodel.items() if "/" not in p]
    text = ", ".join(f"{p} {m}/{t}" for p, (m, t) in top[:6])
    if len(top) > 6:
        text += f", ... {len(top) - 6} more"
    return text


def _check_line(check: dict[str, Any]) -> str:
    status = "PASS" if check["passed"] else "FAIL"
    if check.get("checked_nothing"):
        return f"  {status}  {check['check']} checked nothing: no trained model held its layers"
    where = f" on {check['call']}" if check.get("call") else f" on {check['model']!r}"
    return (
        f"  {status}  {check['check']}{where}: "
        f"{check['moved']}/{check['total']} selected weights moved "
        f"[{_submodels(check['by_submodel'])}]"
    )


def _record_line(record: dict[str, Any]) -> str:
    return (
        f"  record {record['model']}.{record['method']}(): {record['moved']}/{record['total']} "
        f"weights moved [{_submodels(record['by_submodel'])}]"
    )
