"""Who moved each weight: the events the optimizer and assignment hooks saw, and the
movers of a watched interval.

Two hooks feed an :class:`AttributionLog` (one per test):

* every optimizer step (``apply`` in Keras 3, ``apply_gradients`` in tf_keras): which
  optimizer, from where (``fit()`` or the user's ``file:line``), which variables;
* every assignment of a weight outside an optimizer: by a layer's forward pass, by a
  callback hook, or by other code.

TensorFlow and JAX trace a train step once, so these hooks run in Python only while the
step is traced: what a trace showed is remembered per model and train function, and
replayed by later calls that reuse it. An optimizer's events count in an interval only
if it really stepped there (its step counter advanced, or it was seen running eagerly).

Example::

    log = AttributionLog()
    window = log.open([model])
    model.fit(x, y)                      # the hooks call log.applied / log.assigned
    movers = window.close(changes_by_variable)
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze._keras.tracing import (
    AssignKind,
    GradientKind,
    iterations,
    loss_scale,
    optimizers_of,
    update_delays,
)
from pytest_kerasfreeze.engine.changes import Mover

EventKey = tuple[Any, ...]  # ("apply", optimizer id, site) | ("assign", var id, kind, detail)


@dataclass
class _Memory:
    """What the trace of one train function showed."""

    function: weakref.ref[Any] | Any  # kept so its id is not reused while remembered
    events: set[EventKey] = field(default_factory=set)


@dataclass
class _Call:
    """A training call in progress: traced events seen during it are remembered."""

    key: tuple[int, int] | None
    traced: set[EventKey] = field(default_factory=set)


class AttributionLog:
    """Optimizer steps and weight assignments seen during one test."""

    def __init__(self) -> None:
        self._clock = 0
        self._last: dict[EventKey, int] = {}  # event -> the last tick it was seen
        self._variables: dict[EventKey, frozenset[int]] = {}  # apply event -> variables
        self._optimizers: dict[int, Any] = {}  # optimizers seen (kept for the test)
        # optimizer id -> (tick, step count then) when first seen: an optimizer no watched
        # model holds (the online network's, stepping a target network's shared layers)
        self._first: dict[int, tuple[int, int | None]] = {}
        # optimizer id -> "model.attribute" of a trained model holding it
        self._holders: dict[int, str] = {}
        # apply event -> {variable id: "none" | "zero"}: what its gradient was
        self._gradients: dict[EventKey, dict[int, GradientKind]] = {}
        self._eager: dict[int, int] = {}  # optimizer id -> last tick it ran eagerly
        self._memory: dict[tuple[int, int], _Memory] = {}
        self._calls: list[_Call] = []
        self._windows = 0
        self._local = threading.local()

    @property
    def windows(self) -> int:
        """How many watched intervals are open (checks and watches in progress)."""
        return self._windows

    @property
    def listening(self) -> bool:
        """Whether anything would use an event now (a window or a training call)."""
        return bool(self._windows or self._calls)

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    # -- the hooks -----------------------------------------------------------------
    def in_optimizer(self) -> bool:
        """Whether an optimizer step is running on this thread (its own writes are not
        separate events)."""
        return bool(getattr(self._local, "depth", 0))

    def enter_optimizer(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def leave_optimizer(self) -> None:
        self._local.depth = max(0, getattr(self._local, "depth", 0) - 1)

    def applied(
        self,
        optimizer: Any,
        variables: Iterable[int],
        site: str,
        traced: bool,
        gradients: Mapping[int, GradientKind] | None = None,
    ) -> None:
        """An optimizer updated ``variables`` (ids), called from ``site``; ``gradients``
        says which variables it was handed no gradient (``"none"``) or an all-zero one
        (``"zero"``, known only where the step runs eagerly)."""
        key: EventKey = ("apply", id(optimizer), site)
        self._meet(optimizer)
        self._variables[key] = self._variables.get(key, frozenset()) | frozenset(variables)
        if gradients:
            self._gradients.setdefault(key, {}).update(gradients)
        self._record(key, traced)
        if not traced:
            self._eager[id(optimizer)] = self._clock

    def assigned(self, var_id: int, kind: AssignKind, detail: str, traced: bool) -> None:
        """A weight was assigned outside any optimizer, by ``kind``."""
        self._record(("assign", var_id, kind, detail), traced)

    def _meet(self, optimizer: Any) -> None:
        """Keep an optimizer seen for the first time, with its step count now (under a
        trace: the count before the traced step runs, or ``None`` if unreadable)."""
        if id(optimizer) not in self._optimizers:
            self._optimizers[id(optimizer)] = optimizer
            self._first[id(optimizer)] = (self._tick(), iterations(optimizer))

    def _record(self, key: EventKey, traced: bool) -> None:
        self._last[key] = self._tick()
        if traced:
            for call in self._calls:
                call.traced.add(key)

    # -- training calls ------------------------------------------------------------
    def call_started(self, model: Any) -> None:
        """A training call of ``model`` starts: its optimizers are met (with their step
        counts before it) and named after it, for windows that watch other models."""
        for opt_id, (name, optimizer) in optimizers_of(model).items():
            self._holders.setdefault(opt_id, f"{model.name}.{name}")
            self._meet(optimizer)
        function = getattr(model, "train_function", None)
        self._calls.append(_Call((id(model), id(function)) if function is not None else None))

    def call_ended(self, model: Any) -> None:
        """Remember what a trace showed; replay it when the call reused a traced
        function (its Python ran nowhere this time)."""
        call = self._calls.pop() if self._calls else _Call(None)
        function = getattr(model, "train_function", None)
        if function is None:
            return
        key = (id(model), id(function))
        memory = self._memory.get(key)
        if memory is not None and _target(memory.function) is not function:
            memory = None  # the id of a function that no longer exists
        if call.traced:
            if memory is None:
                memory = self._memory[key] = _Memory(_ref(function))
            memory.events |= call.traced
        elif memory is not None:
            for event in memory.events:
                self._last[event] = self._tick()

    # -- windows -------------------------------------------------------------------
    def open(self, models: Iterable[Any]) -> Window:
        """Start watching an interval; the optimizers ``models`` hold are named after
        their attributes."""
        self._windows += 1
        return Window(self, list(models), self._clock)

    def _closed(self) -> None:
        self._windows = max(0, self._windows - 1)


def _ref(function: Any) -> Any:
    try:
        return weakref.ref(function)
    except TypeError:  # not weak-referenceable: keep it for the test
        return function


def _target(ref: Any) -> Any:
    return ref() if isinstance(ref, weakref.ref) else ref


class Window:
    """One watched interval of an :class:`AttributionLog`."""

    def __init__(self, log: AttributionLog, models: list[Any], start: int) -> None:
        self._log = log
        self._start = start
        self._names: dict[int, str] = {}
        for model in models:
            for opt_id, (name, _) in optimizers_of(model).items():
                self._names.setdefault(opt_id, name)
        candidates = {**log._optimizers}
        for model in models:
            candidates.update({i: o for i, (_, o) in optimizers_of(model).items()})
        self._steps = {i: iterations(o) for i, o in candidates.items()}
        self._scales = {i: loss_scale(o) for i, o in candidates.items()}
        self._closed = False
        # filled by close(): the settings of the optimizers that ran which delay or skip
        # updates, and what the weights' gradients were
        self.delays: list[tuple[str, str, Any]] = []
        self.gradients: dict[int, GradientKind] = {}

    def _name(self, opt_id: int) -> str:
        """What movers call an optimizer: the watched model's attribute holding it, else
        ``"model.attribute"`` of a trained model holding it, else its class."""
        log = self._log
        return (
            self._names.get(opt_id)
            or log._holders.get(opt_id)
            or f"{type(log._optimizers[opt_id]).__name__} (not held by the model)"
        )

    def close(self, moved: Mapping[int, bool]) -> dict[int, tuple[Mover, ...]]:
        """The movers of each moved variable (``moved``: variable id -> moved?)."""
        log = self._log
        if not self._closed:
            self._closed = True
            log._closed()
        ran = set()
        for opt_id, optimizer in log._optimizers.items():
            before, after = self._steps.get(opt_id), iterations(optimizer)
            first_tick, first_count = log._first.get(opt_id, (0, None))
            met_here = opt_id not in self._steps and first_tick > self._start
            if met_here:
                before = first_count
            stepped = before is not None and after is not None and after > before
            # first met under a trace with no readable count: a step traced in this
            # interval runs in it
            unknown = met_here and first_count is None
            if stepped or unknown or log._eager.get(opt_id, -1) > self._start:
                ran.add(opt_id)
            # called in the interval (a step counter that did not advance is one delay)
            called = opt_id in ran or any(
                key[0] == "apply" and key[1] == opt_id and tick > self._start
                for key, tick in log._last.items()
            )
            if called:
                steps = after - before if before is not None and after is not None else None
                for setting, value in update_delays(optimizer, steps, self._scales.get(opt_id)):
                    self.delays.append((self._name(opt_id), setting, value))
        movers: dict[int, list[Mover]] = {}
        for key, tick in log._last.items():
            if tick <= self._start:
                continue
            if key[0] == "apply":
                opt_id, site = key[1], key[2]
                if opt_id not in ran:
                    continue
                mover = Mover("optimizer", self._name(opt_id), site, opt_id)
                for var_id, kind in log._gradients.get(key, {}).items():
                    self.gradients.setdefault(var_id, kind)
                for var_id in log._variables[key]:
                    if moved.get(var_id):
                        movers.setdefault(var_id, []).append(mover)
            else:
                var_id, kind, detail = key[1], key[2], key[3]
                if moved.get(var_id):
                    location = detail if kind == "outside" else ""
                    name = detail if kind == "callback" else ""
                    movers.setdefault(var_id, []).append(Mover(kind, name, location))
        # every mover seen: a loop that writes a stateless_apply() result back shows the
        # optimizer that computed it and the line that wrote it ("outside")
        out = {var_id: tuple(dict.fromkeys(found)) for var_id, found in movers.items()}
        for var_id, was_moved in moved.items():
            if was_moved and var_id not in out:
                out[var_id] = (Mover("outside"),)
        return out
