"""Optimizer state (issue 24, 1): ``assert_frozen(..., optimizer_state=True)``, the
marker keyword, and the findings frozen slots and stale moments — in the keras-io
fine-tuning shape (a base and a head, trained in phases). The truth is a numpy copy of
every variable of ``optimizer.variables``, paired by variable identity, and of every
weight."""

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, keras, value_of
from pytest_kerasfreeze import FreezeAssertionError, assert_frozen
from pytest_kerasfreeze.traps import TRAP_SEMANTICS

RUNTIME = "tf_keras" if LEGACY else BACKEND
X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = X[:, :1] * 2.0


def base_and_head():
    base = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="features")],
        name="base",
    )
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(base(inputs)), name="clf")
    return base, model


def copies(variables):
    return {id(v): value_of(v) for v in variables}


def changed(variables, before):
    return {id(v) for v in variables if not np.array_equal(before[id(v)], value_of(v))}


def slot_variables(optimizer, weights):
    """The truth's own pairing: Keras names each slot after its weight's path."""
    keys = [
        (w.path if hasattr(w, "path") else w.name.split(":")[0]).replace("/", "_") for w in weights
    ]
    return [
        v for v in optimizer.variables
        if any(k in (v.path if hasattr(v, "path") else v.name).replace("/", "_") for k in keys)
    ]  # fmt: skip


def test_a_freeze_with_a_new_optimizer_keeps_the_base_state():
    base, model = base_and_head()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(X, Y, epochs=2, batch_size=8, verbose=0)  # stage 1: everything
    base.trainable = False
    optimizer = keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss="mse")  # stage 2, as keras-io recompiles
    with assert_frozen(model, "base", optimizer_state=True) as check:
        model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    assert check.diff.moved("base") == []
    # the truth: the new optimizer holds nothing for the base
    assert slot_variables(optimizer, base.weights) == []


@pytest.mark.skipif(
    TRAP_SEMANTICS[(RUNTIME, "after-build", "freeze")][0] != "ignored",
    reason="this Keras honours (PyTorch) or raises (JAX) on a freeze after the first fit()",
)
def test_a_freeze_after_the_first_fit_moves_weights_and_their_moments():
    base, model = base_and_head()
    optimizer = keras.optimizers.Adam(1e-2)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    base.trainable = False  # the trap: no compile() after it
    slots = slot_variables(optimizer, base.weights)
    before = copies(slots)
    with pytest.raises(FreezeAssertionError) as caught:
        with assert_frozen(model, "base", optimizer_state=True):
            model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    truth = changed(slots, before)
    assert len(truth) == 4  # m and v of the kernel and the bias
    message = str(caught.value)
    assert "2 of 2 weights of 'base' moved in model 'clf'" in message
    assert "Optimizer state that changed (4 slots):" in message
    for path in ("base/features/kernel", "base/features/bias"):
        for slot in ("momentums", "velocities"):
            assert f"  {path}  optimizer.{slot}  " in message


@pytest.mark.skipif(RUNTIME == "jax", reason="JAX: the same built optimizer cannot recompile")
def test_frozen_slots_and_stale_moments_when_the_optimizer_is_reused(weight_tracker):
    base, model = base_and_head()
    optimizer = keras.optimizers.Adam(1e-2)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)  # stage 1: everything trains
    base.trainable = False
    model.compile(optimizer=optimizer, loss="mse")  # stage 2 reuses the optimizer
    slots = slot_variables(optimizer, base.weights)
    held = sum(value_of(v).nbytes for v in slots)
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    assert held == 4 * 2 * (4 * 8 + 8)  # the truth: m and v of a (4, 8) kernel, (8,) bias
    [frozen] = [f for f in weight_tracker.records[1].findings if f.kind == "frozen slots"]
    assert frozen.summary == (
        f"clf: optimizer holds optimizer state for 2 weights that are frozen now ({held} bytes)"
    )
    assert frozen.layers == ["base/features"]
    assert not [f for f in weight_tracker.records[1].findings if f.kind == "stale moments"]
    base.trainable = True  # stage 3: unfreeze, with the same optimizer again
    model.compile(optimizer=optimizer, loss="mse")
    assert all(np.any(value_of(v)) for v in slots)  # the truth: the old moments are there
    model.fit(X, Y, epochs=1, batch_size=8, verbose=0)
    [stale] = [f for f in weight_tracker.records[2].findings if f.kind == "stale moments"]
    assert stale.summary == (
        "clf: 2 weights start training with optimizer moments left from an earlier phase "
        "(base/features/kernel, base/features/bias)"
    )


def test_the_marker_keyword(pytester):
    pytester.makepyfile(
        test_user="""
import os
import numpy as np
import pytest
if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras

X = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")

def model_with_frozen_base():
    layers = [keras.Input((4,)), keras.layers.Dense(8, name="features")]
    base = keras.Sequential(layers, name="base")
    base.trainable = False
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(base(inputs)), name="clf")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    return model

@pytest.mark.frozen("base", optimizer_state=True)
def test_fine_tune():
    model_with_frozen_base().fit(X, X[:, :1], epochs=2, verbose=0)

@pytest.mark.frozen("base", optimizer_state="yes")
def test_bad_keyword():
    pass
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*optimizer_state must be True or False, not 'yes'*"])
