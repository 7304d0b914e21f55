"""Every difference between the Keras flavours lives here, and only here.

Two flavours of Keras build models a user may hand us: Keras 3 (``keras``, on any of its
backends) and Keras 2 (``tf_keras``, selected with ``TF_USE_LEGACY_KERAS=1``).  They keep
sublayers and weights in different private attributes and name variables differently;
the rest of the engine talks to a :class:`Flavor` and never asks which one it has.

Nothing here imports Keras at module level: a flavour is recognised from the class
hierarchy of the object the user passed, so merely loading the plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# The module that defines the base ``Layer`` class of each flavour.
_KERAS3_LAYER_MODULE = "keras.src.layers.layer"
_KERAS2_LAYER_MODULES = ("tf_keras.src.engine.base_layer", "keras.src.engine.base_layer")


class Flavor:
    """How one flavour of Keras exposes a model's layer tree and its weights."""

    name = "keras"

    def children(self, layer: Any) -> list[Any]:
        """The direct sublayers of ``layer`` (the nodes one level down its tree)."""
        raise NotImplementedError

    def own_variables(self, layer: Any) -> list[Any]:
        """Variables created by ``layer`` itself, not by its sublayers."""
        raise NotImplementedError

    def declared_trainable(self, layer: Any) -> list[Any]:
        """The variables ``layer`` created as trainable, whatever its flag says now."""
        raise NotImplementedError

    def weights(self, layer: Any) -> list[Any]:
        """All weight variables of ``layer``, nested ones included; no seeds or metrics."""
        return list(layer.weights)

    def trainable_weights(self, layer: Any) -> list[Any]:
        """The weights a fresh ``compile()`` would train, after every flag is applied."""
        return list(layer.trainable_weights)

    def short_name(self, variable: Any) -> str:
        """The variable's own name, without layer scopes (``"kernel"``)."""
        raise NotImplementedError

    def read_replicas(self, variable: Any) -> list[np.ndarray]:
        """Copies of every replica of the variable; one unless it is distributed
        (a ``tf.distribute`` mirrored variable, a replicated JAX array)."""
        raw = self.raw(variable)
        parts = _replicas(raw)
        if parts:
            return [_to_numpy(p) for p in parts]
        return [_to_numpy(raw)]

    def capture(self, variable: Any) -> tuple[Any, float]:
        """What a snapshot keeps of the variable, and how far its replicas drift apart
        (the largest |replica - replica 0|; 0.0 for a variable that is not distributed)."""
        raw = self.raw(variable)
        parts = _replicas(raw)
        if not parts:
            return capture(raw), 0.0
        first, *others = [_to_numpy(p) for p in parts]
        return first, max(_max_abs_difference(first, other) for other in others)

    def unchanged(self, captured: Any, variable: Any) -> bool:
        """Whether the variable (every replica of it) still holds exactly the captured bits."""
        raw = self.raw(variable)
        return all(same_bits(captured, part) for part in _replicas(raw) or [raw])

    def raw(self, variable: Any) -> Any:
        """The backend object holding the value."""
        return variable

    def is_built(self, layer: Any) -> bool:
        return bool(getattr(layer, "built", False))


class Keras3(Flavor):
    name = "keras3"

    def children(self, layer: Any) -> list[Any]:
        return list(layer._layers)

    def own_variables(self, layer: Any) -> list[Any]:
        return _unique(list(layer._trainable_variables) + list(layer._non_trainable_variables))

    def declared_trainable(self, layer: Any) -> list[Any]:
        # Keras 3 files a variable under ``_trainable_variables`` when it is created and
        # never moves it: ``layer.trainable = False`` only flips ``variable.trainable``.
        return list(layer._trainable_variables)

    def short_name(self, variable: Any) -> str:
        return str(variable.name)

    def raw(self, variable: Any) -> Any:
        # The backend tensor behind the Keras variable (going through
        # Variable.__array__ makes numpy 2 warn about its `copy` keyword).
        if getattr(variable, "_value", True) is None:
            raise ValueError(
                f"weight {variable.path!r} holds no value. On JAX, Keras moves every "
                f"variable's value into the training state during fit() and puts it back "
                f"at the end; a fit() that raised left them empty. The model cannot be "
                f"read or trained any more: build it again (and see the exception that "
                f"fit() raised)."
            )
        return variable.value


class Keras2(Flavor):
    name = "tf_keras"

    def children(self, layer: Any) -> list[Any]:
        return list(layer._flatten_layers(include_self=False, recursive=False))

    def own_variables(self, layer: Any) -> list[Any]:
        return _unique(list(layer._trainable_weights) + list(layer._non_trainable_weights))

    def declared_trainable(self, layer: Any) -> list[Any]:
        # tf_keras keeps created-trainable weights in ``_trainable_weights`` and filters
        # them by the layer's flag only in the ``trainable_weights`` property.
        return list(layer._trainable_weights)

    def short_name(self, variable: Any) -> str:
        # "outer/dense/kernel:0" -> "kernel"
        return str(variable.name).rsplit("/", 1)[-1].split(":", 1)[0]


def _max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(bit_view(a), bit_view(b)):
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        delta = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.nanmax(delta)) if np.isfinite(delta).any() else float("inf")


def _replicas(raw: Any) -> list[Any]:
    """The per-device copies of a distributed value, or ``[]``."""
    values = getattr(raw, "values", None)
    if isinstance(values, tuple) and len(values) > 1:  # tf.distribute mirrored variable
        return list(values)
    shards = getattr(raw, "addressable_shards", None)
    sharding = getattr(raw, "sharding", None)
    if shards and len(shards) > 1 and getattr(sharding, "is_fully_replicated", False):
        return [shard.data for shard in shards]  # replicated JAX array
    return []


# -- snapshots in the backend's own memory --------------------------------------------
# A captured value is what a snapshot keeps of one variable: on TensorFlow the tensor a
# read returns (TensorFlow copies a variable's buffer on its next write while a read
# holds it, so the capture costs nothing until training changes the variable, and stays
# intact through eager and XLA updates); elsewhere a private numpy copy (JAX donates the
# old buffers to the next training step, torch updates in place).


def _is_tf_resource(raw: Any) -> bool:
    return hasattr(raw, "read_value") and hasattr(raw, "handle")


# Below this size a TensorFlow variable is cheaper to copy to numpy (one eager op) than
# to keep as a tensor and compare in TensorFlow (several eager ops, ~10 µs each).
_TF_TENSOR_MIN_BYTES = 1 << 16


def capture(raw: Any) -> Any:
    """What a snapshot keeps of one (non-distributed) variable."""
    if _is_tf_resource(raw) and raw.shape.num_elements() * raw.dtype.size >= _TF_TENSOR_MIN_BYTES:
        return raw.value()  # one ReadVariableOp; read_value() adds an Identity op
    return _to_numpy(raw)


def materialize(captured: Any) -> np.ndarray:
    """A numpy array of a captured value (a copy for TensorFlow, itself otherwise)."""
    if isinstance(captured, np.ndarray):
        return captured
    return np.asarray(captured.numpy())


def captured_dtype(captured: Any) -> str:
    """The numpy name of a captured value's dtype ("float32", "bfloat16", ...)."""
    if isinstance(captured, np.ndarray):
        return str(captured.dtype)
    return str(
        captured.dtype.as_numpy_dtype.__name__ if False else np.dtype(captured.dtype.as_numpy_dtype)
    )


def captured_nbytes(captured: Any) -> int:
    if isinstance(captured, np.ndarray):
        return int(captured.nbytes)
    return int(np.prod(captured.shape)) * captured.dtype.size


def same_bits(captured: Any, raw: Any) -> bool:
    """Whether the variable still holds exactly the captured bits (NaNs included)."""
    if not isinstance(captured, np.ndarray):
        return _tf_same_bits(captured, raw.value())
    live = _view(raw)
    if live.shape != captured.shape or live.dtype != captured.dtype:
        return False
    return bool(np.array_equal(bit_view(captured), bit_view(live)))


def bit_view(array: np.ndarray) -> np.ndarray:
    """The same memory seen as unsigned integers: equality of bits, NaN payloads too."""
    if array.dtype.kind in "fcV" and array.dtype.itemsize in (1, 2, 4, 8):
        return array.view(f"u{array.dtype.itemsize}")
    return array


def _tf_same_bits(a: Any, b: Any) -> bool:
    import tensorflow as tf

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.is_floating:
        as_int = {2: tf.int16, 4: tf.int32, 8: tf.int64}[a.dtype.size]
        a, b = tf.bitcast(a, as_int), tf.bitcast(b, as_int)
    return bool(tf.reduce_all(tf.equal(a, b)))


def _view(raw: Any) -> np.ndarray:
    """The variable's current value as numpy, without a copy where the backend allows."""
    if hasattr(raw, "detach"):  # torch
        raw = raw.detach().cpu()
        if str(raw.dtype) == "torch.bfloat16":
            import ml_dtypes

            return raw.float().numpy().astype(ml_dtypes.bfloat16)
        return raw.numpy()
    if hasattr(raw, "numpy"):  # TensorFlow: always a fresh array
        return np.asarray(raw.numpy())
    return np.asarray(raw)  # JAX (read-only view), numpy


def _to_numpy(raw: Any) -> np.ndarray:
    """A private numpy copy of one backend tensor, read in that backend's own way."""
    if _is_tf_resource(raw):  # one ReadVariableOp; the array it gives is our own
        return np.asarray(raw.value().numpy())
    if hasattr(raw, "numpy") and not hasattr(raw, "detach"):
        return np.asarray(raw.numpy())  # a TensorFlow tensor: a fresh array already
    # torch shares memory with the tensor the optimizer writes into; JAX with its buffer
    return np.array(_view(raw), copy=True)


_KERAS3 = Keras3()
_KERAS2 = Keras2()


def flavor_of(obj: Any) -> Flavor | None:
    """The flavour of Keras ``obj`` belongs to, or ``None`` if it is not a Keras layer."""
    for cls in type(obj).__mro__:
        if cls.__name__ != "Layer":
            continue
        if cls.__module__ == _KERAS3_LAYER_MODULE:
            return _KERAS3
        if cls.__module__ in _KERAS2_LAYER_MODULES:
            return _KERAS2
    return None


def is_model(obj: Any) -> bool:
    """Whether ``obj`` is a Keras ``Model`` (not only a ``Layer``) of either flavour."""
    return any(
        cls.__name__ == "Model" and cls.__module__.split(".", 1)[0] in ("keras", "tf_keras")
        for cls in type(obj).__mro__
    )


def _unique(variables: Iterable[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


# -- how each Keras treats a changed ``trainable`` flag ------------------------------
# Measured on Keras 3.15.1 (TensorFlow, JAX, PyTorch backends) and tf_keras 2.21, CPU;
# examples/test_trap_matrix.py measures it again on whatever it runs on.
# Keys: (runtime, phase, direction); phase "after-compile" = changed after compile()
# but before the train function was built, "after-build" = changed after it was built
# (by the first fit()/train_on_batch()); direction "freeze" or "unfreeze".
# Values: (outcome, what happens) with outcome "honoured", "ignored" or "raises".
_FIRST_FIT_RULES = ("honoured", "honoured: the flags at the first fit()/train_on_batch() rule")
_BY_PHASE: dict[tuple[str, str], tuple[str, str]] = {
    ("tf_keras", "after-compile"): (
        "ignored",
        "ignored: the flags at compile() rule until the next compile()",
    ),
    ("tf_keras", "after-build"): (
        "ignored",
        "ignored until the next compile(): the flags at compile() rule",
    ),
    ("tensorflow", "after-compile"): _FIRST_FIT_RULES,
    ("tensorflow", "after-build"): (
        "ignored",
        "ignored until the next compile(): the train function built by the first fit() "
        "keeps training the variables it was built with",
    ),
    ("jax", "after-compile"): _FIRST_FIT_RULES,
    ("jax", "after-build"): (
        "raises",
        "fit() raises an optimizer ValueError: the optimizer state was built for the "
        "variables trainable at the first fit()",
    ),
    ("torch", "after-compile"): _FIRST_FIT_RULES,
}
TRAP_SEMANTICS: dict[tuple[str, str, str], tuple[str, str]] = {
    (runtime, phase, direction): behaviour
    for (runtime, phase), behaviour in _BY_PHASE.items()
    for direction in ("freeze", "unfreeze")
}
TRAP_SEMANTICS[("torch", "after-build", "freeze")] = (
    "honoured",
    "honoured for freezing: the frozen variables get no gradient",
)
TRAP_SEMANTICS[("torch", "after-build", "unfreeze")] = (
    "raises",
    "unfreezing raises: the optimizer does not know the newly trainable variables",
)

RUNTIME_LABELS = {
    "tf_keras": "Keras 2 (tf_keras)",
    "tensorflow": "Keras 3 on TensorFlow",
    "jax": "Keras 3 on JAX",
    "torch": "Keras 3 on PyTorch",
}


def runtime_of(model: Any) -> str:
    """Which Keras runs ``model``: "tf_keras", or the Keras 3 backend's name."""
    flavor = flavor_of(model)
    if flavor is None or flavor.name == "tf_keras":
        return "tf_keras"
    import keras  # already imported: the model is a Keras 3 model

    return str(keras.backend.backend())


def runtime_label(runtime: str) -> str:
    """``"Keras 3.15.1 on TensorFlow"``, ``"tf_keras 2.21.0 (Keras 2)"``: this process's Keras."""
    import importlib

    module = importlib.import_module("tf_keras" if runtime == "tf_keras" else "keras")
    version = getattr(module, "__version__", "?")
    if runtime == "tf_keras":
        return f"tf_keras {version} (Keras 2)"
    return f"Keras {version} on {RUNTIME_LABELS[runtime].rsplit(' ', 1)[-1]}"
