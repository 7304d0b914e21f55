"""Harmless in real suites: whole sessions, run as users run them (pytester), with the
patterns of ordinary test suites that once broke (issue 11): fixtures of wider scopes,
threads, ``request.applymarker``, xfail, unwritable report paths, memory held across
tests."""

import json

import pytest

HEADER = """
import gc, threading, weakref
import numpy as np
import pytest
from usermodels import make_model, X, Y, keras
"""


def run(project, source, *args):
    project.makepyfile(test_user=HEADER + source)
    return project.runpytest("--assert=plain", "-p", "no:randomly", *args)


# -- 2. nothing of a test outlives it ---------------------------------------------------

MEMORY_SUITE = """
REFS = {}

def train_and_keep_a_weak_reference(name):
    model = make_model()
    model.get_layer("head").trainable = False  # an assignment the provenance records
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, verbose=0)
    REFS[name] = weakref.ref(model)

def test_unmarked():
    train_and_keep_a_weak_reference("unmarked")

@pytest.mark.frozen("base")
def test_marked():
    train_and_keep_a_weak_reference("marked")

def test_fixture(weight_tracker):
    train_and_keep_a_weak_reference("fixture")
    record = weight_tracker.records[0]
    assert record.diff.by_submodel()["base"] == (0, 2)  # the figures stay readable
    assert [c.path for c in record.diff.moved()] == []
    with pytest.raises(ValueError, match="kept its figures but not the weights' values"):
        record.diff.with_tolerance(1e-3, 0.0)

def test_every_model_of_the_earlier_tests_is_gone():
    gc.collect()
    keras.backend.clear_session()
    gc.collect()
    alive = sorted(name for name, ref in REFS.items() if ref() is not None)
    assert alive == []
"""


def test_no_model_of_a_test_outlives_it(user_project):
    """Each test's run (provenance, records, tracker) used to stay in ``item.stash``
    until the session ended, keeping every model compiled or trained in any test."""
    result = run(user_project, MEMORY_SUITE)
    result.assert_outcomes(passed=4)


# -- 3. fixtures of wider scopes that train ---------------------------------------------

WIDER_FIXTURE = """
@pytest.fixture(scope="SCOPE")
def pretrained():
    model = make_model()
    model.get_layer("base").trainable = True       # meant: pre-train the base too
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, verbose=0)                      # not the test's training
    model.get_layer("base").trainable = False
    model.compile(optimizer="sgd", loss="mse")
    yield model
    model.get_layer("base").trainable = True        # teardown trains the base again
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, verbose=0)
"""

WIDER_TESTS = """
@pytest.mark.frozen("base")
def test_a_frozen(SELFpretrained, weight_tracker):
    pretrained.fit(X, Y, verbose=0)
    assert [r.model for r in weight_tracker.records] == ["clf"]  # the test's call only

def test_b_unmarked(SELFpretrained):
    pretrained.fit(X, Y, verbose=0)

@pytest.mark.frozen("base")
def test_c_frozen_last(SELFpretrained):
    pretrained.fit(X, Y, verbose=0)
"""


@pytest.mark.parametrize("scope", ["module", "session", "class"])
@pytest.mark.parametrize("order", [[], ["-p", "randomly", "--randomly-seed=3"]])
def test_markers_do_not_check_the_set_up_of_wider_fixtures(user_project, scope, order):
    """A module/session/class fixture that trains (its own set-up and teardown) is not
    the test's training: whichever test first requests it, nothing fails — in any order."""
    fixture = WIDER_FIXTURE.replace("SCOPE", scope)
    if scope == "class":
        body = fixture.replace("def pretrained():", "def pretrained(self):") + WIDER_TESTS
        body = body.replace("SELF", "self, ")
        source = "class TestAll:\n" + "\n".join("    " + line for line in body.splitlines())
    else:
        source = fixture + WIDER_TESTS.replace("SELF", "")
    user_project.makepyfile(test_user=HEADER + source)
    result = user_project.runpytest("--assert=plain", *order)
    result.assert_outcomes(passed=3)


def test_function_scoped_fixture_training_is_still_checked(user_project):
    result = run(
        user_project,
        """
@pytest.fixture(scope="module")
def data():
    model = make_model()
    model.fit(X, Y, verbose=0)   # module set-up: not checked
    return X, Y

@pytest.fixture
def trained(data):
    model = make_model()
    model.get_layer("base").trainable = True
    model.compile(optimizer="sgd", loss="mse")
    model.fit(*data, verbose=0)  # the test's own set-up: checked
    return model

@pytest.mark.frozen("base")
def test_it(trained):
    pass
""",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.frozen('base') failed on clf.fit(): 2 of 2 weights of 'base' moved*"]
    )


# -- 4. a JSON report that cannot be written --------------------------------------------


@pytest.mark.parametrize("where", ["directory", "under a file"])
def test_unwritable_json_path_is_a_usage_error(user_project, where):
    user_project.mkdir("reports")
    (user_project.path / "afile").write_text("x")
    path = "reports" if where == "directory" else "afile/out.json"
    user_project.makepyfile(test_user="def test_it():\n    pass\n")
    result = user_project.runpytest(f"--kerasfreeze-json={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = "is a directory" if where == "directory" else "afile is a file, not a directory"
    result.stderr.fnmatch_lines(
        [f"*--kerasfreeze-json / kerasfreeze_json: cannot write the JSON report to *{expected}*"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# -- 7. lazily built models are no compile-order trap, even as an error ------------------


def test_lazily_built_models_pass_under_trap_error(user_project):
    """Models built by their first fit() (no Input; a subclassed model with build()),
    compiled once and trained twice with no flag touched: nothing to report, even when
    the trap is an error. The plugin once took the weights created by the first fit()
    for flags changed after compile()."""
    result = run(
        user_project,
        """
class BuiltLater(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))

def no_input():
    model = keras.Sequential()
    model.add(keras.layers.Dense(8, activation="relu"))
    model.add(keras.layers.Dense(1))
    return model

@pytest.mark.parametrize("make", [no_input, BuiltLater])
def test_trained_twice(make):
    model = make()
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, verbose=0)
    model.fit(X, Y, verbose=0)
""",
        "--kerasfreeze-trap=error",
        "-W",
        "error::pytest_kerasfreeze.CompileOrderWarning",
    )
    result.assert_outcomes(passed=2)


# -- 8. the first fit() happened before the test ----------------------------------------


def test_trap_when_the_model_was_trained_before_the_test(user_project):
    result = run(
        user_project,
        """
import os
from pytest_kerasfreeze.traps import TRAP_SEMANTICS

RUNTIME = "tf_keras" if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else keras.backend.backend()

PRETRAINED = make_model()
PRETRAINED.get_layer("base").trainable = True
PRETRAINED.compile(optimizer="sgd", loss="mse")
PRETRAINED.fit(X, Y, verbose=0)   # at import time: the train function exists already

@pytest.fixture(scope="module")
def shared():
    model = make_model()
    model.get_layer("base").trainable = True
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, verbose=0)
    return model

def test_first_user_of_the_fixture(shared):
    pass

@pytest.mark.parametrize("which", ["import", "fixture"])
def test_freeze_now(which, shared, weight_tracker):
    model = PRETRAINED if which == "import" else shared
    if getattr(model, "_compiled_trainable_state", None) is None:
        pytest.skip("this Keras keeps no record of the flags at compile() (Keras 3.8)")
    outcome, behaviour = TRAP_SEMANTICS[(RUNTIME, "after-build", "freeze")]
    before = [np.array(w) for w in model.get_layer("base").get_weights()]
    model.get_layer("base").trainable = False
    with pytest.warns(Warning) as warned:
        try:
            model.fit(X, Y, verbose=0)
        except Exception as err:
            assert outcome == "raises", err
            assert "compile-order trap" in "\\n".join(err.__notes__)
            return
    [text] = [str(w.message) for w in warned if type(w.message).__name__ == "CompileOrderWarning"]
    assert "after its train function was built (before this test" in text, text
    assert behaviour in text
    after = model.get_layer("base").get_weights()
    moved = any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert moved is (outcome == "ignored"), (outcome, moved)
""",
    )
    outcomes = result.parseoutcomes()
    assert (
        outcomes.get("failed", 0) == 0
        and outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 3
    ), outcomes


# -- 10. a violation inside a thread ----------------------------------------------------


def test_a_marker_violation_in_a_thread_fails_the_test(user_project):
    result = run(
        user_project,
        """
@pytest.mark.frozen("head")
def test_threaded():
    model = make_model()
    thread = threading.Thread(target=lambda: model.fit(X, Y, verbose=0))
    thread.start()
    thread.join()
""",
        "--kerasfreeze-json=out.json",
        "-W",
        "ignore::pytest.PytestUnhandledThreadExceptionWarning",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*a marker check failed in a thread the test started:*",
            "*@pytest.mark.frozen('head') failed on clf.fit(): 2 of 2 weights of 'head' moved*",
        ]
    )
    data = json.loads((user_project.path / "out.json").read_text())
    [check] = data["test_user.py::test_threaded"]["checks"]
    assert check["passed"] is False and check["check"] == "@pytest.mark.frozen('head')"


# -- 11. request.applymarker ------------------------------------------------------------


def test_markers_applied_at_run_time_are_checked(user_project):
    result = run(
        user_project,
        """
@pytest.fixture
def frozen_head(request):
    request.applymarker(pytest.mark.frozen("head"))

def test_from_a_fixture(frozen_head):
    make_model().fit(X, Y, verbose=0)   # head moves: fails

def test_from_the_test(request):
    request.applymarker(pytest.mark.frozen("base"))
    make_model().fit(X, Y, verbose=0)   # base is frozen: passes

def test_applied_but_nothing_trained(request):
    request.applymarker(pytest.mark.trains("head"))
""",
        "--kerasfreeze-trap=ignore",
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_from_a_fixture _*",
            "*@pytest.mark.frozen('head') failed on clf.fit()*",
            "*_ test_applied_but_nothing_trained _*",
            "*@pytest.mark.trains('head') checked nothing*",
        ]
    )


# -- 14. strict markers in the reports, "Did you mean", xfail ---------------------------


def test_a_marker_that_checked_nothing_is_reported(user_project):
    result = run(
        user_project,
        """
@pytest.mark.frozen("bsae")
def test_typo():
    make_model().fit(X, Y, verbose=0)

@pytest.mark.xfail(reason="the head trains", strict=True)
@pytest.mark.frozen("head")
def test_expected_to_fail():
    make_model().fit(X, Y, verbose=0)
""",
        "--kerasfreeze-report",
        "--kerasfreeze-json=out.json",
    )
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.frozen('bsae') checked nothing: no model trained in this test holds "
            "a layer with weights matching 'bsae'. Did you mean 'base'?",
            "*= kerasfreeze =*",
            "test_user.py::test_typo (failed)",
            "  FAIL  @pytest.mark.frozen('bsae') checked nothing: no trained model held its layers",
            "test_user.py::test_expected_to_fail (xfailed)",
        ]
    )
    data = json.loads((user_project.path / "out.json").read_text())
    [check] = data["test_user.py::test_typo"]["checks"]
    assert check["checked_nothing"] is True and check["passed"] is False
    assert "Did you mean 'base'?" in check["failure"]
    assert data["test_user.py::test_expected_to_fail"]["outcome"] == "xfailed"


# -- round 3, issue 20 (8): harmless under -W error ---------------------------------------

HONOURED_HERE = """
import os
import numpy as np

RUNTIME = "tf_keras" if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else keras.backend.backend()

def test_unfreeze_between_compile_and_fit():
    model = make_model()
    base = model.get_layer("base")
    base.trainable = True  # after compile(), before the first fit()
    before = {id(v): np.array(v.numpy(), copy=True) for v in base.weights}
    model.fit(X, Y, verbose=0)
    moved = [not np.array_equal(before[id(v)], v.numpy()) for v in base.weights]
    # the truth on this Keras: Keras 3 honours the change, tf_keras keeps the base frozen
    assert moved == [RUNTIME != "tf_keras"] * 2
"""


def test_an_unmarked_change_this_keras_honours_is_no_warning_under_w_error(user_project):
    import os

    legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    user_project.makeini("[pytest]\nfilterwarnings =\n    error\n    ignore::DeprecationWarning\n")
    user_project.makepyfile(test_user=HEADER + HONOURED_HERE)
    # without the plugin, in a process of its own (this test's own plugin stays out of it)
    without = user_project.runpytest_subprocess("-p", "no:kerasfreeze", "-p", "no:randomly")
    without.assert_outcomes(passed=1)
    result = run(user_project, HONOURED_HERE, "--kerasfreeze-json=out.json")
    if legacy:  # tf_keras keeps the base it was told to unfreeze: the one warning left
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["*CompileOrderWarning: clf: 2 weights unfrozen after compile()*"]
        )
        return
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= kerasfreeze =*",
            "1 trainable change made after compile() or after the first fit() that this Keras "
            "honours and another Keras does not (the same code trains other weights there):",
            "  test_user.py::test_unfreeze_between_compile_and_fit: clf: 2 weights unfrozen "
            "after compile() (set at test_user.py:*); Keras 3* honoured",
        ]
    )
    data = json.loads((user_project.path / "out.json").read_text())
    [finding] = data["test_user.py::test_unfreeze_between_compile_and_fit"]["findings"]
    assert (finding["kind"], finding["outcome"]) == ("compile-order trap", "honoured")


@pytest.mark.parametrize(
    "how", ["marker", "--kerasfreeze-trap=warn", "kerasfreeze_trap = warn"]
)  # fmt: skip
def test_a_test_that_asks_or_an_explicit_trap_setting_still_warns(user_project, how):
    source = HONOURED_HERE
    args = ["-W", "error::pytest_kerasfreeze.CompileOrderWarning"]
    if how == "marker":
        source = source.replace(
            "def test_unfreeze_between", '@pytest.mark.trains("head")\ndef test_unfreeze_between'
        )
    elif how.startswith("--"):
        args.append(how)
    else:
        user_project.makeini(f"[pytest]\n{how}\n")
    result = run(user_project, source, *args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CompileOrderWarning: clf: 2 weights unfrozen after compile()*"])
