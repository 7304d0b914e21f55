"""The truth of ``explain()``: over random nested models and random freeze moments, the
plan must say exactly what the next ``fit()`` does on this Keras and backend.

For each example: build a random model of Dense layers and nested Functional
sub-models, compile it with plain SGD (no momentum: a weight moves iff the optimizer
updated it; no BatchNormalization: nothing moves in the forward pass), change flags at
one moment — before ``compile()``, after ``compile()``, after the first ``fit()``, LoRA
after ``compile()`` or after the first ``fit()``, after the first ``fit()`` then
``compile()`` again with the same optimizer or a new one — then ask ``explain()`` and
run one ``fit()`` step. ``plan.trains()`` must be exactly the weights whose numpy copy
(paired by variable identity) changed, and ``plan.raises`` set exactly when ``fit()``
raised. The plan is asked twice: with the test's recorded provenance, and with none
(as in a notebook that did not call ``record()``).

A quarter of the oracle's KERASFREEZE_ORACLE_EXAMPLES (conftest.py: 25 in CI, 8 in the
inner loop; seed printed, set ``KERASFREEZE_ORACLE_SEED`` to replay); thousands on demand
(four times the number given)::

    KERASFREEZE_ORACLE_EXAMPLES=2000 KERAS_BACKEND=jax \\
        pytest tests/test_explain_oracle.py -p no:randomly -q
"""

import os
import random
import warnings

import numpy as np
import pytest

from kmodels import LEGACY, keras
from pytest_kerasfreeze import explain
from pytest_kerasfreeze.engine.plan import predict

EXAMPLES = max(8, int(os.environ.get("KERASFREEZE_ORACLE_EXAMPLES", "100")) // 4)
SEED = int(os.environ.get("KERASFREEZE_ORACLE_SEED", random.SystemRandom().randrange(10**6)))
MOMENTS = [
    "before_compile",
    "after_compile",
    "after_fit",
    "after_fit_recompile_same_optimizer",
    "after_fit_recompile_new_optimizer",
]
if not LEGACY:
    MOMENTS += ["lora_after_compile", "lora_after_fit"]

X = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
Y = np.random.default_rng(1).normal(size=(8, 1)).astype("float32")


def dense(rng, name):
    return keras.layers.Dense(int(rng.integers(2, 4)), activation="tanh", name=name)


def block(rng, x, name, depth):
    """A Functional sub-model applied to ``x``; nested one level more at ``depth`` 2."""
    inp = keras.Input(tuple(x.shape[1:]))
    h = dense(rng, f"{name}_d0")(inp)
    if depth > 1:
        h = block(rng, h, f"{name}_inner", depth - 1)
    h = dense(rng, f"{name}_d1")(h)
    return keras.Model(inp, h, name=name)(x)


def random_model(rng):
    inp = keras.Input((4,))
    x = inp
    for i in range(int(rng.integers(1, 4))):
        kind = rng.choice(["dense", "block", "nested"])
        if kind == "dense":
            x = dense(rng, f"d{i}")(x)
        else:
            x = block(rng, x, f"block{i}", 2 if kind == "nested" else 1)
    return keras.Model(inp, keras.layers.Dense(1, name="head")(x), name="net")


def all_layers(model):
    found, todo = [], list(model.layers)
    while todo:
        layer = todo.pop(0)
        if isinstance(layer, keras.layers.InputLayer):
            continue
        found.append(layer)
        todo += list(getattr(layer, "layers", []))
    return found


def change_flags(rng, model):
    """Flip a few flags: containers, layers, now and then a re-enable under a frozen
    container, rarely the model itself."""
    layers = all_layers(model)
    for _ in range(int(rng.integers(1, 4))):
        target = layers[int(rng.integers(len(layers)))]
        target.trainable = bool(rng.random() < 0.4)
    if rng.random() < 0.05:
        model.trainable = False


def enable_lora(rng, model):
    denses = [la for la in all_layers(model) if isinstance(la, keras.layers.Dense)]
    for layer in rng.choice(denses, size=min(len(denses), 2), replace=False):
        try:  # b of ones: a must get a gradient in the first step to be seen moving
            layer.enable_lora(2, b_initializer="ones")
        except TypeError:  # a Keras 3 without initializer arguments
            layer.enable_lora(2)
            layer.lora_kernel_b.assign(np.ones(layer.lora_kernel_b.shape, "float32"))


def compile_(model, optimizer=None):
    kwargs = {} if LEGACY else {"jit_compile": False}
    optimizer = optimizer or keras.optimizers.SGD(0.1)
    model.compile(optimizer=optimizer, loss="mse", **kwargs)
    return optimizer


def fit(model):
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, shuffle=False)


def scenario(rng, moment):
    model = random_model(rng)
    if moment == "before_compile":
        change_flags(rng, model)
    optimizer = compile_(model)
    if moment in ("after_compile", "lora_after_compile"):
        (enable_lora if moment.startswith("lora") else change_flags)(rng, model)
    if moment.startswith("after_fit") or moment == "lora_after_fit":
        fit(model)
        (enable_lora if moment.startswith("lora") else change_flags)(rng, model)
        if moment.endswith("same_optimizer"):
            compile_(model, optimizer)
        elif moment.endswith("new_optimizer"):
            compile_(model)
    return model


def truth(model):
    """What one fit() step does: the weights it moved (paths), and whether it raised."""
    before = {id(v): np.array(v.numpy(), copy=True) for v in model.weights}
    paths = {id(v): v for v in model.weights}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(model)
    except Exception:  # noqa: BLE001 - the oracle asks only whether it raised
        return None, True
    moved = {i for i, v in paths.items() if not np.array_equal(before[i], v.numpy())}
    return moved, False


@pytest.mark.parametrize("example", range(EXAMPLES))
def test_plan_is_what_fit_does(example):
    seed = SEED + example
    rng = np.random.default_rng(seed)
    moment = MOMENTS[int(rng.integers(len(MOMENTS)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = scenario(rng, moment)
        recorded = explain(model)
        bare = predict(model)
    by_path = {e.path: e for e in recorded.entries}
    index_paths = [e.path for e in recorded.entries]
    variables = list(model.weights)
    assert len(variables) == len(index_paths)
    moved, raised = truth(model)
    case = f"seed {seed} (KERASFREEZE_ORACLE_SEED={SEED}, example {example}), moment {moment}"
    print(case)
    for plan, label in ((recorded, "with provenance"), (bare, "without provenance")):
        said = f"{case} {label}: raises={plan.raises!r}\n{plan}"
        assert (plan.raises is not None) == raised, said
        if raised:
            continue
        from_plan = {e.path for e in plan.entries if e.will_train}
        ids_of = dict(zip(index_paths, map(id, variables), strict=True))
        assert {p for p, i in ids_of.items() if i in moved} == from_plan, f"{case} {label}\n{plan}"
    assert set(by_path) == set(index_paths)
