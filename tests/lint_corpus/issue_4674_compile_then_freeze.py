# Source: keras-team/keras#4674 ("Trainable = False isn't freezing weights"): model1 is
# trained, frozen, and a model2 built on model1's output is compiled and trained; model1
# must not move. Rewritten with tiny sizes; the mistake: model2 is compiled before model1
# is frozen.
# expect: KF101
# shows on: tf_keras
import keras
import numpy as np

x = keras.Input(shape=(3,))
y = keras.layers.Dense(5)(x)
model1 = keras.Model(x, y)
model1.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
model1.fit(np.random.random((10, 3)), np.random.random((10, 5)), epochs=1, verbose=0)

z = keras.layers.Dense(5)(model1.output)
model2 = keras.Model(x, z)
model2.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
model1.trainable = False
before = [w.copy() for w in model1.get_weights()]
model2.fit(np.ones((10, 3)), np.ones((10, 5)), epochs=1, verbose=0)
after = model1.get_weights()


def check():
    """The mistake shows: model1 moved while model2 trained."""
    return any(not np.array_equal(a, b) for a, b in zip(before, after))
