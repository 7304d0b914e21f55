"""pytest-kerasfreeze: tell Keras users the truth about frozen layers.

Importing this package imports nothing heavy (no numpy, Keras, TensorFlow, JAX or
torch): the public names below are loaded on first use, so the pytest plugin, which
lives in this package, loads in milliseconds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_kerasfreeze.exceptions import (
    CompileOrderWarning,
    FreezeAssertionError,
    KerasFreezeWarning,
    LayerNotFoundError,
)

if TYPE_CHECKING:
    from pytest_kerasfreeze.assertions import FreezeCheck, assert_frozen, assert_trains
    from pytest_kerasfreeze.diagnosis import Finding
    from pytest_kerasfreeze.snapshots import Snapshot, diff, snapshot
    from pytest_kerasfreeze.tracker import TrainingRecord, WeightTracker
    from pytest_kerasfreeze.weightdiff import WeightChange, WeightDiff

_LAZY = {
    "FreezeCheck": "assertions",
    "assert_frozen": "assertions",
    "assert_trains": "assertions",
    "Finding": "diagnosis",
    "WeightChange": "weightdiff",
    "WeightDiff": "weightdiff",
    "Snapshot": "snapshots",
    "diff": "snapshots",
    "snapshot": "snapshots",
    "TrainingRecord": "tracker",
    "WeightTracker": "tracker",
}

__all__ = [
    "CompileOrderWarning",
    "Finding",
    "FreezeAssertionError",
    "FreezeCheck",
    "KerasFreezeWarning",
    "LayerNotFoundError",
    "Snapshot",
    "TrainingRecord",
    "WeightChange",
    "WeightDiff",
    "WeightTracker",
    "assert_frozen",
    "assert_trains",
    "diff",
    "snapshot",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_kerasfreeze' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_kerasfreeze.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
