"""The diagnosis: compile-order trap (every row of the SPEC table), shared weights,
flag vs reality — and silence on correct code.

These tests run under the plugin itself (the trap check is on in every test), so a
warning or a finding here is exactly what a user would get.
"""

import inspect
import json

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, base_and_head, compile_, data, keras, seed_containers
from pytest_kerasfreeze import CompileOrderWarning, FreezeAssertionError, assert_trains
from pytest_kerasfreeze.traps import TRAP_SEMANTICS

RUNTIME = "tf_keras" if LEGACY else BACKEND
HERE = "tests/test_diagnosis.py"


def next_line():
    """``tests/test_diagnosis.py:N`` of the line after the caller's."""
    return f"{HERE}:{inspect.currentframe().f_back.f_lineno + 1}"


def body_and_head(body_trainable=True):
    inp = keras.Input((4,))
    body = keras.layers.Dense(3, name="body")
    body.trainable = body_trainable
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(body(inp)), name="net")
    return model, body


def trap_findings(record):
    return [f for f in record.findings if f.kind == "compile-order trap"]


@pytest.mark.parametrize("method", ["fit", "train_on_batch"])
@pytest.mark.parametrize("phase", ["after-compile", "after-build"])
@pytest.mark.parametrize("direction", ["freeze", "unfreeze"])
def test_trap_table_row(weight_tracker, method, phase, direction):
    """Each row of the SPEC table, on this process's Keras: the finding says what will
    happen, and what happens is that."""
    x, y = data()
    model, body = body_and_head(body_trainable=direction == "freeze")
    compile_(model, optimizer="sgd")

    def train():
        if method == "fit":
            model.fit(x, y, verbose=0)
        else:
            model.train_on_batch(x, y)

    if phase == "after-build":
        train()
    where = next_line()
    body.trainable = direction == "unfreeze"
    outcome, behaviour = TRAP_SEMANTICS[(RUNTIME, phase, direction)]

    with pytest.warns(CompileOrderWarning) as warned:
        if outcome == "raises":
            with pytest.raises(Exception) as raised:
                train()
            notes = "\n".join(getattr(raised.value, "__notes__", []))
            assert "pytest-kerasfreeze: [compile-order trap]" in notes
            assert f"body.trainable = {direction == 'unfreeze'} set at {where}" in notes
        else:
            train()
    [warning] = [w for w in warned if w.category is CompileOrderWarning]
    text = str(warning.message)
    assert f"body.trainable = {direction == 'unfreeze'} set at {where}" in text
    assert behaviour in text
    assert "Fix: set `trainable` first, then call net.compile(...) again" in text
    assert warning.filename.endswith("test_diagnosis.py")  # points at the user's call

    record = weight_tracker.records[-1]
    [finding] = trap_findings(record) if outcome != "raises" else [None]
    if outcome == "raises":
        return
    assert finding.outcome == outcome
    assert finding.layers == ["body"]
    assert finding.assignments == [
        {"layer": "body", "value": direction == "unfreeze", "location": where}
    ]
    body_moved = bool(record.diff.moved("body"))
    expected_to_move = (direction == "unfreeze") == (outcome == "honoured")
    assert body_moved is expected_to_move, f"SPEC table row wrong on {RUNTIME}: {behaviour}"


def test_recompiling_after_the_change_is_not_a_trap(weight_tracker, recwarn):
    """The keras-io transfer-learning recipe: freeze, compile, fit, unfreeze, compile,
    fit — correct code, so no warning and no finding at all."""
    x, y = data()
    model, base = base_and_head(freeze_base=False)
    base.trainable = False
    compile_(model)
    model.fit(x, y, verbose=0)
    base.trainable = True
    compile_(model, lr=1e-5)
    model.fit(x, y, verbose=0)
    assert [w for w in recwarn if w.category is CompileOrderWarning] == []
    assert [r.findings for r in weight_tracker.records] == [[], []]
    assert weight_tracker.records[1].diff.by_submodel()["base/base_dense"] == (2, 2)


def test_flags_set_before_compile_is_not_a_trap(weight_tracker, recwarn):
    x, y = data()
    model, body = body_and_head()
    body.trainable = False
    body.trainable = True
    body.trainable = False
    compile_(model)
    model.train_on_batch(x, y)
    model.fit(x, y, verbose=0)
    assert [w for w in recwarn if w.category is CompileOrderWarning] == []
    assert all(r.findings == [] for r in weight_tracker.records)


def test_flipping_a_flag_back_before_training_is_not_a_trap(weight_tracker, recwarn):
    x, y = data()
    model, body = body_and_head()
    compile_(model)
    body.trainable = False
    body.trainable = True
    model.fit(x, y, verbose=0)
    assert [w for w in recwarn if w.category is CompileOrderWarning] == []


def build_gan():
    """The Keras 2 GAN recipe: compile D, freeze D, build and compile the combined model."""
    discriminator = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh", name="d_hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="d_out"),
        ],
        name="discriminator",
    )
    discriminator.compile(optimizer="adam", loss="binary_crossentropy")
    where = next_line()
    discriminator.trainable = False
    generator = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(4, name="g_out")], name="generator"
    )
    z = keras.Input((2,))
    combined = keras.Model(z, discriminator(generator(z)), name="combined")
    combined.compile(optimizer="adam", loss="binary_crossentropy")
    return discriminator, generator, combined, where


def test_keras2_gan_recipe(weight_tracker):
    discriminator, _generator, combined, where = build_gan()
    real = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    noise = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
    outcome, _behaviour = TRAP_SEMANTICS[(RUNTIME, "after-compile", "freeze")]

    expected = "discriminator.trainable = False set at"
    with pytest.warns(CompileOrderWarning, match=expected) as warned:
        discriminator.train_on_batch(real, np.ones((16, 1), "float32"))
    text = str(next(w for w in warned if w.category is CompileOrderWarning).message)
    assert f"discriminator.trainable = False set at {where}" in text
    assert "now frozen, trainable before: 4 weights of d_hidden, d_out" in text
    assert "write a custom train_step" in text  # the GAN-specific fix
    d_moved = bool(weight_tracker.records[-1].diff.moved())
    assert d_moved is (outcome == "ignored")  # trains on Keras 2, not on Keras 3

    # the combined model was compiled after the freeze: correct, no trap
    combined.train_on_batch(noise, np.ones((16, 1), "float32"))
    record = weight_tracker.records[-1]
    assert trap_findings(record) == []
    assert record.diff.by_submodel()["generator"] == (2, 2)
    assert record.diff.by_submodel()["discriminator"] == (0, 4)

    if outcome == "ignored":
        return  # on Keras 2 the discriminator does train
    # the train function was built with the trapped flags: every later call trains with
    # them, and says so (the warning is given once, the finding every time)
    with pytest.raises(FreezeAssertionError) as failure:
        assert_trains(discriminator, x=real, y=np.ones((16, 1), "float32"))
    message = str(failure.value)
    assert "Diagnosis:\n  [compile-order trap] discriminator: 4 weights frozen" in message
    assert f"discriminator.trainable = False set at {where}" in message
    assert "Keras 2 (tf_keras): ignored: the flags at compile() rule" in message
    assert [f.kind for f in failure.value.findings] == ["compile-order trap"]


def test_shared_weights_seed_case_1(weight_tracker, recwarn):
    """Case 1 of the memo: FixedContainer frozen before either model is compiled."""
    model_fixed, model_normal, *_ = seed_containers()
    x, y = data()
    model_normal.fit(x, y, verbose=0)
    [finding] = weight_tracker.records[0].findings
    assert finding.kind == "shared weights"
    assert finding.layers == ["NormalContainer/shared_1", "NormalContainer/shared_2"]
    assert finding.assignments[0]["layer"] == "FixedContainer"
    assert finding.assignments[0]["value"] is False
    assert finding.assignments[0]["location"].startswith("tests/kmodels.py:")
    assert "shared by FixedContainer and NormalContainer" in finding.explanation
    assert "freezing FixedContainer froze them in every container" in finding.explanation
    model_fixed.fit(x, y, verbose=0)  # reached through the container that was frozen
    assert weight_tracker.records[1].findings == []
    assert [w for w in recwarn if w.category is CompileOrderWarning] == []


def test_shared_weights_seed_case_2(weight_tracker):
    """Case 2: model_normal compiled first, then FixedContainer frozen, then model_fixed
    compiled — on Keras 2 model_normal keeps training the shared layers (its compile()
    flags rule), on Keras 3 its first fit() sees them frozen."""
    model_fixed, model_normal, fixed, _ = seed_containers(freeze_fixed=False)
    compile_(model_normal)
    fixed.trainable = False
    compile_(model_fixed)
    x, y = data()
    with pytest.warns(CompileOrderWarning, match="FixedContainer.trainable = False"):
        model_normal.fit(x, y, verbose=0)
    kinds = [f.kind for f in weight_tracker.records[0].findings]
    outcome = TRAP_SEMANTICS[(RUNTIME, "after-compile", "freeze")][0]
    if outcome == "ignored":  # and the shared layers moved though their flag says frozen
        assert kinds == ["compile-order trap", "shared weights", "flag vs reality"]
    else:
        assert kinds == ["compile-order trap", "shared weights"]
    moved, total = weight_tracker.records[0].diff.by_submodel()["NormalContainer"]
    assert (moved == total) is (outcome == "ignored")


def test_shared_weights_inside_one_model(weight_tracker):
    _, _, fixed, normal = seed_containers()
    inp = keras.Input((4,))
    both = compile_(keras.Model(inp, keras.layers.Add()([fixed(inp), normal(inp)]), name="both"))
    x, _ = data()
    both.fit(x, np.zeros((32, 4), "float32"), verbose=0)
    [finding] = weight_tracker.records[0].findings
    assert finding.kind == "shared weights"
    assert finding.layers == ["NormalContainer/shared_1", "NormalContainer/shared_2"]


def test_assignment_through_a_parent_container_is_one_assignment(weight_tracker):
    x, y = data()
    model, base = base_and_head(freeze_base=False)
    where = next_line()
    base.trainable = False  # after compile(): Keras writes it onto every sublayer
    with pytest.warns(CompileOrderWarning):
        model.fit(x, y, verbose=0)
    [finding] = trap_findings(weight_tracker.records[-1])
    # one assignment, on the container, though Keras set the flag of each sublayer
    assert finding.assignments == [{"layer": "base", "value": False, "location": where}]
    assert finding.layers == ["base/base_dense", "base/base_bn"]


def test_flag_vs_reality_frozen_but_moved(weight_tracker):
    outcome = TRAP_SEMANTICS[(RUNTIME, "after-build", "freeze")][0]
    if outcome != "ignored":
        pytest.skip(f"on {RUNTIME} a freeze after the first fit() is {outcome}, not ignored")
    x, y = data()
    model, body = body_and_head()
    compile_(model)
    model.fit(x, y, verbose=0)
    body.trainable = False
    with pytest.warns(CompileOrderWarning):
        model.fit(x, y, verbose=0)
    reality = [f for f in weight_tracker.records[-1].findings if f.kind == "flag vs reality"]
    assert [f.summary for f in reality] == ["net: flag says frozen, but 2 weights moved (body)"]


def test_flag_vs_reality_trainable_but_not_moved(weight_tracker):
    inp = keras.Input((4,))
    dead = keras.layers.Dense(3, name="dead")(inp)
    zero = keras.layers.Lambda(lambda t: t * 0.0, name="times_zero")(dead)
    out = keras.layers.Dense(1, name="out")(keras.layers.Concatenate()([zero, inp]))
    model = compile_(keras.Model(inp, out, name="branchy"), optimizer="sgd")
    x, y = data()
    model.fit(x, y, verbose=0)
    [finding] = weight_tracker.records[0].findings
    assert finding.kind == "flag vs reality"
    assert finding.summary == "branchy: flag says trainable, but 2 weights did not move (dead)"
    if BACKEND in ("jax", "torch") and not LEGACY:  # the step runs eagerly: zeros are seen
        assert "dead/kernel, dead/bias got a gradient of all zeros" in finding.explanation
    else:  # traced (tf.function): the gradient's value is not seen, the causes are listed
        assert "no gradient reaching them" in finding.explanation


def test_marker_failure_carries_the_diagnosis(user_project):
    user_project.makepyfile(
        test_user="""
import pytest
from usermodels import make_model, X, Y

@pytest.mark.frozen("base_dense")
def test_unfrozen_after_fit():
    model = make_model()
    model.fit(X, Y, verbose=0)
    model.get_layer("base").trainable = True
    model.fit(X, Y, verbose=0)
"""
    )
    result = user_project.runpytest("--assert=plain", "--kerasfreeze-json=kf.json")
    outcome = TRAP_SEMANTICS[(RUNTIME, "after-build", "unfreeze")][0]
    data_ = json.loads((user_project.path / "kf.json").read_text())
    findings = data_["test_user.py::test_unfrozen_after_fit"]["findings"]
    assert findings[0]["kind"] == "compile-order trap"
    assert findings[0]["assignments"][0]["location"] == "test_user.py:8"
    if outcome == "honoured":  # PyTorch honours... only freezing; unfreezing raises
        raise AssertionError("unreachable: no runtime honours an unfreeze after fit()")
    if outcome == "raises":
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*pytest-kerasfreeze: [[]compile-order trap[]]*"])
    else:  # ignored: the base stays frozen, the marker passes, the warning says why
        result.assert_outcomes(passed=1, warnings=1)
        result.stdout.fnmatch_lines(
            [
                "*CompileOrderWarning: clf: 2 weights unfrozen after the first fit()*",
                "    base.trainable = True set at test_user.py:8",
            ]
        )


def test_trap_error_mode_raises_before_training(user_project):
    user_project.makepyfile(
        test_user="""
import numpy as np
import pytest
from usermodels import make_model, X, Y
from pytest_kerasfreeze import FreezeAssertionError

def test_error_mode():
    model = make_model()
    model.get_layer("head").trainable = False  # after compile()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(FreezeAssertionError) as info:
        model.fit(X, Y, verbose=0)
    assert str(info.value).startswith(
        "compile-order trap (--kerasfreeze-trap=error), nothing was trained:"
    )
    assert info.value.findings[0].kind == "compile-order trap"
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
"""
    )
    user_project.runpytest("--kerasfreeze-trap=error").assert_outcomes(passed=1)
    user_project.makeini("[pytest]\nkerasfreeze_trap = error\n")
    user_project.runpytest().assert_outcomes(passed=1)


def test_trap_ignore_mode_is_silent(user_project):
    user_project.makepyfile(
        test_user="""
from usermodels import make_model, X, Y

def test_ignored():
    model = make_model()
    model.get_layer("head").trainable = False
    model.fit(X, Y, verbose=0)
"""
    )
    as_error = ("-W", "error::pytest_kerasfreeze.CompileOrderWarning")
    user_project.runpytest("--kerasfreeze-trap=ignore", *as_error).assert_outcomes(passed=1)
    result = user_project.runpytest("--kerasfreeze-trap=ignore")
    assert "trainable change" not in result.stdout.str()  # not even the summary line
    user_project.runpytest("--kerasfreeze-trap=warn", *as_error).assert_outcomes(failed=1)
    # by default a test that asks for nothing is warned only where the freeze fails here:
    # Keras 3 honours this change (a summary line), tf_keras trains the head (a warning)
    default = user_project.runpytest(*as_error)
    default.assert_outcomes(**({"failed": 1} if LEGACY else {"passed": 1}))
