# Source: the "freeze every BatchNormalization layer" loop of fine-tuning code (the keras-io
# transfer-learning guide's BatchNormalization note; tensorflow/tensorflow#22012's
# discrepancy warning), rewritten with tiny sizes: the loop runs after the first fit().
# expect: KF101
# shows on: tf_keras, tensorflow, jax
import keras
import numpy as np
from keras import layers

model = keras.Sequential(
    [keras.Input((4,)), layers.Dense(4), layers.BatchNormalization(), layers.Dense(1)]
)
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x = np.random.normal(size=(16, 4)).astype("float32")
y = np.random.normal(size=(16, 1)).astype("float32")
model.fit(x, y, epochs=1, verbose=0)

for layer in model.layers:
    if isinstance(layer, layers.BatchNormalization):
        layer.trainable = False
bn = model.layers[1]
before = [np.array(v) for v in bn.weights[:2]]  # gamma, beta
model.fit(x, y, epochs=1, verbose=0)
after = [np.array(v) for v in bn.weights[:2]]


def check():
    """The mistake shows: the frozen BatchNormalization's gamma and beta kept training."""
    return any(not np.array_equal(a, b) for a, b in zip(before, after))
