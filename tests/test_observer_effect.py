"""Zero observer effect: watching never changes what training does, nor the model.

With identical seeds the final weights are bitwise identical with and without the plugin
watching, in every way it can watch; and after any check the model's flags, compiled
state, optimizer and train function are the very ones it had.
"""

import contextlib

import numpy as np
import pytest

from kmodels import base_and_head, custom_train_step, data, keras
from pytest_kerasfreeze import (
    FreezeAssertionError,
    WeightTracker,
    assert_frozen,
    assert_inference_mode,
    assert_trains,
    snapshot,
)
from pytest_kerasfreeze.markers import parse_marker
from pytest_kerasfreeze.session import TestObserver


def training(model, x, y):
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.train_on_batch(x, y)
    custom_train_step(model, model.optimizer, x, y)


def run_in(mode):
    keras.utils.set_random_seed(7)
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    if mode == "unobserved":  # no patch at all, not even the light trap check
        run = TestObserver([], trap="ignore")
    elif mode == "marker":
        run = TestObserver(
            [parse_marker("trains", ("head",), {}), parse_marker("frozen", ("nothing_*",), {})]
        )
    else:
        run = TestObserver([])
    run.start()
    try:
        if mode == "watch":
            with WeightTracker().watch(model):
                training(model, x, y)
        elif mode == "assert_trains":
            with assert_trains(model, "head"):
                training(model, x, y)
        elif mode == "records":
            run.attach_tracker(WeightTracker())
            training(model, x, y)
        elif mode in ("optimizer_state", "inference_mode"):
            # the checks fail here (the base trains, and its BatchNormalization runs in
            # training mode on some Kerases): what matters is the training they watched
            if mode == "optimizer_state":
                check = assert_frozen(model, "base", optimizer_state=True)
            else:
                check = assert_inference_mode(model, "base")
            with contextlib.suppress(FreezeAssertionError), check:
                training(model, x, y)
        else:
            training(model, x, y)
    finally:
        run.finish()
    return model.get_weights()


@pytest.mark.parametrize(
    "mode",
    ["light", "watch", "assert_trains", "records", "marker", "optimizer_state", "inference_mode"],
)
def test_final_weights_are_bitwise_identical(mode):
    unobserved = run_in("unobserved")
    assert [w.tobytes() for w in run_in("unobserved")] == [w.tobytes() for w in unobserved], (
        "training itself is not deterministic here: the comparison would mean nothing"
    )
    observed = run_in(mode)
    assert [w.tobytes() for w in observed] == [w.tobytes() for w in unobserved]


def test_checks_leave_the_model_as_it_was(weight_tracker):
    model, base = base_and_head(freeze_base=True)
    x, y = data()
    model.fit(x, y, verbose=0)
    optimizer, train_function = model.optimizer, model.train_function
    flags = [layer.trainable for layer in model._flatten_layers()]
    loss = model.loss
    weights = [w.tobytes() for w in model.get_weights()]
    snap = snapshot(model, "base")
    snap.diff(snap.retake()).assert_frozen()
    d = weight_tracker.records[0].diff
    d.report(), d.to_dict(), d.by_submodel()
    with pytest.raises(AssertionError):
        d.assert_trains("base")
    assert model.optimizer is optimizer
    assert model.train_function is train_function
    assert model.loss is loss
    assert model.compiled if hasattr(model, "compiled") else model._is_compiled  # tf_keras
    assert [layer.trainable for layer in model._flatten_layers()] == flags
    assert [w.tobytes() for w in model.get_weights()] == weights
    assert base.trainable is False


def test_report_options_do_not_change_training(user_project, monkeypatch):
    user_project.makepyfile(
        test_user="""
import os
import numpy as np
import pytest
from usermodels import make_model, X, Y, keras

@pytest.mark.frozen("base")
def test_train(weight_tracker):
    keras.utils.set_random_seed(3)
    model = make_model()
    model.fit(X, Y, epochs=3, verbose=0)
    np.save(os.environ["WEIGHTS_OUT"], np.concatenate([w.ravel() for w in model.get_weights()]))
"""
    )
    saved = []
    for i, options in enumerate([(), ("--kerasfreeze-report", "--kerasfreeze-json=kf.json")]):
        out = user_project.path / f"weights{i}.npy"
        monkeypatch.setenv("WEIGHTS_OUT", str(out))
        user_project.runpytest(*options).assert_outcomes(passed=1)
        saved.append(np.load(out))
    assert saved[0].tobytes() == saved[1].tobytes()
