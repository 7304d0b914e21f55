"""The object behind the ``weight_tracker`` fixture."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pytest_kerasfreeze.snapshots import Snapshot, snapshot
from pytest_kerasfreeze.weightdiff import WeightDiff


@dataclass
class TrainingRecord:
    """One ``fit()`` / ``train_on_batch()`` call observed during a test.

    ``findings`` holds the diagnosis entries (:class:`~pytest_kerasfreeze.diagnosis.Finding`)
    of that call: compile-order trap, shared weights, flag vs reality.
    """

    model: str
    method: str
    diff: WeightDiff
    findings: list[Any] = field(default_factory=list)


class Watch:
    """``with tracker.watch(model) as d:`` — ``d`` is a :class:`WeightDiff` filled on exit."""

    def __init__(self, model: Any, layers: tuple[Any, ...], atol: float, rtol: float) -> None:
        self._before = snapshot(model, *layers)
        self.diff = WeightDiff(self._before, atol=atol, rtol=rtol)

    def __enter__(self) -> WeightDiff:
        # Snapshot again on entry: code between watch() and `with` must not count.
        self._before = self._before.retake()
        self.diff = WeightDiff(self._before, atol=self.diff.atol, rtol=self.diff.rtol)
        return self.diff

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.diff._fill(self._before.retake())
            return
        # The block raised: still fill the diff for post-mortems, but never let a
        # problem here hide the user's exception.
        try:
            self.diff._fill(self._before.retake())
        except Exception:  # noqa: BLE001 - the user's exception is the one to see
            pass


class WeightTracker:
    """Snapshots, watched blocks and the record of every training call of one test.

    Example::

        def test_head_only(weight_tracker, model):
            with weight_tracker.watch(model) as d:
                model.fit(x, y, verbose=0)
            assert d.by_submodel()["base"] == (0, 4)
    """

    def __init__(self) -> None:
        self.records: list[TrainingRecord] = []

    def snapshot(self, model: Any, *layers: Any) -> Snapshot:
        """A :class:`Snapshot` of the weights of ``layers`` (all of ``model`` if none)."""
        return snapshot(model, *layers)

    def watch(self, model: Any, *layers: Any, atol: float = 0.0, rtol: float = 0.0) -> Watch:
        """A context manager yielding a :class:`WeightDiff` that is filled when it exits.

        Works around any training code: ``fit``, ``train_on_batch``, a custom
        ``GradientTape`` / JAX / torch loop.
        """
        return Watch(model, layers, atol, rtol)
