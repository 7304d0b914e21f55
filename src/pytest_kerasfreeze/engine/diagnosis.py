"""Why a freeze did not do what was meant: the finders of each kind of finding.

* **compile-order trap** — flags changed after ``compile()`` and before the train
  function was built, or after it was built; what trains then depends on the Keras
  (:data:`~pytest_kerasfreeze.traps.TRAP_SEMANTICS`), so the same test passes on one
  and fails on another;
* **shared weights** — a layer reached through a container whose own flag says one
  thing, frozen (or unfrozen) by an assignment made on another container that shares it;
* **flag vs reality** — a weight whose flag said trainable did not move, or whose flag
  said frozen moved; **NaN values** — weights that cannot be seen to move;
* **replica drift** — the replicas of a distributed weight no longer agree.

Each finder takes everything it needs as arguments; the words come from
:mod:`pytest_kerasfreeze.engine.messages.explain`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_kerasfreeze._keras.flavors import has_train_function, runtime_label, runtime_of
from pytest_kerasfreeze.engine.changes import WeightChange
from pytest_kerasfreeze.engine.findings import (
    COMPILE_ORDER,
    FROZEN_PARENT,
    NONFINITE,
    REALITY,
    REPLICAS,
    SHARED,
    TWO_OPTIMIZERS,
    Finding,
)
from pytest_kerasfreeze.engine.messages import explain
from pytest_kerasfreeze.engine.provenance import (
    Assignment,
    Provenance,
    TrainableState,
    current_state,
)
from pytest_kerasfreeze.engine.selection import ModelIndex
from pytest_kerasfreeze.engine.sequences import unique
from pytest_kerasfreeze.traps import TRAP_SEMANTICS, Direction, Phase


def _layer_paths(index: ModelIndex, var_ids: set[int]) -> list[str]:
    """The layers (paths) holding these variables, in model order."""
    return unique(
        (index.info[id(v)].layer_path or index.name for v in index.variables if id(v) in var_ids),
        key=str,
    )


def _layer_of(path: str, model: str) -> str:
    return path.rpartition("/")[0] or model


def flag_changes(
    index: ModelIndex, ref: TrainableState, now: TrainableState
) -> tuple[set[int], set[int]]:
    """Variable ids newly frozen and newly unfrozen since ``ref``.

    Only weights that existed at ``ref`` count: one created since (a model built by its
    first training call) was never frozen or trainable before.
    """
    if ref.trainable is not None and now.trainable is not None:
        unfrozen = now.trainable - ref.trainable
        if ref.known is not None:
            unfrozen &= ref.known
        return set(ref.trainable - now.trainable), set(unfrozen)
    # Only flags are known (Keras' own record of a compile made before this test).
    frozen: set[int] = set()
    unfrozen_ids: set[int] = set()
    for node in index.nodes:
        was = ref.flags.get(id(node.layer))
        is_now = now.flags.get(id(node.layer))
        if was is None or is_now is None or was == is_now:
            continue
        own = {id(v) for v in index.flavor.declared_trainable(node.layer)}
        (frozen if was else unfrozen_ids).update(own)
    return frozen, unfrozen_ids


def created_since(provenance: Provenance, ref: TrainableState, now: TrainableState) -> set[int]:
    """Weights created since ``ref`` on a layer that was already built (enable_lora);
    not those of a layer built since (a model built by its first training call)."""
    if ref.known is None or now.known is None:
        return set()
    return {
        v
        for v in now.known - ref.known
        if (c := provenance.creation(v)) is not None and c.seq > ref.seq
    }


# -- the compile-order trap -------------------------------------------------------------
Changes = tuple[set[int], set[int], set[int]]  # ids newly frozen, unfrozen, created


def trap_changes(
    model: Any, index: ModelIndex, provenance: Provenance, now: TrainableState
) -> tuple[Phase, TrainableState, Changes] | None:
    """Did the flags change since they were last taken into account? The phase, the
    state they are compared with, and the changes (``None`` when nothing changed)."""
    built_already = has_train_function(model)
    # 1. changed since the train function was built (by the first fit())?
    built = provenance.build_state(model)
    if built is not None and built_already:
        changes = (*flag_changes(index, built, now), created_since(provenance, built, now))
        if any(changes):
            return "after-build", built, changes
    # 2. changed since compile()? Before the first fit() that is the trap itself; after
    # it, the train function was built with those flags and every call trains with them.
    ref = provenance.compile_state(model)
    if ref is None:
        return None
    phase: Phase = "after-compile"
    if built is None and built_already:
        # The train function was built before this test observed the model (a fit() at
        # import time, or in a fixture of a wider scope): it trains with the flags it
        # was built with, whose best known record is the last compile().
        phase = "after-build"
    changes = (*flag_changes(index, ref, now), created_since(provenance, ref, now))
    return (phase, ref, changes) if any(changes) else None


def detect_trap(
    model: Any, method: str, index: ModelIndex, provenance: Provenance, location: str
) -> tuple[Finding | None, TrainableState]:
    """Before a training call: did the flags change since they were last taken into
    account? Returns the finding (or ``None``) and the state now."""
    now = current_state(model, "call", provenance.next_seq(), location)
    found = trap_changes(model, index, provenance, now)
    if found is None:
        return None, now
    phase, ref, changes = found
    return trap_finding(model, method, index, provenance, ref, phase, *changes), now


def _target_path(index: ModelIndex, assignment: Assignment) -> str:
    """The model's own path of a variable an assignment set (Keras' ``variable.path``
    does not say which container it sits in); a layer's name otherwise."""
    if assignment.kind == "variable":
        var_id = next(iter(assignment.reached))
        if var_id in index.info:
            return index.info[var_id].path
    return assignment.name


def trap_finding(
    model: Any,
    method: str,
    index: ModelIndex,
    provenance: Provenance,
    ref: TrainableState,
    phase: Phase,
    frozen: set[int],
    unfrozen: set[int],
    created: set[int],
) -> Finding:
    """The compile-order trap finding for these changes since ``ref``."""
    runtime = runtime_of(model)
    changed = frozen | unfrozen | created
    changed_layers = _layer_paths(index, changed)
    ids = {id(index.layer_at(p)) for p in changed_layers if p != index.name}
    assignments = provenance.assignments_reaching(ids | changed | {id(model)}, after=ref.seq)
    lines = [a.describe(_target_path(index, a)) for a in assignments]
    origins = [
        (f"set by {a.via}() at {a.location}" if a.via else f"set at {a.location}")
        for a in assignments
    ]
    by_source: dict[tuple[str, str], list[str]] = {}
    for var_id in sorted(created, key=lambda v: provenance.creations[v].seq):
        record = provenance.creations[var_id]
        by_source.setdefault((record.via, record.location), []).append(index.info[var_id].path)
    for (via, where), paths in by_source.items():
        lines.append(explain.creation(paths, via, where))
        origins.insert(0, f"by {via}() at {where}")
    summary, explanation, fix = explain.trap(
        explain.TrapFacts(
            model=index.name,
            method=method,
            phase=phase,
            ref_event=ref.event,
            ref_location=ref.location,
            assignments=lines,
            origin=origins[0] if origins else f"compile() at {ref.location}",
            runtime=runtime,
            here=runtime_label(runtime),
            frozen=explain.Changed(len(frozen), _layer_paths(index, frozen)),
            unfrozen=explain.Changed(len(unfrozen), _layer_paths(index, unfrozen)),
            created=explain.Changed(len(created), _layer_paths(index, created)),
            gan_hint=any(a.layer is model and not a.value for a in assignments),
        )
    )
    direction: Direction = "create" if created else "unfreeze" if unfrozen else "freeze"
    return Finding(
        kind=COMPILE_ORDER,
        model=index.name,
        summary=summary,
        explanation=explanation,
        fix=fix,
        layers=changed_layers,
        assignments=[a.to_dict() for a in assignments],
        call=f"{index.name}.{method}()",
        outcome=TRAP_SEMANTICS[(runtime, phase, direction)][0],
    )


# -- shared weights ---------------------------------------------------------------------
def _ancestor_paths(path: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b"]``: the containers a path goes through."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def shared_findings(index: ModelIndex, provenance: Provenance | None) -> list[Finding]:
    """Layers of this model whose flag was set through another container that shares
    them, while the container this model reaches them through says otherwise.

    A layer reached directly (a top-level layer of the model: keras-io's
    ``EfficientNetB0(input_tensor=...)`` whose layers the outer model holds flat) or
    through the container that was assigned is frozen as meant: no finding.
    """
    if provenance is None or not provenance.assignments:
        return []
    grouped: dict[int, tuple[Assignment, list[str]]] = {}
    for node in index.nodes:
        if not index.flavor.own_variables(node.layer):
            continue
        assignment = provenance.last_assignment(id(node.layer))
        if assignment is None:
            continue
        assigned = assignment.layer
        if assigned is node.layer or assigned is index.model:
            continue
        through = index.paths_of(assigned)  # empty if outside this model
        if any(node.path.startswith(t + "/") for t in through):
            continue  # this path goes through the container that was assigned: as meant
        containers = [index.layer_at(p) for p in _ancestor_paths(node.path)]
        if not any(bool(c.trainable) != assignment.value for c in containers):
            continue  # reached directly, or through containers that agree with the flag
        grouped.setdefault(assignment.seq, (assignment, []))[1].append(node.path)
    findings = []
    for assignment, paths in grouped.values():
        owners = unique([assignment.name, *(_layer_of(p, index.name) for p in paths)], key=str)
        summary, explanation, fix = explain.shared(
            model=index.name,
            paths=paths,
            n_weights=sum(len(index.flavor.own_variables(index.layer_at(p))) for p in paths),
            value=assignment.value,
            assigned=assignment.name,
            assignment_text=assignment.describe(),
            location=assignment.location,
            owners=owners,
        )
        findings.append(
            Finding(SHARED, index.name, summary, explanation, fix, paths, [assignment.to_dict()])
        )
    return findings


# -- what a diff shows by itself --------------------------------------------------------
def reality_findings(
    model: str,
    changes: Sequence[WeightChange],
    before_flags: Sequence[bool],
    nonfinite: Mapping[str, int],
    gradients: Mapping[str, str] | None = None,
    delays: Sequence[tuple[str, str, Any]] = (),
) -> list[Finding]:
    """Weights whose flag (unchanged over the diff) disagrees with what happened, and
    trainable weights that could not move because they hold NaN/Inf (``nonfinite``:
    path -> count, for the weights that did not move). For trainable weights that did
    not move, the cause where it is known: ``gradients`` (path -> ``"none"``/``"zero"``:
    what the optimizer was handed for them) and ``delays`` (the settings of the
    optimizers that ran which delay or skip updates: gradient accumulation, a loss
    scale that skipped steps, a learning rate of 0)."""
    stuck: list[WeightChange] = []
    moving: list[WeightChange] = []
    for change, was in zip(changes, before_flags, strict=True):
        if not change.declared_trainable or change.trainable != was:
            continue
        if change.trainable and not change.moved:
            stuck.append(change)
        elif not change.trainable and change.moved:
            moving.append(change)
    findings = []
    held = [c for c in stuck if c.path in nonfinite]
    if held:
        findings.append(nonfinite_finding(model, held, nonfinite))
        stuck = [c for c in stuck if c.path not in nonfinite]
    if moving:
        layers = unique((_layer_of(c.path, model) for c in moving), key=str)
        summary, explanation, fix = explain.frozen_but_moved(
            model, [c.path for c in moving], layers
        )
        findings.append(Finding(REALITY, model, summary, explanation, fix, layers))
    if stuck:
        layers = unique((_layer_of(c.path, model) for c in stuck), key=str)
        told = dict(gradients or {})
        by_gradient = {
            kind: [c.path for c in stuck if told.get(c.path) == kind] for kind in ("none", "zero")
        }
        summary, explanation, fix = explain.trainable_but_stuck(
            model, [c.path for c in stuck], layers, by_gradient, list(delays)
        )
        findings.append(Finding(REALITY, model, summary, explanation, fix, layers))
    return findings


# -- a frozen parent over layers set back to trainable ----------------------------------
def frozen_parent_findings(
    index: ModelIndex, changes: Sequence[WeightChange], provenance: Provenance | None
) -> list[Finding]:
    """Weights whose own flags say trainable under a frozen parent: ``model.trainable =
    False``, then ``layer.trainable = True`` for the top layers, then the model itself is
    trained — on Keras 3 everything under a frozen model that is trained stays frozen
    (under a frozen *nested* sub-model the re-enabled layers do train); on tf_keras
    everything under any frozen container stays frozen."""
    held = [c for c in changes if c.own_trainable and not c.trainable]
    if not held:
        return []
    grouped: dict[str, list[WeightChange]] = {}
    for change in held:
        layer_path = _layer_of(change.path, index.name)
        chain = [index.name] + (
            [*_ancestor_paths(layer_path + "/x")] if layer_path != index.name else []
        )
        parent = next(
            (p for p in chain if p != layer_path and not _container(index, p).trainable), index.name
        )
        grouped.setdefault(parent, []).append(change)
    findings = []
    for parent, group in grouped.items():
        layers = unique((_layer_of(c.path, index.name) for c in group), key=str)
        container = _container(index, parent)
        frozen_at = _assigned_at(provenance, container, False)
        set_at = unique(
            (loc for p in layers if (loc := _assigned_at(provenance, _container(index, p), True))),
            key=str,
        )
        summary, explanation, fix = explain.frozen_parent(
            model=index.name,
            parent=parent,
            is_model=container is index.model,
            layers=layers,
            n_weights=len(group),
            frozen_at=frozen_at,
            set_at=set_at,
        )
        findings.append(Finding(FROZEN_PARENT, index.name, summary, explanation, fix, layers))
    return findings


def _container(index: ModelIndex, path: str) -> Any:
    return index.model if path in ("", index.name) else index.layer_at(path)


def _assigned_at(provenance: Provenance | None, layer: Any, value: bool) -> str | None:
    """``file:line`` of the last recorded ``layer.trainable = value``, if any."""
    if provenance is None:
        return None
    assignment = provenance.last_assignment(id(layer))
    if assignment is None or assignment.value != value:
        return None
    return assignment.location


def nonfinite_finding(
    model: str, changes: Sequence[WeightChange], counts: Mapping[str, int]
) -> Finding:
    """Weights that hold NaN/Inf: no training step can move them (NaN stays NaN)."""
    layers = unique((_layer_of(c.path, model) for c in changes), key=str)
    held = [f"{c.path} ({counts[c.path]}/{c.size})" for c in changes]
    summary, explanation, fix = explain.nonfinite(model, held, layers)
    return Finding(NONFINITE, model, summary, explanation, fix, layers)


def replica_findings(
    model: str, changes: Sequence[WeightChange], drift: Mapping[int, float]
) -> list[Finding]:
    """Distributed weights whose replicas no longer hold the same value (``drift``:
    position in ``changes`` -> largest |replica - replica 0|)."""
    if not drift:
        return []
    drifted = [(changes[i], spread) for i, spread in sorted(drift.items())]
    paths = [c.path for c, _ in drifted]
    summary, explanation, fix = explain.replica_drift(model, paths, max(s for _, s in drifted))
    layers = unique((_layer_of(p, model) for p in paths), key=str)
    return [Finding(REPLICAS, model, summary, explanation, fix, layers)]


def two_optimizer_findings(model: str, changes: Sequence[WeightChange]) -> list[Finding]:
    """Weights updated by two different optimizers in one watched interval: the GAN
    whose generator step applies its optimizer to ``self.trainable_weights``, which
    holds the discriminator too."""
    grouped: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for change in changes:
        optimizers = unique(
            ((m.name, m.location) for m in change.moved_by if m.kind == "optimizer"), key=str
        )
        if len({name for name, _ in optimizers}) > 1:
            grouped.setdefault(tuple(optimizers), []).append(change.path)
    findings = []
    for pairs, paths in grouped.items():
        summary, explanation, fix = explain.two_optimizers(model, paths, pairs)
        layers = unique((_layer_of(p, model) for p in paths), key=str)
        findings.append(Finding(TWO_OPTIMIZERS, model, summary, explanation, fix, layers))
    return findings
