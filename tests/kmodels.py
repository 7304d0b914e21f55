"""Small real Keras models shared by the tests (no mocks: these are trained for real)."""

from __future__ import annotations

import os

import numpy as np

if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras

BACKEND = "tensorflow" if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else keras.backend.backend()
LEGACY = os.environ.get("TF_USE_LEGACY_KERAS") == "1"


def value_of(variable) -> np.ndarray:
    """The oracle's read of one weight: a plain numpy copy, through Keras' public API."""
    return np.array(variable.numpy(), copy=True)


def clear_session():
    """Reset Keras' global state between tests. On Keras 3 without ``free_memory``: the
    garbage collection it adds costs more than the tests it separates (17 s -> 7 s on
    one test file)."""
    if LEGACY:
        keras.backend.clear_session()
        return
    try:
        keras.backend.clear_session(free_memory=False)
    except TypeError:  # a Keras 3 older than the argument
        keras.backend.clear_session()


def data(n: int = 32, in_dim: int = 4, out_dim: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, in_dim)).astype("float32"),
        rng.normal(size=(n, out_dim)).astype("float32"),
    )


def compile_(model, lr: float = 0.01, optimizer: str = "adam"):
    opt = keras.optimizers.Adam(lr) if optimizer == "adam" else keras.optimizers.SGD(lr)
    kwargs = {} if LEGACY else {"jit_compile": False}
    model.compile(optimizer=opt, loss="mse", **kwargs)
    return model


def seed_containers(freeze_fixed: bool = True):
    """The old Keras ``Container`` memo: two Functional containers sharing two Dense layers.

    Returns ``(model_fixed, model_normal, fixed, normal)``; ``FixedContainer`` is set
    ``trainable=False`` before either outer model is compiled.
    """
    inp = keras.Input((4,), name="container_in")
    hidden = keras.layers.Dense(8, activation="tanh", name="shared_1")(inp)
    out = keras.layers.Dense(4, name="shared_2")(hidden)
    fixed = keras.Model(inp, out, name="FixedContainer")
    normal = keras.Model(inp, out, name="NormalContainer")
    if freeze_fixed:
        fixed.trainable = False
    x1 = keras.Input((4,), name="fixed_in")
    model_fixed = keras.Model(x1, keras.layers.Dense(1, name="head")(fixed(x1)), name="model_fixed")
    x2 = keras.Input((4,), name="normal_in")
    model_normal = keras.Model(
        x2, keras.layers.Dense(1, name="head")(normal(x2)), name="model_normal"
    )
    return compile_(model_fixed), compile_(model_normal), fixed, normal


def base_and_head(freeze_base: bool = True, name: str = "classifier"):
    """A transfer-learning shape: a ``base`` with BatchNormalization, then a ``head``."""
    base = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, name="base_dense"),
            keras.layers.BatchNormalization(name="base_bn"),
            keras.layers.Activation("relu", name="base_relu"),
        ],
        name="base",
    )
    if freeze_base:
        base.trainable = False
    inp = keras.Input((4,), name="images")
    x = base(inp, training=False)
    x = keras.layers.Dropout(0.1, name="drop")(x)
    out = keras.layers.Dense(1, name="head")(x)
    return compile_(keras.Model(inp, out, name=name)), base


def two_twins():
    """Two different sub-models that each hold a layer called ``proj``."""
    inp = keras.Input((4,))
    a = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="proj")], name="left")
    b = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="proj")], name="right")
    out = keras.layers.Concatenate(name="join")([a(inp), b(inp)])
    return compile_(keras.Model(inp, keras.layers.Dense(1, name="head")(out), name="twins"))


def custom_train_step(model, optimizer, x, y):
    """One hand-written training step (no fit/train_on_batch), in the backend's own idiom."""
    if BACKEND == "jax":
        import jax

        def loss_fn(trainable, non_trainable):
            pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            return keras.ops.mean(keras.ops.square(pred - y)), non_trainable

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        (_, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable, non_trainable
        )
        optimizer.apply(grads, model.trainable_variables)
        for var, value in zip(model.non_trainable_variables, non_trainable, strict=True):
            var.assign(value)
    elif BACKEND == "torch":
        import torch

        pred = model(torch.as_tensor(x), training=True)
        loss = torch.mean((pred - torch.as_tensor(y)) ** 2)
        model.zero_grad()
        loss.backward()
        grads = [v.value.grad for v in model.trainable_variables]
        with torch.no_grad():
            optimizer.apply(grads, model.trainable_variables)
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))


# An inner conftest that checks, after every test, that each Keras attribute the plugin
# patches is exactly the object it was before the test (identity), and offers patched().
HYGIENE_CONFTEST = """
import keras
import pytest

TARGETS = [
    (cls, name)
    for cls in (*keras.Model.__mro__, *keras.layers.Layer.__mro__, *keras.Variable.__mro__,
                *keras.optimizers.Optimizer.__mro__)
    for name in ("fit", "train_on_batch", "compile", "trainable", "add_weight", "assign", "apply")
    if name in cls.__dict__
]

def patched():
    # the plugin's wrappers carry the original they replace
    return sorted(
        f"{cls.__name__}.{name}"
        for cls, name in TARGETS
        if getattr(cls.__dict__[name], "__kerasfreeze_original__", None) is not None
    )

@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item):
    # the outermost wrapper: the plugin has undone its patches when this resumes
    before = {(cls, name): cls.__dict__[name] for cls, name in TARGETS}
    result = yield
    left = [f"{c.__name__}.{n}" for (c, n), v in before.items() if c.__dict__[n] is not v]
    assert left == [], f"left patched after {item.name}: {left}"
    return result
"""


class GAN(keras.Model):
    """The keras-io DCGAN shape, in the backend's own idiom: a Model subclass holding a
    ``discriminator`` and a ``generator``, with ``d_optimizer`` / ``g_optimizer`` and a
    custom ``train_step`` — and no ``call()``, so Keras never marks it built.

    TensorFlow and tf_keras: ``GradientTape`` and ``apply_gradients`` (keras-io DCGAN);
    PyTorch: ``backward()`` and ``optimizer.apply`` (keras-io "Customizing fit() with
    PyTorch"); JAX: a stateless ``train_step`` (keras-io "Customizing fit() with JAX"),
    which carries only ``self.optimizer``'s state, so both networks take one
    simultaneous step with it.
    """

    def __init__(self, discriminator, generator, latent_dim, buggy=False):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        # the classic bug: the generator step applies g_optimizer to self.trainable_weights,
        # which holds the discriminator's weights too
        self.buggy = buggy
        if not LEGACY:
            self.seed_generator = keras.random.SeedGenerator(1337)
        if BACKEND in ("jax", "torch") and not LEGACY:
            # fit() builds a model that is not built by calling it, which needs a call();
            # on TensorFlow and tf_keras the DCGAN trains unbuilt, as keras-io's does
            self.built = True

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        if BACKEND == "jax" and not LEGACY:
            super().compile(optimizer=g_optimizer)
        else:
            super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def _noise(self, batch_size):
        if LEGACY:
            import tensorflow as tf

            return tf.random.normal((batch_size, self.latent_dim))
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def _labels(self, batch_size):
        ops = keras.ops if not LEGACY else __import__("tensorflow")
        ones, zeros = ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))
        return ops.concat([ones, zeros], 0) if LEGACY else ops.concatenate([ones, zeros], 0)

    if BACKEND == "jax" and not LEGACY:

        def train_step(self, state, data):
            import jax

            trainable, non_trainable, optimizer_vars, metrics_vars = state
            real = data[0] if isinstance(data, tuple) else data
            batch = real.shape[0]
            noise = jax.random.normal(jax.random.PRNGKey(0), (batch, self.latent_dim))
            d_ids = {id(v) for v in self.discriminator.trainable_variables}
            is_d = [id(v) in d_ids for v in self.trainable_variables]

            def losses(trainable):
                mapping = list(zip(self.trainable_variables, trainable, strict=True))
                mapping += list(zip(self.non_trainable_variables, non_trainable, strict=True))
                with keras.StatelessScope(state_mapping=mapping):
                    fake = self.generator(noise, training=True)
                    both = keras.ops.concatenate([fake, real], 0)
                    d_loss = self.loss_fn(self._labels(batch), self.discriminator(both))
                    g_loss = self.loss_fn(keras.ops.zeros((batch, 1)), self.discriminator(fake))
                return d_loss, g_loss

            d_grads = jax.grad(lambda t: losses(t)[0])(trainable)
            g_grads = jax.grad(lambda t: losses(t)[1])(trainable)
            grads = [d if own else g for d, g, own in zip(d_grads, g_grads, is_d, strict=True)]
            trainable, optimizer_vars = self.optimizer.stateless_apply(  # one step, jax
                optimizer_vars, grads, trainable
            )
            return {}, (trainable, non_trainable, optimizer_vars, metrics_vars)

    elif BACKEND == "torch" and not LEGACY:

        def train_step(self, real):
            import torch

            real = real[0] if isinstance(real, tuple) else real
            batch = real.shape[0]
            fake = self.generator(self._noise(batch))
            self.zero_grad()
            d_loss = self.loss_fn(
                self._labels(batch), self.discriminator(keras.ops.concatenate([fake, real], 0))
            )
            d_loss.backward()
            grads = [v.value.grad for v in self.discriminator.trainable_weights]
            with torch.no_grad():
                self.d_optimizer.apply(grads, self.discriminator.trainable_weights)  # d step, torch
            self.zero_grad()
            g_loss = self.loss_fn(
                keras.ops.zeros((batch, 1)),
                self.discriminator(self.generator(self._noise(batch))),
            )
            g_loss.backward()
            g_weights = self.trainable_weights if self.buggy else self.generator.trainable_weights
            grads = [v.value.grad for v in g_weights]
            with torch.no_grad():
                self.g_optimizer.apply(grads, g_weights)  # g step, torch
            return {"d_loss": d_loss, "g_loss": g_loss}

    else:

        def train_step(self, real):
            import tensorflow as tf

            real = real[0] if isinstance(real, tuple) else real
            batch = tf.shape(real)[0]
            noise = self._noise(batch)
            with tf.GradientTape() as tape:
                fake = self.generator(noise)
                predictions = self.discriminator(tf.concat([fake, real], 0))
                d_loss = self.loss_fn(self._labels(batch), predictions)
            grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(  # d step, tf
                zip(grads, self.discriminator.trainable_weights, strict=True)
            )
            with tf.GradientTape() as tape:
                predictions = self.discriminator(self.generator(self._noise(batch)))
                g_loss = self.loss_fn(tf.zeros((batch, 1)), predictions)
            g_weights = self.trainable_weights if self.buggy else self.generator.trainable_weights
            grads = tape.gradient(g_loss, g_weights)
            self.g_optimizer.apply_gradients(zip(grads, g_weights, strict=True))  # g step, tf
            return {"d_loss": d_loss, "g_loss": g_loss}
