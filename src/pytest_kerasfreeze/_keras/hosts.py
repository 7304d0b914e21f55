"""Multi-process jobs: what this process holds of a weight that spans processes, and the
means the engines offer to exchange a check's small records.

Two engines spread one model over processes:

* JAX after ``jax.distributed.initialize(...)``: a variable is a global ``jax.Array``
  that is not fully addressable; this process holds its addressable shards. Every
  process knows the whole layout (``sharding.devices_indices_map``), so each *piece* (a
  distinct shard index) has one owner, the lowest process holding it, known to every
  process without asking anyone;
* TensorFlow's ``MultiWorkerMirroredStrategy``: a mirrored variable keeps replicas on
  every worker; the first worker owns its one piece (the whole weight).

A :class:`Job` offers what the engine has: a key-value store in its coordination
service (JAX's distributed client, TensorFlow's coordination service), with bounded
waits, and a collective that gathers one small array from every process
(``jax.experimental.multihost_utils.process_allgather``, the strategy's ``all_gather``).
What is exchanged, and when, is :mod:`pytest_kerasfreeze.engine.multihost`'s business.

Example::

    job = job_of(flavor.raw(variable))      # None in a single-process run
    held = hold(flavor.raw(variable), job, "digest")
    [p.id for p in held.pieces]             # the pieces this process holds
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_kerasfreeze._keras import buffers, digests


class Job:
    """The processes of one multi-process run, as this process sees them: ``count``
    processes, this one ``index``; ``checks``: how many checks it has combined (every
    process makes the same checks in the same order, so the count names a check)."""

    engine = ""

    def __init__(self, count: int, index: int) -> None:
        self.count = count
        self.index = index
        self.checks = 0

    def publish(self, key: str, value: str) -> None:
        """Post ``value`` under ``key`` in the coordination service's store."""
        raise NotImplementedError

    def wait(self, key: str, timeout: float) -> str | None:
        """The value posted under ``key``, waiting ``timeout`` seconds at most; ``None``
        when nothing was posted by then."""
        raise NotImplementedError

    def forget(self, key: str) -> None:
        """Remove ``key`` from the store."""
        raise NotImplementedError

    def allgather(self, payload: np.ndarray, timeout: float) -> np.ndarray:
        """Every process's ``payload`` (uint8, the same length everywhere), as rows of a
        ``(count, len)`` array in process order."""
        raise NotImplementedError


class JaxJob(Job):
    """A ``jax.distributed`` run: its distributed client's store, and
    ``multihost_utils.process_allgather``."""

    engine = "JAX"

    def __init__(self) -> None:
        import jax
        from jax._src import distributed

        self._client: Any = distributed.global_state.client
        super().__init__(jax.process_count(), jax.process_index())

    def publish(self, key: str, value: str) -> None:
        self._client.key_value_set(key, value, allow_overwrite=True)

    def wait(self, key: str, timeout: float) -> str | None:
        try:
            value: str = self._client.blocking_key_value_get(key, max(1, int(timeout * 1000)))
        except Exception as err:  # jax.errors.JaxRuntimeError, whatever its module
            if "DEADLINE_EXCEEDED" in str(err):
                return None
            raise
        return value

    def forget(self, key: str) -> None:
        self._client.key_value_delete(key)

    def allgather(self, payload: np.ndarray, timeout: float) -> np.ndarray:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(payload))


class TfJob(Job):
    """A ``MultiWorkerMirroredStrategy`` run: the coordination service's store
    (``context.context()``), and the strategy's ``all_gather`` under a timeout."""

    engine = "TensorFlow"

    def __init__(self, strategy: Any) -> None:
        resolver = strategy.cluster_resolver
        jobs = resolver.cluster_spec().as_dict()
        tasks = [(kind, i) for kind in ("chief", "worker") for i in range(len(jobs.get(kind, ())))]
        super().__init__(len(tasks), tasks.index((resolver.task_type, int(resolver.task_id))))
        self._strategy = strategy

    @staticmethod
    def _context() -> Any:
        from tensorflow.python.eager import context

        return context.context()

    def publish(self, key: str, value: str) -> None:
        self._context().set_config_key_value(key, value)

    def wait(self, key: str, timeout: float) -> str | None:
        import tensorflow as tf

        try:
            value = self._context().get_config_key_value(key, max(1, int(timeout * 1000)))
        except tf.errors.DeadlineExceededError:
            return None
        return str(value)

    def forget(self, key: str) -> None:
        self._context().delete_config_key_value(key)

    def allgather(self, payload: np.ndarray, timeout: float) -> np.ndarray:
        import tensorflow as tf

        words = np.zeros(-(-payload.size // 8) * 8, np.uint8)  # the collectives take int64
        words[: payload.size] = payload
        value = tf.constant(words.view(np.int64)[None])
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)

        def gather() -> Any:
            return tf.distribute.get_replica_context().all_gather(value, axis=0, options=options)

        strategy = self._strategy
        rows = strategy.experimental_local_results(strategy.run(gather))[0].numpy()
        per_worker = rows.shape[0] // self.count  # one row per replica, workers in order
        return np.ascontiguousarray(rows[::per_worker]).view(np.uint8)[:, : payload.size]


_JOBS: dict[Any, Job] = {}  # one per engine run (JAX) or per strategy (TensorFlow)
_NEVER_SPREAD: set[type] = set()  # classes whose values never span processes


@functools.cache
def _jax_processes() -> int:
    """How many JAX processes this run has. Fixed once JAX has a backend, which it has
    before any array exists (``jax.distributed.initialize`` must come first): asked only
    with a JAX array in hand, and then once per process."""
    import jax

    return int(jax.process_count())


def job_of(raw: Any) -> Job | None:
    """The job a raw backend value is spread over, or ``None`` where this process holds
    all of it (every single-process run)."""
    cls = type(raw)
    if cls in _NEVER_SPREAD:
        return None
    if buffers.is_torch(raw):  # Keras' torch backend: one process
        _NEVER_SPREAD.add(cls)  # (asked once per class: a tensor has `values` too)
        return None
    if hasattr(cls, "is_fully_addressable"):  # a JAX array
        if _jax_processes() == 1:  # one process: never spread (asked once per class)
            _NEVER_SPREAD.add(cls)
            return None
        if raw.is_fully_addressable:
            return None
        if "jax" not in _JOBS:
            _JOBS["jax"] = JaxJob()
        return _JOBS["jax"]
    strategy = getattr(raw, "distribute_strategy", None) if hasattr(cls, "values") else None
    if strategy is None:
        if not hasattr(cls, "values"):
            _NEVER_SPREAD.add(cls)
        return None
    if getattr(strategy.extended, "_num_workers", 1) <= 1:  # MultiWorkerMirroredStrategy's
        return None
    key = id(strategy)
    if key not in _JOBS:
        _JOBS[key] = TfJob(strategy)
    return _JOBS[key]


@dataclass
class HeldPiece:
    """One piece of a weight this process holds: its ``id`` (the same on every
    process), whether this process ``owned`` it (its figures count), what a capture
    keeps of it (a numpy copy, or a :class:`~pytest_kerasfreeze._keras.digests.Digest`), and
    the ``drift`` of this process's replicas of it (largest |replica − replica 0|)."""

    id: int
    owned: bool
    kept: Any
    drift: float

    def __post_init__(self) -> None:
        self._digest: digests.Digest | None = None

    def digest(self) -> digests.Digest:
        """The digest of what is kept: itself, or that of the copy (made once)."""
        if isinstance(self.kept, digests.Digest):
            return self.kept
        if self._digest is None:
            self._digest = digests.digest_raw(self.kept)
        return self._digest


@dataclass(frozen=True)
class Held:
    """What a capture keeps of a weight spread over the processes of ``job``: the
    weight's global ``shape`` and ``dtype``, and the pieces held here."""

    job: Job
    shape: tuple[int, ...]
    dtype: str
    pieces: tuple[HeldPiece, ...]

    @property
    def nbytes(self) -> int:
        """Bytes kept here (a digest: 16 bytes and a norm per piece)."""
        return sum(
            len(p.kept.hash) + 8 if isinstance(p.kept, digests.Digest) else p.kept.nbytes
            for p in self.pieces
        )


def hold(raw: Any, job: Job, mode: str) -> Held:
    """Copy (``mode="copy"``) or hash (``"digest"``) the pieces of ``raw`` this process
    holds, replica 0 of each; its other local replicas are compared with it."""
    held = []
    for piece_id, owned, replicas in _pieces(raw, job):
        kept: Any
        if mode == "digest":
            kept, *others = (digests.digest_raw(r) for r in replicas)
            drift = math.inf if any(o.hash != kept.hash for o in others) else 0.0
        else:
            kept, *copies = (buffers.to_numpy(r) for r in replicas)
            drift = max((buffers.max_abs_difference(kept, c) for c in copies), default=0.0)
        held.append(HeldPiece(piece_id, owned, kept, drift))
    dtype = getattr(raw.dtype, "name", None) or str(raw.dtype)
    return Held(job, tuple(int(n) for n in raw.shape), str(dtype), tuple(held))


def _pieces(raw: Any, job: Job) -> list[tuple[int, bool, list[Any]]]:
    """``(piece id, owned here, this process's replicas of it)`` for every piece held."""
    if isinstance(job, TfJob):  # a mirrored variable: the whole weight on every worker
        return [(0, job.index == 0, list(raw.values))]
    shape = tuple(int(n) for n in raw.shape)
    ids, owners = _layout(raw.sharding, shape)
    indices = raw.sharding.devices_indices_map(shape)
    groups: dict[tuple[tuple[int, int], ...], list[Any]] = {}
    # addressable_data(i), not addressable_shards: with one device per process, jax 0.10
    # keeps such an array's local buffer under the global sharding, and
    # addressable_shards raises ("the input arrays must have one shard each")
    for i in range(len(raw.sharding.addressable_devices)):
        data = raw.addressable_data(i)
        device = next(iter(data.devices()))
        groups.setdefault(_key(indices[device], shape), []).append((device.id, data))
    held = []
    for key in sorted(groups):
        replicas = [data for _, data in sorted(groups[key], key=lambda pair: pair[0])]
        held.append((ids[key], owners[key] == job.index, replicas))
    return held


@functools.lru_cache(maxsize=4096)
def _layout(sharding: Any, shape: tuple[int, ...]) -> tuple[dict[Any, int], dict[Any, int]]:
    """For every piece of an array of ``shape`` laid out by ``sharding``: its id (its
    position in index order) and its owner (the lowest process holding it)."""
    owners: dict[tuple[tuple[int, int], ...], int] = {}
    for device, index in sharding.devices_indices_map(shape).items():
        key = _key(index, shape)
        owners[key] = min(owners.get(key, device.process_index), device.process_index)
    return {key: i for i, key in enumerate(sorted(owners))}, owners


def _key(index: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    return tuple(s.indices(n)[:2] for s, n in zip(index, shape, strict=True))
