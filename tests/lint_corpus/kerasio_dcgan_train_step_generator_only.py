# Source: the keras-io DCGAN example (examples/generative/dcgan_overriding_train_step.py:
# a GAN Model subclass with its own compile(d_optimizer, g_optimizer, loss_fn) and
# train_step), rewritten with tiny Dense networks; as in the example, the generator step
# applies g_optimizer to self.generator.trainable_weights only.
# expect: clean
# shows on: none
# runs on: tf_keras, tensorflow
import keras
import numpy as np
import tensorflow as tf
from keras import layers


class GAN(keras.Model):
    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_moved_in_g_step = False

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile(run_eagerly=True)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]
        noise = tf.random.normal(shape=(batch_size, self.latent_dim))
        fake = self.generator(noise)
        images = tf.concat([fake, real_images], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(images))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        before = [np.array(w) for w in self.discriminator.weights]
        noise = tf.random.normal(shape=(batch_size, self.latent_dim))
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(tf.zeros((batch_size, 1)), self(noise))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        after = [np.array(w) for w in self.discriminator.weights]
        self.d_moved_in_g_step |= any(not np.array_equal(a, b) for a, b in zip(before, after))
        return {"d_loss": d_loss, "g_loss": g_loss}

    def call(self, noise):
        return self.discriminator(self.generator(noise))


discriminator = keras.Sequential([keras.Input((4,)), layers.Dense(1, activation="sigmoid")])
generator = keras.Sequential([keras.Input((2,)), layers.Dense(4)])
gan = GAN(discriminator=discriminator, generator=generator, latent_dim=2)
gan.compile(
    d_optimizer=keras.optimizers.SGD(0.1),
    g_optimizer=keras.optimizers.SGD(0.1),
    loss_fn=keras.losses.BinaryCrossentropy(),
)
gan.fit(np.random.normal(size=(8, 4)).astype("float32"), epochs=1, batch_size=8, verbose=0)


def check():
    """The mistake would show as a discriminator moved by the generator's optimizer."""
    return gan.d_moved_in_g_step
