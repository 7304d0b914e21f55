# Source: the KerasHub "parameter-efficient fine-tuning with LoRA" pattern
# (backbone.get_layer(...).enable_lora(rank) before training), rewritten with a tiny model
# where the LoRA call lands after a first fit(), with no compile() after it.
# expect: KF103
# shows on: tensorflow, jax, torch
# runs on: tensorflow, jax, torch
import keras
import numpy as np
from keras import layers

inputs = keras.Input((4,))
hidden = layers.Dense(3, name="attention_dense")(inputs)
model = keras.Model(inputs, layers.Dense(1)(hidden))
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x = np.random.normal(size=(8, 4)).astype("float32")
y = np.random.normal(size=(8, 1)).astype("float32")
model.fit(x, y, epochs=1, verbose=0)

model.get_layer("attention_dense").enable_lora(2)
lora = model.get_layer("attention_dense").lora_kernel_b
before = np.array(lora)
model.fit(x, y, epochs=1, verbose=0)
after = np.array(lora)


def check():
    """The mistake shows: the new LoRA weights did not train (or fit() raised)."""
    return np.array_equal(before, after)
