"""The public :class:`TrainingPlan`: what ``explain(model)`` answers, and the checks
judged on it before any training.

Example::

    plan = predict(model, provenance=None)
    print(plan)                       # a table grouped by sub-model
    plan.assert_trains_only("head")   # FreezeAssertionError now, not after an epoch
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from pytest_kerasfreeze.engine.arguments import as_selectors
from pytest_kerasfreeze.engine.findings import Finding
from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.engine.messages import plan as plan_text
from pytest_kerasfreeze.engine.messages.reports import Expectation
from pytest_kerasfreeze.engine.prediction import PlanEntry, Prediction, plan_entries
from pytest_kerasfreeze.engine.provenance import Provenance
from pytest_kerasfreeze.engine.selection import ModelIndex
from pytest_kerasfreeze.engine.verdicts import Breach
from pytest_kerasfreeze.exceptions import FreezeAssertionError, KerasFreezeWarning

__all__ = ["PlanEntry", "TrainingPlan", "predict"]


class TrainingPlan:
    """What the model's next built-in training call (``fit``, ``train_on_batch``) will do
    on this Keras and backend, predicted without training and without changing the model.

    ``entries``: one :class:`PlanEntry` per selected weight; ``raises``: ``None``, or why
    the next ``fit()`` will raise, in one sentence; ``custom_step``: the model has a
    ``train_step`` of its own (the plan then follows the flags only); ``slot_bytes``:
    bytes of optimizer state held for selected weights that will not train; ``finding``:
    the compile-order trap behind it, if any (the same words as the runtime diagnosis).

    Example::

        plan = explain(model, "base", "head")
        assert plan.frozen() == ["base/dense/kernel", "base/dense/bias"]
        plan.assert_frozen("base")
    """

    def __init__(
        self,
        index: ModelIndex,
        entries: list[PlanEntry],
        selected: set[int],
        prediction: Prediction,
    ) -> None:
        self._index = index
        self._all = {id(v): e for v, e in zip(index.variables, entries, strict=True)}
        self.entries: list[PlanEntry] = [
            e for v, e in zip(index.variables, entries, strict=True) if id(v) in selected
        ]
        self._prediction = prediction
        self.model_name = index.name
        self.runtime: str = prediction.runtime
        self.raises: str | None = prediction.raises
        self.custom_step: bool = prediction.custom_step
        self.slot_bytes: int = prediction.slot_bytes
        self.finding: Finding | None = prediction.finding

    # -- answers -------------------------------------------------------------------
    def trains(self) -> list[str]:
        """Paths of the selected weights the next training call updates (model order)."""
        return [e.path for e in self.entries if e.will_train]

    def frozen(self) -> list[str]:
        """Paths of the selected weights the next training call leaves alone."""
        return [e.path for e in self.entries if not e.will_train]

    def predictions(self) -> dict[str, tuple[bool, str]]:
        """``{path: (will_train, why)}`` for the weights of the model whose fate is not
        what their flag says, or depends on the Keras (the ones a failure should explain)."""
        return {
            e.path: (e.will_train, e.why)
            for e in self._all.values()
            if e.declared_trainable
            and (e.will_train != e.flag or len(set(map(str, e.elsewhere.values()))) > 1)
        }

    # -- checks judged on the prediction --------------------------------------------
    def assert_frozen(self, *layers: Any, exclude: Any = ()) -> TrainingPlan:
        """Raise :class:`FreezeAssertionError` now if the next ``fit()`` would update a
        weight of ``layers`` (of the model if none).

        Example::

            explain(model).assert_frozen("base")
        """
        __tracebackhide__ = True
        return self._judge("frozen", layers, exclude, ())

    def assert_trains(self, *layers: Any, exclude: Any = ()) -> TrainingPlan:
        """Raise now unless the next ``fit()`` updates every declared-trainable weight of
        ``layers`` (of the model if none).

        Example::

            explain(model).assert_trains("head")
        """
        __tracebackhide__ = True
        return self._judge("trains", layers, exclude, ())

    def assert_trains_only(self, *layers: Any, allow: Any = (), exclude: Any = ()) -> TrainingPlan:
        """Raise now unless the next ``fit()`` updates every declared-trainable weight of
        ``layers`` and no other weight of the model (``allow``: weights outside that may).

        Example::

            explain(model).assert_trains_only("head", "*/lora_kernel_*")
        """
        __tracebackhide__ = True
        return self._judge("trains_only", layers, exclude, allow)

    def _judge(self, expect: str, layers: Sequence[Any], exclude: Any, allow: Any) -> TrainingPlan:
        __tracebackhide__ = True
        label = f"TrainingPlan.assert_{expect}"
        if self.custom_step:
            warnings.warn(
                KerasFreezeWarning(plan_text.custom_step_warning(label, self.model_name)),
                stacklevel=3,
            )
        index = self._index
        exclude = as_selectors(exclude)
        selected = [self._all[id(v)] for v in index.select(layers, exclude)]
        if expect != "frozen" and not any(e.declared_trainable for e in selected):
            raise ValueError(
                errors.no_declared_trainable(
                    label, index.describe(layers, exclude), self.model_name
                )
            )
        if self.raises:
            raise FreezeAssertionError(
                plan_text.plan_raises(label, self.model_name, self.raises, self.finding),
                findings=[self.finding] if self.finding else [],
            )
        halves: list[tuple[Breach, list[PlanEntry], list[PlanEntry]]] = []
        if expect != "frozen":
            pool = [e for e in selected if e.declared_trainable]
            halves.append((Breach.STUCK, [e for e in pool if not e.will_train], pool))
        if expect == "frozen":
            halves.append((Breach.MOVED, [e for e in selected if e.will_train], selected))
        if expect == "trains_only":
            inside = {e.path for e in selected}
            inside |= {index.info[id(v)].path for v in index.select_optional(as_selectors(allow))}
            outside = [e for e in self._all.values() if e.path not in inside]
            halves.append((Breach.MOVED, [e for e in outside if e.will_train], outside))
        failed = [h for h in halves if h[1]]
        if failed:
            expectation = Expectation(expect, tuple(layers), 0.0, 0.0, tuple(exclude))
            message = plan_text.plan_failure(
                label, self.model_name, self._prediction.here, expectation, failed, self.finding
            )
            raise FreezeAssertionError(message, findings=[self.finding] if self.finding else [])
        return self

    # -- output --------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the model, this Keras, ``raises``, ``custom_step``,
        ``slot_bytes``, every entry, and the trap finding (``json.dumps`` it).

        Example::

            json.dumps(explain(model).to_json())
        """
        return {
            "model": self.model_name,
            "runtime": self.runtime,
            "keras": self._prediction.here,
            "raises": self.raises,
            "custom_step": self.custom_step,
            "slot_bytes": self.slot_bytes,
            "trains": self.trains(),
            "entries": [e.to_dict() for e in self.entries],
            "finding": self.finding.to_dict() if self.finding else None,
        }

    def __str__(self) -> str:
        return plan_text.plan_table(
            self.model_name,
            self._prediction.here,
            self.entries,
            self.raises,
            self.custom_step,
            self.slot_bytes,
            self.finding,
        )

    def _repr_html_(self) -> str:
        """The plan as an HTML table, for notebooks."""
        return plan_text.plan_html(
            self.model_name, self._prediction.here, self.entries, self.raises, self.custom_step
        )

    def __repr__(self) -> str:
        state = "raises" if self.raises else f"trains {len(self.trains())} of {len(self.entries)}"
        return f"<TrainingPlan of model {self.model_name!r}: the next fit() {state}>"


def predict(
    model: Any,
    layers: Sequence[Any] = (),
    exclude: Any = (),
    provenance: Provenance | None = None,
) -> TrainingPlan:
    """The :class:`TrainingPlan` of ``model``'s next training call for the selected
    weights. ``provenance``: what was recorded, for ``set_at`` (``None``: nothing).

    Example::

        plan = predict(model, ["head"])
    """
    index, entries, selected, prediction = plan_entries(
        model, layers, as_selectors(exclude), provenance
    )
    return TrainingPlan(index, entries, selected, prediction)


def foresee(model: Any, provenance: Provenance | None) -> dict[str, tuple[bool, str]] | None:
    """``{path: (will_train, why)}`` for every weight of ``model``, for the failure
    message of a check about to watch a call; ``None`` where no plan can be made.

    Example::

        predicted = foresee(model, provenance)   # before model.fit(...)
    """
    try:
        return predict(model, provenance=provenance).predictions()
    except Exception:  # noqa: BLE001 - a plan that cannot be made must not break the check
        return None
