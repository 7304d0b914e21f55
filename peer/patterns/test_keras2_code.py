"""Keras 2-era code as it is still written: models compiled before they are built, the
classic GAN recipe, freezing by hand and checking with ``get_weights()``."""

import numpy as np
import pytest
from userkeras import LEGACY, data, keras, same, weights_of


def test_sequential_built_by_add_then_compiled():
    model = keras.Sequential()
    model.add(keras.layers.Dense(16, activation="relu"))
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x, y = data()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert len(history.history["loss"]) == 3
    assert model.evaluate(x, y, verbose=0)[1] >= 0.0


def test_sequential_without_input_shape():
    model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    first = model.train_on_batch(x, y)
    second = model.train_on_batch(x, y)
    assert np.isfinite(first) and np.isfinite(second)
    assert model.predict(x, verbose=0).shape == (64, 1)


class Classifier(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(1)

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build((input_shape[0], 8))
        self.built = True

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def test_subclassed_model_built_by_hand():
    model = Classifier()
    model.build((None, 8))
    model.hidden.trainable = False
    model.compile(optimizer="adam", loss="mse")
    frozen = weights_of(model.hidden)
    model.fit(*data(), epochs=2, verbose=0)
    assert same(frozen, weights_of(model.hidden))


def discriminator_and_generator(latent=4, features=8):
    discriminator = keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(16),
            keras.layers.LeakyReLU(0.2),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="discriminator",
    )
    generator = keras.Sequential(
        [keras.Input((latent,)), keras.layers.Dense(16, activation="relu"),
         keras.layers.Dense(features)],
        name="generator",
    )  # fmt: skip
    return discriminator, generator


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
def test_the_keras2_gan_recipe_trains():
    """compile(d); d.trainable = False; compile(gan); alternate train_on_batch calls. On
    Keras 3 the discriminator never trains (the compile-order trap); the test asks nothing
    about it, as most such tests do (Keras 3 itself warns that the discriminator's model has
    no trainable weights)."""
    latent = 4
    discriminator, generator = discriminator_and_generator(latent)
    discriminator.compile(optimizer=keras.optimizers.Adam(2e-4), loss="binary_crossentropy")
    discriminator.trainable = False
    noise_in = keras.Input((latent,))
    gan = keras.Model(noise_in, discriminator(generator(noise_in)), name="gan")
    gan.compile(optimizer=keras.optimizers.Adam(2e-4), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    real = data(n=16)[0]
    for _ in range(3):
        noise = rng.normal(size=(16, latent)).astype("float32")
        fake = generator.predict(noise, verbose=0)
        d_loss = discriminator.train_on_batch(
            np.concatenate([real, fake]), np.concatenate([np.ones((16, 1)), np.zeros((16, 1))])
        )
        g_loss = gan.train_on_batch(noise, np.ones((16, 1)))
        assert np.isfinite(d_loss) and np.isfinite(g_loss)


def test_fine_tuning_by_hand_checked_with_get_weights():
    """Freeze before compile(), as the guides say, and check the way users do today."""
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8)], name="base")
    model = keras.Sequential([base, keras.layers.Dense(1)])
    base.trainable = False
    model.compile(optimizer="adam", loss="mse")
    before = weights_of(base)
    model.fit(*data(), epochs=2, verbose=0)
    assert same(before, weights_of(base))
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mse")
    model.fit(*data(), epochs=1, verbose=0)
    assert not same(before, weights_of(base))


@pytest.mark.skipif(not LEGACY, reason="Keras 2 semantics")
def test_keras2_ignores_a_flag_set_after_compile():
    """tf_keras reads the flags at compile(): a test written for Keras 2 relies on it."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.layers[0].trainable = False
    before = weights_of(model.layers[0])
    model.fit(*data(), epochs=1, verbose=0)
    assert not same(before, weights_of(model.layers[0]))
