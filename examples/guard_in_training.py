"""FreezeGuard in a plain training script — no pytest.

A fine-tuning run checks its own freeze at every epoch: the backbone must not move, the
head must train. A second run forgets to freeze the backbone; the guard stops it after
the first epoch and says what moved.

Run:  python examples/guard_in_training.py
"""

import os
import warnings

import numpy as np

if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras

from pytest_kerasfreeze import FreezeGuard, FreezeViolationWarning

rng = np.random.default_rng(0)
x = rng.normal(size=(128, 10)).astype("float32")
y = rng.integers(0, 2, size=(128, 1)).astype("float32")


def build(freeze_backbone: bool):
    backbone = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(16, activation="relu", name="features")],
        name="backbone",
    )
    backbone.trainable = not freeze_backbone
    inputs = keras.Input((10,))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(backbone(inputs))
    model = keras.Model(inputs, outputs, name="fine_tuned")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


guard = FreezeGuard(frozen="backbone", trains="head")
build(freeze_backbone=True).fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[guard])
passed = all(check.passed for check in guard.results)
print(f"{len(guard.results)} checks, {'all passed' if passed else 'some failed'}")

guard = FreezeGuard(frozen="backbone", on_violation="stop")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", FreezeViolationWarning)
    history = build(freeze_backbone=False).fit(x, y, epochs=10, verbose=0, callbacks=[guard])
[warning] = [w for w in caught if issubclass(w.category, FreezeViolationWarning)]
first_line = str(warning.message).splitlines()[0]
print(f"stopped at epoch {len(history.history['loss'])}: {first_line}")
