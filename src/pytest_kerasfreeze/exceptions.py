"""The exceptions and warnings of pytest-kerasfreeze (the bottom layer: imports nothing).

Example::

    from pytest_kerasfreeze import FreezeAssertionError

    try:
        diff.assert_frozen("base")
    except FreezeAssertionError as err:
        print(err.diff.by_submodel(), [f.kind for f in err.findings])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class FreezeAssertionError(AssertionError):
    """A freeze check failed: weights moved that should not have, or did not move.

    The message is the full report. ``.diff`` is the
    :class:`~pytest_kerasfreeze.WeightDiff` it was judged on (``None`` when the check
    failed before any training, e.g. the compile-order trap in ``error`` mode) and
    ``.findings`` the diagnosis (:class:`~pytest_kerasfreeze.Finding` entries).
    """

    def __init__(
        self, message: str, diff: Any = None, findings: Sequence[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.diff = diff
        self.findings = list(findings or [])


class MultiProcessError(RuntimeError):
    """A check in a multi-process run could not be combined: another process failed
    while checking, or did not reach the check in time. ``.process`` is its index."""

    def __init__(self, message: str, process: int | None = None) -> None:
        super().__init__(message)
        self.process = process


class LayerNotFoundError(LookupError):
    """A selector matched nothing, matched two different layers, or was empty."""


class KerasFreezeWarning(UserWarning):
    """Base class of the warnings of pytest-kerasfreeze."""


class CompileOrderWarning(KerasFreezeWarning):
    """``trainable`` flags changed after ``compile()``: what trains depends on the Keras."""


class FreezeViolationWarning(KerasFreezeWarning):
    """A :class:`~pytest_kerasfreeze.FreezeGuard` check failed with
    ``on_violation="warn"`` or ``"stop"``."""
