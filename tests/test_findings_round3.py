"""Explanations that point somewhere (issue 20, 3-5), from the patterns as users write them:
the widely copied "freeze the model, unfreeze the top layers" snippet, gradient
accumulation, a learning rate of 0, a head no gradient reaches. The truth is a numpy copy of
every weight, paired by variable identity."""

import inspect
import re
import warnings

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, keras, value_of
from pytest_kerasfreeze import FreezeAssertionError, assert_trains

X = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")
Y = np.random.default_rng(1).normal(size=(16, 1)).astype("float32")
HERE = "tests/test_findings_round3.py"


def copies(model):
    return {id(v): value_of(v) for v in model.weights}


def moved(model, before):
    return {id(v) for v in model.weights if not np.array_equal(before[id(v)], value_of(v))}


def line_after(lines=1):
    return f"{HERE}:{inspect.currentframe().f_back.f_lineno + lines}"


def classifier():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu", name="block1")(inputs)
    x = keras.layers.Dense(16, activation="relu", name="block2")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="top")(x), name="clf")


def findings_of(err, kind):
    return [f for f in err.value.findings if f.kind == kind]


# -- 3. a frozen parent -----------------------------------------------------------------
def test_freeze_the_model_then_unfreeze_its_top_layers_trains_nothing():
    model = classifier()
    frozen_at = line_after()
    model.trainable = False
    set_at = line_after(2)  # the loop's body
    for layer in model.layers[-2:]:  # "unfreeze the top layers"
        layer.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    before = copies(model)
    with pytest.raises(FreezeAssertionError) as err:
        with assert_trains(model, "block2", "top"):
            model.fit(X, Y, batch_size=8, verbose=0)
    assert moved(model, before) == set()  # the truth: nothing trained
    assert model.trainable_weights == []
    text = str(err.value)
    assert re.search(
        r"top/kernel +\(16, 1\) +float32 +0 +0 +0\.0% \(0/16\) +frozen \(own: trainable\)", text
    )
    [finding] = findings_of(err, "frozen parent")
    assert finding.summary == (
        f"clf: 2 layers set trainable at {set_at} sit under 'clf', frozen at {frozen_at}: "
        "everything under a frozen model that is trained stays frozen"
    )
    assert finding.layers == ["block2", "top"]
    nested = (
        "Under a frozen *nested* sub-model it differs: Keras 3 (TensorFlow, JAX, PyTorch) "
        "trains the layers set back to trainable there; Keras 2 (tf_keras) does not."
    )
    assert nested in finding.explanation
    assert "[frozen parent]" in text


def test_the_same_snippet_on_a_nested_base_trains_on_keras3_only():
    base = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="block1"),
         keras.layers.Dense(16, activation="relu", name="block2")], name="base",
    )  # fmt: skip
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="top")(base(inputs)), name="clf")
    base.trainable = False
    base.get_layer("block2").trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    block2 = {id(v) for v in base.get_layer("block2").weights}
    before = copies(model)
    if LEGACY:
        with pytest.raises(FreezeAssertionError) as err:
            with assert_trains(model, "base/block2"):
                model.fit(X, Y, batch_size=8, verbose=0)
        assert moved(model, before) & block2 == set()
        [finding] = findings_of(err, "frozen parent")
        assert finding.summary.startswith("clf: 1 layer set trainable at ")
        assert "sits under 'base', frozen at " in finding.summary
        assert "Keras 2 (tf_keras) keeps everything under a frozen container frozen" in (
            finding.explanation
        )
    else:
        with assert_trains(model, "base/block2") as check:
            model.fit(X, Y, batch_size=8, verbose=0)
        assert moved(model, before) & block2 == block2
        assert [f.kind for f in check.diff.findings()] == []


# -- 4. optimizer settings that delay or skip updates -------------------------------------
@pytest.mark.skipif(LEGACY, reason="Keras 3 optimizers' gradient_accumulation_steps")
def test_gradient_accumulation_is_named_when_one_batch_moves_nothing():
    model = classifier()
    optimizer = keras.optimizers.Adam(1e-2, gradient_accumulation_steps=2)
    model.compile(optimizer=optimizer, loss="mse")
    before = copies(model)
    with pytest.raises(FreezeAssertionError) as err:
        with assert_trains(model, "top"):
            model.fit(X[:8], Y[:8], batch_size=8, verbose=0)  # one batch
    assert moved(model, before) == set()
    [finding] = findings_of(err, "flag vs reality")
    assert (
        "optimizer has gradient_accumulation_steps=2: it applies an update only every 2 "
        "batches, and fewer ran here, so no update was applied yet"
    ) in finding.explanation
    assert "compile-order trap" not in finding.explanation  # not the list of guesses
    # two batches: the update is applied
    with assert_trains(model, "top"):
        model.fit(X, Y, batch_size=8, verbose=0)


def test_a_learning_rate_of_zero_is_named():
    model = classifier()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    before = copies(model)
    with pytest.raises(FreezeAssertionError) as err:
        with assert_trains(model, "top"):
            model.fit(X, Y, batch_size=8, verbose=0)
    assert moved(model, before) == set()
    [finding] = findings_of(err, "flag vs reality")
    assert "optimizer has a learning rate of 0 now: its updates change nothing" in (
        finding.explanation
    )


# -- 5. no gradient reached it, or it got one and did not move ----------------------------
class TwoHeads(keras.Model):
    """A model whose auxiliary head is computed but never feeds the loss (a disconnected
    head, as in half-finished multi-task code)."""

    def __init__(self):
        super().__init__(name="two_heads")
        self.body = keras.layers.Dense(8, activation="relu", name="body")
        self.main = keras.layers.Dense(1, name="main")
        self.aux = keras.layers.Dense(1, name="aux")

    def call(self, x):
        features = self.body(x)
        self.aux(features)  # computed, then dropped
        return self.main(features)


def test_a_disconnected_head_is_told_apart_from_a_small_update():
    model = TwoHeads()
    model(X[:1])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = copies(model)
    aux = {id(v) for v in model.aux.weights}
    with pytest.raises(FreezeAssertionError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras 3: "Gradients do not exist for variables"
        with assert_trains(model, "aux"):
            model.fit(X, Y, batch_size=8, verbose=0)
    assert moved(model, before) & aux == set()
    [finding] = findings_of(err, "flag vs reality")
    if BACKEND == "jax" and not LEGACY:  # jax.grad gives zeros under a trace: not seen
        assert "the gradient was not seen" in finding.explanation or (
            "Possible causes" in finding.explanation
        )
    else:
        assert "no gradient reached aux/kernel, aux/bias: the optimizer was handed None" in (
            finding.explanation
        )
