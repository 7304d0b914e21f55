# Source: the keras-io autoencoder examples (an encoder and a decoder Sequential inside
# one autoencoder) and the "reuse the trained encoder frozen" question of
# keras-team/keras#4674, rewritten with tiny sizes: the encoder, reached through an alias,
# is frozen after training, and the autoencoder is compiled again: the correct twin.
# expect: clean
# shows on: none
import keras
import numpy as np
from keras import layers

encoder = keras.Sequential([keras.Input((4,)), layers.Dense(2)], name="encoder")
decoder = keras.Sequential([keras.Input((2,)), layers.Dense(4)], name="decoder")
autoencoder = keras.Sequential([encoder, decoder])
autoencoder.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x = np.random.normal(size=(8, 4)).astype("float32")
autoencoder.fit(x, x, epochs=1, verbose=0)

enc = encoder
enc.trainable = False
autoencoder.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
before = [w.copy() for w in encoder.get_weights()]
autoencoder.fit(x, x, epochs=1, verbose=0)
after = encoder.get_weights()


def check():
    """The mistake would show as a frozen encoder that kept training."""
    return any(not np.array_equal(a, b) for a, b in zip(before, after))
