"""``by=`` and the movers of optimizers the watched model does not hold (issue 20, 1-2).

The classic DQN bug: the target network is built from the online network's layers, so
fitting the online model moves the target's weights through ``online.optimizer``. The
truth is a numpy copy of every weight, paired by variable identity, taken around each
training call: a weight was updated by a model's optimizer exactly when it is among that
model's trainable weights and moved during that model's ``fit()``.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmodels import keras, value_of
from pytest_kerasfreeze import FreezeAssertionError, Mover, assert_frozen

EXAMPLES = max(5, int(os.environ.get("KERASFREEZE_ORACLE_EXAMPLES", "100")) // 4)
FRAMES = np.random.default_rng(0).random((16, 8, 8, 2)).astype("float32")
TARGETS = np.random.default_rng(1).random((16, 3)).astype("float32")


def numpy_copy(model):
    """The truth: a plain copy of every weight, keyed by the variable object's id."""
    return {id(v): value_of(v) for v in model.weights}


def moved_ids(before, after):
    return {i for i in before if not np.array_equal(before[i], after[i])}


def q_network(name="q_online"):
    """The Q-network of keras-io's Breakout DQN (deep_q_network_breakout.py), small."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(3, name="q_values"),
        ],
        name=name,
    )


def test_dqn_target_built_from_the_online_layers_fails_by_online_optimizer():
    online = q_network()
    online.compile(optimizer=keras.optimizers.Adam(2.5e-4), loss=keras.losses.Huber())
    # the bug: the "target" network reuses the online network's layer objects
    target = keras.Sequential([keras.Input((8, 8, 2)), *online.layers], name="q_target")
    target.compile(optimizer=keras.optimizers.Adam(2.5e-4), loss=keras.losses.Huber())
    before = numpy_copy(target)
    with pytest.raises(FreezeAssertionError) as caught:
        with assert_frozen(target, by=online.optimizer):
            online.fit(FRAMES, TARGETS, batch_size=8, verbose=0)
    truth = moved_ids(before, numpy_copy(target))
    assert truth == {id(v) for v in target.weights}  # every target weight moved
    message = str(caught.value)
    assert "6 of 6 weights of the whole model were updated by q_online.optimizer" in message
    assert "in model 'q_target'" in message
    for change in caught.value.diff.changes:
        assert change.moved_by == (Mover("optimizer", "q_online.optimizer", "fit()"),)


def test_the_target_own_optimizer_did_not_move_them_and_nothing_is_outside():
    online = q_network()
    online.compile(optimizer=keras.optimizers.Adam(2.5e-4), loss=keras.losses.Huber())
    target = keras.Sequential([keras.Input((8, 8, 2)), *online.layers], name="q_target")
    target.compile(optimizer=keras.optimizers.Adam(2.5e-4), loss=keras.losses.Huber())
    online.fit(FRAMES, TARGETS, batch_size=8, verbose=0)  # a first fit, traced already
    before = numpy_copy(target)
    with assert_frozen(target, by="optimizer") as check:  # target.optimizer: never stepped
        online.fit(FRAMES, TARGETS, batch_size=8, verbose=0)
    truth = moved_ids(before, numpy_copy(target))
    moved = {c.path: c.moved_by for c in check.diff.changes if c.moved}
    assert len(moved) == len(truth) == 6
    online_step = (Mover("optimizer", "q_online.optimizer", "fit()"),)
    assert all(who == online_step for who in moved.values())


@pytest.mark.parametrize(
    ("by", "text"),
    [
        ("target_optimizer", "by='target_optimizer': model 'q_target' has no optimizer attribute"),
        (3, "by=3 is not an optimizer"),
        ("optimizer", "has no optimizer attribute of that name (it holds no optimizer)"),
    ],
)
def test_a_bad_by_fails_before_the_block_runs(by, text):
    online = q_network()
    online.compile(optimizer="adam", loss="mse")
    target = q_network("q_target")  # never compiled: it holds no optimizer
    if by != "optimizer":
        target.compile(optimizer="adam", loss="mse")
    ran = []
    with pytest.raises(ValueError, match="by=") as caught:
        with assert_frozen(target, by=by):
            ran.append(True)
    assert text in str(caught.value)
    assert ran == []


# -- the oracle: random pairs of models sharing layers, each with its own optimizer ------
@st.composite
def pairs(draw):
    n_layers = draw(st.integers(2, 4))
    in_a = draw(st.lists(st.booleans(), min_size=n_layers, max_size=n_layers))
    in_b = draw(st.lists(st.booleans(), min_size=n_layers, max_size=n_layers))
    frozen = draw(st.lists(st.booleans(), min_size=n_layers, max_size=n_layers))
    trained = draw(st.sampled_from(["a", "b", "both"]))
    watched = draw(st.sampled_from(["a", "b"]))
    by = draw(st.sampled_from(["a", "b", "own name"]))
    return n_layers, in_a, in_b, frozen, trained, watched, by


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("KERASFREEZE_ORACLE_RANDOM"),
    suppress_health_check=list(HealthCheck),
)
@given(pairs())
def test_oracle_by_either_optimizer_of_two_models_sharing_layers(pair):
    n_layers, in_a, in_b, frozen, trained, watched, by = pair
    x = np.random.default_rng(2).normal(size=(8, 4)).astype("float32")
    y = np.random.default_rng(3).normal(size=(8, 1)).astype("float32")
    shared = [keras.layers.Dense(4, activation="tanh", name=f"l{i}") for i in range(n_layers)]
    for layer, is_frozen in zip(shared, frozen, strict=True):
        layer.trainable = not is_frozen
    models = {}
    for key, members in (("a", in_a), ("b", in_b)):
        layers = [layer for layer, use in zip(shared, members, strict=True) if use]
        head = keras.layers.Dense(1, name=f"head_{key}")
        model = keras.Sequential([keras.Input((4,)), *layers, head], name=f"model_{key}")
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        models[key] = model
    target = models[watched]
    optimizer = target.optimizer if by == "own name" else models[by].optimizer
    by_arg = "optimizer" if by == "own name" else models[by].optimizer
    stepped_by_it = set()
    order = ["a", "b"] if trained == "both" else [trained]
    check = assert_frozen(target, by=by_arg)
    raised = None
    try:
        with check:
            for key in order:
                model = models[key]
                trainable = {id(v) for v in model.trainable_weights}
                before = numpy_copy(target)
                model.fit(x, y, batch_size=8, epochs=1, verbose=0)
                if model.optimizer is optimizer:
                    stepped_by_it |= moved_ids(before, numpy_copy(target)) & trainable
    except FreezeAssertionError as err:
        raised = err
    assert (raised is not None) == bool(stepped_by_it), pair
    if raised is not None:
        flagged = [
            c.path
            for c in raised.diff.changes
            if any(m.optimizer_id == id(optimizer) for m in c.moved_by)
        ]
        assert len(flagged) == len(stepped_by_it), (pair, flagged)
    for change in (raised.diff if raised else check.diff).changes:
        assert all(m.kind != "outside" for m in change.moved_by), (pair, change)
