"""Every difference between the Keras flavours lives here, and only here.

Two flavours of Keras build models a user may hand us: Keras 3 (``keras``, on any of its
backends) and Keras 2 (``tf_keras``, selected with ``TF_USE_LEGACY_KERAS=1``).  They keep
sublayers and weights in different private attributes and name variables differently;
the rest of the engine talks to a :class:`Flavor` and never asks which one it has.

Nothing here imports Keras at module level: a flavour is recognised from the class
hierarchy of the object the user passed, so merely loading the plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
        try:
            return list(layer.weights)
        except ValueError:
            # tf_keras refuses to list the weights of a model that defines build() and
            # is not built yet; what its layers already hold is still its weights.
            return _unique(v for sub in self.subtree(layer) for v in self.own_variables(sub))

    def trainable_weights(self, layer: Any) -> list[Any]:
        """The weights a fresh ``compile()`` would train, after every flag is applied."""
        try:
            return list(layer.trainable_weights)
        except ValueError:  # tf_keras, not built yet: walk the flags ourselves
            return _unique(self._trainable_below(layer))

    def _trainable_below(self, layer: Any) -> Iterable[Any]:
        if not layer.trainable:
            return
        yield from self.declared_trainable(layer)
        for child in self.children(layer):
            yield from self._trainable_below(child)

    def subtree(self, layer: Any) -> list[Any]:
        """``layer`` and every layer below it, each once, parents before children."""
        seen: dict[int, Any] = {}
        stack = [layer]
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen[id(current)] = current
            stack.extend(reversed(self.children(current)))
        return list(seen.values())

    def trainable_now(self, model: Any, variables: Sequence[Any]) -> list[bool]:
        """For each of ``variables`` (weights of ``model``): would a fresh ``compile()``
        train it?"""
        trainable = {id(v) for v in self.trainable_weights(model)}
        return [id(v) in trainable for v in variables]

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
        if _plain_tf_variable(raw):  # the common TensorFlow case, without the probing
            return capture(raw), 0.0
        parts = _replicas(raw)
        if not parts:
            return capture(raw), 0.0
        first, *others = [_to_numpy(p) for p in parts]
        return first, max(_max_abs_difference(first, other) for other in others)

    def private_copy_source(self, variable: Any) -> np.ndarray | None:
        """A zero-copy numpy view of the variable's value where a snapshot keeps a
        private copy of it (JAX, PyTorch), so that the copy can be made block by block
        along with a comparison; ``None`` where a snapshot keeps something else
        (TensorFlow's buffers, distributed variables)."""
        raw = self.raw(variable)
        if _is_tf_resource(raw) or _replicas(raw):
            return None
        return _view(raw)

    def unchanged(self, captured: Any, variable: Any) -> bool:
        """Whether the variable (every replica of it) still holds exactly the captured bits."""
        raw = self.raw(variable)
        if _plain_tf_variable(raw):  # the common TensorFlow case, without the probing
            return same_bits(captured, raw)
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

    def trainable_now(self, model: Any, variables: Sequence[Any]) -> list[bool]:
        # Keras 3's Layer.trainable_weights is `[v for v in self.weights if v.trainable]`
        # when the layer's own flag is on, [] otherwise (a layer's flag reaches its
        # sublayers' variables through the setter); reading it that way saves walking
        # the whole tree again. A model class with its own property keeps its answer.
        if type(model).trainable_weights is not _keras3_layer_class(model).trainable_weights:
            return super().trainable_now(model, variables)
        if not model.trainable:
            return [False] * len(variables)
        return [bool(v.trainable) for v in variables]

    def raw(self, variable: Any) -> Any:
        # The backend object behind the Keras variable: its storage, read directly
        # (``variable.value`` adds stateless-scope and autocast handling, ~2.5 µs, that
        # never applies to a snapshot; going through Variable.__array__ would make
        # numpy 2 warn about its `copy` keyword).
        raw = getattr(variable, "_value", _MISSING)
        if raw is _MISSING:
            return variable.value
        if raw is None:
            raise ValueError(
                f"weight {variable.path!r} holds no value. On JAX, Keras moves every "
                f"variable's value into the training state during fit() and puts it back "
                f"at the end; a fit() that raised left them empty. The model cannot be "
                f"read or trained any more: build it again (and see the exception that "
                f"fit() raised)."
            )
        return raw


_MISSING = object()


def _keras3_layer_class(obj: Any) -> type:
    for cls in type(obj).__mro__:
        if cls.__name__ == "Layer" and cls.__module__ == _KERAS3_LAYER_MODULE:
            return cls
    raise TypeError(f"{type(obj).__name__} is not a Keras 3 layer")


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
    if equal_bits(a, b):
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
# A captured value is what a snapshot keeps of one variable.  On TensorFlow it is the
# buffer a read returns: ``ReadVariableOp`` hands out the variable's own buffer, and
# while anyone holds it TensorFlow copies the buffer on the variable's next write
# (eager and XLA updates alike), so a capture costs one read and no copy until training
# changes the variable; on CPU it is kept as a read-only numpy view of that buffer, on
# an accelerator as the device tensor.  Elsewhere it is a private numpy copy: JAX
# donates the old buffers to the next training step, torch updates in place.


# Both questions below are answered by the class and asked once per variable read, so
# each class's answers are kept: {class: (is a TF resource variable, and not distributed)}.
_TF_KINDS: dict[type, tuple[bool, bool]] = {}


def _tf_kind(raw: Any) -> tuple[bool, bool]:
    cls = type(raw)
    kind = _TF_KINDS.get(cls)
    if kind is None:
        # tf_keras' AutoCastVariable hands ``handle`` on from the variable it wraps
        # (__getattr__), so the instance answers where its class does not; a
        # distributed variable's class has it (its property raises outside a replica).
        resource = hasattr(cls, "read_value") and (hasattr(cls, "handle") or hasattr(raw, "handle"))
        kind = _TF_KINDS[cls] = (resource, resource and not hasattr(cls, "values"))
    return kind


def _is_tf_resource(raw: Any) -> bool:
    """Whether ``raw`` is a TensorFlow resource variable (distributed ones included)."""
    return _tf_kind(raw)[0]


def _plain_tf_variable(raw: Any) -> bool:
    """Whether ``raw`` is a TensorFlow resource variable that is not distributed (a
    distributed variable's class has ``values``)."""
    return _tf_kind(raw)[1]


def _tf_read(raw: Any) -> Any:
    """The variable's current buffer, as a tensor: one ``ReadVariableOp``, no copy.

    Called directly rather than through ``raw.value()``/``raw.numpy()``: those add an
    ``Identity`` op, gradient-tape bookkeeping and name scopes (~10 µs per variable)."""
    global _read_variable_op
    if _read_variable_op is None:  # imported on first use: TensorFlow is loaded by then
        from tensorflow.python.ops.gen_resource_variable_ops import read_variable_op

        _read_variable_op = read_variable_op
    return _read_variable_op(raw.handle, raw.dtype)


_read_variable_op: Any = None


def _tf_on_host(raw: Any) -> bool:
    return "GPU" not in raw.handle.device and "TPU" not in raw.handle.device


def _host_view(tensor: Any) -> np.ndarray:
    """A read-only numpy view of a host tensor's buffer (``.numpy()`` would copy it);
    the view keeps the buffer alive."""
    array = tensor._numpy()
    if not isinstance(array, np.ndarray):  # a scalar of an exotic type
        array = np.asarray(array)
    array.setflags(write=False)
    return array


def capture(raw: Any) -> Any:
    """What a snapshot keeps of one (non-distributed) variable."""
    if _is_tf_resource(raw):
        tensor = _tf_read(raw)
        return _host_view(tensor) if _tf_on_host(raw) else tensor
    return _to_numpy(raw)


def materialize(captured: Any) -> np.ndarray:
    """A numpy array of a captured value (itself, or a host copy of a device tensor)."""
    if isinstance(captured, np.ndarray):
        return captured
    return np.asarray(captured.numpy())


_DTYPE_NAMES: dict[np.dtype, str] = {}


def captured_dtype(captured: Any) -> str:
    """The numpy name of a captured value's dtype ("float32", "bfloat16", ...)."""
    if isinstance(captured, np.ndarray):
        name = _DTYPE_NAMES.get(captured.dtype)
        if name is None:  # str(dtype) runs Python code in numpy 2: ~4 µs, once per dtype
            name = _DTYPE_NAMES[captured.dtype] = str(captured.dtype)
        return name
    return str(np.dtype(captured.dtype.as_numpy_dtype))


def captured_nbytes(captured: Any) -> int:
    if isinstance(captured, np.ndarray):
        return int(captured.nbytes)
    return int(np.prod(captured.shape)) * captured.dtype.size


def same_bits(captured: Any, raw: Any) -> bool:
    """Whether the variable still holds exactly the captured bits (NaNs included)."""
    if not isinstance(captured, np.ndarray):
        return _tf_same_bits(captured, _tf_read(raw))
    live = _view(raw)
    if live.shape != captured.shape or live.dtype != captured.dtype:
        return False
    return equal_bits(captured, live)


_CHUNK = 1 << 18  # elements per block: 1 MiB of float32, compared while still in cache


def equal_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one shape and dtype hold the same bits (NaN payloads, the
    sign of zero).  The same buffer answers at once; otherwise block by block, stopping
    at the first block that differs, with no temporary as large as the arrays."""
    same_buffer = a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    if same_buffer and a.strides == b.strides:
        return True  # one buffer: on TensorFlow, a variable nothing wrote since the read
    a, b = bit_view(a).reshape(-1), bit_view(b).reshape(-1)
    for start in range(0, a.size, _CHUNK):
        if not np.array_equal(a[start : start + _CHUNK], b[start : start + _CHUNK]):
            return False
    return True


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
    if _is_tf_resource(raw):
        return _host_view(_tf_read(raw))  # the variable's buffer (a copy off the host)
    if hasattr(raw, "detach"):  # torch
        raw = raw.detach().cpu()
        if str(raw.dtype) == "torch.bfloat16":
            import ml_dtypes

            return raw.float().numpy().astype(ml_dtypes.bfloat16)
        return raw.numpy()
    if hasattr(raw, "numpy"):  # a TensorFlow tensor: always a fresh array
        return np.asarray(raw.numpy())
    return np.asarray(raw)  # JAX (read-only view), numpy


def _to_numpy(raw: Any) -> np.ndarray:
    """A numpy copy of one backend tensor that nothing else will write into."""
    if _is_tf_resource(raw):  # the read buffer: TensorFlow copies it before a write
        return _host_view(_tf_read(raw))
    if hasattr(raw, "numpy") and not hasattr(raw, "detach"):
        return np.asarray(raw.numpy())  # a TensorFlow tensor: a fresh array already
    # torch shares memory with the tensor the optimizer writes into; JAX with its buffer
    array = np.array(_view(raw), copy=True)
    array.setflags(write=False)
    return array


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
