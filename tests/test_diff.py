"""Snapshots, WeightDiff and WeightChange semantics (SPEC: snapshot/diff, WeightChange)."""

import json
import math

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, base_and_head, compile_, data, keras, seed_containers
from pytest_kerasfreeze import LayerNotFoundError, Snapshot, WeightDiff, diff, snapshot


def set_value(model, path, value):
    """Assign a new value to the weight at ``path`` (e.g. 'head/kernel')."""
    layer_path, _, name = path.rpartition("/")
    layer = model
    for part in layer_path.split("/"):
        layer = layer.get_layer(part)
    [var] = [w for w in layer.weights if w.name.split("/")[-1].split(":")[0] == name]
    var.assign(np.asarray(value, dtype=var.numpy().dtype).reshape(var.shape))


@pytest.fixture
def seed():
    return seed_containers()


def test_seed_scenario_per_submodel_counts(seed):
    """Keras 3 propagates FixedContainer's flag to the shared layers: NormalContainer is
    frozen too, and the report says so truthfully."""
    _model_fixed, model_normal, *_ = seed
    x, y = data()
    before = snapshot(model_normal)
    model_normal.fit(x, y, epochs=2, verbose=0)
    d = before.diff(snapshot(model_normal))
    assert d.by_submodel() == {
        "NormalContainer": (0, 4),
        "NormalContainer/shared_1": (0, 2),
        "NormalContainer/shared_2": (0, 2),
        "head": (2, 2),
    }
    assert [c.path for c in d.moved()] == ["head/kernel", "head/bias"]
    assert [c.path for c in d.unchanged()] == [
        "NormalContainer/shared_1/kernel",
        "NormalContainer/shared_1/bias",
        "NormalContainer/shared_2/kernel",
        "NormalContainer/shared_2/bias",
    ]
    assert [c.path for c in d.moved("head")] == ["head/kernel", "head/bias"]
    assert d.moved("NormalContainer") == []


def test_snapshot_holds_its_own_copy(seed):
    _, model_normal, *_ = seed
    x, y = data()
    before = snapshot(model_normal, "head")
    kept = [v.copy() for v in before.values]
    model_normal.fit(x, y, verbose=0)
    for a, b in zip(kept, before.values, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(kept[0], model_normal.get_layer("head").get_weights()[0])


@pytest.mark.skipif(BACKEND == "torch", reason="jit_compile on torch means torch.compile")
def test_snapshot_survives_compiled_training():
    """The snapshot keeps what it saw even when an XLA-compiled step updates the
    variables (TensorFlow keeps the snapshot as a tensor and relies on copy-on-write;
    JAX donates buffers to the next step)."""
    model, _ = base_and_head(freeze_base=False)
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    expected = [w.copy() for w in model.get_weights()]
    before = snapshot(model)
    x, y = data()
    model.fit(x, y, epochs=2, verbose=0)
    for kept, want in zip(before.values, expected, strict=True):
        np.testing.assert_array_equal(kept, want)
    assert len(before.diff(before.retake()).moved()) == (
        6 if LEGACY else 8
    )  # tf_keras: BN stats stay


def _train_with(model, how):
    """Change the model's weights in one of the ways users do."""
    x, y = data()
    if how in ("fit-eager", "fit-graph", "fit-xla"):
        kwargs = {} if LEGACY else {"jit_compile": how == "fit-xla"}
        model.compile(optimizer="adam", loss="mse", run_eagerly=how == "fit-eager", **kwargs)
        model.fit(x, y, epochs=2, verbose=0)
    elif how == "train_on_batch":
        model.train_on_batch(x, y)
    elif how == "gradient-tape":
        import tensorflow as tf

        optimizer = keras.optimizers.SGD(0.1)
        for _ in range(2):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights, strict=True))
    elif how == "assign-add":
        for w in model.weights:
            w.assign_add(np.ones(w.shape, dtype=w.numpy().dtype))
    elif how == "set_weights":
        model.set_weights([w + 1 for w in model.get_weights()])
    else:  # pragma: no cover - a typo in the parametrization
        raise AssertionError(how)


WRITES = ["fit-eager", "fit-graph", "train_on_batch", "assign-add", "set_weights"]
if BACKEND != "torch":
    WRITES.append("fit-xla")
if BACKEND == "tensorflow":
    WRITES.append("gradient-tape")


@pytest.mark.parametrize("how", WRITES)
def test_snapshot_survives_every_kind_of_write(how):
    """What a snapshot keeps never changes, however the weights are written after it.
    (TensorFlow keeps a view of the buffer a read returned and relies on TensorFlow
    copying the buffer before any write while the view holds it; JAX donates buffers,
    torch writes in place.)"""
    model, _ = base_and_head(freeze_base=False)
    expected = [w.copy() for w in model.get_weights()]
    before = snapshot(model)
    _train_with(model, how)
    for kept, want in zip(before.values, expected, strict=True):
        np.testing.assert_array_equal(kept, want)
    after = before.retake()
    d = before.diff(after)
    moved = {c.path for c in d.moved()}
    assert {"base/base_dense/kernel", "head/kernel", "head/bias"} <= moved
    for kept, now in zip(after.values, model.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)


def test_snapshot_survives_sparse_updates():
    """An Embedding trained by fit() gets sparse updates on TensorFlow (scatter ops on
    the variable): rows not looked up stay, and the snapshot keeps the old table."""
    inp = keras.Input((3,), dtype="int32")
    out = keras.layers.Dense(1, name="head")(
        keras.layers.Flatten()(keras.layers.Embedding(50, 4, name="emb")(inp))
    )
    model = compile_(keras.Model(inp, out), optimizer="sgd", lr=0.5)
    table = model.get_layer("emb").get_weights()[0].copy()
    before = snapshot(model, "emb")
    x = np.array([[1, 2, 3], [4, 5, 6]], dtype="int32")
    model.fit(x, np.ones((2, 1), "float32"), epochs=2, verbose=0)
    np.testing.assert_array_equal(before.values[0], table)
    [change] = before.diff(before.retake()).moved()
    assert change.path == "emb/embeddings"
    assert change.changed_elements == 6 * 4  # the six rows looked up, nothing else


def test_snapshot_values_are_read_only():
    """A user cannot change what a snapshot saw through the arrays it hands out."""
    model, _ = base_and_head(freeze_base=False)
    before = snapshot(model)
    with pytest.raises(ValueError, match="read-only"):
        before.values[0][...] = 0
    assert before.diff(before.retake()).moved() == []


def test_rewritten_with_the_same_bits_is_unchanged_but_other_bits_are_not():
    """A weight written again with exactly its bits did not move (the comparison reads
    it, it does not judge by the write); -0.0 for 0.0 and another NaN payload did."""
    model, _ = base_and_head(freeze_base=False)
    before = snapshot(model, "head")
    bias = model.get_layer("head").weights[1]
    bias.assign(bias.numpy().copy())
    assert before.diff(before.retake()).moved() == []
    bias.assign(np.array([0.0], dtype="float32"))
    zero = snapshot(model, "head")
    bias.assign(np.array([-0.0], dtype="float32"))
    [change] = zero.diff(zero.retake()).moved()
    assert change.path == "head/bias" and change.max_abs_delta == 0.0


def test_changed_elements_counts_every_changed_bit_pattern():
    """In one weight: a real change, a zero that turns -0.0 and a NaN that stays NaN.
    Two elements changed, the NaN did not; the largest difference is the real one."""
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3, name="d")(inp))
    kernel = model.get_layer("d").weights[0]
    start = np.ones((4, 3), dtype="float32")
    start[0, 0], start[0, 1] = 0.0, np.nan
    kernel.assign(start)
    before = snapshot(model, "d")
    changed = start.copy()
    changed[0, 0] = -0.0
    changed[2, 2] = 1.5
    kernel.assign(changed)
    [change] = before.diff(before.retake()).moved()
    assert change.path == "d/kernel"
    assert change.changed_elements == 2
    assert change.max_abs_delta == pytest.approx(0.5)
    assert change.nonfinite is False


def test_snapshot_copies_only_the_selected_weights(seed):
    model_fixed, *_ = seed
    snap = snapshot(model_fixed, "head")
    assert len(snap) == 2
    head_bytes = sum(w.nbytes for w in model_fixed.get_layer("head").get_weights())
    assert snap.nbytes == head_bytes
    assert "2 weights of model 'model_fixed'" in repr(snap)


def test_weight_change_fields_are_exact(seed):
    model_fixed, *_ = seed
    before = snapshot(model_fixed)
    kernel = model_fixed.get_layer("head").get_weights()[0]  # shape (4, 1)
    new = kernel.copy()
    new[0, 0] += 0.5
    new[1, 0] -= 0.25
    set_value(model_fixed, "head/kernel", new)
    d = diff(before, snapshot(model_fixed))
    [change] = d.moved()
    assert change.path == "head/kernel"
    assert change.layer == "head"
    assert change.owners == ("model_fixed",)
    assert change.shape == (4, 1)
    assert change.dtype == "float32"
    assert change.trainable is True and change.declared_trainable is True
    assert change.moved is True
    assert change.max_abs_delta == pytest.approx(0.5)
    expected_rel = np.linalg.norm(new.astype("f8") - kernel) / np.linalg.norm(kernel.astype("f8"))
    assert change.rel_delta == pytest.approx(expected_rel, rel=1e-6)
    assert change.changed_fraction == 0.5
    assert change.changed_elements == 2
    assert change.nonfinite is False
    unchanged = d.unchanged("FixedContainer")[0]
    assert unchanged.trainable is False  # frozen through FixedContainer
    assert unchanged.declared_trainable is True
    assert (unchanged.max_abs_delta, unchanged.rel_delta, unchanged.changed_fraction) == (0, 0, 0)


def test_any_bit_change_counts_by_default_and_tolerances_relax_it(seed):
    model_fixed, *_ = seed
    before = snapshot(model_fixed, "head")
    kernel = model_fixed.get_layer("head").get_weights()[0]
    set_value(model_fixed, "head/kernel", np.nextafter(kernel, np.float32(np.inf)))
    after = snapshot(model_fixed, "head")
    assert [c.path for c in before.diff(after).moved()] == ["head/kernel"]
    assert before.diff(after, atol=1e-6).moved() == []
    assert before.diff(after, rtol=1e-5).moved() == []
    d = before.diff(after)
    d.assert_frozen(atol=1e-6)  # passes with a tolerance
    with pytest.raises(AssertionError):
        d.assert_frozen()


def test_nan_rules(seed):
    model_fixed, *_ = seed
    kernel = model_fixed.get_layer("head").get_weights()[0]
    kernel[0, 0] = np.nan
    set_value(model_fixed, "head/kernel", kernel)
    before = snapshot(model_fixed, "head")
    # a NaN at the same position before and after is not a change
    assert before.diff(before.retake()).moved() == []
    assert before.diff(before.retake(), atol=0.1).moved() == []
    kernel[1, 0] = np.inf
    set_value(model_fixed, "head/kernel", kernel)
    [change] = before.diff(before.retake()).moved()
    assert change.nonfinite is True
    assert change.changed_elements == 1
    assert math.isinf(change.max_abs_delta) and math.isinf(change.rel_delta)
    assert "became NaN/Inf" in before.diff(before.retake()).report()


def test_integer_weights_compare_exactly():
    class Counter(keras.layers.Layer):
        def build(self, input_shape):
            self.count = self.add_weight(
                shape=(3,), dtype="int32", initializer="zeros", trainable=False, name="count"
            )

        def call(self, x):
            return x

    inp = keras.Input((3,))
    model = keras.Model(inp, Counter(name="counter")(inp), name="counting")
    before = snapshot(model)
    model.get_layer("counter").count.assign(np.array([0, 2, 0], "int32"))
    [change] = before.diff(before.retake()).moved()
    assert change.dtype == "int32"
    assert change.max_abs_delta == 2.0
    assert change.changed_fraction == pytest.approx(1 / 3)
    assert change.declared_trainable is False


def test_shared_weights_list_every_owner():
    _, _, fixed, normal = seed_containers()
    inp = keras.Input((4,))
    both = keras.Model(inp, keras.layers.Add()([fixed(inp), normal(inp)]), name="both")
    d = snapshot(both).diff(snapshot(both))
    change = d.select("shared_1")[0]
    assert change.path == "FixedContainer/shared_1/kernel"
    assert change.owners == ("FixedContainer", "NormalContainer")
    assert len(d.changes) == 4  # each shared variable counted once
    counts = d.by_submodel()
    assert counts["FixedContainer"] == counts["NormalContainer"] == (0, 4)
    assert "shared by FixedContainer, NormalContainer" in d.report()


def test_selecting_unwatched_layers_of_a_diff(seed):
    model_fixed, *_ = seed
    before = snapshot(model_fixed, "head")
    d = before.diff(before.retake())
    with pytest.raises(LayerNotFoundError, match="'FixedContainer' were not watched by this diff"):
        d.moved("FixedContainer")
    with pytest.raises(LayerNotFoundError, match="matches the name 'nope'"):
        d.unchanged("nope")


def test_diff_needs_snapshots_of_the_same_weights(seed):
    model_fixed, model_normal, *_ = seed
    with pytest.raises(ValueError, match="cannot compare snapshots of different weights"):
        snapshot(model_fixed, "head").diff(snapshot(model_fixed))
    with pytest.raises(ValueError, match="cannot compare snapshots of different weights"):
        snapshot(model_fixed, "head").diff(snapshot(model_normal, "head"))
    with pytest.raises(TypeError, match="compares two Snapshot objects"):
        diff(snapshot(model_fixed), model_fixed.get_weights())


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_tolerances(seed, bad):
    model_fixed, *_ = seed
    snap = snapshot(model_fixed)
    with pytest.raises(ValueError, match="atol must be a finite number >= 0"):
        snap.diff(snap.retake(), atol=bad)
    with pytest.raises(TypeError, match="rtol must be a real number like 1e-6, got str 'x'"):
        snap.diff(snap.retake(), rtol="x")


def test_to_dict_is_json_and_complete():
    model, _ = base_and_head()
    x, y = data()
    before = snapshot(model)
    model.fit(x, y, verbose=0)
    d = before.diff(snapshot(model))
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert out["model"] == "classifier"
    assert out["total"] == len(model.weights) == 8
    assert out["moved"] == 2
    assert out["by_submodel"]["base"] == {"moved": 0, "total": 6}
    assert out["by_submodel"]["head"] == {"moved": 2, "total": 2}
    first = out["weights"][0]
    assert set(first) >= {
        "path", "layer", "owners", "shape", "dtype", "trainable", "moved",
        "max_abs_delta", "rel_delta", "changed_fraction", "nonfinite",
    }  # fmt: skip
    assert first["path"] == "base/base_dense/kernel" and first["shape"] == [4, 8]


def test_inf_statistics_survive_json(seed):
    model_fixed, *_ = seed
    before = snapshot(model_fixed, "head")
    set_value(model_fixed, "head/bias", [1.0])  # bias starts at 0: relative change is inf
    out = before.diff(before.retake()).to_dict()
    json.dumps(out, allow_nan=False)
    assert [w["rel_delta"] for w in out["weights"] if w["moved"]] == ["inf"]


def test_pending_diff_and_repr(seed):
    model_fixed, *_ = seed
    pending = WeightDiff(snapshot(model_fixed))
    with pytest.raises(RuntimeError, match="filled when its watch\\(\\) block exits"):
        pending.moved()
    assert "empty" in repr(pending)
    snap = snapshot(model_fixed)
    assert isinstance(snap, Snapshot)
    assert repr(snap.diff(snap.retake())) == (
        "<WeightDiff of model 'model_fixed': 0 of 6 weights moved>"
    )
