"""pytest-kerasfreeze: tell Keras users the truth about frozen layers.

Importing this package imports no Keras, TensorFlow, JAX or torch.
"""

from pytest_kerasfreeze.assertions import FreezeCheck, assert_frozen, assert_trains
from pytest_kerasfreeze.diff import WeightChange, WeightDiff
from pytest_kerasfreeze.exceptions import (
    CompileOrderWarning,
    FreezeAssertionError,
    LayerNotFoundError,
)
from pytest_kerasfreeze.snapshot import Snapshot, diff, snapshot
from pytest_kerasfreeze.tracker import TrainingRecord, WeightTracker

__all__ = [
    "CompileOrderWarning",
    "FreezeAssertionError",
    "FreezeCheck",
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
