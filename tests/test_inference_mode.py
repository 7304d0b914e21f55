"""Inference mode (issue 24, 2): frozen is not inference mode. The truth: numpy copies
of the BatchNormalization statistics around the fit, and for a Dropout a twin model with
the same weights and a rate of 0 — the head learns the very same bits only if the
Dropout ran in inference mode."""

import re

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, keras, value_of
from pytest_kerasfreeze import FreezeAssertionError, LayerNotFoundError, assert_inference_mode

X = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
Y = X[:, :1] * 0.5


def fine_tuning(rate=0.5, training=None, freeze_base=True, bn_trainable=None):
    """keras-io's transfer-learning shape: a base with BatchNormalization and Dropout,
    called by a new head (``training=False`` as the guide writes it, when given)."""
    base = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, name="features"),
         keras.layers.BatchNormalization(name="bn"), keras.layers.Dropout(rate, name="drop")],
        name="base",
    )  # fmt: skip
    inputs = keras.Input((8,))
    features = base(inputs) if training is None else base(inputs, training=training)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(features), name="clf")
    if freeze_base:
        base.trainable = False
    if bn_trainable is not None:
        base.get_layer("bn").trainable = bn_trainable
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return base, model


def statistics(base):
    bn = base.get_layer("bn")
    return [value_of(bn.moving_mean), value_of(bn.moving_variance)]


def dropout_was_active(rate=0.5, **kwargs):
    """The truth for a Dropout: train a twin with rate 0 from the same weights, same
    batches; the heads end bit-identical exactly when the Dropout was the identity."""
    _, model = fine_tuning(rate=rate, **kwargs)
    _, twin = fine_tuning(rate=0.0, **kwargs)
    twin.set_weights(model.get_weights())
    model.fit(X, Y, batch_size=8, shuffle=False, verbose=0)
    twin.fit(X, Y, batch_size=8, shuffle=False, verbose=0)
    head, twin_head = model.get_layer("head"), twin.get_layer("head")
    return not np.array_equal(value_of(head.kernel), value_of(twin_head.kernel))


def test_a_frozen_batchnorm_runs_in_inference_mode():
    base, model = fine_tuning(rate=0.0)
    before = statistics(base)
    with assert_inference_mode(model, "base/bn") as check:
        model.fit(X, Y, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, statistics(base), strict=True))
    training, inference = check.modes["base/bn"]
    assert training == 0 and inference > 0


def test_a_dropout_in_a_frozen_base_is_active():
    assert dropout_was_active()  # the truth, on this Keras
    _, model = fine_tuning()
    with pytest.raises(FreezeAssertionError) as caught:
        with assert_inference_mode(model, "base"):
            model.fit(X, Y, batch_size=8, verbose=0)
    message = str(caught.value)
    assert "assert_inference_mode failed: 1 of 2 layers of 'base' ran in training mode" in message
    assert "  base/drop  Dropout  dropout active" in message
    [finding] = caught.value.findings
    assert finding.kind == "frozen layer in training mode"
    assert "a Dropout runs in the training value that reaches it, whatever its flag" in (
        finding.explanation
    )


def test_training_false_in_the_graph_is_what_this_keras_says():
    """keras-team/keras#20285: on Keras 3 releases with the override, fit() runs an
    unfrozen BatchNormalization called with training=False in training mode; tf_keras
    (and keras-nightly) honour training=False. Measured first, then checked."""
    _, model = fine_tuning(rate=0.0, training=False, freeze_base=False)
    probe_base, probe = fine_tuning(rate=0.0, training=False, freeze_base=False)
    before = statistics(probe_base)
    probe.fit(X, Y, batch_size=8, verbose=0)
    overridden = not np.array_equal(before[0], statistics(probe_base)[0])
    assert overridden is (not LEGACY) or keras.__version__.startswith("3.16")
    if not overridden:
        with assert_inference_mode(model, "base"):
            model.fit(X, Y, batch_size=8, verbose=0)
        return
    with pytest.raises(FreezeAssertionError) as caught:
        with assert_inference_mode(model, "base"):
            model.fit(X, Y, batch_size=8, verbose=0)
    assert re.search(
        r"base/bn +BatchNormalization +statistics moved \(moving_mean, moving_variance\)",
        str(caught.value),
    )
    assert "base/drop" not in str(caught.value)  # a rate of 0 changes nothing
    assert caught.value.findings == []  # not frozen: no "frozen layer" finding


def test_a_batchnorm_set_back_to_trainable_under_a_frozen_base():
    base, model = fine_tuning(rate=0.0, bn_trainable=True)
    before = statistics(base)
    with pytest.raises(FreezeAssertionError) as caught:
        assert_inference_mode(model, "base", x=X, y=Y, batch_size=8)
    assert not np.array_equal(before[0], statistics(base)[0])  # the truth: they moved
    [finding] = caught.value.findings
    assert "base/bn (BatchNormalization, under the frozen 'base'): statistics moved" in (
        finding.explanation
    )


def test_bad_input():
    _, model = fine_tuning()
    with pytest.raises(LayerNotFoundError, match="no layer of model 'clf' matches 'bsae'"):
        assert_inference_mode(model, "bsae")
    with pytest.raises(ValueError, match="holds no layer whose behaviour depends on training"):
        assert_inference_mode(model, "head")
    with pytest.raises(TypeError):
        assert_inference_mode(model, "base", y=Y)


@pytest.mark.skipif(BACKEND == "torch" and not LEGACY, reason="PyTorch runs eagerly: all seen")
def test_a_step_traced_before_the_check_is_said_plainly():
    _, model = fine_tuning()
    model.fit(X, Y, batch_size=8, verbose=0)  # traces the train function
    with pytest.raises(FreezeAssertionError, match="its train function was traced"):
        with assert_inference_mode(model, "base"):
            model.fit(X, Y, batch_size=8, verbose=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")  # a new train function
    with pytest.raises(FreezeAssertionError, match="dropout active"):
        with assert_inference_mode(model, "base"):
            model.fit(X, Y, batch_size=8, verbose=0)


MARKED = """
import os
import numpy as np
import pytest
if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras

X = np.random.default_rng(0).normal(size=(16, 8)).astype("float32")

def model_with_frozen_base(rate):
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="features"),
                             keras.layers.BatchNormalization(name="bn"),
                             keras.layers.Dropout(rate, name="drop")], name="base")
    base.trainable = False
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(base(inputs)), name="clf")
    model.compile(optimizer="sgd", loss="mse")
    return model

@pytest.mark.inference_mode("base")
def test_frozen_batchnorm_twice():
    model = model_with_frozen_base(0.0)
    model.fit(X, X[:, :1], verbose=0)
    model.fit(X, X[:, :1], verbose=0)  # reuses the traced step

@pytest.mark.inference_mode("base")
def test_dropout_in_the_frozen_base():
    model_with_frozen_base(0.5).fit(X, X[:, :1], verbose=0)  # the offending line

@pytest.mark.inference_mode("encoder")
def test_checked_nothing():
    model_with_frozen_base(0.0).fit(X, X[:, :1], verbose=0)
"""


def test_the_inference_mode_marker(pytester):
    pytester.makepyfile(test_user=MARKED)
    result = pytester.runpytest("-p", "no:randomly", "--strict-markers")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*FreezeAssertionError: @pytest.mark.inference_mode('base') failed on clf.fit(): "
            "1 of 2 layers of 'base' ran in training mode in model 'clf'",
            "*base/drop  Dropout  dropout active",
        ]
    )
    result.stdout.fnmatch_lines(["*@pytest.mark.inference_mode('encoder') checked nothing*"])
