"""keras-io recipes in small: transfer learning and fine-tuning, EfficientNet-style
fine-tuning, a model stacked on a frozen model's output, the DCGAN with a custom
``train_step``, callbacks and saving."""

import numpy as np
import pytest
from userkeras import ON_TENSORFLOW, data, keras, same, weights_of


def small_pretrained_base():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, name="block1")(inputs)
    x = keras.layers.BatchNormalization(name="block1_bn")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Dense(16, activation="relu", name="block2")(x)
    return keras.Model(inputs, x, name="base_model")


def test_transfer_learning_guide():
    """keras-io "Transfer learning & fine-tuning": freeze, train the head, unfreeze,
    recompile with a low learning rate, train end to end with the base in inference mode."""
    base_model = small_pretrained_base()
    base_model.trainable = False
    inputs = keras.Input((8,))
    x = base_model(inputs, training=False)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy()],
    )
    x_train, y_train = data(n=96)
    frozen = weights_of(base_model)
    model.fit(x_train, y_train, epochs=2, validation_split=0.25, verbose=0)
    assert same(frozen, weights_of(base_model))
    base_model.trainable = True
    model.compile(
        optimizer=keras.optimizers.Adam(1e-5),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy()],
    )
    model.fit(x_train, y_train, epochs=1, verbose=0)
    assert not same(frozen, weights_of(base_model))


def test_efficientnet_style_fine_tuning():
    """keras-io "Image classification via fine-tuning with EfficientNet": the base is
    built on the caller's input tensor, frozen, and trained flat in the outer model;
    then its top layers are unfrozen except BatchNormalization."""
    inputs = keras.layers.Input(shape=(8,))
    x = keras.layers.Dense(16, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Dense(16, name="top_conv")(x)
    base = keras.Model(inputs, x, name="efficientnetb0")
    base.trainable = False
    x = keras.layers.BatchNormalization()(base.output)
    x = keras.layers.Dropout(0.2, name="top_dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="pred")(x)
    model = keras.Model(inputs, outputs, name="EfficientNet")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(*data(), epochs=2, verbose=0)
    for layer in model.layers[-5:]:
        if not isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy")
    history = model.fit(*data(), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_model_stacked_on_a_frozen_models_output():
    inp = keras.Input((8,))
    frozen_model = keras.Model(inp, keras.layers.Dense(8, name="encoder")(inp))
    frozen_model.trainable = False
    out = keras.layers.Dense(1, name="head")(frozen_model.output)
    model = keras.Model(frozen_model.input, out)
    model.compile(optimizer="adam", loss="mse")
    before = weights_of(frozen_model)
    model.fit(*data(), epochs=2, verbose=0)
    assert same(before, weights_of(frozen_model))


@pytest.mark.skipif(not ON_TENSORFLOW, reason="keras-io's DCGAN is TensorFlow code")
def test_dcgan_with_a_custom_train_step():
    """keras-io DCGAN: a Model subclass with d/g optimizers, a GradientTape train_step and
    no call()."""
    import tensorflow as tf

    latent = 4

    class GAN(keras.Model):
        def __init__(self, discriminator, generator):
            super().__init__()
            self.discriminator, self.generator = discriminator, generator

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

        def train_step(self, real):
            batch = tf.shape(real)[0]
            noise = tf.random.normal((batch, latent))
            images = tf.concat([self.generator(noise), real], axis=0)
            labels = tf.concat([tf.ones((batch, 1)), tf.zeros((batch, 1))], axis=0)
            with tf.GradientTape() as tape:
                d_loss = self.loss_fn(labels, self.discriminator(images))
            grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(
                zip(grads, self.discriminator.trainable_weights, strict=True)
            )
            noise = tf.random.normal((batch, latent))
            with tf.GradientTape() as tape:
                g_loss = self.loss_fn(
                    tf.zeros((batch, 1)), self.discriminator(self.generator(noise))
                )
            grads = tape.gradient(g_loss, self.generator.trainable_weights)
            self.g_optimizer.apply_gradients(
                zip(grads, self.generator.trainable_weights, strict=True)
            )
            return {"d_loss": d_loss, "g_loss": g_loss}

    from test_keras2_code import discriminator_and_generator

    discriminator, generator = discriminator_and_generator(latent)
    gan = GAN(discriminator, generator)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
        loss_fn=keras.losses.BinaryCrossentropy(),
    )
    d_before, g_before = weights_of(discriminator), weights_of(generator)
    history = gan.fit(data(n=32)[0], epochs=1, batch_size=8, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert not same(d_before, weights_of(discriminator))
    assert not same(g_before, weights_of(generator))


def test_callbacks_checkpoint_and_reload(tmp_path):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.layers[0].trainable = False
    model.compile(optimizer="adam", loss="mse")
    path = str(tmp_path / "best.keras")
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=1),
        keras.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    model.fit(*data(), epochs=4, validation_split=0.25, callbacks=callbacks, verbose=0)
    reloaded = keras.models.load_model(path)
    assert reloaded.layers[0].trainable is False
    assert len(reloaded.trainable_weights) == 2
    reloaded.fit(*data(), epochs=1, verbose=0)


def test_terminate_on_nan_stops_a_diverging_run():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(1e12), loss="mse")
    x, y = data()
    history = model.fit(
        x, y * 1e6, epochs=20, callbacks=[keras.callbacks.TerminateOnNaN()], verbose=0
    )
    assert len(history.history["loss"]) < 20
