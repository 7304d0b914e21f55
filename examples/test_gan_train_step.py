"""Who moved the discriminator? The keras-io DCGAN shape, tiny, and its classic bug.

In a GAN with a custom ``train_step`` both networks legitimately move inside one
``fit()``, so "is the discriminator frozen?" has no answer around ``fit()``. The right
question is "did the *generator's optimizer* touch it?": ``by="g_optimizer"``.

The buggy variant applies ``g_optimizer`` to ``self.trainable_weights`` — which holds
the discriminator too — in the generator step. It is marked ``xfail(strict=True)``: the
example suite stays green while showing the message (run with ``-rx``).

Run:  pytest -p kerasfreeze examples/test_gan_train_step.py -rP -rx
"""

import os

import keras
import numpy as np
import pytest

from pytest_kerasfreeze import assert_frozen

if keras.backend.backend() != "tensorflow" or os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    pytest.skip("the keras-io DCGAN train_step is TensorFlow code", allow_module_level=True)

import tensorflow as tf

LATENT = 8
IMAGES = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")


class GAN(keras.Model):
    """keras-io's DCGAN ("DCGAN to generate face images"), with 16-pixel "images"."""

    def __init__(self, discriminator, generator, latent_dim, buggy=False):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(1337)
        self.buggy = buggy

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]
        noise = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        generated = self.generator(noise)
        combined = tf.concat([generated, real_images], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(
            zip(grads, self.discriminator.trainable_weights, strict=True)
        )

        noise = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        misleading = tf.zeros((batch_size, 1))
        # the bug: self.trainable_weights holds the discriminator's weights too
        weights = self.trainable_weights if self.buggy else self.generator.trainable_weights
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(misleading, self.discriminator(self.generator(noise)))
        grads = tape.gradient(g_loss, weights)
        self.g_optimizer.apply_gradients(zip(grads, weights, strict=True))
        return {"d_loss": d_loss, "g_loss": g_loss}


def build_gan(buggy=False):
    discriminator = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, name="d_hidden"),
            keras.layers.LeakyReLU(0.2),
            keras.layers.Dense(1, name="d_out"),
        ],
        name="discriminator",
    )
    generator = keras.Sequential(
        [
            keras.Input((LATENT,)),
            keras.layers.Dense(32, name="g_hidden"),
            keras.layers.LeakyReLU(0.2),
            keras.layers.Dense(16, activation="tanh", name="g_out"),
        ],
        name="generator",
    )
    gan = GAN(discriminator, generator, LATENT, buggy=buggy)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(1e-4),
        g_optimizer=keras.optimizers.Adam(1e-4),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return gan


def test_the_generator_step_never_touches_the_discriminator(weight_tracker):
    gan = build_gan()
    with assert_frozen(gan, "discriminator", by="g_optimizer") as check:
        gan.fit(IMAGES, epochs=2, batch_size=16, verbose=0)
    print(check.diff.report())  # the discriminator moved: by d_optimizer, never g_optimizer


@pytest.mark.frozen("discriminator", by="g_optimizer")
def test_the_same_as_a_marker():
    build_gan().fit(IMAGES, epochs=2, batch_size=16, verbose=0)


@pytest.mark.xfail(strict=True, reason="the classic bug: g_optimizer on self.trainable_weights")
def test_the_buggy_gan_is_caught():
    gan = build_gan(buggy=True)
    with assert_frozen(gan, "discriminator", by="g_optimizer"):
        gan.fit(IMAGES, epochs=2, batch_size=16, verbose=0)
