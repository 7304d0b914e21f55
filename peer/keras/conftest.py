"""Stand-in for the root ``conftest.py`` of the Keras repository, which the wheel does not
ship. Keras' test files do ``from conftest import skip_if_backend`` and use the markers
``requires_trainable_backend`` and ``multi_device``; ``peer/run.py`` loads this module with
``-p conftest`` (this folder on ``PYTHONPATH``) so that they behave as in Keras' own CI.
"""

try:  # as in Keras' CI: torch is imported before TensorFlow where both are installed
    import torch
except ImportError:
    torch = None

import pytest
from keras.src.backend import backend


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_trainable_backend: needs a trainable backend")
    config.addinivalue_line("markers", "multi_device: needs more than one device")


def _device_count():
    if backend() == "jax":
        import jax

        return jax.device_count()
    if backend() == "torch" and torch is not None and torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1


def pytest_collection_modifyitems(config, items):
    not_trainable = pytest.mark.skipif(
        backend() in ("numpy", "openvino"), reason="Trainer not implemented for this backend."
    )
    single_device = pytest.mark.skip(reason="Requires multiple devices")
    several = _device_count() > 1
    for item in items:
        if "requires_trainable_backend" in item.keywords:
            item.add_marker(not_trainable)
        if not several and "multi_device" in item.keywords:
            item.add_marker(single_device)


def skip_if_backend(given_backend, reason):
    return pytest.mark.skipif(backend() == given_backend, reason=reason)
