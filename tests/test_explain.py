"""explain(model) -> TrainingPlan (issue 22): the prediction of the next fit(), its words,
its checks, its errors, and that asking it changes nothing."""

import inspect
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import pytest_kerasfreeze
from kmodels import BACKEND, LEGACY, data, keras, value_of
from pytest_kerasfreeze import (
    FreezeAssertionError,
    KerasFreezeWarning,
    LayerNotFoundError,
    PlanEntry,
    TrainingPlan,
    assert_frozen,
    assert_trains,
    explain,
)
from pytest_kerasfreeze.traps import RUNTIMES, TRAP_SEMANTICS

RUNTIME = "tf_keras" if LEGACY else BACKEND
X, Y = data(16)
HERE = os.path.relpath(__file__)


def line_before() -> str:
    """``tests/test_explain.py:N`` of the line before the caller's (relative to the
    current directory, like every ``file:line`` the plugin writes)."""
    return f"{HERE}:{inspect.currentframe().f_back.f_lineno - 1}"


def compile_(model, optimizer=None):
    kwargs = {} if LEGACY else {"jit_compile": False}
    optimizer = optimizer or keras.optimizers.SGD(0.1)
    model.compile(optimizer=optimizer, loss="mse", **kwargs)
    return optimizer


def fit(model):
    model.fit(X, Y, batch_size=16, verbose=0)


def two_layers(name="clf"):
    inp = keras.Input((4,))
    body = keras.layers.Dense(3, name="body")
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(body(inp)), name=name)
    return model, body


def nested():
    """net -> outer (Functional) -> inner (Functional) -> core; and a head."""
    inp = keras.Input((4,))
    i_in = keras.Input((4,))
    inner = keras.Model(i_in, keras.layers.Dense(3, name="core")(i_in), name="inner")
    o_in = keras.Input((4,))
    outer = keras.Model(o_in, keras.layers.Dense(2, name="top")(inner(o_in)), name="outer")
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(outer(inp)), name="net")
    return model, outer, inner


def entry(plan, path) -> PlanEntry:
    return next(e for e in plan.entries if e.path == path)


def quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


# -- what it predicts ---------------------------------------------------------------------
def test_a_fresh_model_trains_everything():
    model, _ = two_layers()
    compile_(model)
    plan = explain(model)
    assert isinstance(plan, TrainingPlan)
    assert plan.trains() == ["body/kernel", "body/bias", "head/kernel", "head/bias"]
    assert plan.frozen() == [] and plan.raises is None and plan.custom_step is False
    assert plan.slot_bytes == 0
    first = plan.entries[0]
    assert (first.flag, first.own_flag, first.will_train) == (True, True, True)
    assert first.why == "trainable" and first.set_at is None
    assert first.elsewhere == dict.fromkeys(RUNTIMES, True)


def test_frozen_before_compile_names_the_line():
    model, body = two_layers()
    body.trainable = False
    set_line = line_before()
    compile_(model)
    plan = explain(model, "body")
    assert plan.trains() == [] and plan.frozen() == ["body/kernel", "body/bias"]
    kernel = entry(plan, "body/kernel")
    assert kernel.set_at == set_line
    assert kernel.why == f"frozen (set at {kernel.set_at})"
    assert kernel.elsewhere == dict.fromkeys(RUNTIMES, False)


def test_frozen_after_compile_follows_the_trap_table():
    model, body = two_layers()
    compile_(model)
    body.trainable = False
    set_line = line_before()
    plan = explain(model)
    outcome, behaviour = TRAP_SEMANTICS[(RUNTIME, "after-compile", "freeze")]
    kernel = entry(plan, "body/kernel")
    assert kernel.flag is False and kernel.set_at == set_line
    assert kernel.will_train is (outcome == "ignored")
    assert kernel.why.startswith(f"frozen after compile() (set at {set_line}); ")
    assert kernel.why.endswith(behaviour)
    expected = {
        rt: TRAP_SEMANTICS[(rt, "after-compile", "freeze")][0] == "ignored" for rt in RUNTIMES
    }
    assert kernel.elsewhere == expected
    assert plan.finding is not None and plan.finding.kind == "compile-order trap"


@pytest.mark.parametrize("direction", ["freeze", "unfreeze"])
def test_changed_after_the_first_fit(direction):
    model, body = two_layers()
    body.trainable = direction == "freeze"
    compile_(model)
    fit(model)
    body.trainable = direction == "unfreeze"
    plan = explain(model)
    outcome, behaviour = TRAP_SEMANTICS[(RUNTIME, "after-build", direction)]
    kernel = entry(plan, "body/kernel")
    assert (plan.raises is not None) is (outcome == "raises")
    if outcome == "raises":
        assert plan.trains() == []
        assert kernel.elsewhere[RUNTIME] == "raises"
        assert entry(plan, "head/kernel").why.startswith("nothing trains: fit() raises")
    else:
        assert kernel.will_train is ((outcome == "honoured") == (direction == "unfreeze"))
    assert behaviour in kernel.why
    assert kernel.why.startswith(
        ("frozen" if direction == "freeze" else "set trainable") + " after the first fit() (set at"
    )
    for runtime in RUNTIMES:
        other = TRAP_SEMANTICS[(runtime, "after-build", direction)][0]
        if other != "raises":
            assert kernel.elsewhere[runtime] is ((other == "honoured") == (direction == "unfreeze"))


def test_same_optimizer_recompile_row():
    """The row issue 22 measured: on JAX a freeze after the first fit() still raises after
    compile() with the same, already built optimizer; a new optimizer works."""
    model, body = two_layers()
    optimizer = compile_(model)
    fit(model)
    body.trainable = False
    compile_(model, optimizer)
    plan = explain(model)
    outcome = TRAP_SEMANTICS[(RUNTIME, "after-recompile", "freeze")][0]
    assert outcome == ("raises" if RUNTIME == "jax" else "honoured")
    assert (plan.raises is not None) is (RUNTIME == "jax")
    assert entry(plan, "body/kernel").elsewhere["jax"] == "raises"
    assert entry(plan, "body/kernel").elsewhere["torch"] is False
    compile_(model)
    fresh = explain(model)
    assert fresh.raises is None and fresh.trains() == ["head/kernel", "head/bias"]


def test_reenabled_under_a_frozen_nested_submodel():
    model, outer, inner = nested()
    outer.trainable = False
    inner.get_layer("core").trainable = True
    compile_(model)
    plan = explain(model)
    core = entry(plan, "outer/inner/core/kernel")
    if LEGACY:  # Keras 2: a frozen container hides everything below it
        assert core.flag is False and core.will_train is False
        assert core.why == (
            f"frozen: under frozen sub-model 'outer', which hides its layers (set at {core.set_at})"
        )
    else:
        assert core.flag is True and core.will_train is True
        assert core.why.startswith("trainable under frozen sub-model 'outer' (set at ")
    assert core.own_flag is True
    assert core.elsewhere == {"tf_keras": False, "tensorflow": True, "jax": True, "torch": True}
    assert entry(plan, "outer/top/kernel").will_train is False


def test_everything_under_a_frozen_model_stays_frozen():
    model, _, inner = nested()
    model.trainable = False
    inner.get_layer("core").trainable = True
    compile_(model)
    plan = explain(model)
    assert plan.trains() == []
    core = entry(plan, "outer/inner/core/kernel")
    assert core.why.startswith("frozen: model 'net' itself is frozen, so nothing under it trains")
    assert core.elsewhere == dict.fromkeys(RUNTIMES, False)


@pytest.mark.skipif(LEGACY, reason="Keras 3's enable_lora")
def test_lora_after_compile_and_after_the_first_fit():
    model, body = two_layers()
    compile_(model)
    body.enable_lora(2)
    plan = explain(model)
    assert plan.trains() == [
        "body/bias",
        "body/lora_kernel_a",
        "body/lora_kernel_b",
        "head/kernel",
        "head/bias",
    ]
    lora = entry(plan, "body/lora_kernel_a")
    assert lora.why.startswith("created after compile() (set by enable_lora() at ")
    model2, body2 = two_layers("clf2")
    compile_(model2)
    fit(model2)
    body2.enable_lora(2)
    plan2 = explain(model2)
    outcome = TRAP_SEMANTICS[(RUNTIME, "after-build", "create")][0]
    assert (plan2.raises is not None) is (outcome == "raises")
    if outcome == "ignored":  # TensorFlow: the kernel frozen by enable_lora keeps training
        assert "body/kernel" in plan2.trains() and "body/lora_kernel_a" not in plan2.trains()


def test_not_compiled_raises():
    model, _ = two_layers()
    plan = explain(model)
    assert plan.raises == "clf is not compiled: fit() raises until compile() is called"


def test_slot_bytes_for_weights_that_will_not_train():
    model, body = two_layers()
    body.trainable = False
    compile_(model, keras.optimizers.Adam(0.01))
    assert explain(model).slot_bytes == 0  # not built yet
    body.trainable = True
    compile_(model, keras.optimizers.Adam(0.01))
    fit(model)
    body.trainable = False
    compile_(model, model.optimizer)  # same optimizer: it keeps body's moments
    plan = explain(model, "body")
    if plan.raises is None:
        assert plan.slot_bytes == 2 * (4 * 3 + 3) * 4  # momentum and velocity, float32


class Custom(keras.Model):
    def train_step(self, data):
        return super().train_step(data)


def test_custom_train_step_follows_the_flags_and_warns():
    inp = keras.Input((4,))
    model = Custom(inp, keras.layers.Dense(1, name="head")(inp), name="custom")
    compile_(model)
    plan = explain(model)
    assert plan.custom_step is True and plan.trains() == ["head/kernel", "head/bias"]
    assert plan.entries[0].why == (
        "custom has its own train_step, which decides; the flags say trainable"
    )
    with pytest.warns(KerasFreezeWarning, match="custom train_step, which decides"):
        plan.assert_trains("head")


# -- checks judged on the plan ------------------------------------------------------------
def test_plan_checks_fail_before_training_with_the_helpers_shape():
    model, _ = two_layers()
    compile_(model)
    before = [value_of(v) for v in model.weights]
    plan = explain(model)
    plan.assert_trains("body").assert_trains_only("body", "head")
    with pytest.raises(FreezeAssertionError) as err:
        plan.assert_frozen("body")
    assert str(err.value).splitlines()[:4] == [
        "TrainingPlan.assert_frozen failed before training: 2 of 2 weights of 'body' will "
        "train in model 'clf'",
        f"Expected: no weight of 'body' moves (predicted for the next fit() on "
        f"{plan.to_json()['keras']})",
        "Mismatched weights: 2 / 2 (100.0%)",
        "",
    ]
    assert "  body: 2 of 2 weights will train\n    body/kernel: trainable" in str(err.value)
    with pytest.raises(FreezeAssertionError, match="2 of 2 weights outside 'head' will train"):
        plan.assert_trains_only("head")
    assert all(np.array_equal(b, value_of(v)) for b, v in zip(before, model.weights, strict=True))


def test_plan_checks_fail_when_the_next_fit_raises():
    model, _ = two_layers()
    with pytest.raises(FreezeAssertionError, match="the next fit\\(\\) of model 'clf' raises"):
        explain(model).assert_frozen()


# -- output --------------------------------------------------------------------------------
def test_printed_plan_is_grouped_by_submodel():
    model, outer, _ = nested()
    outer.trainable = False
    compile_(model)
    text = str(explain(model))
    lines = text.splitlines()
    assert lines[0].startswith("Training plan of model 'net' on ")
    assert lines[0].endswith(": the next fit() trains 2 of 6 weights")
    assert "  outer: 0 of 4 weights will train" in lines
    assert "  head: 2 of 2 weights will train" in lines
    header = next(x for x in lines if x.strip().startswith("weight"))
    assert header.split() == ["weight", "flag", "will", "train", "elsewhere", "why"]


def test_html_and_json():
    model, body = two_layers()
    body.trainable = False
    compile_(model)
    plan = explain(model)
    page = plan._repr_html_()
    assert page.startswith('<div class="kerasfreeze-plan">') and "body/kernel" in page
    data_ = json.loads(json.dumps(plan.to_json()))
    assert data_["trains"] == ["head/kernel", "head/bias"] and data_["raises"] is None
    assert data_["entries"][0]["path"] == "body/kernel"
    assert data_["entries"][0]["elsewhere"] == dict.fromkeys(RUNTIMES, False)


# -- bad input: the helpers' errors ----------------------------------------------------------
def message_of(call):
    with pytest.raises(Exception) as err:
        call()
    return type(err.value), str(err.value)


def test_bad_input_gets_the_helpers_errors():
    model, _ = two_layers()
    _, other_body = two_layers("other")
    compile_(model)
    assert message_of(lambda: explain(3)) == message_of(lambda: assert_frozen(3))
    assert message_of(lambda: explain(3))[0] is TypeError
    assert message_of(lambda: explain(model, other_body)) == message_of(
        lambda: assert_frozen(model, other_body)
    )
    kind, text = message_of(lambda: explain(model, "bodyy"))
    assert kind is LayerNotFoundError and (kind, text) == message_of(
        lambda: assert_trains(model, "bodyy")
    )
    assert "body" in text


# -- zero observer effect ----------------------------------------------------------------------
def test_asking_changes_nothing_and_training_is_bitwise_identical():
    def run(ask):
        keras.utils.set_random_seed(7)
        model, body = two_layers()
        compile_(model, keras.optimizers.Adam(0.01))
        fit(model)
        body.trainable = False
        compile_(model)
        flags = [la.trainable for la in model.layers]
        if ask:
            quiet(lambda: explain(model))
            quiet(lambda: explain(model, "body", exclude="*/bias"))
        assert [la.trainable for la in model.layers] == flags
        assert model.train_function is None  # still dropped by compile(), not rebuilt
        fit(model)
        return [value_of(v) for v in model.weights]

    plain, asked = run(False), run(True)
    assert all(np.array_equal(a, b) for a, b in zip(plain, asked, strict=True))


# -- provenance outside tests: record() --------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        import tf_keras as keras
    else:
        import keras
    import pytest_kerasfreeze as kf

    def build():
        inp = keras.Input((4,))
        body = keras.layers.Dense(3, name="body")
        return keras.Model(inp, keras.layers.Dense(1, name="head")(body(inp))), body

    model, body = build()
    body.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    print(json.dumps({"bare": kf.explain(model).to_json()}))
    owners = [keras.Model.fit, keras.Model.compile, keras.layers.Layer.__dict__["trainable"]]
    with kf.record() as rec:
        model, body = build()
        body.trainable = False  # LINE
        model.compile(optimizer="sgd", loss="mse")
        print(json.dumps({"recorded": kf.explain(model).to_json(), "active": rec.active}))
    after = [keras.Model.fit, keras.Model.compile, keras.layers.Layer.__dict__["trainable"]]
    print(json.dumps({"same": all(a is b for a, b in zip(owners, after)),
                      "active": rec.active}))
    """
)


def test_record_gives_set_at_outside_a_test_and_undoes_its_patches(tmp_path):
    script = tmp_path / "notebook.py"
    script.write_text(SCRIPT)
    line_no = next(i for i, x in enumerate(SCRIPT.splitlines(), 1) if x.endswith("# LINE"))
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(pytest_kerasfreeze.__file__).parents[1])},
        timeout=300,
        check=True,
    )
    out = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")]
    bare, recorded, final = out[0]["bare"], out[1]["recorded"], out[2]
    assert bare["entries"][0]["set_at"] is None and bare["entries"][0]["will_train"] is False
    assert recorded["entries"][0]["set_at"] == f"notebook.py:{line_no}"
    assert recorded["entries"][0]["why"] == f"frozen (set at notebook.py:{line_no})"
    assert out[1]["active"] is True and final == {"same": True, "active": False}


# -- in the reports --------------------------------------------------------------------------
@pytest.mark.skipif(
    TRAP_SEMANTICS[(RUNTIME, "after-build", "freeze")][0] != "ignored",
    reason="this Keras honours (or raises for) a freeze after the first fit()",
)
def test_a_failed_helper_says_the_plans_why():
    model, body = two_layers()
    compile_(model)
    fit(model)
    body.trainable = False
    set_line = line_before()
    with pytest.raises(FreezeAssertionError) as err:
        with assert_frozen(model, "body"):
            quiet(lambda: fit(model))
    text = str(err.value)
    behaviour = TRAP_SEMANTICS[(RUNTIME, "after-build", "freeze")][1]
    diagnosis = text[text.index("\nDiagnosis:\n") :]
    assert diagnosis.index("[compile-order trap]") < diagnosis.index("[explain]")
    assert (
        "  [explain] why these weights did so, as foreseen before the call:\n"
        f"    body/kernel, body/bias: frozen after the first fit() (set at {set_line}); "
    ) in diagnosis
    assert behaviour in diagnosis


@pytest.mark.skipif(
    TRAP_SEMANTICS[(RUNTIME, "after-build", "freeze")][0] != "ignored",
    reason="this Keras honours (or raises for) a freeze after the first fit()",
)
def test_a_failed_marker_says_the_plans_why(user_project):
    user_project.makepyfile(
        test_user="""
import pytest
from usermodels import make_model, X, Y

@pytest.fixture(scope="module")
def trained():
    model = make_model()
    model.fit(X, Y, verbose=0)  # stage 1, outside the test's checks
    return model

@pytest.mark.frozen("head")
def test_head_frozen_too_late(trained):
    trained.get_layer("head").trainable = False
    trained.fit(X, Y, verbose=0)
"""
    )
    result = user_project.runpytest("--assert=plain", "-p", "kerasfreeze", "-W", "ignore")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]compile-order trap[]] clf: 2 weights frozen after the first fit()*",
            "*[[]explain[]] why these weights did so, as foreseen before the call:",
            "*head/kernel, head/bias: frozen after the first fit() (set at test_user.py:12); *",
        ]
    )


# -- small things ----------------------------------------------------------------------------
def test_selection_and_exclude():
    model, _ = two_layers()
    compile_(model)
    plan = explain(model, "body", exclude="*/bias")
    assert [e.path for e in plan.entries] == ["body/kernel"] and plan.trains() == ["body/kernel"]
    assert repr(plan) == "<TrainingPlan of model 'clf': the next fit() trains 1 of 1>"


def test_record_inside_a_test_leaves_the_tests_recording_alone():
    with pytest_kerasfreeze.record() as recording:
        assert recording.active is False  # the test records already
        model, body = two_layers()
        body.trainable = False
        set_line = line_before()
        compile_(model)
    assert entry(explain(model), "body/kernel").set_at == set_line


@pytest.mark.skipif(not LEGACY, reason="tf_keras' RespectCompiledTrainableState")
def test_asked_inside_fit_tf_keras_reports_the_users_flags():
    """tf_keras puts the compile() flags back on the layers while fit() runs: a plan asked
    from a callback reads the flags the call started with."""
    model, body = two_layers()
    compile_(model)
    body.trainable = False  # after compile(): tf_keras keeps training it
    seen = []

    class Ask(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append((body.trainable, entry(explain(model), "body/kernel")))

    quiet(lambda: model.fit(X, Y, batch_size=16, verbose=0, callbacks=[Ask()]))
    [(during, kernel)] = seen
    assert during is True  # what tf_keras holds on the layer meanwhile
    assert kernel.flag is False and kernel.will_train is True
