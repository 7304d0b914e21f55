"""@pytest.mark.frozen / trains and weight_tracker.records, run as users run them."""

import pytest

from kmodels import HYGIENE_CONFTEST

HEADER = """
import pytest
from usermodels import make_model, X, Y, keras
"""


def run(project, source, *args):
    project.makepyfile(test_user=HEADER + source)
    return project.runpytest("--assert=plain", *args)


def test_passing_markers(user_project):
    result = run(
        user_project,
        """
@pytest.mark.frozen("base")
def test_fit():
    make_model().fit(X, Y, epochs=2, verbose=0)

@pytest.mark.trains("head")
def test_train_on_batch():
    make_model().train_on_batch(X, Y)

@pytest.mark.frozen("base/base_dense", atol=1e-9)
@pytest.mark.trains("hea?")
def test_stacked():
    make_model().fit(X, Y, verbose=0)
""",
    )
    result.assert_outcomes(passed=3)


def test_violated_frozen_marker_fails_at_the_users_fit_call(user_project):
    result = run(
        user_project,
        """
@pytest.mark.frozen("head")
def test_head_should_not_move():
    model = make_model()
    model.fit(X, Y, verbose=0)  # the offending line
    raise AssertionError("never reached: fit() raised")
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            ">*model.fit(X, Y, verbose=0)  # the offending line",
            "E*FreezeAssertionError: @pytest.mark.frozen('head') failed on clf.fit(): "
            "2 of 2 weights of 'head' moved in model 'clf'",
            "E*Expected: no weight of 'head' moves (exact: any change of value counts)",
            "E*head/kernel*(4, 1)*float32*",
        ]
    )
    assert "never reached" not in result.stdout.str()
    assert "session.py" not in result.stdout.str()  # plugin frames are hidden


def test_violated_trains_marker_on_train_on_batch(user_project):
    result = run(
        user_project,
        """
@pytest.mark.trains("base")
def test_base_should_train():
    make_model().train_on_batch(X, Y)
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*@pytest.mark.trains('base') failed on clf.train_on_batch(): 2 of 2 "
            "declared-trainable weights of 'base' did not move in model 'clf'",
            "E*base/base_dense/kernel*frozen",
        ]
    )


def test_strict_marker_that_matched_nothing_fails(user_project):
    result = run(
        user_project,
        """
@pytest.mark.frozen("encoder")
def test_typo():
    make_model().fit(X, Y, verbose=0)

@pytest.mark.trains("head")
def test_trains_nothing():
    make_model()
""",
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_typo _*",
            "@pytest.mark.frozen('encoder') checked nothing: no model trained in this test "
            "holds a layer with weights matching 'encoder'.",
            "Models trained in this test:",
            "  'clf' (fit ×1): layers input*, base, base/input*, base/base_dense, head",
            "Fix the layer names of the marker, or train the model it is meant for.",
            "*_ test_trains_nothing _*",
            "@pytest.mark.trains('head') checked nothing*",
            "No model was trained in this test: no fit() or train_on_batch() ran.",
        ]
    )


def test_partly_matched_marker_warns(user_project):
    result = run(
        user_project,
        """
@pytest.mark.frozen("base", "decoder")
def test_half():
    make_model().fit(X, Y, verbose=0)
""",
    )
    result.assert_outcomes(passed=1)  # (some backends add their own DeprecationWarnings)
    result.stdout.fnmatch_lines(
        [
            "*KerasFreezeWarning: @pytest.mark.frozen('base', 'decoder'): 'decoder' matched no "
            "layer of any model trained in this test"
        ]
    )


def test_class_and_module_markers(user_project):
    result = run(
        user_project,
        """
pytestmark = pytest.mark.frozen("base")

class TestHead:
    pytestmark = pytest.mark.trains("head")

    def test_fit(self, weight_tracker):
        make_model().fit(X, Y, verbose=0)
        # both markers checked this call
        assert len(weight_tracker.records) == 1

    @pytest.mark.frozen("head")
    def test_function_marker_adds_to_them(self):
        make_model().fit(X, Y, verbose=0)

def test_module_marker_alone():
    make_model().train_on_batch(X, Y)
""",
        "--kerasfreeze-json=out.json",
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.frozen('head') failed on clf.fit()*"])
    import json

    data = json.loads((user_project.path / "out.json").read_text())
    fit_checks = data["test_user.py::TestHead::test_fit"]["checks"]
    assert sorted(c["check"] for c in fit_checks) == [
        "@pytest.mark.frozen('base')",
        "@pytest.mark.trains('head')",
    ]
    stacked = data["test_user.py::TestHead::test_function_marker_adds_to_them"]["checks"]
    assert len(stacked) == 3
    assert [c["check"] for c in data["test_user.py::test_module_marker_alone"]["checks"]] == [
        "@pytest.mark.frozen('base')"
    ]


@pytest.mark.parametrize("trap", ["warn", "ignore"])
def test_failing_marked_test_then_unmarked_test_is_not_checked(user_project, trap):
    user_project.makeconftest(HYGIENE_CONFTEST)
    result = run(
        user_project,
        """
from conftest import patched

@pytest.mark.frozen("head")
def test_marked_fails():
    assert patched() == [
        "BaseOptimizer.apply",
        "Layer.add_weight",
        "Layer.trainable",
        "TensorFlowTrainer.fit",
        "TensorFlowTrainer.train_on_batch",
        "Trainer.compile",
        "Variable.assign",
        "Variable.trainable",
    ]
    make_model().fit(X, Y, verbose=0)

def test_unmarked_is_free():
    # with the trap check on, training is observed lightly (no snapshot); with
    # --kerasfreeze-trap=ignore, not at all
    assert bool(patched()) is (TRAP != "ignore")
    model = make_model()
    model.fit(X, Y, verbose=0)  # head moves: nobody objects
""".replace("TRAP", repr(trap)).replace("TensorFlowTrainer", f"{keras_trainer_name()}"),
        f"--kerasfreeze-trap={trap}",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=1, failed=1)


def keras_trainer_name():
    from kmodels import BACKEND, LEGACY

    if LEGACY:
        return "Model"
    return {"tensorflow": "TensorFlowTrainer", "jax": "JAXTrainer", "torch": "TorchTrainer"}[
        BACKEND
    ]


def test_tests_without_marker_or_fixture_take_no_snapshot(user_project):
    user_project.makeconftest(
        """
import pytest
from pytest_kerasfreeze.engine.captures import Capture

TAKEN = []

@pytest.fixture(autouse=True, scope="session")
def count_snapshots():
    original = Capture.__init__
    def counting(self, *args, **kwargs):
        TAKEN.append(1)
        original(self, *args, **kwargs)
    Capture.__init__ = counting
    yield
    Capture.__init__ = original
"""
    )
    result = run(
        user_project,
        """
from conftest import TAKEN

def test_unmarked_trains():
    model = make_model()
    model.fit(X, Y, epochs=2, verbose=0)
    model.train_on_batch(X, Y)
    assert TAKEN == []

@pytest.mark.frozen("base")
def test_marked_snapshots():
    make_model().fit(X, Y, verbose=0)
    assert len(TAKEN) == 2  # before and after the one fit()
""",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2)


def test_records_one_per_training_call(user_project):
    result = run(
        user_project,
        """
from pytest_kerasfreeze import TrainingRecord, WeightDiff

def test_records(weight_tracker):
    first, second = make_model(), make_model()
    first.fit(X, Y, verbose=0)
    second.train_on_batch(X, Y)
    first.fit(X, Y, epochs=2, verbose=0)
    records = weight_tracker.records
    assert [(r.model, r.method) for r in records] == [
        ("clf", "fit"), ("clf", "train_on_batch"), ("clf", "fit")
    ]
    assert all(isinstance(r, TrainingRecord) and isinstance(r.diff, WeightDiff) for r in records)
    counts = records[0].diff.by_submodel()
    assert counts == {"base": (0, 2), "base/base_dense": (0, 2), "head": (2, 2)}
    assert records[1].findings == []
""",
    )
    result.assert_outcomes(passed=1)


def test_training_errors_propagate_unchanged_from_marked_tests(user_project):
    result = run(
        user_project,
        """
import numpy as np

@pytest.mark.frozen("base")
def test_bad_shapes():
    with pytest.raises(Exception) as info:
        make_model().fit(np.ones((4, 7), "float32"), Y[:4], verbose=0)
    assert "FreezeAssertionError" not in type(info.value).__name__
    make_model().fit(X, Y, verbose=0)  # and the marker still checks a good call
""",
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "marker, message",
    [
        ("@pytest.mark.frozen()", "@pytest.mark.frozen() needs at least one layer"),
        (
            "@pytest.mark.trains('head', tol=1)",
            "@pytest.mark.trains: unknown keyword argument(s) tol; it takes "
            "@pytest.mark.trains(*layers, exclude=(), atol=0.0, rtol=0.0)",
        ),
        ("@pytest.mark.frozen('base', atol=-1)", "@pytest.mark.frozen: atol must be a finite*"),
        ("@pytest.mark.frozen(3)", "@pytest.mark.frozen: 3 is not a layer selector*"),
    ],
)
def test_bad_marker_arguments_are_usage_errors(user_project, marker, message):
    result = run(
        user_project,
        f"""
{marker}
def test_it():
    make_model().fit(X, Y, verbose=0)
""",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_ambiguous_marker_selector_raises_before_training(user_project):
    result = run(
        user_project,
        """
@pytest.mark.frozen("proj")
def test_twins():
    inp = keras.Input((3,))
    left = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="proj")], name="left")
    right = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="proj")], name="right")
    model = keras.Model(inp, keras.layers.Concatenate()([left(inp), right(inp)]))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, np.zeros((8, 4)), verbose=0)
""".replace("np.zeros", "__import__('numpy').zeros"),
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E*LayerNotFoundError: layer name 'proj' is ambiguous*"])


def test_training_in_fixture_setup_and_teardown_is_observed(user_project):
    result = run(
        user_project,
        """
@pytest.fixture
def pretrained():
    model = make_model()
    model.fit(X, Y, verbose=0)          # setup: checked by the marker
    yield model
    model.get_layer("base").trainable = True
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, verbose=0)          # teardown: base moves, the marker objects

@pytest.mark.frozen("base")
def test_uses_pretrained(pretrained):
    pass
""",
        "--kerasfreeze-report",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_uses_pretrained*",
            "E*@pytest.mark.frozen('base') failed on clf.fit(): 2 of 2 weights of 'base' moved*",
            "  PASS  @pytest.mark.frozen('base') on clf.fit()*",
            "  FAIL  @pytest.mark.frozen('base') on clf.fit()*",
        ]
    )


EXCLUDE_ONLY = """
import numpy as np

def weights(model):
    return {id(v): np.array(v.numpy(), copy=True) for v in model.weights}

def moved(model, before):
    return {v.path if hasattr(v, "path") else v.name for v in model.weights
            if not np.array_equal(before[id(v)], v.numpy())}

@pytest.mark.frozen(exclude="head")
def test_fine_tune_the_head():
    model = make_model()
    before = weights(model)
    model.fit(X, Y, epochs=2, verbose=0)
    assert len(moved(model, before)) == 2  # the truth: the head's kernel and bias only

@pytest.mark.frozen(exclude="head")
def test_the_base_unfrozen_by_mistake():
    model = make_model()
    model.get_layer("base").trainable = True
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, Y, verbose=0)

@pytest.mark.frozen(exclude="head")
def test_a_model_without_the_excluded_layer():
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="other")])
    other.compile(optimizer="sgd", loss="mse")
    other.fit(X, Y, verbose=0)
"""


def test_a_marker_with_exclude_alone_checks_every_weight_but_those(user_project):
    result = run(user_project, EXCLUDE_ONLY)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "E*FreezeAssertionError: @pytest.mark.frozen(exclude='head') failed on clf.fit(): "
            "2 of 2 weights of the whole model except 'head' moved in model 'clf'",
            "*base/base_dense/kernel*(3, 4)*float32*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.frozen(exclude='head') checked nothing: no model trained in this "
         "test holds a layer with weights matching 'head'*"]
    )  # fmt: skip
