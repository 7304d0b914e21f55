# Source: the keras-io guide "Making new layers and models via subclassing" (a Model
# subclass holding its blocks as attributes) with the fine-tuning step of the
# transfer-learning guide, rewritten with tiny sizes: the backbone attribute is frozen
# after fit() and the model is compiled again: the correct twin.
# expect: clean
# shows on: none
import keras
import numpy as np
from keras import layers


class Classifier(keras.Model):
    def __init__(self):
        super().__init__()
        self.backbone = keras.Sequential([layers.Dense(3, activation="relu")])
        self.head = layers.Dense(1)

    def call(self, inputs):
        return self.head(self.backbone(inputs))


clf = Classifier()
clf.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
x = np.random.normal(size=(8, 4)).astype("float32")
y = np.random.normal(size=(8, 1)).astype("float32")
clf.fit(x, y, epochs=1, verbose=0)

clf.backbone.trainable = False
clf.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
before = [w.copy() for w in clf.backbone.get_weights()]
clf.fit(x, y, epochs=1, verbose=0)
after = clf.backbone.get_weights()


def check():
    """The mistake would show as a frozen backbone that kept training."""
    return any(not np.array_equal(a, b) for a, b in zip(before, after))
