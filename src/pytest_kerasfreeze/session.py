"""The per-test observer: markers checked on every training call, records for the
``weight_tracker`` fixture, and the diagnosis of every ``fit()`` / ``train_on_batch()``.

One :class:`TestObserver` per test. It owns the test's
:class:`~pytest_kerasfreeze.context.TestContext`, installs the
:class:`~pytest_kerasfreeze._keras.interception.Interception` for the test and takes it down
in ``finish()``.

Example::

    observer = TestObserver([parse_marker("frozen", ("base",), {})])
    observer.start()
    try:
        model.fit(x, y)          # checked: base must not move
    finally:
        observer.finish()
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_kerasfreeze import context
from pytest_kerasfreeze._keras import tracing
from pytest_kerasfreeze._keras.flavors import flavor_of, has_train_function
from pytest_kerasfreeze._keras.interception import Interception
from pytest_kerasfreeze.context import TestContext
from pytest_kerasfreeze.engine.attribution import Window
from pytest_kerasfreeze.engine.captures import Capture, resolve_mode
from pytest_kerasfreeze.engine.diagnosis import detect_trap, shared_findings
from pytest_kerasfreeze.engine.findings import Finding, merge
from pytest_kerasfreeze.engine.messages import errors, explain
from pytest_kerasfreeze.engine.optimizer_state import (
    SlotSnapshot,
    frozen_slots_finding,
    stale_moments_finding,
)
from pytest_kerasfreeze.engine.plan import foresee
from pytest_kerasfreeze.engine.provenance import (
    TrainableState,
    current_state,
    frame_location,
    user_frame,
)
from pytest_kerasfreeze.engine.results import CallRecord, CheckResult
from pytest_kerasfreeze.engine.selection import ModelIndex
from pytest_kerasfreeze.engine.weightdiff import WeightDiff
from pytest_kerasfreeze.exceptions import (
    CompileOrderWarning,
    FreezeAssertionError,
    LayerNotFoundError,
)
from pytest_kerasfreeze.markers import MarkerSpec, parse_marker
from pytest_kerasfreeze.modes import InferenceModeCheck
from pytest_kerasfreeze.tracker import TrainingRecord, WeightTracker

TrapMode = Literal["warn", "error", "ignore"]


@dataclass
class TrainedModel:
    """A model trained during the test, for the strict-marker message (held weakly)."""

    ref: weakref.ref[Any]
    name: str
    calls: dict[str, int] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    # ids of the weights that trained at its previous training call (stale moments)
    trainable: set[int] | None = None

    def describe(self) -> str:
        return errors.trained_model_line(self.name, self.calls, self.paths)


@dataclass
class _TrainingCall:
    """One observed training call, from what is decided before it runs to its verdict."""

    model: Any
    method: str
    where: str  # "gan.fit()", for the messages
    index: ModelIndex
    plans: list[tuple[MarkerSpec, list[Any]]] = field(default_factory=list)
    predicted: dict[str, tuple[bool, str]] | None = None
    trap: Finding | None = None
    state_found: list[Finding] = field(default_factory=list)
    modes: list[tuple[MarkerSpec, InferenceModeCheck]] = field(default_factory=list)
    slots: list[tuple[MarkerSpec, SlotSnapshot]] = field(default_factory=list)
    tracker: WeightTracker | None = None
    before: Capture | None = None
    window: Window | None = None  # the attribution window open over the call


class TestObserver:
    """What the plugin does for one test.

    ``trap`` is what the compile-order trap does: "warn", "error" or "ignore".
    ``marks`` (optional) returns the test's marks as they are now, so marks added while
    the test runs (``request.applymarker``) are checked too.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        markers: Sequence[MarkerSpec] = (),
        trap: TrapMode = "warn",
        marks: Callable[[], list[Any]] | None = None,
        quiet_unasked: bool = False,
    ) -> None:
        self.context = TestContext()
        # the default trap setting: a test that asks for no check (no marker, no
        # weight_tracker, no check open) is warned only where this Keras trains weights
        # contrary to their flags; a change honoured here goes to the reports only
        self.quiet_unasked = quiet_unasked
        self.markers = list(markers)
        self.trap = trap
        self._marks = marks
        self._specs_by_mark: dict[int, MarkerSpec] = {}
        self.tracker: WeightTracker | None = None
        self.trained: list[TrainedModel] = []
        self.interception = Interception(self)
        # > 0 while a fixture of a wider scope than the test sets up or tears down: its
        # training is not the test's, so markers and records leave it alone
        self.wider_fixture = 0
        # marker violations raised in a thread other than the test's
        self.thread_failures: list[FreezeAssertionError] = []
        self._thread = threading.get_ident()
        self._in_call: set[int] = set()
        self._warned: set[tuple[int, str]] = set()  # (model, trap): warn once per trap
        # inference_mode markers: what each traced train function showed
        self._mode_memory: dict[tuple[int, int], dict[int, list[int]]] = {}
        self._started = False
        self.refresh_markers()

    # -- life cycle ----------------------------------------------------------------
    def start(self, observe: bool = False) -> None:
        """Make the test's context current and observe Keras.

        A test with a marker (or ``observe``: :func:`~pytest_kerasfreeze.record`) imports
        Keras if needed; otherwise only the flavours already imported are observed, and
        with ``trap="ignore"`` and no marker nothing at all.
        """
        context.activate(self.context)
        self._started = True
        self._thread = threading.get_ident()
        if observe:
            self.interception.install(import_missing=True)
        elif self.markers or self.trap != "ignore":
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
            if id(mark) in self._specs_by_mark:
                continue
            spec = parse_marker(mark.name, tuple(mark.args), dict(mark.kwargs))
            self._specs_by_mark[id(mark)] = spec
            self.markers.append(spec)
            if self._started and not self.interception.observing:
                self.interception.uninstall()  # a test left alone so far: observe it now
                self.interception.install()

    def attach_tracker(self, tracker: WeightTracker) -> None:
        self.tracker = tracker
        if not self.interception.observing:
            self.interception.uninstall()
            self.interception.install()

    def finish(self) -> None:
        """Undo every patch and stop being current (called in a ``finally``)."""
        try:
            self.interception.uninstall()
        finally:
            context.deactivate(self.context)
            self.tracker = None

    # -- observed events -----------------------------------------------------------
    def around_trainable(self, layer: Any, value: Any, call: Callable[[], Any]) -> Any:
        self.context.provenance.assign(layer, value, call)

    def around_variable_trainable(self, variable: Any, value: Any, call: Callable[[], Any]) -> Any:
        self.context.provenance.assign_variable(variable, value, call)

    def around_optimizer_step(
        self,
        optimizer: Any,
        grads: Any,
        variables: Any,
        run: Callable[[Any, Any], Any],
        frame: Any,
    ) -> Any:
        __tracebackhide__ = True
        log = self.context.attribution
        if not log.listening or log.in_optimizer():
            return run(grads, variables)
        grads = list(grads)
        variables = None if variables is None else list(variables)
        log.enter_optimizer()
        try:
            result = run(grads, variables)
        finally:
            log.leave_optimizer()
        targets = variables if variables is not None else tracing.optimizer_variables(optimizer)
        updated = [id(v) for g, v in zip(grads, targets, strict=False) if g is not None]
        traced = tracing.under_trace(grads)
        gradients = tracing.gradient_kinds(grads, targets, traced)
        log.applied(optimizer, updated, tracing.optimizer_site(frame), traced, gradients)
        return result

    def after_assign(self, variable: Any, value: Any, frame: Any) -> None:
        log = self.context.attribution
        if not log.listening or log.in_optimizer():
            return
        found = tracing.classify_assign(frame)
        if found is not None:
            log.assigned(id(variable), *found, tracing.under_trace([value]))

    def around_add_weight(self, layer: Any, call: Callable[[], Any]) -> Any:
        __tracebackhide__ = True
        built = bool(getattr(layer, "built", False))
        variable = call()
        if built:  # a weight added to a layer that was built already (enable_lora)
            self.context.provenance.created(layer, variable)
        return variable

    def around_compile(self, model: Any, call: Callable[[], Any]) -> Any:
        __tracebackhide__ = True
        result = call()
        if flavor_of(model) is not None:
            self.context.provenance.compiled(model)
        return result

    def around_training(self, model: Any, method: str, call: Callable[[], Any]) -> Any:
        """One ``fit()`` / ``train_on_batch()``: find the trap and the plans before it
        runs, watch what it moves, judge the markers and record it after."""
        __tracebackhide__ = True
        flavor = flavor_of(model)
        if flavor is None or id(model) in self._in_call:  # fit() inside fit(): as is
            return call()
        self.refresh_markers()
        entry = None if self.wider_fixture else self._trained_entry(model)
        if entry is not None:
            entry.calls[method] = entry.calls.get(method, 0) + 1
        weights = flavor.weights(model)
        if not weights:  # built by this very call (no Input, a subclassed model)
            return self._run_building(model, call)
        training = _TrainingCall(
            model, method, f"{model.name}.{method}()", ModelIndex(model, flavor, weights)
        )
        state = self._before_training(training, entry)  # the flags as this call starts
        for _, check in training.modes:
            check.start()
        try:
            try:
                result = self.context.provenance.training_call(
                    model, state, lambda: self._run(model, call)
                )
            finally:
                for _, check in training.modes:
                    check.stop()
        except Exception as err:
            if training.window is not None:
                training.window.close({})
            if training.trap is not None:  # Keras raised over the trap (JAX, PyTorch): explain it
                _add_note(err, f"pytest-kerasfreeze: {training.trap}")
            raise
        self._after_training(training)
        return result

    def _run_building(self, model: Any, call: Callable[[], Any]) -> Any:
        """A training call on a model without weights yet: it builds the model (and its
        train function), so it is only run, and its build recorded for provenance."""
        __tracebackhide__ = True
        building = not has_train_function(model)
        try:
            return self._run(model, call)
        finally:
            if building and has_train_function(model):
                provenance = self.context.provenance
                provenance.build_started(
                    model, current_state(model, "build", provenance.next_seq(), "")
                )

    def _before_training(
        self, training: _TrainingCall, entry: TrainedModel | None
    ) -> TrainableState:
        """Everything decided before the weights move: the markers' plans (an ambiguous
        selector raises here, before training), the prediction, the trap (warned now),
        optimizer-state findings and slots, inference-mode checks, and the capture."""
        __tracebackhide__ = True
        model, index = training.model, training.index
        provenance = self.context.provenance
        if entry is not None:
            entry.paths = index.paths()
            entry.names = {n.name for n in index.nodes}
            training.plans = self._plans(index)
        if training.plans:
            training.predicted = foresee(model, provenance)  # before the flags move
        frame = user_frame()
        training.trap, state = detect_trap(
            model, training.method, index, provenance, frame_location(frame)
        )
        training.state_found = self._optimizer_state_findings(entry, index)
        if entry is not None:
            training.modes = self._mode_checks(model)
        training.slots = [
            (spec, SlotSnapshot(index, index.select(selected, spec.exclude)))
            for spec, selected in training.plans
            if spec.optimizer_state
        ]
        if training.trap is not None:
            self.context.add_finding(model, training.trap)
            self._report_trap(model, training.trap, frame)
        training.tracker = None if self.wider_fixture else self.tracker
        if training.plans or training.tracker is not None:
            whole = training.tracker is not None or any(
                s.kind == "trains_only" or s.whole_model for s, _ in training.plans
            )
            variables = (
                index.variables
                if whole
                else index.select([s for _, selected in training.plans for s in selected])
            )
            watched = index.flavor.total_nbytes(variables)
            mode = resolve_mode(self.context.mode, watched, self.context.digest_above)
            training.before = Capture(index, variables, observations=self.context, mode=mode)
            training.window = self.context.attribution.open([model])
        return state

    def _after_training(self, training: _TrainingCall) -> None:
        """After a training call that returned: inference modes, findings, the diff with
        its movers, the markers' verdicts, the record."""
        __tracebackhide__ = True
        model, index = training.model, training.index
        self._judge_modes(training.modes, training.where)
        found = merge(
            [training.trap] if training.trap else [],
            training.state_found,
            shared_findings(index, self.context.provenance),
        )
        if training.before is None or training.window is None:
            for finding in found:
                self.context.add_finding(model, finding)
            return
        before, window = training.before, training.window
        diff = WeightDiff(before, before.retake())
        moved = {id(v): c.moved for v, c in zip(before.variables, diff.changes, strict=True)}
        diff.attribute(window.close(moved), window.delays, window.gradients)
        try:
            found = merge(found, diff.diagnose())
            for finding in found:
                self.context.add_finding(model, finding)
            self._check_markers(
                model,
                training.plans,
                diff,
                found,
                training.where,
                training.slots,
                training.predicted,
            )
        finally:
            if training.tracker is not None:
                self._record(training.tracker, model, training.method, diff, found)
            diff.release_values()  # a record keeps the figures, never the values

    def _mode_checks(self, model: Any) -> list[tuple[MarkerSpec, InferenceModeCheck]]:
        """An inference-mode check for each ``inference_mode`` marker whose layers this
        model holds (markers that select no such layer here check other models)."""
        checks = []
        for spec in self.markers:
            if spec.kind != "inference_mode":
                continue
            try:
                check = InferenceModeCheck(
                    model, spec.layers, spec.exclude, self._mode_memory, spec.label
                )
            except (LayerNotFoundError, ValueError):
                continue
            spec.matched.update(range(len(spec.layers)))
            checks.append((spec, check))
        return checks

    def _judge_modes(self, modes: list[tuple[MarkerSpec, InferenceModeCheck]], where: str) -> None:
        __tracebackhide__ = True
        for spec, check in modes:
            spec.checks += 1
            check.call = where
            check.judge()

    def _optimizer_state_findings(
        self, entry: TrainedModel | None, index: ModelIndex
    ) -> list[Finding]:
        """Before a training call: state the optimizer keeps for frozen weights, and
        weights that start training again with moments left from an earlier phase."""
        if entry is None:
            return []
        now = {id(v) for v in index.flavor.trainable_weights(index.model)}
        found = []
        if entry.trainable is not None:
            stale = stale_moments_finding(index, now - entry.trainable)
            if stale is not None:
                found.append(stale)
        entry.trainable = now
        frozen = frozen_slots_finding(index, now)
        if frozen is not None:
            found.append(frozen)
        return found

    def _trained_entry(self, model: Any) -> TrainedModel:
        for entry in self.trained:
            if entry.ref() is model:
                return entry
        entry = TrainedModel(weakref.ref(model), str(model.name))
        self.trained.append(entry)
        return entry

    def _record(
        self,
        tracker: WeightTracker,
        model: Any,
        method: str,
        diff: WeightDiff,
        found: list[Finding],
    ) -> None:
        tracker.records.append(TrainingRecord(str(model.name), method, diff, found))
        changes = diff.changes
        self.context.add_record(
            CallRecord(
                model=str(model.name),
                method=method,
                moved=sum(c.moved for c in changes),
                total=len(changes),
                by_submodel=diff.by_submodel(),
                findings=[f.summary for f in found],
                movers={c.path: [str(m) for m in c.moved_by] for c in changes if c.moved_by},
            )
        )

    def _check_markers(
        self,
        model: Any,
        plans: list[tuple[MarkerSpec, list[Any]]],
        diff: WeightDiff,
        found: list[Finding],
        where: str,
        slots: Sequence[tuple[MarkerSpec, SlotSnapshot]] = (),
        predicted: dict[str, tuple[bool, str]] | None = None,
    ) -> None:
        __tracebackhide__ = True
        failures = []
        for spec, before in slots:  # optimizer_state=True: the slots must not change
            changed = before.changes(before.retake())
            if changed:
                header = errors.slots_changed(f"{spec.label} on {where}", model.name, len(changed))
                text = "\n".join([header, *explain.slot_changes(changed)])
                failures.append(FreezeAssertionError(text, diff=diff, findings=found))
        for spec, selected in plans:
            spec.checks += 1
            # a marker checks every model holding its layers: a by= name another model
            # holds is matched by name on this one
            by = None if spec.by is None else tracing.resolve_by(model, spec.by, strict=False)
            try:
                diff.check(
                    spec.kind,
                    selected,
                    exclude=spec.exclude,
                    allow=spec.allow,
                    by=by,
                    atol=spec.atol,
                    rtol=spec.rtol,
                    source="marker",
                    label=spec.label,
                    call=where,
                    findings=found,
                    predicted=predicted,
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
            raise FreezeAssertionError(errors.trap_error(text), findings=[trap])
        if self.quiet_unasked and trap.outcome != "ignored" and not self._asked():
            return  # honoured here (or Keras raises, with the note): nothing to warn about
        if self.trap == "warn" and (id(model), trap.summary) not in self._warned:
            self._warned.add((id(model), trap.summary))
            if frame is None:
                warnings.warn(CompileOrderWarning(text), stacklevel=4)
            else:
                warnings.warn_explicit(
                    CompileOrderWarning(text),
                    CompileOrderWarning,
                    frame.f_code.co_filename,
                    frame.f_lineno,
                    module=frame.f_globals.get("__name__"),
                )

    def _asked(self) -> bool:
        """Whether the test asked for a check: a marker, the ``weight_tracker``
        fixture, or a check or watch open now."""
        return bool(self.markers or self.tracker is not None or self.context.attribution.windows)

    def _run(self, model: Any, call: Callable[[], Any]) -> Any:
        __tracebackhide__ = True
        self._in_call.add(id(model))
        attribution = self.context.attribution
        attribution.call_started(model)  # a trace made now is remembered for later calls
        try:
            return call()
        finally:
            attribution.call_ended(model)
            self._in_call.discard(id(model))

    def _plans(self, index: ModelIndex) -> list[tuple[MarkerSpec, list[Any]]]:
        """For each marker, the selectors that select weights of this model."""
        plans: list[tuple[MarkerSpec, list[Any]]] = []
        for spec in self.markers:
            if spec.kind == "inference_mode":
                continue  # checked on the layers' modes (_mode_checks), not on weights
            if spec.whole_model:
                # exclude= alone checks the models that hold what it excludes
                if all(index.resolve(s, missing_ok=True) for s in spec.exclude):
                    plans.append((spec, []))
                continue
            selected = []
            for i, selector in enumerate(spec.layers):
                if index.resolve(selector, missing_ok=True):
                    selected.append(selector)
                    spec.matched.add(i)
            if selected:
                plans.append((spec, selected))
        return plans

    # -- the end of the test -------------------------------------------------------
    def strict_failures(self) -> list[str]:
        """Messages for markers that checked nothing during the test (each also noted
        in the results, so the terminal section and the JSON show it)."""
        failures = []
        self.refresh_markers()
        for spec in self.markers:
            if spec.checks:
                continue
            message = errors.checked_nothing(
                spec.label,
                spec.named,
                self._did_you_mean(spec),
                [m.describe() for m in self.trained],
            )
            if self.interception.import_error is not None:
                message = errors.keras_not_importable(self.interception.import_error) + message
            failures.append(message)
            self.context.add_check(
                CheckResult(
                    source="marker",
                    check=spec.label,
                    expect=spec.kind,
                    model=None,
                    moved=0,
                    total=0,
                    passed=False,
                    layers=[str(getattr(s, "name", s)) for s in spec.named],
                    atol=spec.atol,
                    rtol=spec.rtol,
                    failure=message,
                    checked_nothing=True,
                )
            )
        return failures

    def _did_you_mean(self, spec: MarkerSpec) -> str:
        candidates = [name for m in self.trained for name in m.names]
        candidates += [p for m in self.trained for p in m.paths]
        hints = [
            errors.did_you_mean(s.strip("/"), candidates) for s in spec.named if isinstance(s, str)
        ]
        return next((h for h in hints if h), "")

    def partly_matched(self) -> list[str]:
        """Messages for selectors of a marker that matched while others did not."""
        return [
            errors.partly_matched(spec.label, spec.unmatched())
            for spec in self.markers
            if spec.checks and spec.unmatched()
        ]


def _add_note(err: BaseException, note: str) -> None:
    """``err.add_note(note)``: the note shows under the user's own error (PEP 678)."""
    err.add_note(note)
