# Source: the freeze helpers of fine-tuning scripts (a `freeze_layers(model, n)` function
# looping over model.layers[:n], as in the Keras-Applications fine-tuning examples and
# keras-team/keras#10480), rewritten with tiny sizes; the correct twin compiles after the
# helper.
# expect: clean
# shows on: none
import keras
import numpy as np
from keras import layers


def freeze_layers(model, n):
    for layer in model.layers[:n]:
        layer.trainable = False


model = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x = np.random.normal(size=(8, 4)).astype("float32")
y = np.random.normal(size=(8, 1)).astype("float32")
model.fit(x, y, epochs=1, verbose=0)

freeze_layers(model, 1)
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
before = [w.copy() for w in model.layers[0].get_weights()]
model.fit(x, y, epochs=1, verbose=0)
after = model.layers[0].get_weights()


def check():
    """The mistake would show as a frozen layer that kept training."""
    return any(not np.array_equal(a, b) for a, b in zip(before, after))
