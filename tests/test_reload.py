"""Save and reload (issue 24, 3): ``assert_reload_trains_the_same`` on the fine-tuning
shape users save mid-way (a frozen nested base, its top layer re-enabled, a new head),
against a truth read by hand: numpy copies of every weight before saving and after
loading, paired by path, and the flags read from both models."""

import numpy as np
import pytest

from kmodels import LEGACY, keras, value_of
from pytest_kerasfreeze import FreezeAssertionError, assert_reload_trains_the_same

X = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")


def fine_tuned(reenable_top):
    base = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="features"),
         keras.layers.Dense(8, activation="relu", name="top")], name="base",
    )  # fmt: skip
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(base(inputs)), name="clf")
    base.trainable = False
    if reenable_top:
        base.get_layer("top").trainable = True
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, X[:, :1], epochs=1, verbose=0)
    return model


def truth(model, loaded):
    """What differs, read by hand: the weights of each layer (paired by layer name and
    position), whether each is among trainable_weights, and the layers' own flags."""

    def layers(m):
        base = m.get_layer("base")
        inner = {f"base/{layer.name}": layer for layer in base.layers if layer.weights}
        return {"head": m.get_layer("head"), "base": base, **inner}

    a, b = layers(model), layers(loaded)
    trained_a = {id(v) for v in model.trainable_weights}
    trained_b = {id(v) for v in loaded.trainable_weights}
    values, trains = [], []
    for name in ("head", "base/features", "base/top"):
        for i, (x, y) in enumerate(zip(a[name].weights, b[name].weights, strict=True)):
            if value_of(x).tobytes() != value_of(y).tobytes():
                values.append(f"{name}#{i}")
            if (id(x) in trained_a) != (id(y) in trained_b):
                trains.append(f"{name}#{i}")
    flags = [name for name in a if a[name].trainable != b[name].trainable]
    return values, trains, flags


def test_a_plain_freeze_survives_a_keras_round_trip(tmp_path):
    model = fine_tuned(reenable_top=False)
    model.get_layer("base").trainable = True  # a base unfrozen for the next stage
    model.compile(optimizer="adam", loss="mse")
    report = assert_reload_trains_the_same(model, tmp_path)
    assert report.same and report.path == tmp_path / "clf.keras"
    assert truth(model, report.loaded) == ([], [], [])


def test_a_nested_frozen_base_comes_back_with_its_own_flag_true(tmp_path):
    model = fine_tuned(reenable_top=True)
    loaded = keras.models.load_model(model.save(tmp_path / "t.keras") or tmp_path / "t.keras")
    values, trains, flags = truth(model, loaded)
    assert values == [] and flags == ["base"]  # measured: base.trainable False -> True
    # tf_keras also trains the re-enabled top layer after the reload (it did not before)
    assert (trains != []) == LEGACY
    with pytest.raises(FreezeAssertionError) as caught:
        assert_reload_trains_the_same(model, tmp_path)
    message = str(caught.value)
    assert "assert_reload_trains_the_same failed: the 'keras' round trip of model 'clf'" in message
    assert "    base: own flag trainable=False before, trainable=True after the reload" in message
    if LEGACY:
        assert "base/top/kernel: frozen before, trains after the reload" in message


@pytest.mark.skipif(not LEGACY, reason="the SavedModel format is tf_keras'")
def test_tf_keras_savedmodel_keeps_the_flags(tmp_path):
    model = fine_tuned(reenable_top=True)
    report = assert_reload_trains_the_same(model, tmp_path, format="tf")
    assert truth(model, report.loaded) == ([], [], [])


@pytest.mark.parametrize(
    ("args", "error", "text"),
    [
        ({"format": "pickle"}, ValueError, "format='pickle' is not one of 'keras', 'h5', 'tf'"),
        ({"format": "tf"}, ValueError, "format='tf' (a SavedModel) exists only in tf_keras"),
    ],
)
def test_bad_arguments(tmp_path, args, error, text):
    if LEGACY and args["format"] == "tf":
        pytest.skip("tf_keras has the SavedModel format")
    model = fine_tuned(reenable_top=False)
    with pytest.raises(error) as caught:
        assert_reload_trains_the_same(model, tmp_path, **args)
    assert text in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing was saved


def test_not_a_model(tmp_path):
    with pytest.raises(TypeError):
        assert_reload_trains_the_same(3, tmp_path)
