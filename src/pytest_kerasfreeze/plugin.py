"""The pytest side of pytest-kerasfreeze: markers and the ``weight_tracker`` fixture.

Only pytest hooks, options, markers and fixtures live here; the engine is in modules
importable without pytest.  Nothing here imports Keras or a backend.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_kerasfreeze.tracker import WeightTracker

MARKERS = (
    "frozen(*layers, atol=0.0, rtol=0.0): every fit()/train_on_batch() of the test on a "
    "model containing these layers must leave their weights unchanged (pytest-kerasfreeze)",
    "trains(*layers, atol=0.0, rtol=0.0): every fit()/train_on_batch() of the test on a "
    "model containing these layers must move their trainable weights (pytest-kerasfreeze)",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


@pytest.fixture
def weight_tracker() -> Iterator[WeightTracker]:
    """A :class:`~pytest_kerasfreeze.tracker.WeightTracker` for this test.

    Example::

        def test_base_stays(weight_tracker):
            with weight_tracker.watch(model) as d:
                model.fit(x, y, verbose=0)
            assert d.by_submodel()["base"][0] == 0
    """
    yield WeightTracker()
