# Source: the module-level GAN scripts of Zackory/Keras-MNIST-GAN and yashk2810/DCGAN-Keras
# (get_discriminator()/get_gan() functions, a loop of train_on_batch calls; see their
# issues #2 and #1), rewritten with tiny sizes. The correct twin: the loop sets the flag
# to what each model was compiled with before training it.
# expect: clean
# shows on: none
import keras
import numpy as np
from keras import layers


def get_generator():
    return keras.Sequential([keras.Input((2,)), layers.Dense(4, activation="tanh")])


def get_discriminator():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(3, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(0.1))
    return model


def get_gan(discriminator, generator):
    discriminator.trainable = False
    gan_input = keras.Input((2,))
    gan = keras.Model(gan_input, discriminator(generator(gan_input)))
    gan.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(0.1))
    return gan


generator = get_generator()
discriminator = get_discriminator()
gan = get_gan(discriminator, generator)

real = np.random.normal(size=(8, 4)).astype("float32")
start = [w.copy() for w in discriminator.get_weights()]
for _batch in range(3):
    noise = np.random.normal(size=(8, 2))
    fake = generator.predict(noise, verbose=0)
    x = np.concatenate([real, fake])
    y = np.concatenate([np.ones((8, 1)), np.zeros((8, 1))])
    discriminator.trainable = True
    discriminator.train_on_batch(x, y)
    discriminator.trainable = False
    gan.train_on_batch(noise, np.ones((8, 1)))
end = discriminator.get_weights()


def check():
    """The mistake would show as discriminator steps that left its weights as they were."""
    return all(np.array_equal(a, b) for a, b in zip(start, end))
