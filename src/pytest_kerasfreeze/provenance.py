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
from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze.compat import Flavor, flavor_of

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


def subtree(flavor: Flavor, layer: Any) -> list[Any]:
    """``layer`` and every layer below it, each once."""
    seen: dict[int, Any] = {}
    stack = [layer]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen[id(current)] = current
        stack.extend(flavor.children(current))
    return list(seen.values())


@dataclass
class Assignment:
    """One ``layer.trainable = value`` made by user code."""

    seq: int
    layer: Any  # kept alive for the test, so the ids below stay unique
    value: bool
    location: str
    reached: set[int]

    @property
    def name(self) -> str:
        return str(self.layer.name)

    def describe(self) -> str:
        return f"{self.name}.trainable = {self.value} at {self.location}"

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.name, "value": self.value, "location": self.location}


@dataclass
class TrainableState:
    """The trainable flags of a model's layers and its trainable variables, at one moment."""

    seq: int
    event: str  # "compile", "build" or "call"
    location: str
    flags: dict[int, bool]
    trainable: frozenset[int] | None  # None when only flags are known


@dataclass
class ModelHistory:
    model: Any
    compiles: list[TrainableState] = field(default_factory=list)
    built: TrainableState | None = None


def current_state(model: Any, event: str, seq: int, location: str) -> TrainableState:
    flavor = flavor_of(model)
    assert flavor is not None
    flags = {id(layer): bool(layer.trainable) for layer in subtree(flavor, model)}
    trainable = frozenset(id(v) for v in flavor.trainable_weights(model))
    return TrainableState(seq, event, location, flags, trainable)


class Provenance:
    """Assignments and model states recorded during one test."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self.assignments: list[Assignment] = []
        self.histories: dict[int, ModelHistory] = {}

    def next_seq(self) -> int:
        return next(self._seq)

    def history(self, model: Any) -> ModelHistory:
        entry = self.histories.get(id(model))
        if entry is None or entry.model is not model:
            entry = self.histories[id(model)] = ModelHistory(model)
        return entry

    # -- events --------------------------------------------------------------------
    def assign(self, layer: Any, value: Any, setter: Any) -> None:
        """Run the real setter; record the assignment if user code made it."""
        flavor = flavor_of(layer)
        if flavor is not None and not assigned_by_keras():
            reached = {id(sub) for sub in subtree(flavor, layer)}
            self.assignments.append(
                Assignment(self.next_seq(), layer, bool(value), user_location(), reached)
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
        history = self.histories.get(id(model))
        if history is not None and history.model is model and history.compiles:
            return history.compiles[-1]
        recorded = getattr(model, "_compiled_trainable_state", None)
        if isinstance(recorded, dict) and recorded:  # both flavours keep {layer: flag}
            flags = {id(layer): bool(flag) for layer, flag in recorded.items()}
            return TrainableState(0, "compile", "before this test", flags, None)
        return None

    def build_state(self, model: Any) -> TrainableState | None:
        history = self.histories.get(id(model))
        if history is not None and history.model is model:
            return history.built
        return None

    def assignments_reaching(self, layer_ids: set[int], after: int = 0) -> list[Assignment]:
        """Assignments made after ``after`` that reached any of ``layer_ids``."""
        return [a for a in self.assignments if a.seq > after and a.reached & layer_ids]

    def last_assignment(self, layer_id: int) -> Assignment | None:
        for assignment in reversed(self.assignments):
            if layer_id in assignment.reached:
                return assignment
        return None
