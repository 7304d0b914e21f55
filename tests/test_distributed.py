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
from pytest_kerasfreeze._keras.buffers import replicas
from pytest_kerasfreeze._keras.flavors import flavor_of

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

@pytest.mark.parametrize("mode", ["copy", "digest"])
def test_helpers(mode):
    model = make_model()
    assert_frozen(model, "base", x=X, y=Y, batch_size=8, mode=mode)
    assert_trains(model, "head", x=X, y=Y, batch_size=8, mode=mode)
    with pytest.raises(AssertionError, match="2 of 2 weights of 'head' moved"):
        assert_frozen(model, "head", x=X, y=Y, batch_size=8, mode=mode)

@pytest.mark.parametrize("mode", ["copy", "digest"])
def test_replica_drift_is_reported(weight_tracker, mode):
    model = make_model()
    with weight_tracker.watch(model, "head", mode=mode) as diff:
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
    result.assert_outcomes(passed=6)


@pytest.mark.skipif(
    BACKEND != "jax" or LEGACY, reason="keras.distribution.DataParallel is JAX-only here"
)
def test_jax_data_parallel(pytester, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    pytester.makepyfile(test_data_parallel=DATA_PARALLEL + COMMON)
    result = pytester.runpytest_subprocess("-p", "kerasfreeze", "-p", "no:randomly")
    result.assert_outcomes(passed=6)


MODEL_PARALLEL = """
import numpy as np
import keras
import pytest
from pytest_kerasfreeze import snapshot

devices = keras.distribution.list_devices("cpu")
mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices)
layout = keras.distribution.LayoutMap(mesh)
layout[".*dense.*kernel"] = (None, "model")  # re.fullmatch on variable.path
keras.distribution.set_distribution(keras.distribution.ModelParallel(layout_map=layout))

X = np.random.default_rng(0).normal(size=(16, 64)).astype("float32")
Y = np.random.default_rng(1).normal(size=(16, 64)).astype("float32")

def build():
    inp = keras.Input((64,))
    hidden = keras.layers.Dense(64, name="dense_a")(inp)
    model = keras.Model(inp, keras.layers.Dense(64, name="dense_b")(hidden), name="sharded")
    model.compile(optimizer="sgd", loss="mse")
    return model

def test_the_kernels_are_sharded():
    kernel = build().get_layer("dense_a").kernel.value
    assert len(kernel.addressable_shards) == 2 and not kernel.sharding.is_fully_replicated

@pytest.mark.parametrize("mode", ["copy", "digest"])
def test_every_shard_is_read(mode):
    model = build()
    before = snapshot(model, mode=mode)
    truth = [np.array(w) for w in model.get_weights()]
    model.fit(X, Y, epochs=1, verbose=0)
    d = before.diff(before.retake())
    after = [np.array(w) for w in model.get_weights()]
    assert [c.moved for c in d.changes] == [
        not np.array_equal(a, b) for a, b in zip(truth, after)
    ]
    if mode == "copy":  # the copy holds every shard's values: the exact largest change
        delta = np.abs(after[0] - truth[0]).max()
        assert d.changes[0].path == "dense_a/kernel"
        assert d.changes[0].max_abs_delta == pytest.approx(delta, rel=1e-6)

def test_a_digest_does_not_gather():
    model = build()
    before = snapshot(model, "dense_a/kernel", mode="digest")
    kernel = model.get_layer("dense_a").kernel.value
    assert getattr(kernel, "_npy_value", None) is None  # no host copy of the whole kernel
    assert before.nbytes < 64
"""


@pytest.mark.skipif(BACKEND != "jax" or LEGACY, reason="keras.distribution.ModelParallel: JAX")
def test_jax_model_parallel(pytester, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    pytester.makepyfile(test_model_parallel=MODEL_PARALLEL)
    result = pytester.runpytest_subprocess("-p", "kerasfreeze", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
