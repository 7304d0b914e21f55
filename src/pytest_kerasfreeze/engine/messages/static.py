"""The words of the static check (``kerasfreeze-lint``): one message and one fix per rule.

What each Keras does comes from :mod:`pytest_kerasfreeze.traps`, and the fixes shared with
the runtime findings from :mod:`~pytest_kerasfreeze.engine.messages.explain`, so the lint and a
test's diagnosis say the same thing about the same code. A line is given as its label (``line 12``,
or ``cell 3, line 2`` in a notebook), each next to what happened there.

Example::

    from pytest_kerasfreeze.engine.messages import static

    message, fix = static.callback_flag("Unfreeze", "on_epoch_begin", "self.model", True)
    assert message.startswith("Unfreeze.on_epoch_begin() sets self.model.trainable = True")
"""

from __future__ import annotations

from pytest_kerasfreeze.engine.messages import explain
from pytest_kerasfreeze.traps import (
    FROZEN_PARENT_SEMANTICS,
    RUNTIME_LABELS,
    RUNTIMES,
    TRAP_SEMANTICS,
    Direction,
    Phase,
    Runtime,
)

Words = tuple[str, str]  # message, fix
KERAS_3: tuple[Runtime, ...] = ("tensorflow", "jax", "torch")


def per_keras(phase: Phase, direction: Direction) -> str:
    """What every Keras does, from the trap table, the runtimes that agree said once:
    ``Keras 2 (tf_keras): ignored: ...; Keras 3 (any backend): honoured: ...``."""
    groups: dict[str, list[Runtime]] = {}
    for runtime in RUNTIMES:
        groups.setdefault(TRAP_SEMANTICS[(runtime, phase, direction)][1], []).append(runtime)
    return "; ".join(f"{_runtimes(rs)}: {text}" for text, rs in groups.items()) + "."


def _runtimes(runtimes: list[Runtime]) -> str:
    """``Keras 3 (any backend)`` when all three backends agree, else the labels."""
    if all(r in runtimes for r in KERAS_3):
        rest = [RUNTIME_LABELS[r] for r in runtimes if r not in KERAS_3]
        return " and ".join(["Keras 3 (any backend)", *rest])
    return " and ".join(RUNTIME_LABELS[r] for r in runtimes)


def _assigned(target: str, value: bool | None, line: str, via: str) -> str:
    shown = "..." if value is None else str(value)
    if via:
        return f"`{target}.trainable = {shown}` (set by {via}() at {line})"
    return f"`{target}.trainable = {shown}` ({line})"


def compile_order(
    *,
    model: str,
    target: str,
    value: bool,
    line: str,
    via: str,
    compile_line: str,
    built_line: str | None,
    train_line: str,
    method: str,
    phase: Phase,
) -> Words:
    """KF101: a flag set after ``compile()`` and before a training call, no compile between."""
    direction: Direction = "freeze" if not value else "unfreeze"
    after = f"{model}.compile() ({compile_line})"
    if phase == "after-build" and built_line is not None:
        after += f" and its train function was built ({built_line})"
    message = (
        f"{model}: {_assigned(target, value, line, via)} comes after {after} and before "
        f"{model}.{method}() ({train_line}), with no compile() in between. "
        f"{per_keras(phase, direction)}"
    )
    return message, explain.recompile_fix(model)


def gan_recipe(
    *,
    model: str,
    target: str,
    line: str,
    via: str,
    compile_line: str,
    combined: str,
    combined_line: str,
    train_line: str,
    method: str,
) -> Words:
    """KF102: the Keras 2 GAN recipe, whose discriminator never trains on Keras 3."""
    semantics = {r: TRAP_SEMANTICS[(r, "after-compile", "freeze")][0] for r in RUNTIMES}
    never = [r for r in RUNTIMES if semantics[r] == "honoured"]
    trains = [r for r in RUNTIMES if semantics[r] != "honoured"]
    message = (
        f"{model}: the Keras 2 GAN recipe: {_assigned(target, False, line, via)} after "
        f"{model}.compile() ({compile_line}), then {combined}.compile() "
        f"({combined_line}) of a model built from it, then {model}.{method}() "
        f"({train_line}): {model} never trains on {_runtimes(never)}; trains as intended on "
        f"{_runtimes(trains)}."
    )
    fix = (
        f"set {target}.trainable = True right before {model}.{method}() and back to False "
        f"before training {combined}, so each model trains with the flags it was compiled "
        f"with. {explain.GAN_FIX}"
    )
    return message, fix


def created_after_training(
    *, model: str, target: str, via: str, line: str, built_line: str, train_line: str, method: str
) -> Words:
    """KF103: weights created on a built layer after the train function was built."""
    message = (
        f"{model}: {target}.{via}() ({line}) creates weights after {model}'s train "
        f"function was built ({built_line}), and {model}.{method}() ({train_line}) "
        f"trains again with no compile() in between. {per_keras('after-build', 'create')}"
    )
    return message, explain.created_fix(model)


def two_optimizers_in_step(
    *, model: str, whole: str, whole_line: str, part_optimizer: str, part: str, part_line: str
) -> Words:
    """KF104: one optimizer of a ``train_step`` applied to the whole model, another to a part."""
    message = (
        f"{model}.train_step: {whole} is applied to self.trainable_weights "
        f"({whole_line}), which include self.{part}, that {part_optimizer} trains in the same "
        f"step ({part_line}): self.{part} is updated by both optimizers, on every "
        f"Keras. {explain.TWO_OPTIMIZERS_EXPLANATION}"
    )
    return message, explain.TWO_OPTIMIZERS_FIX


def frozen_parent(
    *, model: str, line: str, via: str, layer: str, layer_line: str, train_line: str, method: str
) -> Words:
    """KF105: a frozen model trained with some of its layers set back to trainable."""
    outcomes = {r: FROZEN_PARENT_SEMANTICS[r][1] for r in RUNTIMES}
    words = "; ".join(f"{RUNTIME_LABELS[r]}: {outcomes[r]}" for r in RUNTIMES)
    message = (
        f"{model}: {_assigned(model, False, line, via)}, then `{layer}.trainable = True` "
        f"({layer_line}), then {model}.{method}() ({train_line}): everything under "
        f"a frozen model stays frozen, the re-enabled layers do not train. {words}."
    )
    fix = (
        f"set {model}.trainable = True and freeze only the layers that must stay frozen "
        f"(for layer in {model}.layers[:n]: layer.trainable = False), then call "
        f"{model}.compile(...) before training."
    )
    return message, fix


def callback_flag(callback: str, method: str, target: str, value: bool | None) -> Words:
    """KF106: a ``trainable`` assignment inside a callback method, while ``fit()`` runs."""
    directions: tuple[Direction, ...] = (
        ("freeze", "unfreeze") if value is None else ("unfreeze",) if value else ("freeze",)
    )
    words = " ".join(
        (f"To {d}: " if len(directions) > 1 else "") + per_keras("after-build", d)
        for d in directions
    )
    shown = "..." if value is None else str(value)
    message = (
        f"{callback}.{method}() sets {target}.trainable = {shown} while fit() runs, after "
        f"the train function was built. {words}"
    )
    fix = (
        "change the flags between two fit() calls, not inside one: fit(..., epochs=k), "
        "set the flags, compile again, then fit(..., initial_epoch=k). "
        + explain.recompile_fix("model")
    )
    return message, fix
