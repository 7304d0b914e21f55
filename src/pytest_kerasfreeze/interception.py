"""Observing Keras for the duration of one test.

Four things are observed: ``fit()`` and ``train_on_batch()`` (to check and record what
moved), ``compile()`` (to record the trainable state it saw) and the ``Layer.trainable``
setter (to record where each freeze was made).  Each is replaced on the class that
defines it — found along the MRO of ``keras.Model`` / ``keras.layers.Layer`` and, when
it is in use, of their ``tf_keras`` twins — and put back, the very same objects, by
:meth:`Interception.uninstall`, which the plugin calls in a ``finally``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol

TRAINING_METHODS = ("fit", "train_on_batch")
_ORIGINAL = "__kerasfreeze_original__"


class Observer(Protocol):
    def around_training(self, model: Any, method: str, call: Callable[[], Any]) -> Any: ...

    def around_compile(self, model: Any, call: Callable[[], Any]) -> Any: ...

    def around_trainable(self, layer: Any, value: Any, call: Callable[[], Any]) -> Any: ...


def keras_modules(import_missing: bool) -> list[Any]:
    """The Keras flavours in use in this process (``keras``, ``tf_keras``).

    A flavour counts as in use once imported. With ``import_missing`` (a test asked for
    checks), Keras 3 — or tf_keras under ``TF_USE_LEGACY_KERAS=1`` — is imported if
    nothing is yet, so a test that imports Keras inside its body is still observed.
    """
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true")
    modules = []
    for name in ("keras", "tf_keras"):
        module = sys.modules.get(name)
        if module is None and import_missing and name == ("tf_keras" if legacy else "keras"):
            if importlib.util.find_spec(name) is not None:
                module = importlib.import_module(name)
        if module is not None and isinstance(getattr(module, "Model", None), type):
            modules.append(module)
    return modules


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

    def install(self, import_missing: bool = True) -> None:
        if self._undo:
            return
        for module in keras_modules(import_missing):
            for name in TRAINING_METHODS:
                self._patch(module.Model, name, self._training_wrapper)
            self._patch(module.Model, "compile", self._compile_wrapper)
            self._patch(module.layers.Layer, "trainable", self._trainable_wrapper)

    def suspend_enclosing(self) -> None:
        """Observe nothing, and keep an enclosing interception (a pytester run inside a
        test) from observing this run either, until :meth:`uninstall`."""
        if self._undo:
            return
        for module in keras_modules(import_missing=False):
            for cls, name in [(module.Model, n) for n in (*TRAINING_METHODS, "compile")] + [
                (module.layers.Layer, "trainable")
            ]:
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

    def _compile_wrapper(self, original: Any, name: str) -> Any:
        observer = self.observer

        @functools.wraps(original)
        def compile_call(model: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            return observer.around_compile(model, lambda: original(model, *args, **kwargs))

        setattr(compile_call, _ORIGINAL, original)
        return compile_call

    def _trainable_wrapper(self, original: property, name: str) -> property:
        observer = self.observer
        setter = original.fset

        def set_trainable(layer: Any, value: Any) -> None:
            observer.around_trainable(layer, value, lambda: setter(layer, value))

        observed = _Observed(original.fget, set_trainable, original.fdel, original.__doc__)
        observed.__kerasfreeze_original__ = original
        return observed


class _Observed(property):
    """The observed ``trainable`` property, which remembers the original."""

    __kerasfreeze_original__: property
