# Source: keras-team/keras#16234 ("Compiling model in callback": a callback that unfreezes
# the fine-tuned layers after some epochs) and nasa/delta#63 (a SetTrainable callback that
# never took effect), rewritten with tiny sizes.
# expect: KF106
# shows on: tf_keras, tensorflow, jax, torch
import keras
import numpy as np
from keras import layers


class UnfreezeAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.get_layer("base").trainable = True


inputs = keras.Input((4,))
base = layers.Dense(3, name="base", trainable=False)
model = keras.Model(inputs, layers.Dense(1)(base(inputs)))
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
before = [w.copy() for w in base.get_weights()]
model.fit(np.ones((8, 4)), np.zeros((8, 1)) + 2, epochs=2, callbacks=[UnfreezeAt(1)], verbose=0)
after = base.get_weights()


def check():
    """The mistake shows: the layer unfrozen by the callback never trained (or fit() raised)."""
    return all(np.array_equal(a, b) for a, b in zip(before, after))
