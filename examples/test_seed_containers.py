"""The old Keras "Container" memo, measured.

Two Functional "containers" wrap the *same* two Dense layers. One of them is set
``trainable = False`` and each is put under its own head:

    model_fixed  = FixedContainer  + head     (meant to train only its head)
    model_normal = NormalContainer + head     (meant to train everything)

The memo expected ``model_normal`` to keep training the shared layers. On Keras 3 the
flag set on FixedContainer is written onto the shared Dense layers themselves, so
NormalContainer is frozen too. pytest-kerasfreeze shows what really happens.

Run:  pytest -p kerasfreeze examples/test_seed_containers.py -rP
"""

import keras
import numpy as np
import pytest

from pytest_kerasfreeze import FreezeAssertionError, assert_frozen, assert_trains

X = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
Y = np.random.default_rng(1).normal(size=(64, 1)).astype("float32")


def build_models(freeze_before_compile=True):
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu", name="shared_1")(inputs)
    outputs = keras.layers.Dense(8, name="shared_2")(hidden)
    fixed = keras.Model(inputs, outputs, name="FixedContainer")
    normal = keras.Model(inputs, outputs, name="NormalContainer")  # same layers!

    if freeze_before_compile:
        fixed.trainable = False  # Case 1: set before compile(), as the memo does

    x1 = keras.Input((8,))
    model_fixed = keras.Model(x1, keras.layers.Dense(1, name="head")(fixed(x1)), name="model_fixed")
    x2 = keras.Input((8,))
    model_normal = keras.Model(
        x2, keras.layers.Dense(1, name="head")(normal(x2)), name="model_normal"
    )
    model_normal.compile(optimizer="adam", loss="mse")
    if not freeze_before_compile:
        fixed.trainable = False  # Case 2: model_normal is already compiled
    model_fixed.compile(optimizer="adam", loss="mse")
    return model_fixed, model_normal


def test_fixed_container_stays_frozen():
    model_fixed, _ = build_models()
    # Calls model_fixed.fit(X, Y, verbose=0, epochs=2) between two snapshots.
    diff = assert_frozen(model_fixed, "FixedContainer", x=X, y=Y, epochs=2)
    print(diff.report())


def test_case_1_what_model_normal_really_trains(weight_tracker):
    _, model_normal = build_models()
    with weight_tracker.watch(model_normal) as diff:
        model_normal.fit(X, Y, epochs=2, verbose=0)
    print(diff.report())

    # The truth: the shared layers did not move through NormalContainer, only its head
    # did. The record of the fit() says why (a "shared weights" finding).
    assert diff.by_submodel()["NormalContainer"] == (0, 4)
    assert diff.by_submodel()["head"] == (2, 2)
    [finding] = weight_tracker.records[0].findings
    print(finding)
    assert finding.kind == "shared weights"


def test_case_2_compiled_before_the_freeze(weight_tracker):
    """model_normal is compiled while the shared layers are trainable; then FixedContainer
    is frozen. Keras 2 keeps training them through model_normal (its compile() flags
    rule); Keras 3 does not (the flags at the first fit() rule) — and warns."""
    _, model_normal = build_models(freeze_before_compile=False)
    with pytest.warns(Warning) as warned:
        model_normal.fit(X, Y, epochs=2, verbose=0)
    record = weight_tracker.records[0]
    print(record.diff.report())
    for finding in record.findings:
        print(finding)
    assert [f.kind for f in record.findings] == ["compile-order trap", "shared weights"]
    assert any("CompileOrderWarning" in type(w.message).__name__ for w in warned)


def test_the_memo_expectation_fails_with_an_explanation():
    _, model_normal = build_models()
    with pytest.raises(FreezeAssertionError) as failure:
        assert_trains(model_normal, "NormalContainer", x=X, y=Y)
    # The message lists every weight that did not move, with its flag now ("frozen").
    print(failure.value)
