"""Declaring the expectation on the test: ``@pytest.mark.frozen`` / ``@pytest.mark.trains``.

With a marker, every ``fit()`` and ``train_on_batch()`` the test makes — on any model
that holds the named layers — is checked as it happens. A violation raises
``FreezeAssertionError`` from the offending call, so the traceback points at your line.

Run:  pytest -p kerasfreeze examples/test_markers.py -rP --kerasfreeze-report
"""

import keras
import numpy as np
import pytest

rng = np.random.default_rng(0)
X = rng.normal(size=(64, 10)).astype("float32")
Y = rng.normal(size=(64, 1)).astype("float32")


def build_model(freeze_encoder=True):
    encoder = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(6, activation="relu", name="enc_dense")],
        name="encoder",
    )
    encoder.trainable = not freeze_encoder
    inputs = keras.Input((10,))
    outputs = keras.layers.Dense(1, name="head")(encoder(inputs))
    model = keras.Model(inputs, outputs, name="regressor")
    model.compile(optimizer="adam", loss="mse")
    return model


@pytest.mark.frozen("encoder")
@pytest.mark.trains("head")
def test_only_the_head_trains():
    model = build_model()
    model.fit(X, Y, epochs=2, verbose=0)  # checked: encoder still, head moved
    model.train_on_batch(X[:8], Y[:8])  # checked again


@pytest.mark.frozen("encoder")
class TestEncoderStaysFixed:
    """A class marker applies to every test of the class."""

    def test_fit(self):
        build_model().fit(X, Y, verbose=0)

    def test_records(self, weight_tracker):
        model = build_model()
        model.fit(X, Y, verbose=0)
        model.train_on_batch(X, Y)
        # The fixture keeps one record per training call, in order.
        for record in weight_tracker.records:
            print(f"--- {record.model}.{record.method}()")
            print(record.diff.report())
        assert [r.method for r in weight_tracker.records] == ["fit", "train_on_batch"]
        assert weight_tracker.records[0].diff.by_submodel()["encoder"] == (0, 2)
