"""The object behind the ``weight_tracker`` fixture: watched blocks and the record of
every training call of one test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze.checks import Watch, snapshot
from pytest_kerasfreeze.engine.captures import Mode
from pytest_kerasfreeze.engine.findings import Finding
from pytest_kerasfreeze.engine.snapshots import Snapshot
from pytest_kerasfreeze.engine.weightdiff import WeightDiff


@dataclass
class TrainingRecord:
    """One ``fit()`` / ``train_on_batch()`` call observed during a test.

    ``diff`` is a :class:`WeightDiff` of the whole model over that call (it keeps the
    figures, not the values: a record costs no copy of the model); ``findings`` the
    diagnosis of the call (:class:`Finding`: compile-order trap, shared weights, flag
    vs reality, ...).

    Example::

        record = weight_tracker.records[0]
        assert (record.model, record.method) == ("clf", "fit")
        assert record.diff.by_submodel()["base"] == (0, 2)
    """

    model: str
    method: str
    diff: WeightDiff
    findings: list[Finding] = field(default_factory=list)


class WeightTracker:
    """Snapshots, watched blocks and the record of every training call of one test.

    Example::

        def test_head_only(weight_tracker, model):
            with weight_tracker.watch(model) as d:
                model.fit(x, y, verbose=0)
            assert d.by_submodel()["base"] == (0, 4)
            assert weight_tracker.records[0].model == model.name
    """

    def __init__(self) -> None:
        self.records: list[TrainingRecord] = []

    def snapshot(
        self, model: Any, *layers: Any, exclude: Any = (), mode: Mode | None = None
    ) -> Snapshot:
        """A :class:`Snapshot` of the selected weights (all of ``model`` if none)."""
        return snapshot(model, *layers, exclude=exclude, mode=mode)

    def watch(
        self,
        model: Any,
        *layers: Any,
        exclude: Any = (),
        atol: float = 0.0,
        rtol: float = 0.0,
        mode: Mode | None = None,
    ) -> Watch:
        """A context manager yielding a :class:`WeightDiff` that is filled when it exits.

        Works around any training code: ``fit``, ``train_on_batch``, a custom
        ``GradientTape`` / JAX / torch loop.

        Example::

            with weight_tracker.watch(model, "encoder") as d:
                for batch in batches:
                    train_step(model, batch)
            assert d.moved() == []
        """
        return Watch(model, layers, exclude=exclude, atol=atol, rtol=rtol, mode=mode)
