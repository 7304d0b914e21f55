# Source: tensorflow/tensorflow#117169 and keras-team/keras#22787 (which flags rule: those
# at compile() or those at the first fit()?), rewritten with tiny sizes: the base is
# unfrozen after compile() and before the first fit().
# expect: KF101
# shows on: tf_keras
import keras
import numpy as np
from keras import layers

base = keras.Sequential([keras.Input((4,)), layers.Dense(3)], name="base")
base.trainable = False
inputs = keras.Input((4,))
model = keras.Model(inputs, layers.Dense(1)(base(inputs)))
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
base.trainable = True
before = [w.copy() for w in base.get_weights()]
model.fit(np.ones((8, 4)), np.zeros((8, 1)), epochs=1, verbose=0)
after = base.get_weights()


def check():
    """The mistake shows: the base, unfrozen before the first fit(), did not train."""
    return all(np.array_equal(a, b) for a, b in zip(before, after))
