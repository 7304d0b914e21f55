"""The WeightTracker behind the ``weight_tracker`` fixture, used directly."""

import re

import pytest

from kmodels import base_and_head, custom_train_step, data, keras, seed_containers
from pytest_kerasfreeze import Snapshot, WeightDiff, WeightTracker


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
