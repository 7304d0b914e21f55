"""The exceptions and warnings of pytest-kerasfreeze (importable without Keras)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_kerasfreeze.weightdiff import WeightDiff


class FreezeAssertionError(AssertionError):
    """A freeze check failed: weights moved that should not have, or did not move.

    The message is the full report; ``.diff`` is the :class:`WeightDiff` it was built
    from (``None`` when the check failed before any training, e.g. the compile-order
    trap in ``error`` mode), and ``.findings`` the diagnosis entries.
    """

    def __init__(
        self, message: str, diff: WeightDiff | None = None, findings: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.diff = diff
        self.findings = list(findings or [])


class LayerNotFoundError(LookupError):
    """A layer selector matched nothing, matched two different layers, or was empty."""


class KerasFreezeWarning(UserWarning):
    """Base class of the warnings of pytest-kerasfreeze."""


class CompileOrderWarning(KerasFreezeWarning):
    """``trainable`` flags changed after ``compile()``: what trains depends on the Keras."""
