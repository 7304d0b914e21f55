"""Digest snapshots (issue 15): digests.py on the backend KERAS_BACKEND selects (and
tf_keras with TF_USE_LEGACY_KERAS=1), on real Keras variables.

The device fingerprint runs here on the CPU (``force_device_path=True``): it must equal
the numpy reference bit for bit, since it is integer arithmetic only. Sharded JAX arrays
and tf.distribute mirrored variables run in subprocesses, where the device count can be
set before JAX or TensorFlow start.
"""

from __future__ import annotations

import hashlib
import math
import tracemalloc

import ml_dtypes
import numpy as np
import pytest
import xxhash

from kmodels import BACKEND, LEGACY, keras, value_of
from pytest_kerasfreeze._keras import digests
from pytest_kerasfreeze._keras.digests import (
    FINGERPRINT,
    change_lower_bound,
    device_fingerprint,
    digest_raw,
    fingerprint_reference,
    same,
)
from pytest_kerasfreeze._keras.flavors import flavor_of

RNG = np.random.default_rng(7)
MiB = 1 << 20
# name: (shape, dtype, trainable)
SPECS = {
    "f32": ((3, 4), "float32", True),
    "bf16": ((5, 7), "bfloat16", True),
    "f16": ((2, 3), "float16", True),
    "i32": ((4,), "int32", False),
    "scalar": ((), "float32", True),
    "empty": ((0, 3), "float32", True),
}


class Weights(keras.layers.Layer):
    """One weight of each dtype and shape in SPECS."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.w = {
            name: self.add_weight(name=name, shape=shape, dtype=dtype, trainable=trainable,
                                  initializer="ones")
            for name, (shape, dtype, trainable) in SPECS.items()
        }  # fmt: skip


@pytest.fixture
def layer():
    return Weights(name="weights")


@pytest.fixture
def model():
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, name="dense_a"), keras.layers.Dense(2)]
    )


def raw(layer_or_model, variable):
    return flavor_of(layer_or_model).raw(variable)


def numpy_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def put(variable, array):
    """Assign ``array`` (in the variable's dtype) to a Keras variable of any flavour."""
    dtype = numpy_dtype(SPECS.get(variable.name, (None, "float32"))[1])
    if dtype.name == "bfloat16" and not LEGACY and BACKEND != "jax":
        array = np.asarray(array, np.float32)  # Keras casts; torch takes no ml_dtypes
    variable.assign(np.asarray(array, dtype=dtype))


def current(variable):
    """The variable's value as numpy, in its own dtype."""
    value = value_of(variable)
    name = SPECS.get(variable.name, (None, str(value.dtype)))[1]
    return value.astype(numpy_dtype(name)) if value.dtype != numpy_dtype(name) else value


def norm64(array):
    return float(np.linalg.norm(np.asarray(array, np.float64).reshape(-1)))


# -- real Keras variables ---------------------------------------------------------------
def test_unchanged_weights_have_the_same_digest(model, layer):
    for owner in (model, layer):
        for variable in owner.weights:
            before, after = digest_raw(raw(owner, variable)), digest_raw(raw(owner, variable))
            assert same(before, after) and before == after
            value = current(variable)
            assert before.hash == xxhash.xxh3_128_digest(np.ascontiguousarray(value).tobytes())
            assert (before.shape, before.dtype) == (value.shape, str(value.dtype))
            assert before.nbytes == value.nbytes and before.algorithm == "xxh3_128"
            assert math.isclose(before.norm, norm64(value), rel_tol=1e-6)
            assert not before.nonfinite and not before.replicas_differ and before.shards == ()


def test_one_ulp_moves_the_digest(model):
    kernel = model.layers[0].kernel
    before = digest_raw(raw(model, kernel))
    value = current(kernel)
    value[1, 2] = np.nextafter(value[1, 2], np.float32(np.inf))
    put(kernel, value)
    after = digest_raw(raw(model, kernel))
    assert not same(before, after)
    put(kernel, value + 0.25)
    moved = digest_raw(raw(model, kernel))
    bound = change_lower_bound(after, moved)
    assert 0 < bound <= norm64(np.full(value.shape, 0.25)) * (1 + 1e-6)


@pytest.mark.parametrize("name", ["f32", "bf16", "f16"])
def test_the_sign_of_zero_counts(layer, name):
    variable = layer.w[name]
    zeros = np.zeros(variable.shape, numpy_dtype(SPECS[name][1]))
    put(variable, zeros)
    before = digest_raw(raw(layer, variable))
    zeros.reshape(-1)[3] = -0.0
    put(variable, zeros)
    after = digest_raw(raw(layer, variable))
    assert not same(before, after)
    assert after.norm == before.norm == 0.0 and change_lower_bound(before, after) == 0.0


def test_nan_staying_nan_is_the_same(layer):
    variable = layer.w["f32"]
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    value[0, 1] = np.nan
    put(variable, value)
    before, after = digest_raw(raw(layer, variable)), digest_raw(raw(layer, variable))
    assert same(before, after) and before.nonfinite
    finite = value[np.isfinite(value)]
    assert math.isclose(before.norm, norm64(finite), rel_tol=1e-6)
    value[0, 1] = 1.0
    put(variable, value)
    healed = digest_raw(raw(layer, variable))
    assert not same(before, healed) and not healed.nonfinite
    assert change_lower_bound(before, healed) == math.inf


@pytest.mark.parametrize("name", list(SPECS))
def test_every_dtype_and_shape(layer, name):
    variable = layer.w[name]
    shape, dtype, _ = SPECS[name]
    value = RNG.integers(-50, 50, shape).astype(numpy_dtype(dtype))
    put(variable, value)
    before = digest_raw(raw(layer, variable))
    assert (before.dtype, before.shape, before.nbytes) == (dtype, shape, value.nbytes)
    assert before.hash == xxhash.xxh3_128_digest(value.tobytes())
    assert math.isclose(before.norm, norm64(value), rel_tol=1e-6, abs_tol=0.0)
    assert same(before, digest_raw(raw(layer, variable)))
    if value.size:
        value.reshape(-1)[-1] += 1
        put(variable, value)
        assert not same(before, digest_raw(raw(layer, variable)))


def test_training_moves_the_digests_of_what_trains(model):
    model.compile(optimizer="sgd", loss="mse")
    before = [digest_raw(raw(model, v)) for v in model.weights]
    values = [current(v) for v in model.weights]
    x, y = RNG.normal(size=(16, 4)).astype("float32"), RNG.normal(size=(16, 2))
    model.fit(x, y.astype("float32"), epochs=1, verbose=0)
    for variable, old, value in zip(model.weights, before, values, strict=True):
        new = digest_raw(raw(model, variable))
        delta = norm64(current(variable).astype(np.float64) - value)
        assert same(old, new) == (delta == 0.0)
        assert change_lower_bound(old, new) <= delta * (1 + 1e-6) + 1e-7 * old.norm


# -- numpy: blocks, memory, non-contiguous arrays, the fallback hash ---------------------
def test_digesting_256_mib_allocates_less_than_8_mib():
    big = np.full(64 * MiB, 1.5, np.float32)  # 256 MiB
    big[12345] = -2.0
    tracemalloc.start()
    try:
        digest = digest_raw(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB
    assert digest.hash == xxhash.xxh3_128_digest(big)
    assert math.isclose(digest.norm, math.sqrt(1.5**2 * (big.size - 1) + 4.0), rel_tol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int8", "bool"])
def test_strided_arrays_are_hashed_in_c_order_piece_by_piece(dtype):
    base = RNG.normal(size=(700, 900)).astype(numpy_dtype(dtype))
    for view in (base.T, base[::3, 1::2]):
        tracemalloc.start()
        try:
            digest = digest_raw(view)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        contiguous = digest_raw(np.ascontiguousarray(view))
        assert same(digest, contiguous) and digest.nbytes == contiguous.nbytes
        assert math.isclose(digest.norm, norm64(view), rel_tol=1e-6)
        assert peak < max(8 * MiB, view.nbytes // 2)


def test_huge_values_and_nonfinite_norms():
    overflowing = np.full(1000, 1e30, np.float32)  # a float32 sum of squares overflows
    assert math.isclose(digest_raw(overflowing).norm, 1e30 * math.sqrt(1000), rel_tol=1e-6)
    assert not digest_raw(overflowing).nonfinite
    mixed = np.array([3.0, np.inf, 4.0, -np.inf, np.nan], np.float32)
    assert digest_raw(mixed).norm == 5.0 and digest_raw(mixed).nonfinite


def test_without_xxhash_blake2b_is_used(monkeypatch):
    array = RNG.normal(size=(3, MiB // 4 + 5)).astype(np.float32)  # several blocks
    fast = digest_raw(array)
    monkeypatch.setattr(digests, "_xxhash", None)
    slow = digest_raw(array)
    assert slow.algorithm == "blake2b-128" and slow.norm == fast.norm
    assert slow.hash == hashlib.blake2b(array.tobytes(), digest_size=16).digest()
    with pytest.raises(ValueError, match=r"xxh3_128 over 1 shard\(s\), then blake2b-128 over 1"):
        same(fast, slow)


def test_what_cannot_be_compared_or_digested():
    host, device = digest_raw(np.ones(3)), digest_raw(np.ones(3), force_device_path=True)
    assert device.algorithm == FINGERPRINT and device.norm == host.norm
    with pytest.raises(ValueError, match="take both snapshots where the weight lives"):
        same(host, device)
    assert change_lower_bound(host, device) == 0.0  # the norms still compare
    assert not same(host, digest_raw(np.ones(4)))  # another shape: moved
    assert change_lower_bound(host, digest_raw(np.ones(3, np.float32))) == math.inf
    with pytest.raises(TypeError, match="cannot digest a weight of dtype object"):
        digest_raw(np.array([None]))


# -- the device fingerprint, on the CPU -------------------------------------------------
def lanes(fingerprint):
    return np.frombuffer(fingerprint, "<u4").astype(np.uint64)


def reference_arrays():
    """Every dtype at one size, every size in float32 (JAX compiles once per shape)."""
    dtypes = ["float32", "float16", "bfloat16", "int8", "bool", "float64"]
    if BACKEND == "jax" and not LEGACY:
        dtypes.remove("float64")  # needs jax_enable_x64
    cases = [(1001, dtype) for dtype in dtypes] + [(n, "float32") for n in (0, 1, 3, 4101)]
    for n, dtype in cases:
        yield RNG.normal(size=n).astype(numpy_dtype(dtype))


def backend_tensor(array):
    """``array`` as a tensor of the backend under test, on the CPU."""
    if BACKEND == "torch" and not LEGACY:
        import torch

        if array.dtype.name == "bfloat16":
            return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
        return torch.from_numpy(array.copy())
    if BACKEND == "jax" and not LEGACY:
        import jax.numpy as jnp

        return jnp.asarray(array)
    import tensorflow as tf

    if array.dtype.name == "bfloat16":
        return tf.bitcast(tf.constant(array.view(np.uint16)), tf.bfloat16)
    return tf.constant(array)


def test_the_backend_fingerprint_equals_the_reference():
    for array in reference_arrays():
        tensor = backend_tensor(array)
        expected = fingerprint_reference(array)
        assert device_fingerprint(tensor) == expected, (array.dtype, array.size)
        digest = digest_raw(tensor, force_device_path=True)
        assert digest.hash == expected and digest.algorithm == FINGERPRINT
        assert (digest.dtype, digest.shape, digest.nbytes) == (
            array.dtype.name, array.shape, array.nbytes
        )  # fmt: skip
        assert math.isclose(digest.norm, norm64(array), rel_tol=1e-6)
    strided = RNG.normal(size=(30, 20)).astype(np.float32)
    tensor = backend_tensor(strided)
    transposed = tensor.T if hasattr(tensor, "T") else tensor
    if BACKEND == "tensorflow" or LEGACY:
        import tensorflow as tf

        transposed = tf.transpose(tensor)
    assert device_fingerprint(transposed) == fingerprint_reference(strided.T)


@pytest.mark.skipif(BACKEND != "torch" or LEGACY, reason="torch's block loop needs torch")
def test_torch_blocks_add_up():
    import torch

    array = RNG.normal(size=5000).astype(np.float64)  # two words an element
    for chunk in (1 << 6, 1 << 10):
        assert digests._torch_lanes(torch.from_numpy(array), chunk)[0] == list(
            lanes(fingerprint_reference(array))
        )


def test_keras_variables_through_the_device_path(model, layer):
    owned = [(model, model.layers[0].kernel)] + [(layer, v) for v in layer.weights]
    for owner, variable in owned:
        digest = digest_raw(raw(owner, variable), force_device_path=True)
        value = current(variable)
        assert digest.hash == fingerprint_reference(value), variable.path
        assert math.isclose(digest.norm, norm64(value), rel_tol=1e-6)


def test_every_single_bit_flip_changes_every_lane():
    array = RNG.normal(size=64).astype(np.float32)
    base = lanes(fingerprint_reference(array))
    words = array.view(np.uint32)
    for i in range(array.size):
        for bit in range(32):
            flipped = words.copy()
            flipped[i] ^= np.uint32(1 << bit)
            assert (lanes(fingerprint_reference(flipped.view(np.float32))) != base).all()
    on_backend = device_fingerprint(backend_tensor(array))
    for bit in range(32):  # the backend: one flip per bit position
        flipped = words.copy()
        flipped[(bit * 7) % array.size] ^= np.uint32(1 << bit)
        assert device_fingerprint(backend_tensor(flipped.view(np.float32))) != on_backend


def test_zero_signs_nan_payloads_swaps_and_moves():
    def fp(array):
        return device_fingerprint(backend_tensor(np.asarray(array)))

    assert fp(np.float32([0.0])) != fp(np.float32([-0.0]))
    nans = np.array([0x7FC00000, 0x7FC00001], np.uint32).view(np.float32)
    assert fp(nans[:1]) != fp(nans[1:])
    array = RNG.normal(size=100).astype(np.float32)
    swapped = array.copy()
    swapped[[3, 70]] = swapped[[70, 3]]
    assert len({fp(array), fp(swapped), fp(np.roll(array, 1))}) == 3


def test_fingerprints_of_parts_add_up_to_the_whole():
    array = RNG.normal(size=3 * (1 << 18) // 2 + 7).astype(np.float32)
    whole = lanes(fingerprint_reference(array))
    for cut in (1, 1000, 1 << 18, (1 << 18) + 3):
        parts = lanes(fingerprint_reference(array[:cut])) + lanes(
            fingerprint_reference(array[cut:], offset=cut)
        )
        assert ((parts & 0xFFFFFFFF) == whole).all()
    start = (1 << 32) - 5  # a 16 GiB weight's tail: positions past 2^32 have their own keys
    tail = array[:20]
    split = lanes(fingerprint_reference(tail[:5], start)) + lanes(
        fingerprint_reference(tail[5:], 1 << 32)
    )
    assert ((split & 0xFFFFFFFF) == lanes(fingerprint_reference(tail, start))).all()
    assert fingerprint_reference(tail, start) != fingerprint_reference(tail, start + 8)


# -- no copy of a backend value ---------------------------------------------------------
def peak_rss_rise(function):
    """How far the peak RSS rises while ``function`` runs: VmHWM after resetting it
    (``/proc/self/clear_refs``), minus VmRSS before. Counts what tracemalloc cannot see:
    the backends' own allocators."""

    def field(name):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) << 10 for line in status if line.startswith(name))

    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError as error:
        pytest.skip(f"the peak RSS cannot be reset here: {error}")
    before = field("VmRSS:")
    function()
    return field("VmHWM:") - before


def test_a_backend_value_is_not_copied():
    array = np.full(16 * MiB, 0.5, np.float32)  # 64 MiB
    if BACKEND == "tensorflow" or LEGACY:
        import tensorflow as tf

        value = tf.Variable(array)  # a resource variable: read without a copy
    else:
        value = backend_tensor(array)
    digest_raw(value)  # warm: first-call imports and caches
    digests_made = []
    rise = peak_rss_rise(lambda: digests_made.append(digest_raw(value)))
    assert rise < 8 * MiB, rise
    assert digests_made[0].hash == xxhash.xxh3_128_digest(array)


# -- sharded and replicated values, in subprocesses -------------------------------------
JAX_SHARDED = """
import numpy as np
import jax
import keras
import xxhash
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from pytest_kerasfreeze._keras.digests import (
    change_lower_bound, device_fingerprint, digest_raw, fingerprint_reference, same,
)
from pytest_kerasfreeze._keras.flavors import flavor_of

RNG = np.random.default_rng(3)
MESH = Mesh(jax.devices()[:2], ("x",))
MiB = 1 << 20


def shard_reference(array, columns):
    hashes = [xxhash.xxh3_128_digest(np.ascontiguousarray(array[:, a:b])) for a, b in columns]
    return xxhash.xxh3_128_digest(b"".join(hashes))


def test_two_devices():
    assert len(jax.devices()) == 2


def test_a_column_sharded_array_is_hashed_shard_by_shard():
    a = RNG.normal(size=(512, 384)).astype(np.float32)
    x = jax.device_put(a, NamedSharding(MESH, P(None, "x")))
    d = digest_raw(x)
    assert x._npy_value is None  # nothing was gathered to the host
    assert d.shards == (((0, 512), (0, 192)), ((0, 512), (192, 384)))
    assert d.hash == shard_reference(a, [(0, 192), (192, 384)])
    assert abs(d.norm - np.linalg.norm(a.astype(np.float64))) < 1e-6 * d.norm
    assert (d.shape, d.nbytes, d.replicas_differ) == (a.shape, a.nbytes, False)
    y = x.at[5, 300].add(1.0)  # one element of the second shard
    moved = digest_raw(y)
    assert moved.shards == d.shards and not same(d, moved)
    assert 0 < change_lower_bound(d, moved) <= 1.0 + 1e-6
    # the device fingerprint does not depend on the sharding
    rows = jax.device_put(a, NamedSharding(MESH, P("x", None)))
    assert device_fingerprint(x) == device_fingerprint(rows) == fingerprint_reference(a)
    assert x._npy_value is None and rows._npy_value is None


def test_replicas_hash_replica_0_and_tell_drift():
    a = RNG.normal(size=(64, 32)).astype(np.float32)
    x = jax.device_put(a, NamedSharding(MESH, P()))
    d = digest_raw(x)
    assert d == digest_raw(a) and not d.replicas_differ
    first, second = (shard.data for shard in x.addressable_shards)
    drifted = jax.make_array_from_single_device_arrays(
        a.shape, x.sharding, [first, jax.device_put(second + 1.0, list(second.devices())[0])]
    )
    after = digest_raw(drifted)
    assert after.replicas_differ and same(d, after)  # replica 0 did not move
    assert digest_raw(drifted, force_device_path=True).replicas_differ


def test_digesting_a_sharded_array_does_not_gather_it():
    x = jax.device_put(np.ones((4096, 8192), np.float32), NamedSharding(MESH, P(None, "x")))
    jax.block_until_ready(x)  # 128 MiB in two shards
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) << 10 for line in status if line.startswith("VmRSS"))
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        resettable = True
    except OSError:
        resettable = False
    d = digest_raw(x)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) << 10 for line in status if line.startswith("VmHWM"))
    assert x._npy_value is None and len(d.shards) == 2
    if resettable:
        assert peak - rss < 16 * MiB, (peak - rss) / MiB  # a gather adds 128 MiB


def test_keras_model_parallel_kernels():
    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], jax.devices())
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense.*kernel"] = (None, "model")  # re.fullmatch'ed against variable.path
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
    )
    try:
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(256, name="dense_a"), keras.layers.Dense(8)]
        )
    finally:
        keras.distribution.set_distribution(None)
    flavor, dense = flavor_of(model), model.layers[0]
    kernel = flavor.raw(dense.kernel)
    assert not kernel.sharding.is_fully_replicated
    d = digest_raw(kernel)
    assert kernel._npy_value is None and len(d.shards) == 2
    value = np.array(dense.kernel.numpy())  # (gathers: after the check above)
    assert d.hash == shard_reference(value, [(0, 128), (128, 256)])
    bias = digest_raw(flavor.raw(dense.bias))  # replicated: the whole array's digest
    assert bias.shards == () and bias == digest_raw(np.array(dense.bias.numpy()))
    value[3, 200] += 1.0  # in the second shard
    dense.kernel.assign(value)
    after = digest_raw(flavor.raw(dense.kernel))
    assert after.shards == d.shards and not same(d, after)
    assert device_fingerprint(flavor.raw(dense.kernel)) == fingerprint_reference(value)
"""

TF_MIRRORED = """
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from pytest_kerasfreeze._keras.digests import digest_raw, fingerprint_reference, same


def test_mirrored_variable():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    with strategy.scope():
        variable = tf.Variable(value)
    before = digest_raw(variable)
    assert before == digest_raw(value) and not before.replicas_differ
    variable.values[1].assign(value + 1)
    after = digest_raw(variable)
    assert after.replicas_differ and same(before, after)  # replica 0 did not move
    fingerprint = digest_raw(variable, force_device_path=True)
    assert fingerprint.hash == fingerprint_reference(value) and fingerprint.replicas_differ
"""


@pytest.mark.skipif(BACKEND != "jax" or LEGACY, reason="sharded JAX arrays need JAX")
def test_sharded_jax(pytester, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    pytester.makepyfile(test_sharded=JAX_SHARDED)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


@pytest.mark.skipif(
    BACKEND != "tensorflow" or LEGACY,
    reason="tf.distribute needs TensorFlow; tf_keras changes nothing below Keras",
)
def test_tf_mirrored(pytester):
    pytester.makepyfile(test_mirrored=TF_MIRRORED)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


# -- large weights, hashed two at a time (digest_all) --------------------------------------
def _wide_model(name="wide"):
    """A fine-tuning shape whose kernels are 4 MiB each (24 MiB of weights in all, above
    digests.PARALLEL_TOTAL): the size where digest_all hashes on two threads."""
    model = keras.Sequential(
        [keras.Input((1024,))]
        + [keras.layers.Dense(1024, activation="relu", name=f"block{i}") for i in range(5)]
        + [keras.layers.Dense(10, name="head")],
        name=name,
    )
    return model


def test_digest_all_is_digest_raw_weight_by_weight_on_two_threads(monkeypatch):
    """The same digests as one digest_raw per weight, the large host buffers hashed on
    the pool's threads (two, whatever this machine has), the small ones here; with
    ``since``: the very digest where the bits did not change, a new one where they did."""
    import threading

    model = _wide_model()
    raws = [raw(model, v) for v in model.weights]
    threads: list[str] = []
    host_digest = digests._host_digest

    def recording(array, since=None):
        threads.append(threading.current_thread().name)
        return host_digest(array, since)

    monkeypatch.setattr(digests, "_CPUS", 2)
    monkeypatch.setattr(digests, "_host_digest", recording)
    before = digests.digest_all(raws, [None] * len(raws))
    assert before == [digest_raw(r) for r in raws]
    large = [v for v in model.weights if value_of(v).nbytes >= digests.PARALLEL_ABOVE]
    assert len(large) == 5  # the five 4 MiB kernels
    on_pool = [name for name in threads if name.startswith("kerasfreeze-digest")]
    assert len(on_pool) >= len(large)  # (digest_raw above adds this thread's own)
    kernel = model.get_layer("block2").kernel
    truth = value_of(kernel).copy()
    truth[7, 11] = np.nextafter(truth[7, 11], np.float32(np.inf))  # one ulp
    kernel.assign(truth)
    raws = [raw(model, v) for v in model.weights]  # JAX: assign() put a new array there
    after = digests.digest_all(raws, before)
    for variable, b, a in zip(model.weights, before, after, strict=True):
        if variable is kernel:
            assert not same(b, a) and a.hash == xxhash.xxh3_128_digest(truth.tobytes())
        else:
            assert a is b  # the same bits: the earlier digest itself, its norm reused
    assert not any(t.name.startswith("kerasfreeze-digest") for t in threading.enumerate())


def test_a_digest_check_on_large_weights_sees_exactly_what_training_moved():
    """``with assert_trains_only(model, "head", mode="digest")`` around a real fit() of
    a model with a frozen body (the keras-io transfer-learning recipe), on weights large
    enough to be hashed on two threads; the truth is a numpy copy of every weight."""
    from kmodels import compile_
    from pytest_kerasfreeze import FreezeAssertionError, assert_frozen, assert_trains_only

    model = _wide_model("classifier")
    for layer in model.layers[:-1]:
        layer.trainable = False
    compile_(model)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 1024)).astype("float32")
    y = rng.normal(size=(16, 10)).astype("float32")
    before = {id(v): value_of(v).copy() for v in model.weights}
    with assert_trains_only(model, "head", mode="digest") as check:
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    moved = {id(v) for v in model.weights if not np.array_equal(value_of(v), before[id(v)])}
    assert moved == {id(model.get_layer("head").kernel), id(model.get_layer("head").bias)}
    assert {c.path for c in check.diff.moved()} == {"head/kernel", "head/bias"}
    model.get_layer("block3").trainable = True  # before compile(): it trains now
    compile_(model)
    with pytest.raises(FreezeAssertionError, match="block3/kernel"):
        with assert_frozen(model, "block3", mode="digest"):
            model.fit(x, y, epochs=1, batch_size=8, verbose=0)
