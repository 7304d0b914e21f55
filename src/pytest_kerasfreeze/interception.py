"""Observing Keras for the duration of one test.

Observed: ``fit()`` and ``train_on_batch()`` (to check and record what moved),
``compile()`` (to record the trainable state it saw), the ``Layer.trainable`` setter and
Keras 3's ``Variable.trainable`` setter (to record where each freeze was made), and
``Layer.add_weight`` (to record weights created on a built layer: ``enable_lora``).
Each is replaced on the class that defines it — found along the MRO of
``keras.Model`` / ``keras.layers.Layer`` / ``keras.Variable`` and, when it is in use, of
their ``tf_keras`` twins — and put back, the very same objects, by
:meth:`Interception.uninstall`, which the plugin calls in a ``finally``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from pytest_kerasfreeze.flavors import keras_modules

TRAINING_METHODS = ("fit", "train_on_batch")
_ORIGINAL = "__kerasfreeze_original__"


class Observer(Protocol):
    def around_training(self, model: Any, method: str, call: Callable[[], Any]) -> Any: ...

    def around_compile(self, model: Any, call: Callable[[], Any]) -> Any: ...

    def around_add_weight(self, layer: Any, call: Callable[[], Any]) -> Any: ...

    def around_trainable(self, layer: Any, value: Any, call: Callable[[], Any]) -> Any: ...

    def around_variable_trainable(
        self, variable: Any, value: Any, call: Callable[[], Any]
    ) -> Any: ...


def _owner(cls: type, name: str) -> type | None:
    return next((c for c in cls.__mro__ if name in c.__dict__), None)


class Interception:
    """Routes training calls, compiles and ``trainable`` assignments to an observer."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self._undo: list[tuple[type, str, Any]] = []

    @property
    def observing(self) -> bool:
        """Whether this interception's wrappers are in place (not only suspending)."""
        return any(
            getattr(owner.__dict__.get(name), "__kerasfreeze_original__", None) is not None
            for owner, name, _ in self._undo
        )

    def _targets(self, import_missing: bool) -> list[tuple[type, str, Callable[[Any, str], Any]]]:
        """What is patched: ``(class, attribute, wrapper factory)``."""
        targets: list[tuple[type, str, Callable[[Any, str], Any]]] = []
        for module in keras_modules(import_missing):
            for name in TRAINING_METHODS:
                targets.append((module.Model, name, self._training_wrapper))
            targets.append((module.Model, "compile", self._method_wrapper("around_compile")))
            targets.append(
                (module.layers.Layer, "trainable", self._flag_wrapper("around_trainable"))
            )
            targets.append(
                (module.layers.Layer, "add_weight", self._method_wrapper("around_add_weight"))
            )
            variable = getattr(module, "Variable", None)
            if module.__name__ == "keras" and isinstance(variable, type):  # Keras 3 only
                targets.append(
                    (variable, "trainable", self._flag_wrapper("around_variable_trainable"))
                )
        return targets

    def install(self, import_missing: bool = True) -> None:
        if self._undo:
            return
        for cls, name, make in self._targets(import_missing):
            self._patch(cls, name, make)

    def suspend_enclosing(self) -> None:
        """Observe nothing, and keep an enclosing interception (a pytester run inside a
        test) from observing this run either, until :meth:`uninstall`."""
        if self._undo:
            return
        for cls, name, _ in self._targets(import_missing=False):
            self._patch(cls, name, lambda original, _name: original)

    def uninstall(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)

    def _patch(self, cls: type, name: str, make: Callable[[Any, str], Any]) -> None:
        owner = _owner(cls, name)
        if owner is None:
            return
        current = owner.__dict__[name]
        # An enclosing interception (a pytester run inside a test) may be active: wrap
        # the true original, so only the innermost run observes, and give the enclosing
        # one its wrapper back on uninstall.
        original = getattr(current, _ORIGINAL, current)
        replacement = make(original, name)
        if replacement is current:
            return
        setattr(owner, name, replacement)
        self._undo.append((owner, name, current))

    # -- the replacements ----------------------------------------------------------
    def _training_wrapper(self, original: Any, name: str) -> Any:
        observer = self.observer

        @functools.wraps(original)
        def training_call(model: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            return observer.around_training(model, name, lambda: original(model, *args, **kwargs))

        setattr(training_call, _ORIGINAL, original)
        return training_call

    def _method_wrapper(self, hook: str) -> Callable[[Any, str], Any]:
        """A factory of wrappers that route ``obj.method(...)`` to ``observer.<hook>``."""
        around = getattr(self.observer, hook)

        def make(original: Any, name: str) -> Any:
            @functools.wraps(original)
            def observed_call(obj: Any, *args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True
                return around(obj, lambda: original(obj, *args, **kwargs))

            setattr(observed_call, _ORIGINAL, original)
            return observed_call

        return make

    def _flag_wrapper(self, hook: str) -> Callable[[Any, str], Any]:
        """A factory of ``trainable`` properties whose setter goes through ``observer.<hook>``."""
        around = getattr(self.observer, hook)

        def make(original: property, name: str) -> property:
            setter: Any = original.fset

            def set_trainable(obj: Any, value: Any) -> None:
                around(obj, value, lambda: setter(obj, value))

            observed = _Observed(original.fget, set_trainable, original.fdel, original.__doc__)
            observed.__kerasfreeze_original__ = original
            return observed

        return make


class _Observed(property):
    """The observed ``trainable`` property, which remembers the original."""

    __kerasfreeze_original__: property
