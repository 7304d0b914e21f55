"""Why a freeze did not do what was meant: findings with ``file:line`` and the fix.

Three kinds of finding:

* **compile-order trap** — flags changed after ``compile()`` and before the train
  function was built, or after it was built; what trains then depends on the Keras
  (:data:`~pytest_kerasfreeze.compat.TRAP_SEMANTICS`), so the same test passes on one
  and fails on another;
* **shared weights** — a layer reached through several containers was frozen (or
  unfrozen) by an assignment made on one of them, which changes it in all of them;
* **flag vs reality** — a weight whose flag said trainable did not move, or whose flag
  said frozen moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_kerasfreeze.compat import (
    RUNTIME_LABELS,
    TRAP_SEMANTICS,
    runtime_label,
    runtime_of,
)
from pytest_kerasfreeze.provenance import Assignment, Provenance, TrainableState, current_state
from pytest_kerasfreeze.selection import ModelIndex

if TYPE_CHECKING:
    from pytest_kerasfreeze.weightdiff import WeightChange, WeightDiff

_MAX_NAMES = 8
COMPILE_ORDER = "compile-order trap"
SHARED = "shared weights"
REALITY = "flag vs reality"
REPLICAS = "replica drift"
NONFINITE = "NaN values"


@dataclass
class Finding:
    """One diagnosis entry: what was found, where it came from, and how to fix it."""

    kind: str
    model: str
    summary: str
    explanation: str
    fix: str
    layers: list[str] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    call: str | None = None
    outcome: str | None = None  # trap only: "honoured", "ignored" or "raises"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "call": self.call,
            "summary": self.summary,
            "layers": list(self.layers),
            "assignments": list(self.assignments),
            "explanation": self.explanation,
            "fix": self.fix,
            "outcome": self.outcome,
        }

    def __str__(self) -> str:
        return f"[{self.kind}] {self.summary}\n{self.explanation}\nFix: {self.fix}"


def _ancestor_paths(path: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b"]``: the containers a path goes through."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_NAMES])
    return shown + (f", ... {len(items) - _MAX_NAMES} more" if len(items) > _MAX_NAMES else "")


def _layer_paths(index: ModelIndex, var_ids: set[int]) -> list[str]:
    """The layers (paths) holding these variables, in model order."""
    paths: list[str] = []
    for var in index.variables:
        if id(var) in var_ids:
            layer_path = index.info[id(var)].path.rpartition("/")[0] or index.model.name
            if layer_path not in paths:
                paths.append(layer_path)
    return paths


def _flag_changes(
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
    unfrozen: set[int] = set()
    for node in index.nodes:
        was = ref.flags.get(id(node.layer))
        is_now = now.flags.get(id(node.layer))
        if was is None or is_now is None or was == is_now:
            continue
        own = {id(v) for v in index.flavor.declared_trainable(node.layer)}
        (frozen if was else unfrozen).update(own)
    return frozen, unfrozen


# -- the compile-order trap ----------------------------------------------------------
def detect_trap(
    model: Any, method: str, index: ModelIndex, provenance: Provenance, location: str
) -> tuple[Finding | None, TrainableState]:
    """Before a training call: did the flags change since they were last taken into
    account? Returns the finding (or ``None``) and the state now."""
    now = current_state(model, "call", provenance.next_seq(), location)
    has_train_function = getattr(model, "train_function", None) is not None
    # 1. changed since the train function was built (by the first fit())?
    built = provenance.build_state(model)
    if built is not None and has_train_function:
        frozen, unfrozen = _flag_changes(index, built, now)
        if frozen or unfrozen:
            return (
                _trap_finding(
                    model, method, index, provenance, built, "after-build", frozen, unfrozen
                ),
                now,
            )
    # 2. changed since compile()? Before the first fit() that is the trap itself; after
    # it, the train function was built with those flags and every call trains with them.
    ref = provenance.compile_state(model)
    if ref is None:
        return None, now
    phase = "after-compile"
    if built is None and has_train_function:
        # The train function was built before this test observed the model (a fit() at
        # import time, or in a fixture of a wider scope): it trains with the flags it
        # was built with, whose best known record is the last compile().
        phase = "after-build"
    frozen, unfrozen = _flag_changes(index, ref, now)
    if not frozen and not unfrozen:
        return None, now
    return _trap_finding(model, method, index, provenance, ref, phase, frozen, unfrozen), now


def _trap_finding(
    model: Any,
    method: str,
    index: ModelIndex,
    provenance: Provenance,
    ref: TrainableState,
    phase: str,
    frozen: set[int],
    unfrozen: set[int],
) -> Finding:
    runtime = runtime_of(model)
    direction = "unfreeze" if unfrozen else "freeze"
    outcome, behaviour = TRAP_SEMANTICS[(runtime, phase, direction)]
    changed_layers = _layer_paths(index, frozen | unfrozen)
    layer_ids = {id(n.layer) for n in index.nodes if n.path in changed_layers}
    layer_ids |= {id(model)}
    assignments = provenance.assignments_reaching(layer_ids, after=ref.seq)
    if phase == "after-compile":
        when = f"after compile() ({ref.location}) and before its train function was built"
    elif ref.event == "compile":  # built before this test: only the compile is known
        when = f"after its train function was built (before this test; compile() {ref.location})"
    else:
        when = f"after its train function was built ({ref.location})"
    lines = [f"{model.name}.{method}() is about to train with trainable flags changed {when}:"]
    lines += [f"  {a.describe()}" for a in assignments] or [
        "  (the change was not made by a recorded `trainable =` assignment)"
    ]
    if frozen:
        paths = _layer_paths(index, frozen)
        lines.append(f"  now frozen, trainable before: {len(frozen)} weights of {_names(paths)}")
    if unfrozen:
        paths = _layer_paths(index, unfrozen)
        lines.append(f"  now trainable, frozen before: {len(unfrozen)} weights of {_names(paths)}")
    here = runtime_label(runtime)
    lines.append(f"On {here}: {behaviour}{_consequence(outcome, frozen, unfrozen)}")
    elsewhere = [
        f"{RUNTIME_LABELS[other]}: {TRAP_SEMANTICS[(other, phase, direction)][1]}"
        for other in RUNTIME_LABELS
        if other != runtime
    ]
    lines.append("Elsewhere: " + "; ".join(elsewhere) + ".")
    fix = (
        f"set `trainable` first, then call {model.name}.compile(...) again before "
        f"training, so every Keras trains the same weights."
    )
    if any(a.layer is model and not a.value for a in assignments):
        fix += (
            " For a GAN whose discriminator is trained on its own and frozen inside the "
            "combined model, write a custom train_step that applies gradients to "
            "discriminator.trainable_weights and generator.trainable_weights (the keras-io "
            "DCGAN example) instead of relying on when the flag was set."
        )
    moved = (
        "frozen"
        if frozen and not unfrozen
        else "unfrozen"
        if unfrozen and not frozen
        else "changed"
    )
    first = assignments[0].location if assignments else ref.location
    summary = (
        f"{model.name}: {len(frozen | unfrozen)} weights {moved} "
        f"{'after compile()' if phase == 'after-compile' else 'after the first fit()'} "
        f"({first}); {here}: {outcome}"
    )
    return Finding(
        kind=COMPILE_ORDER,
        model=str(model.name),
        summary=summary,
        explanation="\n".join(lines),
        fix=fix,
        layers=changed_layers,
        assignments=[a.to_dict() for a in assignments],
        call=f"{model.name}.{method}()",
        outcome=outcome,
    )


def _consequence(outcome: str, frozen: set[int], unfrozen: set[int]) -> str:
    parts = []
    if outcome == "raises":
        return " — so this call will raise."
    if frozen:
        parts.append(
            "the newly frozen weights will not train"
            if outcome == "honoured"
            else "the newly frozen weights WILL keep training"
        )
    if unfrozen:
        parts.append(
            "the newly unfrozen weights will train"
            if outcome == "honoured"
            else "the newly unfrozen weights will NOT train"
        )
    return " — so " + " and ".join(parts) + "."


# -- shared weights ------------------------------------------------------------------
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
        owners = [assignment.name]
        for path in paths:
            parent = path.rpartition("/")[0] or index.model.name
            if parent not in owners:
                owners.append(parent)
        state = "frozen" if not assignment.value else "trainable"
        n_weights = sum(
            len(index.flavor.own_variables(n.layer)) for n in index.nodes if n.path in paths
        )
        explanation = (
            f"{_names(paths)} ({n_weights} weights) of model {index.model.name!r} are {state} "
            f"because {assignment.describe()} reached them: these layers are shared by "
            f"{' and '.join(owners)}. A trainable flag belongs to the layer, not to the "
            f"container it is reached through, so "
            f"{'freezing' if not assignment.value else 'unfreezing'} {assignment.name} "
            f"{'froze' if not assignment.value else 'unfroze'} them in every container."
        )
        findings.append(
            Finding(
                kind=SHARED,
                model=str(index.model.name),
                summary=(
                    f"{index.model.name}: {_names(paths)} {state} through {assignment.name} "
                    f"({assignment.location}), shared by {' and '.join(owners)}"
                ),
                explanation=explanation,
                fix=(
                    "give each container its own layers if they must train differently "
                    "(build the frozen branch from a copy, e.g. keras.models.clone_model), "
                    "or freeze the weights for one model only in a custom train_step."
                ),
                layers=paths,
                assignments=[assignment.to_dict()],
            )
        )
    return findings


# -- flag vs reality -----------------------------------------------------------------
def reality_findings(diff: WeightDiff) -> list[Finding]:
    """Weights whose flag (unchanged over the diff) disagrees with what happened."""
    before_flags = diff.before_trainable
    stuck: list[WeightChange] = []
    moving: list[WeightChange] = []
    for change, was in zip(diff.changes, before_flags, strict=True):
        if not change.declared_trainable or change.trainable != was:
            continue
        if change.trainable and not change.moved:
            stuck.append(change)
        elif not change.trainable and change.moved:
            moving.append(change)
    model = diff.model_name
    findings = []
    nonfinite = diff.nonfinite_counts(stuck) if stuck else {}
    if nonfinite:
        stuck = [c for c in stuck if c.path not in nonfinite]
        held = [c for c in diff.changes if c.path in nonfinite]
        findings.append(nonfinite_finding(model, held, nonfinite))
    if moving:
        findings.append(
            _reality(
                model,
                moving,
                "flag says frozen, but {n} weights moved",
                "trainable=False now and before, yet they changed. Most often the "
                "compile-order trap: the flag was set after compile() or after the first "
                "fit(), and this Keras still trains the variables fixed then. A custom "
                "train_step that updates model.weights would do it too.",
                "set `trainable`, then call compile() again before training.",
            )
        )
    if stuck:
        findings.append(
            _reality(
                model,
                stuck,
                "flag says trainable, but {n} weights did not move",
                "trainable=True now and before, yet unchanged. Possible causes: the "
                "compile-order trap (the flags at compile() or at the first fit() rule), no "
                "gradient reaching them (not connected to the loss, dead activations), a "
                "zero learning rate, or a train_step that does not update them.",
                "check that these layers feed the loss and that the model was compiled "
                "after its flags were set.",
            )
        )
    return findings


def nonfinite_finding(
    model: str, changes: Sequence[WeightChange], counts: dict[str, int]
) -> Finding:
    """Weights that hold NaN/Inf: no training step can move them (NaN stays NaN)."""
    layers = _dedupe(c.path.rpartition("/")[0] or model for c in changes)
    detail = _names([f"{c.path} ({counts[c.path]}/{c.size})" for c in changes])
    return Finding(
        kind=NONFINITE,
        model=model,
        summary=f"{model}: {len(changes)} weights hold NaN/Inf values ({_names(layers)})",
        explanation=(
            f"{detail}: these values are NaN or Inf, and a NaN stays a NaN whatever a "
            f"training step adds to it, so they cannot be seen to move. The training "
            f"diverged before this check (or the weights were set to NaN)."
        ),
        fix=(
            "find the step where the values first became NaN/Inf (watch earlier calls), "
            "then lower the learning rate, clip gradients or check the data for NaN."
        ),
        layers=layers,
    )


def _reality(model: str, changes: Sequence[WeightChange], what: str, why: str, fix: str) -> Finding:
    layers = _dedupe(c.path.rpartition("/")[0] or model for c in changes)
    return Finding(
        kind=REALITY,
        model=model,
        summary=f"{model}: {what.format(n=len(changes))} ({_names(layers)})",
        explanation=f"{_names([c.path for c in changes])}: {why}",
        fix=fix,
        layers=layers,
    )


def replica_findings(diff: WeightDiff) -> list[Finding]:
    """Distributed weights whose replicas no longer hold the same value."""
    after = diff.after_snapshot
    if not after.drift:
        return []
    changes = diff.changes
    drifted = [(changes[i], spread) for i, spread in sorted(after.drift.items())]
    paths = [c.path for c, _ in drifted]
    worst = max(spread for _, spread in drifted)
    model = diff.model_name
    return [
        Finding(
            kind=REPLICAS,
            model=model,
            summary=(
                f"{model}: the replicas of {len(drifted)} distributed weights differ "
                f"(max |Δ| between replicas {worst:.3g}): {_names(paths)}"
            ),
            explanation=(
                f"{_names(paths)}: the copies kept on each device are no longer equal, so "
                f"what a check reads depends on the replica. Every replica was read; the "
                f"first one is what the diff compares."
            ),
            fix=(
                "update distributed variables only through the strategy (optimizer or "
                "strategy.run / assign under the strategy scope), never one replica."
            ),
            layers=_dedupe(p.rpartition("/")[0] or model for p in paths),
        )
    ]


def diff_findings(diff: WeightDiff) -> list[Finding]:
    """What one diff shows by itself: flags against reality, drifting replicas."""
    return reality_findings(diff) + replica_findings(diff)


def _dedupe(items: Any) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def merge(*groups: Sequence[Finding]) -> list[Finding]:
    """Findings without repeats (same kind, model and summary), in order."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for group in groups:
        for finding in group:
            key = (finding.kind, finding.model, finding.summary)
            if key not in seen:
                seen.add(key)
                out.append(finding)
    return out
