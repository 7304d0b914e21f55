"""Snapshots: private copies of the selected weights of one model at one moment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_kerasfreeze.checklog import selector_text
from pytest_kerasfreeze.compat import captured_dtype, captured_nbytes, materialize
from pytest_kerasfreeze.selection import ModelIndex, require_model

if TYPE_CHECKING:
    from pytest_kerasfreeze.weightdiff import WeightDiff


class Snapshot:
    """The values of some weights of a model, copied at one moment.

    A snapshot owns its copies: training after it cannot change them.  Compare two
    snapshots of the same weights with :meth:`diff`.

    Example::

        before = snapshot(model, "base")
        model.fit(x, y)
        print(before.diff(snapshot(model, "base")).report())
    """

    def __init__(
        self,
        index: ModelIndex,
        variables: Sequence[Any],
        selectors: Sequence[Any] = (),
        *,
        since: Snapshot | None = None,
    ) -> None:
        self.index = index
        self.variables = list(variables)
        self.selectors = tuple(selectors)
        flavor = index.flavor
        # What is kept of each variable (a backend tensor or a numpy copy: compat.capture)
        self._captured: list[Any] = []
        # Indexes of the weights known bit-identical to the snapshot ``since`` (shared).
        self.since = since
        self.same_as_since: set[int] = set()
        # Distributed variables: the largest |replica - replica 0| of each that drifted.
        self.drift: dict[int, float] = {}
        # Exact statistics against ``since`` of the weights that changed, computed while
        # copying them (one pass over the new values instead of two).
        self.stats_since: dict[int, dict[str, Any]] = {}
        for i, variable in enumerate(self.variables):
            if since is None:
                captured, spread = flavor.capture(variable)
            elif flavor.unchanged(since._captured[i], variable):
                captured, spread = since._captured[i], since.drift.get(i, 0.0)
                self.same_as_since.add(i)
            else:
                captured, spread = self._copy_comparing(since._captured[i], variable)
            self._captured.append(captured)
            if spread:
                self.drift[i] = spread
        self._values: list[np.ndarray] | None = None
        self.trainable = flavor.trainable_now(index.model, self.variables)
        self.released = False

    def _copy_comparing(self, previous: Any, variable: Any) -> tuple[Any, float]:
        from pytest_kerasfreeze.weightdiff import compare

        source = self.index.flavor.private_copy_source(variable)
        if (
            source is None
            or not isinstance(previous, np.ndarray)
            or source.shape != previous.shape
            or source.dtype != previous.dtype
        ):
            return self.index.flavor.capture(variable)
        copy = np.empty_like(source)
        self.stats_since[len(self._captured)] = compare(previous, source, 0.0, 0.0, copy_into=copy)
        copy.setflags(write=False)
        return copy, 0.0

    def release(self) -> None:
        """Drop the kept values: the snapshot can no longer be compared or read."""
        self._captured = [None] * len(self._captured)
        self._values = None
        self.stats_since = {}
        self.released = True

    def _require_values(self) -> None:
        if self.released:
            raise ValueError(
                f"this snapshot of model {self.model.name!r} no longer holds its values "
                f"(a training record keeps only the figures of its diff): take a new "
                f"snapshot, or watch the call with weight_tracker.watch(model)"
            )

    @property
    def values(self) -> list[np.ndarray]:
        """The kept values as numpy arrays (made on first use where kept by the backend)."""
        self._require_values()
        if self._values is None:
            self._values = [materialize(c) for c in self._captured]
        return self._values

    def shape_of(self, i: int) -> tuple[int, ...]:
        return tuple(int(n) for n in self._captured[i].shape)

    def dtype_of(self, i: int) -> str:
        return captured_dtype(self._captured[i])

    def value(self, i: int) -> np.ndarray:
        self._require_values()
        if self._values is not None:
            return self._values[i]
        return materialize(self._captured[i])

    @property
    def model(self) -> Any:
        return self.index.model

    @property
    def nbytes(self) -> int:
        """Bytes of the values kept."""
        return sum(captured_nbytes(c) for c in self._captured if c is not None)

    def retake(self) -> Snapshot:
        """A new snapshot of the same weights of the same model, taken now.

        A weight whose bits did not change shares this snapshot's value instead of
        being copied again.
        """
        self._require_values()
        return Snapshot(self.index, self.variables, self.selectors, since=self)

    def diff(self, after: Snapshot, *, atol: float = 0.0, rtol: float = 0.0) -> WeightDiff:
        """Compare this snapshot (before) with ``after``: a :class:`WeightDiff`.

        ``after`` must be a snapshot of the same weights of the same model. A weight
        moved when ``allclose(before, after, atol, rtol)`` is false; with the default
        tolerances, any change of value does.
        """
        from pytest_kerasfreeze.weightdiff import WeightDiff

        return WeightDiff(self, after, atol=atol, rtol=rtol)

    def __len__(self) -> int:
        return len(self.variables)

    def __repr__(self) -> str:
        return (
            f"<Snapshot of {len(self)} weights of model {self.model.name!r}, {self.nbytes:,} bytes>"
        )


def select_weights(model: Any, layers: Sequence[Any]) -> tuple[ModelIndex, list[Any]]:
    """Validate ``model``, index its layer tree and resolve ``layers`` to variables."""
    flavor, weights = require_model(model)
    index = ModelIndex(model, flavor, weights)
    variables = index.select(layers)
    if not variables:
        names = selector_text(layers)
        raise ValueError(
            f"the layers selected ({names}) of model {model.name!r} hold no weights: "
            f"there is nothing to watch. Select layers that have weights "
            f"(Dense, Conv, Embedding, BatchNormalization, ...)."
        )
    return index, variables


def snapshot(model: Any, *layers: Any) -> Snapshot:
    """Copy the current values of the weights of ``layers`` (all of ``model`` if none).

    ``layers`` are names, ``a/b`` paths, globs, or Layer objects of ``model``. Only the
    selected weights are copied.

    Example::

        before = snapshot(model, "encoder")
        train(model)
        assert not diff(before, snapshot(model, "encoder")).moved()
    """
    index, variables = select_weights(model, layers)
    return Snapshot(index, variables, layers)


def diff(before: Snapshot, after: Snapshot, *, atol: float = 0.0, rtol: float = 0.0) -> WeightDiff:
    """``before.diff(after)``: what changed between two snapshots of the same weights.

    Example::

        before = snapshot(model)
        model.train_on_batch(x, y)
        print(diff(before, snapshot(model)))
    """
    if not isinstance(before, Snapshot) or not isinstance(after, Snapshot):
        raise TypeError(
            "diff(before, after) compares two Snapshot objects taken with snapshot(); "
            f"got {type(before).__name__} and {type(after).__name__}"
        )
    return before.diff(after, atol=atol, rtol=rtol)
