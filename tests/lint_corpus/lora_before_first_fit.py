# Source: the KerasHub "parameter-efficient fine-tuning with LoRA" pattern, rewritten with
# a tiny model: LoRA is enabled after compile() and before the first fit(), which every
# Keras honours (the first fit() builds the train function with the new weights).
# expect: clean
# shows on: none
# runs on: tensorflow, jax, torch
import keras
import numpy as np
from keras import layers

inputs = keras.Input((4,))
hidden = layers.Dense(3, name="attention_dense")(inputs)
model = keras.Model(inputs, layers.Dense(1)(hidden))
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
model.get_layer("attention_dense").enable_lora(2)
lora = model.get_layer("attention_dense").lora_kernel_b
before = np.array(lora)
x = np.random.normal(size=(8, 4)).astype("float32")
model.fit(x, np.random.normal(size=(8, 1)), epochs=1, verbose=0)
after = np.array(lora)


def check():
    """The mistake would show as LoRA weights that did not train."""
    return np.array_equal(before, after)
