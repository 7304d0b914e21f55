# Source: eriklindernoren/Keras-GAN, gan/gan.py (the GAN class: compile the discriminator,
# freeze it, build and compile the combined model, train both with train_on_batch);
# rewritten with tiny sizes. See Keras-GAN#22, #91.
# expect: KF102
# shows on: tensorflow, jax, torch
import numpy as np
from keras.layers import Dense, Input
from keras.models import Model, Sequential
from keras.optimizers import SGD


class GAN:
    def __init__(self):
        self.latent_dim = 2
        self.discriminator = self.build_discriminator()
        self.discriminator.compile(loss="binary_crossentropy", optimizer=SGD(0.1))
        self.generator = self.build_generator()
        z = Input(shape=(self.latent_dim,))
        img = self.generator(z)
        self.discriminator.trainable = False
        validity = self.discriminator(img)
        self.combined = Model(z, validity)
        self.combined.compile(loss="binary_crossentropy", optimizer=SGD(0.1))

    def build_generator(self):
        model = Sequential()
        model.add(Dense(4, activation="tanh"))
        noise = Input(shape=(self.latent_dim,))
        return Model(noise, model(noise))

    def build_discriminator(self):
        model = Sequential([Dense(3, activation="relu"), Dense(1, activation="sigmoid")])
        img = Input(shape=(4,))
        return Model(img, model(img))

    def train(self, epochs, batch_size=8):
        real = np.random.normal(size=(batch_size, 4)).astype("float32")
        valid, fake = np.ones((batch_size, 1)), np.zeros((batch_size, 1))
        self.d_moved = False
        for _epoch in range(epochs):
            noise = np.random.normal(size=(batch_size, self.latent_dim))
            gen_imgs = self.generator.predict(noise, verbose=0)
            before = [w.copy() for w in self.discriminator.get_weights()]
            self.discriminator.train_on_batch(real, valid)
            self.discriminator.train_on_batch(gen_imgs, fake)
            after = self.discriminator.get_weights()
            self.d_moved |= any(not np.array_equal(a, b) for a, b in zip(before, after))
            self.combined.train_on_batch(noise, valid)


gan = GAN()
gan.train(epochs=2)


def check():
    """The mistake shows: the discriminator never moved when trained on its own."""
    return not gan.d_moved
