"""Habits of ordinary test suites that once broke the plugin: fixtures of wider scopes that
train, training in threads, markers applied at run time, xfail, warnings recorded by the
test, monkeypatched Keras methods, introspection, garbage collection, unittest classes."""

import gc
import inspect
import threading
import unittest
import warnings
import weakref

import numpy as np
import pytest
from userkeras import data, keras, same, weights_of


def make_model():
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, name="base"), keras.layers.Dense(1, name="head")]
    )
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.fixture(scope="module")
def pretrained():
    model = make_model()
    model.fit(*data(), epochs=2, verbose=0)
    yield model
    model.fit(*data(), epochs=1, verbose=0)  # teardown trains too


def test_module_fixture_first_user(pretrained):
    assert pretrained.evaluate(*data(), verbose=0) >= 0


def test_module_fixture_frozen_by_the_test(pretrained):
    pretrained.get_layer("base").trainable = False
    pretrained.compile(optimizer="sgd", loss="mse")
    before = weights_of(pretrained.get_layer("base"))
    pretrained.fit(*data(), verbose=0)
    assert same(before, weights_of(pretrained.get_layer("base")))


def test_module_fixture_last_user(pretrained):
    pretrained.get_layer("base").trainable = True
    pretrained.compile(optimizer="sgd", loss="mse")
    pretrained.fit(*data(), verbose=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_each_optimizer_trains(optimizer):
    model = make_model()
    model.compile(optimizer=optimizer, loss="mse")
    before = weights_of(model)
    model.fit(*data(), verbose=0)
    assert not same(before, weights_of(model))


def test_training_in_a_thread():
    model = make_model()
    errors = []

    def train():
        try:
            model.fit(*data(), epochs=2, verbose=0)
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    assert errors == []


@pytest.fixture
def slow(request):
    request.applymarker(pytest.mark.filterwarnings("ignore::UserWarning"))


def test_marker_applied_at_run_time(slow, request):
    request.applymarker(pytest.mark.skipif(False, reason="never"))
    make_model().fit(*data(), verbose=0)


@pytest.mark.xfail(raises=ValueError, strict=True)
def test_known_shape_bug_is_expected_to_fail():
    model = make_model()
    model.fit(np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32"), verbose=0)


def test_no_warning_while_training():
    model = make_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(*data(), epochs=2, verbose=0)
        model.train_on_batch(*data())
    assert [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)] == []


def test_fit_monkeypatched_away(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **k: calls.append(self))
    model = make_model()
    before = weights_of(model)
    model.fit(*data())
    assert calls == [model] and same(before, weights_of(model))


def test_the_api_looks_like_keras():
    for name in ("fit", "train_on_batch", "compile"):
        method = getattr(keras.Model, name)
        assert method.__name__ == name
    assert "epochs" in inspect.signature(keras.Model.fit).parameters
    assert "optimizer" in inspect.signature(keras.Model.compile).parameters


def test_a_trained_model_is_collected_when_dropped():
    model = make_model()
    model.fit(*data(), verbose=0)
    ref = weakref.ref(model)
    del model
    gc.collect()
    keras.backend.clear_session()
    gc.collect()
    assert ref() is None


def test_trainable_flags_and_counts_are_keras_own():
    model = make_model()
    model.get_layer("base").trainable = False
    model.compile(optimizer="adam", loss="mse")
    model.fit(*data(), verbose=0)
    assert [layer.trainable for layer in model.layers] == [False, True]
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2


def test_same_seed_same_weights():
    results = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        model = make_model()
        model.fit(*data(), epochs=2, batch_size=16, shuffle=False, verbose=0)
        results.append(weights_of(model))
    assert same(*results)


class TrainedOnceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = make_model()
        cls.model.fit(*data(), epochs=2, verbose=0)

    def test_predicts(self):
        self.assertEqual(self.model.predict(data()[0], verbose=0).shape, (64, 1))

    def test_trains_again(self):
        before = weights_of(self.model)
        self.model.fit(*data(), verbose=0)
        self.assertFalse(same(before, weights_of(self.model)))
