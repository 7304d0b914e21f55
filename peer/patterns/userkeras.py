"""The Keras a user's code imports: ``from tensorflow import keras`` in Keras 2-era code
(tf_keras, with ``TF_USE_LEGACY_KERAS=1``), ``import keras`` otherwise; and small data."""

import os

import numpy as np

LEGACY = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
if LEGACY:
    from tensorflow import keras
else:
    import keras

BACKEND = "tf_keras" if LEGACY else keras.backend.backend()
ON_TENSORFLOW = BACKEND in ("tensorflow", "tf_keras")


def data(n=64, features=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    return x, y


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
