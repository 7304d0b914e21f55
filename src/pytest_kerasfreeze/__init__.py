"""pytest-kerasfreeze: tell Keras users the truth about frozen layers.

Importing this package imports nothing heavy (no numpy, Keras, TensorFlow, JAX or
torch): the public names below are loaded on first use, so the pytest plugin, which
lives in this package, loads in milliseconds.

Example::

    from pytest_kerasfreeze import assert_trains_only

    with assert_trains_only(model, "head"):
        model.fit(x, y)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pytest_kerasfreeze.exceptions import (
    CompileOrderWarning,
    FreezeAssertionError,
    FreezeViolationWarning,
    KerasFreezeWarning,
    LayerNotFoundError,
    MultiProcessError,
)

__version__ = "0.2.0"

if TYPE_CHECKING:
    from pytest_kerasfreeze.checks import (
        FreezeCheck,
        assert_frozen,
        assert_trains,
        assert_trains_only,
        explain,
        snapshot,
    )
    from pytest_kerasfreeze.engine.changes import Mover, WeightChange
    from pytest_kerasfreeze.engine.findings import Finding
    from pytest_kerasfreeze.engine.plan import PlanEntry, TrainingPlan
    from pytest_kerasfreeze.engine.snapshots import Snapshot, diff
    from pytest_kerasfreeze.engine.weightdiff import WeightDiff
    from pytest_kerasfreeze.guard import FreezeGuard, GuardCheck
    from pytest_kerasfreeze.modes import InferenceModeCheck, assert_inference_mode
    from pytest_kerasfreeze.recording import Recording, record
    from pytest_kerasfreeze.reload import ReloadReport, assert_reload_trains_the_same
    from pytest_kerasfreeze.tracker import TrainingRecord, WeightTracker

_LAZY = {
    "FreezeCheck": "checks",
    "FreezeGuard": "guard",
    "GuardCheck": "guard",
    "assert_frozen": "checks",
    "assert_trains": "checks",
    "assert_trains_only": "checks",
    "snapshot": "checks",
    "assert_reload_trains_the_same": "reload",
    "assert_inference_mode": "modes",
    "InferenceModeCheck": "modes",
    "ReloadReport": "reload",
    "explain": "checks",
    "PlanEntry": "engine.plan",
    "TrainingPlan": "engine.plan",
    "Recording": "recording",
    "record": "recording",
    "Finding": "engine.findings",
    "Mover": "engine.changes",
    "WeightChange": "engine.changes",
    "WeightDiff": "engine.weightdiff",
    "Snapshot": "engine.snapshots",
    "diff": "engine.snapshots",
    "TrainingRecord": "tracker",
    "WeightTracker": "tracker",
}

__all__ = [
    "CompileOrderWarning",
    "Finding",
    "FreezeAssertionError",
    "FreezeCheck",
    "FreezeGuard",
    "FreezeViolationWarning",
    "GuardCheck",
    "InferenceModeCheck",
    "KerasFreezeWarning",
    "LayerNotFoundError",
    "Mover",
    "MultiProcessError",
    "PlanEntry",
    "Recording",
    "ReloadReport",
    "Snapshot",
    "TrainingPlan",
    "TrainingRecord",
    "WeightChange",
    "WeightDiff",
    "WeightTracker",
    "__version__",
    "assert_frozen",
    "assert_inference_mode",
    "assert_reload_trains_the_same",
    "assert_trains",
    "assert_trains_only",
    "diff",
    "explain",
    "record",
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
