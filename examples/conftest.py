"""Shared set-up for the examples: quiet TensorFlow logs, reproducible runs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import pytest


@pytest.fixture(autouse=True)
def reproducible():
    keras.utils.set_random_seed(42)
