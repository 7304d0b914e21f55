# Source: the freeze-the-first-N-layers loop of Kaggle fine-tuning kernels and
# keras-team/keras#10480,
# rewritten with tiny sizes: a layer frozen after the first
# fit(), then compiled again before training: the correct twin.
# expect: clean
# shows on: none
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

for layer in model.layers[:1]:
    layer.trainable = False
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
before = [w.copy() for w in model.layers[0].get_weights()]
model.fit(x, y, epochs=1, verbose=0)
after = model.layers[0].get_weights()


def check():
    """The mistake would show as a frozen layer that kept training."""
    return any(not np.array_equal(a, b) for a, b in zip(before, after))
