"""The combine step of multi-process checks (issue 25), without processes: judging the
records every process made, and the bounded wait before the collective, with a job
whose store and gather are in memory. The real two-process runs: test_multiprocess.py."""

import math

import numpy as np
import pytest

from pytest_kerasfreeze import MultiProcessError
from pytest_kerasfreeze._keras.hosts import Job
from pytest_kerasfreeze.engine.multihost import RECORD, exchange, judge


def records(*rows):
    out = np.zeros(len(rows), RECORD)
    for record, fields in zip(out, rows, strict=True):
        for name, value in fields.items():
            record[name] = np.frombuffer(value, np.uint8) if name == "hash" else value
    return out


def piece(piece_id, owned, moved=False, hashed=b"a" * 16, **figures):
    return dict(weight=0, piece=piece_id, owned=owned, moved=moved, hash=hashed, **figures)


def test_a_weight_moved_when_one_process_s_piece_moved():
    # ModelParallel over two processes: each owns one half of the kernel
    first = records(piece(0, True, size=32, sq_before=4.0))
    second = records(
        piece(1, True, moved=True, size=32, changed=8, max_abs=0.5, sq_before=5.0, sq_delta=1.0)
    )
    stats, drift = judge([first, second], [0], digest=False)
    assert stats[0]["moved"] is True
    assert stats[0]["changed_elements"] == 8
    assert stats[0]["changed_fraction"] == 8 / 64
    assert stats[0]["max_abs_delta"] == 0.5
    assert stats[0]["rel_delta"] == pytest.approx(1.0 / 3.0)  # ‖Δ‖ / ‖before‖ of the whole
    assert drift == {}


def test_replicas_count_once_and_different_bits_across_processes_are_drift():
    # DataParallel: both hold the whole weight, process 0 owns it; process 1's copy moved
    first = records(piece(0, True, size=16, sq_before=1.0))
    moved = dict(size=16, changed=16, max_abs=2.0, sq_before=1.0, sq_delta=4.0)
    second = records(piece(0, False, moved=True, hashed=b"b" * 16, **moved))
    stats, drift = judge([first, second], [0], digest=False)
    assert stats[0]["moved"] is True and stats[0]["changed_elements"] == 16
    assert stats[0]["changed_fraction"] == 1.0  # the 16 elements of one piece, not 32
    assert drift == {0: math.inf}


def test_unmoved_replicas_agree():
    rows = [records(piece(0, True, size=4)), records(piece(0, False, size=4))]
    stats, drift = judge(rows, [0], digest=True)
    assert stats[0]["moved"] is False and stats[0]["changed_fraction"] is None
    assert drift == {}


def test_digest_figures_bound_the_change_from_the_norms():
    first = records(piece(0, True, moved=True, sq_before=9.0, sq_after=16.0))
    second = records(piece(1, True, sq_before=16.0, sq_after=16.0))
    stats, _ = judge([first, second], [0], digest=True)
    assert stats[0]["max_abs_delta"] is None
    assert stats[0]["min_rel_delta"] == pytest.approx((math.sqrt(32) - 5.0) / 5.0)


class MemoryJob(Job):
    """Two processes: this one, and one whose status is ``other`` (None: never posted)."""

    engine = "JAX"

    def __init__(self, other):
        super().__init__(2, 0)
        self.store = {} if other is None else {"kerasfreeze/check/1/1": other}
        self.waited = []

    def publish(self, key, value):
        self.store[key] = value

    def wait(self, key, timeout):
        self.waited.append(timeout)
        return self.store.get(key)

    def forget(self, key):
        self.store.pop(key, None)

    def allgather(self, payload, timeout):
        return np.stack([payload, np.full_like(payload, 7)])


def test_a_process_that_never_answers_is_named_after_the_bounded_wait(monkeypatch):
    monkeypatch.setenv("KERASFREEZE_COMBINE_TIMEOUT", "2.5")
    job = MemoryJob(None)
    with pytest.raises(MultiProcessError) as caught:
        exchange(job, b"\x01\x02")
    assert caught.value.process == 1
    assert str(caught.value).startswith(
        "process 1 of this JAX multi-process run did not reach check 1 within 2.5 s "
        "(this is process 0): it failed, was killed or hangs."
    )
    assert job.waited and max(job.waited) <= 2.5
    assert job.store["kerasfreeze/check/1/0"] == "ok 2"  # what the others read of this one


def test_a_process_that_failed_is_named_with_its_error():
    job = MemoryJob("failed ValueError: bad shard")
    with pytest.raises(MultiProcessError, match=r"process 1 .* failed at check 1 .*bad shard"):
        exchange(job, b"\x01")


def test_payloads_of_different_lengths_come_back_whole():
    job = MemoryJob("ok 3")
    assert exchange(job, b"\x01") == [b"\x01", b"\x07\x07\x07"]
    assert job.checks == 1


def test_a_bad_timeout_is_refused(monkeypatch):
    monkeypatch.setenv("KERASFREEZE_COMBINE_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="KERASFREEZE_COMBINE_TIMEOUT='soon'"):
        exchange(MemoryJob("ok 1"), b"\x01")
