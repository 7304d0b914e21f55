"""Attribution (issue 14): who moved each weight — which optimizer (and from which
``file:line``), the forward pass, a callback, or code outside — on every backend, with
the truth known by construction; the two-optimizer GAN bug; ``by=``; zero effect."""

import inspect
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmodels import BACKEND, GAN, LEGACY, base_and_head, compile_, data, keras, value_of
from pytest_kerasfreeze import FreezeAssertionError, Mover, WeightTracker, assert_frozen

KMODELS = Path(__file__).with_name("kmodels.py")
ONE_OPTIMIZER_BACKEND = BACKEND == "jax" and not LEGACY
HERE = "tests/test_attribution.py"


BRANCH = "jax" if ONE_OPTIMIZER_BACKEND else "torch" if BACKEND == "torch" and not LEGACY else "tf"


def line_of(marker):
    """``tests/kmodels.py:N`` of the line of this backend's branch that carries
    ``# marker, <branch>``."""
    for n, line in enumerate(KMODELS.read_text().splitlines(), 1):
        if line.rstrip().endswith(f"# {marker}, {BRANCH}"):
            return f"tests/kmodels.py:{n}"
    raise LookupError(marker)


def next_line():
    return f"{HERE}:{inspect.currentframe().f_back.f_lineno + 1}"


def gan(buggy=False):
    discriminator = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="d_hidden"),
         keras.layers.Dense(1, name="d_out")], name="discriminator",
    )  # fmt: skip
    generator = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="g_hidden"),
         keras.layers.Dense(6, name="g_out")], name="generator",
    )  # fmt: skip
    model = GAN(discriminator, generator, 4, buggy=buggy)
    model.compile(
        d_optimizer=keras.optimizers.Adam(1e-3),
        g_optimizer=keras.optimizers.Adam(1e-3),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return model


REAL = data(n=16, in_dim=6)[0]
ONE_OPTIMIZER = BACKEND == "jax" and not LEGACY  # see kmodels.GAN: one stateless step


def movers(diff):
    return {c.path: c.moved_by for c in diff.changes if c.moved}


@pytest.mark.parametrize("call", [1, 2])  # the second fit() reuses the traced step
def test_keras_io_dcgan_each_network_by_its_own_optimizer(call):
    model = gan()
    tracker = WeightTracker()
    for _ in range(call):
        with tracker.watch(model) as d:
            model.fit(REAL, epochs=1, batch_size=8, verbose=0)
    found = movers(d)
    assert len(found) == 8  # every weight moved, each with its mover
    for path, who in found.items():
        if ONE_OPTIMIZER:
            expected = (Mover("optimizer", "optimizer", line_of("one step")),)
        elif path.startswith("discriminator/"):
            expected = (Mover("optimizer", "d_optimizer", line_of("d step")),)
        else:
            expected = (Mover("optimizer", "g_optimizer", line_of("g step")),)
        assert who == expected, path
    assert d.findings() == []
    assert "d_optimizer @ " in d.report() or ONE_OPTIMIZER


@pytest.mark.skipif(ONE_OPTIMIZER, reason="JAX: the two-optimizer loop is tested below")
def test_the_two_optimizer_gan_bug_is_found_with_both_lines(weight_tracker):
    model = gan(buggy=True)
    model.fit(REAL, epochs=1, batch_size=8, verbose=0)
    [record] = weight_tracker.records
    [finding] = [f for f in record.findings if f.kind == "two optimizers"]
    d_line, g_line = line_of("d step"), line_of("g step")
    assert finding.summary.startswith(
        "gan: 4 weights updated by two optimizers in one training call: d_optimizer and "
        "g_optimizer (discriminator/d_hidden/kernel"
    ) or finding.summary.split(": ", 1)[1].startswith("4 weights updated by two optimizers")
    assert f"d_optimizer (apply at {d_line}) and g_optimizer (apply at {g_line})" in (
        finding.explanation
    )
    assert "apply each optimizer to one network's trainable_weights only" in finding.fix
    for path, who in movers(record.diff).items():
        names = {m.name for m in who}
        assert names == ({"d_optimizer", "g_optimizer"} if path.startswith("discriminator/")
                         else {"g_optimizer"})  # fmt: skip


@pytest.mark.skipif(BACKEND != "jax" or LEGACY, reason="the JAX stateless two-optimizer loop")
@pytest.mark.parametrize("buggy", [False, True])
def test_a_jax_two_optimizer_loop(buggy):
    import jax

    model = gan()
    disc, gen = model.discriminator, model.generator
    d_opt, g_opt = keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2)
    model.d_optimizer, model.g_optimizer = d_opt, g_opt
    g_targets = model.trainable_variables if buggy else gen.trainable_variables
    d_opt.build(disc.trainable_variables)
    g_opt.build(g_targets)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)

    def generator_values(values):
        by_id = dict(zip([id(v) for v in g_targets], values, strict=True))
        return [by_id[id(v)] for v in gen.trainable_variables]

    def d_loss(d_values, g_values, noise):
        fake, _ = gen.stateless_call(g_values, [], noise)
        pred, _ = disc.stateless_call(d_values, [], keras.ops.concatenate([fake, REAL[:8]]))
        labels = keras.ops.concatenate([keras.ops.ones((8, 1)), keras.ops.zeros((8, 1))])
        return loss(labels, pred)

    def g_loss(values, noise):
        by_id = dict(zip([id(v) for v in g_targets], values, strict=True))
        g_values = [by_id[id(v)] for v in gen.trainable_variables]
        d_values = [by_id.get(id(v), v.value) for v in disc.trainable_variables]
        fake, _ = gen.stateless_call(g_values, [], noise)
        pred, _ = disc.stateless_call(d_values, [], fake)
        return loss(keras.ops.zeros((8, 1)), pred)

    @jax.jit
    def step(d_values, d_state, g_values, g_state, noise):
        d_grads = jax.grad(d_loss)(d_values, generator_values(g_values), noise)
        d_values, d_state = d_opt.stateless_apply(d_state, d_grads, d_values)  # d step
        g_grads = jax.grad(g_loss)(g_values, noise)
        g_values, g_state = g_opt.stateless_apply(g_state, g_grads, g_values)  # g step
        return d_values, d_state, g_values, g_state

    tracker = WeightTracker()
    with tracker.watch(model) as d:
        for i in range(2):
            noise = jax.random.normal(jax.random.PRNGKey(i), (8, 4))
            values = [
                [v.value for v in group]
                for group in (disc.trainable_variables, d_opt.variables, g_targets, g_opt.variables)
            ]
            out = step(*values, noise)
            for var, value in zip(disc.trainable_variables, out[0], strict=True):
                var.assign(value)  # write d back
            for var, value in zip(d_opt.variables, out[1], strict=True):
                var.assign(value)
            for var, value in zip(g_targets, out[2], strict=True):
                var.assign(value)  # write g back
            for var, value in zip(g_opt.variables, out[3], strict=True):
                var.assign(value)
    here = Path(__file__).read_text().splitlines()

    def at(marker):
        return f"{HERE}:{next(n for n, t in enumerate(here, 1) if t.endswith(f'# {marker}'))}"

    for path, who in movers(d).items():
        on_d = path.startswith("discriminator/")
        expected = []
        if on_d:  # computed by d_optimizer, written back by the loop
            expected += [Mover("optimizer", "d_optimizer", at("d step")),
                         Mover("outside", "", at("write d back"))]  # fmt: skip
        if not on_d or buggy:
            expected += [Mover("optimizer", "g_optimizer", at("g step")),
                         Mover("outside", "", at("write g back"))]  # fmt: skip
        assert sorted(who, key=str) == sorted(expected, key=str), path
    assert [f.kind for f in d.findings()] == (["two optimizers"] if buggy else [])


class Swap(keras.callbacks.Callback):
    """Overwrites the head's kernel at the end of every epoch."""

    def on_epoch_end(self, epoch, logs=None):
        kernel = self.model.get_layer("head").weights[0]
        kernel.assign(np.full(tuple(kernel.shape), 0.5, "float32"))


def test_forward_callback_outside_and_fit(weight_tracker):
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    with weight_tracker.watch(model) as d:
        model.fit(x, y, epochs=2, verbose=0, callbacks=[Swap()])
        bias = model.get_layer("head").weights[1]
        where = next_line()
        bias.assign(np.ones(tuple(bias.shape), "float32"))
    found = movers(d)
    fit_step = Mover("optimizer", "optimizer", "fit()")
    assert found["head/kernel"] == (fit_step, Mover("callback", "Swap.on_epoch_end"))
    assert found["head/bias"] == (fit_step, Mover("outside", "", where))
    assert found["base/base_dense/kernel"] == (fit_step,)
    assert found["base/base_bn/gamma"] == (fit_step,)
    if "base/base_bn/moving_mean" in found:  # tf_keras honours training=False here
        assert found["base/base_bn/moving_mean"] == (Mover("forward"),)


def test_a_write_from_test_code_is_outside():
    model, _ = base_and_head(freeze_base=True)
    with WeightTracker().watch(model, "base") as d:
        kernel = model.get_layer("base").get_layer("base_dense").weights[0]
        where = next_line()
        kernel.assign(np.zeros(tuple(kernel.shape), "float32"))
    [change] = d.moved()
    assert change.moved_by == (Mover("outside", "", where),)
    assert f"outside ({where})" in d.report()


# -- by= --------------------------------------------------------------------------------


def test_by_an_optimizer_helper_and_object():
    model = gan(buggy=not ONE_OPTIMIZER)
    if ONE_OPTIMIZER:
        with assert_frozen(model, "discriminator", by="d_optimizer"):
            model.fit(REAL, epochs=1, batch_size=8, verbose=0)
        return
    with pytest.raises(FreezeAssertionError) as info:
        with assert_frozen(model, "discriminator", by=model.g_optimizer):
            model.fit(REAL, epochs=1, batch_size=8, verbose=0)
    message = str(info.value)
    assert message.splitlines()[0] == (
        "assert_frozen failed: 4 of 4 weights of 'discriminator' were updated by "
        f"g_optimizer in model '{model.name}'"
    )
    assert f"g_optimizer @ {line_of('g step')}" in message
    assert "[two optimizers]" in message
    correct = gan()
    with assert_frozen(correct, "discriminator", by="g_optimizer"):
        correct.fit(REAL, epochs=1, batch_size=8, verbose=0)


def test_by_needs_a_watched_interval():
    model, _ = base_and_head()
    from pytest_kerasfreeze import snapshot

    before = snapshot(model)
    with pytest.raises(ValueError, match="was not watched while it trained"):
        before.diff(before.retake()).assert_frozen(by="optimizer")


BY_MARKER = """
import pytest
from usermodels import make_model, X, Y

@pytest.mark.frozen("base", by="optimizer")
def test_base_not_by_the_optimizer():
    make_model().fit(X, Y, verbose=0)

@pytest.mark.frozen("head", by="optimizer")
def test_head_by_the_optimizer():
    make_model().fit(X, Y, verbose=0)
"""


def test_by_on_the_frozen_marker(user_project):
    user_project.makepyfile(test_user=BY_MARKER)
    result = user_project.runpytest("--assert=plain")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.frozen('head', by='optimizer') failed on clf.fit(): 2 of 2 weights "
            "of 'head' were updated by optimizer in model 'clf'",
            "*head/kernel*optimizer @ fit()*",
        ]
    )


# -- zero effect, and random train steps against the truth they were built with -------------


def train_gan_with_callback(observed):
    keras.utils.set_random_seed(5)
    model = gan()
    if observed:
        with WeightTracker().watch(model):
            model.fit(REAL, epochs=2, batch_size=8, verbose=0)
    else:
        model.fit(REAL, epochs=2, batch_size=8, verbose=0)
    return [value_of(v) for v in model.weights]


def test_attribution_has_no_effect_on_training():
    plain = train_gan_with_callback(observed=False)
    again = train_gan_with_callback(observed=False)
    assert [a.tobytes() for a in plain] == [b.tobytes() for b in again], "not deterministic"
    watched = train_gan_with_callback(observed=True)
    assert [a.tobytes() for a in plain] == [b.tobytes() for b in watched]


def custom_step(model, plan, x, y):
    """One hand-written step: each optimizer of ``plan`` updates its own subset of the
    layers, in the backend's own idiom."""
    if BACKEND == "jax" and not LEGACY:
        import jax

        variables = model.trainable_variables

        def loss_fn(values):
            pred, _ = model.stateless_call(
                values, [v.value for v in model.non_trainable_variables], x
            )
            return keras.ops.mean(keras.ops.square(pred - y))

        grads = jax.grad(loss_fn)([v.value for v in variables])
        by_id = dict(zip([id(v) for v in variables], grads, strict=True))
        for optimizer, layers in plan:
            targets = [w for layer in layers for w in layer.trainable_weights]
            optimizer.apply([by_id[id(w)] for w in targets], targets)
    elif BACKEND == "torch" and not LEGACY:
        import torch

        for optimizer, layers in plan:
            targets = [w for layer in layers for w in layer.trainable_weights]
            model.zero_grad()
            loss = torch.mean((model(torch.as_tensor(x)) - torch.as_tensor(y)) ** 2)
            loss.backward()
            with torch.no_grad():
                optimizer.apply([w.value.grad for w in targets], targets)
    else:
        import tensorflow as tf

        for optimizer, layers in plan:
            targets = [w for layer in layers for w in layer.trainable_weights]
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x) - y))
            grads = tape.gradient(loss, targets)
            optimizer.apply_gradients(zip(grads, targets, strict=True))


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    n_layers=st.integers(2, 4),
    subsets=st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=1, max_size=2),
    assign=st.one_of(st.none(), st.integers(0, 3)),
)
def test_random_custom_steps_against_their_truth(n_layers, subsets, assign):
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(4, activation="tanh", name=f"d{i}") for i in range(n_layers)]
    inp = keras.Input((4,))
    out = inp
    for layer in layers:
        out = layer(out)
    model = compile_(keras.Model(inp, out, name="net"), optimizer="sgd")
    plan, names = [], []
    for name, mask in zip(["first_opt", "second_opt"], subsets, strict=False):
        chosen = [layer for layer, on in zip(layers, mask, strict=False) if on]
        if chosen:
            optimizer = keras.optimizers.SGD(0.1)
            setattr(model, name, optimizer)  # the model attribute names the mover
            plan.append((optimizer, chosen))
            names.append(name)
    x, y = data(n=8, in_dim=4, out_dim=4)
    with WeightTracker().watch(model) as d:
        custom_step(model, plan, x, y)
        if assign is not None:
            target = layers[assign % n_layers].weights[1]
            where = next_line()
            target.assign(np.full(tuple(target.shape), 3.0, "float32"))
    truth = {}  # what the step was built to do
    for (_, chosen), name in zip(plan, names, strict=True):
        for layer in chosen:
            for w in layer.trainable_weights:
                truth.setdefault(id(w), set()).add(("optimizer", name))
    if assign is not None:
        truth.setdefault(id(target), set()).add(("outside", where))
    for v, change in zip(model.weights, d.changes, strict=True):
        if change.moved:
            got = {(m.kind, m.name or m.location) for m in change.moved_by}
            assert got == truth[id(v)], change.path
        else:
            assert id(v) not in truth or all(k == "outside" for k, _ in truth[id(v)])
