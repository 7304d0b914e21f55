"""The checks a test writes: ``assert_frozen``, ``assert_trains``, ``assert_trains_only``,
the public ``snapshot()``, and ``explain()``, the prediction made before training.

This is the user-facing layer: the snapshots it takes carry the current test's context
(:mod:`pytest_kerasfreeze.context`), so their checks are reported and diagnosed with
the test's provenance; outside a test they work the same, with none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any, overload

from pytest_kerasfreeze import context
from pytest_kerasfreeze._keras import tracing
from pytest_kerasfreeze.engine.arguments import as_selectors, check_tolerances
from pytest_kerasfreeze.engine.attribution import Window
from pytest_kerasfreeze.engine.captures import Mode, resolve
from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.engine.messages import explain as words
from pytest_kerasfreeze.engine.optimizer_state import SlotSnapshot, frozen_slots_finding
from pytest_kerasfreeze.engine.plan import TrainingPlan, foresee, predict
from pytest_kerasfreeze.engine.results import Expect
from pytest_kerasfreeze.engine.snapshots import Snapshot, take
from pytest_kerasfreeze.engine.weightdiff import WeightDiff
from pytest_kerasfreeze.exceptions import FreezeAssertionError


def _defaults(mode: Mode | None) -> tuple[context.TestContext | None, Mode, int | None]:
    """The test's context, the mode (``kerasfreeze_mode`` when not given) and the
    ``kerasfreeze_digest_above`` threshold a snapshot taken now is taken with."""
    ctx = context.current()
    chosen: Mode = mode or (ctx.mode if ctx is not None else "auto")
    return ctx, chosen, ctx.digest_above if ctx is not None else None


def _taking(model: Any, layers: Sequence[Any], exclude: Any, mode: Mode | None) -> Snapshot:
    """A snapshot with the test's context and its default mode (``kerasfreeze_mode``)."""
    ctx, chosen, above = _defaults(mode)
    return take(model, layers, exclude, observations=ctx, mode=chosen, digest_above=above)


def snapshot(model: Any, *layers: Any, exclude: Any = (), mode: Mode | None = None) -> Snapshot:
    """Keep the current values of the selected weights (all of ``model`` if none).

    ``layers`` are layer names, ``a/b`` paths, weight paths, globs, or Layer/variable
    objects of ``model``; ``exclude`` takes the same. Only the selection is kept:
    ``mode="copy"`` its values, ``"digest"`` a hash and a norm per weight (O(1) memory,
    no host copy), ``"auto"`` (the default, or ini ``kerasfreeze_mode``) copies unless
    the watched bytes exceed ``kerasfreeze_digest_above`` (a quarter of the memory
    available by default).

    Example::

        before = snapshot(model, "encoder", exclude="*/bias")
        train(model)
        assert not diff(before, before.retake()).moved()
    """
    return _taking(model, layers, exclude, mode)


def explain(model: Any, *layers: Any, exclude: Any = ()) -> TrainingPlan:
    """What the model's next ``fit()`` / ``train_on_batch()`` will train on this Keras
    and backend, for the selected weights (all of the model's if none): a
    :class:`~pytest_kerasfreeze.engine.plan.TrainingPlan`. Nothing is trained, nothing about
    the model changes, no value is read.

    In a test (or under :func:`~pytest_kerasfreeze.record`) each entry's ``set_at`` names
    the line that set its flag; elsewhere it is ``None`` and the plan still follows the
    model's own state (compiled flags, train function, optimizer).

    Example::

        plan = explain(model)
        print(plan)                    # grouped by sub-model, with why and elsewhere
        plan.assert_trains_only("head")
    """
    __tracebackhide__ = True
    ctx = context.current()
    return predict(model, layers, exclude, ctx.provenance if ctx is not None else None)


class Watch:
    """Snapshot on entry, diff on exit: ``with Watch(model) as d:`` — ``d`` is a
    :class:`WeightDiff`, filled when the block exits (also when it raises, for
    post-mortems; the block's exception always propagates unchanged).

    Example::

        with Watch(model, "base") as d:
            model.fit(x, y)
        assert d.by_submodel()["base"][0] == 0
    """

    def __init__(
        self,
        model: Any,
        layers: Sequence[Any] = (),
        *,
        exclude: Any = (),
        atol: float = 0.0,
        rtol: float = 0.0,
        mode: Mode | None = None,
    ) -> None:
        self.model = model
        self.layers = tuple(layers)
        self.exclude = as_selectors(exclude)
        self.atol, self.rtol = check_tolerances(atol, rtol)
        # Resolve the selectors and the mode now, so a typo fails before any training;
        # the values are read once, on entry: code between creating the watch and
        # `with` must not count.
        ctx, chosen, above = _defaults(mode)
        self._observations = ctx
        self._watched = (self.layers, self.exclude)  # what the snapshots say they hold
        self._index, self._variables, self._mode = resolve(
            model, self.layers, self.exclude, chosen, above
        )
        if self._mode == "digest" and (self.atol or self.rtol):
            raise ValueError(errors.digest_has_no_values(str(model.name)))
        self._before: Snapshot | None = None
        self._open = WeightDiff(None, atol=self.atol, rtol=self.rtol)
        self.diff: WeightDiff | None = self._open
        self._mark = 0
        self._window: Window | None = None

    def _snapshot(self) -> Snapshot:
        """The selection's values now (the only place a watch reads them first)."""
        return Snapshot(
            self._index,
            self._variables,
            *self._watched,
            observations=self._observations,
            mode=self._mode,
        )

    def _start(self) -> None:
        self._before = self._snapshot()
        self._open = WeightDiff(self._before, atol=self.atol, rtol=self.rtol)
        ctx = context.current()
        self._mark = ctx.mark() if ctx is not None else 0
        # who moves what meanwhile (optimizers, forward passes, callbacks): in a test only
        self._window = ctx.attribution.open([self.model]) if ctx is not None else None

    def _finish(self) -> None:
        """Fill the diff and say who moved each weight."""
        before = self._before
        assert before is not None, "a watch is finished after it started"
        self._open.fill(before.retake())
        if self._window is not None:
            changes = self._open.changes
            moved = {id(v): c.moved for v, c in zip(before.variables, changes, strict=True)}
            window = self._window
            self._open.attribute(window.close(moved), window.delays, window.gradients)
            self._window = None

    def _abandon(self) -> None:
        if self._window is not None:
            self._window.close({})
            self._window = None

    def __enter__(self) -> Any:
        self._start()
        self.diff = self._open
        return self._open

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._finish()
            return
        # The block raised: still fill the diff for post-mortems, but never let a
        # problem here hide the user's exception.
        with contextlib.suppress(Exception):
            self._finish()
        self._abandon()


class FreezeCheck(Watch):
    """A check around a block of code: snapshot on entry, compare and judge on exit.

    ``assert_frozen(model, ...)``, ``assert_trains(...)`` and ``assert_trains_only(...)``
    return one when no ``x`` is given. After the block, ``.diff`` holds the filled
    :class:`WeightDiff`, whether the check passed or raised. An exception raised inside
    the block propagates unchanged and nothing is checked.

    Example::

        with assert_frozen(model, "base") as check:
            model.fit(x, y)
        print(check.diff.report())
    """

    def __init__(
        self,
        expect: Expect,
        model: Any,
        layers: Sequence[Any],
        *,
        exclude: Any = (),
        allow: Any = (),
        by: Any = None,
        atol: float = 0.0,
        rtol: float = 0.0,
        mode: Mode | None = None,
        optimizer_state: bool = False,
    ) -> None:
        self.by = by
        if not isinstance(optimizer_state, bool):
            raise TypeError(errors.optimizer_state_bool(optimizer_state))
        self.optimizer_state = optimizer_state
        self._slots: SlotSnapshot | None = None
        # resolved now: a by= that names no optimizer fails before any training
        self._by = None if by is None else tracing.resolve_by(model, by)
        if expect == "trains_only":  # the other half is "nothing else moves": watch it all
            super().__init__(model, (), atol=atol, rtol=rtol, mode=mode)
            self.layers, self.exclude = tuple(layers), as_selectors(exclude)
            # typos fail now
            self._selected = self._index.select(self.layers, self.exclude)
        else:
            super().__init__(model, layers, exclude=exclude, atol=atol, rtol=rtol, mode=mode)
            self._selected = self._variables
        self.diff = None  # the judged diff, once a block passed
        self._predicted: dict[str, tuple[bool, str]] | None = None
        self.expect = expect
        self.allow = as_selectors(allow)
        if self.allow:  # resolve now: a typo fails before any training
            self._index.select_optional(self.allow)
        info = self._index.info
        if expect != "frozen" and not any(info[id(v)].declared_trainable for v in self._selected):
            raise ValueError(
                errors.no_declared_trainable(
                    f"assert_{expect}",
                    self._index.describe(self.layers, self.exclude),
                    str(model.name),
                )
            )

    def _start(self) -> None:
        # what the plan foresees for the call to come: its *why*s go into a failure
        ctx = context.current()
        provenance = ctx.provenance if ctx is not None else None
        self._predicted = foresee(self.model, provenance, self._index)
        super()._start()
        if self.optimizer_state:  # the slots of the selected weights, hashed now
            self._slots = SlotSnapshot(self._index, self._selected)

    def __enter__(self) -> FreezeCheck:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        if exc_type is not None:
            self._abandon()
            return None  # the user's exception goes on untouched
        self._finish()
        self.diff = self._open  # filled whether the judgement passes or raises
        self.diff = self._judge(self._open)
        return None

    def _judge(self, filled: WeightDiff) -> WeightDiff:
        __tracebackhide__ = True
        ctx = context.current()
        # what the diagnosis found on the training calls made on this model meanwhile
        found = ctx.findings_for(self.model, self._mark) if ctx is not None else []
        slots_finding = frozen_slots_finding(self._index, set(self._trainable_now(filled)))
        if slots_finding is not None:
            found = [*found, slots_finding]
        slots = self._slots.changes(self._slots.retake()) if self._slots is not None else []
        try:
            judged = filled.check(
                self.expect,
                self.layers,
                exclude=self.exclude,
                allow=self.allow,
                by=self._by,
                atol=self.atol,
                rtol=self.rtol,
                source="helper",
                label=f"assert_{self.expect}",
                findings=found,
                predicted=self._predicted,
            )
        except FreezeAssertionError as err:
            if slots:  # both halves: the weights and their optimizer state
                raise FreezeAssertionError(
                    "\n".join([str(err), "", *words.slot_changes(slots)]),
                    diff=err.diff,
                    findings=err.findings,
                ) from None
            raise
        if slots:
            raise FreezeAssertionError(
                errors.slots_changed(f"assert_{self.expect}", self.model.name, len(slots))
                + "\n"
                + "\n".join(words.slot_changes(slots)),
                diff=judged,
                findings=list(found),
            )
        return judged

    def _trainable_now(self, filled: WeightDiff) -> list[int]:
        """The ids of the model's weights that train now."""
        index = self._index
        changes = filled.changes
        if len(changes) == len(index.variables):  # the check read every weight's flag just now
            return [id(v) for v, c in zip(index.variables, changes, strict=True) if c.trainable]
        now = index.flavor.trainable_now(index.model, index.variables)  # Keras' rule: no walk
        return [id(v) for v, on in zip(index.variables, now, strict=True) if on]

    def run_fit(self, x: Any, y: Any, fit_kwargs: dict[str, Any]) -> WeightDiff:
        """Snapshot, ``model.fit(x, y, verbose=0, **fit_kwargs)``, snapshot, judge."""
        __tracebackhide__ = True
        self._start()
        try:
            self.model.fit(x, y, **{"verbose": 0, **fit_kwargs})
        except BaseException:
            self._abandon()
            raise
        self._finish()
        judged = self.diff = self._judge(self._open)
        return judged


def _check(
    expect: Expect,
    model: Any,
    layers: Sequence[Any],
    x: Any,
    y: Any,
    fit_kwargs: dict[str, Any],
    **options: Any,
) -> Any:
    __tracebackhide__ = True
    check = FreezeCheck(expect, model, layers, **options)
    if x is None:
        if y is not None or fit_kwargs:
            given = (["y"] if y is not None else []) + sorted(fit_kwargs)
            raise TypeError(errors.fit_arguments_without_x(f"assert_{expect}", given))
        return check
    return check.run_fit(x, y, fit_kwargs)


@overload
def assert_frozen(
    model: Any,
    *layers: Any,
    x: None = None,
    y: None = None,
    exclude: Any = (),
    by: Any = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
    optimizer_state: bool = False,
) -> FreezeCheck: ...
@overload
def assert_frozen(
    model: Any,
    *layers: Any,
    x: Any,
    y: Any = None,
    exclude: Any = (),
    by: Any = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
    optimizer_state: bool = False,
    **fit_kwargs: Any,
) -> WeightDiff: ...
def assert_frozen(
    model: Any,
    *layers: Any,
    x: Any = None,
    y: Any = None,
    exclude: Any = (),
    by: Any = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
    optimizer_state: bool = False,
    **fit_kwargs: Any,
) -> Any:
    """Check that no selected weight (none of the model's if no selector) moves — or,
    with ``by`` (an optimizer, or the name of the model attribute holding it, like
    ``"g_optimizer"``), that this optimizer updates none of them, whatever else does.

    Without ``x``, returns a context manager that snapshots on entry and raises
    :class:`FreezeAssertionError` on a normal exit if a selected weight moved. With
    ``x`` (and ``y``), calls ``model.fit(x, y, verbose=0, **fit_kwargs)`` itself and
    returns the :class:`WeightDiff` when the check passes.

    Example::

        with assert_frozen(model, "base"):
            model.fit(x, y, epochs=1)

        diff = assert_frozen(model, exclude="head", x=x, y=y, epochs=2)

        with assert_frozen(gan, "discriminator", by="g_optimizer"):
            gan.fit(images)   # the discriminator trains, but never by the generator's

        with assert_frozen(model, "base", optimizer_state=True):
            model.fit(x, y)   # nor may the optimizer's momenta/moments of the base change
    """
    __tracebackhide__ = True
    return _check(
        "frozen",
        model,
        layers,
        x,
        y,
        fit_kwargs,
        exclude=exclude,
        by=by,
        atol=atol,
        rtol=rtol,
        mode=mode,
        optimizer_state=optimizer_state,
    )


@overload
def assert_trains(
    model: Any,
    *layers: Any,
    x: None = None,
    y: None = None,
    exclude: Any = (),
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
) -> FreezeCheck: ...
@overload
def assert_trains(
    model: Any,
    *layers: Any,
    x: Any,
    y: Any = None,
    exclude: Any = (),
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
    **fit_kwargs: Any,
) -> WeightDiff: ...
def assert_trains(
    model: Any,
    *layers: Any,
    x: Any = None,
    y: Any = None,
    exclude: Any = (),
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
    **fit_kwargs: Any,
) -> Any:
    """Check that every declared-trainable weight of the selection (of the model if
    none) moves.

    "Declared trainable" is what the layer created as a trainable weight (kernels,
    biases, embeddings, BatchNormalization gamma/beta), whatever its flag says now;
    moving statistics and other non-trainable state are not required to move. Same two
    forms as :func:`assert_frozen`.

    Example::

        with assert_trains(model, "head"):
            model.fit(x, y)
    """
    __tracebackhide__ = True
    return _check(
        "trains", model, layers, x, y, fit_kwargs, exclude=exclude, atol=atol, rtol=rtol, mode=mode
    )


@overload
def assert_trains_only(
    model: Any,
    *layers: Any,
    allow: Any = (),
    x: None = None,
    y: None = None,
    exclude: Any = (),
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
) -> FreezeCheck: ...
@overload
def assert_trains_only(
    model: Any,
    *layers: Any,
    allow: Any = (),
    x: Any,
    y: Any = None,
    exclude: Any = (),
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
    **fit_kwargs: Any,
) -> WeightDiff: ...
def assert_trains_only(
    model: Any,
    *layers: Any,
    allow: Any = (),
    x: Any = None,
    y: Any = None,
    exclude: Any = (),
    atol: float = 0.0,
    rtol: float = 0.0,
    mode: Mode | None = None,
    **fit_kwargs: Any,
) -> Any:
    """The fine-tuning invariant in one check: every declared-trainable weight of the
    selection moves, **and no other weight of the model moves**.

    Non-trainable state inside the selection (the head's BatchNormalization moving
    statistics) may move; ``allow`` selects weights outside the selection that may move
    without being required to (``allow="*/moving_*"``). Same two forms as
    :func:`assert_frozen`; a failure lists both halves, grouped by sub-model.

    Example::

        with assert_trains_only(model, "head", "*/lora_kernel_*"):
            model.fit(x, y)
    """
    __tracebackhide__ = True
    return _check(
        "trains_only",
        model,
        layers,
        x,
        y,
        fit_kwargs,
        exclude=exclude,
        allow=allow,
        atol=atol,
        rtol=rtol,
        mode=mode,
    )
