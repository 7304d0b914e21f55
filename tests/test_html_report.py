"""Pictures and reports of the checks in a pytest session (issue 16):
--kerasfreeze-plot / --kerasfreeze-plot-all, the JUnit XML properties, pytest-html
extras, and a look at the HTML report in a real browser where one is installed."""

import base64
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib (the extra 'plot')"
)
CHROMIUM = "/usr/bin/chromium"

SUITE = """
import pytest
from usermodels import make_model, X, Y
from pytest_kerasfreeze import assert_frozen

@pytest.mark.frozen("base")
def test_passes():
    make_model().fit(X, Y, verbose=0)

@pytest.mark.frozen("head")
def test_fails():
    make_model().fit(X, Y, verbose=0)

def test_two_helpers():
    model = make_model()
    assert_frozen(model, "base", x=X, y=Y)
    assert_frozen(model, "base", x=X, y=Y)

def test_plain():
    pass
"""
PLAIN = ["--assert=plain"]
# with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 (tox env `noautoload`): pytest-html and the
# pytest-metadata it needs, by name
HTML = ["-p", "metadata", "-p", "html"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []


@pytest.fixture
def suite(user_project):
    user_project.makepyfile(test_suite=SUITE)
    return user_project


def pngs(directory):
    return sorted(p.name for p in Path(directory).glob("*.png"))


@needs_matplotlib
def test_plot_writes_one_png_per_failing_check(suite):
    result = suite.runpytest(*PLAIN, "--kerasfreeze-plot=plots")
    result.assert_outcomes(passed=3, failed=1)
    assert pngs(suite.path / "plots") == ["test_suite.py--test_fails-1.png"]
    assert (suite.path / "plots" / "test_suite.py--test_fails-1.png").read_bytes()[:4] == (
        b"\x89PNG"
    )


@needs_matplotlib
def test_plot_all_writes_one_png_per_check(suite):
    result = suite.runpytest(*PLAIN, "--kerasfreeze-plot=plots", "--kerasfreeze-plot-all")
    result.assert_outcomes(passed=3, failed=1)
    assert pngs(suite.path / "plots") == [
        "test_suite.py--test_fails-1.png",
        "test_suite.py--test_passes-1.png",
        "test_suite.py--test_two_helpers-1.png",
        "test_suite.py--test_two_helpers-2.png",
    ]


@needs_matplotlib
def test_plot_options_from_ini_and_under_xdist(suite):
    suite.makeini("[pytest]\nkerasfreeze_plot = pics/run1\nkerasfreeze_plot_all = true\n")
    result = suite.runpytest(*PLAIN, "-n", "2", "-k", "fails or helpers")
    result.assert_outcomes(passed=1, failed=1)
    assert pngs(suite.path / "pics" / "run1") == [
        "test_suite.py--test_fails-1.png",
        "test_suite.py--test_two_helpers-1.png",
        "test_suite.py--test_two_helpers-2.png",
    ]


def test_plot_all_needs_a_directory(suite):
    result = suite.runpytest(*PLAIN, "--kerasfreeze-plot-all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--kerasfreeze-plot-all*give the directory*--kerasfreeze-plot=DIR*"]
    )


def test_plot_without_matplotlib_is_a_usage_error(suite):
    # sys.modules is restored after an in-process run
    suite.makeconftest("import sys\nsys.modules['matplotlib'] = None\n")
    result = suite.runpytest_inprocess(*PLAIN, "--kerasfreeze-plot=plots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(['*matplotlib*pip install "pytest-kerasfreeze[[]plot[]]"*'])
    assert not (suite.path / "plots").exists()


def test_plot_dir_must_not_be_a_file(suite):
    (suite.path / "plots").write_text("")
    result = suite.runpytest(*PLAIN, "--kerasfreeze-plot=plots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*kerasfreeze_plot*plots is a file*"])


def junit_properties(path):
    cases = ET.parse(path).getroot().iter("testcase")
    return {
        case.get("name"): [(p.get("name"), p.get("value")) for p in case.iter("property")]
        for case in cases
    }


def test_junit_xml_has_each_check_as_a_property(suite):
    result = suite.runpytest(*PLAIN, "--junitxml=junit.xml")
    result.assert_outcomes(passed=3, failed=1)
    assert junit_properties(suite.path / "junit.xml") == {
        "test_passes": [("kerasfreeze", "@pytest.mark.frozen('base') on clf.fit(): PASS (0/2)")],
        "test_fails": [("kerasfreeze", "@pytest.mark.frozen('head') on clf.fit(): FAIL (2/2)")],
        "test_two_helpers": [("kerasfreeze", "assert_frozen('base'): PASS (0/2)")] * 2,
        "test_plain": [],
    }


def html_report_tests(path):
    """``{node id: [result, ...]}`` from pytest-html's report (its JSON data blob)."""
    text = path.read_text()
    [blob] = re.findall(r'data-jsonblob="([^"]*)"', text)
    return json.loads(html.unescape(blob))["tests"]


@needs_matplotlib
def test_pytest_html_report_holds_the_failure_and_its_picture(suite):
    pytest.importorskip("pytest_html")
    result = suite.runpytest(*PLAIN, *HTML, "--html=report.html", "--self-contained-html")
    result.assert_outcomes(passed=3, failed=1)
    tests = html_report_tests(suite.path / "report.html")
    [failed] = tests["test_suite.py::test_fails"]
    [extra] = failed["extras"]
    assert extra["format_type"] == "html"
    content = extra["content"]
    heading = "<h4>pytest-kerasfreeze: @pytest.mark.frozen(&#x27;head&#x27;) on clf.fit()</h4>"
    assert heading in content
    assert "<pre>@pytest.mark.frozen(&#x27;head&#x27;) failed on clf.fit()" in content
    assert "Weights that moved:" in content
    [picture] = re.findall(r'<img src="data:image/png;base64,([^"]+)"', content)
    assert base64.b64decode(picture).startswith(b"\x89PNG")
    assert "data:image/png;base64," in (suite.path / "report.html").read_text()
    for passed in ("test_passes", "test_two_helpers", "test_plain"):
        assert all(r["extras"] == [] for r in tests[f"test_suite.py::{passed}"])


PHASES = """
import pytest
from usermodels import make_model, X, Y
from pytest_kerasfreeze import assert_frozen

@pytest.fixture
def checked_at_teardown():
    model = make_model()
    yield model
    assert_frozen(model, "head", x=X, y=Y)

def test_teardown_fails(checked_at_teardown):
    pass
"""


@needs_matplotlib
def test_pytest_html_extras_of_a_check_failing_at_teardown(user_project):
    pytest.importorskip("pytest_html")
    user_project.makepyfile(test_phases=PHASES)
    result = user_project.runpytest(*PLAIN, *HTML, "--html=report.html", "--junitxml=j.xml")
    result.assert_outcomes(passed=1, errors=1)
    results = html_report_tests(user_project.path / "report.html")[
        "test_phases.py::test_teardown_fails"
    ]
    teardown = [r for r in results if r["testId"].endswith("::teardown")]
    assert teardown and all(len(r["extras"]) == 1 for r in teardown)
    content = teardown[0]["extras"][0]["content"]
    assert "<pre>assert_frozen failed: 2 of 2 weights of &#x27;head&#x27; moved" in content
    assert junit_properties(user_project.path / "j.xml")["test_teardown_fails"] == [
        ("kerasfreeze", "assert_frozen('head'): FAIL (2/2)")
    ]


def test_no_html_extras_without_an_html_report(suite):
    result = suite.runpytest(*PLAIN, "-k", "fails")
    result.assert_outcomes(failed=1, deselected=3)
    assert not list(suite.path.glob("*.html"))


def non_white(png_path):
    """(non-white pixels, pixels close to the Okabe-Ito colours the picture uses)."""
    image = pytest.importorskip("matplotlib.image").imread(png_path)[..., :3]
    pixels = (np.asarray(image) * 255).reshape(-1, 3)
    painted = int((pixels.min(axis=1) < 235).sum())
    from pytest_kerasfreeze.engine.messages.pictures import TRAINABLE
    from pytest_kerasfreeze.engine.plots import COLORS

    green = np.array([int(COLORS[TRAINABLE][i : i + 2], 16) for i in (1, 3, 5)])
    close = int((np.abs(pixels - green).max(axis=1) < 20).sum())
    return painted, close


@needs_matplotlib
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM}")
def test_the_html_report_shows_the_picture_in_a_browser(suite, tmp_path):
    """Open the self-contained report in headless Chromium and look at the screenshot:
    the failing test is expanded, and its picture's green bar (head: 2/2 moved) is on
    screen."""
    pytest.importorskip("pytest_html")
    suite.runpytest(*PLAIN, *HTML, "--html=report.html", "--self-contained-html", "-k", "fails")
    shot = tmp_path / "report.png"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
        "--window-size=1400,2000", (suite.path / "report.html").as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    if os.environ.get("KERASFREEZE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["KERASFREEZE_KEEP_SCREENSHOT"])
    painted, green = non_white(shot)
    assert painted > 20_000  # not a blank page
    assert green > 2_000  # the picture's trainable bar is visible
