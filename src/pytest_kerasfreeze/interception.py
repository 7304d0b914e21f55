"""Observing ``fit()`` / ``train_on_batch()`` for the duration of one test.

The methods are replaced on the class that defines them (found along the MRO of
``keras.Model`` and, when it is in use, ``tf_keras.Model``) and put back, the very same
function objects, by :meth:`Interception.uninstall` — which the plugin calls in a
``finally`` so a failing or interrupted test never leaks a patch.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

TRAINING_METHODS = ("fit", "train_on_batch")
_ORIGINAL = "__kerasfreeze_original__"

# handler(model, method_name, call) -> whatever ``call()`` returns
Handler = Callable[[Any, str, Callable[[], Any]], Any]


def model_classes(import_missing: bool) -> list[type]:
    """The ``Model`` classes of the Keras flavours in use in this process.

    A flavour counts as in use once imported. With ``import_missing`` (a test asked for
    checks), Keras 3 — or tf_keras under ``TF_USE_LEGACY_KERAS=1`` — is imported if
    nothing is yet, so a test that imports Keras inside its body is still observed.
    """
    classes = []
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true")
    for module_name in ("keras", "tf_keras"):
        module = sys.modules.get(module_name)
        if module is None and import_missing:
            wanted = "tf_keras" if legacy else "keras"
            if module_name == wanted and importlib.util.find_spec(module_name) is not None:
                module = importlib.import_module(module_name)
        model_cls = getattr(module, "Model", None) if module is not None else None
        if isinstance(model_cls, type):
            classes.append(model_cls)
    return classes


class Interception:
    """Routes every training call of every Keras model through ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._undo: list[tuple[type, str, Any]] = []

    @property
    def installed(self) -> bool:
        return bool(self._undo)

    def install(self, import_missing: bool = True) -> None:
        if self._undo:
            return
        for model_cls in model_classes(import_missing):
            for name in TRAINING_METHODS:
                owner = next((c for c in model_cls.__mro__ if name in c.__dict__), None)
                if owner is None:
                    continue
                original = owner.__dict__[name]
                if hasattr(original, _ORIGINAL):  # another interception is active
                    continue
                setattr(owner, name, _intercepted(original, name, self.handler))
                self._undo.append((owner, name, original))

    def uninstall(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)


def _intercepted(original: Any, name: str, handler: Handler) -> Any:
    @functools.wraps(original)
    def training_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        return handler(self, name, lambda: original(self, *args, **kwargs))

    setattr(training_call, _ORIGINAL, original)
    return training_call
