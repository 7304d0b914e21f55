"""The one place that reads Keras', JAX's and TensorFlow's internals (issue 21)."""
