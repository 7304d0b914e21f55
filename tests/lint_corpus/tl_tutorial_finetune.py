# Source: the TensorFlow transfer-learning tutorial (tensorflow.org/tutorials/images/
# transfer_learning, "Fine tuning": base_model.trainable = True, freeze the layers before
# fine_tune_at, compile again, fit from initial_epoch), rewritten with a tiny stand-in for
# MobileNetV2 and no download. The mistake: the second fit() without the compile().
# expect: KF101
# shows on: tf_keras, tensorflow, jax, torch
import keras
import numpy as np
from keras import layers

base_model = keras.Sequential(
    [keras.Input((4,)), layers.Dense(4, activation="relu"), layers.Dense(4, activation="relu")],
    name="mobilenet_stand_in",
)
base_model.trainable = False
inputs = keras.Input(shape=(4,))
x = base_model(inputs, training=False)
outputs = layers.Dense(1)(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
images = np.random.normal(size=(16, 4)).astype("float32")
labels = np.random.normal(size=(16, 1)).astype("float32")
model.fit(images, labels, epochs=1, verbose=0)

base_model.trainable = True
fine_tune_at = 1
for layer in base_model.layers[:fine_tune_at]:
    layer.trainable = False
before = [w.copy() for w in base_model.layers[1].get_weights()]
model.fit(images, labels, epochs=2, initial_epoch=1, verbose=0)
after = base_model.layers[1].get_weights()


def check():
    """The mistake shows: the unfrozen top of the base did not train."""
    return all(np.array_equal(a, b) for a, b in zip(before, after))
