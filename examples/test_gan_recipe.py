"""The Keras 2 GAN recipe, and why it silently stops training the discriminator on Keras 3.

The classic recipe compiles the discriminator, sets ``discriminator.trainable = False``
and then builds and compiles the combined model (generator + frozen discriminator). On
Keras 2 the flags at each ``compile()`` rule, so the discriminator still trains through
its own ``train_on_batch``. On Keras 3 the flags at the first training call rule: the
discriminator never trains, and nothing in Keras says so.

pytest-kerasfreeze warns at the call (``CompileOrderWarning``, with the ``file:line`` of
the assignment), and ``assert_trains`` fails with the explanation.

Run:  pytest -p kerasfreeze examples/test_gan_recipe.py -rP
"""

import keras
import numpy as np
import pytest

from pytest_kerasfreeze import CompileOrderWarning, FreezeAssertionError, assert_trains

LATENT = 2
rng = np.random.default_rng(0)
REAL = rng.normal(loc=2.0, size=(32, 4)).astype("float32")
NOISE = rng.normal(size=(32, LATENT)).astype("float32")


def make_discriminator():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh", name="d_hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="d_out"),
        ],
        name="discriminator",
    )


def make_generator():
    return keras.Sequential(
        [keras.Input((LATENT,)), keras.layers.Dense(4, name="g_out")], name="generator"
    )


def keras2_recipe():
    discriminator = make_discriminator()
    discriminator.compile(optimizer="adam", loss="binary_crossentropy")
    discriminator.trainable = False  # meant: frozen only inside the combined model
    generator = make_generator()
    z = keras.Input((LATENT,))
    combined = keras.Model(z, discriminator(generator(z)), name="combined")
    combined.compile(optimizer="adam", loss="binary_crossentropy")
    return discriminator, generator, combined


def test_the_keras2_recipe_on_this_keras():
    discriminator, generator, _combined = keras2_recipe()
    fake = generator.predict(NOISE, verbose=0)
    x = np.concatenate([REAL, fake])
    y = np.concatenate([np.ones((32, 1)), np.zeros((32, 1))]).astype("float32")

    if keras.__version__.startswith("2."):  # tf_keras: the recipe works
        assert_trains(discriminator, x=x, y=y)
        return

    with (
        pytest.warns(CompileOrderWarning) as warned,
        pytest.raises(FreezeAssertionError) as failure,
    ):
        assert_trains(discriminator, x=x, y=y)
    print("--- the warning, at the training call:")
    print(warned[0].message)
    print("--- the failure:")
    print(failure.value)


class GAN(keras.Model):
    """The Keras 3 way (keras-io DCGAN): one model, a custom train_step that applies
    each optimizer to the weights it owns; no flag is flipped, so no trap."""

    def __init__(self):
        super().__init__(name="gan")
        self.discriminator = make_discriminator()
        self.generator = make_generator()

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = keras.losses.BinaryCrossentropy()

    def call(self, z):
        return self.discriminator(self.generator(z))

    def train_step(self, real):
        import tensorflow as tf

        batch = tf.shape(real)[0]
        z = tf.random.normal((batch, LATENT))
        fake = self.generator(z)
        with tf.GradientTape() as tape:
            loss_d = self.loss_fn(tf.ones((batch, 1)), self.discriminator(real)) + self.loss_fn(
                tf.zeros((batch, 1)), self.discriminator(fake)
            )
        grads = tape.gradient(loss_d, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(
            zip(grads, self.discriminator.trainable_weights, strict=True)
        )
        with tf.GradientTape() as tape:
            loss_g = self.loss_fn(tf.ones((batch, 1)), self.discriminator(self.generator(z)))
        grads = tape.gradient(loss_g, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights, strict=True))
        return {"d_loss": loss_d, "g_loss": loss_g}


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="train_step uses tf.GradientTape"
)
@pytest.mark.trains("discriminator", "generator")
@pytest.mark.filterwarnings("error::pytest_kerasfreeze.CompileOrderWarning")
def test_the_keras3_way_trains_both(weight_tracker):
    gan = GAN()
    gan.build((None, LATENT))
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    gan.fit(REAL, epochs=2, batch_size=16, verbose=0)
    print(weight_tracker.records[0].diff.report())
    assert weight_tracker.records[0].findings == []  # nothing to explain
