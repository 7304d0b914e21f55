# Source: the keras-io / KerasHub LoRA fine-tuning guides (layer.enable_lora(rank) on a
# trained model, then fit), rewritten with a tiny Dense model: LoRA is enabled after the
# first fit() and the model trains on with no compile().
# expect: KF103
# shows on: tensorflow, jax, torch
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
lora = model.layers[0].lora_kernel_b
before = np.array(lora)
model.fit(x, y, epochs=1, verbose=0)
after = np.array(lora)


def check():
    """The mistake shows: the new LoRA weights did not train (or fit() raised)."""
    return np.array_equal(before, after)
