# Source: the keras-io / KerasHub LoRA fine-tuning guides (layer.enable_lora(rank) on a
# trained model, then fit), rewritten with a tiny Dense model; the correct twin compiles
# again, with a new optimizer, after enable_lora().
# expect: clean
# shows on: none
# runs on: tensorflow, jax, torch
import keras
import numpy as np
from keras import layers

model = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="query"), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x = np.random.normal(size=(8, 4)).astype("float32")
y = np.random.normal(size=(8, 1)).astype("float32")
model.fit(x, y, epochs=1, verbose=0)

model.layers[0].enable_lora(2)
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
lora = model.layers[0].lora_kernel_b
before = np.array(lora)
model.fit(x, y, epochs=1, verbose=0)
after = np.array(lora)


def check():
    """The mistake would show as LoRA weights that did not train."""
    return np.array_equal(before, after)
