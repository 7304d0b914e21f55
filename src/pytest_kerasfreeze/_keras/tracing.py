"""Keras' training internals, read for attribution: which optimizers a model holds, their
step counters, whether code runs under a trace, and what a frame of the stack is doing
(Keras' own train step, a callback hook, a layer's forward pass, JAX state sync).

Like :mod:`pytest_kerasfreeze._keras.flavors`, the only place these Keras-private details are
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

import numpy as np

from pytest_kerasfreeze._keras.flavors import LIBRARY_PACKAGES, flavor_of, package_of
from pytest_kerasfreeze.engine.changes import OptimizerRef
from pytest_kerasfreeze.engine.messages import errors

AssignKind = Literal["forward", "callback", "outside"]
GradientKind = Literal["none", "zero"]

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


def resolve_by(model: Any, by: Any, *, strict: bool = True) -> OptimizerRef:
    """What ``by=`` names, resolved when the check starts: an optimizer object (held by
    ``model`` or not: a target network trained through the online model's optimizer),
    or the name of an attribute of ``model`` holding one (``"g_optimizer"``).

    ``ValueError`` for anything else; with ``strict=False`` (a marker, which checks
    every model holding its layers) a name ``model`` does not hold is matched by name.
    """
    held = optimizers_of(model)
    if isinstance(by, str):
        for ident, (name, _) in held.items():
            if name == by:
                return OptimizerRef(name, ident)
        if strict:
            raise ValueError(errors.by_not_held(by, str(model.name), [n for n, _ in held.values()]))
        return OptimizerRef(by)
    if not is_optimizer(by):
        raise ValueError(errors.by_not_an_optimizer(by))
    name = held[id(by)][0] if id(by) in held else f"{type(by).__name__} (not held by the model)"
    return OptimizerRef(name, id(by))


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


def slot_lists(optimizer: Any) -> list[tuple[str, list[Any]]]:
    """The optimizer's slot lists, by name (``"momentums"``, ``"velocities"``, Adafactor's
    ``"r"``/``"c"``/``"v"``, the EMA copies of ``use_ema``, gradient accumulators): lists
    of variables aligned with the variables it was built for (slot ``i`` belongs to
    variable ``i``; ``None`` where a kind of state does not apply to that variable)."""
    n = optimizer_size(optimizer)
    if not n:
        return []
    built = getattr(optimizer, "_trainable_variables", None)
    found = []
    for name, value in list(vars(optimizer).items()):
        if (
            isinstance(value, list)
            and len(value) == n
            and value is not built
            and name != "_variables"
            and any(v is not None for v in value)
            and all(v is None or (hasattr(v, "shape") and hasattr(v, "dtype")) for v in value)
        ):
            found.append((name.lstrip("_"), value))
    return found


def optimizer_slots(optimizer: Any) -> list[list[Any]]:
    """The optimizer's slot lists (:func:`slot_lists` without their names)."""
    return [values for _, values in slot_lists(optimizer)]


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
    tf = sys.modules.get("tensorflow")
    try:
        counter = getattr(optimizer, "iterations", None)
        if counter is None:
            return None
        if tf is not None and tf.inside_function():
            # seen while a tf.function traces its step: the value outside the trace is
            # the count before the step runs
            with tf.init_scope():
                return int(counter.numpy())
        value = counter.numpy() if hasattr(counter, "numpy") else counter
        return int(value)
    except Exception:  # noqa: BLE001 - unreadable: the caller falls back to what it saw
        return None


def loss_scale(optimizer: Any) -> float | None:
    """A ``LossScaleOptimizer``'s current scale (it halves on non-finite gradients and
    skips the step), ``None`` for other optimizers or where it cannot be read now."""
    scale = getattr(optimizer, "dynamic_scale", None)
    if scale is None or getattr(optimizer, "inner_optimizer", None) is None:
        return None
    try:
        return float(scale.numpy() if hasattr(scale, "numpy") else scale)
    except Exception:  # noqa: BLE001 - unbuilt, or a tracer: unknown
        return None


def learning_rate(optimizer: Any) -> float | None:
    """The learning rate the optimizer uses now (a schedule's current value)."""
    inner = getattr(optimizer, "inner_optimizer", None)
    optimizer = inner if inner is not None else optimizer
    try:
        value = optimizer.learning_rate
        if callable(value) and not hasattr(value, "numpy"):  # a schedule
            value = value(optimizer.iterations)
        return float(value.numpy() if hasattr(value, "numpy") else value)
    except Exception:  # noqa: BLE001 - unreadable: say nothing about it
        return None


def update_delays(
    optimizer: Any, steps: int | None, scale_before: float | None
) -> list[tuple[str, Any]]:
    """The optimizer's own settings that delay or skip updates, as they applied over
    ``steps`` steps: ``("gradient_accumulation_steps", n)`` when fewer than ``n`` steps
    ran (no update was applied yet), ``("loss_scale_skipped", (before, after))`` when a
    ``LossScaleOptimizer`` halved its scale (it skipped steps with non-finite gradients),
    ``("learning_rate", 0.0)`` when the learning rate is 0 now."""
    found: list[tuple[str, Any]] = []
    inner = getattr(optimizer, "inner_optimizer", None)
    accumulating = getattr(
        inner if inner is not None else optimizer, "gradient_accumulation_steps", None
    )
    if (
        isinstance(accumulating, int)
        and accumulating > 1
        and (steps is None or steps < accumulating)
    ):
        found.append(("gradient_accumulation_steps", accumulating))
    scale = loss_scale(optimizer)
    if scale is not None and scale_before is not None and scale < scale_before:
        found.append(("loss_scale_skipped", (scale_before, scale)))
    if learning_rate(optimizer) == 0.0:
        found.append(("learning_rate", 0.0))
    return found


def gradient_kinds(grads: list[Any], variables: list[Any], traced: bool) -> dict[int, GradientKind]:
    """For each variable handed no gradient (``None``) or, where the step runs eagerly,
    an all-zero one: what it got. Under a trace only ``None`` is known."""
    found: dict[int, GradientKind] = {}
    for grad, variable in zip(grads, variables, strict=False):
        if grad is None:
            found[id(variable)] = "none"
        elif not traced and _all_zero(grad):
            found[id(variable)] = "zero"
    return found


def _all_zero(grad: Any) -> bool:
    try:
        if hasattr(grad, "any") and type(grad).__module__.startswith("torch"):
            return not bool(grad.any())
        return not np.any(np.asarray(grad))
    except Exception:  # noqa: BLE001 - not readable as an array (IndexedSlices...): unknown
        return False


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


def weight_slots(optimizer: Any, weights: list[Any]) -> dict[int, list[tuple[str, Any]]]:
    """The state an optimizer keeps for each of ``weights`` (id -> ``[(slot name, slot
    variable)]``), through its own bookkeeping: the positions of the variables it was
    built for (:func:`optimizer_positions`) in its slot lists (:func:`slot_lists`);
    tf_keras' legacy optimizers answer ``get_slot``. A ``LossScaleOptimizer`` keeps its
    state in its inner optimizer. Empty before the optimizer is built."""
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        optimizer = inner
    found: dict[int, list[tuple[str, Any]]] = {}
    positions = optimizer_positions(optimizer, weights)
    if positions:
        lists = slot_lists(optimizer)
        for var_id, i in positions.items():
            slots = [(name, values[i]) for name, values in lists if values[i] is not None]
            if slots:
                found[var_id] = slots
        return found
    names = getattr(optimizer, "get_slot_names", None)
    if callable(names):  # tf_keras' legacy OptimizerV2
        for weight in weights:
            slots = []
            for name in names():
                try:
                    slots.append((name, optimizer.get_slot(weight, name)))
                except (KeyError, ValueError):
                    continue
            if slots:
                found[id(weight)] = slots
    return found
