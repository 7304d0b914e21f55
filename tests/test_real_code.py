"""Truth on real code: the patterns of keras-io recipes, Keras 2-era code and GitHub issue
reproductions that the plugin once got wrong (issue 11), each measured against a plain
numpy oracle — ``get_weights()``-style copies paired by variable identity.

These tests run under the plugin itself, like any user's suite: a test here that asks for
no check is observed exactly as a user's unmarked test is.
"""

import threading
import warnings

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, compile_, data, keras, value_of
from pytest_kerasfreeze import (
    CompileOrderWarning,
    FreezeAssertionError,
    LayerNotFoundError,
    assert_frozen,
    assert_trains,
    snapshot,
)

RUNTIME = "tf_keras" if LEGACY else BACKEND


def values_by_variable(model):
    """The oracle: a numpy copy of every weight, keyed by the variable's identity."""
    return {id(v): value_of(v) for v in model.weights}


def moved_by_oracle(model, before):
    after = values_by_variable(model)
    return {i: not np.array_equal(before[i], after[i], equal_nan=True) for i in before}


# -- 1. models compiled before they are built (the classic Keras 2 code) -------------


def sequential_by_add():
    model = keras.Sequential()
    model.add(keras.layers.Dense(8, activation="relu"))
    model.add(keras.layers.Dense(1))
    return model


def sequential_without_input():
    return keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])


class BuiltLater(keras.Model):
    """A subclassed model with its own build(), as in the Keras guides."""

    def __init__(self):
        super().__init__(name="built_later")
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.out = keras.layers.Dense(1)

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build((*input_shape[:-1], 8))
        self.built = True

    def call(self, x):
        return self.out(self.hidden(x))


@pytest.mark.parametrize("make", [sequential_by_add, sequential_without_input, BuiltLater])
def test_compiling_an_unbuilt_model_trains_as_without_the_plugin(make, recwarn):
    """tf_keras refused to list the weights of such a model right after compile(): the
    plugin's compile wrapper raised in every test. Trained twice, no flag touched: no
    warning either (weights created by the first fit() are not a flag change)."""
    x, y = data()
    model = make()
    compile_(model)
    model.fit(x, y, verbose=0)
    before = values_by_variable(model)
    model.fit(x, y, verbose=0)
    assert all(moved_by_oracle(model, before).values())
    assert [w for w in recwarn if w.category is CompileOrderWarning] == []


@pytest.mark.parametrize("make", [sequential_by_add, BuiltLater])
def test_lazily_built_model_is_recorded_from_its_second_call(make, weight_tracker, recwarn):
    x, y = data()
    model = make()
    compile_(model)
    model.train_on_batch(x, y)  # builds the model: nothing to snapshot before it
    before = values_by_variable(model)
    model.train_on_batch(x, y)
    [record] = weight_tracker.records
    truth = moved_by_oracle(model, before)
    assert [c.moved for c in record.diff.changes] == [truth[id(v)] for v in model.weights]
    assert record.findings == []
    assert [w for w in recwarn if w.category is CompileOrderWarning] == []


# -- 5. models that hold weights but are not "built": the keras-io DCGAN ---------------


def dcgan(latent_dim=4):
    """The keras-io DCGAN shape, tiny: a Model subclass holding a discriminator and a
    generator, with no call() — Keras never marks it built, yet it has every weight."""
    discriminator = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)],
        name="discriminator",
    )
    generator = keras.Sequential(
        [keras.Input((latent_dim,)), keras.layers.Dense(8, activation="relu"),
         keras.layers.Dense(6)],
        name="generator",
    )  # fmt: skip
    gan = GAN(discriminator, generator, latent_dim)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return gan


from kmodels import GAN  # noqa: E402


def test_a_model_with_weights_but_not_built_is_watched(weight_tracker):
    gan = dcgan()
    assert len(gan.weights) == 8
    assert gan.built is (BACKEND in ("jax", "torch") and not LEGACY)  # see kmodels.GAN
    real = data(n=16, in_dim=6)[0]
    before = values_by_variable(gan)
    with weight_tracker.watch(gan) as d:
        gan.fit(real, epochs=1, batch_size=8, verbose=0)
    truth = moved_by_oracle(gan, before)
    assert [c.moved for c in d.changes] == [truth[id(v)] for v in gan.weights]
    assert d.by_submodel()["discriminator"] == (4, 4)
    assert d.by_submodel()["generator"] == (4, 4)
    [record] = weight_tracker.records
    assert record.model == gan.name and record.diff.by_submodel() == d.by_submodel()


@pytest.mark.trains("discriminator", "generator")
def test_markers_check_a_model_with_weights_but_not_built():
    """Markers once failed such a model with "checked nothing": its fit() left no record."""
    gan = dcgan()
    before = values_by_variable(gan)
    gan.fit(data(n=16, in_dim=6)[0], epochs=1, batch_size=8, verbose=0)
    assert all(moved_by_oracle(gan, before).values())  # the truth the marker must agree with


# -- 6. intended freezes are not "shared weights" -------------------------------------


def efficientnet_like(input_tensor):
    """What keras.applications.EfficientNetB0(include_top=False, input_tensor=inputs)
    builds, in small: a Functional model on the caller's own input tensor, so the outer
    model built on ``base.output`` holds the base's layers flat (measured with the real
    EfficientNetB0: 241 layers, none under 'efficientnetb0')."""
    x = keras.layers.Dense(8, name="stem_conv")(input_tensor)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("swish", name="stem_activation")(x)
    x = keras.layers.Dense(8, name="top_conv")(x)
    return keras.Model(input_tensor, x, name="efficientnetb0")


def test_keras_io_efficientnet_fine_tuning_has_no_shared_weights_finding(weight_tracker):
    """keras-io "Image classification via fine-tuning with EfficientNet": the base is
    frozen through its own container and trained flat inside the outer model."""
    inputs = keras.layers.Input(shape=(4,))
    model = efficientnet_like(inputs)
    model.trainable = False
    x = keras.layers.BatchNormalization()(model.output)
    x = keras.layers.Dropout(0.2, name="top_dropout")(x)
    outputs = keras.layers.Dense(1, name="pred")(x)
    model = keras.Model(inputs, outputs, name="EfficientNet")
    compile_(model)
    x, y = data()
    before = values_by_variable(model)
    model.fit(x, y, verbose=0)
    [record] = weight_tracker.records
    assert [f.kind for f in record.findings] == []
    truth = moved_by_oracle(model, before)
    stem = model.get_layer("stem_conv")
    assert not any(truth[id(v)] for v in stem.weights)
    assert record.diff.by_submodel()["stem_conv"] == (0, 2)


def test_a_model_stacked_on_a_frozen_models_output_has_no_finding(weight_tracker):
    inp = keras.Input((4,))
    frozen_model = keras.Model(inp, keras.layers.Dense(8, name="encoder")(inp), name="frozen")
    frozen_model.trainable = False
    out = keras.layers.Dense(1, name="head")(frozen_model.output)
    model = compile_(keras.Model(frozen_model.input, out, name="stacked"))
    model.fit(*data(), verbose=0)
    assert weight_tracker.records[0].findings == []


def test_the_container_memo_still_finds_shared_weights(weight_tracker):
    """The finding is for a layer reached through another container whose own flag
    still says trainable: the seed memo's NormalContainer/FixedContainer."""
    from kmodels import seed_containers

    _, model_normal, *_ = seed_containers()
    model_normal.fit(*data(), verbose=0)
    [shared] = [f for f in weight_tracker.records[0].findings if f.kind == "shared weights"]
    assert shared.layers == ["NormalContainer/shared_1", "NormalContainer/shared_2"]


# -- 8. the first fit() happened before the test ---------------------------------------


@pytest.fixture(scope="module")
def trained_before_the_test():
    """A model whose train function was built outside the test (module fixture)."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((4,))
    base = keras.layers.Dense(3, name="base")
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(base(inp)), name="pre")
    compile_(model, optimizer="sgd")
    model.fit(*data(), verbose=0)
    return model, base


def test_freezing_after_a_fit_made_before_the_test_is_diagnosed(
    trained_before_the_test, weight_tracker
):
    from pytest_kerasfreeze.traps import TRAP_SEMANTICS

    model, base = trained_before_the_test
    base.trainable = False
    outcome, behaviour = TRAP_SEMANTICS[(RUNTIME, "after-build", "freeze")]
    before = values_by_variable(model)
    with pytest.warns(CompileOrderWarning, match="after the first fit") as warned:
        if outcome == "raises":
            with pytest.raises(Exception) as raised:
                model.fit(*data(), verbose=0)
            assert "compile-order trap" in "\n".join(raised.value.__notes__)
        else:
            model.fit(*data(), verbose=0)
    assert behaviour in str(warned[0].message)
    if outcome != "raises":
        truth = moved_by_oracle(model, before)
        base_moved = any(truth[id(v)] for v in base.weights)
        assert base_moved is (outcome == "ignored")


# -- 9. same-named layers in a subclassed model ---------------------------------------


class ThreeHidden(keras.Model):
    def __init__(self):
        super().__init__(name="three_hidden")
        self.layers_list = [keras.layers.Dense(4, name="hidden") for _ in range(3)]
        self.out = keras.layers.Dense(1, name="out")

    def call(self, x):
        for layer in self.layers_list:
            x = layer(x)
        return self.out(x)


def three_hidden():
    model = ThreeHidden()
    model(np.zeros((1, 4), "float32"))
    model.layers_list[0].trainable = False
    return compile_(model)


def test_same_named_layers_get_distinct_paths():
    model = three_hidden()
    before = snapshot(model)
    oracle = values_by_variable(model)
    model.fit(*data(), verbose=0)
    d = before.diff(before.retake())
    counts = d.by_submodel()
    assert counts == {"hidden#1": (0, 2), "hidden#2": (2, 2), "hidden#3": (2, 2), "out": (2, 2)}
    truth = moved_by_oracle(model, oracle)
    for i, layer in enumerate(model.layers_list, 1):
        assert [c.moved for c in d.select(f"hidden#{i}")] == [truth[id(v)] for v in layer.weights]
    report = d.report()
    assert "hidden#1  0 / 2 moved" in report and "6 of 8 watched weights moved" in report
    d.assert_frozen("hidden#1")
    d.assert_frozen(model.layers_list[0])
    with pytest.raises(FreezeAssertionError, match="2 of 2 weights of 'hidden#2' moved"):
        d.assert_frozen("hidden#2")


def test_ambiguous_same_named_layers_suggest_a_selector_that_works():
    model = three_hidden()
    with pytest.raises(LayerNotFoundError) as info:
        snapshot(model, "hidden")
    message = str(info.value)
    assert "3 different layers have it, at\n  hidden#1\n  hidden#2\n  hidden#3" in message
    assert "(e.g. 'hidden#1')" in message
    assert len(snapshot(model, "hidden#1")) == 2


# -- 12. NaN weights ------------------------------------------------------------------


def test_assert_trains_on_weights_already_nan_says_they_are_nan():
    inp = keras.Input((4,))
    model = compile_(keras.Model(inp, keras.layers.Dense(1, name="head")(
        keras.layers.Dense(3, name="body")(inp)), name="net"))  # fmt: skip
    body = model.get_layer("body")
    kernel, bias = body.get_weights()
    body.set_weights([np.full_like(kernel, np.nan), bias])
    with pytest.raises(FreezeAssertionError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN losses
        assert_trains(model, "body", x=data()[0], y=data()[1])
    message = str(info.value)
    assert "body/kernel" in message and "holds NaN/Inf (12/12)" in message
    assert "[NaN values] net: 1 weight holds NaN/Inf values (body)" in message
    assert "a NaN stays a NaN" in message


# -- 13. tolerances are real numbers ---------------------------------------------------


@pytest.mark.parametrize("bad", [{"atol": True}, {"rtol": "1e-3"}, {"atol": None}])
def test_tolerances_must_be_real_numbers(bad):
    model = compile_(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))
    name, _value = next(iter(bad.items()))
    with pytest.raises(TypeError, match=f"{name} must be a real number like 1e-6, got "):
        assert_frozen(model, **bad)


# -- 10. a violation in a thread (in-process: the check still runs in the thread) ------


def test_a_check_made_in_a_thread_is_the_tests():
    model = compile_(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="d")]))
    errors = []

    def train():
        try:
            with assert_frozen(model, "d"):
                model.fit(*data(), verbose=0)
        except FreezeAssertionError as err:
            errors.append(err)

    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    [err] = errors
    assert "2 of 2 weights of 'd' moved" in str(err)
