"""The trap matrix, measured by the plugin itself on the Keras this runs on.

For each moment a ``trainable`` flag can change (after ``compile()`` but before the
first training call, or after it) and each direction (freeze, unfreeze), train a tiny
model and let ``weight_tracker`` say whether the changed layer moved. The table printed
is the row of the SPEC table for this Keras and backend; the test fails if it ever
disagrees with what the plugin's diagnosis predicts (``TRAP_SEMANTICS``).

Run:  pytest -p kerasfreeze examples/test_trap_matrix.py -rP
      KERAS_BACKEND=jax pytest -p kerasfreeze examples/test_trap_matrix.py -rP
"""

import os
import warnings

import numpy as np

if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras

from pytest_kerasfreeze import CompileOrderWarning
from pytest_kerasfreeze.traps import RUNTIME_LABELS, TRAP_SEMANTICS

LEGACY = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
RUNTIME = "tf_keras" if LEGACY else keras.backend.backend()

X = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
Y = np.random.default_rng(1).normal(size=(16, 1)).astype("float32")


def measure(weight_tracker, phase, direction):
    """What happens to a layer whose flag changes at ``phase`` in ``direction``."""
    inp = keras.Input((4,))
    body = keras.layers.Dense(3, name="body")
    body.trainable = direction == "freeze"
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(body(inp)))
    model.compile(optimizer="sgd", loss="mse")
    if phase == "after-build":
        model.fit(X, Y, verbose=0)
    body.trainable = direction == "unfreeze"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.fit(X, Y, verbose=0)
        except Exception as err:  # noqa: BLE001 - JAX and PyTorch raise for some rows
            return "raises", f"{type(err).__name__}", caught, model
    moved = bool(weight_tracker.records[-1].diff.moved("body"))
    honoured = moved is (direction == "unfreeze")
    return ("honoured" if honoured else "ignored"), ("moved" if moved else "still"), caught, model


def test_trap_matrix(weight_tracker):
    rows = []
    for phase in ("after-compile", "after-build"):
        for direction in ("freeze", "unfreeze"):
            outcome, seen, caught, _ = measure(weight_tracker, phase, direction)
            predicted = TRAP_SEMANTICS[(RUNTIME, phase, direction)][0]
            warned = any(issubclass(w.category, CompileOrderWarning) for w in caught)
            rows.append((phase, direction, outcome, seen, predicted, warned))

    print(f"Trap matrix measured on {RUNTIME_LABELS[RUNTIME]} {keras.__version__}:")
    print(f"  {'flag changed':14} {'direction':9} {'measured':9} {'layer':22} plugin said")
    for phase, direction, outcome, seen, predicted, warned in rows:
        print(
            f"  {phase:14} {direction:9} {outcome:9} {seen:22} {predicted}"
            f"{' (warned)' if warned else ''}"
        )
    for phase, direction, outcome, _, predicted, warned in rows:
        assert outcome == predicted, (
            f"{phase}/{direction}: measured {outcome}, table says {predicted}"
        )
        assert warned, f"{phase}/{direction}: no CompileOrderWarning"
