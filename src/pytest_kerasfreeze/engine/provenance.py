"""Where trainable flags come from: assignments with ``file:line``, and model states.

While a test runs, every ``layer.trainable = ...`` made by user code is recorded with
the location of the first frame outside Keras and this plugin, and the layers it
reached (Keras writes the flag onto every sublayer, so a layer shared by two
containers is reached through either).  For every model the trainable state — the
flags of its layers, its trainable variables and every variable it has — is kept at
each ``compile()``, when its train function is built, and at each training call.

Models and layers are held weakly: a test that builds and drops many models keeps
none of them alive.

Example::

    provenance = Provenance()
    provenance.assign(layer, False, setter)     # called by the observed setter
    provenance.compiled(model)                  # called after model.compile()
    provenance.compile_state(model).trainable   # ids of the variables it trained
"""

from __future__ import annotations

import itertools
import os
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze._keras.flavors import (
    KERAS_PACKAGES,
    LIBRARY_PACKAGES,
    compile_record,
    flavor_of,
    has_train_function,
    package_of,
)
from pytest_kerasfreeze.engine.messages import explain


def user_frame() -> Any:
    """The innermost frame outside Keras, the backends and this plugin (or ``None``)."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        if package_of(frame) not in LIBRARY_PACKAGES:
            return frame
        frame = frame.f_back
    return None


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


def _caller() -> Any:
    """The frame that made the assignment or call being observed: past this plugin's
    wrappers and the ``__setattr__`` hooks that route ``x.trainable = v``."""
    frame: Any = sys._getframe(2)
    while frame is not None and (
        package_of(frame) == "pytest_kerasfreeze" or frame.f_code.co_name == "__setattr__"
    ):
        frame = frame.f_back
    return frame


def assigned_by_keras() -> bool:
    """Whether the ``trainable`` assignment being made comes from Keras itself.

    Keras 3 writes a container's flag onto every sublayer, tf_keras' fit() restores the
    flags of its compile() around training: neither is a choice the user made.
    """
    frame = _caller()
    return frame is not None and package_of(frame) in KERAS_PACKAGES


# Keras functions that set a variable's flag as bookkeeping of a layer's own flag, not
# as an action of their own (enable_lora's `self._kernel.trainable = False` is one).
_KERAS_FLAG_BOOKKEEPING = frozenset({"trainable", "_track_variable", "__init__"})


def keras_action() -> str | None:
    """The Keras function the user called that is making this change (``"enable_lora"``),
    ``""`` when user code makes it directly, ``None`` for Keras' own bookkeeping."""
    frame = _caller()
    if frame is None or package_of(frame) not in KERAS_PACKAGES:
        return ""
    name = str(frame.f_code.co_name)
    if name in _KERAS_FLAG_BOOKKEEPING:
        return None
    # the outermost Keras frame below the user's: what the user called
    while frame.f_back is not None and package_of(frame.f_back) in LIBRARY_PACKAGES:
        frame = frame.f_back
    return str(frame.f_code.co_name)


@dataclass
class Assignment:
    """One ``layer.trainable = value`` made by user code — or ``variable.trainable =
    value``, made by the user or by a Keras function the user called (``via``:
    ``layer.enable_lora(rank)`` freezes the kernel variable).

    ``reached`` holds the ids of the layers (or the variable) the assignment reached;
    they are compared only while the target lives (:meth:`alive`), so a reused id of a
    dead layer never matches.
    """

    seq: int
    layer_ref: weakref.ref[Any]
    name: str
    value: bool
    location: str
    reached: set[int]
    via: str = ""
    kind: str = "layer"  # or "variable"

    @property
    def layer(self) -> Any:
        return self.layer_ref()

    def alive(self) -> bool:
        return self.layer_ref() is not None

    def describe(self, name: str | None = None) -> str:
        return explain.assignment(name or self.name, self.value, self.location, self.via)

    def to_dict(self) -> dict[str, Any]:
        out = {"layer": self.name, "value": self.value, "location": self.location}
        if self.via:
            out["via"] = self.via
        return out


@dataclass
class Creation:
    """A weight created on a layer that was already built (``enable_lora``)."""

    seq: int
    variable: int  # its id, compared only while the layer lives
    layer_ref: weakref.ref[Any]
    path: str
    via: str
    location: str


@dataclass
class TrainableState:
    """The trainable flags of a model's layers and its trainable variables, at one moment.

    ``known`` holds the ids of every weight the model had then: a weight created later
    (a model built by its first ``fit()``) is new, not unfrozen. ``trainable`` is
    ``None`` when only flags are known (Keras' own record of an earlier compile).
    """

    seq: int
    event: str  # "compile", "build" or "call"
    location: str
    flags: dict[int, bool]
    trainable: frozenset[int] | None
    known: frozenset[int] | None = None


@dataclass
class ModelHistory:
    compiles: list[TrainableState] = field(default_factory=list)
    built: TrainableState | None = None


def _variable_name(variable: Any) -> str:
    return str(getattr(variable, "path", None) or variable.name)


def current_state(
    model: Any, event: str, seq: int, location: str, weights: list[Any] | None = None
) -> TrainableState:
    """The model's flags, trainable variables and variables now (``weights``: its
    weights, when the caller has listed them already)."""
    flavor = flavor_of(model)
    assert flavor is not None
    flags = {id(layer): bool(layer.trainable) for layer in flavor.subtree(model)}
    trainable = frozenset(id(v) for v in flavor.trainable_weights(model))
    known = frozenset(id(v) for v in (flavor.weights(model) if weights is None else weights))
    return TrainableState(seq, event, location, flags, trainable, known)


class Provenance:
    """Assignments and model states recorded during one test (models held weakly)."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self.assignments: list[Assignment] = []
        self.creations: dict[int, Creation] = {}
        self.histories: weakref.WeakKeyDictionary[Any, ModelHistory] = weakref.WeakKeyDictionary()
        # the state at the start of each training call running now: tf_keras puts the
        # flags of its compile() on the layers while fit() runs, so they are not the user's
        self.calling: weakref.WeakKeyDictionary[Any, TrainableState] = weakref.WeakKeyDictionary()

    def next_seq(self) -> int:
        return next(self._seq)

    def history(self, model: Any) -> ModelHistory:
        entry = self.histories.get(model)
        if entry is None:
            entry = self.histories[model] = ModelHistory()
        return entry

    # -- events --------------------------------------------------------------------
    def assign(self, layer: Any, value: Any, setter: Callable[[], Any]) -> None:
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

    def assign_variable(self, variable: Any, value: Any, setter: Callable[[], Any]) -> None:
        """Run the real setter; record ``variable.trainable = value`` unless it is Keras'
        bookkeeping of a layer's flag."""
        via = keras_action()
        if via is not None:
            self.assignments.append(
                Assignment(
                    self.next_seq(),
                    weakref.ref(variable),
                    _variable_name(variable),
                    bool(value),
                    user_location(),
                    {id(variable)},
                    via,
                    "variable",
                )
            )
        setter()

    def created(self, layer: Any, variable: Any) -> None:
        """Record a weight created on an already built layer (called after add_weight)."""
        via = keras_action() or "add_weight"
        self.creations[id(variable)] = Creation(
            self.next_seq(),
            id(variable),
            weakref.ref(layer),
            _variable_name(variable),
            via,
            user_location(),
        )

    def creation(self, var_id: int) -> Creation | None:
        record = self.creations.get(var_id)
        return record if record is not None and record.layer_ref() is not None else None

    def compiled(self, model: Any) -> None:
        state = current_state(model, "compile", self.next_seq(), user_location())
        history = self.history(model)
        history.compiles.append(state)
        history.built = None  # compile() drops the train function

    def build_started(self, model: Any, state: TrainableState) -> None:
        self.history(model).built = state

    def training_call(self, model: Any, state: TrainableState, run: Callable[[], Any]) -> Any:
        """Run one training call of ``model`` whose start was ``state``: kept as the call's
        state while it runs, and as the build's when this call builds the train function."""
        building = not has_train_function(model)
        self.calling[model] = state
        try:
            return run()
        finally:
            self.calling.pop(model, None)
            if building and has_train_function(model):
                self.build_started(model, state)

    # -- queries -------------------------------------------------------------------
    def call_state(self, model: Any) -> TrainableState | None:
        """The state at the start of the training call of ``model`` running now, if any."""
        return self.calling.get(model)

    def compile_state(self, model: Any) -> TrainableState | None:
        """The state at the model's last compile(); Keras' own record if we missed it."""
        history = self.histories.get(model)
        if history is not None and history.compiles:
            return history.compiles[-1]
        recorded = compile_record(model)
        if recorded is None:
            return None
        flags = {id(layer): flag for layer, flag in recorded.items()}
        return TrainableState(0, "compile", "before this test", flags, None)

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
