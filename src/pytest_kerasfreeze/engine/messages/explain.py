"""The words of each kind of finding: its summary, its explanation and its fix.

:mod:`pytest_kerasfreeze.engine.diagnosis` decides *what* was found; the functions here say it.
A ``file:line`` is always labelled with what happened there (``set at``, ``compile()
at``), so a freeze and a compile cannot be confused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_kerasfreeze.engine.messages import names, plural
from pytest_kerasfreeze.traps import (
    RUNTIME_LABELS,
    RUNTIMES,
    TRAP_SEMANTICS,
    Direction,
    Phase,
    Runtime,
)

Texts = tuple[str, str, str]  # summary, explanation, fix

# when a flag changed, in words, per phase of the trap table
MOMENTS: dict[Phase, str] = {
    "after-compile": "after compile()",
    "after-build": "after the first fit()",
    "after-recompile": "after the first fit() (recompiled with the same optimizer)",
}


# -- the compile-order trap -----------------------------------------------------------
@dataclass(frozen=True)
class Changed:
    """The weights one kind of change touched: how many, and the layer paths holding them."""

    n: int = 0
    layers: Sequence[str] = ()


@dataclass(frozen=True)
class TrapFacts:
    """What the diagnosis knows of one compile-order trap, for :func:`trap` to say.

    ``origin``: where the change came from, labelled (``set at x.py:3``);
    ``assignments``: the lines that made the change (``layer.trainable = v set at
    file:line``, ``... created by enable_lora() at file:line``); ``ref_event`` and
    ``ref_location``: the compile() or training call the change came after."""

    model: str
    method: str
    phase: Phase
    ref_event: str
    ref_location: str
    assignments: Sequence[str]
    origin: str
    runtime: Runtime
    here: str  # this process's Keras, with its version: "Keras 3.15.1 on TensorFlow"
    frozen: Changed = Changed()
    unfrozen: Changed = Changed()
    created: Changed = Changed()
    gan_hint: bool = False


def trap(facts: TrapFacts) -> Texts:
    """The summary, explanation and fix of a compile-order trap finding."""
    model, method, phase = facts.model, facts.method, facts.phase
    ref_event, ref_location, assignments = facts.ref_event, facts.ref_location, facts.assignments
    runtime, here = facts.runtime, facts.here
    n_frozen, frozen = facts.frozen.n, facts.frozen.layers
    n_unfrozen, unfrozen = facts.unfrozen.n, facts.unfrozen.layers
    n_created, created = facts.created.n, facts.created.layers
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
    elsewhere = [behaviour_on(other, phase, direction) for other in RUNTIMES if other != runtime]
    lines.append("Elsewhere: " + "; ".join(elsewhere) + ".")
    if phase == "after-recompile":
        fix = (
            f"compile {model} again with a new optimizer instance "
            f"({model}.compile(optimizer=keras.optimizers.Adam(...), ...)): an optimizer that "
            f"has been built only knows the variables it was built with."
        )
    else:
        fix = created_fix(model) if n_created else recompile_fix(model)
    if facts.gan_hint:
        fix += " " + GAN_FIX
    moment = MOMENTS[phase]
    if n_created:
        what = f"{plural(n_created, 'weight')} created {moment}"
        if n_frozen or n_unfrozen:
            what += f" and {plural(n_frozen + n_unfrozen, 'flag')} changed"
    else:
        verb = "frozen" if not n_unfrozen else "unfrozen" if not n_frozen else "changed"
        what = f"{plural(n_frozen + n_unfrozen, 'weight')} {verb} {moment}"
    summary = f"{model}: {what} ({facts.origin}); {here}: {outcome}"
    return summary, "\n".join(lines), fix


def behaviour_on(runtime: Runtime, phase: Phase, direction: Direction) -> str:
    """What one Keras does with the change, labelled: ``Keras 3 on JAX: fit() raises ...``.

    Example::

        behaviour_on("tf_keras", "after-compile", "freeze")
        # 'Keras 2 (tf_keras): ignored: the flags at compile() rule until the next compile()'
    """
    return f"{RUNTIME_LABELS[runtime]}: {TRAP_SEMANTICS[(runtime, phase, direction)][1]}"


def recompile_fix(model: str) -> str:
    """The fix of the compile-order trap, for the runtime finding and the static check.

    Example::

        recompile_fix("clf")  # 'set `trainable` first, then call clf.compile(...) again ...'
    """
    return (
        f"set `trainable` first, then call {model}.compile(...) again before "
        f"training, so every Keras trains the same weights."
    )


def created_fix(model: str) -> str:
    """The fix for weights created (``enable_lora``) after the train function was built."""
    return (
        f"create the weights (enable_lora) before {model}.compile(...), or compile "
        f"again with a new optimizer instance before training: an optimizer that has "
        f"been built only knows the variables it was built with."
    )


GAN_FIX = (
    "For a GAN whose discriminator is trained on its own and frozen inside the "
    "combined model, write a custom train_step that applies gradients to "
    "discriminator.trainable_weights and generator.trainable_weights (the keras-io "
    "DCGAN example) instead of relying on when the flag was set."
)

TWO_OPTIMIZERS_EXPLANATION = (
    "In a GAN this is the classic bug: the generator step applies its optimizer to "
    "self.trainable_weights, which includes the discriminator, so the discriminator is "
    "also trained to fool itself."
)
TWO_OPTIMIZERS_FIX = (
    "apply each optimizer to one network's trainable_weights only (the keras-io DCGAN: "
    "d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights)), "
    "g_optimizer on self.generator.trainable_weights)."
)


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


def trainable_but_stuck(
    model: str,
    paths: Sequence[str],
    layers: Sequence[str],
    by_gradient: dict[str, list[str]] | None = None,
    delays: Sequence[tuple[str, str, Any]] = (),
) -> Texts:
    """``by_gradient``: ``{"none": paths, "zero": paths}`` — what the optimizer was handed
    for them, where it was seen; ``delays``: (optimizer, setting, value) of the optimizers
    that ran whose own settings delay or skip updates."""
    summary = (
        f"{model}: flag says trainable, but {plural(len(paths), 'weight')} did not move "
        f"({names(layers)})"
    )
    known = []
    for optimizer, setting, value in delays:
        known.append(delay_text(optimizer, setting, value))
    told = by_gradient or {}
    if told.get("none"):
        known.append(
            f"no gradient reached {names(told['none'])}: the optimizer was handed None for "
            "them (not connected to the loss, or the path to it is cut: stop_gradient, an "
            "integer cast, a frozen branch computed outside the tape)"
        )
    if told.get("zero"):
        known.append(
            f"{names(told['zero'])} got a gradient of all zeros (dead activations, a mask, "
            "or a loss term that does not depend on them): the update was zero"
        )
    rest = [p for p in paths if p not in set(told.get("none", [])) | set(told.get("zero", []))]
    if known:
        explanation = f"{names(paths)}: trainable=True now and before, yet unchanged. " + (
            "; ".join(known) + "."
        )
        if rest and not delays:
            explanation += (
                f" For {names(rest)} the gradient was not seen: it got one and the update "
                "was too small to change a bit, or one of the causes below."
            )
    else:
        explanation = (
            f"{names(paths)}: trainable=True now and before, yet unchanged. Possible causes: "
            "the compile-order trap (the flags at compile() or at the first fit() rule), no "
            "gradient reaching them (not connected to the loss, dead activations), a zero "
            "learning rate, an optimizer that delays or skips updates (gradient "
            "accumulation, a loss scale skipping non-finite steps), or a train_step that "
            "does not update them."
        )
    if delays:
        fix = (
            "train for more steps than the optimizer delays its updates, or change the "
            "setting named above."
        )
    elif told.get("none") or told.get("zero"):
        fix = (
            "connect these layers to the loss (check the model's call and the loss), or "
            "remove them."
        )
    else:
        fix = (
            "check that these layers feed the loss and that the model was compiled after its "
            "flags were set."
        )
    return summary, explanation, fix


def delay_text(optimizer: str, setting: str, value: Any) -> str:
    """One optimizer setting that explains weights that did not move."""
    if setting == "gradient_accumulation_steps":
        return (
            f"{optimizer} has gradient_accumulation_steps={value}: it applies an update only "
            f"every {value} batches, and fewer ran here, so no update was applied yet"
        )
    if setting == "loss_scale_skipped":
        before, after = value
        return (
            f"{optimizer} is a LossScaleOptimizer that skipped steps on non-finite gradients "
            f"(its loss scale fell from {before:g} to {after:g}): a skipped step updates nothing"
        )
    return f"{optimizer} has a learning rate of 0 now: its updates change nothing"


def frozen_parent(
    *,
    model: str,
    parent: str,
    is_model: bool,
    layers: Sequence[str],
    n_weights: int,
    frozen_at: str | None,
    set_at: Sequence[str],
) -> Texts:
    """Layers set back to trainable under a frozen parent (``parent``: its path)."""
    where_set = f" set trainable at {names(set_at)}" if set_at else " set trainable"
    where_frozen = f", frozen at {frozen_at}" if frozen_at else ", frozen"
    summary = (
        f"{model}: {plural(len(layers), 'layer')}{where_set} "
        f"{'sits' if len(layers) == 1 else 'sit'} under {parent!r}"
        f"{where_frozen}: everything under a frozen model that is trained stays frozen"
    )
    if is_model:
        rule = (
            f"{names(layers)} ({plural(n_weights, 'weight')}) say trainable=True, but "
            f"{parent!r} itself is frozen and is the model being trained: its "
            "trainable_weights are empty, so nothing under it trains, whatever the flags "
            "below say. Under a frozen *nested* sub-model it differs: Keras 3 (TensorFlow, "
            "JAX, PyTorch) trains the layers set back to trainable there; Keras 2 "
            "(tf_keras) does not."
        )
        fix = (
            f"freeze the base sub-model, not {model!r}: base.trainable = False, then set "
            "its top layers back to trainable (Keras 3) — or freeze each layer but the top "
            "ones: for layer in model.layers[:-n]: layer.trainable = False — then compile()."
        )
    else:
        rule = (
            f"{names(layers)} ({plural(n_weights, 'weight')}) say trainable=True under the "
            f"frozen sub-model {parent!r}: Keras 2 (tf_keras) keeps everything under a "
            "frozen container frozen; Keras 3 (TensorFlow, JAX, PyTorch) would train them."
        )
        fix = (
            f"leave {parent!r} trainable and freeze its layers one by one except the top "
            "ones (for layer in base.layers[:-n]: layer.trainable = False), then compile()."
        )
    return summary, rule, fix


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
        f"{names(paths)} were updated by {who}. {TWO_OPTIMIZERS_EXPLANATION}",
        TWO_OPTIMIZERS_FIX,
    )


def frozen_slots(model: str, paths: Sequence[str], nbytes: int, optimizers: Sequence[str]) -> Texts:
    """The optimizer keeps state (momenta, moments) for weights that are frozen now."""
    return (
        f"{model}: {names(optimizers)} holds optimizer state for "
        f"{plural(len(paths), 'weight')} that {'is' if len(paths) == 1 else 'are'} frozen "
        f"now ({byte_text(nbytes)})",
        f"{names(paths)} are frozen, but {names(optimizers)} still keeps their slots "
        f"(momenta, moments, EMA copies): {byte_text(nbytes)} held for weights that do not "
        "train. If they are unfrozen later with the same optimizer, they start from these "
        "old moments.",
        f"compile {model} again with a new optimizer instance after freezing "
        "(optimizer=keras.optimizers.Adam(...), not the old object) to free them.",
    )


def stale_moments(model: str, paths: Sequence[str]) -> Texts:
    """A weight starts training with optimizer state left from an earlier phase."""
    return (
        f"{model}: {plural(len(paths), 'weight')} start training with optimizer moments "
        f"left from an earlier phase ({names(paths)})",
        f"{names(paths)} were not trainable at {model}'s previous training call and train "
        "now, but the optimizer's state for them is not zero: it was kept from when they "
        "trained before (unfrozen without a new optimizer), so their first updates follow "
        "the old momenta and moments, not their new gradients.",
        f"compile {model} with a new optimizer instance when a new training phase "
        "unfreezes weights (the keras-io fine-tuning guide recompiles with a fresh Adam).",
    )


def slot_changes(changes: Sequence[Any]) -> list[str]:
    """The lines of the optimizer-state part of a failure message (``SlotChange``s)."""
    lines = [f"Optimizer state that changed ({plural(len(changes), 'slot')}):"]
    for change in changes[:20]:
        lines.append(
            f"  {change.path}  {change.optimizer}.{change.slot}  {change.shape}  "
            f"‖Δ‖ ≥ {change.norm_change:.3g}"
        )
    if len(changes) > 20:
        lines.append(f"  ... and {len(changes) - 20} more")
    return lines


def byte_text(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def inference_mode_failure(
    label: str,
    model: str,
    target: str,
    n_training: int,
    n_layers: int,
    rows: Sequence[tuple[str, str, str]],
    findings: Sequence[Any],
) -> str:
    """The message of a failed ``assert_inference_mode``: ``rows`` are (layer path, its
    class, what running in training mode changed)."""
    lines = [
        f"{label}: {n_training} of {plural(n_layers, 'layer')} of "
        f"{target} ran in training mode in model {model!r}",
        f"Expected: every BatchNormalization, Dropout and other layer whose call takes "
        f"training, of {target}, runs in inference mode in every call",
        "",
        "Layers that ran in training mode:",
    ]
    width = max(len(p) for p, _, _ in rows)
    kinds = max(len(k) for _, k, _ in rows)
    lines += [f"  {p:<{width}}  {k:<{kinds}}  {what}" for p, k, what in rows]
    if findings:
        lines += ["", "Diagnosis:"]
        for f in findings:
            lines += [f"  [{f.kind}] {f.summary}", f"    {f.explanation}", f"    Fix: {f.fix}"]
    return "\n".join(lines)


def frozen_in_training(model: str, frozen: Sequence[tuple[str, str, str, str]]) -> Texts:
    """Layers inside a frozen part that ran in training mode: (path, class, what it
    changed, why it counts as frozen)."""
    parts = []
    for path, kind, what, why in frozen:
        if "Dropout" in kind:
            cause = "a Dropout runs in the training value that reaches it, whatever its flag"
        elif why == "its own flag is False":
            cause = "fit() passed training=True and this Keras did not apply the flag"
        else:
            cause = (
                "its own flag says trainable, so a BatchNormalization runs in training mode "
                "(training and trainable) although a container above it is frozen"
            )
        parts.append(f"{path} ({kind}, {why}): {what} — {cause}")
    return (
        f"{model}: {plural(len(frozen), 'layer')} inside a frozen part ran in training mode "
        f"({names([p for p, _, _, _ in frozen])})",
        "; ".join(parts) + ". Frozen is not inference mode: fit() calls every layer with "
        "training=True; a functional base(x, training=False) is overridden on Keras releases "
        "with keras-team/keras#20285.",
        "call the frozen part in inference mode for good: set trainable=False on its "
        "BatchNormalization layers too, and remove or bypass its Dropout layers (or run "
        "the frozen part outside the trained model, e.g. precompute its features).",
    )


def describe_layers(items: Sequence[Any]) -> str:
    return names([str(i) for i in items])
