"""Inference mode: the mode each layer whose behaviour depends on ``training`` really
ran in during a block of training code, and the check that they all ran in inference
mode — ``assert_inference_mode``.

Frozen is not inference mode. Under ``fit()`` every layer's ``call`` receives
``training=True``; a BatchNormalization then runs in inference mode exactly when it is
frozen (``training and trainable``), a Dropout runs in the ``training`` value that
reaches it whatever its flag, and a functional ``base(x, training=False)`` is overridden
by ``fit()`` on Keras releases with keras-team/keras#20285. The check records what
reached each layer (:class:`~pytest_kerasfreeze._keras.interception.ModePatch`, installed for
the block only) and applies that rule (:func:`~pytest_kerasfreeze._keras.flavors.mode_ran`).

Example::

    with assert_inference_mode(model, "base"):
        model.fit(x, y)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import numpy as np

from pytest_kerasfreeze._keras.flavors import (
    has_train_function,
    is_batch_normalization,
    mode_ran,
    takes_training,
)
from pytest_kerasfreeze._keras.interception import ModePatch
from pytest_kerasfreeze.engine.arguments import as_selectors
from pytest_kerasfreeze.engine.findings import FROZEN_IN_TRAINING, Finding
from pytest_kerasfreeze.engine.messages import errors, explain, selector_text
from pytest_kerasfreeze.engine.selection import ModelIndex
from pytest_kerasfreeze.exceptions import FreezeAssertionError, LayerNotFoundError


class InferenceModeCheck:
    """Records the mode each selected layer ran in during a block; on a normal exit,
    raises :class:`FreezeAssertionError` if one ran in training mode. ``with ... as c``
    gives the check: ``c.modes`` maps each layer path to ``(training calls seen,
    inference calls seen)``. An exception raised in the block propagates unchanged."""

    def __init__(
        self,
        model: Any,
        layers: Sequence[Any] = (),
        exclude: Any = (),
        memory: dict[tuple[int, int], dict[int, list[int]]] | None = None,
        label: str = "assert_inference_mode",
    ) -> None:
        self.model = model
        # what the trace of each train function showed, for calls that reuse it (a
        # marker checks every training call of a test)
        self.memory = memory
        self.label = label
        self.call: str | None = None  # the training call a marker checked
        self.index = ModelIndex.of(model)
        self.selectors = tuple(layers)
        self.exclude = as_selectors(exclude)
        self.layers = self._select()
        if not self.layers:
            raise ValueError(
                errors.no_training_dependent_layer(
                    selector_text(self.selectors) or "the whole model", str(model.name)
                )
            )
        self.modes: dict[str, tuple[int, int]] = {}
        self._seen: dict[int, list[int]] = {}
        self._patch = ModePatch(self._record)
        self._stats: dict[str, np.ndarray] = {}
        self._traced_before = False

    # -- selection -------------------------------------------------------------------
    def _matches(self, node: Any, selector: Any) -> bool:
        if isinstance(selector, str):
            text = selector.strip("/")
            return (
                node.path == text
                or node.name == text
                or fnmatch.fnmatchcase(node.path, text)
                or fnmatch.fnmatchcase(node.name, text)
                or node.path.startswith(text + "/")
            )
        return node.layer is selector

    def _select(self) -> dict[str, Any]:
        """``{path: layer}`` of the selected leaf layers whose ``call`` takes
        ``training``; a selector that matches no layer is a :class:`LayerNotFoundError`."""
        nodes = self.index.nodes
        for selector in self.selectors + self.exclude:
            if not any(self._matches(n, selector) for n in nodes):
                raise LayerNotFoundError(
                    errors.no_layer_matches(str(selector), str(self.model.name), self.index.paths())
                )
        chosen: dict[str, Any] = {}
        for node in nodes:
            if self.index.flavor.children(node.layer):
                continue  # a container: its layers are what runs
            if self.selectors and not any(self._matches(node, s) for s in self.selectors):
                continue
            if any(self._matches(node, s) for s in self.exclude):
                continue
            if takes_training(node.layer):
                chosen.setdefault(node.path, node.layer)
        return chosen

    # -- the block -------------------------------------------------------------------
    def _record(self, layer: Any, training: Any) -> None:
        mode = mode_ran(layer, training)
        if mode is not None:
            counts = self._seen.setdefault(id(layer), [0, 0])
            counts[0 if mode else 1] += 1

    def _statistics(self) -> dict[str, np.ndarray]:
        return {
            f"{path}/{self.index.flavor.short_name(v)}": np.array(v.numpy(), copy=True)
            for path, layer in self.layers.items()
            if is_batch_normalization(layer)
            for v in self.index.flavor.weights(layer)
            if not getattr(v, "trainable", True) or "moving" in self.index.flavor.short_name(v)
        }

    def start(self) -> None:
        """Start recording (the patch is in place until :meth:`stop`)."""
        self._traced_before = has_train_function(self.model)
        self._seen = {}
        self._stats = self._statistics()
        self._patch.install()

    def stop(self) -> None:
        """Stop recording: the patched Keras methods are the originals again."""
        self._patch.uninstall()

    def __enter__(self) -> InferenceModeCheck:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self.stop()
        if exc_type is not None:
            return None  # the user's exception goes on untouched
        self.judge()
        return None

    def run_fit(self, x: Any, y: Any, fit_kwargs: dict[str, Any]) -> InferenceModeCheck:
        __tracebackhide__ = True
        with self:
            self.model.fit(x, y, **{"verbose": 0, **fit_kwargs})
        return self

    # -- judging ---------------------------------------------------------------------
    def judge(self) -> None:
        """Raise :class:`FreezeAssertionError` if a selected layer ran in training mode."""
        __tracebackhide__ = True
        function = getattr(self.model, "train_function", None)
        if self.memory is not None and function is not None:
            key = (id(self.model), id(function))
            if self._seen:
                self.memory[key] = dict(self._seen)
            elif key in self.memory:  # the trace was reused: it runs as it was traced
                self._seen = dict(self.memory[key])
        self.modes = {
            path: tuple(self._seen.get(id(layer), [0, 0]))  # type: ignore[misc]
            for path, layer in self.layers.items()
        }
        after = self._statistics()
        moved_stats = {
            path for path, before in self._stats.items() if not np.array_equal(before, after[path])
        }
        training = [path for path, (n_training, _) in self.modes.items() if n_training]
        unseen = [path for path, (a, b) in self.modes.items() if not a and not b]
        if unseen and len(unseen) == len(self.modes) and self._traced_before:
            raise FreezeAssertionError(errors.modes_not_observed(str(self.model.name)))
        if not training:
            return
        rows = []
        for path in training:
            layer = self.layers[path]
            kind = type(layer).__name__
            changed = [p.rpartition("/")[2] for p in moved_stats if p.startswith(path + "/")]
            if is_batch_normalization(layer):
                what = (
                    f"statistics moved ({', '.join(sorted(changed))})"
                    if changed
                    else ("batch statistics used")
                )
            elif "Dropout" in kind:
                what = "dropout active"
            else:
                what = "ran with training=True"
            rows.append((path, kind, what))
        finding = self._finding(rows)
        message = explain.inference_mode_failure(
            self.label + (f" failed on {self.call}" if self.call else " failed"),
            str(self.model.name),
            selector_text(self.selectors) or "the whole model",
            len(training),
            len(self.modes),
            rows,
            [finding] if finding else [],
        )
        raise FreezeAssertionError(message, findings=[finding] if finding else [])

    def _frozen_part(self, path: str, layer: Any) -> str | None:
        """Why ``layer`` counts as frozen: its own flag, or a frozen container above it."""
        if not layer.trainable:
            return "its own flag is False"
        parts = path.split("/")
        for i in range(len(parts) - 1, 0, -1):
            container = self.index.layer_at("/".join(parts[:i]))
            if not container.trainable:
                return f"under the frozen {'/'.join(parts[:i])!r}"
        if not self.model.trainable:
            return f"under the frozen model {self.model.name!r}"
        return None

    def _finding(self, rows: list[tuple[str, str, str]]) -> Finding | None:
        frozen = []
        for path, kind, what in rows:
            why = self._frozen_part(path, self.layers[path])
            if why is not None:
                frozen.append((path, kind, what, why))
        if not frozen:
            return None
        summary, explanation, fix = explain.frozen_in_training(str(self.model.name), frozen)
        return Finding(
            FROZEN_IN_TRAINING,
            str(self.model.name),
            summary,
            explanation,
            fix,
            [p for p, _, _, _ in frozen],
        )


def assert_inference_mode(
    model: Any, *layers: Any, x: Any = None, y: Any = None, exclude: Any = (), **fit_kwargs: Any
) -> InferenceModeCheck:
    """Check that every selected layer whose behaviour depends on ``training``
    (BatchNormalization, Dropout, any layer whose ``call`` takes ``training``) ran in
    inference mode in every call — frozen is not inference mode.

    Without ``x``, returns a context manager that records the modes during its block;
    with ``x`` (and ``y``), calls ``model.fit(x, y, verbose=0, **fit_kwargs)`` itself.

    Example::

        with assert_inference_mode(model, "base"):
            model.fit(x, y)     # fails if a Dropout or BatchNormalization of base trained
    """
    __tracebackhide__ = True
    check = InferenceModeCheck(model, layers, exclude)
    if x is None:
        if y is not None or fit_kwargs:
            given = (["y"] if y is not None else []) + sorted(fit_kwargs)
            raise TypeError(errors.fit_arguments_without_x("assert_inference_mode", given))
        return check
    return check.run_fit(x, y, fit_kwargs)
