"""Where trainable flags come from: assignments with ``file:line``, and model states.

While a test runs, every ``layer.trainable = ...`` made by user code is recorded with
the location of the first frame outside Keras and this plugin, and the layers it
reached (Keras writes the flag onto every sublayer, so a layer shared by two
containers is reached through either).  For every model the trainable state — the
flags of its layers and the set of trainable variables — is kept at each
``compile()``, when its train function is built, and at each training call.
"""

from __future__ import annotations

import itertools
import os
import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze.compat import flavor_of

# Frames of these packages are never "the user's line".
_LIBRARY_PREFIXES = (
    "keras", "tf_keras", "tensorflow", "jax", "jaxlib", "torch", "optree", "absl",
    "pytest_kerasfreeze", "contextlib", "functools", "_pytest", "pluggy",
)  # fmt: skip


def _package(frame: Any) -> str:
    return str(frame.f_globals.get("__name__", "")).split(".", 1)[0]


def user_frame() -> Any:
    """The innermost frame outside Keras, the backends and this plugin (or ``None``)."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        if _package(frame) not in _LIBRARY_PREFIXES:
            return frame
        frame = frame.f_back
    return None


def assigned_by_keras() -> bool:
    """Whether the ``trainable`` assignment being made comes from Keras itself.

    Keras 3 writes a container's flag onto every sublayer, tf_keras' fit() restores the
    flags of its compile() around training: neither is a choice the user made.
    """
    frame: Any = sys._getframe(1)
    # skip this plugin's wrappers and the __setattr__ hooks that route `x.trainable = v`
    while frame is not None and (
        _package(frame) == "pytest_kerasfreeze" or frame.f_code.co_name == "__setattr__"
    ):
        frame = frame.f_back
    return frame is not None and _package(frame) in ("keras", "tf_keras", "tensorflow")


def frame_location(frame: Any) -> str:
    """``path:line`` of a frame, the path relative to the current directory when under it."""
    if frame is None:
        return "<unknown>"
    return f"{_short(frame.f_code.co_filename)}:{frame.f_lineno}"


def user_location() -> str:
    """``path:line`` of :func:`user_frame`."""
    return frame_location(user_frame())


def _short(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return filename
    return filename if rel.startswith("..") else rel


@dataclass
class Assignment:
    """One ``layer.trainable = value`` made by user code.

    The layer is held weakly: a test that builds and drops many models must not keep
    them alive. ``reached`` holds the ids of the layers the assignment reached; they
    are compared only while the layer lives (:meth:`alive`), so a reused id of a
    dead layer never matches.
    """

    seq: int
    layer_ref: weakref.ref[Any]
    name: str
    value: bool
    location: str
    reached: set[int]

    @property
    def layer(self) -> Any:
        return self.layer_ref()

    def alive(self) -> bool:
        return self.layer_ref() is not None

    def describe(self) -> str:
        return f"{self.name}.trainable = {self.value} at {self.location}"

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.name, "value": self.value, "location": self.location}


@dataclass
class TrainableState:
    """The trainable flags of a model's layers and its trainable variables, at one moment.

    ``known`` holds the ids of every weight the model had then: a weight created later
    (a model built by its first ``fit()``) is new, not unfrozen.
    """

    seq: int
    event: str  # "compile", "build" or "call"
    location: str
    flags: dict[int, bool]
    trainable: frozenset[int] | None  # None when only flags are known
    known: frozenset[int] | None = None


@dataclass
class ModelHistory:
    compiles: list[TrainableState] = field(default_factory=list)
    built: TrainableState | None = None


def current_state(model: Any, event: str, seq: int, location: str) -> TrainableState:
    flavor = flavor_of(model)
    assert flavor is not None
    flags = {id(layer): bool(layer.trainable) for layer in flavor.subtree(model)}
    trainable = frozenset(id(v) for v in flavor.trainable_weights(model))
    known = frozenset(id(v) for v in flavor.weights(model))
    return TrainableState(seq, event, location, flags, trainable, known)


class Provenance:
    """Assignments and model states recorded during one test (models held weakly)."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self.assignments: list[Assignment] = []
        self.histories: weakref.WeakKeyDictionary[Any, ModelHistory] = weakref.WeakKeyDictionary()

    def next_seq(self) -> int:
        return next(self._seq)

    def history(self, model: Any) -> ModelHistory:
        entry = self.histories.get(model)
        if entry is None:
            entry = self.histories[model] = ModelHistory()
        return entry

    # -- events --------------------------------------------------------------------
    def assign(self, layer: Any, value: Any, setter: Any) -> None:
        """Run the real setter; record the assignment if user code made it."""
        flavor = flavor_of(layer)
        if flavor is not None and not assigned_by_keras():
            reached = {id(sub) for sub in flavor.subtree(layer)}
            self.assignments.append(
                Assignment(
                    self.next_seq(),
                    weakref.ref(layer),
                    str(layer.name),
                    bool(value),
                    user_location(),
                    reached,
                )
            )
        setter()

    def compiled(self, model: Any) -> None:
        state = current_state(model, "compile", self.next_seq(), user_location())
        history = self.history(model)
        history.compiles.append(state)
        history.built = None  # compile() drops the train function

    def build_started(self, model: Any, state: TrainableState) -> None:
        self.history(model).built = state

    # -- queries -------------------------------------------------------------------
    def compile_state(self, model: Any) -> TrainableState | None:
        """The state at the model's last compile(); Keras' own record if we missed it."""
        history = self.histories.get(model)
        if history is not None and history.compiles:
            return history.compiles[-1]
        return keras_compile_record(model)

    def build_state(self, model: Any) -> TrainableState | None:
        """The state when the model's train function was built, if seen in this test."""
        history = self.histories.get(model)
        return history.built if history is not None else None

    def assignments_reaching(self, layer_ids: set[int], after: int = 0) -> list[Assignment]:
        """Assignments made after ``after`` that reached any of ``layer_ids``."""
        return [
            a for a in self.assignments if a.seq > after and a.reached & layer_ids and a.alive()
        ]

    def last_assignment(self, layer_id: int) -> Assignment | None:
        for assignment in reversed(self.assignments):
            if layer_id in assignment.reached and assignment.alive():
                return assignment
        return None


def keras_compile_record(model: Any) -> TrainableState | None:
    """The flags Keras itself kept at the model's last ``compile()`` (a compile made
    before this test was observed): a dict in Keras 3, a WeakKeyDictionary in tf_keras."""
    recorded = getattr(model, "_compiled_trainable_state", None)
    if isinstance(recorded, Mapping) and len(recorded):
        flags = {id(layer): bool(flag) for layer, flag in list(recorded.items())}
        return TrainableState(0, "compile", "before this test", flags, None)
    return None
