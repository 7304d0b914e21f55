"""Shared set-up for the examples: quiet TensorFlow logs, reproducible runs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def reproducible():
    keras.utils.set_random_seed(42)
