# Source: the keras-io guide "Transfer learning & fine-tuning" (guides/
# transfer_learning.py: a frozen base inside a Sequential, fit, then unfreeze the whole base
# and fit with a low learning rate), rewritten with tiny sizes, with the guide's recompile.
# expect: clean
# shows on: none
import keras
import numpy as np

base_model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)], name="base")
base_model.trainable = False
model = keras.Sequential([base_model, keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x = np.random.normal(size=(8, 3)).astype("float32")
y = np.random.normal(size=(8, 1)).astype("float32")
model.fit(x, y, epochs=1, verbose=0)

# Unfreeze the base model and train end to end with a low learning rate
base_model.trainable = True
model.compile(optimizer=keras.optimizers.SGD(1e-2), loss="mse")
before = [w.copy() for w in base_model.get_weights()]
model.fit(x, y, epochs=1, verbose=0)
after = base_model.get_weights()


def check():
    """The mistake would show as an unfrozen base that did not train."""
    return all(np.array_equal(a, b) for a, b in zip(before, after))
