# Source: the keras-io WGAN-GP example (examples/generative/wgan_gp.py: a train_step with a
# d_optimizer and a g_optimizer), rewritten with tiny Dense networks and Keras 3's
# optimizer.apply(grads, variables); as in the example, the generator's update is applied
# to the generator's variables only.
# expect: clean
# shows on: none
# runs on: tensorflow
import keras
import numpy as np
import tensorflow as tf
from keras import layers


class WGAN(keras.Model):
    def __init__(self, critic, generator):
        super().__init__()
        self.critic = critic
        self.generator = generator
        self.critic_moved_in_g_step = False

    def compile(self, d_optimizer, g_optimizer):
        super().compile(run_eagerly=True)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def train_step(self, real):
        noise = tf.random.normal((tf.shape(real)[0], 2))
        with tf.GradientTape() as tape:
            d_loss = tf.reduce_mean(self.critic(self.generator(noise))) - tf.reduce_mean(
                self.critic(real)
            )
        d_grads = tape.gradient(d_loss, self.critic.trainable_variables)
        self.d_optimizer.apply(d_grads, self.critic.trainable_variables)

        before = [np.array(w) for w in self.critic.weights]
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(self(noise))
        variables = self.generator.trainable_variables
        g_grads = tape.gradient(g_loss, variables)
        self.g_optimizer.apply(g_grads, variables)
        after = [np.array(w) for w in self.critic.weights]
        self.critic_moved_in_g_step |= any(not np.array_equal(a, b) for a, b in zip(before, after))
        return {"d_loss": d_loss, "g_loss": g_loss}

    def call(self, noise):
        return self.critic(self.generator(noise))


critic = keras.Sequential([keras.Input((4,)), layers.Dense(1)])
generator = keras.Sequential([keras.Input((2,)), layers.Dense(4)])
wgan = WGAN(critic, generator)
wgan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
wgan.fit(np.random.normal(size=(8, 4)).astype("float32"), epochs=1, batch_size=8, verbose=0)


def check():
    """The mistake would show as a critic moved by the generator's optimizer."""
    return wgan.critic_moved_in_g_step
