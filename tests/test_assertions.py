"""assert_frozen / assert_trains in both forms, and their failure messages."""

import numpy as np
import pytest

from kmodels import LEGACY, base_and_head, compile_, data, keras, seed_containers
from pytest_kerasfreeze import (
    FreezeAssertionError,
    FreezeCheck,
    WeightDiff,
    assert_frozen,
    assert_trains,
)


def test_seed_fixed_container_stays_frozen_direct_form():
    model_fixed, *_ = seed_containers()
    x, y = data()
    d = assert_frozen(model_fixed, "FixedContainer", x=x, y=y)
    assert isinstance(d, WeightDiff)
    assert d.by_submodel()["FixedContainer"] == (0, 4)
    assert "head" not in d.by_submodel()  # only the selected weights are watched


def test_direct_form_passes_fit_kwargs():
    model, _ = base_and_head()
    x, y = data(n=20)
    epochs_seen = []
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: epochs_seen.append(e))
    assert_frozen(model, "base", x=x, y=y, epochs=3, batch_size=5, callbacks=[cb])
    assert epochs_seen == [0, 1, 2]


def test_context_manager_passes_and_keeps_the_diff():
    model, _ = base_and_head()
    x, y = data()
    with assert_frozen(model, "base") as check:
        model.fit(x, y, verbose=0)
    assert isinstance(check, FreezeCheck)
    assert check.diff.by_submodel()["base"] == (0, 6)
    with assert_trains(model, "head") as check:
        model.fit(x, y, verbose=0)
    assert check.diff.by_submodel()["head"] == (2, 2)


def test_frozen_failure_message_reads_like_numpy():
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    with pytest.raises(FreezeAssertionError) as info, assert_frozen(model, "base"):
        model.fit(x, y, verbose=0)
    msg = str(info.value)
    lines = msg.splitlines()
    # Keras 3 runs the nested BatchNormalization in training mode inside fit(), despite
    # training=False at construction, so its moving statistics move too; tf_keras not.
    n = 4 if LEGACY else 6
    assert (
        lines[0] == f"assert_frozen failed: {n} of 6 weights of 'base' moved in model 'classifier'"
    )
    assert lines[1] == "Expected: no weight of 'base' moves (exact: any change of value counts)"
    assert lines[2] == f"Mismatched weights: {n} / 6 ({n / 6:.1%})"
    assert "Weights that moved:" in lines
    assert f"  base: {n} of 6 weights moved" in lines
    header = next(line for line in lines if line.strip().startswith("weight "))
    for column in ("shape", "dtype", "max |Δ|", "rel Δ", "changed", "flag now"):
        assert column in header
    row = next(line for line in lines if line.strip().startswith("base/base_dense/kernel"))
    assert "(4, 8)" in row and "float32" in row and "100.0% (32/32)" in row
    assert "trainable" in row
    if not LEGACY:  # moved non-trainable state says what it is
        stat = next(line for line in lines if line.strip().startswith("base/base_bn/moving_mean"))
        assert stat.rstrip().endswith("non-trainable  forward")  # moved by its layer
    assert isinstance(info.value, AssertionError)
    assert info.value.diff.by_submodel()["base"] == (n, 6)


def test_trains_requires_declared_trainable_weights_only():
    # BatchNormalization in training mode: gamma/beta train, moving stats update too,
    # but only gamma/beta (declared trainable) are required to move.
    inp = keras.Input((4,))
    x = keras.layers.Dense(8, name="dense")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = compile_(keras.Model(inp, keras.layers.Dense(1, name="out")(x), name="bn_model"))
    xs, ys = data()
    d = assert_trains(model, x=xs, y=ys)
    assert {c.path for c in d.moved()} >= {"bn/gamma", "bn/beta", "dense/kernel"}


def test_trains_counts_frozen_weights_as_declared_trainable():
    """A frozen layer's kernel is still declared trainable: assert_trains requires it,
    whatever its flag says now — and the message shows the flag."""
    model, _ = base_and_head(freeze_base=True)
    x, y = data()
    with pytest.raises(FreezeAssertionError) as info:
        assert_trains(model, "base", x=x, y=y)
    msg = str(info.value)
    assert msg.startswith(
        "assert_trains failed: 4 of 4 declared-trainable weights of 'base' did not move"
    )
    assert "Expected: every declared-trainable weight of 'base' moves" in msg
    row = next(line for line in msg.splitlines() if "base/base_bn/gamma" in line)
    assert row.rstrip().endswith("frozen")
    assert "moving_mean" not in msg.split("Other sub-models")[0]


def test_trains_on_a_selection_without_trainable_weights_is_a_usage_error():
    class Stats(keras.layers.Layer):
        def build(self, input_shape):
            self.total = self.add_weight(shape=(), initializer="zeros", trainable=False)

        def call(self, x):
            return x

    inp = keras.Input((4,))
    model = compile_(
        keras.Model(inp, keras.layers.Dense(1, name="out")(Stats(name="stats")(inp)), name="m")
    )
    with pytest.raises(ValueError, match="declares no trainable weights"):
        assert_trains(model, "stats")


def test_exception_inside_the_block_propagates_unchanged():
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    boom = RuntimeError("user code failed")
    with pytest.raises(RuntimeError) as info, assert_frozen(model, "base") as check:
        model.fit(x, y, verbose=0)  # base moves: would fail the check
        raise boom
    assert info.value is boom
    assert check.diff is None  # nothing was checked


def test_fit_errors_propagate_from_the_direct_form():
    model, _ = base_and_head()
    with pytest.raises(Exception) as info:
        assert_frozen(model, "base", x=np.ones((4, 7), "float32"), y=np.ones((4, 1), "float32"))
    assert not isinstance(info.value, FreezeAssertionError)


def test_y_without_x_is_a_usage_error():
    model, _ = base_and_head()
    with pytest.raises(TypeError, match="got y, epochs but no x"):
        assert_frozen(model, y=np.ones((4, 1)), epochs=2)


def test_tolerances_relax_the_check():
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    model.compile(optimizer=keras.optimizers.SGD(1e-7), loss="mse")
    assert_frozen(model, "base_dense", x=x, y=y, atol=1e-4)
    with pytest.raises(FreezeAssertionError, match=r"\(atol=0, rtol=0\.5\)"):
        assert_frozen(model, "base_dense", x=x, y=y, rtol=0.5)


def test_other_submodels_are_listed_as_counts():
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    with pytest.raises(FreezeAssertionError) as info:
        assert_frozen(model, "base_dense", "head", x=x, y=y)
    msg = str(info.value)
    assert "Other sub-models and layers" not in msg  # every watched layer misbehaved
    model.get_layer("base").trainable = False
    compile_(model)
    with pytest.raises(FreezeAssertionError) as info:
        assert_frozen(model, x=x, y=y)
    lines = str(info.value).splitlines()
    others = lines[lines.index("Other sub-models and layers (moved / total):") + 1 :]
    assert others[:3] == [
        "  base             0 / 6 moved",
        "  base/base_dense  0 / 2 moved",
        "  base/base_bn     0 / 4 moved",
    ]


def test_whole_model_check_without_layers():
    model, _ = base_and_head()
    x, y = data()
    with pytest.raises(FreezeAssertionError, match="2 of 8 weights of the whole model moved"):
        assert_frozen(model, x=x, y=y)


def test_report_is_capped_for_big_models():
    inp = keras.Input((2,))
    h = inp
    for i in range(40):
        h = keras.layers.Dense(2, name=f"block{i}_dense")(h)
    model = compile_(keras.Model(inp, h, name="deep"))
    x, y = data(in_dim=2, out_dim=2)
    with pytest.raises(FreezeAssertionError) as info:
        assert_frozen(model, x=x, y=y)
    msg = str(info.value)
    assert "assert_frozen failed: 80 of 80 weights of the whole model moved" in msg
    assert "  ... and 60 more weights in 30 more sub-models" in msg
    assert len(msg.splitlines()) < 40
    report = info.value.diff.report()
    assert "... and 15 more sub-models and layers" in report


ENGINE_ALONE = """
import os, sys
import numpy as np
if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras
from pytest_kerasfreeze import FreezeAssertionError, assert_frozen, assert_trains_only, snapshot

base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="features")], name="base")
base.trainable = False
inputs = keras.Input((4,))
model = keras.Model(inputs, keras.layers.Dense(1, name="head")(base(inputs)), name="clf")
model.compile(optimizer="adam", loss="mse")
x, y = np.random.rand(32, 4), np.random.rand(32, 1)
before = snapshot(model)
with assert_trains_only(model, "head"):
    model.fit(x, y, verbose=0)
assert before.diff(snapshot(model)).by_submodel()["head"] == (2, 2)
try:
    with assert_frozen(model, "head"):
        model.fit(x, y, verbose=0)
except FreezeAssertionError as caught:
    assert "2 of 2 weights of 'head' moved" in str(caught), str(caught)
else:
    raise SystemExit("assert_frozen did not fail")
print("pytest imported:", "pytest" in sys.modules, "_pytest" in sys.modules)
"""


def test_the_engine_runs_with_no_test_and_no_pytest():
    """snapshot, diff and the checks in a plain script: no current test context, and
    pytest itself never imported (the plugin module is the only one that needs it)."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", ENGINE_ALONE], capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pytest imported: False False" in done.stdout, done.stdout
