"""Layer selectors and model validation (SPEC: Selecting layers, Errors)."""

import numpy as np
import pytest

from kmodels import base_and_head, keras, seed_containers, two_twins
from pytest_kerasfreeze import LayerNotFoundError, assert_frozen, snapshot


def paths_of(snap):
    return [c.path for c in snap.diff(snap).changes]


@pytest.fixture
def seed():
    return seed_containers()


def test_bare_name_selects_a_layer_at_any_depth(seed):
    model_fixed, *_ = seed
    assert paths_of(snapshot(model_fixed, "shared_2")) == [
        "FixedContainer/shared_2/kernel",
        "FixedContainer/shared_2/bias",
    ]


def test_selecting_a_container_covers_all_nested_weights(seed):
    model_fixed, *_ = seed
    assert paths_of(snapshot(model_fixed, "FixedContainer")) == [
        "FixedContainer/shared_1/kernel",
        "FixedContainer/shared_1/bias",
        "FixedContainer/shared_2/kernel",
        "FixedContainer/shared_2/bias",
    ]


def test_path_glob_object_and_root_selectors(seed):
    model_fixed, _, fixed, _ = seed
    assert paths_of(snapshot(model_fixed, "FixedContainer/shared_1")) == [
        "FixedContainer/shared_1/kernel",
        "FixedContainer/shared_1/bias",
    ]
    # a glob is matched against names and against paths
    assert len(snapshot(model_fixed, "shared_?")) == 4
    assert len(snapshot(model_fixed, "FixedContainer/*_2")) == 2
    assert len(snapshot(model_fixed, fixed)) == 4
    assert len(snapshot(model_fixed, fixed.get_layer("shared_1"))) == 2
    assert len(snapshot(model_fixed, model_fixed)) == 6
    assert len(snapshot(model_fixed, "model_fixed")) == 6
    assert len(snapshot(model_fixed, "model_fixed/FixedContainer/shared_2")) == 2
    # mixing selectors unions their weights, in model order, without duplicates
    both = snapshot(model_fixed, "head", "shared_1", fixed.get_layer("shared_1"))
    assert paths_of(both) == [
        "FixedContainer/shared_1/kernel",
        "FixedContainer/shared_1/bias",
        "head/kernel",
        "head/bias",
    ]


def test_no_selector_means_the_whole_model(seed):
    model_fixed, *_ = seed
    assert len(snapshot(model_fixed)) == len(model_fixed.weights) == 6


def test_unknown_name_lists_closest_names_and_layer_paths(seed):
    model_fixed, *_ = seed
    with pytest.raises(LayerNotFoundError) as info:
        snapshot(model_fixed, "shared_3")
    msg = str(info.value)
    assert "no layer or weight of model 'model_fixed' matches the name 'shared_3'" in msg
    suggestion = msg.split("Did you mean ", 1)[1].split("?", 1)[0]
    assert sorted(suggestion.split(" or ")) == ["'shared_1'", "'shared_2'"]
    assert "Layers of model 'model_fixed':\n" in msg
    assert "  FixedContainer/shared_1\n" in msg
    assert "  head" in msg
    assert isinstance(info.value, LookupError)


def test_unknown_path_and_glob(seed):
    model_fixed, *_ = seed
    with pytest.raises(LayerNotFoundError, match="matches the path 'FixedContainer/nope'"):
        snapshot(model_fixed, "FixedContainer/nope")
    with pytest.raises(LayerNotFoundError, match="matches the glob 'block\\*_conv\\?'"):
        snapshot(model_fixed, "block*_conv?")


def test_name_of_two_different_layers_is_ambiguous():
    model = two_twins()
    with pytest.raises(LayerNotFoundError) as info:
        snapshot(model, "proj")
    msg = str(info.value)
    assert "layer name 'proj' is ambiguous in model 'twins': 2 different layers" in msg
    assert "  left/proj\n  right/proj\n" in msg
    assert "Select one by its path (e.g. 'left/proj')" in msg
    # the path or a glob resolves it
    assert len(snapshot(model, "left/proj")) == 2
    assert len(snapshot(model, "*/proj")) == 4


def test_shared_layer_reached_by_two_paths_is_not_ambiguous():
    _, _, fixed, normal = seed_containers()
    inp = keras.Input((4,))
    both = keras.Model(inp, keras.layers.Add()([fixed(inp), normal(inp)]), name="both")
    snap = snapshot(both, "shared_1")
    assert len(snap) == 2
    assert both.get_layer("FixedContainer").get_layer("shared_1") is normal.get_layer("shared_1")


def test_empty_selector_and_bad_selector_type(seed):
    model_fixed, *_ = seed
    with pytest.raises(LayerNotFoundError, match="empty selector ''"):
        snapshot(model_fixed, "")
    with pytest.raises(TypeError, match=r"a selector must be .* got int 3"):
        snapshot(model_fixed, 3)


def test_layer_of_another_model_is_rejected(seed):
    model_fixed, *_ = seed
    stranger = keras.layers.Dense(2, name="stranger")
    stranger.build((None, 3))
    with pytest.raises(LayerNotFoundError, match="layer 'stranger' \\(Dense\\) is not part of"):
        snapshot(model_fixed, stranger)


def test_selector_errors_come_before_any_training(seed):
    model_fixed, *_ = seed
    before = [w.copy() for w in model_fixed.get_weights()]
    x, y = np.ones((4, 4), "float32"), np.ones((4, 1), "float32")
    with pytest.raises(LayerNotFoundError):
        assert_frozen(model_fixed, "nope", x=x, y=y)
    for a, b in zip(before, model_fixed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "thing, kind",
    [(3, "int 3"), ("model", "str 'model'"), (np.zeros(3), "ndarray array")],
)
def test_not_a_model_is_a_type_error(thing, kind):
    with pytest.raises(TypeError, match=f"expected a Keras model .*got {kind}"):
        snapshot(thing)


def test_unbuilt_models_are_value_errors():
    seq = keras.Sequential([keras.layers.Dense(2)], name="lazy")
    with pytest.raises(ValueError, match=r"model 'lazy' is not built yet.*lazy\.build"):
        snapshot(seq)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="model 'sub' is not built yet"):
        assert_frozen(Sub())


def test_models_and_selections_without_weights():
    empty = keras.Sequential([keras.Input((2, 2)), keras.layers.Flatten()], name="flat")
    with pytest.raises(ValueError, match="model 'flat' has no weights"):
        snapshot(empty)
    model, _ = base_and_head()
    with pytest.raises(ValueError, match=r"the selection \('drop'\) of model .* holds no weights"):
        snapshot(model, "drop")
