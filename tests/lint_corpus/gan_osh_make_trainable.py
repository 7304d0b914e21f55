# Source: osh/KerasGAN, MNIST_CNN_GAN notebook (the make_trainable(net, val) helper; see
# osh/KerasGAN#1 and #10), rewritten as a script with tiny sizes: the discriminator is
# frozen by the helper once, before the GAN is built, and never set back.
# expect: KF102
# shows on: tensorflow, jax, torch
import numpy as np
from keras.layers import Dense, Input
from keras.models import Model
from keras.optimizers import SGD


def make_trainable(net, val):
    net.trainable = val
    for layer in net.layers:
        layer.trainable = val


g_input = Input(shape=(2,))
generator = Model(g_input, Dense(4, activation="tanh")(g_input))

d_input = Input(shape=(4,))
H = Dense(3, activation="relu")(d_input)
discriminator = Model(d_input, Dense(1, activation="sigmoid")(H))
discriminator.compile(loss="binary_crossentropy", optimizer=SGD(0.1))

make_trainable(discriminator, False)
gan_input = Input(shape=(2,))
GAN = Model(gan_input, discriminator(generator(gan_input)))
GAN.compile(loss="binary_crossentropy", optimizer=SGD(0.1))

X = np.random.normal(size=(8, 4)).astype("float32")
y = np.ones((8, 1))
moved = False
for _step in range(2):
    before = [w.copy() for w in discriminator.get_weights()]
    discriminator.train_on_batch(X, y)
    moved |= any(not np.array_equal(a, b) for a, b in zip(before, discriminator.get_weights()))
    GAN.train_on_batch(np.random.normal(size=(8, 2)), y)


def check():
    """The mistake shows: the discriminator did not move in its own training step."""
    return not moved
