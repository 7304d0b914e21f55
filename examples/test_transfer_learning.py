"""Transfer learning with a frozen base that holds BatchNormalization.

The keras-io recipe: freeze the base, train a new head; then unfreeze the base and
fine-tune everything with a low learning rate, recompiling after the flag changes.

Run:  pytest -p kerasfreeze examples/test_transfer_learning.py -rP
"""

import keras
import numpy as np
import pytest

from pytest_kerasfreeze import assert_frozen, assert_trains

rng = np.random.default_rng(0)
IMAGES = rng.normal(size=(96, 12, 12, 3)).astype("float32")
LABELS = rng.integers(0, 2, size=(96, 1)).astype("float32")


def build_classifier():
    base = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(8, 3, name="block1_conv"),
            keras.layers.BatchNormalization(name="block1_bn"),
            keras.layers.ReLU(name="block1_relu"),
            keras.layers.Conv2D(8, 3, name="block2_conv"),
            keras.layers.BatchNormalization(name="block2_bn"),
            keras.layers.ReLU(name="block2_relu"),
        ],
        name="base",
    )
    inputs = keras.Input((12, 12, 3))
    features = base(inputs, training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(pooled)
    return keras.Model(inputs, outputs, name="classifier"), base


def test_train_the_head_on_a_frozen_base():
    model, base = build_classifier()
    base.trainable = False
    model.compile(optimizer="adam", loss="binary_crossentropy")

    with assert_frozen(model, "base") as check:  # kernels *and* BatchNorm statistics
        model.fit(IMAGES, LABELS, epochs=2, batch_size=32, verbose=0)
    print(check.diff.report())

    # The head trained meanwhile:
    assert check.diff.by_submodel()["base"] == (0, 12)


# The keras-io recipe is correct code: freeze, compile, fit, unfreeze, compile, fit. The
# plugin must stay quiet about it — any CompileOrderWarning would fail this test.
@pytest.mark.filterwarnings("error::pytest_kerasfreeze.CompileOrderWarning")
def test_fine_tune_the_whole_model():
    model, base = build_classifier()
    base.trainable = False
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(IMAGES, LABELS, epochs=1, verbose=0)

    base.trainable = True  # unfreeze, then recompile so the change takes effect
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="binary_crossentropy")

    # Every conv kernel, bias and BatchNorm gamma/beta must move; the moving statistics
    # are not required to (they are not trainable).
    diff = assert_trains(model, "block*_conv", "block*_bn", x=IMAGES, y=LABELS, epochs=1)
    print(diff.report())
    # What happened to the BatchNorm statistics is measured, not assumed. On Keras 3.15
    # the report lists base/block*_bn/moving_mean among the weights that moved: once the
    # base is trainable, a Functional model passes fit()'s training=True down to it and
    # overrides the training=False given above. tf_keras keeps them still.


# The whole fine-tuning invariant in one line: the head trains, nothing else moves — not
# a kernel of the base, not a BatchNormalization statistic.
@pytest.mark.trains_only("head")
def test_the_whole_invariant_as_one_marker():
    model, base = build_classifier()
    base.trainable = False
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(IMAGES, LABELS, epochs=2, batch_size=32, verbose=0)  # checked here
