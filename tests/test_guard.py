"""FreezeGuard (issue 15): the checks as a Keras callback in real training runs — raise,
warn, stop, every epoch or every N batches, custom train_step models, outside pytest —
against a numpy oracle read by a callback of its own."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from kmodels import BACKEND, GAN, LEGACY, base_and_head, data, keras, value_of
from pytest_kerasfreeze import FreezeAssertionError, FreezeGuard, FreezeViolationWarning

ROOT = Path(__file__).resolve().parent.parent


class Oracle(keras.callbacks.Callback):
    """Reads every weight with get_weights()-style copies at the start and at each epoch
    end, and says what moved since the start, per variable."""

    def on_train_begin(self, logs=None):
        self.start = {id(v): value_of(v) for v in self.model.weights}
        self.moved = []

    def on_epoch_end(self, epoch, logs=None):
        self.moved.append(
            {id(v): not np.array_equal(self.start[id(v)], value_of(v)) for v in self.model.weights}
        )


def test_a_fine_tuning_run_that_keeps_its_freeze():
    model, _ = base_and_head(freeze_base=True)
    guard = FreezeGuard(frozen="base", trains="head")
    oracle = Oracle()
    model.fit(*data(), epochs=3, batch_size=8, verbose=0, callbacks=[oracle, guard])
    assert [(r.epoch, r.step, r.passed) for r in guard.results] == [
        (0, None, True), (1, None, True), (2, None, True)
    ]  # fmt: skip
    for result, truth in zip(guard.results, oracle.moved, strict=True):
        assert [c.moved for c in result.diff.changes] == [truth[id(v)] for v in model.weights]
    assert guard.results[-1].diff.by_submodel()["base"][0] == 0


def test_raise_stops_fit_at_the_first_violation():
    model, _ = base_and_head(freeze_base=False)
    guard = FreezeGuard(frozen="base")
    with pytest.raises(FreezeAssertionError) as info:
        model.fit(*data(), epochs=3, verbose=0, callbacks=[guard])
    assert len(guard.results) == 1 and not guard.results[0].passed
    first = str(info.value).splitlines()[0]
    assert first.startswith("FreezeGuard(frozen='base') failed on epoch 1: ")
    assert "weights of 'base' moved in model 'classifier'" in first


def test_warn_and_stop():
    model, _ = base_and_head(freeze_base=False)
    warn = FreezeGuard(trains_only="head", on_violation="warn")
    with pytest.warns(FreezeViolationWarning, match="FreezeGuard\\(trains_only='head'\\)"):
        history = model.fit(*data(), epochs=2, verbose=0, callbacks=[warn])
    assert len(history.history["loss"]) == 2 and [r.passed for r in warn.results] == [False] * 2

    model, _ = base_and_head(freeze_base=False)
    stop = FreezeGuard(frozen="base", on_violation="stop")
    with pytest.warns(FreezeViolationWarning, match="stopped the training of 'classifier'"):
        history = model.fit(*data(), epochs=5, verbose=0, callbacks=[stop])
    assert len(history.history["loss"]) == 1


def test_every_n_batches():
    model, _ = base_and_head(freeze_base=True)
    guard = FreezeGuard(frozen="base", every=2)
    model.fit(*data(n=32), epochs=2, batch_size=8, verbose=0, callbacks=[guard])  # 4 batches
    assert [(r.epoch, r.step) for r in guard.results] == [(0, 1), (0, 3), (1, 1), (1, 3)]
    assert all(r.passed for r in guard.results)


def test_a_custom_train_step_gan_trains_both_networks():
    discriminator = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4), keras.layers.Dense(1)], name="discriminator"
    )
    generator = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(6)], name="generator"
    )
    gan = GAN(discriminator, generator, 4)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    guard = FreezeGuard(trains=["discriminator", "generator"])
    gan.fit(data(n=16, in_dim=6)[0], epochs=2, batch_size=8, verbose=0, callbacks=[guard])
    assert [r.passed for r in guard.results] == [True, True]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "FreezeGuard needs something to check"),
        ({"frozen": "base", "every": 0}, "use 'epoch' or a number of batches >= 1"),
        ({"frozen": "base", "on_violation": "explode"}, "use one of raise, warn, stop"),
        ({"frozen": "base", "atol": "1e-3"}, "atol must be a real number"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")):
        FreezeGuard(**kwargs)


def test_a_selector_typo_fails_when_training_starts():
    model, _ = base_and_head()
    guard = FreezeGuard(frozen="bsae")
    with pytest.raises(Exception, match="Did you mean 'base'"):  # LayerNotFoundError
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(*data(), epochs=1, verbose=0, callbacks=[guard])


def test_the_plain_script_example_runs_without_pytest():
    """examples/guard_in_training.py: a fine-tuning run guarded outside any test runner."""
    env = {"KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    if LEGACY:
        env["TF_USE_LEGACY_KERAS"] = "1"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "guard_in_training.py")],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 checks, all passed" in done.stdout
    assert "stopped at epoch 1: FreezeGuard(frozen='backbone') failed" in done.stdout


@pytest.mark.skipif(LEGACY, reason="Keras 3's callback dispatch")
def test_a_guard_per_epoch_leaves_keras_batch_dispatch_as_it_was():
    """On JAX, Keras 3 runs batch hooks asynchronously while every callback leaves them
    as the base class has them; a guard per epoch must not make each batch wait (it made
    a 3-epoch CNN fit 12% slower). A guard per N batches reads the model mid-epoch: it
    needs them in order."""
    from keras.src.callbacks.callback_list import CallbackList

    model, _ = base_and_head(freeze_base=True)
    plain = CallbackList([keras.callbacks.History()], model=model)
    per_epoch = CallbackList([FreezeGuard(frozen="base")], model=model)
    per_batches = CallbackList([FreezeGuard(frozen="base", every=2)], model=model)
    if not hasattr(plain, "_async_train"):
        pytest.skip("this Keras dispatches batch hooks in order")
    assert per_epoch._async_train == plain._async_train
    assert per_batches._async_train is False
    if BACKEND == "jax":
        assert per_epoch._async_train is True


def test_a_guard_is_a_callback_of_the_keras_in_use():
    """Frameworks and user code check callbacks by type (issue 20, 7)."""
    guard = FreezeGuard(frozen="base", every=2)
    assert isinstance(guard, keras.callbacks.Callback)
    assert isinstance(guard, FreezeGuard)
    # a wrapper as users write it: keep only real callbacks, then train with them
    model, _ = base_and_head(freeze_base=True)
    before = {id(v): value_of(v) for v in model.weights}
    callbacks = [cb for cb in [guard, "not a callback"] if isinstance(cb, keras.callbacks.Callback)]
    model.fit(*data(), epochs=2, batch_size=8, verbose=0, callbacks=callbacks)
    assert [(r.epoch, r.step, r.passed) for r in guard.results] == [
        (0, 1, True), (0, 3, True), (1, 1, True), (1, 3, True)
    ]  # fmt: skip
    moved = [not np.array_equal(before[id(v)], value_of(v)) for v in model.weights]
    assert [c.moved for c in guard.results[-1].diff.changes] == moved
    assert guard.model is model


def test_a_guard_checking_per_epoch_leaves_the_batch_hooks_to_keras():
    guard = FreezeGuard(frozen="base")
    assert type(guard).on_train_batch_end is keras.callbacks.Callback.on_train_batch_end
    assert guard.on_train_batch_end.__func__ is keras.callbacks.Callback.on_train_batch_end
