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

from pytest_kerasfreeze import reporting
from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.exceptions import KerasFreezeWarning
from pytest_kerasfreeze.terminal import REPORT_ATTR

if TYPE_CHECKING:
    from pytest_kerasfreeze.session import TestObserver
    from pytest_kerasfreeze.tracker import WeightTracker

# The engine (numpy, the Keras adapters) is imported when the first test runs, not when
# the plugin loads: `pytest --co` and projects without Keras pay nothing for it.
MARKER_NAMES = ("frozen", "trains", "trains_only", "inference_mode")
OBSERVER_KEY = pytest.StashKey["TestObserver"]()
# the observer of the test running now (a fixture's teardown may run during another test)
CURRENT_KEY = pytest.StashKey["list[TestObserver]"]()
MARKER_ERROR_KEY = pytest.StashKey[str]()
# how many of the test's checks went into the reports of its earlier phases (pytest-html)
CHECKS_SEEN_KEY = pytest.StashKey[int]()

TRAP_CHOICES = ("warn", "error", "ignore")
MODE_CHOICES = ("copy", "digest", "auto")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kerasfreeze", "Keras freeze checks (pytest-kerasfreeze)")
    group.addoption(
        "--kerasfreeze-trap",
        dest="kerasfreeze_trap",
        choices=TRAP_CHOICES,
        default=None,
        help="what the compile-order trap does: warn, error or ignore (default: in a test "
        "that asks for no check, warn only where this Keras trains weights contrary to their "
        "flags, and list the rest in the terminal summary; in other tests, warn)",
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
    parser.addini("kerasfreeze_trap", "default for --kerasfreeze-trap", default="")
    parser.addini(
        "kerasfreeze_report", "default for --kerasfreeze-report", type="bool", default=False
    )
    group.addoption(
        "--kerasfreeze-plot",
        dest="kerasfreeze_plot",
        metavar="DIR",
        default=None,
        help="write a PNG picture of every failing check to DIR (created), named after "
        "the test: <node id>-<check number>.png (needs matplotlib)",
    )
    group.addoption(
        "--kerasfreeze-plot-all",
        dest="kerasfreeze_plot_all",
        action="store_true",
        default=None,
        help="with --kerasfreeze-plot: a picture of every check, not only the failing ones",
    )
    group.addoption(
        "--kerasfreeze-mode",
        dest="kerasfreeze_mode",
        choices=MODE_CHOICES,
        default=None,
        help="how snapshots keep the weights: copy, digest (a hash and a norm per weight) or "
        "auto (default: copy unless kerasfreeze_digest_above is exceeded)",
    )
    parser.addini("kerasfreeze_mode", "default for --kerasfreeze-mode", default="auto")
    parser.addini(
        "kerasfreeze_digest_above",
        "mode=auto takes digests above this many watched bytes (default: a quarter of the "
        "memory available when the snapshot is taken)",
        default="",
    )
    parser.addini("kerasfreeze_json", "default for --kerasfreeze-json", default="")
    parser.addini("kerasfreeze_plot", "default for --kerasfreeze-plot", default="")
    parser.addini(
        "kerasfreeze_plot_all", "default for --kerasfreeze-plot-all", type="bool", default=False
    )
    _lint_options(parser)


# -- the static check (issue 23): `--kerasfreeze-lint` adds one item per .py/.ipynb file --
def _lint_options(parser: pytest.Parser) -> None:
    parser.getgroup("kerasfreeze").addoption(
        "--kerasfreeze-lint",
        dest="kerasfreeze_lint",
        action="store_true",
        default=None,
        help="add a 'path::kerasfreeze-lint' item per .py/.ipynb file: the freeze mistakes "
        "seen in the source, without running it (as the kerasfreeze-lint command)",
    )
    parser.addini("kerasfreeze_lint", "default for --kerasfreeze-lint", type="bool", default=False)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """With ``--kerasfreeze-lint``: a ``path::kerasfreeze-lint`` item for the file."""
    config = parent.config
    if file_path.suffix not in (".py", ".ipynb"):
        return None
    if not (config.getoption("kerasfreeze_lint") or config.getini("kerasfreeze_lint")):
        return None
    from pytest_kerasfreeze.lint.items import LintFile

    return LintFile.from_parent(parent, path=file_path)


# -- end of the static check ------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    for name in MARKER_NAMES:
        config.addinivalue_line(
            "markers", f"{errors.MARKER_USAGE[name]}: {errors.MARKER_HELP[name]}"
        )
    trap = _trap_option(config) or "warn"
    if trap not in TRAP_CHOICES:
        raise pytest.UsageError(errors.bad_trap_option(trap, TRAP_CHOICES))
    _snapshot_options(config)
    json_path = reporting.SessionHooks.json_path_of(config)
    if json_path is not None and not hasattr(config, "workerinput"):
        problem = reporting.unwritable(json_path)
        if problem:
            raise pytest.UsageError(errors.json_unwritable(json_path, problem))
    reporting.check_plot_options(config)
    config.pluginmanager.register(reporting.SessionHooks(config), "kerasfreeze-session")


def _trap_option(config: pytest.Config) -> str | None:
    """``--kerasfreeze-trap`` / ini ``kerasfreeze_trap`` as the user set it, or ``None``
    where neither was set (the default: harmless to tests that ask for no check)."""
    return config.getoption("kerasfreeze_trap") or config.getini("kerasfreeze_trap") or None


def _snapshot_options(config: pytest.Config) -> tuple[str, int | None]:
    """``kerasfreeze_mode`` and ``kerasfreeze_digest_above`` (validated)."""
    mode = config.getoption("kerasfreeze_mode") or config.getini("kerasfreeze_mode")
    if mode not in MODE_CHOICES:
        raise pytest.UsageError(errors.bad_mode(mode, MODE_CHOICES))
    above = str(config.getini("kerasfreeze_digest_above")).strip()
    if not above:
        return mode, None
    try:
        return mode, int(float(above))
    except ValueError:
        raise pytest.UsageError(errors.bad_digest_above(above)) from None


def _marks(item: pytest.Item) -> list[Any]:
    """The test's ``frozen``/``trains`` marks as they are now, closest first (function,
    class, module), including those added while it runs (``request.applymarker``)."""
    return [mark for name in MARKER_NAMES for mark in item.iter_markers(name)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, Any]:
    if getattr(item, "is_kerasfreeze_lint", False):  # a lint item trains nothing
        return (yield)
    from pytest_kerasfreeze.markers import MarkerUsageError
    from pytest_kerasfreeze.session import TestObserver

    config = item.config
    chosen = _trap_option(config)
    trap: Any = chosen or "warn"  # validated in pytest_configure
    quiet = chosen is None  # tests that ask for no check warn only where a freeze fails
    try:
        observer = TestObserver(trap=trap, marks=lambda: _marks(item), quiet_unasked=quiet)
    except MarkerUsageError as err:
        item.stash[MARKER_ERROR_KEY] = str(err)
        observer = TestObserver(trap=trap, quiet_unasked=quiet)
    observer.context.mode, observer.context.digest_above = _snapshot_options(config)  # type: ignore[assignment]
    item.stash[OBSERVER_KEY] = observer
    running = config.stash.setdefault(CURRENT_KEY, [])
    running.append(observer)
    observer.start()
    _observe_add_marker(item, observer)
    try:
        return (yield)
    finally:
        item.__dict__.pop("add_marker", None)
        running.remove(observer)
        observer.finish()
        # nothing of the test outlives it: pytest keeps every item until the session
        # ends, and the observer holds the test's provenance, records and tracker
        del item.stash[OBSERVER_KEY]


def _observe_add_marker(item: pytest.Item, observer: TestObserver) -> None:
    """``request.applymarker(pytest.mark.frozen(...))`` in a fixture or in the test
    adds a mark while the test runs: take it in at once, so the very next training
    call is checked (and observed, in a test that was left alone so far). Only this
    item's own method is shadowed, and only for its run."""
    original = item.add_marker

    def add_marker(marker: Any, append: bool = True) -> None:
        original(marker, append)
        observer.refresh_markers()

    item.add_marker = add_marker  # type: ignore[method-assign]


def _current_observer(config: pytest.Config) -> TestObserver | None:
    running = config.stash.get(CURRENT_KEY, [])
    return running[-1] if running else None


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: Any
) -> Generator[None, Any, Any]:
    """Training in a fixture of a wider scope than the test (class, module, session) is
    not the test's: markers do not check it, records do not list it — during its
    set-up and its teardown, whichever test happens to run them."""
    observer = _current_observer(request.config)
    if observer is None or fixturedef.scope == "function":
        return (yield)
    config = request.config
    fixturedef.addfinalizer(lambda: _wider_fixture(config, -1))  # runs last at teardown
    observer.wider_fixture += 1
    try:
        return (yield)
    finally:
        observer.wider_fixture -= 1
        fixturedef.addfinalizer(lambda: _wider_fixture(config, +1))  # runs first at teardown


def _wider_fixture(config: pytest.Config, step: int) -> None:
    observer = _current_observer(config)
    if observer is not None:
        observer.wider_fixture = max(0, observer.wider_fixture + step)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    error = item.stash.get(MARKER_ERROR_KEY, None)
    if error is not None:
        pytest.fail(error, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    from pytest_kerasfreeze.markers import MarkerUsageError

    observer = item.stash.get(OBSERVER_KEY, None)
    if observer is not None:
        try:
            observer.refresh_markers()
        except MarkerUsageError as err:
            pytest.fail(str(err), pytrace=False)
    result = yield
    if observer is not None:
        if observer.thread_failures:
            pytest.fail(
                errors.thread_failures([str(e) for e in observer.thread_failures]), pytrace=False
            )
        for message in observer.partly_matched():
            warnings.warn(KerasFreezeWarning(message), stacklevel=1)
        failures = observer.strict_failures()
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    observer = item.stash.get(OBSERVER_KEY, None)
    checks = observer.context.results.checks if observer is not None else []
    if call.when == "teardown" and checks:
        # the JUnit XML reads them from the teardown report, which copies them now
        item.user_properties += [("kerasfreeze", reporting.junit_line(c)) for c in checks]
    report = yield
    if observer is None:
        return report
    seen = item.stash.get(CHECKS_SEEN_KEY, 0)
    item.stash[CHECKS_SEEN_KEY] = len(checks)
    failing = [check for check in checks[seen:] if not check.passed and check.figures]
    if failing and report.failed and reporting.html_report_on(item.config):
        reporting.attach_html_extras(item, report, failing)
    if call.when == "teardown":
        if observer.context.results:
            setattr(report, REPORT_ATTR, observer.context.results.to_json())
        directory = reporting.plot_dir_of(item.config)
        if directory is not None and checks:
            reporting.write_pictures(item, directory, checks, every=reporting.plot_all(item.config))
        # nothing of the test outlives it
        if reporting.PNG_KEY in item.stash:
            del item.stash[reporting.PNG_KEY]
        if CHECKS_SEEN_KEY in item.stash:
            del item.stash[CHECKS_SEEN_KEY]
    return report


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
    observer = request.node.stash.get(OBSERVER_KEY, None)
    if observer is not None:
        observer.attach_tracker(tracker)
    yield tracker
