"""Ask before you train: ``explain()`` before the second stage of a fine-tuning run.

Stage 1 trains a new head on a frozen base. Stage 2 is where the expensive mistakes
live: unfreezing part of the base *after* the first ``fit()`` without recompiling is
ignored on TensorFlow, raises on JAX and PyTorch; recompiling with the same, already
built optimizer still raises on JAX. ``explain(model)`` says which of these this Keras
will do, before a GPU-hour is spent, and ``plan.assert_trains_only`` stops the run on
the spot when the plan is not what was meant.

Run:  pytest -p kerasfreeze examples/test_explain_before_finetuning.py -rP
      python examples/test_explain_before_finetuning.py     # as a script: record()
"""

import keras
import numpy as np

import pytest_kerasfreeze as kf

rng = np.random.default_rng(0)
X = rng.normal(size=(64, 8)).astype("float32")
Y = rng.normal(size=(64, 1)).astype("float32")


def build():
    base_in = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="block1")(base_in)
    h = keras.layers.Dense(16, activation="relu", name="block2")(h)
    base = keras.Model(base_in, h, name="base")
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(1, name="head")(base(inputs))
    return keras.Model(inputs, outputs, name="classifier"), base


def fine_tune(report=print):
    model, base = build()
    base.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    kf.explain(model).assert_trains_only("head")  # stage 1 as planned
    model.fit(X, Y, epochs=1, verbose=0)

    # Stage 2: unfreeze the top block of the base. Forgetting to recompile here is the
    # classic mistake: ask the plan first.
    base.get_layer("block2").trainable = True
    forgot = kf.explain(model)
    report(forgot)

    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mse")  # the fix
    plan = kf.explain(model)
    report(plan)
    plan.assert_trains_only("base/block2", "head")  # raises now, not after an epoch
    model.fit(X, Y, epochs=1, verbose=0)
    return forgot, plan


def test_plan_before_the_second_stage():
    forgot, plan = fine_tune()
    runtime = forgot.runtime
    block2 = next(e for e in forgot.entries if e.path == "base/block2/kernel")
    if runtime in ("tensorflow", "tf_keras"):  # ignored until the next compile()
        assert block2.will_train is False and forgot.raises is None
    else:  # JAX and PyTorch: the built optimizer does not know block2
        assert forgot.raises is not None
    assert block2.elsewhere["tensorflow"] is False and block2.elsewhere["jax"] == "raises"
    assert plan.trains() == ["base/block2/kernel", "base/block2/bias", "head/kernel", "head/bias"]


if __name__ == "__main__":
    with kf.record():  # outside pytest: record where each flag was set
        fine_tune()
