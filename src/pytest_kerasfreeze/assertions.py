"""``assert_frozen`` and ``assert_trains``: the checks a test writes."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from pytest_kerasfreeze import checklog
from pytest_kerasfreeze.snapshots import Snapshot, select_weights
from pytest_kerasfreeze.weightdiff import WeightDiff, check_tolerances


class FreezeCheck:
    """A check around a block of code: snapshot on entry, compare and judge on exit.

    ``assert_frozen(model, ...)`` and ``assert_trains(model, ...)`` return one when no
    ``x`` is given.  After a passing block, ``.diff`` holds the :class:`WeightDiff`.
    An exception raised inside the block propagates unchanged and nothing is checked.
    """

    def __init__(
        self, expect: str, model: Any, layers: Sequence[Any], atol: float, rtol: float
    ) -> None:
        self.expect = expect
        self.model = model
        self.layers = tuple(layers)
        self.atol, self.rtol = check_tolerances(atol, rtol)
        # Resolve the selectors now, so a typo fails before any training.
        self._index, self._variables = select_weights(model, self.layers)
        if expect == "trains" and not any(
            self._index.info[id(v)].declared_trainable for v in self._variables
        ):
            raise ValueError(
                f"assert_trains: the layers selected of model {model.name!r} declare no "
                f"trainable weights, so nothing can be required to train. Select layers "
                f"with kernels, biases, embeddings or BatchNormalization gamma/beta."
            )
        self._before: Snapshot | None = None
        self._findings_mark = 0
        self.diff: WeightDiff | None = None

    def _snapshot(self) -> Snapshot:
        log = checklog.current()
        self._findings_mark = len(log.diagnosed) if log is not None else 0
        return Snapshot(self._index, self._variables, self.layers)

    def __enter__(self) -> FreezeCheck:
        self._before = self._snapshot()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        if exc_type is not None or self._before is None:
            return None  # the user's exception goes on untouched
        self.diff = self._judge(self._before)
        return None

    def _judge(self, before: Snapshot) -> WeightDiff:
        __tracebackhide__ = True
        result = before.diff(before.retake(), atol=self.atol, rtol=self.rtol)
        log = checklog.current()
        # what the diagnosis found on the training calls made on this model meanwhile
        found = log.findings_for(self.model, self._findings_mark) if log is not None else []
        return result.check(
            self.expect,
            self.layers,
            self.atol,
            self.rtol,
            source=f"assert_{self.expect}",
            findings=found,
        )

    def run_fit(self, x: Any, y: Any, fit_kwargs: dict[str, Any]) -> WeightDiff:
        """Snapshot, ``model.fit(x, y, verbose=0, **fit_kwargs)``, snapshot, judge."""
        __tracebackhide__ = True
        before = self._snapshot()
        self.model.fit(x, y, **{"verbose": 0, **fit_kwargs})
        self.diff = self._judge(before)
        return self.diff


def _check(
    expect: str,
    model: Any,
    layers: Sequence[Any],
    x: Any,
    y: Any,
    atol: float,
    rtol: float,
    fit_kwargs: dict[str, Any],
) -> Any:
    __tracebackhide__ = True
    check = FreezeCheck(expect, model, layers, atol, rtol)
    if x is None:
        if y is not None or fit_kwargs:
            given = ["y"] if y is not None else []
            given += sorted(fit_kwargs)
            raise TypeError(
                f"assert_{expect}() got {', '.join(given)} but no x: pass x (and y) to let "
                f"it call model.fit() itself, or use it as a context manager around your "
                f"own training code: `with assert_{expect}(model, ...): model.fit(x, y)`"
            )
        return check
    return check.run_fit(x, y, fit_kwargs)


def assert_frozen(
    model: Any,
    *layers: Any,
    x: Any = None,
    y: Any = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    **fit_kwargs: Any,
) -> Any:
    """Check that no weight of ``layers`` (the whole model if none) moves.

    Without ``x``, returns a context manager that snapshots on entry and raises
    :class:`FreezeAssertionError` on a normal exit if a selected weight moved.  With
    ``x`` (and ``y``), calls ``model.fit(x, y, verbose=0, **fit_kwargs)`` itself and
    returns the :class:`WeightDiff` when the check passes.

    Example::

        with assert_frozen(model, "base"):
            model.fit(x, y, epochs=1)

        diff = assert_frozen(model, "base", x=x, y=y, epochs=2)
    """
    __tracebackhide__ = True
    return _check("frozen", model, layers, x, y, atol, rtol, fit_kwargs)


def assert_trains(
    model: Any,
    *layers: Any,
    x: Any = None,
    y: Any = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    **fit_kwargs: Any,
) -> Any:
    """Check that every declared-trainable weight of ``layers`` (or of the model) moves.

    "Declared trainable" is what the layer created as a trainable weight (kernels,
    biases, embeddings, BatchNormalization gamma/beta), whatever its flag says now;
    moving statistics and other non-trainable state are not required to move.  Same
    two forms as :func:`assert_frozen`.

    Example::

        with assert_trains(model, "head"):
            model.fit(x, y)
    """
    __tracebackhide__ = True
    return _check("trains", model, layers, x, y, atol, rtol, fit_kwargs)
