"""What users will try: odd dtypes, odd shapes, odd models, missing arguments.

Each gets a clear message (what was wrong, what to do) or a correct answer — never a
traceback from inside the plugin. (Selector, model and marker errors: test_selection.py,
test_markers.py; option values: test_reports.py.)
"""

import json
import traceback

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, base_and_head, data, keras
from pytest_kerasfreeze import FreezeAssertionError, assert_frozen, assert_trains, snapshot


class Holder(keras.layers.Layer):
    """A layer holding weights of a given dtype and shape, passed through untouched."""

    def __init__(self, dtype, shapes, **kwargs):
        super().__init__(**kwargs)
        self.weight_dtype = dtype
        self.shapes = shapes

    def build(self, input_shape):
        self.held = [
            self.add_weight(shape=shape, dtype=self.weight_dtype, initializer="zeros",
                            trainable=False, name=f"w{i}")
            for i, shape in enumerate(self.shapes)
        ]  # fmt: skip

    def call(self, x):
        return x


def holder_model(dtype, shapes):
    inp = keras.Input((3,))
    return keras.Model(inp, Holder(dtype, shapes, name="holder")(inp), name="holding")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64", "int32", "int64", "bool"])
def test_dtypes_compare_exactly(dtype):
    if LEGACY and dtype == "bfloat16":
        pytest.skip("tf_keras add_weight has no bfloat16 zeros initializer on CPU")
    if BACKEND == "jax" and dtype.endswith("64"):
        pytest.skip("JAX without jax_enable_x64 stores 64-bit weights as 32-bit")
    model = holder_model(dtype, [(4,)])
    before = snapshot(model)
    assert before.diff(before.retake()).moved() == []
    variable = model.get_layer("holder").held[0]
    value = np.zeros(4, dtype="float32")
    value[2] = 1
    variable.assign(value.astype(dtype) if dtype != "bfloat16" else value)
    [change] = before.diff(before.retake()).moved()
    assert change.dtype == dtype
    assert (change.changed_elements, change.max_abs_delta) == (1, 1.0)
    json.dumps(before.diff(before.retake()).to_dict(), allow_nan=False)


def test_scalar_and_zero_size_weights():
    model = holder_model("float32", [(), (0,), (2, 0, 3)])
    before = snapshot(model)
    d = before.diff(before.retake())
    assert [c.shape for c in d.changes] == [(), (0,), (2, 0, 3)]
    assert d.moved() == []
    assert d.by_submodel() == {"holder": (0, 3)}
    model.get_layer("holder").held[0].assign(2.5)
    [change] = before.diff(before.retake()).moved()
    assert (change.path, change.max_abs_delta, change.changed_fraction) == ("holder/w0", 2.5, 1.0)
    assert "holder/w0" in before.diff(before.retake()).report()


def test_ten_thousand_variables():
    model = holder_model("float32", [(1,)] * 10_000)
    before = snapshot(model)
    model.get_layer("holder").held[9_999].assign([1.0])
    d = before.diff(before.retake())
    assert [c.path for c in d.moved()] == ["holder/w9999"]
    assert d.by_submodel() == {"holder": (1, 10_000)}
    with pytest.raises(FreezeAssertionError) as info:
        d.assert_frozen()
    assert len(str(info.value).splitlines()) < 30  # capped


@pytest.mark.skipif(LEGACY, reason="keras.mixed_precision policy of Keras 3")
def test_mixed_precision_model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, _ = base_and_head(freeze_base=True)
        x, y = data()
        d = assert_frozen(model, "base", x=x, y=y)
        assert {c.dtype for c in d.changes} == {"float32"}  # variables stay float32
        assert_trains(model, "head", x=x, y=y)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_x_without_y_where_the_model_needs_y():
    model, _ = base_and_head()
    x, _ = data()
    with pytest.raises(Exception) as info:
        assert_frozen(model, "base", x=x)
    assert not isinstance(info.value, FreezeAssertionError)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert "pytest_kerasfreeze" not in frames[-1].filename  # Keras' own error, unmasked


def test_a_model_without_weights_and_a_weightless_layer_object():
    empty = keras.Sequential([keras.Input((2,)), keras.layers.Activation("relu")], name="bare")
    with pytest.raises(ValueError, match="model 'bare' has no weights: there is nothing"):
        assert_frozen(empty)
    model, _ = base_and_head()
    with pytest.raises(ValueError, match="holds no weights"):
        assert_trains(model, model.get_layer("drop"))


def test_tolerance_arguments_are_checked_before_training():
    model, _ = base_and_head()
    x, y = data()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"rtol must be a finite number >= 0, got -0\.1"):
        assert_frozen(model, "base", x=x, y=y, rtol=-0.1)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="a tf.data pipeline")
def test_dataset_input_without_y():
    import tensorflow as tf

    model, _ = base_and_head()
    x, y = data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    d = assert_frozen(model, "base", x=ds)
    assert d.by_submodel()["base"] == (0, 6)
