"""Provenance outside a test: :func:`record` observes ``trainable`` assignments,
``compile()`` and training calls in a notebook or a script, so that ``explain()`` names
the line that set each flag.

It installs the same patches a test gets (:class:`~pytest_kerasfreeze._keras.interception.
Interception`) and puts back the very same objects when it stops — at the end of its
``with`` block, or on :meth:`Recording.stop`, even when the block raises.

Example::

    import pytest_kerasfreeze as kf

    with kf.record():
        base.trainable = False
        model.compile(optimizer="adam", loss="mse")
        print(kf.explain(model))        # set_at: the line above
"""

from __future__ import annotations

from types import TracebackType

from pytest_kerasfreeze import context
from pytest_kerasfreeze.engine.provenance import Provenance
from pytest_kerasfreeze.session import TestObserver


class Recording:
    """An active recording (returned by :func:`record`): a context manager, or stop it
    with :meth:`stop`. Inside a test it does nothing: the test records already.

    Example::

        recording = record()
        assert recording.active
        recording.stop()          # Keras is as it was, the very same objects
    """

    def __init__(self) -> None:
        running = context.current()
        self._observer: TestObserver | None = None
        if running is None:
            self._observer = TestObserver(trap="ignore")
            self._observer.start(observe=True)
            self.provenance: Provenance = self._observer.context.provenance
        else:
            self.provenance = running.provenance

    @property
    def active(self) -> bool:
        """Whether this recording still observes Keras."""
        return self._observer is not None

    def stop(self) -> None:
        """Undo every patch (the very same objects are put back); idempotent."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.finish()

    def __enter__(self) -> Recording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def record() -> Recording:
    """Start recording where ``trainable`` flags are set (``file:line``), and each
    ``compile()`` and training call, for :func:`~pytest_kerasfreeze.explain` outside a
    test. Use it as a context manager, or call it once at the top of a notebook and
    ``.stop()`` it when done. Keras is imported if it is not yet.

    Example::

        rec = pytest_kerasfreeze.record()
        ...                                 # build, freeze, compile, fit
        print(pytest_kerasfreeze.explain(model))
        rec.stop()
    """
    return Recording()
