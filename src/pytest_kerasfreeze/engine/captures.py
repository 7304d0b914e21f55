"""Captures: what is kept of the selected weights of one model at one moment.

:class:`Capture` holds the mechanics (what to keep of each variable, retaking only what
changed, releasing the values); the public :class:`~pytest_kerasfreeze.Snapshot` adds
``diff()`` on top of it, one layer up, once :class:`~pytest_kerasfreeze.WeightDiff`
exists.

Example::

    before = capture(Capture, model, ["base"])
    model.fit(x, y)
    after = before.retake()
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from pytest_kerasfreeze._keras import buffers, digests, hosts, memory
from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.engine.pauses import paused_gc
from pytest_kerasfreeze.engine.provenance import Provenance
from pytest_kerasfreeze.engine.results import CheckResult
from pytest_kerasfreeze.engine.selection import ModelIndex

C = TypeVar("C", bound="Capture")
Mode = Literal["copy", "digest", "auto"]
MODES = ("copy", "digest", "auto")


class Observations(Protocol):
    """What a test's context offers the engine: the provenance of its flags (for the
    diagnosis) and a place to note each check (for the reports). Snapshots taken by the
    plugin's public API carry the current test's; the engine itself never looks one up.
    """

    provenance: Provenance

    def add_check(self, result: CheckResult) -> None: ...


class Capture:
    """The values of some weights of a model, kept at one moment.

    A capture owns what it keeps: training after it cannot change it.

    Example::

        before = capture(Capture, model, ["base"])
        model.fit(x, y)
        after = before.retake()
    """

    def __init__(
        self,
        index: ModelIndex,
        variables: Sequence[Any],
        selectors: Sequence[Any] = (),
        exclude: Sequence[Any] = (),
        *,
        observations: Observations | None = None,
        mode: Literal["copy", "digest"] = "copy",
        _since: Capture | None = None,
    ) -> None:
        self._index = index
        self.mode = mode
        self.variables = list(variables)
        self.selectors = tuple(selectors)
        self.exclude = tuple(exclude)
        self.observations = observations
        # What is kept of each variable (a backend buffer or a numpy copy: buffers.capture)
        self._captured: list[Any] = []
        # Indexes of the weights known bit-identical to the snapshot ``_since`` (shared).
        self._since = _since
        self._same_as_since: set[int] = set()
        # Distributed variables: the largest |replica - replica 0| of each that drifted.
        self.drift: dict[int, float] = {}
        # Exact statistics against ``_since`` of the weights that changed, computed
        # while copying them (one pass over the new values instead of two).
        self._stats_since: dict[int, dict[str, Any]] = {}
        # A weak reference to each immutable backend array captured (JAX): a variable that
        # still holds that very array holds the same bits, with no byte to compare.
        self._sources: list[Any] = []
        self._values: list[np.ndarray] | None = None
        # Whether a fresh compile() would train each weight now; the positions of those
        # whose own flags say trainable under a frozen parent.
        self.trainable: list[bool] = []
        self.own_trainable: set[int] = set()
        with paused_gc():  # a few objects per weight, no cycle: see engine.pauses
            self._read(_since)
        self.released = False

    def _read(self, _since: Capture | None) -> None:
        """Capture every variable (retaking from ``_since``, when given)."""
        index, mode = self._index, self.mode
        flavor = index.flavor
        # The loop below runs once per weight (thousands in a real model): names local.
        raw_of, captured_list, sources, same = (
            flavor.raw,
            self._captured,
            self._sources,
            self._same_as_since,
        )
        since_captured = _since._captured if _since is not None else []
        since_sources = _since._sources if _since is not None else []
        since_drift = _since.drift if _since is not None else {}
        capture, unchanged, source_ref = buffers.capture, buffers.unchanged, buffers.source_ref
        job_of = hosts.job_of
        to_hash: list[tuple[int, Any, Any]] = []  # digest mode: (position, raw, since's)
        for i, variable in enumerate(self.variables):
            raw = raw_of(variable)
            job = job_of(raw)
            if job is not None:  # spread over processes: only the pieces held here
                captured_list.append(hosts.hold(raw, job, mode))
                sources.append(None)
                continue
            if mode == "digest":  # a hash and a norm, where the value lives
                previous = since_captured[i] if _since is not None else None
                if (
                    previous is not None
                    and (source := since_sources[i]) is not None
                    and (source() is raw)
                ):  # the very same immutable array (JAX): same bits
                    captured_list.append(previous)
                    sources.append(source)
                    same.add(i)
                    if previous.replicas_differ:
                        self.drift[i] = math.inf
                else:  # hashed below, all together; the norm reused where the bits are the same
                    to_hash.append((i, raw, previous))
                    captured_list.append(None)
                    sources.append(source_ref(raw))
                continue
            if _since is None:
                captured, spread = capture(raw)
            elif (source := since_sources[i]) is not None and source() is raw:
                # the very same immutable array (JAX): the same bits, the same reference
                sources.append(source)
                captured_list.append(since_captured[i])
                same.add(i)
                if (spread := since_drift.get(i, 0.0)) != 0.0:
                    self.drift[i] = spread
                continue
            elif unchanged(since_captured[i], raw):
                captured, spread = since_captured[i], since_drift.get(i, 0.0)
                same.add(i)
            else:
                captured, spread = self._copy_comparing(since_captured[i], raw)
            sources.append(source_ref(raw))
            captured_list.append(captured)
            if spread:
                self.drift[i] = spread
        if to_hash:
            self._digest(to_hash)
        self.trainable = flavor.trainable_now(index.model, self.variables)
        # positions whose own flags say trainable under a frozen parent (few: read only
        # for weights that are frozen now)
        self.own_trainable = {
            i
            for i, (v, now) in enumerate(zip(self.variables, self.trainable, strict=True))
            if not now
            and (info := index.info[id(v)]).declared_trainable
            and flavor.own_flag(
                v, index.layer_at(info.layer_path) if info.layer_path else index.model
            )
        }

    def _digest(self, to_hash: list[tuple[int, Any, Any]]) -> None:
        """Digest mode: hash the weights ``to_hash`` lists (large host buffers two at a
        time: :func:`digests.digest_all`) into their places."""
        found = digests.digest_all([raw for _, raw, _ in to_hash], [p for _, _, p in to_hash])
        for (i, _, previous), captured in zip(to_hash, found, strict=True):
            self._captured[i] = captured
            if previous is not None and (captured is previous or digests.same(previous, captured)):
                self._same_as_since.add(i)
            if captured.replicas_differ:
                self.drift[i] = math.inf

    def _copy_comparing(self, previous: Any, raw: Any) -> tuple[Any, float]:
        source = buffers.copy_source(raw)
        if (
            source is None
            or not isinstance(previous, np.ndarray)
            or source.shape != previous.shape
            or source.dtype != previous.dtype
        ):
            return buffers.capture(raw)
        copy = np.empty_like(source)
        self._stats_since[len(self._captured)] = buffers.compare(
            previous, source, 0.0, 0.0, copy_into=copy
        )
        copy.setflags(write=False)
        return copy, 0.0

    # -- reading -------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The model the snapshot was taken of."""
        return self._index.model

    @property
    def index(self) -> ModelIndex:
        """The model's index (paths, selectors) the snapshot was taken with."""
        return self._index

    @property
    def nbytes(self) -> int:
        """Bytes of the values kept (a digest keeps 16 bytes and a norm per weight)."""
        held = sum(c.nbytes for c in self._captured if type(c) is hosts.Held)
        if self.mode == "digest":
            kept = (c for c in self._captured if c is not None and type(c) is not hosts.Held)
            return held + sum(len(c.hash) + 8 for c in kept)
        kept = (c for c in self._captured if c is not None and type(c) is not hosts.Held)
        return held + sum(buffers.nbytes(c) for c in kept)

    @property
    def values(self) -> list[np.ndarray]:
        """The kept values as numpy arrays (made on first use where kept by the backend)."""
        self._require_values()
        if self._values is None:
            self._values = [self.value(i) for i in range(len(self._captured))]
        return self._values

    def known_since(self, before: Capture) -> tuple[set[int], dict[int, dict[str, Any]]]:
        """What this capture found out against ``before`` while it was taken (when it was
        retaken from it): the positions of the weights still bit-identical, and the exact
        statistics of those it copied as they changed. Nothing for another capture."""
        if self._since is not before:
            return set(), {}
        return self._same_as_since, self._stats_since

    def kept(self, i: int) -> Any:
        """What is kept of weight ``i``: its copy, or its digest."""
        return self._captured[i]

    def value(self, i: int) -> np.ndarray:
        self._require_values()
        if self._values is not None:
            return self._values[i]
        if self.spread(i):
            raise ValueError(errors.values_elsewhere(self._index.info[id(self.variables[i])].path))
        return buffers.materialize(self._captured[i])

    def spread(self, i: int) -> bool:
        """Whether weight ``i`` is spread over the processes of a multi-process run
        (what is kept of it: this process's pieces, :class:`hosts.Held`)."""
        return type(self._captured[i]) is hosts.Held

    def shape(self, i: int) -> tuple[int, ...]:
        captured = self._captured[i]
        if type(captured) is np.ndarray:
            shape: tuple[int, ...] = captured.shape  # already plain ints
            return shape
        return tuple(int(n) for n in captured.shape)

    def dtype(self, i: int) -> str:
        if self.mode == "digest" or self.spread(i):
            return str(self._captured[i].dtype)
        return buffers.dtype_name(self._captured[i])

    def layouts(self) -> list[tuple[tuple[int, ...], str]]:
        """``(shape, dtype)`` of every weight, in order: :meth:`shape` and :meth:`dtype`
        for all of them in one pass (a diff asks for every weight's)."""
        ndarray, names = np.ndarray, buffers.dtype_name
        if self.mode == "digest":
            return [(self.shape(i), self.dtype(i)) for i in range(len(self._captured))]
        return [
            (c.shape, names(c)) if type(c) is ndarray else (self.shape(i), self.dtype(i))
            for i, c in enumerate(self._captured)
        ]

    def _require_values(self) -> None:
        if self.released:
            raise ValueError(errors.snapshot_released(self.model.name))
        if self.mode == "digest":
            raise ValueError(errors.digest_has_no_values(self.model.name))

    # -- making more ---------------------------------------------------------------
    def retake(self: C) -> C:
        """A new capture of the same weights of the same model, taken now.

        A weight whose bits did not change shares this one's value instead of being
        copied again.
        """
        if self.released:
            raise ValueError(errors.snapshot_released(self.model.name))
        return type(self)(
            self._index,
            self.variables,
            self.selectors,
            self.exclude,
            observations=self.observations,
            mode=self.mode,
            _since=self,
        )

    def release(self) -> None:
        """Drop the kept values: the snapshot can no longer be compared or read."""
        self._captured = [None] * len(self._captured)
        self._values = None
        self._stats_since = {}
        self.released = True

    def __len__(self) -> int:
        return len(self.variables)

    def __repr__(self) -> str:
        kind, model = type(self).__name__, self.model.name
        return f"<{kind} of {len(self)} weights of model {model!r}, {self.nbytes:,} bytes>"


def capture(
    cls: type[C],
    model: Any,
    selectors: Sequence[Any] = (),
    exclude: Sequence[Any] = (),
    observations: Observations | None = None,
    mode: Mode = "auto",
    digest_above: int | None = None,
) -> C:
    """Validate ``model``, resolve the selection and capture it as a ``cls``.

    Example::

        before = capture(Capture, model, ["encoder"], exclude=["*/bias"], mode="digest")
    """
    index, variables, chosen = resolve(model, selectors, exclude, mode, digest_above)
    return cls(index, variables, selectors, exclude, observations=observations, mode=chosen)


def resolve(
    model: Any,
    selectors: Sequence[Any] = (),
    exclude: Sequence[Any] = (),
    mode: Mode = "auto",
    digest_above: int | None = None,
) -> tuple[ModelIndex, list[Any], Literal["copy", "digest"]]:
    """What :func:`capture` would capture, without reading a value: the model's index,
    the selected variables and the mode. Bad input raises the same errors, so a check
    can fail before any training and capture later, from this, once.

    Example::

        index, variables, mode = resolve(model, ["encoder"])
        before = Capture(index, variables, ["encoder"], mode=mode)
    """
    with paused_gc():
        index = ModelIndex.of(model)
        variables = index.select(selectors, exclude)
    if not variables:
        raise ValueError(errors.selected_no_weights(index.describe(selectors, exclude), index.name))
    return index, variables, resolve_mode(mode, index.flavor.total_nbytes(variables), digest_above)


def digest_stats(before: Any, after: Any) -> dict[str, Any]:
    """What two digests of one weight tell: whether it moved (exactly), and a lower
    bound of its relative change; no value was kept to say more."""
    if digests.same(before, after):
        return dict(buffers.UNMOVED, changed_fraction=None, changed_elements=None)
    bound = digests.change_lower_bound(before, after)
    if before.norm > 0:
        relative = bound / before.norm
    else:
        relative = math.inf if bound > 0 else 0.0
    return dict(
        moved=True,
        max_abs_delta=None,
        rel_delta=None,
        changed_fraction=None,
        changed_elements=None,
        nonfinite=after.nonfinite and not before.nonfinite,
        min_rel_delta=relative,
    )


def resolve_mode(
    mode: str, watched: int, digest_above: int | None = None
) -> Literal["copy", "digest"]:
    """``"copy"`` or ``"digest"`` for a snapshot of ``watched`` bytes.

    ``"auto"`` copies unless the bytes exceed ``digest_above`` (default: a quarter of the
    memory available now, :func:`pytest_kerasfreeze._keras.memory.available_memory`). A copy
    asked for explicitly that would not fit in the memory available is refused with an
    error rather than let the process run out of memory. TensorFlow's captures cost
    nothing at first but a copy of each weight training writes, so they count in full.
    """
    if mode not in MODES:
        raise ValueError(errors.bad_mode(mode, MODES))
    if mode == "digest":
        return "digest"
    reading = memory.read_available()
    if mode == "copy":
        if reading.bytes and watched > reading.bytes:
            raise MemoryError(errors.copy_does_not_fit(watched, reading.bytes, reading.source))
        return "copy"
    limit = digest_above if digest_above is not None else reading.bytes // 4
    if reading.bytes and watched > reading.bytes // 2:
        limit = min(limit, reading.bytes // 2)  # never a copy that could exhaust memory
    return "digest" if limit and watched > limit else "copy"
