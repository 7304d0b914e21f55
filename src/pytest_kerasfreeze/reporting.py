"""The reports' pytest glue: the session-wide results (terminal section, JSON file),
pictures of checks (``--kerasfreeze-plot``), pytest-html extras and JUnit properties.

The plugin module calls these from its hooks; the texts are in ``messages``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_kerasfreeze.engine.messages import errors, pictures
from pytest_kerasfreeze.exceptions import KerasFreezeWarning
from pytest_kerasfreeze.terminal import SessionResults

if TYPE_CHECKING:
    from pytest_kerasfreeze.engine.results import CheckResult

# the PNG of each check drawn so far in this test: a picture is drawn once
PNG_KEY = pytest.StashKey["dict[int, bytes]"]()


def plot_dir_of(config: pytest.Config) -> Path | None:
    """``--kerasfreeze-plot`` / ``kerasfreeze_plot``, relative to where pytest was started."""
    value = config.getoption("kerasfreeze_plot") or config.getini("kerasfreeze_plot")
    return Path(config.invocation_params.dir, value) if value else None


def plot_all(config: pytest.Config) -> bool:
    return bool(config.getoption("kerasfreeze_plot_all") or config.getini("kerasfreeze_plot_all"))


def check_plot_options(config: pytest.Config) -> None:
    directory = plot_dir_of(config)
    if directory is None:
        if plot_all(config):
            raise pytest.UsageError(pictures.plot_all_without_dir())
        return
    from pytest_kerasfreeze.engine import plots

    if not plots.available():
        raise pytest.UsageError(pictures.plot_option_without_matplotlib())
    if directory.exists() and not directory.is_dir():
        raise pytest.UsageError(pictures.plot_dir_is_a_file(directory))


def html_report_on(config: pytest.Config) -> bool:
    """pytest-html is loaded and writes a report in this run."""
    return config.pluginmanager.hasplugin("html") and bool(
        config.getoption("htmlpath", default=None)
    )


def unwritable(path: Path) -> str | None:
    """Why a report could not be written to ``path``, as far as can be told now."""
    if path.is_dir():
        return "it is a directory"
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a directory"
            if not os.access(parent, os.W_OK):
                return f"{parent} is not writable"
            return None
    return None


def check_label(check: CheckResult) -> str:
    return f"{check.check} on {check.call}" if check.call else check.check


def junit_line(check: CheckResult) -> str:
    return pictures.junit_property(check_label(check), check.passed, check.moved, check.total)


def _png(item: pytest.Item, check: CheckResult) -> bytes:
    """The picture of one check (drawn once per test and check)."""
    from pytest_kerasfreeze.engine import plots

    drawn = item.stash.setdefault(PNG_KEY, {})
    if id(check) not in drawn:
        assert check.figures is not None
        title = plots.check_title(check_label(check), check.figures, check.passed)
        drawn[id(check)] = plots.png(check.figures, title=title)
    return drawn[id(check)]


def picture_name(nodeid: str, index: int) -> str:
    """``tests/test_x.py::test_y[a]``, check 1 -> ``tests-test_x.py--test_y_a_-1.png``."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", nodeid.replace("::", "--").replace("/", "-"))
    if len(stem) > pictures.MAX_FILE_STEM:
        digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
        stem = f"{stem[: pictures.MAX_FILE_STEM - 9]}-{digest}"
    return f"{stem}-{index}.png"


def write_pictures(
    item: pytest.Item, directory: Path, checks: list[CheckResult], every: bool
) -> None:
    """One PNG per failing check (``every``: per check), numbered in the test's order."""
    for index, check in enumerate(checks, start=1):
        if check.figures is None or (check.passed and not every):
            continue
        path = directory / picture_name(item.nodeid, index)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png(item, check))
        except OSError as err:
            warnings.warn(KerasFreezeWarning(pictures.plot_write_failed(path, err)), stacklevel=1)


def attach_html_extras(
    item: pytest.Item, report: pytest.TestReport, failing: list[CheckResult]
) -> None:
    """pytest-html: each failing check's report (escaped, in ``<pre>``) and its picture
    (a PNG inlined at full size) go to this phase's report. Through the loaded plugin's
    own ``extras`` module (pytest-html 4): pytest-html is never imported here."""
    from pytest_kerasfreeze.engine import plots

    extras = getattr(item.config.pluginmanager.getplugin("html"), "extras", None)
    if extras is None:  # a pytest-html without the 4.x module layout: no extras
        return

    added = []
    for check in failing:
        label = html.escape(check_label(check))
        parts = [
            f"<h4>{html.escape(pictures.html_extra_heading(check_label(check)))}</h4>",
            f"<pre>{html.escape(check.failure or '')}</pre>",
        ]
        if plots.available():
            picture = base64.b64encode(_png(item, check)).decode("ascii")
            parts.append(
                f'<img src="data:image/png;base64,{picture}" alt="{label}" '
                'style="max-width:100%;border:1px solid #ddd">'
            )
        added.append(extras.html(f'<div class="kerasfreeze">{"".join(parts)}</div>'))
    setattr(report, "extras", [*getattr(report, "extras", []), *added])  # noqa: B010


class SessionHooks:
    """The session-wide half: collects every test's results, writes the reports.

    Registered per config, so it runs in the process that shows the results — the
    controller under pytest-xdist, which receives the workers' reports.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results = SessionResults()

    @staticmethod
    def json_path_of(config: pytest.Config) -> Path | None:
        value = config.getoption("kerasfreeze_json") or config.getini("kerasfreeze_json")
        return Path(config.invocation_params.dir, value) if value else None

    def json_path(self) -> Path | None:
        return self.json_path_of(self.config)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.results.add(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.json_path()
        self.json_error = None
        if path is not None and not hasattr(self.config, "workerinput"):
            try:
                self.results.write_json(path)
            except OSError as err:  # e.g. the directory went away during the run
                self.json_error = errors.json_write_failed(path, err)
                if session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        wanted = self.config.getoption("kerasfreeze_report") or self.config.getini(
            "kerasfreeze_report"
        )
        trap = self.config.getoption("kerasfreeze_trap") or self.config.getini("kerasfreeze_trap")
        if wanted:
            lines = self.results.summary_lines()
        else:  # the traps honoured here, not warned about in tests that asked for nothing
            lines = [] if trap == "ignore" else self.results.honoured_trap_lines()
        if lines:
            terminalreporter.section("kerasfreeze")
            for line in lines:
                terminalreporter.line(line)
        path = self.json_path()
        json_error = getattr(self, "json_error", None)
        if json_error:
            terminalreporter.line(json_error, red=True)
        elif path is not None:
            terminalreporter.line(f"kerasfreeze: JSON report written to {path}")
