"""The Keras flavours, and every read of a Keras-private attribute: only here.

Two flavours of Keras build the models a user may hand us: Keras 3 (``keras``, on any
of its backends) and Keras 2 (``tf_keras``, selected with ``TF_USE_LEGACY_KERAS=1``).
They keep sublayers and weights in different private attributes and name variables
differently; the rest of the engine talks to a :class:`Flavor` and never asks which one
it has. The layer tree is walked in one place, :func:`walk`.

Nothing here imports Keras at module level: a flavour is recognised from the class
hierarchy of the object the user passed, so merely loading the plugin stays cheap.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.engine.sequences import unique
from pytest_kerasfreeze.traps import RUNTIME_LABELS, Runtime

# The module that defines the base ``Layer`` class of each flavour.
_KERAS3_LAYER_MODULE = "keras.src.layers.layer"
_KERAS2_LAYER_MODULES = ("tf_keras.src.engine.base_layer", "keras.src.engine.base_layer")

# Frames of these packages are never "the user's line".
LIBRARY_PACKAGES = frozenset(
    {
        "keras",
        "tf_keras",
        "tensorflow",
        "jax",
        "jaxlib",
        "torch",
        "optree",
        "absl",
        "keras_hub",
        "keras_nlp",
        "keras_cv",
        "pytest_kerasfreeze",
        "contextlib",
        "functools",
        "_pytest",
        "pluggy",
    }
)
# Frames of these packages assign `trainable` on Keras' own account (a container's
# flag written onto its sublayers, tf_keras' fit() restoring its compile-time flags).
KERAS_PACKAGES = frozenset({"keras", "tf_keras", "tensorflow"})


@dataclass(frozen=True, slots=True)  # one object per node: no __dict__ to track
class LayerNode:
    """One place of a layer in a model's tree; a shared layer has one node per path.

    The last part of ``path`` is the layer's name, except where two different layers
    of one container share a name (a subclassed model holding three
    ``Dense(name="hidden")``): those are told apart as ``hidden#1``, ``hidden#2``, ...
    in the order Keras lists them.
    """

    path: str
    layer: Any
    parent_path: str  # "" for a child of the root

    @property
    def name(self) -> str:
        return str(self.layer.name)

    @property
    def part(self) -> str:
        """The last part of the path (the name, or ``name#n`` for a repeated name)."""
        return self.path.rsplit("/", 1)[-1]


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

    def own_and_declared(self, layer: Any) -> tuple[list[Any], set[int]]:
        """:meth:`own_variables` and the ids of :meth:`declared_trainable`, in one call
        (asked of every layer each time a model is indexed)."""
        return self.own_variables(layer), {id(v) for v in self.declared_trainable(layer)}

    def short_name(self, variable: Any) -> str:
        """The variable's own name, without layer scopes (``"kernel"``)."""
        raise NotImplementedError

    def weights(self, layer: Any) -> list[Any]:
        """All weight variables of ``layer``, nested ones included; no seeds or metrics."""
        try:
            return list(layer.weights)
        except ValueError:
            # tf_keras refuses to list the weights of a model that defines build() and
            # is not built yet; what its layers already hold is still its weights.
            return unique(v for sub in self.subtree(layer) for v in self.own_variables(sub))

    def tree_weights(self, layer: Any, nodes: Sequence[LayerNode]) -> tuple[list[Any], bool]:
        """:meth:`weights` of ``layer`` whose tree ``nodes`` (:func:`walk`) the caller
        has walked already, and whether each node's weights are its own variables and
        its children's (Keras' own rule, where no class of the tree has a rule of its
        own: then a node's weights can be read off the tree, with no call into Keras)."""
        return self.weights(layer), False

    def trainable_weights(self, layer: Any) -> list[Any]:
        """The weights a fresh ``compile()`` would train, after every flag is applied."""
        try:
            return list(layer.trainable_weights)
        except ValueError:  # tf_keras, not built yet: apply the flags ourselves
            return unique(self._trainable_below(layer))

    def _trainable_below(
        self, layer: Any, flags: Mapping[int, bool] | None = None
    ) -> Iterator[Any]:
        own = bool(layer.trainable) if flags is None else flags.get(id(layer), layer.trainable)
        if not own:
            return
        yield from self.declared_trainable(layer)
        for child in self.children(layer):
            yield from self._trainable_below(child, flags)

    def trainable_with_flags(self, layer: Any, flags: Mapping[int, bool]) -> list[Any]:
        """The weights Keras 2's rule trains when each layer's flag is ``flags[id(layer)]``
        (its own flag where absent): a frozen container hides everything below it."""
        return unique(self._trainable_below(layer, flags))

    def trainable_now(self, model: Any, variables: Sequence[Any]) -> list[bool]:
        """For each of ``variables`` (weights of ``model``): would a fresh ``compile()``
        train it?"""
        trainable = {id(v) for v in self.trainable_weights(model)}
        return [id(v) in trainable for v in variables]

    def own_flag(self, variable: Any, layer: Any) -> bool:
        """The variable's own flag and the flag of the layer that created it, both on
        (what the effective flag would say with no frozen parent)."""
        return bool(getattr(variable, "trainable", True)) and bool(layer.trainable)

    def raw(self, variable: Any) -> Any:
        """The backend object holding the variable's value."""
        return variable

    def nbytes(self, variable: Any) -> int:
        """Bytes of the variable's value, from its shape and dtype (nothing is read)."""
        dtype = variable.dtype
        size = getattr(dtype, "size", None)  # a TensorFlow DType
        if not isinstance(size, int):
            size = _ITEMSIZE.get(str(dtype).split(".")[-1], 4)
        count = 1
        for n in variable.shape:
            count *= int(n)
        return count * size

    def total_nbytes(self, variables: Sequence[Any]) -> int:
        """Bytes of all the variables' values (nothing is read)."""
        return sum(self.nbytes(v) for v in variables)

    def is_built(self, layer: Any) -> bool:
        return bool(getattr(layer, "built", False))

    def subtree(self, layer: Any) -> list[Any]:
        """``layer`` and every layer below it, each once, parents first."""
        return unique([layer, *(node.layer for node in walk(self, layer))])


class Keras3(Flavor):
    name = "keras3"

    def children(self, layer: Any) -> list[Any]:
        return list(layer._layers)

    def own_variables(self, layer: Any) -> list[Any]:
        return unique(list(layer._trainable_variables) + list(layer._non_trainable_variables))

    def own_and_declared(self, layer: Any) -> tuple[list[Any], set[int]]:
        trainable, other = layer._trainable_variables, layer._non_trainable_variables
        declared = {id(v) for v in trainable}
        if not other and len(declared) == len(trainable):  # most layers: nothing repeated
            return list(trainable), declared
        return unique([*trainable, *other]), declared

    def declared_trainable(self, layer: Any) -> list[Any]:
        # Keras 3 files a variable under ``_trainable_variables`` when it is created and
        # never moves it: ``layer.trainable = False`` only flips ``variable.trainable``.
        return list(layer._trainable_variables)

    def short_name(self, variable: Any) -> str:
        return str(variable.name)

    def tree_weights(self, layer: Any, nodes: Sequence[LayerNode]) -> tuple[list[Any], bool]:
        # Keras 3's Layer.weights: the layer's own trainable then non-trainable variables,
        # then each sublayer's weights, depth first, each variable once: the walk's order.
        # Read off the walk, it saves a second recursion through Keras' properties.
        base: Any = _keras3_layer_class(layer)
        rule = base.weights
        layers = [layer, *(node.layer for node in nodes)]
        if any(type(sub).weights is not rule for sub in layers):
            return self.weights(layer), False
        out: list[Any] = []
        seen: set[int] = set()
        for sub in layers:
            for variable in (*sub._trainable_variables, *sub._non_trainable_variables):
                if id(variable) not in seen:
                    seen.add(id(variable))
                    out.append(variable)
        return out, True

    def nbytes(self, variable: Any) -> int:
        return self.total_nbytes((variable,))

    def total_nbytes(self, variables: Sequence[Any]) -> int:
        # A Keras 3 variable keeps its shape as a tuple and its storage dtype as a string:
        # read them directly (``variable.shape`` is a TensorShape built per call on
        # TensorFlow, ``variable.dtype`` consults the autocast scope: ~10 µs together).
        # Asked before every snapshot (mode="auto"): one pass, no call per variable.
        total, itemsize, prod = 0, _ITEMSIZE, math.prod
        try:
            for variable in variables:
                total += prod(variable._shape) * itemsize[variable._dtype]
        except (AttributeError, KeyError, TypeError):  # not a plain Keras 3 variable
            return sum(Flavor.nbytes(self, v) for v in variables)
        return total

    def trainable_now(self, model: Any, variables: Sequence[Any]) -> list[bool]:
        # Keras 3's Layer.trainable_weights is `[v for v in self.weights if v.trainable]`
        # when the layer's own flag is on, [] otherwise (a layer's flag reaches its
        # sublayers' variables through the setter); reading it that way saves walking
        # the whole tree again. A model class with its own property keeps its answer.
        base: Any = _keras3_layer_class(model)
        if type(model).trainable_weights is not base.trainable_weights:
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
            raise ValueError(errors.emptied_variable(variable.path))
        return raw


_MISSING = object()
_ITEMSIZE = {
    "float64": 8,
    "int64": 8,
    "uint64": 8,
    "complex64": 8,
    "complex128": 16,
    "float32": 4,
    "int32": 4,
    "uint32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int16": 2,
    "uint16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
}


_LAYER_CLASS: dict[type, type] = {}  # {a layer's class: Keras 3's Layer among its bases}


def _keras3_layer_class(obj: Any) -> type:
    found = _LAYER_CLASS.get(type(obj))
    if found is not None:
        return found
    for cls in type(obj).__mro__:
        if cls.__name__ == "Layer" and cls.__module__ == _KERAS3_LAYER_MODULE:
            _LAYER_CLASS[type(obj)] = cls
            return cls
    raise TypeError(f"{type(obj).__name__} is not a Keras 3 layer")


class Keras2(Flavor):
    name = "tf_keras"

    def children(self, layer: Any) -> list[Any]:
        return list(layer._flatten_layers(include_self=False, recursive=False))

    def own_variables(self, layer: Any) -> list[Any]:
        return unique(list(layer._trainable_weights) + list(layer._non_trainable_weights))

    def declared_trainable(self, layer: Any) -> list[Any]:
        # tf_keras keeps created-trainable weights in ``_trainable_weights`` and filters
        # them by the layer's flag only in the ``trainable_weights`` property.
        return list(layer._trainable_weights)

    def short_name(self, variable: Any) -> str:
        # "outer/dense/kernel:0" -> "kernel"
        return str(variable.name).rsplit("/", 1)[-1].split(":", 1)[0]


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


# -- the layer tree -------------------------------------------------------------------
def walk(flavor: Flavor, root: Any) -> list[LayerNode]:
    """Every place of every layer below ``root``, depth first, in Keras' order.

    A layer shared by two containers appears once per path; a layer is never entered
    again below itself (a cycle would be a Keras bug, not a reason to loop).
    """
    nodes: list[LayerNode] = []

    def visit(layer: Any, prefix: str, ancestors: tuple[int, ...]) -> None:
        children = flavor.children(layer)
        if not children:  # most layers: a leaf
            return
        children = [c for c in children if id(c) not in ancestors]
        parent = prefix.rstrip("/")
        for child, part in zip(children, _distinct_parts(children), strict=True):
            path = prefix + part
            nodes.append(LayerNode(path, child, parent))
            visit(child, path + "/", (*ancestors, id(child)))

    visit(root, "", (id(root),))
    return nodes


def _distinct_parts(children: Sequence[Any]) -> list[str]:
    """The path part of each child: its name, or ``name#n`` where different layers of
    one container share the name."""
    names = [str(child.name) for child in children]
    if len(set(names)) == len(names):  # the usual case: every name once
        return names
    repeated = {name for name, n in Counter(names).items() if n > 1}
    seen: dict[str, int] = {}
    parts = []
    for name in names:
        if name in repeated:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name}#{seen[name]}"
        parts.append(name)
    return parts


# -- training state Keras keeps privately ---------------------------------------------
def has_train_function(model: Any) -> bool:
    """Whether the model's train function is built (by its first ``fit()`` /
    ``train_on_batch()``; ``compile()`` drops it). Both flavours and every Keras 3
    backend keep it as ``model.train_function``."""
    return getattr(model, "train_function", None) is not None


def has_custom_train_step(model: Any) -> bool:
    """Whether ``model`` trains with a ``train_step`` of its own, not Keras' built-in one
    (defined in Keras' own trainer modules)."""
    for cls in type(model).__mro__:
        if "train_step" in cls.__dict__:
            return cls.__module__.split(".", 1)[0] not in ("keras", "tf_keras")
    return False


def compile_record(model: Any) -> dict[Any, bool] | None:
    """The flags Keras itself kept at the model's last ``compile()``: ``{layer: flag}``
    (a dict in Keras 3, a WeakKeyDictionary in tf_keras), or ``None``."""
    recorded = getattr(model, "_compiled_trainable_state", None)
    if isinstance(recorded, Mapping) and len(recorded):
        return {layer: bool(flag) for layer, flag in list(recorded.items())}
    return None


# -- which Keras runs here ------------------------------------------------------------
def runtime_of(model: Any) -> Runtime:
    """Which Keras runs ``model``: "tf_keras", or the Keras 3 backend's name."""
    flavor = flavor_of(model)
    if flavor is None or flavor.name == "tf_keras":
        return "tf_keras"
    import keras  # already imported: the model is a Keras 3 model

    backend = str(keras.backend.backend())
    if backend not in RUNTIME_LABELS:
        raise RuntimeError(f"Keras backend {backend!r} is not supported by pytest-kerasfreeze")
    return backend


def runtime_label(runtime: Runtime) -> str:
    """``"Keras 3.15.1 on TensorFlow"``, ``"tf_keras 2.21.0 (Keras 2)"``: this process's Keras."""
    module = importlib.import_module("tf_keras" if runtime == "tf_keras" else "keras")
    version = getattr(module, "__version__", "?")
    if runtime == "tf_keras":
        return f"tf_keras {version} (Keras 2)"
    return f"Keras {version} on {RUNTIME_LABELS[runtime].rsplit(' ', 1)[-1]}"


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
        wanted = import_missing and name == ("tf_keras" if legacy else "keras")
        if module is None and wanted and importlib.util.find_spec(name) is not None:
            module = importlib.import_module(name)
        if module is not None and isinstance(getattr(module, "Model", None), type):
            modules.append(module)
    return modules


def package_of(frame: Any) -> str:
    """The top-level package a frame's code belongs to."""
    return str(frame.f_globals.get("__name__", "")).split(".", 1)[0]


def callback_bases() -> tuple[type, ...]:
    """The ``Callback`` classes of the Keras flavours in use (Keras 3, tf_keras, or both
    when both are imported), importing the one ``TF_USE_LEGACY_KERAS`` names if none is."""
    modules = keras_modules(import_missing=False) or keras_modules(import_missing=True)
    if not modules:
        raise ImportError(
            "FreezeGuard is a Keras callback, but neither keras nor tf_keras can be imported "
            "here: pip install keras (or tf_keras)"
        )
    return tuple(module.callbacks.Callback for module in modules)


def is_legacy(model: Any) -> bool:
    """Whether ``model`` is a tf_keras (Keras 2) model."""
    return any(cls.__module__.split(".", 1)[0] == "tf_keras" for cls in type(model).__mro__)


def load_model(model: Any, path: str, **kwargs: Any) -> Any:
    """Load a saved model with the loader of ``model``'s Keras (Keras 3 or tf_keras)."""
    module = importlib.import_module("tf_keras" if is_legacy(model) else "keras")
    return module.models.load_model(path, **kwargs)


# Keras' own layers whose behaviour depends on ``training``: normalization (batch
# statistics), regularization (dropout, noise) and random augmentation. Other Keras
# layers take ``training`` only to pass it on (Keras 3's Dense, for LoRA and
# quantization); a container passes it to its layers, which are checked themselves.
_TRAINING_MODULES = (".normalization.", ".regularization.", ".preprocessing.", ".noise")


def takes_training(layer: Any) -> bool:
    """Whether a layer's behaviour depends on ``training``: a Keras layer of the kinds
    above, or a user's layer whose ``call`` takes ``training``."""
    takes = bool(
        getattr(layer, "_call_has_training_arg", None)  # Keras 3
        or getattr(layer, "_expects_training_arg", None)  # tf_keras
    )
    if not takes:
        return False
    module = type(layer).__module__
    if module.split(".", 1)[0] not in KERAS_PACKAGES:
        return True  # the user's own layer: its call decides
    name = type(layer).__name__
    return any(part in module + "." for part in _TRAINING_MODULES) or name.endswith(
        ("Dropout", "Noise")
    )


def is_batch_normalization(layer: Any) -> bool:
    return any("BatchNormalization" in cls.__name__ for cls in type(layer).__mro__)


def mode_ran(layer: Any, training: Any) -> bool | None:
    """The mode ``layer`` really ran in when ``training`` reached its ``call``: a
    BatchNormalization runs in training mode only when it is trainable too (Keras 3 and
    tf_keras alike); every other layer in the ``training`` it got. ``None`` where the
    value is not known here (a symbolic learning phase)."""
    if training is None:
        training = False
    try:
        value = bool(training)
    except Exception:  # noqa: BLE001 - a symbolic tensor: not known in Python
        return None
    if is_batch_normalization(layer):
        return value and bool(layer.trainable)
    if type(layer).__name__.endswith("Dropout") and getattr(layer, "rate", None) == 0:
        return False  # a rate of 0 is the identity in either mode
    return value
