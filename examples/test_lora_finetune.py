"""LoRA fine-tuning, stated as one invariant: only the adapters and the head train.

Keras 3's ``layer.enable_lora(rank)`` adds ``lora_kernel_a`` / ``lora_kernel_b`` to a
Dense layer and freezes its kernel *variable* — only the kernel: the layer's bias keeps
training. KerasHub's ``backbone.enable_lora(rank)`` does the same to the query and value
projections of every attention layer (it freezes the backbone, then unfreezes the target
layers and enables LoRA on them). This example builds that shape in plain Keras and lets
``assert_trains_only`` say what really trains.

Run:  pytest -p kerasfreeze examples/test_lora_finetune.py -rP
"""

import keras
import numpy as np
import pytest

from pytest_kerasfreeze import FreezeAssertionError, assert_trains_only

rng = np.random.default_rng(0)
TOKENS = rng.integers(0, 50, size=(64, 8)).astype("int32")
LABELS = rng.integers(0, 2, size=(64, 1)).astype("float32")


def build_classifier():
    """A tiny text classifier: embeddings, one attention-like block, a new head."""
    tokens = keras.Input((8,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(50, 16, name="token_embedding")(tokens)
    query = keras.layers.Dense(16, name="query")(x)
    value = keras.layers.Dense(16, name="value")(x)
    attended = keras.layers.Attention(name="attention")([query, value])
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(attended)
    backbone = keras.Model(tokens, pooled, name="backbone")
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(backbone(tokens))
    return keras.Model(tokens, outputs, name="text_classifier"), backbone


def enable_lora(backbone, rank, target_layer_names=("query", "value")):
    """What KerasHub's Backbone.enable_lora does, for a plain Keras backbone."""
    for layer in backbone.layers:
        layer.trainable = False
    for name in target_layer_names:
        layer = backbone.get_layer(name)
        layer.trainable = True
        layer.enable_lora(rank)


def test_only_the_adapters_and_the_head_train():
    model, backbone = build_classifier()
    enable_lora(backbone, rank=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")

    # The LoRA weights and the head train, nothing else moves — except the biases of
    # the target layers, which Keras' LoRA leaves trainable: say so with allow=.
    diff = assert_trains_only(
        model, "head", "*/lora_kernel_*", allow="*/bias", x=TOKENS, y=LABELS, epochs=2
    )
    print(diff.report())
    assert diff.by_submodel()["backbone/query"] == (3, 4)  # kernel frozen, bias + A + B


def test_what_a_lora_user_is_told_when_the_biases_train():
    """Without allow=, the invariant fails: the message lists what moved outside it."""
    model, backbone = build_classifier()
    enable_lora(backbone, rank=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    with pytest.raises(FreezeAssertionError) as info:
        with assert_trains_only(model, "head", "*/lora_kernel_*"):
            model.fit(TOKENS, LABELS, epochs=2, verbose=0)
    print(info.value)
    assert "backbone/query/bias" in str(info.value)
    assert "backbone/value/bias" in str(info.value)


@pytest.mark.trains_only("head", "*/lora_kernel_*", allow="*/bias")
def test_the_same_invariant_as_a_marker():
    model, backbone = build_classifier()
    enable_lora(backbone, rank=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(TOKENS, LABELS, epochs=2, verbose=0)  # checked right here
