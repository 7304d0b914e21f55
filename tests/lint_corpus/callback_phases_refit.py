# Source: keras-team/keras#16234's workaround ("compiling and fitting model twice - for
# both phases separately"), rewritten with tiny sizes: the unfreeze happens between two
# fit() calls, with compile() again; a callback only reads the flag.
# expect: clean
# shows on: none
import keras
import numpy as np
from keras import layers


class LogTrainable(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.seen = self.model.get_layer("base").trainable


inputs = keras.Input((4,))
base = layers.Dense(3, name="base", trainable=False)
model = keras.Model(inputs, layers.Dense(1)(base(inputs)))
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x, y = np.ones((8, 4)), np.zeros((8, 1)) + 2
model.fit(x, y, epochs=1, callbacks=[LogTrainable()], verbose=0)
base.trainable = True
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
before = [w.copy() for w in base.get_weights()]
model.fit(x, y, epochs=2, initial_epoch=1, callbacks=[LogTrainable()], verbose=0)
after = base.get_weights()


def check():
    """The mistake would show as an unfrozen layer that never trained."""
    return all(np.array_equal(a, b) for a, b in zip(before, after))
