# Source: the functional fine-tuning pattern of the TensorFlow transfer-learning tutorial,
# written the way keras-team/keras#8259 reports it, rewritten with tiny sizes; the correct
# twin freezes only the body.
# expect: clean
# shows on: none
import keras
import numpy as np
from keras import layers

inputs = keras.Input((4,))
features = layers.Dense(3, name="body")(inputs)
model = keras.Model(inputs, layers.Dense(1, name="head")(features))
model.get_layer("body").trainable = False
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
before = [w.copy() for w in model.get_layer("head").get_weights()]
model.fit(np.ones((8, 4)), np.zeros((8, 1)) + 3, epochs=1, verbose=0)
after = model.get_layer("head").get_weights()


def check():
    """The mistake would show as a head that did not train."""
    return all(np.array_equal(a, b) for a, b in zip(before, after))
