"""``assert_reload_trains_the_same``: save a model, load it with the Keras loader, and
check that the loaded model holds the same values and trains the same weights.

A freeze is lost or changed by a round trip more often than users expect: on Keras 3 a
``.keras`` file brings a nested model's own ``trainable`` flag back ``True`` while its
layers stay frozen; on tf_keras the same round trip also makes the layers re-enabled
under that frozen nested model train. What is compared, per weight path and per
sub-model: the bytes of every weight, every weight's effective flag (is it among the
model's ``trainable_weights``: what the next ``compile()`` trains), and every layer's and
sub-model's own flag.

Example::

    report = assert_reload_trains_the_same(model, tmp_path, format="keras")
    report.loaded.fit(x, y)     # the reloaded model, to go on with
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_kerasfreeze._keras.flavors import is_legacy, load_model
from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.engine.selection import ModelIndex
from pytest_kerasfreeze.exceptions import FreezeAssertionError

FORMATS = ("keras", "h5", "tf")


@dataclass
class ReloadReport:
    """What a round trip changed: ``differences`` (one line each, grouped by sub-model
    in the message), the file ``path`` written and the ``loaded`` model."""

    path: Path
    loaded: Any
    differences: dict[str, list[str]] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        return not self.differences


def _target(model: Any, path: Any, format: str) -> Path:
    where = Path(os.fspath(path))
    if where.is_dir():
        name = f"{model.name}.{format}" if format != "tf" else f"{model.name}_savedmodel"
        where = where / name
    return where


def _bits(value: Any) -> bytes:
    array = np.ascontiguousarray(np.asarray(value))
    return array.tobytes()


def _sub_model(path: str, root: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:-2]) or root if len(parts) > 2 else root


def compare(original: Any, loaded: Any) -> dict[str, list[str]]:
    """The differences between two models, by sub-model path."""
    before, after = ModelIndex.of(original), ModelIndex.of(loaded)
    out: dict[str, list[str]] = {}

    def note(where: str, text: str) -> None:
        out.setdefault(where, []).append(text)

    weights_before = {before.info[id(v)].path: v for v in before.variables}
    weights_after = {after.info[id(v)].path: v for v in after.variables}
    trains_before = {before.info[id(v)].path for v in before.flavor.trainable_weights(original)}
    trains_after = {after.info[id(v)].path for v in after.flavor.trainable_weights(loaded)}
    for path, variable in weights_before.items():
        where = _sub_model(path, before.name)
        twin = weights_after.get(path)
        if twin is None:
            note(where, f"{path}: missing after the reload")
            continue
        if _bits(variable.numpy()) != _bits(twin.numpy()):
            note(where, f"{path}: value differs after the reload")
        if (path in trains_before) != (path in trains_after):
            was, now = ("trains", "frozen") if path in trains_before else ("frozen", "trains")
            note(where, f"{path}: {was} before, {now} after the reload")
    for path in weights_after.keys() - weights_before.keys():
        note(_sub_model(path, before.name), f"{path}: new after the reload")
    layers_before = {node.path: node.layer for node in before.nodes}
    layers_after = {node.path: node.layer for node in after.nodes}
    # the layers that hold weights, and the containers above them
    flags = [(before.name, original, loaded)] + [
        (path, layer, layers_after[path])
        for path, layer in layers_before.items()
        if path in layers_after and before.flavor.weights(layer)
    ]
    for path, layer, twin in flags:
        if bool(layer.trainable) != bool(twin.trainable):
            parent = path.rpartition("/")[0] if path != before.name else ""
            note(
                parent or before.name,
                f"{path}: own flag trainable={bool(layer.trainable)} before, "
                f"trainable={bool(twin.trainable)} after the reload",
            )
    return out


def assert_reload_trains_the_same(
    model: Any, path: Any, format: str = "keras", **load_kwargs: Any
) -> ReloadReport:
    """Save ``model`` (``format``: ``"keras"``, ``"h5"``, or ``"tf"`` — tf_keras'
    SavedModel), load it with the Keras loader, and raise :class:`FreezeAssertionError`
    unless every weight's bytes, every weight's effective flag (what the next
    ``compile()`` trains) and every layer's and sub-model's own ``trainable`` flag are
    the same. ``path``: a file to write, or a directory to write ``<model name>.<format>``
    in; ``load_kwargs`` go to the loader (``custom_objects=...``).

    Example::

        def test_the_checkpoint_keeps_the_freeze(tmp_path):
            assert_reload_trains_the_same(model, tmp_path, format="keras")
    """
    __tracebackhide__ = True
    if format not in FORMATS:
        raise ValueError(errors.reload_bad_format(format, FORMATS))
    if format == "tf" and not is_legacy(model):
        raise ValueError(errors.reload_tf_needs_tf_keras(str(model.name)))
    ModelIndex.of(model)  # a clear error for what is not a built model, before saving
    target = _target(model, path, format)
    if format == "tf":
        model.save(str(target), save_format="tf")
    else:
        model.save(str(target))
    try:
        loaded = load_model(model, str(target), **load_kwargs)
    except Exception as err:
        err.add_note(errors.reload_failed(str(model.name), format, str(target)))
        raise
    report = ReloadReport(target, loaded, compare(model, loaded))
    if not report.same:
        raise FreezeAssertionError(
            errors.reload_differs(str(model.name), format, report.differences)
        )
    return report
