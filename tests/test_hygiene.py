"""Patch hygiene: whatever a test does — pass, fail, error, get interrupted inside fit()
by a callback — the plugin puts every Keras attribute back (identity) and nothing leaks
into the next test, in any order and across xdist workers. Nested checks work."""

import os

import pytest

from conftest import INNER_PLUGINS
from kmodels import HYGIENE_CONFTEST, base_and_head, data
from pytest_kerasfreeze import WeightTracker, assert_frozen, assert_trains

SUITE = """
import warnings
import pytest
from usermodels import make_model, X, Y, keras

class Boom(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise KeyError("from a callback")

@pytest.mark.frozen("base")
def test_passes(weight_tracker):
    assert weight_tracker.records == []
    make_model().fit(X, Y, verbose=0)
    assert len(weight_tracker.records) == 1

@pytest.mark.frozen("head")
def test_fails_in_fit():
    make_model().fit(X, Y, verbose=0)

@pytest.fixture
def broken():
    raise RuntimeError("fixture error")

@pytest.mark.trains("head")
def test_errors_in_setup(broken):
    pass

@pytest.mark.frozen("base")
def test_interrupted_inside_fit(weight_tracker):
    with pytest.raises(KeyError, match="from a callback"):
        make_model().fit(X, Y, verbose=0, callbacks=[Boom()])
    assert weight_tracker.records == []  # the call never finished: nothing recorded
    make_model().fit(X, Y, verbose=0)

def test_trap_warns(weight_tracker, recwarn):  # asks for a check: warned for every trap
    model = make_model()
    model.get_layer("head").trainable = False
    model.fit(X, Y, verbose=0)
    assert [w.category.__name__ for w in recwarn].count("CompileOrderWarning") == 1

def test_nothing_leaked(weight_tracker, recwarn):
    assert weight_tracker.records == []
    assert [w for w in recwarn if "kerasfreeze" in str(w.category)] == []
    make_model().fit(X, Y, verbose=0)  # no marker applies here
    assert len(weight_tracker.records) == 1
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
@pytest.mark.parametrize("seed", ["1", "2"])
def test_every_test_leaves_keras_as_it_found_it(user_project, monkeypatch, workers, seed):
    # this one wants the random order that the other pytester tests turn off
    plugins = INNER_PLUGINS if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else ""
    monkeypatch.setenv("PYTEST_ADDOPTS", plugins)
    user_project.makeconftest(HYGIENE_CONFTEST)
    user_project.makepyfile(test_suite=SUITE)
    result = user_project.runpytest("-p", "randomly", f"--randomly-seed={seed}", *workers)
    result.assert_outcomes(passed=4, failed=1, errors=1)
    assert "left patched" not in result.stdout.str()


def test_nested_checks_on_the_same_and_different_models():
    model, _ = base_and_head(freeze_base=True)
    other, _ = base_and_head(freeze_base=False, name="other")
    x, y = data()
    tracker = WeightTracker()
    with (
        tracker.watch(model) as outer,
        assert_frozen(model, "base"),
        assert_trains(model, "head") as inner_check,
    ):
        with tracker.watch(other) as other_diff:
            model.fit(x, y, verbose=0)
            other.fit(x, y, verbose=0)
        with assert_frozen(model, "base"):
            model.train_on_batch(x, y)
    assert outer.by_submodel()["base"] == (0, 6)
    assert outer.by_submodel()["head"] == (2, 2)
    assert inner_check.diff.by_submodel()["head"] == (2, 2)
    assert other_diff.by_submodel()["base"][0] > 0
