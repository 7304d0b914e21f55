"""Combining a check across the processes of a multi-process run, so that every process
reaches the same verdict at the same step.

Each process compares only what it holds of each weight (:class:`~pytest_kerasfreeze.
_keras.hosts.Held`: its pieces, copied or hashed) and makes one :data:`RECORD` per
piece: a few figures and a 16-byte hash of the piece now, never its values. The records
of every process are gathered to every process and judged there, the same way
everywhere (:func:`judge`): a weight moved when any of its pieces moved; its figures
are those of each piece's owner (the lowest process holding it); a piece whose copies
on two processes hold different bits is replica drift.

Before anyone joins the collective that carries the records, each process posts its
status to the engine's coordination service and waits a bounded time
(``KERASFREEZE_COMBINE_TIMEOUT`` seconds, default :data:`DEFAULT_TIMEOUT`) for every
other's: a process that failed while checking is named with its error, one that never
answers (killed, hung) is named when the wait ends, and nobody waits in a collective
that can never complete.

Example::

    stats, drift = combine(before, after, atol=0.0, rtol=0.0)   # {position: figures}
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_kerasfreeze._keras import buffers, digests
from pytest_kerasfreeze._keras.hosts import Job
from pytest_kerasfreeze.engine.captures import Capture
from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.exceptions import MultiProcessError

TIMEOUT_VARIABLE = "KERASFREEZE_COMBINE_TIMEOUT"
DEFAULT_TIMEOUT = 300.0  # seconds: longer than any skew between the processes' epochs

# One piece of one weight, as one process saw it between two captures.
RECORD = np.dtype(
    [
        ("weight", "<i8"),  # position in the capture
        ("piece", "<i8"),  # the piece's id, the same on every process
        ("owned", "u1"),  # this process is the piece's owner: its figures count
        ("moved", "u1"),
        ("nonfinite_before", "u1"),
        ("nonfinite_after", "u1"),
        ("became_nonfinite", "u1"),  # a finite value became NaN/Inf (copies only)
        ("changed", "<i8"),  # elements changed (copies only)
        ("size", "<i8"),
        ("max_abs", "<f8"),  # largest |after - before| (copies only)
        ("sq_before", "<f8"),  # sums of squares of the finite values
        ("sq_after", "<f8"),
        ("sq_delta", "<f8"),  # ‖after - before‖² (copies only)
        ("drift", "<f8"),  # largest |replica - replica 0| among this process's replicas
        ("hash", "u1", (16,)),  # the piece now: compared across processes
    ]
)


def timeout() -> float:
    """How long a process waits for the others at a check, in seconds."""
    text = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(errors.bad_combine_timeout(TIMEOUT_VARIABLE, text))
    return value


def combine(
    before: Capture, after: Capture, atol: float, rtol: float
) -> tuple[dict[int, dict[str, Any]], dict[int, float]]:
    """The figures of every weight of ``before`` that spans processes (position ->
    what :class:`~pytest_kerasfreeze.WeightChange` takes), and the drift of those whose
    replicas differ (position -> largest |replica − replica 0|, ``inf`` across
    processes), the same on every process. Nothing for a single-process capture."""
    positions = [i for i in range(len(before)) if before.spread(i)]
    if not positions:
        return {}, {}
    job: Job = before.kept(positions[0]).job
    try:
        records = local_records(before, after, positions, atol, rtol)
    except Exception as err:  # tell the others at once, rather than let them wait
        exchange(job, None, failure=f"{type(err).__name__}: {err}")
        raise
    rows = exchange(job, records.tobytes())
    return judge([np.frombuffer(row, RECORD) for row in rows], positions, before.mode == "digest")


def local_records(
    before: Capture, after: Capture, positions: Sequence[int], atol: float, rtol: float
) -> np.ndarray:
    """This process's records of the pieces it holds of the weights at ``positions``."""
    pairs = [
        (i, b, a)
        for i in positions
        for b, a in zip(before.kept(i).pieces, after.kept(i).pieces, strict=True)
    ]
    records = np.zeros(len(pairs), RECORD)
    for record, (i, b, a) in zip(records, pairs, strict=True):
        if b.id != a.id:
            raise ValueError(errors.different_snapshots())
        was, now = b.digest(), a.digest()
        record["weight"], record["piece"], record["owned"] = i, b.id, b.owned
        record["nonfinite_before"], record["nonfinite_after"] = was.nonfinite, now.nonfinite
        record["sq_before"], record["sq_after"] = was.norm**2, now.norm**2
        record["size"], record["drift"] = math.prod(now.shape), a.drift
        record["hash"] = np.frombuffer(now.hash, np.uint8)
        if isinstance(b.kept, digests.Digest):
            record["moved"] = not digests.same(was, now)
            continue
        stats = buffers.compare(b.kept, a.kept, atol, rtol)
        record["moved"], record["became_nonfinite"] = stats["moved"], stats["nonfinite"]
        if stats["moved"]:
            record["changed"], record["max_abs"] = stats["changed_elements"], stats["max_abs_delta"]
            record["sq_delta"] = _squared_change(b.kept, a.kept, stats, was.norm)
    return records


def _squared_change(
    before: np.ndarray, after: np.ndarray, stats: dict[str, Any], norm: float
) -> float:
    rel = stats["rel_delta"]
    if norm > 0 and math.isfinite(rel):
        return float((rel * norm) ** 2)
    with np.errstate(invalid="ignore", over="ignore"):
        delta = after.astype(np.float64) - before.astype(np.float64)
    delta = delta[~(np.isnan(after.astype(np.float64)) & np.isnan(before.astype(np.float64)))]
    return float(np.dot(delta, delta)) if np.isfinite(delta).all() else math.inf


def exchange(job: Job, payload: bytes | None, failure: str = "") -> list[bytes]:
    """Every process's ``payload``, in process order, once every process said it is
    ready; ``payload=None``: tell the others this process failed (``failure``) and
    return. Raises :class:`~pytest_kerasfreeze.MultiProcessError` naming a process
    that failed or did not answer in time."""
    job.checks += 1
    check, limit = job.checks, timeout()
    status = f"failed {failure}" if payload is None else f"ok {len(payload)}"
    job.publish(_key(check, job.index), status)
    if payload is None:
        return []
    deadline = time.monotonic() + limit
    sizes = {job.index: len(payload)}
    for other in range(job.count):
        if other == job.index:
            continue
        answer = job.wait(_key(check, other), max(0.001, deadline - time.monotonic()))
        if answer is None:
            raise MultiProcessError(
                errors.process_did_not_answer(job.engine, other, job.index, check, limit),
                process=other,
            )
        kind, _, rest = answer.partition(" ")
        if kind != "ok":
            raise MultiProcessError(
                errors.process_failed(job.engine, other, job.index, check, rest), process=other
            )
        sizes[other] = int(rest)
    padded = np.zeros(max(sizes.values()), np.uint8)  # one length for the collective
    padded[: len(payload)] = np.frombuffer(payload, np.uint8)
    rows = job.allgather(padded, limit)
    if check > 1:  # every process is past the previous check's waits by now
        job.forget(_key(check - 1, job.index))
    return [rows[p, : sizes[p]].tobytes() for p in range(job.count)]


def _key(check: int, process: int) -> str:
    return f"kerasfreeze/check/{check}/{process}"


def judge(
    rows: Sequence[np.ndarray], positions: Sequence[int], digest: bool
) -> tuple[dict[int, dict[str, Any]], dict[int, float]]:
    """The figures and the drift of every weight, from every process's records (the
    same on every process: the rows come in process order)."""
    pieces: dict[int, dict[int, list[np.void]]] = {i: {} for i in positions}
    for row in rows:
        for record in row:
            pieces[int(record["weight"])].setdefault(int(record["piece"]), []).append(record)
    stats, drift = {}, {}
    for i, by_piece in pieces.items():
        chosen, spread = [], 0.0
        for copies in by_piece.values():
            spread = max(spread, *(float(r["drift"]) for r in copies))
            if len({r["hash"].tobytes() for r in copies}) > 1:
                spread = math.inf  # two processes hold different bits of one piece
            owner = next(r for r in copies if r["owned"])
            moved_elsewhere = [r for r in copies if r["moved"]]
            chosen.append(owner if owner["moved"] or not moved_elsewhere else moved_elsewhere[0])
        stats[i] = _digest_figures(chosen) if digest else _copy_figures(chosen)
        if spread:
            drift[i] = spread
    return stats, drift


def _relative(change: float, norm: float) -> float:
    if norm > 0:
        return change / norm
    return math.inf if change > 0 else 0.0


def _copy_figures(records: Sequence[np.void]) -> dict[str, Any]:
    if not any(r["moved"] for r in records):
        return dict(buffers.UNMOVED)
    changed, size = sum(int(r["changed"]) for r in records), sum(int(r["size"]) for r in records)
    norm = math.sqrt(sum(float(r["sq_before"]) for r in records))
    return dict(
        moved=True,
        max_abs_delta=max(float(r["max_abs"]) for r in records),
        rel_delta=_relative(math.sqrt(sum(float(r["sq_delta"]) for r in records)), norm),
        changed_fraction=changed / size if size else 0.0,
        changed_elements=changed,
        nonfinite=any(r["became_nonfinite"] for r in records),
    )


def _digest_figures(records: Sequence[np.void]) -> dict[str, Any]:
    if not any(r["moved"] for r in records):
        return dict(buffers.UNMOVED, changed_fraction=None, changed_elements=None)
    was = any(r["nonfinite_before"] for r in records)
    now = any(r["nonfinite_after"] for r in records)
    norm = math.sqrt(sum(float(r["sq_before"]) for r in records))
    norm_after = math.sqrt(sum(float(r["sq_after"]) for r in records))
    bound = math.inf if was != now else abs(norm_after - norm)  # ≤ ‖after − before‖
    return dict(
        moved=True,
        max_abs_delta=None,
        rel_delta=None,
        changed_fraction=None,
        changed_elements=None,
        nonfinite=now and not was,
        min_rel_delta=_relative(bound, norm),
    )
