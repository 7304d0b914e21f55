"""The statistics of a change against a plain float64 reference that shares no code with
the plugin: every block boundary, NaN, Inf and signed zero, with and without the copy the
'after' snapshot makes in the same pass."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_kerasfreeze._keras.buffers import BLOCK as _CHUNK
from pytest_kerasfreeze._keras.buffers import compare

SPECIAL = [0.0, -0.0, 1.0, math.nan, math.inf, -math.inf]


def reference(before, after):
    b, a = before.astype("f8"), after.astype("f8")
    both_nan = np.isnan(b) & np.isnan(a)
    changed = (before.view("u4") != after.view("u4")) & ~both_nan
    with np.errstate(invalid="ignore"):
        delta = np.where(changed, a - b, 0.0)
    delta = np.where(changed & ~np.isfinite(delta), math.inf, np.abs(delta))
    finite_before = b[np.isfinite(b)]
    norm_before = math.sqrt(float(np.sum(finite_before**2)))
    norm_delta = math.sqrt(float(np.sum(delta**2)))
    rel = norm_delta / norm_before if norm_before > 0 else math.inf if norm_delta > 0 else 0.0
    n = int(changed.sum())
    return {
        "moved": n > 0,
        "changed_elements": n,
        "max_abs_delta": float(delta.max()) if n else 0.0,
        "rel_delta": rel if n else 0.0,
        "nonfinite": bool(np.any(np.isfinite(b) & ~np.isfinite(a))) if n else False,
    }


def close(x, y):
    if math.isinf(x) or math.isinf(y):
        return x == y
    return math.isclose(x, y, rel_tol=1e-3, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from([1, 5, _CHUNK - 1, _CHUNK, _CHUNK + 3, 2 * _CHUNK + 7]),
    seed=st.integers(0, 2**16),
    share_changed=st.sampled_from([0.0, 1e-5, 0.3, 1.0]),
    specials=st.lists(
        st.tuples(st.floats(0, 1), st.sampled_from(SPECIAL), st.sampled_from(SPECIAL)),
        max_size=6,
    ),
)
def test_statistics_match_a_float64_reference(size, seed, share_changed, specials):
    rng = np.random.default_rng(seed)
    before = rng.normal(scale=10.0, size=size).astype("float32")
    after = before.copy()
    chosen = rng.random(size) < share_changed
    after[chosen] += rng.normal(size=int(chosen.sum())).astype("float32")
    for where, old, new in specials:
        i = min(int(where * size), size - 1)
        before[i], after[i] = old, new
    expected = reference(before, after)

    for got in (compare(before, after, 0.0, 0.0), _with_copy(before, after)):
        assert got["moved"] == expected["moved"]
        assert got["changed_elements"] == expected["changed_elements"]
        assert got["changed_fraction"] == expected["changed_elements"] / size
        assert got["nonfinite"] == expected["nonfinite"]
        assert close(got["max_abs_delta"], expected["max_abs_delta"])
        assert close(got["rel_delta"], expected["rel_delta"])


def _with_copy(before, after):
    copy = np.empty_like(after)
    stats = compare(before, after, 0.0, 0.0, copy_into=copy)
    assert np.array_equal(copy.view("u4"), after.view("u4"))
    return stats


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), atol=st.sampled_from([1e-6, 1e-3, 0.5]))
def test_the_copy_made_in_the_same_pass_changes_no_statistic(seed, atol):
    rng = np.random.default_rng(seed)
    before = rng.normal(size=(_CHUNK + 11,)).astype("float32")
    after = before + rng.normal(scale=1e-3, size=before.shape).astype("float32")
    after[::7] = before[::7]
    copy = np.empty_like(after)
    assert compare(before, after, atol, 0.0, copy_into=copy) == compare(before, after, atol, 0.0)
    assert np.array_equal(copy, after)
