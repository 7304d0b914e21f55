"""The prediction: what a model's next built-in training call will train, before it runs.

:func:`plan_entries` reads flags, variable lists and Keras' training state (the compiled
trainable state, whether the train function is built, the variables its optimizer was
built for) — never a value — and gives one :class:`PlanEntry` per weight (a
:class:`~pytest_kerasfreeze.engine.plan.TrainingPlan` holds them): whether the next ``fit()`` /
``train_on_batch()`` updates it through the optimizer, why, and what the other Keras
would do with the same history (from :data:`~pytest_kerasfreeze.traps.TRAP_SEMANTICS`,
the table the runtime diagnosis uses).

What each Keras does (measured, and kept true by ``tests/test_explain_oracle.py``):

* Keras 3 on **TensorFlow** traces the train step once, at the first training call after
  ``compile()``: it trains the variables trainable then until the next ``compile()``;
* on **JAX** every ``fit()`` takes the variables trainable when it starts, and raises
  when their number differs from what the (already built) optimizer was built for;
* on **PyTorch** every step takes the variables trainable now, and raises for one the
  built optimizer does not know;
* **tf_keras** trains with the flags of its last ``compile()``.

Example::

    index, entries, selected, prediction = plan_entries(model, ["base"])
    [e.path for e in entries if e.will_train]   # [] : the base will not train
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_kerasfreeze._keras import tracing
from pytest_kerasfreeze._keras.flavors import (
    compile_record,
    has_custom_train_step,
    has_train_function,
    runtime_label,
    runtime_of,
)
from pytest_kerasfreeze.engine.diagnosis import flag_changes, trap_changes, trap_finding
from pytest_kerasfreeze.engine.findings import Finding
from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.engine.messages import plan as plan_text
from pytest_kerasfreeze.engine.provenance import (
    Assignment,
    Provenance,
    TrainableState,
    current_state,
)
from pytest_kerasfreeze.engine.selection import ModelIndex
from pytest_kerasfreeze.exceptions import LayerNotFoundError
from pytest_kerasfreeze.traps import RUNTIMES, TRAP_SEMANTICS, Direction, Phase, Runtime

Elsewhere = dict[str, bool | str]


@dataclass(frozen=True)
class PlanEntry:
    """What the next training call does with one weight.

    ``flag``: its effective flag now, by Keras' own rule for this model (``True`` when it
    is among ``model.trainable_weights``); ``own_flag``: the variable's own flag and its
    layer's own flag are both on; ``will_train``: the next ``fit()`` updates it through
    the optimizer; ``why``: one sentence; ``set_at``: ``file:line`` of the assignment (or
    creation) that decided it, ``None`` where none was recorded; ``elsewhere``:
    ``{"tf_keras"|"tensorflow"|"jax"|"torch": True | False | "raises"}``, what that Keras
    would do with the same history.

    Example::

        entry = plan.entries[0]
        print(entry.path, entry.will_train, entry.why, entry.elsewhere["jax"])
    """

    path: str
    flag: bool
    own_flag: bool
    will_train: bool
    why: str
    set_at: str | None
    elsewhere: Elsewhere
    declared_trainable: bool = True
    group: str = ""  # the top-level sub-model the weight sits in ("" for the model's own)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "flag": self.flag,
            "own_flag": self.own_flag,
            "will_train": self.will_train,
            "why": self.why,
            "set_at": self.set_at,
            "elsewhere": dict(self.elsewhere),
            "declared_trainable": self.declared_trainable,
        }


@dataclass
class Prediction:
    """The model-level part of a plan: what trains (ids), whether the call raises."""

    runtime: Runtime
    here: str
    trains: set[int]
    raises: str | None
    custom_step: bool
    phase: Phase | None
    changes: dict[int, Direction]
    finding: Finding | None
    slot_bytes: int = 0


def _ids(variables: Sequence[Any]) -> set[int]:
    return {id(v) for v in variables}


def _compiled_flags(model: Any, provenance: Provenance) -> dict[int, bool] | None:
    state = provenance.compile_state(model)
    if state is not None:
        return state.flags
    recorded = compile_record(model)
    return None if recorded is None else {id(layer): f for layer, f in recorded.items()}


def _is_compiled(model: Any) -> bool:
    compiled = getattr(model, "compiled", None)  # Keras 3
    if compiled is not None:
        return bool(compiled)
    return getattr(model, "optimizer", None) is not None  # tf_keras


def next_call(
    model: Any, index: ModelIndex, provenance: Provenance, now: TrainableState
) -> Prediction:
    """Which variables the next training call updates, and whether it raises."""
    runtime = runtime_of(model)
    here = runtime_label(runtime)
    flavor, weights = index.flavor, index.variables
    flagged = set(now.trainable or ())
    custom = has_custom_train_step(model)
    if runtime == "tf_keras":  # the flags at compile() rule
        compiled = _compiled_flags(model, provenance)
        if compiled is not None:
            flagged = _ids(flavor.trainable_with_flags(model, compiled))
    optimizer = getattr(model, "optimizer", None)
    positions = tracing.optimizer_positions(optimizer, weights) if optimizer else None
    known = set(positions or ())
    built_fn = has_train_function(model)
    build = provenance.build_state(model)
    trains, raises = flagged, None
    if not _is_compiled(model) and not custom:
        raises = plan_text.not_compiled(index.name)
    elif custom:
        pass  # the step decides; the flags are all there is to go by
    elif built_fn and runtime in ("tensorflow", "tf_keras"):  # traced once, kept
        if build is not None and build.trainable is not None:
            trains = set(build.trainable)
            if runtime == "tf_keras" and build.known is not None:
                trains = flagged & build.known  # tf_keras traced with the compile() flags
        elif positions is not None:
            trains = flagged & known if runtime == "tf_keras" else known
    elif positions is not None and runtime == "jax":
        if len(flagged) != tracing.optimizer_size(optimizer):
            raises = plan_text.count_mismatch(len(flagged), tracing.optimizer_size(optimizer))
    elif positions is not None and not flagged <= known:
        raises = plan_text.unknown_variables(
            [index.info[i].path for i in flagged - known if i in index.info]
        )
    phase, changes, finding = _history(model, index, provenance, now, positions, built_fn)
    return Prediction(
        runtime, here, set() if raises else trains, raises, custom, phase, changes, finding
    )


def _history(
    model: Any,
    index: ModelIndex,
    provenance: Provenance,
    now: TrainableState,
    positions: dict[int, int] | None,
    built_fn: bool,
) -> tuple[Phase | None, dict[int, Direction], Finding | None]:
    """Which flags changed since Keras last took them into account, and when: the
    runtime's own trap logic, plus a compile() with the same, already built optimizer."""
    found = trap_changes(model, index, provenance, now)
    if positions is not None and not built_fn:  # compiled again, the optimizer kept
        trainable = frozenset(positions)
        ref = TrainableState(0, "build", "the first fit()", {}, trainable, now.known)
        frozen, unfrozen = flag_changes(index, ref, now)
        created = found[2][2] if found is not None else set()
        changes: tuple[set[int], set[int], set[int]] = (frozen, unfrozen - created, created)
        found = ("after-recompile", ref, changes) if any(changes) else None
    if found is None:
        return None, {}, None
    phase, ref, (frozen, unfrozen, created) = found
    directions: dict[int, Direction] = dict.fromkeys(frozen, "freeze")
    directions.update(dict.fromkeys(unfrozen, "unfreeze"))
    directions.update(dict.fromkeys(created, "create"))
    finding = trap_finding(model, "fit", index, provenance, ref, phase, frozen, unfrozen, created)
    return phase, directions, finding


# -- per weight -------------------------------------------------------------------------
@dataclass
class _LayerFacts:
    """What every weight of one layer shares: read once per layer, not per weight."""

    flag: bool
    frozen_above: str | None  # the outermost frozen container above it (the model included)
    assignment: Assignment | None  # the last recorded assignment that reached it


def _layer_facts(index: ModelIndex, provenance: Provenance, layer_path: str) -> _LayerFacts:
    layer = index.layer_at(layer_path) if layer_path else index.model
    parts = layer_path.split("/")[:-1] if layer_path else []
    containers = [(index.name, index.model)]
    containers += [
        (p, index.layer_at(p)) for p in ("/".join(parts[: n + 1]) for n in range(len(parts)))
    ]
    frozen_above = next((path for path, c in containers if not c.trainable), None)
    return _LayerFacts(bool(layer.trainable), frozen_above, provenance.last_assignment(id(layer)))


def _set_at(provenance: Provenance, variable: Any, facts: _LayerFacts) -> tuple[str | None, str]:
    """Where the weight's flag was decided (``file:line``), and how it reads in a why."""
    creation = provenance.creation(id(variable)) if provenance.creations else None
    on_variable = provenance.last_assignment(id(variable)) if provenance.assignments else None
    candidates = [a for a in (facts.assignment, on_variable) if a is not None]
    assignment = max(candidates, key=lambda a: a.seq, default=None)
    if assignment is not None and (creation is None or assignment.seq > creation.seq):
        return assignment.location, plan_text.origin(assignment.location, assignment.via)
    if creation is not None:
        return creation.location, plan_text.origin(creation.location, creation.via)
    return None, ""


def _rules(
    index: ModelIndex, variable: Any, declared: bool, facts: _LayerFacts
) -> tuple[bool, bool, bool]:
    """(own flag, Keras 3's rule, Keras 2's rule) of one weight."""
    var_flag = bool(getattr(variable, "trainable", True)) if index.flavor.name == "keras3" else True
    own = declared and var_flag and facts.flag
    return own, own and bool(index.model.trainable), own and facts.frozen_above is None


def _elsewhere(
    base3: bool, base2: bool, phase: Phase | None, direction: Direction | None
) -> Elsewhere:
    out: Elsewhere = {}
    for runtime in RUNTIMES:
        base = base2 if runtime == "tf_keras" else base3
        if phase is None or direction is None:
            out[runtime] = base
            continue
        outcome = TRAP_SEMANTICS[(runtime, phase, direction)][0]
        if outcome == "raises":
            out[runtime] = "raises"
        elif outcome == "honoured":
            out[runtime] = base
        else:  # ignored: what it was before the change
            out[runtime] = direction == "freeze"
    return out


def plan_entries(
    model: Any,
    layers: Sequence[Any] = (),
    exclude: Sequence[Any] = (),
    provenance: Provenance | None = None,
) -> tuple[ModelIndex, list[PlanEntry], set[int], Prediction]:
    """The index, one entry per weight of the model (model order), the ids of the
    selected ones, and the model-level prediction. ``provenance``: what was recorded
    (a test's, or :func:`~pytest_kerasfreeze.record`'s); without it, the model's own state
    is all there is, and ``set_at`` is ``None``. Bad input raises the helpers' errors.

    The garbage collector is paused meanwhile: a plan allocates a few objects per weight
    and makes no cycles, and on a 100,000-variable model the collections it would trigger
    (each walking every live object, the model's included) cost a third of the time."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _plan_entries(model, layers, exclude, provenance)
    finally:
        if paused:
            gc.enable()


def _plan_entries(
    model: Any,
    layers: Sequence[Any],
    exclude: Sequence[Any],
    provenance: Provenance | None,
) -> tuple[ModelIndex, list[PlanEntry], set[int], Prediction]:
    index = ModelIndex.of(model)
    selected = index.select(layers, exclude)
    if layers and not selected:
        raise LayerNotFoundError(errors.nothing_left(index.describe(layers, exclude), index.name))
    provenance = provenance if provenance is not None else Provenance()
    at_start = provenance.call_state(model)
    now = at_start or current_state(model, "call", 0, "", index.variables)
    if at_start is not None and index.flavor.name == "tf_keras":
        # inside fit() tf_keras holds its compile() flags on the layers: take the user's
        trainable = frozenset(_ids(index.flavor.trainable_with_flags(model, now.flags)))
        now = TrainableState(0, "call", "", now.flags, trainable, now.known)
    prediction = next_call(model, index, provenance, now)
    flagged = set(now.trainable or ())
    entries = []
    layers_seen: dict[str, _LayerFacts] = {}
    for variable in index.variables:
        var_id = id(variable)
        info = index.info[var_id]
        facts = layers_seen.get(info.layer_path)
        if facts is None:
            facts = layers_seen[info.layer_path] = _layer_facts(index, provenance, info.layer_path)
        own, base3, base2 = _rules(index, variable, info.declared_trainable, facts)
        frozen_above = facts.frozen_above
        direction = prediction.changes.get(var_id)
        phase = prediction.phase if direction else None
        set_at, origin = _set_at(provenance, variable, facts)
        will = var_id in prediction.trains
        behaviour = (
            TRAP_SEMANTICS[(prediction.runtime, phase, direction)][1] if phase and direction else ""
        )
        why = plan_text.why(
            here=prediction.here,
            declared=info.declared_trainable,
            flag=var_id in flagged,
            own=own,
            will_train=will,
            custom=prediction.custom_step,
            raises=prediction.raises,
            phase=phase,
            direction=direction,
            behaviour=behaviour,
            origin=origin,
            frozen_above=frozen_above,
            model=index.name,
        )
        group = info.path.partition("/")[0] if "/" in info.path else ""
        entries.append(
            PlanEntry(
                info.path,
                var_id in flagged,
                own,
                will,
                why,
                set_at,
                _elsewhere(base3, base2, phase, direction),
                info.declared_trainable,
                group,
            )
        )
    # what raises for one weight's history raises for the whole call on that Keras
    raising = {k for e in entries for k, v in e.elsewhere.items() if v == "raises"}
    if raising:
        entries = [
            dataclasses.replace(
                e,
                elsewhere={
                    k: ("raises" if k in raising and e.declared_trainable else v)
                    for k, v in e.elsewhere.items()
                },
            )
            for e in entries
        ]
    prediction.slot_bytes = _slot_bytes(model, index, prediction.trains, _ids(selected))
    return index, entries, _ids(selected), prediction


def _slot_bytes(model: Any, index: ModelIndex, trains: set[int], selected: set[int]) -> int:
    """Bytes of the optimizer state held for selected weights that will not train."""
    optimizer = getattr(model, "optimizer", None)
    positions = tracing.optimizer_positions(optimizer, index.variables) if optimizer else None
    if not positions:
        return 0
    idle = {p for i, p in positions.items() if i in selected and i not in trains}
    slots = [s[i] for s in tracing.optimizer_slots(optimizer) for i in idle if s[i] is not None]
    return index.flavor.total_nbytes(slots) if slots else 0
