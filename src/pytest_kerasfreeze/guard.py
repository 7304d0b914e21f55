"""``FreezeGuard``: the plugin's checks as a Keras callback, for real training runs.

Usable outside pytest, with Keras 3 on every backend and with tf_keras: it snapshots the
model at ``on_train_begin`` and checks at every epoch end (``every="epoch"``) or every N
training batches (``every=N``), against the state at the start of training.

Example::

    guard = FreezeGuard(frozen="backbone", trains="head", on_violation="stop")
    model.fit(x, y, epochs=10, callbacks=[guard])
    assert all(check.passed for check in guard.results)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

from pytest_kerasfreeze import context
from pytest_kerasfreeze._keras.flavors import callback_bases
from pytest_kerasfreeze._keras.tracing import synced_model
from pytest_kerasfreeze.engine.arguments import as_selectors, check_tolerances
from pytest_kerasfreeze.engine.captures import MODES, Mode
from pytest_kerasfreeze.engine.messages import errors, selector_text
from pytest_kerasfreeze.engine.results import Expect
from pytest_kerasfreeze.engine.snapshots import Snapshot, take
from pytest_kerasfreeze.engine.weightdiff import WeightDiff
from pytest_kerasfreeze.exceptions import FreezeAssertionError, FreezeViolationWarning

OnViolation = Literal["raise", "warn", "stop"]
_ON_VIOLATION = ("raise", "warn", "stop")


@dataclass
class GuardCheck:
    """One check a :class:`FreezeGuard` made: when, whether it passed, on which diff
    (against the start of training), and the failure message if it did not."""

    epoch: int
    step: int | None  # the batch within the epoch (every=N), None at an epoch end
    passed: bool
    diff: WeightDiff
    failure: str | None = None


class FreezeGuard:
    """A Keras callback that checks freezes while a model trains.

    An instance is a ``keras.callbacks.Callback`` (and a ``tf_keras`` one where tf_keras
    is in use): the class made on first use subclasses the ``Callback`` of the Keras in
    use, so loading the plugin imports no Keras.

    ``frozen`` selections must not move, every declared-trainable weight of ``trains``
    must move, and with ``trains_only`` those must move and nothing else may (``allow``:
    weights outside it that may). Selectors are those of the helpers (layer names and
    paths, weight paths, globs, objects); ``exclude`` applies to every one of them.
    ``on_violation``: ``"raise"`` (:class:`FreezeAssertionError` out of ``fit()``),
    ``"warn"`` (:class:`FreezeViolationWarning`), ``"stop"`` (``model.stop_training =
    True``, and warn). ``results`` lists every check made.

    Example::

        guard = FreezeGuard(trains_only=["head", "*/lora_kernel_*"], allow="*/bias")
        model.fit(dataset, epochs=3, callbacks=[guard])
    """

    # tf_keras' CallbackList asks every callback these
    _supports_tf_logs = False
    _chief_worker_only = None

    def __new__(cls, *args: Any, **kwargs: Any) -> FreezeGuard:
        return object.__new__(_callback_class(cls))

    def __init__(
        self,
        frozen: Any = (),
        trains: Any = (),
        trains_only: Any = None,
        allow: Any = (),
        every: Literal["epoch"] | int = "epoch",
        on_violation: OnViolation = "raise",
        mode: Mode = "auto",
        exclude: Any = (),
        atol: float = 0.0,
        rtol: float = 0.0,
    ) -> None:
        self.frozen = as_selectors(frozen)
        self.trains = as_selectors(trains)
        self.trains_only = None if trains_only is None else as_selectors(trains_only)
        self.allow = as_selectors(allow)
        self.exclude = as_selectors(exclude)
        if not (self.frozen or self.trains or self.trains_only):
            raise ValueError(errors.guard_needs_a_check())
        if every != "epoch" and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ValueError(errors.guard_bad_every(every))
        if on_violation not in _ON_VIOLATION:
            raise ValueError(errors.guard_bad_on_violation(on_violation, _ON_VIOLATION))
        if mode not in MODES:
            raise ValueError(errors.bad_mode(mode, MODES))
        self.every = every
        self.on_violation = on_violation
        self.mode = mode
        self.atol, self.rtol = check_tolerances(atol, rtol)
        self.results: list[GuardCheck] = []
        self._guarded: Any = None
        self.params: dict[str, Any] = {}
        self.validation_data = None
        if isinstance(every, int):  # Keras calls batch hooks only where they are defined
            self.on_train_batch_end = self._on_train_batch_end
        self._before: Snapshot | None = None
        self._epoch = 0

    # -- the Keras callback protocol ---------------------------------------------------
    @property
    def model(self) -> Any:
        """The model being trained (as given to ``set_model``)."""
        return self._guarded

    @model.setter
    def model(self, model: Any) -> None:
        self._guarded = model

    def set_model(self, model: Any) -> None:
        self._guarded = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Any = None) -> None:
        ctx = context.current()
        above = ctx.digest_above if ctx is not None else None
        self._before = take(
            synced_model(self.model), observations=ctx, mode=self.mode, digest_above=above
        )
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch

    def _on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        every = self.every
        if isinstance(every, int) and (batch + 1) % every == 0:
            self.check(step=batch)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if self.every == "epoch":
            self.check()

    def _implements_train_batch_hooks(self) -> bool:
        return isinstance(self.every, int)

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    # -- checking ----------------------------------------------------------------------
    def _label(self) -> str:
        options = (
            ("frozen", self.frozen),
            ("trains", self.trains),
            ("trains_only", self.trains_only or ()),
            ("allow", self.allow),
        )
        parts = [f"{name}={_selection(value)}" for name, value in options if value]
        return f"FreezeGuard({', '.join(parts)})"

    def check(self, step: int | None = None) -> GuardCheck:
        """Check now, against the start of training; act on a violation."""
        __tracebackhide__ = True
        if self._before is None:
            raise RuntimeError(errors.guard_not_started())
        synced_model(self.model)  # JAX keeps the values in its training state mid-epoch
        diff = self._before.diff(self._before.retake(), atol=self.atol, rtol=self.rtol)
        when = f"epoch {self._epoch + 1}" + (f", batch {step + 1}" if step is not None else "")
        plan: list[tuple[Expect, tuple[Any, ...]]] = []
        if self.frozen:
            plan.append(("frozen", self.frozen))
        if self.trains:
            plan.append(("trains", self.trains))
        if self.trains_only:
            plan.append(("trains_only", self.trains_only))
        failures = []
        for expect, selectors in plan:
            try:
                diff.check(
                    expect,
                    selectors,
                    exclude=self.exclude,
                    allow=self.allow,
                    atol=self.atol,
                    rtol=self.rtol,
                    source="guard",
                    label=self._label(),
                    call=when,
                )
            except FreezeAssertionError as err:
                failures.append(str(err))
        diff.release_values(keep_before=True)  # a result keeps figures; the start stays
        result = GuardCheck(self._epoch, step, not failures, diff, "\n\n".join(failures) or None)
        self.results.append(result)
        if result.failure is not None:
            self._violated(result.failure, diff)
        return result

    def _violated(self, message: str, diff: WeightDiff) -> None:
        __tracebackhide__ = True
        if self.on_violation == "raise":
            raise FreezeAssertionError(message, diff=diff)
        if self.on_violation == "stop":
            self.model.stop_training = True
            message += "\n" + errors.guard_stopped(self.model.name)
        warnings.warn(FreezeViolationWarning(message), stacklevel=2)


def _selection(selectors: tuple[Any, ...]) -> str:
    text = selector_text(selectors)
    return text if len(selectors) == 1 else f"({text})"


_CLASSES: dict[tuple[type, ...], type] = {}


def _callback_class(cls: type) -> type:
    """``cls`` as a subclass of the ``Callback`` classes of the Keras in use, made once
    per set of bases. Every hook the guard does not define is the base class's own: Keras
    3 dispatches batch hooks asynchronously on JAX only while every callback leaves them
    as the base class has them, so a guard that checks per epoch costs no batch a wait."""
    bases = tuple(b for b in callback_bases() if not issubclass(cls, b))
    if not bases:
        return cls
    key = (cls, *bases)
    if key not in _CLASSES:
        _CLASSES[key] = type(
            cls.__name__,
            (cls, *bases),
            {"__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )
    return _CLASSES[key]
