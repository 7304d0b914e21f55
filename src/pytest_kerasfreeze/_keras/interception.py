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
import importlib
import sys
from collections.abc import Callable
from typing import Any, Protocol

from pytest_kerasfreeze._keras.flavors import keras_modules
from pytest_kerasfreeze._keras.tracing import tf_resource_variable

TRAINING_METHODS = ("fit", "train_on_batch")
_TF_ASSIGNS = ("assign", "assign_add", "assign_sub")
_ORIGINAL = "__kerasfreeze_original__"


class Observer(Protocol):
    def around_training(self, model: Any, method: str, call: Callable[[], Any]) -> Any: ...

    def around_compile(self, model: Any, call: Callable[[], Any]) -> Any: ...

    def around_add_weight(self, layer: Any, call: Callable[[], Any]) -> Any: ...

    def around_trainable(self, layer: Any, value: Any, call: Callable[[], Any]) -> Any: ...

    def around_variable_trainable(
        self, variable: Any, value: Any, call: Callable[[], Any]
    ) -> Any: ...

    def around_optimizer_step(
        self,
        optimizer: Any,
        grads: Any,
        variables: Any,
        run: Callable[[Any, Any], Any],
        frame: Any,
    ) -> Any: ...

    def after_assign(self, variable: Any, value: Any, frame: Any) -> None: ...


def _owner(cls: type, name: str) -> type | None:
    return next((c for c in cls.__mro__ if name in c.__dict__), None)


class Interception:
    """Routes training calls, compiles and ``trainable`` assignments to an observer."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self._undo: list[tuple[type, str, Any]] = []
        # why Keras could not be imported for a test that asked for checks, if it could not
        self.import_error: ImportError | None = None

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
            model, layer = module.Model, module.layers.Layer
            targets += [(model, name, self._training_wrapper) for name in TRAINING_METHODS]
            targets.append((model, "compile", self._method_wrapper("around_compile")))
            targets.append((layer, "trainable", self._flag_wrapper("around_trainable")))
            targets.append((layer, "add_weight", self._method_wrapper("around_add_weight")))
            variable = getattr(module, "Variable", None)
            if module.__name__ == "keras" and isinstance(variable, type):  # Keras 3
                flag = self._flag_wrapper("around_variable_trainable")
                targets.append((variable, "trainable", flag))
                targets.append((variable, "assign", self._assign_wrapper))
                targets.append((module.optimizers.Optimizer, "apply", self._apply_wrapper))
            elif module.__name__ == "tf_keras":
                optimizers = module.optimizers
                targets.append((optimizers.Optimizer, "apply_gradients", self._gradients_wrapper))
                legacy = getattr(getattr(optimizers, "legacy", None), "Optimizer", None)
                if isinstance(legacy, type):
                    targets.append((legacy, "apply_gradients", self._gradients_wrapper))
                resource = tf_resource_variable()
                if resource is not None:  # tf_keras weights: BatchNorm statistics, callbacks
                    targets += [(resource, n, self._assign_wrapper) for n in _TF_ASSIGNS]
        return targets

    def install(self, import_missing: bool = True) -> None:
        if self._undo:
            return
        try:
            targets = self._targets(import_missing)
        except ImportError as err:  # Keras, or its backend, is not installed here
            self.import_error = err
            targets = self._targets(import_missing=False)
        for cls, name, make in targets:
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

    # -- attribution: optimizer steps and weight assignments -------------------------
    def _apply_wrapper(self, original: Any, name: str) -> Any:
        """Keras 3 ``Optimizer.apply(grads, trainable_variables=None)``."""
        observer = self.observer

        @functools.wraps(original)
        def apply(optimizer: Any, grads: Any, trainable_variables: Any = None) -> Any:
            __tracebackhide__ = True
            return observer.around_optimizer_step(
                optimizer,
                grads,
                trainable_variables,
                lambda g, v: original(optimizer, g, v),
                sys._getframe(1),
            )

        setattr(apply, _ORIGINAL, original)
        return apply

    def _gradients_wrapper(self, original: Any, name: str) -> Any:
        """tf_keras ``Optimizer.apply_gradients(grads_and_vars, ...)``."""
        observer = self.observer

        @functools.wraps(original)
        def apply_gradients(optimizer: Any, grads_and_vars: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            pairs = list(grads_and_vars)  # a zip is consumed once: pass the list on
            return observer.around_optimizer_step(
                optimizer,
                [g for g, _ in pairs],
                [v for _, v in pairs],
                lambda g, v: original(optimizer, list(zip(g, v, strict=True)), *args, **kwargs),
                sys._getframe(1),
            )

        setattr(apply_gradients, _ORIGINAL, original)
        return apply_gradients

    def _assign_wrapper(self, original: Any, name: str) -> Any:
        """``variable.assign(value, ...)`` (and assign_add/assign_sub on TensorFlow)."""
        observer = self.observer

        @functools.wraps(original)
        def assign(variable: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(variable, value, *args, **kwargs)
            observer.after_assign(variable, value, sys._getframe(1))
            return result

        setattr(assign, _ORIGINAL, original)
        return assign


class _Observed(property):
    """The observed ``trainable`` property, which remembers the original."""

    __kerasfreeze_original__: property


class ModePatch:
    """Sees the ``training`` value that reaches every layer's ``call`` while installed:
    Keras 3's ``Operation.__call__`` gets it resolved from the call context; tf_keras
    resolves it in ``Layer._get_propagated_call_context_arguments``. Both are put back,
    the very same objects, by :meth:`uninstall` (call it in a ``finally``). Under a
    trace (``tf.function``, ``jax.jit``) the hook runs while the step is traced.
    """

    def __init__(self, seen: Callable[[Any, Any], None]) -> None:
        self._seen = seen
        self._undo: list[tuple[type, str, Any]] = []

    def install(self) -> None:
        if self._undo:
            return
        seen = self._seen
        keras3 = sys.modules.get("keras")
        if keras3 is not None and isinstance(getattr(keras3, "Model", None), type):
            operation = importlib.import_module("keras.src.ops.operation").Operation
            layer_class = keras3.layers.Layer
            original = operation.__dict__["__call__"]

            @functools.wraps(original)
            def call(op: Any, *args: Any, **kwargs: Any) -> Any:
                if "training" in kwargs and isinstance(op, layer_class):
                    seen(op, kwargs["training"])
                return original(op, *args, **kwargs)

            self._put(operation, "__call__", original, call)
        tf_keras = sys.modules.get("tf_keras")
        if tf_keras is not None:
            base = importlib.import_module("tf_keras.src.engine.base_layer").Layer
            name = "_get_propagated_call_context_arguments"
            resolve = base.__dict__.get(name)
            if resolve is not None:

                @functools.wraps(resolve)
                def propagated(layer: Any, *args: Any, **kwargs: Any) -> Any:
                    result = resolve(layer, *args, **kwargs)
                    if getattr(layer, "_expects_training_arg", False):
                        _, call_kwargs, context = result
                        seen(layer, call_kwargs.get("training", context.get("training")))
                    return result

                self._put(base, name, resolve, propagated)

    def _put(self, owner: type, name: str, original: Any, replacement: Any) -> None:
        setattr(replacement, _ORIGINAL, original)
        setattr(owner, name, replacement)
        self._undo.append((owner, name, original))

    def uninstall(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)
