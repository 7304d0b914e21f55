"""Fine-tuning invariants (issue 13): weight selectors, ``exclude=``,
``assert_trains_only`` and LoRA — on real models trained for real, against a plain
numpy oracle paired by variable identity."""

import inspect
import warnings

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, base_and_head, compile_, data, keras, value_of
from pytest_kerasfreeze import (
    CompileOrderWarning,
    FreezeAssertionError,
    LayerNotFoundError,
    assert_frozen,
    assert_trains_only,
    snapshot,
)
from pytest_kerasfreeze.traps import TRAP_SEMANTICS

RUNTIME = "tf_keras" if LEGACY else BACKEND
needs_lora = pytest.mark.skipif(LEGACY, reason="tf_keras has no enable_lora (Keras 3 only)")
HERE = "tests/test_finetune.py"


def next_line():
    return f"{HERE}:{inspect.currentframe().f_back.f_lineno + 1}"


def oracle(model):
    """A numpy copy of every weight, keyed by the variable's identity."""
    return {id(v): value_of(v) for v in model.weights}


def oracle_moved(model, before):
    after = oracle(model)
    return {i: not np.array_equal(before[i], after[i], equal_nan=True) for i in before}


def encoder_with_head(lora_rank=None):
    """An attention-projection shape, as fine-tuned with LoRA: an encoder with ``query``
    and ``value`` Dense layers, then a classification head."""
    inp = keras.Input((6,), name="tokens")
    h = keras.layers.Dense(8, activation="relu", name="embed")(inp)
    q = keras.layers.Dense(8, name="query")
    v = keras.layers.Dense(8, name="value")
    encoded = keras.layers.Add(name="mix")([q(h), v(h)])
    encoder = keras.Model(inp, encoded, name="encoder")
    x = keras.Input((6,), name="x")
    out = keras.layers.Dense(2, name="head")(encoder(x))
    model = keras.Model(x, out, name="classifier")
    if lora_rank:  # KerasHub's Backbone.enable_lora, in plain Keras:
        for layer in encoder.layers:
            layer.trainable = False  # freeze the backbone ...
        for layer in (q, v):
            layer.trainable = True  # ... but for the target layers,
            layer.enable_lora(lora_rank)  # whose kernels LoRA freezes again
    return model, q, v


def lora_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 2)).astype("float32")


# -- weight selectors -----------------------------------------------------------------


def test_weight_paths_globs_and_variables_select_weights():
    model, _ = base_and_head(freeze_base=False)
    kernel = model.get_layer("head").weights[0]
    one = snapshot(model, "base/base_dense/kernel")
    assert [c.path for c in one.diff(one).changes] == ["base/base_dense/kernel"]
    biases = snapshot(model, "*/bias")
    assert sorted(c.path for c in biases.diff(biases).changes) == [
        "base/base_dense/bias", "head/bias"
    ]  # fmt: skip
    assert len(snapshot(model, kernel)) == 1
    assert len(snapshot(model, "*/moving_*")) == 2


def test_a_weight_selector_that_matches_nothing_suggests_weight_paths():
    model, _ = base_and_head()
    with pytest.raises(LayerNotFoundError) as info:
        snapshot(model, "base/base_dense/kernal")
    assert "Did you mean 'base/base_dense/kernel'" in str(info.value)
    other, _ = base_and_head(name="other")
    with pytest.raises(LayerNotFoundError, match=r"weight 'head/kernel' .* is not part of model"):
        snapshot(model, other.get_layer("head").weights[0])


# -- exclude= ---------------------------------------------------------------------------


def test_exclude_means_everything_but():
    """``assert_frozen(model, exclude="head")``: the whole model but the head."""
    model, _ = base_and_head(freeze_base=True)
    x, y = data()
    before = oracle(model)
    d = assert_frozen(model, exclude=["head", "*/moving_*"], x=x, y=y)
    truth = oracle_moved(model, before)
    head = {id(v) for v in model.get_layer("head").weights}
    watched = [v for v in model.weights if id(v) not in head and "moving" not in v.name]
    assert len(d.changes) == len(watched) == 4
    assert not any(truth[id(v)] for v in watched)
    assert all(truth[i] for i in head)
    with pytest.raises(FreezeAssertionError, match="the whole model except 'base'"):
        assert_frozen(model, exclude="base", x=x, y=y)


def test_exclude_on_diffs_and_selectors_together():
    model, _ = base_and_head(freeze_base=False)
    x, y = data()
    before = snapshot(model)
    model.fit(x, y, verbose=0)
    d = before.diff(before.retake())
    assert {c.path for c in d.moved("base", exclude="base/base_bn")} == {
        "base/base_dense/kernel", "base/base_dense/bias"
    }  # fmt: skip
    d.assert_trains("base", exclude=["*/moving_*"])
    with pytest.raises(LayerNotFoundError, match="leaves no weight to check"):
        d.assert_frozen("head", exclude="head")


# -- assert_trains_only -------------------------------------------------------------------


def test_trains_only_passes_for_a_frozen_base_and_fails_with_both_halves():
    model, _ = base_and_head(freeze_base=True)
    x, y = data()
    before = oracle(model)
    d = assert_trains_only(model, "head", allow="*/moving_*", x=x, y=y)
    truth = oracle_moved(model, before)
    assert [c.moved for c in d.changes] == [truth[id(v)] for v in model.weights]

    model2, _ = base_and_head(freeze_base=False)
    with pytest.raises(FreezeAssertionError) as info:
        with assert_trains_only(model2, "head"):
            model2.fit(x, y, verbose=0)
    message = str(info.value)
    n = 4 if LEGACY else 6  # tf_keras honours training=False for the nested BatchNorm
    assert message.splitlines()[0] == (
        f"assert_trains_only failed: {n} of 6 weights outside 'head' moved in model 'classifier'"
    )
    assert "Weights outside the selection that moved:" in message
    assert "base/base_dense/kernel" in message


def test_trains_only_allows_what_allow_says_and_requires_a_trainable_selection():
    model, base = base_and_head(freeze_base=False)
    base.get_layer("base_dense").trainable = False
    compile_(model)
    x, y = data()
    # the base's BatchNormalization trains (gamma/beta) and its statistics move
    with pytest.raises(FreezeAssertionError):
        assert_trains_only(model, "head", x=x, y=y)
    assert_trains_only(model, "head", "base/base_bn", x=x, y=y)
    with pytest.raises(ValueError, match="declares no trainable weights"):
        assert_trains_only(model, "*/moving_*")


# -- LoRA ----------------------------------------------------------------------------


@needs_lora
def test_lora_fine_tuning_invariant_and_the_biases_truth():
    model, q, v = encoder_with_head(lora_rank=2)
    compile_(model)
    x, y = lora_data()
    before = oracle(model)
    with pytest.raises(FreezeAssertionError) as info:
        with assert_trains_only(model, "head", "*/lora_kernel_*"):
            model.fit(x, y, epochs=2, verbose=0)
    truth = oracle_moved(model, before)
    # the oracle: LoRA freezes the kernel variable only: the biases of query/value train
    assert truth[id(q.bias)] and truth[id(v.bias)]
    assert not truth[id(q._kernel)] and not truth[id(v._kernel)]
    assert all(truth[id(w)] for w in (q.lora_kernel_a, q.lora_kernel_b))
    message = str(info.value)
    assert "2 of 6 weights outside 'head', '*/lora_kernel_*' moved" in message.splitlines()[0]
    assert "encoder/query/bias" in message and "encoder/value/bias" in message
    assert "encoder/query/lora_kernel_a" not in message.split("Weights outside")[1]
    # stated with allow=, the invariant holds
    model.fit(x, y, verbose=0)  # (any further step keeps it true)
    with assert_trains_only(model, "head", "*/lora_kernel_*", allow="*/bias"):
        model.fit(x, y, epochs=2, verbose=0)


@needs_lora
def test_lora_weights_have_paths_under_their_layer():
    model, _, _ = encoder_with_head(lora_rank=2)
    snap = snapshot(model, "encoder/query")
    assert [c.path for c in snap.diff(snap).changes] == [
        "encoder/query/kernel", "encoder/query/bias",
        "encoder/query/lora_kernel_a", "encoder/query/lora_kernel_b",
    ]  # fmt: skip
    assert not snap.diff(snap).changes[0].trainable  # the kernel variable is frozen


@needs_lora
@pytest.mark.parametrize("moment", ["after-compile", "after-build"])
def test_enable_lora_after_compile_is_the_trap(moment, weight_tracker):
    model, q, _ = encoder_with_head()
    compile_(model)
    x, y = lora_data()
    if moment == "after-build":
        model.fit(x, y, verbose=0)
    where = next_line()
    q.enable_lora(2)
    outcome, behaviour = TRAP_SEMANTICS[(RUNTIME, moment, "create")]
    before = oracle(model)
    with pytest.warns(CompileOrderWarning) as warned:
        try:
            model.fit(x, y, verbose=0)
        except Exception as err:  # noqa: BLE001 - JAX and PyTorch raise for this row
            assert outcome == "raises", err
            assert "pytest-kerasfreeze: [compile-order trap]" in "\n".join(err.__notes__)
            return
    assert outcome != "raises"
    [text] = [str(w.message) for w in warned if w.category is CompileOrderWarning]
    moment_text = "after compile()" if moment == "after-compile" else "after the first fit()"
    by_lora = f"by enable_lora() at {where}"
    assert f"classifier: 2 weights created {moment_text} and 1 flag changed ({by_lora})" in text
    assert f"encoder/query/kernel.trainable = False set {by_lora}" in text
    lora = "encoder/query/lora_kernel_a, encoder/query/lora_kernel_b"
    assert f"{lora} created {by_lora}" in text
    assert behaviour in text
    truth = oracle_moved(model, {k: v for k, v in before.items()})
    lora_moved = truth[id(q.lora_kernel_b)]
    assert lora_moved is (outcome == "honoured"), (RUNTIME, moment, outcome)


@needs_lora
def test_enable_lora_before_compile_is_silent(recwarn, weight_tracker):
    model, _, _ = encoder_with_head(lora_rank=2)
    compile_(model)
    # two steps: after one, lora_kernel_a has had no gradient yet (lora_kernel_b was zero)
    model.fit(*lora_data(), batch_size=16, verbose=0)
    assert [w for w in recwarn if w.category is CompileOrderWarning] == []
    assert weight_tracker.records[0].findings == []


def test_a_variable_flag_set_by_hand_is_recorded(weight_tracker):
    if LEGACY:
        pytest.skip("tf_keras variables have no trainable setter")
    model, _ = base_and_head(freeze_base=False)
    compile_(model)
    kernel = model.get_layer("head").weights[0]
    where = next_line()
    kernel.trainable = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(*data(), verbose=0)
    [text] = [str(w.message) for w in caught if w.category is CompileOrderWarning]
    assert f"head/kernel.trainable = False set at {where}" in text


# -- the markers, in a user's session ------------------------------------------------------

MARKED = """
import pytest
from usermodels import make_model, X, Y

@pytest.mark.trains_only("head")
def test_head_only():
    make_model().fit(X, Y, verbose=0)

@pytest.mark.trains_only("base")
def test_wrong_half():
    make_model().fit(X, Y, verbose=0)

@pytest.mark.frozen("*", exclude="head")
def test_all_but_the_head(weight_tracker):
    make_model().train_on_batch(X, Y)

@pytest.mark.trains_only("encoder", allow="*/bias")
def test_typo():
    make_model().fit(X, Y, verbose=0)
"""


def test_trains_only_and_exclude_markers(user_project):
    user_project.makepyfile(test_user=MARKED)
    result = user_project.runpytest("--assert=plain", "--kerasfreeze-json=out.json")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.trains_only('base') failed on clf.fit(): 2 of 2 declared-trainable "
            "weights of 'base' did not move; 2 of 2 weights outside 'base' moved in model 'clf'",
            "*@pytest.mark.trains_only('encoder', allow='*/bias') checked nothing*",
        ]
    )
    import json

    data = json.loads((user_project.path / "out.json").read_text())
    [check] = data["test_user.py::test_head_only"]["checks"]
    assert (check["expect"], check["passed"], check["check"]) == (
        "trains_only",
        True,
        "@pytest.mark.trains_only('head')",
    )
    [check] = data["test_user.py::test_all_but_the_head"]["checks"]
    assert check["check"] == "@pytest.mark.frozen('*', exclude='head')"
    assert (check["moved"], check["total"]) == (0, 2)
