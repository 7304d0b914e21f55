# Source: the keras-io FAQ on freezing (model.get_layer(name).trainable) and
# keras-team/keras#13404, rewritten with tiny sizes: a layer frozen after the first
# fit() and trained again with no compile() in between.
# expect: KF101
# shows on: tf_keras, tensorflow, jax
import keras
import numpy as np
from keras import layers

model = keras.Sequential(
    [
        keras.Input((4,)),
        layers.Dense(3, activation="relu", name="encoder_dense"),
        layers.Dense(1, name="head"),
    ]
)
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x = np.random.normal(size=(8, 4)).astype("float32")
y = np.random.normal(size=(8, 1)).astype("float32")
model.fit(x, y, epochs=1, verbose=0)

model.get_layer("encoder_dense").trainable = False
before = [w.copy() for w in model.layers[0].get_weights()]
model.fit(x, y, epochs=1, verbose=0)
after = model.layers[0].get_weights()


def check():
    """The mistake shows: the layer frozen after the first fit() kept training."""
    return any(not np.array_equal(a, b) for a, b in zip(before, after))
