# Source: the "freeze everything, then unfreeze the last layers" recipe of fine-tuning
# answers (model.trainable = False, then model.layers[-n:] set back to trainable; see
# keras-team/keras#10480 and #8259), rewritten with tiny sizes. A model whose own flag is
# False trains nothing, whatever its layers say.
# expect: KF105
# shows on: tf_keras, tensorflow, jax, torch
import keras
import numpy as np
from keras import layers

model = keras.Sequential(
    [keras.Input((4,)), layers.Dense(3), layers.Dense(3), layers.Dense(1, name="top")]
)
model.trainable = False
for layer in model.layers[-1:]:
    layer.trainable = True
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
before = [w.copy() for w in model.layers[-1].get_weights()]
model.fit(np.ones((8, 4)), np.zeros((8, 1)) + 3, epochs=1, verbose=0)
after = model.layers[-1].get_weights()


def check():
    """The mistake shows: the re-enabled top layer did not train."""
    return all(np.array_equal(a, b) for a, b in zip(before, after))
