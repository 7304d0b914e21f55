"""Snapshots: private copies of the selected weights of one model at one moment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_kerasfreeze.selection import ModelIndex, require_model

if TYPE_CHECKING:
    from pytest_kerasfreeze.diff import WeightDiff


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
    ) -> None:
        self.index = index
        self.variables = list(variables)
        self.selectors = tuple(selectors)
        self.values: list[np.ndarray] = []
        # Distributed variables: the largest |replica - replica 0| of each that drifted.
        self.drift: dict[int, float] = {}
        for i, variable in enumerate(self.variables):
            first, *others = index.flavor.read_replicas(variable)
            self.values.append(first)
            spread = max((_max_abs_difference(first, other) for other in others), default=0.0)
            if spread:
                self.drift[i] = spread
        trainable_now = {id(v) for v in index.flavor.trainable_weights(index.model)}
        self.trainable = [id(v) in trainable_now for v in self.variables]

    @property
    def model(self) -> Any:
        return self.index.model

    @property
    def nbytes(self) -> int:
        """Bytes held by the copies."""
        return sum(value.nbytes for value in self.values)

    def retake(self) -> Snapshot:
        """A new snapshot of the same weights of the same model, taken now."""
        return Snapshot(self.index, self.variables, self.selectors)

    def diff(self, after: Snapshot, *, atol: float = 0.0, rtol: float = 0.0) -> WeightDiff:
        """Compare this snapshot (before) with ``after``: a :class:`WeightDiff`.

        ``after`` must be a snapshot of the same weights of the same model. A weight
        moved when ``allclose(before, after, atol, rtol)`` is false; with the default
        tolerances, any change of value does.
        """
        from pytest_kerasfreeze.diff import WeightDiff

        return WeightDiff(self, after, atol=atol, rtol=rtol)

    def __len__(self) -> int:
        return len(self.variables)

    def __repr__(self) -> str:
        return (
            f"<Snapshot of {len(self)} weights of model {self.model.name!r}, {self.nbytes:,} bytes>"
        )


def _max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(a, b, equal_nan=np.issubdtype(a.dtype, np.inexact)):
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        delta = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.nanmax(delta)) if np.isfinite(delta).any() else float("inf")


def select_weights(model: Any, layers: Sequence[Any]) -> tuple[ModelIndex, list[Any]]:
    """Validate ``model``, index its layer tree and resolve ``layers`` to variables."""
    flavor = require_model(model)
    index = ModelIndex(model, flavor)
    variables = index.select(layers)
    if not variables:
        names = ", ".join(repr(getattr(s, "name", s)) for s in layers)
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
