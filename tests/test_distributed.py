"""Distributed models: tf.distribute.MirroredStrategy over two logical CPUs, and
keras.distribution.DataParallel on JAX over two host devices.

Each runs in a subprocess: the device count must be set before TensorFlow or JAX start.
"""

import pytest

from kmodels import BACKEND, LEGACY

COMMON = """
import numpy as np
import pytest
from pytest_kerasfreeze import assert_frozen, assert_trains, snapshot
from pytest_kerasfreeze.buffers import replicas
from pytest_kerasfreeze.flavors import flavor_of

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = np.random.default_rng(1).normal(size=(32, 1)).astype("float32")

def build():
    base = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, name="base_dense")], name="base"
    )
    base.trainable = False
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(base(inp)), name="spread")
    model.compile(optimizer="sgd", loss="mse")
    return model

def test_every_replica_is_read():
    model = make_model()
    head_kernel = model.get_layer("head").weights[0]
    assert len(replicas(flavor_of(model).raw(head_kernel))) == 2

@pytest.mark.frozen("base")
@pytest.mark.trains("head")
def test_markers_and_records(weight_tracker):
    model = make_model()
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0)
    record = weight_tracker.records[0]
    assert record.diff.by_submodel() == {"base": (0, 2), "base/base_dense": (0, 2), "head": (2, 2)}
    assert record.findings == []

def test_helpers():
    model = make_model()
    assert_frozen(model, "base", x=X, y=Y, batch_size=8)
    assert_trains(model, "head", x=X, y=Y, batch_size=8)
    with pytest.raises(AssertionError, match="2 of 2 weights of 'head' moved"):
        assert_frozen(model, "head", x=X, y=Y, batch_size=8)

def test_replica_drift_is_reported(weight_tracker):
    model = make_model()
    with weight_tracker.watch(model, "head") as diff:
        break_one_replica(model.get_layer("head").weights[0])
    [finding] = [f for f in diff.findings() if f.kind == "replica drift"]
    assert finding.summary.startswith("spread: the replicas of 1 distributed weight differ")
    assert "head/kernel" in finding.summary
"""

MIRRORED = """
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras

STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

def make_model():
    assert STRATEGY.num_replicas_in_sync == 2
    with STRATEGY.scope():
        return build()

def break_one_replica(variable):
    # tf_keras hands out the MirroredVariable itself, Keras 3 wraps it (`.value`)
    mirrored = variable if isinstance(getattr(variable, "values", None), tuple) else variable.value
    mirrored.values[1].assign(mirrored.values[1] + 1.0)
"""

DATA_PARALLEL = """
import keras
import jax

devices = keras.distribution.list_devices("cpu")
assert len(devices) == 2, devices
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))

def make_model():
    return build()

def break_one_replica(variable):
    value = variable.value
    shards = [shard.data for shard in value.addressable_shards]
    shards[1] = jax.device_put(shards[1] + 1.0, list(shards[1].devices())[0])
    variable._value = jax.make_array_from_single_device_arrays(
        value.shape, value.sharding, shards
    )
"""


@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="tf.distribute.MirroredStrategy needs TensorFlow"
)
def test_mirrored_strategy(pytester):
    pytester.makepyfile(test_mirrored=MIRRORED + COMMON)
    result = pytester.runpytest_subprocess("-p", "kerasfreeze", "-p", "no:randomly")
    result.assert_outcomes(passed=4)


@pytest.mark.skipif(
    BACKEND != "jax" or LEGACY, reason="keras.distribution.DataParallel is JAX-only here"
)
def test_jax_data_parallel(pytester, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    pytester.makepyfile(test_data_parallel=DATA_PARALLEL + COMMON)
    result = pytester.runpytest_subprocess("-p", "kerasfreeze", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
