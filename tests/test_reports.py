"""--kerasfreeze-report and --kerasfreeze-json, with ini equivalents and pytest-xdist."""

import json

import pytest

SUITE = """
import pytest
from usermodels import make_model, X, Y
from pytest_kerasfreeze import assert_frozen

@pytest.mark.frozen("base")
def test_marker(weight_tracker):
    model = make_model()
    model.fit(X, Y, verbose=0)
    model.train_on_batch(X, Y)

@pytest.mark.frozen("head")
def test_marker_fails():
    make_model().fit(X, Y, verbose=0)

def test_helper():
    assert_frozen(make_model(), "base", x=X, y=Y)

def test_plain():
    pass
"""


@pytest.fixture
def suite(user_project):
    user_project.makepyfile(test_suite=SUITE)
    return user_project


def test_terminal_section(suite):
    result = suite.runpytest("--kerasfreeze-report")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*= kerasfreeze =*",
            "test_suite.py::test_marker (passed)",
            "  PASS  @pytest.mark.frozen('base') on clf.fit(): 0/2 selected weights moved "
            "[base 0/2, head 2/2]",
            "  PASS  @pytest.mark.frozen('base') on clf.train_on_batch(): 0/2 selected weights "
            "moved [base 0/2, head 2/2]",
            "  record clf.fit(): 2/4 weights moved [base 0/2, head 2/2]",
            "  record clf.train_on_batch(): 2/4 weights moved [base 0/2, head 2/2]",
            "test_suite.py::test_marker_fails (failed)",
            "  FAIL  @pytest.mark.frozen('head') on clf.fit(): 2/2 selected weights moved "
            "[head 2/2]",
            "test_suite.py::test_helper (passed)",
            "  PASS  assert_frozen('base') on 'clf': 0/2 selected weights moved [base 0/2]",
            "4 checks (1 failed), 2 training calls recorded, 0 findings, in 3 tests",
        ]
    )
    assert "test_plain" not in result.stdout.str()


def test_terminal_section_is_off_by_default_and_silent_without_checks(suite):
    result = suite.runpytest()
    assert "= kerasfreeze =" not in result.stdout.str()
    quiet = suite.runpytest("--kerasfreeze-report", "-k", "plain")
    quiet.assert_outcomes(passed=1, deselected=3)
    assert "= kerasfreeze =" not in quiet.stdout.str()


def test_ini_turns_the_section_on(suite):
    suite.makeini("[pytest]\nkerasfreeze_report = true\n")
    result = suite.runpytest("-k", "helper")
    result.stdout.fnmatch_lines(["*= kerasfreeze =*", "  PASS  assert_frozen('base')*"])


def check_json(path):
    data = json.loads(path.read_text())
    assert set(data) == {
        "test_suite.py::test_marker",
        "test_suite.py::test_marker_fails",
        "test_suite.py::test_helper",
    }
    marker = data["test_suite.py::test_marker"]
    assert marker["outcome"] == "passed"
    assert [c["call"] for c in marker["checks"]] == ["clf.fit()", "clf.train_on_batch()"]
    assert marker["checks"][0]["source"] == "marker"
    assert marker["checks"][0]["by_submodel"] == {
        "base": {"moved": 0, "total": 2},
        "base/base_dense": {"moved": 0, "total": 2},
        "head": {"moved": 2, "total": 2},
    }
    assert [(r["model"], r["method"], r["moved"], r["total"]) for r in marker["records"]] == [
        ("clf", "fit", 2, 4),
        ("clf", "train_on_batch", 2, 4),
    ]
    assert marker["findings"] == []
    failed = data["test_suite.py::test_marker_fails"]
    assert failed["outcome"] == "failed"
    [check] = failed["checks"]
    assert check["passed"] is False
    assert check["failure"].startswith("@pytest.mark.frozen('head') failed on clf.fit()")
    helper = data["test_suite.py::test_helper"]["checks"][0]
    assert (helper["source"], helper["check"], helper["passed"]) == (
        "helper", "assert_frozen('base')", True
    )  # fmt: skip
    return data


def test_json_report(suite):
    result = suite.runpytest("--kerasfreeze-json=reports/kf.json")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["kerasfreeze: JSON report written to *reports/kf.json"])
    check_json(suite.path / "reports" / "kf.json")


def test_json_report_from_ini(suite):
    suite.makeini("[pytest]\nkerasfreeze_json = from_ini.json\n")
    suite.runpytest()
    check_json(suite.path / "from_ini.json")


def test_json_report_merged_across_xdist_workers(suite):
    result = suite.runpytest("-n", "2", "--kerasfreeze-json=kf.json", "--kerasfreeze-report")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*= kerasfreeze =*", "4 checks (1 failed)*"])
    check_json(suite.path / "kf.json")


def test_bad_trap_option_values(suite):
    result = suite.runpytest("--kerasfreeze-trap=loud")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kerasfreeze-trap: invalid choice: 'loud'*"])
    suite.makeini("[pytest]\nkerasfreeze_trap = loud\n")
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*kerasfreeze_trap = 'loud' is not valid: use one of warn, error, ignore*"]
    )
