# Source: the "freeze the embedding after N epochs" idea done between fit() calls (the
# fix of nasa/delta#63: compile again after the flag changes), rewritten with tiny sizes.
# expect: clean
# shows on: none
import keras
import numpy as np
from keras import layers

model = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x, y = np.ones((8, 4)), np.zeros((8, 1)) + 2
model.fit(x, y, epochs=1, verbose=0)
model.layers[0].trainable = False
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
frozen_at = [w.copy() for w in model.layers[0].get_weights()]
model.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
after = model.layers[0].get_weights()


def check():
    """The mistake would show as a frozen layer that kept training."""
    return any(not np.array_equal(a, b) for a, b in zip(frozen_at, after))
