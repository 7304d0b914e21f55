"""The pytest side of pytest-kerasfreeze: options, markers, hooks and the fixture.

Only pytest glue lives here; the engine is in modules importable without pytest.
Loading this module imports no Keras or backend: they are imported when a test that
asks for a check (a marker, the ``weight_tracker`` fixture) starts.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_kerasfreeze.exceptions import KerasFreezeWarning
from pytest_kerasfreeze.session import REPORT_ATTR, SessionResults

if TYPE_CHECKING:
    from pytest_kerasfreeze.tracker import WeightTracker

# The engine (numpy, the Keras adapters) is imported when the first test runs, not when
# the plugin loads: `pytest --co` and projects without Keras pay nothing for it.
MARKER_NAMES = ("frozen", "trains")
RUN_KEY = pytest.StashKey["TestRun"]()
MARKER_ERROR_KEY = pytest.StashKey[str]()

TRAP_CHOICES = ("warn", "error", "ignore")

MARKER_HELP = {
    "frozen": "frozen(*layers, atol=0.0, rtol=0.0): every fit()/train_on_batch() of the test "
    "on a model holding these layers must leave their weights unchanged (pytest-kerasfreeze)",
    "trains": "trains(*layers, atol=0.0, rtol=0.0): every fit()/train_on_batch() of the test "
    "on a model holding these layers must move their trainable weights (pytest-kerasfreeze)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kerasfreeze", "Keras freeze checks (pytest-kerasfreeze)")
    group.addoption(
        "--kerasfreeze-trap",
        dest="kerasfreeze_trap",
        choices=TRAP_CHOICES,
        default=None,
        help="what the compile-order trap does: warn (default), error or ignore",
    )
    group.addoption(
        "--kerasfreeze-report",
        dest="kerasfreeze_report",
        action="store_true",
        default=None,
        help="add a 'kerasfreeze' section to the terminal summary: every check, every trap",
    )
    group.addoption(
        "--kerasfreeze-json",
        dest="kerasfreeze_json",
        metavar="PATH",
        default=None,
        help="write every check, record and finding as JSON keyed by test node id",
    )
    parser.addini("kerasfreeze_trap", "default for --kerasfreeze-trap", default="warn")
    parser.addini(
        "kerasfreeze_report", "default for --kerasfreeze-report", type="bool", default=False
    )
    parser.addini("kerasfreeze_json", "default for --kerasfreeze-json", default="")


def pytest_configure(config: pytest.Config) -> None:
    for name in MARKER_NAMES:
        config.addinivalue_line("markers", MARKER_HELP[name])
    trap = config.getoption("kerasfreeze_trap") or config.getini("kerasfreeze_trap")
    if trap not in TRAP_CHOICES:
        raise pytest.UsageError(
            f"kerasfreeze_trap = {trap!r} is not valid: use one of {', '.join(TRAP_CHOICES)}"
        )
    config.pluginmanager.register(SessionHooks(config), "kerasfreeze-session")


def _markers(item: pytest.Item) -> list[Any]:
    from pytest_kerasfreeze.markers import parse_marker

    specs = []
    for name in MARKER_NAMES:
        # closest first: function, then class, then module markers
        for mark in item.iter_markers(name):
            specs.append(parse_marker(name, mark.args, dict(mark.kwargs)))
    return specs


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator:
    from pytest_kerasfreeze.markers import MarkerUsageError
    from pytest_kerasfreeze.testrun import TestRun

    try:
        specs = _markers(item)
    except MarkerUsageError as err:
        item.stash[MARKER_ERROR_KEY] = str(err)
        specs = []
    config = item.config
    trap = config.getoption("kerasfreeze_trap") or config.getini("kerasfreeze_trap")
    run = TestRun(specs, trap=trap)
    item.stash[RUN_KEY] = run
    run.start()
    try:
        return (yield)
    finally:
        run.finish()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    error = item.stash.get(MARKER_ERROR_KEY, None)
    if error is not None:
        pytest.fail(error, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator:
    result = yield
    run = item.stash.get(RUN_KEY, None)
    if run is not None:
        for message in run.partly_matched():
            warnings.warn(KerasFreezeWarning(message), stacklevel=1)
        failures = run.strict_failures()
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator:
    report = yield
    run = item.stash.get(RUN_KEY, None)
    if call.when == "teardown" and run is not None and run.has_data():
        setattr(report, REPORT_ATTR, run.to_dict())
    return report


class SessionHooks:
    """The session-wide half: collects every test's results, writes the reports.

    Registered per config, so it runs in the process that shows the results — the
    controller under pytest-xdist, which receives the workers' reports.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results = SessionResults()

    def json_path(self) -> Path | None:
        value = self.config.getoption("kerasfreeze_json") or self.config.getini("kerasfreeze_json")
        return Path(self.config.invocation_params.dir, value) if value else None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.results.add(report)

    def pytest_sessionfinish(self) -> None:
        path = self.json_path()
        if path is not None and not hasattr(self.config, "workerinput"):
            self.results.write_json(path)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        wanted = self.config.getoption("kerasfreeze_report") or self.config.getini(
            "kerasfreeze_report"
        )
        lines = self.results.summary_lines() if wanted else []
        if lines:
            terminalreporter.section("kerasfreeze")
            for line in lines:
                terminalreporter.line(line)
        path = self.json_path()
        if path is not None:
            terminalreporter.line(f"kerasfreeze: JSON report written to {path}")


@pytest.fixture
def weight_tracker(request: pytest.FixtureRequest) -> Iterator[WeightTracker]:
    """A :class:`~pytest_kerasfreeze.tracker.WeightTracker` for this test.

    ``records`` gets one entry per ``fit()`` / ``train_on_batch()`` of any model during
    the test; ``watch()`` and ``snapshot()`` work around any training code.

    Example::

        def test_base_stays(weight_tracker):
            with weight_tracker.watch(model) as d:
                model.fit(x, y, verbose=0)
            assert d.by_submodel()["base"][0] == 0
            assert weight_tracker.records[0].model == model.name
    """
    from pytest_kerasfreeze.tracker import WeightTracker

    tracker = WeightTracker()
    run = request.node.stash.get(RUN_KEY, None)
    if run is not None:
        run.attach_tracker(tracker)
    yield tracker
