"""The WeightTracker behind the ``weight_tracker`` fixture, used directly."""

import re

import numpy as np
import pytest

from kmodels import base_and_head, custom_train_step, data, keras, seed_containers
from pytest_kerasfreeze import Snapshot, WeightDiff, WeightTracker, snapshot


def test_seed_scenario_watch_reports_normal_container_frozen():
    """Done-when of the foundation issue: on Keras 3 the flag set on FixedContainer
    reaches the shared layers, so NormalContainer does not train either."""
    _, model_normal, _, _ = seed_containers()
    x, y = data()
    with WeightTracker().watch(model_normal) as d:
        model_normal.fit(x, y, epochs=2, verbose=0)
    counts = d.by_submodel()
    assert counts["NormalContainer"] == (0, 4)
    assert counts["head"] == (2, 2)
    report = d.report()
    assert re.search(r"^  NormalContainer +0 / 4 moved$", report, re.M)
    assert re.search(r"^  head +2 / 2 moved$", report, re.M)


def test_watch_train_on_batch():
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    with WeightTracker().watch(model, "head") as d:
        model.train_on_batch(x, y)
    assert isinstance(d, WeightDiff)
    assert [c.path for c in d.moved()] == ["head/kernel", "head/bias"]


def test_watch_custom_training_loop():
    model, _base = base_and_head(freeze_base=True)
    optimizer = keras.optimizers.SGD(0.1)
    x, y = data()
    with WeightTracker().watch(model) as d:
        for _ in range(2):
            custom_train_step(model, optimizer, x, y)
    assert d.by_submodel()["head"] == (2, 2)
    assert d.by_submodel()["base/base_dense"] == (0, 2)
    # a frozen BatchNormalization runs in inference mode: its statistics stay too
    assert [c.path for c in d.unchanged("base_bn")] == [
        "base/base_bn/gamma",
        "base/base_bn/beta",
        "base/base_bn/moving_mean",
        "base/base_bn/moving_variance",
    ]


def test_watch_counts_only_the_block():
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    watch = WeightTracker().watch(model)
    model.fit(x, y, verbose=0)  # between watch() and `with`: not counted
    with watch as d:
        pass
    assert d.moved() == []


def test_watch_diff_is_empty_until_exit_and_filled_after_an_error():
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    with pytest.raises(ZeroDivisionError), WeightTracker().watch(model, "head") as d:
        with pytest.raises(RuntimeError, match="filled when its watch"):
            d.moved()
        model.fit(x, y, verbose=0)
        1 / 0  # noqa: B018
    assert len(d.moved()) == 2  # filled for a post-mortem


def test_tracker_snapshot_and_records():
    model, _ = base_and_head()
    tracker = WeightTracker()
    snap = tracker.snapshot(model, "head")
    assert isinstance(snap, Snapshot) and len(snap) == 2
    assert tracker.records == []


def array_bytes_kept_by(roots):
    """Bytes of numpy arrays reachable from ``roots`` through the plugin's own objects
    and plain containers (Keras' and the backends' objects are not entered)."""
    import gc

    seen, stack, total = set(), list(roots), 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            base = obj if obj.base is None else obj.base
            if id(base) not in seen or base is obj:
                total += obj.nbytes
            continue
        module = type(obj).__module__ or ""
        if isinstance(obj, (list, tuple, dict, set, frozenset)) or module.startswith(
            "pytest_kerasfreeze"
        ):
            stack.extend(gc.get_referents(obj))
    return total


def test_records_keep_figures_not_values(weight_tracker):
    """Issue 11: each recorded call once kept a copy of the whole model (100 calls on an
    8 MiB model: +845 MiB). Records keep what a user reads — figures, moved or not,
    findings — and no weight's values."""
    inputs = keras.Input((256,))
    hidden = keras.layers.Dense(256, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(256, name="out")(hidden))  # 0.5 MiB
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(1).normal(size=(8, 256)).astype("float32")
    for _ in range(40):
        model.train_on_batch(x, x)
    records = weight_tracker.records
    assert len(records) == 40
    model_bytes = sum(w.nbytes for w in model.get_weights())
    kept = array_bytes_kept_by(records)
    assert array_bytes_kept_by([snapshot(model)]) >= model_bytes  # the probe sees copies
    assert kept < model_bytes / 20, f"{kept} bytes of arrays kept by 40 records"
    last = records[-1].diff
    assert last.by_submodel()["hidden"] == (2, 2)
    assert last.changes[0].max_abs_delta > 0  # the figures are kept
    with pytest.raises(ValueError, match="kept its figures but not the weights' values"):
        last.with_tolerance(atol=1.0, rtol=0.0)
