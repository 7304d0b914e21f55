"""Keras' training internals, read for attribution: which optimizers a model holds, their
step counters, whether code runs under a trace, and what a frame of the stack is doing
(Keras' own train step, a callback hook, a layer's forward pass, JAX state sync).

Like :mod:`pytest_kerasfreeze.flavors`, the only place these Keras-private details are
read. Nothing heavy is imported at module level.

Example::

    optimizers_of(gan)        # {id(opt): ("d_optimizer", opt), ...}
    under_trace([grad])       # True while tf.function / jax.jit traces the step
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

from pytest_kerasfreeze.flavors import LIBRARY_PACKAGES, flavor_of, package_of
from pytest_kerasfreeze.messages import errors

AssignKind = Literal["forward", "callback", "outside"]

# the modules of Keras' own train steps: an optimizer called from here is fit()'s
_TRAINER_MODULES = ("keras.src.backend.", "keras.src.trainers", "tf_keras.src.engine.training")
_AUTOGRAPH = "__autograph_generated_file"


def is_optimizer(obj: Any) -> bool:
    """A Keras 3 or tf_keras optimizer (by class hierarchy: nothing is imported)."""
    return any(
        cls.__name__ in ("BaseOptimizer", "OptimizerV2", "_BaseOptimizer")
        and cls.__module__.split(".", 1)[0] in ("keras", "tf_keras")
        for cls in type(obj).__mro__
    )


def optimizers_of(model: Any) -> dict[int, tuple[str, Any]]:
    """``{id: (name, optimizer)}`` for the optimizers a model holds: ``optimizer`` for
    ``model.optimizer``, the attribute name for others (``"g_optimizer"``), and
    ``"<name>.inner_optimizer"`` for the one a LossScaleOptimizer wraps."""
    found: dict[int, tuple[str, Any]] = {}
    for name, value in list(vars(model).items()):
        if is_optimizer(value):
            found.setdefault(id(value), ("optimizer" if name == "_optimizer" else name, value))
    try:
        optimizer = getattr(model, "optimizer", None)
    except Exception:  # noqa: BLE001 - a property that raises: no optimizer to name
        optimizer = None
    if optimizer is not None and is_optimizer(optimizer):
        found[id(optimizer)] = ("optimizer", optimizer)
    for name, value in list(found.values()):
        inner = getattr(value, "inner_optimizer", None)
        if inner is not None and is_optimizer(inner):
            found.setdefault(id(inner), (f"{name}.inner_optimizer", inner))
    return found


def optimizer_name(model: Any, optimizer: Any) -> str:
    """The name a mover gives ``optimizer`` (an object, or already its name): the model
    attribute that holds it. ``ValueError`` for an optimizer the model does not hold."""
    if isinstance(optimizer, str):
        return optimizer
    for name, held in optimizers_of(model).values():
        if held is optimizer:
            return name
    raise ValueError(errors.optimizer_not_held(optimizer, str(model.name)))


def optimizer_variables(optimizer: Any) -> list[Any]:
    """The variables a Keras 3 optimizer was built for: what ``apply(grads)`` updates
    when it is given no variables (``stateless_apply`` on JAX)."""
    return list(getattr(optimizer, "_trainable_variables", None) or [])


def optimizer_positions(optimizer: Any, variables: Sequence[Any]) -> dict[int, int] | None:
    """``{id(variable): position}`` for those of ``variables`` the optimizer was built
    for (the position of their slots in its slot lists), or ``None`` while it is not
    built — or, for a tf_keras legacy optimizer, never (it adds slots as it meets
    variables, so it knows no fixed set)."""
    if getattr(optimizer, "built", None) is True:  # Keras 3
        built = {id(v): i for i, v in enumerate(getattr(optimizer, "_trainable_variables", ()))}
        return {id(v): built[id(v)] for v in variables if id(v) in built}
    index = getattr(optimizer, "_index_dict", None)  # tf_keras' optimizer, once built
    if getattr(optimizer, "_built", False) and isinstance(index, dict):
        keys = {id(v): getattr(v, "_unique_id", None) for v in variables}
        return {i: index[k] for i, k in keys.items() if k in index}
    return None


def optimizer_size(optimizer: Any) -> int:
    """How many variables the optimizer was built for (0 when it is not built)."""
    built = getattr(optimizer, "_trainable_variables", None)
    if built is None:
        built = getattr(optimizer, "_index_dict", None) or ()
    return len(built)


def optimizer_slots(optimizer: Any) -> list[list[Any]]:
    """The optimizer's slot lists (momenta, velocities, EMA copies): lists of variables
    aligned with the variables it was built for (slot ``i`` belongs to variable ``i``)."""
    n = optimizer_size(optimizer)
    if not n:
        return []
    slots = []
    for value in list(vars(optimizer).values()):
        if (
            isinstance(value, list)
            and len(value) == n
            and value is not getattr(optimizer, "_trainable_variables", None)
            and all(hasattr(v, "shape") and hasattr(v, "dtype") for v in value)
        ):
            slots.append(value)
    return slots


def tf_resource_variable() -> type | None:
    """TensorFlow's ``ResourceVariable`` class (tf_keras weights are these), if loaded."""
    module = sys.modules.get("tensorflow.python.ops.resource_variable_ops")
    cls = getattr(module, "ResourceVariable", None) if module is not None else None
    return cls if isinstance(cls, type) else None


def synced_model(model: Any) -> Any:
    """The model with its training state attached, as a Keras 3 ``Callback.model`` gives
    it: in the middle of a JAX epoch the values live in the trainer's state, and
    ``jax_state_sync()`` puts them back on the variables (a torch DDP wrapper is
    unwrapped)."""
    module = getattr(model, "module", None)
    if module is not None and type(model).__name__ == "DistributedDataParallel":
        model = module
    sync = getattr(model, "jax_state_sync", None)
    if callable(sync):
        sync()
    return model


def iterations(optimizer: Any) -> int | None:
    """The optimizer's step counter, or ``None`` where it cannot be read now (a JAX
    tracer left behind by a stateful update under ``jit``)."""
    try:
        counter = getattr(optimizer, "iterations", None)
        if counter is None:
            return None
        value = counter.numpy() if hasattr(counter, "numpy") else counter
        return int(value)
    except Exception:  # noqa: BLE001 - unreadable: the caller falls back to what it saw
        return None


def under_trace(values: list[Any]) -> bool:
    """Whether the step runs under a trace (``tf.function``, ``jax.jit``): its Python
    code, hence these hooks, then runs once, not every step."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and tf.inside_function():
        return True
    jax_core = sys.modules.get("jax.core")
    if jax_core is not None:
        tracer = getattr(jax_core, "Tracer", None)
        return tracer is not None and any(isinstance(v, tracer) for v in values)
    return False


def _location(frame: Any) -> str:
    """``file:line`` of a frame, mapped back through autograph's source map when it is
    code autograph generated from the user's (tf_keras runs train_step through it)."""
    filename, line = frame.f_code.co_filename, frame.f_lineno
    if _AUTOGRAPH in filename:
        for ref in gc.get_referrers(frame.f_code):
            source_map = getattr(ref, "ag_source_map", None)
            for loc, origin in (source_map or {}).items():
                if loc.lineno == line and loc.filename == filename:
                    filename, line = origin.loc.filename, origin.loc.lineno
                    break
    try:
        rel = os.path.relpath(filename)
        filename = filename if rel.startswith("..") else rel
    except ValueError:  # another drive on Windows
        pass
    return f"{filename}:{line}"


def optimizer_site(frame: Any) -> str:
    """Where an optimizer was called from: ``"fit()"`` for Keras' own train step, the
    user's ``file:line`` otherwise (a custom ``train_step``, a training loop)."""
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith(_TRAINER_MODULES) and "train_step" in frame.f_code.co_name:
            return "fit()"
        if package_of(frame) not in LIBRARY_PACKAGES:
            return _location(frame)
        frame = frame.f_back
    return "<unknown>"


def _is_callback(obj: Any) -> bool:
    return any(
        cls.__name__ == "Callback" and cls.__module__.split(".", 1)[0] in ("keras", "tf_keras")
        for cls in type(obj).__mro__
    ) and not any(cls.__name__ == "CallbackList" for cls in type(obj).__mro__)


def classify_assign(frame: Any) -> tuple[AssignKind, str] | None:
    """Who is assigning a weight outside any optimizer: ``("callback", "Swap.on_epoch_end")``,
    ``("forward", "")`` (a layer's ``call``: BatchNormalization statistics),
    ``("outside", "file:line")``; ``None`` for Keras writing back its own training state
    (JAX's ``jax_state_sync`` puts every variable back after a step)."""
    f = frame
    while f is not None:
        name = f.f_code.co_name
        if name == "jax_state_sync" and package_of(f) == "keras":
            return None
        if name.startswith("on_") and _is_callback(f.f_locals.get("self")):
            return "callback", f"{type(f.f_locals['self']).__name__}.{name}"
        f = f.f_back
    f = frame
    while f is not None:
        if f.f_code.co_name in ("call", "stateless_call", "tf__call") and flavor_of(
            f.f_locals.get("self")
        ):
            return "forward", ""
        f = f.f_back
    f = frame
    while f is not None and package_of(f) in LIBRARY_PACKAGES:
        f = f.f_back
    return "outside", (_location(f) if f is not None else "<unknown>")
