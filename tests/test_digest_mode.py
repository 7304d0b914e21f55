"""Digest snapshots in the checks (issue 15): mode="digest" | "copy" | "auto", the
kerasfreeze_mode / kerasfreeze_digest_above ini, and the memory guard of "auto" —
against a numpy oracle."""

import math

import numpy as np
import pytest

from kmodels import base_and_head, data, keras, value_of
from pytest_kerasfreeze import FreezeGuard, assert_frozen, assert_trains, snapshot
from pytest_kerasfreeze._keras import memory
from pytest_kerasfreeze.engine.captures import resolve_mode


def oracle(model):
    return {id(v): value_of(v) for v in model.weights}


def test_a_digest_says_exactly_what_moved_and_bounds_by_how_much():
    model, _ = base_and_head(freeze_base=False)
    before = snapshot(model, mode="digest")
    values = oracle(model)
    model.fit(*data(), verbose=0)
    d = before.diff(before.retake())
    assert before.mode == "digest" and before.nbytes == 24 * len(model.weights)
    for v, change in zip(model.weights, d.changes, strict=True):
        after = value_of(v)
        truth = not np.array_equal(values[id(v)], after, equal_nan=True)
        assert change.moved is truth, change.path
        if truth:  # by how much is not kept; the same hash means exactly no change
            assert change.max_abs_delta is None and change.changed_elements is None
        else:
            assert change.max_abs_delta == 0.0
        if truth and np.linalg.norm(values[id(v)]) > 0:
            true_rel = np.linalg.norm(after - values[id(v)]) / np.linalg.norm(values[id(v)])
            assert change.min_rel_delta <= true_rel * (1 + 1e-5) + 1e-7, change.path
    report = d.report()
    assert "digest snapshot: the values were not kept" in report
    assert "≥" in report
    with pytest.raises(ValueError, match=r"keeps no values|kept its figures but not"):
        d.with_tolerance(1e-3, 0.0)


def test_helpers_in_digest_mode():
    model, _ = base_and_head(freeze_base=True)
    x, y = data()
    assert_frozen(model, "base", x=x, y=y, mode="digest")
    d = assert_trains(model, "head", x=x, y=y, mode="digest")
    assert d.by_submodel()["head"] == (2, 2)
    with pytest.raises(ValueError, match="is a digest"):
        assert_frozen(model, "base", mode="digest", atol=1e-3)
    with pytest.raises(ValueError, match="mode='fast' is not a snapshot mode"):
        snapshot(model, mode="fast")


def test_freeze_guard_in_digest_mode():
    model, _ = base_and_head(freeze_base=True)
    guard = FreezeGuard(frozen="base", trains="head", mode="digest")
    model.fit(*data(), epochs=2, verbose=0, callbacks=[guard])
    assert [r.passed for r in guard.results] == [True, True]
    head_kernel = guard.results[0].diff.moved("head")[0]
    assert head_kernel.max_abs_delta is None and head_kernel.min_rel_delta > 0


def test_auto_copies_small_models_and_digests_above_the_threshold():
    assert resolve_mode("auto", 1000) == "copy"
    assert resolve_mode("auto", 1000, digest_above=999) == "digest"
    assert resolve_mode("copy", 10) == "copy" and resolve_mode("digest", 10) == "digest"


def test_auto_never_lets_a_copy_run_out_of_memory(monkeypatch):
    tiny = memory.Reading(4 * 2**20, "MemAvailable (/proc/meminfo)")
    monkeypatch.setattr(memory, "read_available", lambda: tiny)
    assert resolve_mode("auto", 2 * 2**20) == "digest"  # above a quarter of 4 MiB
    assert resolve_mode("auto", 3 * 2**20, digest_above=10 * 2**20) == "digest"  # > half
    with pytest.raises(MemoryError, match=r"would not fit in the 0\.00 GiB of memory"):
        resolve_mode("copy", 8 * 2**20)
    model, _ = base_and_head()
    assert snapshot(model).mode == "copy"  # 0.4 KB: a copy is nothing
    monkeypatch.setattr(
        memory, "read_available", lambda: memory.Reading(1000, "MemAvailable (/proc/meminfo)")
    )
    assert snapshot(model).mode == "digest"


def test_the_ini_chooses_the_mode_of_records_and_helpers(user_project):
    user_project.makeini("[pytest]\nkerasfreeze_digest_above = 64\n")
    user_project.makepyfile(
        test_user="""
from usermodels import make_model, X, Y
from pytest_kerasfreeze import snapshot

def test_records(weight_tracker):
    model = make_model()
    assert snapshot(model).mode == "digest"   # 136 watched bytes > 64
    model.fit(X, Y, verbose=0)
    [record] = weight_tracker.records
    assert record.diff.by_submodel()["head"] == (2, 2)
    assert record.diff.changes[-1].max_abs_delta is None
"""
    )
    user_project.runpytest("--assert=plain").assert_outcomes(passed=1)
    result = user_project.runpytest("--kerasfreeze-mode=copy", "--assert=plain")
    result.assert_outcomes(failed=1)  # the ini threshold only applies to mode=auto
    bad = user_project.runpytest("--kerasfreeze-mode=fast")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


def test_nan_inf_bound_is_infinite():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d")], name="m")
    before = snapshot(model, mode="digest")
    kernel = model.get_layer("d").weights[0]
    kernel.assign(np.full((2, 2), np.nan, "float32"))
    [change] = before.diff(before.retake()).moved()
    assert change.nonfinite and math.isinf(change.min_rel_delta)
