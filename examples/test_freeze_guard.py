"""FreezeGuard: the freeze checked inside a real fine-tuning ``fit()``, at every epoch.

The two stages of keras-io's "Transfer learning & fine-tuning" guide, on a small
pretrained-style CNN with BatchNormalization. Stage 1 trains a new head on a frozen base.
Stage 2 unfreezes the top block and fine-tunes it with a low learning rate; the guide
calls the base with ``training=False`` "so that the batchnorm layers will not update
their batch statistics". Whether they do depends on the Keras release: on Keras 3
releases with keras-team/keras#20285 (measured: 3.10.0, 3.13.2, 3.15.1, every backend)
``fit()`` calls the model with ``training=True``, which overrides the ``training=False``
recorded in the functional graph, so an unfrozen BatchNormalization updates its moving
statistics; keras-nightly 3.16.0.dev2026102704 and tf_keras honour ``training=False``.
The example measures it first, on the Keras it runs on (a numpy copy of the statistics
around one ``fit()``), and expects the guard to say the same: it catches the update at
the first epoch where there is one. Keeping the BatchNormalization layers frozen
(keras-io's EfficientNet example does) makes the invariant hold on every release.

Run:  pytest -p kerasfreeze examples/test_freeze_guard.py -rP
"""

import keras
import numpy as np
import pytest

from pytest_kerasfreeze import FreezeAssertionError, FreezeGuard

rng = np.random.default_rng(0)
IMAGES = rng.normal(size=(96, 16, 16, 3)).astype("float32")
LABELS = rng.integers(0, 2, size=(96, 1)).astype("float32")


def pretrained_base():
    """Stands in for ``keras.applications.Xception(include_top=False)``: two conv blocks
    with BatchNormalization."""
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(8, 3, name="block1_conv"),
            keras.layers.BatchNormalization(name="block1_bn"),
            keras.layers.Activation("relu"),
            keras.layers.Conv2D(8, 3, name="block2_conv"),
            keras.layers.BatchNormalization(name="block2_bn"),
            keras.layers.Activation("relu"),
            keras.layers.GlobalAveragePooling2D(),
        ],
        name="base_model",
    )


def classifier(base, training=False):
    inputs = keras.Input((16, 16, 3))
    x = base(inputs, training=training)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(1, name="head")(x)
    return keras.Model(inputs, outputs, name="classifier")


def compile_(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy()],
    )


def test_stage_1_trains_the_head_on_a_frozen_base():
    base = pretrained_base()
    base.trainable = False
    model = classifier(base)
    compile_(model, 1e-3)
    guard = FreezeGuard(frozen="base_model", trains="head")
    model.fit(IMAGES, LABELS, epochs=3, batch_size=32, verbose=0, callbacks=[guard])
    assert [check.passed for check in guard.results] == [True, True, True]
    print(guard.results[-1].diff.report())


def stage_2(keep_batchnorm_frozen):
    base = pretrained_base()
    base.trainable = False
    model = classifier(base, training=False)  # as the guide writes it
    compile_(model, 1e-3)
    model.fit(IMAGES, LABELS, epochs=1, verbose=0)  # stage 1
    base.trainable = True  # unfreeze the top block only
    for layer in base.layers[:3]:
        layer.trainable = False
    if keep_batchnorm_frozen:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    compile_(model, 1e-5)  # recompile after changing trainable, with a low learning rate
    # The stage's invariant: the top block and the head learn, and BatchNormalization
    # keeps the statistics it was pretrained with.
    guard = FreezeGuard(trains=["block2_conv", "head"], frozen=["*/moving_*"])
    model.fit(IMAGES, LABELS, epochs=3, batch_size=32, verbose=0, callbacks=[guard])
    return guard


def fit_overrides_training_false():
    """Measured on this Keras: does ``fit()`` update the moving statistics of a trainable
    BatchNormalization that the functional graph calls with ``training=False``
    (keras-team/keras#20285)? The truth is a numpy copy of ``moving_mean``."""
    inputs = keras.Input((4,))
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, keras.layers.Dense(1)(bn(inputs, training=False)))
    model.compile(optimizer="sgd", loss="mse")
    before = np.array(bn.moving_mean.numpy(), copy=True)
    model.fit(rng.normal(size=(32, 4)).astype("float32"), LABELS[:32], verbose=0)
    return not np.array_equal(before, bn.moving_mean.numpy())


def test_stage_2_the_guide_as_written():
    overridden = fit_overrides_training_false()
    print(f"Keras {keras.__version__}: fit() overrides training=False: {overridden}")
    if not overridden:  # this release honours training=False: the invariant holds
        guard = stage_2(keep_batchnorm_frozen=False)
        assert [check.passed for check in guard.results] == [True, True, True]
        return
    with pytest.raises(FreezeAssertionError) as caught:
        stage_2(keep_batchnorm_frozen=False)
    message = str(caught.value)
    print(message)
    assert "failed on epoch 1:" in message  # stopped at the end of the first epoch
    assert "base_model/block2_bn/moving_mean" in message
    assert "base_model/block1_bn/moving_mean" not in message  # frozen: inference mode


def test_stage_2_with_batchnorm_kept_frozen():
    guard = stage_2(keep_batchnorm_frozen=True)
    assert [check.passed for check in guard.results] == [True, True, True]
    print(guard.results[-1].diff.report())
