# Source: the "freeze the embedding after N epochs" callbacks of text-classification
# code (on_epoch_end setting layer.trainable = False; nasa/delta#63), rewritten with tiny
# sizes: the flag is changed while fit() runs.
# expect: KF106
# shows on: tf_keras, tensorflow, jax
import keras
import numpy as np
from keras import layers


class FreezeFirst(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.model.layers[0].trainable = False
            self.frozen_at = [w.copy() for w in self.model.layers[0].get_weights()]


freeze = FreezeFirst()
model = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
model.fit(np.ones((8, 4)), np.zeros((8, 1)) + 2, epochs=3, callbacks=[freeze], verbose=0)
after = model.layers[0].get_weights()


def check():
    """The mistake shows: the layer frozen at the end of epoch 0 kept training (or fit()
    raised)."""
    return any(not np.array_equal(a, b) for a, b in zip(freeze.frozen_at, after))
