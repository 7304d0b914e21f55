"""One test's run: its markers, its ``weight_tracker``, and every training call it made."""

from __future__ import annotations

import difflib
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze.checklog import CheckLog, counts, note_unchecked, selector_text
from pytest_kerasfreeze.compat import flavor_of
from pytest_kerasfreeze.diagnosis import (
    Finding,
    detect_trap,
    diff_findings,
    merge,
    shared_findings,
)
from pytest_kerasfreeze.exceptions import CompileOrderWarning, FreezeAssertionError
from pytest_kerasfreeze.interception import Interception
from pytest_kerasfreeze.markers import MarkerSpec, parse_marker
from pytest_kerasfreeze.provenance import Provenance, current_state, frame_location, user_frame
from pytest_kerasfreeze.selection import ModelIndex
from pytest_kerasfreeze.snapshots import Snapshot
from pytest_kerasfreeze.tracker import TrainingRecord, WeightTracker

_MAX_PATHS = 15


@dataclass
class TrainedModel:
    """A model trained during the test, for the strict-marker message (held weakly)."""

    ref: weakref.ref[Any]
    name: str
    calls: dict[str, int] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    unbuilt_calls: int = 0

    def describe(self) -> str:
        calls = ", ".join(f"{m} ×{n}" for m, n in self.calls.items())
        if not self.paths:
            return (
                f"  {self.name!r} ({calls}): held no weights when training started, so "
                f"they could not be snapshotted; build it first (give it an Input, or call "
                f"it on one batch)"
            )
        shown = ", ".join(self.paths[:_MAX_PATHS])
        more = len(self.paths) - _MAX_PATHS
        return f"  {self.name!r} ({calls}): layers {shown}" + (
            f", ... {more} more" if more > 0 else ""
        )


class TestRun(CheckLog):
    """What the plugin does for one test: markers checked on every training call,
    records for the fixture, the diagnosis, and a log of every check for the reports.

    ``trap`` is what the compile-order trap does: "warn", "error" or "ignore".
    ``marks`` (optional) returns the test's ``frozen``/``trains`` marks as they are now,
    so marks added while the test runs (``request.applymarker``) are checked too.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        markers: list[MarkerSpec] | None = None,
        trap: str = "warn",
        marks: Callable[[], list[Any]] | None = None,
    ) -> None:
        super().__init__()
        self.markers = list(markers or [])
        self.trap = trap
        self._marks = marks
        self._specs_by_mark: dict[int, MarkerSpec] = {}
        self.tracker: WeightTracker | None = None
        self.trained: list[TrainedModel] = []
        self.provenance = Provenance()
        self.interception = Interception(self)
        # > 0 while a fixture of a wider scope than the test sets up or tears down: its
        # training is not the test's, so markers and records leave it alone
        self.wider_fixture = 0
        # marker violations raised in a thread other than the test's
        self.thread_failures: list[FreezeAssertionError] = []
        self._thread = threading.get_ident()
        self._in_call: set[int] = set()
        self._warned: set[tuple[int, str]] = set()  # (model, trap): warn once per trap
        self._started = False
        self.refresh_markers()

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> None:
        """Become the current log and observe Keras.

        A test with a marker imports Keras if needed; otherwise only the flavours already
        imported are observed, and with ``trap="ignore"`` and no marker nothing at all.
        """
        self.make_current()
        self._started = True
        self._thread = threading.get_ident()
        if self.markers or self.trap != "ignore":
            self.interception.install(import_missing=bool(self.markers))
        else:
            self.interception.suspend_enclosing()

    def refresh_markers(self) -> None:
        """Take in marks added since the last look (``request.applymarker``).

        Raises :class:`~pytest_kerasfreeze.markers.MarkerUsageError` for a bad one.
        """
        if self._marks is None:
            return
        for mark in self._marks():
            if id(mark) not in self._specs_by_mark:
                spec = parse_marker(mark.name, tuple(mark.args), dict(mark.kwargs))
                self._specs_by_mark[id(mark)] = spec
                self.markers.append(spec)
                if self._started and not self.interception.observing:
                    # a mark arrived in a test that was left alone so far
                    self.interception.uninstall()
                    self.interception.install()

    def attach_tracker(self, tracker: WeightTracker) -> None:
        self.tracker = tracker
        if not self.interception.observing:
            self.interception.uninstall()
            self.interception.install()

    def finish(self) -> None:
        """Undo every patch and stop being the current log (called in a ``finally``)."""
        try:
            self.interception.uninstall()
        finally:
            self.reset()
            self.tracker = None

    # -- observed events -----------------------------------------------------------
    def around_trainable(self, layer: Any, value: Any, call: Callable[[], Any]) -> Any:
        self.provenance.assign(layer, value, call)

    def around_compile(self, model: Any, call: Callable[[], Any]) -> Any:
        __tracebackhide__ = True
        result = call()
        if flavor_of(model) is not None:
            self.provenance.compiled(model)
        return result

    def _trained_entry(self, model: Any) -> TrainedModel:
        for entry in self.trained:
            if entry.ref() is model:
                return entry
        entry = TrainedModel(weakref.ref(model), str(model.name))
        self.trained.append(entry)
        return entry

    def around_training(self, model: Any, method: str, call: Callable[[], Any]) -> Any:
        __tracebackhide__ = True
        if id(model) in self._in_call:  # fit() inside fit() of the same model
            return call()
        flavor = flavor_of(model)
        if flavor is None:
            return self._run(model, call)
        self.refresh_markers()
        the_test = not self.wider_fixture  # not the set-up of a wider-scoped fixture
        entry = self._trained_entry(model) if the_test else None
        if entry is not None:
            entry.calls[method] = entry.calls.get(method, 0) + 1
        weights = flavor.weights(model)
        if not weights:  # built by this very call (no Input, a subclassed model)
            if entry is not None:
                entry.unbuilt_calls += 1
            building = getattr(model, "train_function", None) is None
            try:
                return self._run(model, call)
            finally:
                if building and getattr(model, "train_function", None) is not None:
                    state = current_state(model, "build", self.provenance.next_seq(), "")
                    self.provenance.build_started(model, state)
        index = ModelIndex(model, flavor, weights)
        plans = []
        if entry is not None:
            entry.paths = index.paths()
            entry.names = {n.name for n in index.nodes}
            plans = self._plans(index)  # may raise for an ambiguous selector: before training
        tracker = self.tracker if the_test else None
        frame = user_frame()
        trap, state_now = detect_trap(model, method, index, self.provenance, frame_location(frame))
        if trap is not None:
            self.add_finding(model, trap)
            self._report_trap(model, trap, frame)
        building = getattr(model, "train_function", None) is None
        before = None
        if plans or tracker is not None:
            variables = (
                index.variables
                if tracker is not None
                else index.select([s for _, selected in plans for s in selected])
            )
            before = Snapshot(index, variables)
        try:
            result = self._run(model, call)
        except Exception as err:
            if trap is not None:  # Keras raised over the trap (JAX, PyTorch): explain it
                _add_note(err, f"pytest-kerasfreeze: {trap}")
            raise
        finally:
            if building and getattr(model, "train_function", None) is not None:
                self.provenance.build_started(model, state_now)
        found = merge([trap] if trap else [], shared_findings(index, self.provenance))
        if before is None:
            for finding in found:
                self.add_finding(model, finding)
            return result
        diff = before.diff(before.retake())
        try:
            found = merge(found, diff_findings(diff))
            for finding in found:
                self.add_finding(model, finding)
            self._check_markers(plans, diff, found, f"{model.name}.{method}()")
        finally:
            if tracker is not None:
                self.tracker_record(tracker, model, method, diff, found)
            diff._release_values()  # a record keeps the figures, never the values
        return result

    def tracker_record(
        self, tracker: WeightTracker, model: Any, method: str, diff: Any, found: list[Finding]
    ) -> None:
        tracker.records.append(TrainingRecord(str(model.name), method, diff, found))
        self.records.append(
            {
                "model": str(model.name),
                "method": method,
                **counts(diff),
                "findings": [f.summary for f in found],
            }
        )

    def _check_markers(
        self,
        plans: list[tuple[MarkerSpec, list[Any]]],
        diff: Any,
        found: list[Finding],
        where: str,
    ) -> None:
        __tracebackhide__ = True
        failures = []
        for spec, selected in plans:
            spec.checks += 1
            try:
                diff.check(
                    spec.kind,
                    selected,
                    spec.atol,
                    spec.rtol,
                    source=spec.label,
                    call=where,
                    findings=found,
                )
            except FreezeAssertionError as err:
                failures.append(err)
        if failures:
            error = FreezeAssertionError(
                "\n\n".join(str(f) for f in failures),
                diff=failures[0].diff,
                findings=failures[0].findings,
            )
            if threading.get_ident() != self._thread:
                # raised in the training thread, where pytest does not look: the test
                # that owns the check fails when its call ends
                self.thread_failures.append(error)
            raise error

    def _report_trap(self, model: Any, trap: Finding, frame: Any) -> None:
        __tracebackhide__ = True
        text = f"{trap.summary}\n{trap.explanation}\nFix: {trap.fix}"
        if self.trap == "error":
            raise FreezeAssertionError(
                f"compile-order trap (--kerasfreeze-trap=error), nothing was trained:\n{text}",
                findings=[trap],
            )
        if self.trap == "warn" and (id(model), trap.summary) not in self._warned:
            self._warned.add((id(model), trap.summary))
            if frame is None:
                warnings.warn(CompileOrderWarning(text), stacklevel=3)
            else:
                warnings.warn_explicit(
                    CompileOrderWarning(text),
                    CompileOrderWarning,
                    frame.f_code.co_filename,
                    frame.f_lineno,
                    module=frame.f_globals.get("__name__"),
                )

    def _run(self, model: Any, call: Callable[[], Any]) -> Any:
        __tracebackhide__ = True
        self._in_call.add(id(model))
        try:
            return call()
        finally:
            self._in_call.discard(id(model))

    def _plans(self, index: ModelIndex) -> list[tuple[MarkerSpec, list[Any]]]:
        """For each marker, the selectors that select weights of this model."""
        plans = []
        for spec in self.markers:
            selected = []
            for i, selector in enumerate(spec.layers):
                layers = index.resolve(selector, missing_ok=True)
                if any(index.flavor.weights(layer) for layer in layers):
                    selected.append(selector)
                    spec.matched.add(i)
            if selected:
                plans.append((spec, selected))
        return plans

    # -- the end of the test -------------------------------------------------------
    def strict_failures(self) -> list[str]:
        """Messages for markers that checked nothing during the test (each also noted
        in the log, so the terminal section and the JSON show it)."""
        failures = []
        self.refresh_markers()
        for spec in self.markers:
            if spec.checks:
                continue
            if self.trained:
                trained = "Models trained in this test:\n" + "\n".join(
                    m.describe() for m in self.trained
                )
            else:
                trained = "No model was trained in this test: no fit() or train_on_batch() ran."
            message = (
                f"{spec.label} checked nothing: no model trained in this test holds a layer "
                f"with weights matching {selector_text(spec.layers)}.{self._did_you_mean(spec)}"
                f"\n{trained}\n"
                f"Fix the layer names of the marker, or train the model it is meant for."
            )
            failures.append(message)
            note_unchecked(spec.kind, spec.label, spec.layers, spec.atol, spec.rtol, message)
        return failures

    def _did_you_mean(self, spec: MarkerSpec) -> str:
        candidates = sorted(
            {name for m in self.trained for name in m.names}
            | {p for m in self.trained for p in m.paths}
        )
        hints = []
        for selector in spec.layers:
            if isinstance(selector, str):
                hints += difflib.get_close_matches(selector.strip("/"), candidates, n=3, cutoff=0.6)
        if not hints:
            return ""
        return " Did you mean " + " or ".join(repr(h) for h in dict.fromkeys(hints)) + "?"

    def partly_matched(self) -> list[str]:
        """Messages for selectors of a marker that matched while others did not."""
        return [
            f"{spec.label}: {selector_text(spec.unmatched())} matched no layer of any "
            f"model trained in this test"
            for spec in self.markers
            if spec.checks and spec.unmatched()
        ]


def _add_note(err: BaseException, note: str) -> None:
    """``err.add_note(note)``; on Python 3.10, the same ``__notes__`` list by hand."""
    if hasattr(err, "add_note"):
        err.add_note(note)
    else:  # pragma: no cover - Python 3.10
        notes = getattr(err, "__notes__", None) or []
        err.__notes__ = [*notes, note]  # type: ignore[attr-defined]
