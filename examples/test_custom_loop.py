"""A hand-written training loop watched with ``weight_tracker.watch()``.

``watch()`` works around any code that changes weights, not only ``fit()``: here a
``tf.GradientTape`` loop that updates only the trainable variables of an encoder +
decoder model whose encoder is frozen.

Run:  pytest -p kerasfreeze examples/test_custom_loop.py -rP
"""

import keras
import numpy as np
import pytest

if keras.backend.backend() != "tensorflow":
    pytest.skip("this loop is written with tf.GradientTape", allow_module_level=True)

import tensorflow as tf

DATA = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")


def build_autoencoder():
    encoder = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(3, activation="tanh", name="code")],
        name="encoder",
    )
    decoder = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(6, name="recon")], name="decoder"
    )
    inputs = keras.Input((6,))
    return keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder"), encoder


def train_step(model, optimizer, batch):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(batch, training=True) - batch))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return loss


def test_custom_loop_only_trains_the_decoder(weight_tracker):
    model, encoder = build_autoencoder()
    encoder.trainable = False  # model.trainable_variables now holds only the decoder
    optimizer = keras.optimizers.SGD(0.05)

    with weight_tracker.watch(model) as diff:
        for start in range(0, len(DATA), 16):
            train_step(model, optimizer, DATA[start : start + 16])

    print(diff.report())
    assert diff.by_submodel()["encoder"] == (0, 2)
    assert diff.by_submodel()["decoder"] == (2, 2)
    diff.assert_frozen("encoder")
    diff.assert_trains("decoder")
