"""The words of each kind of finding: its summary, its explanation and its fix.

:mod:`pytest_kerasfreeze.diagnosis` decides *what* was found; the functions here say it.
A ``file:line`` is always labelled with what happened there (``set at``, ``compile()
at``), so a freeze and a compile cannot be confused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_kerasfreeze.messages import names, plural
from pytest_kerasfreeze.traps import RUNTIME_LABELS, TRAP_SEMANTICS, Direction, Phase, Runtime

Texts = tuple[str, str, str]  # summary, explanation, fix

# when a flag changed, in words, per phase of the trap table
MOMENTS: dict[Phase, str] = {
    "after-compile": "after compile()",
    "after-build": "after the first fit()",
    "after-recompile": "after the first fit() (recompiled with the same optimizer)",
}


# -- the compile-order trap -----------------------------------------------------------
def trap(
    *,
    model: str,
    method: str,
    phase: Phase,
    ref_event: str,
    ref_location: str,
    assignments: Sequence[str],
    origin: str,
    frozen: Sequence[str],
    n_frozen: int,
    unfrozen: Sequence[str],
    n_unfrozen: int,
    created: Sequence[str] = (),
    n_created: int = 0,
    runtime: Runtime,
    here: str,
    gan_hint: bool,
) -> Texts:
    """``origin``: where the change came from, labelled (``set at x.py:3``);
    ``frozen``/``unfrozen``/``created``: the layer paths concerned; ``assignments``:
    the lines that made the change (``layer.trainable = v set at file:line``, ``... created
    by enable_lora() at file:line``)."""
    direction: Direction = "create" if n_created else "unfreeze" if n_unfrozen else "freeze"
    outcome, behaviour = TRAP_SEMANTICS[(runtime, phase, direction)]
    if phase == "after-compile":
        when = (
            f"after compile() (compile() at {ref_location}) and before its train function was built"
        )
    elif phase == "after-recompile":
        when = (
            "after the first fit(), then compiled again with the same, already built "
            f"optimizer (it was built for the variables trainable at {ref_location})"
        )
    elif ref_event == "compile":  # built before this test: only the compile is known
        when = (
            f"after its train function was built (before this test; last compile() "
            f"at {ref_location})"
        )
    else:
        when = f"after its train function was built (by the training call at {ref_location})"
    lines = [f"{model}.{method}() is about to train with trainable flags changed {when}:"]
    lines += [f"  {a}" for a in assignments] or [
        "  (the change was not made by a recorded `trainable =` assignment)"
    ]
    if n_frozen:
        lines.append(
            f"  now frozen, trainable before: {plural(n_frozen, 'weight')} of {names(frozen)}"
        )
    if n_unfrozen:
        lines.append(
            f"  now trainable, frozen before: {plural(n_unfrozen, 'weight')} of {names(unfrozen)}"
        )
    if n_created:
        lines.append(f"  new since: {plural(n_created, 'weight')} of {names(created)}")
    lines.append(f"On {here}: {behaviour}{_consequence(outcome, n_frozen, n_unfrozen, n_created)}")
    elsewhere = [
        f"{RUNTIME_LABELS[other]}: {TRAP_SEMANTICS[(other, phase, direction)][1]}"
        for other in RUNTIME_LABELS
        if other != runtime
    ]
    lines.append("Elsewhere: " + "; ".join(elsewhere) + ".")
    fix = (
        f"set `trainable` first, then call {model}.compile(...) again before "
        f"training, so every Keras trains the same weights."
    )
    if phase == "after-recompile":
        fix = (
            f"compile {model} again with a new optimizer instance "
            f"({model}.compile(optimizer=keras.optimizers.Adam(...), ...)): an optimizer that "
            f"has been built only knows the variables it was built with."
        )
    elif n_created:
        fix = (
            f"create the weights (enable_lora) before {model}.compile(...), or compile "
            f"again with a new optimizer instance before training: an optimizer that has "
            f"been built only knows the variables it was built with."
        )
    if gan_hint:
        fix += (
            " For a GAN whose discriminator is trained on its own and frozen inside the "
            "combined model, write a custom train_step that applies gradients to "
            "discriminator.trainable_weights and generator.trainable_weights (the keras-io "
            "DCGAN example) instead of relying on when the flag was set."
        )
    moment = MOMENTS[phase]
    if n_created:
        what = f"{plural(n_created, 'weight')} created {moment}"
        if n_frozen or n_unfrozen:
            what += f" and {plural(n_frozen + n_unfrozen, 'flag')} changed"
    else:
        verb = "frozen" if not n_unfrozen else "unfrozen" if not n_frozen else "changed"
        what = f"{plural(n_frozen + n_unfrozen, 'weight')} {verb} {moment}"
    summary = f"{model}: {what} ({origin}); {here}: {outcome}"
    return summary, "\n".join(lines), fix


def _consequence(outcome: str, n_frozen: int, n_unfrozen: int, n_created: int = 0) -> str:
    if outcome == "raises":
        return " — so this call will raise."
    parts = []
    if n_created:
        parts.append(
            "the new weights will train"
            if outcome == "honoured"
            else "the new weights will NOT train"
        )
    if n_frozen:
        parts.append(
            "the newly frozen weights will not train"
            if outcome == "honoured"
            else "the newly frozen weights WILL keep training"
        )
    if n_unfrozen:
        parts.append(
            "the newly unfrozen weights will train"
            if outcome == "honoured"
            else "the newly unfrozen weights will NOT train"
        )
    return " — so " + " and ".join(parts) + "."


def assignment(target: str, value: bool, location: str, via: str = "") -> str:
    """``body.trainable = False set at test_x.py:12``; ``query/kernel.trainable = False
    set by enable_lora() at test_x.py:12``."""
    if via:
        return f"{target}.trainable = {value} set by {via}() at {location}"
    return f"{target}.trainable = {value} set at {location}"


def creation(paths: Sequence[str], via: str, location: str) -> str:
    """``query/lora_kernel_a, query/lora_kernel_b created by enable_lora() at x.py:31``."""
    return f"{names(paths)} created by {via}() at {location}"


# -- shared weights -------------------------------------------------------------------
def shared(
    *,
    model: str,
    paths: Sequence[str],
    n_weights: int,
    value: bool,
    assigned: str,
    assignment_text: str,
    location: str,
    owners: Sequence[str],
) -> Texts:
    state = "frozen" if not value else "trainable"
    explanation = (
        f"{names(paths)} ({plural(n_weights, 'weight')}) of model {model!r} are {state} "
        f"because {assignment_text} reached them: these layers are shared by "
        f"{' and '.join(owners)}. A trainable flag belongs to the layer, not to the "
        f"container it is reached through, so {'freezing' if not value else 'unfreezing'} "
        f"{assigned} {'froze' if not value else 'unfroze'} them in every container."
    )
    summary = (
        f"{model}: {names(paths)} {state} through {assigned} (set at {location}), shared by "
        f"{' and '.join(owners)}"
    )
    fix = (
        "give each container its own layers if they must train differently (build the "
        "frozen branch from a copy, e.g. keras.models.clone_model), or freeze the weights "
        "for one model only in a custom train_step."
    )
    return summary, explanation, fix


# -- flag vs reality, NaN values, replicas ----------------------------------------------
def frozen_but_moved(model: str, paths: Sequence[str], layers: Sequence[str]) -> Texts:
    return (
        f"{model}: flag says frozen, but {plural(len(paths), 'weight')} moved ({names(layers)})",
        f"{names(paths)}: trainable=False now and before, yet they changed. Most often the "
        "compile-order trap: the flag was set after compile() or after the first fit(), "
        "and this Keras still trains the variables fixed then. A custom train_step that "
        "updates model.weights would do it too.",
        "set `trainable`, then call compile() again before training.",
    )


def trainable_but_stuck(model: str, paths: Sequence[str], layers: Sequence[str]) -> Texts:
    return (
        f"{model}: flag says trainable, but {plural(len(paths), 'weight')} did not move "
        f"({names(layers)})",
        f"{names(paths)}: trainable=True now and before, yet unchanged. Possible causes: "
        "the compile-order trap (the flags at compile() or at the first fit() rule), no "
        "gradient reaching them (not connected to the loss, dead activations), a zero "
        "learning rate, or a train_step that does not update them.",
        "check that these layers feed the loss and that the model was compiled after its "
        "flags were set.",
    )


def nonfinite(model: str, held: Sequence[str], layers: Sequence[str]) -> Texts:
    """``held``: ``"path (n/size)"`` of each weight holding NaN/Inf."""
    return (
        f"{model}: {plural(len(held), 'weight holds', 'weights hold')} NaN/Inf values "
        f"({names(layers)})",
        f"{names(held)}: these values are NaN or Inf, and a NaN stays a NaN whatever a "
        "training step adds to it, so they cannot be seen to move. The training diverged "
        "before this check (or the weights were set to NaN).",
        "find the step where the values first became NaN/Inf (watch earlier calls), then "
        "lower the learning rate, clip gradients or check the data for NaN.",
    )


def replica_drift(model: str, paths: Sequence[str], worst: float) -> Texts:
    return (
        f"{model}: the replicas of {plural(len(paths), 'distributed weight')} differ "
        f"(max |Δ| between replicas {worst:.3g}): {names(paths)}",
        f"{names(paths)}: the copies kept on each device are no longer equal, so what a "
        "check reads depends on the replica. Every replica was read; the first one is what "
        "the diff compares.",
        "update distributed variables only through the strategy (optimizer or "
        "strategy.run / assign under the strategy scope), never one replica.",
    )


def two_optimizers(
    model: str, paths: Sequence[str], optimizers: Sequence[tuple[str, str]]
) -> Texts:
    """``optimizers``: ``(name, location)`` of each optimizer that updated the weights."""
    who = " and ".join(f"{name} (apply at {where})" for name, where in optimizers)
    return (
        f"{model}: {plural(len(paths), 'weight')} updated by two optimizers in one training "
        f"call: {' and '.join(name for name, _ in optimizers)} ({names(paths)})",
        f"{names(paths)} were updated by {who}. In a GAN this is the classic bug: the "
        "generator step applies its optimizer to self.trainable_weights, which includes "
        "the discriminator, so the discriminator is also trained to fool itself.",
        "apply each optimizer to one network's trainable_weights only (the keras-io DCGAN: "
        "d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights)), "
        "g_optimizer on self.generator.trainable_weights).",
    )


def describe_layers(items: Sequence[Any]) -> str:
    return names([str(i) for i in items])
