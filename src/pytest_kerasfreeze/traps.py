"""The compile-order trap table: what each Keras does with a changed ``trainable`` flag.

Which flags decide what a ``fit()`` trains is not the same everywhere. Measured on
Keras 3.15.1 (TensorFlow, JAX and PyTorch backends) and tf_keras 2.21, CPU;
``examples/test_trap_matrix.py`` measures it again on whatever Keras it runs on.

:data:`TRAP_SEMANTICS` maps ``(runtime, phase, direction)`` to ``(outcome, behaviour)``:

* ``runtime``: ``"tf_keras"`` (Keras 2), or the Keras 3 backend: ``"tensorflow"``,
  ``"jax"``, ``"torch"``;
* ``phase``: ``"after-compile"`` — changed after ``compile()`` and before the train
  function was built by the first ``fit()`` / ``train_on_batch()``; ``"after-build"``
  — changed after it was built; ``"after-recompile"`` — changed after it was built,
  then ``compile()`` again with the *same*, already built optimizer object;
* ``direction``: ``"freeze"``, ``"unfreeze"``, or ``"create"`` — weights created on a
  layer that was already built (``layer.enable_lora(rank)`` adds ``lora_kernel_a/b`` and
  freezes the kernel variable);
* ``outcome``: ``"honoured"``, ``"ignored"`` or ``"raises"``; ``behaviour`` says it in
  words.

Example::

    from pytest_kerasfreeze.traps import TRAP_SEMANTICS

    outcome, behaviour = TRAP_SEMANTICS[("tensorflow", "after-build", "freeze")]
    assert outcome == "ignored"

This module is data only: it imports nothing.
"""

from __future__ import annotations

from typing import Literal

Runtime = Literal["tf_keras", "tensorflow", "jax", "torch"]
Phase = Literal["after-compile", "after-build", "after-recompile"]
Direction = Literal["freeze", "unfreeze", "create"]
Outcome = Literal["honoured", "ignored", "raises"]

RUNTIMES: tuple[Runtime, ...] = ("tf_keras", "tensorflow", "jax", "torch")

RUNTIME_LABELS: dict[Runtime, str] = {
    "tf_keras": "Keras 2 (tf_keras)",
    "tensorflow": "Keras 3 on TensorFlow",
    "jax": "Keras 3 on JAX",
    "torch": "Keras 3 on PyTorch",
}

_FIRST_FIT_RULES: tuple[Outcome, str] = (
    "honoured",
    "honoured: the flags at the first fit()/train_on_batch() rule",
)
_BY_PHASE: dict[tuple[Runtime, Phase], tuple[Outcome, str]] = {
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

TRAP_SEMANTICS: dict[tuple[Runtime, Phase, Direction], tuple[Outcome, str]] = {
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
# Weights created on a built layer (enable_lora): measured with Keras' LoRA on Dense,
# EinsumDense and Embedding, and with add_weight() on a built tf_keras layer.
_CREATED_HONOURED: tuple[Outcome, str] = (
    "honoured",
    "honoured: the first fit()/train_on_batch() trains the new weights",
)
TRAP_SEMANTICS.update(
    {
        ("tf_keras", "after-compile", "create"): _CREATED_HONOURED,
        ("tensorflow", "after-compile", "create"): _CREATED_HONOURED,
        ("jax", "after-compile", "create"): _CREATED_HONOURED,
        ("torch", "after-compile", "create"): _CREATED_HONOURED,
        ("tf_keras", "after-build", "create"): (
            "ignored",
            "ignored until the next compile(): the train function built by the first fit() "
            "never uses the new weights",
        ),
        ("tensorflow", "after-build", "create"): (
            "ignored",
            "ignored until the next compile(): the train function built by the first fit() "
            "keeps training the variables it was built with — the new weights do not train "
            "and weights frozen with them keep training (a retrace raises 'Unknown variable')",
        ),
        ("jax", "after-build", "create"): (
            "raises",
            "fit() raises an optimizer ValueError (the optimizer was built for the variables "
            "of the first fit()) and leaves the model's variables empty",
        ),
        ("torch", "after-build", "create"): (
            "raises",
            "fit() raises ValueError 'Unknown variable': the optimizer was built for the "
            "variables of the first fit()",
        ),
    }
)

# A model trained while its own flag is False, with some of its layers set back to
# trainable (``model.trainable = False``, then ``layer.trainable = True``): measured on
# Sequential and functional models, compiled after the flags were set. A *nested*
# sub-model frozen the same way inside a trainable model differs: Keras 3 trains its
# re-enabled layers, tf_keras does not.
FROZEN_PARENT_SEMANTICS: dict[Runtime, tuple[Outcome, str]] = {
    runtime: (
        "ignored",
        "nothing trains: a model whose own flag is False has no trainable weights, "
        "whatever its layers' flags say",
    )
    for runtime in RUNTIMES
}
# Changed after the first fit(), then compile() again with the same optimizer object,
# which was built by that fit() for the variables trainable then. Measured on Keras 3.15.1
# and tf_keras 2.21 (CPU, SGD): a new optimizer instance makes every row "honoured".
_SAME_OPTIMIZER_FREEZE_OK: tuple[Outcome, str] = (
    "honoured",
    "honoured for freezing: the recompiled step trains the variables trainable now, a "
    "subset of those the optimizer was built for",
)
TRAP_SEMANTICS.update(
    {
        ("tf_keras", "after-recompile", "freeze"): _SAME_OPTIMIZER_FREEZE_OK,
        ("tensorflow", "after-recompile", "freeze"): _SAME_OPTIMIZER_FREEZE_OK,
        ("torch", "after-recompile", "freeze"): _SAME_OPTIMIZER_FREEZE_OK,
        ("jax", "after-recompile", "freeze"): (
            "raises",
            "fit() still raises an optimizer ValueError after compile(): the same optimizer "
            "object was built for the variables trainable at the first fit() (a new "
            "optimizer instance works)",
        ),
        ("tf_keras", "after-recompile", "unfreeze"): (
            "raises",
            "fit() raises KeyError: the optimizer was built for the variables of the first "
            "fit() and does not know the newly trainable ones",
        ),
        ("tensorflow", "after-recompile", "unfreeze"): (
            "raises",
            "fit() raises ValueError 'Unknown variable': the optimizer was built for the "
            "variables of the first fit()",
        ),
        ("jax", "after-recompile", "unfreeze"): (
            "raises",
            "fit() raises an optimizer ValueError: the same optimizer object was built for "
            "the variables trainable at the first fit()",
        ),
        ("torch", "after-recompile", "unfreeze"): (
            "raises",
            "fit() raises ValueError 'Unknown variable': the optimizer was built for the "
            "variables of the first fit()",
        ),
        ("tf_keras", "after-recompile", "create"): (
            "raises",
            "fit() raises KeyError for a new weight that gets a gradient: the optimizer was "
            "built for the variables of the first fit()",
        ),
        ("tensorflow", "after-recompile", "create"): (
            "raises",
            "fit() raises ValueError 'Unknown variable': the optimizer was built for the "
            "variables of the first fit()",
        ),
        ("jax", "after-recompile", "create"): (
            "raises",
            "fit() raises an optimizer ValueError: the same optimizer object was built for "
            "the variables of the first fit()",
        ),
        ("torch", "after-recompile", "create"): (
            "raises",
            "fit() raises ValueError 'Unknown variable': the optimizer was built for the "
            "variables of the first fit()",
        ),
    }
)
