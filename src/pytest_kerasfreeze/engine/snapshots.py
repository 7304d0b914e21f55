"""Snapshots, the public building blocks: :func:`snapshot`, :func:`diff` and
:class:`Snapshot`.

Example::

    before = snapshot(model, "encoder")
    model.fit(x, y)
    print(diff(before, snapshot(model, "encoder")))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_kerasfreeze.engine.arguments import as_selectors
from pytest_kerasfreeze.engine.captures import Capture, Mode, Observations, capture
from pytest_kerasfreeze.engine.messages import errors
from pytest_kerasfreeze.engine.weightdiff import WeightDiff


class Snapshot(Capture):
    """The values of some weights of a model, kept at one moment.

    A snapshot owns what it keeps: training after it cannot change it. Compare two
    snapshots of the same weights with :meth:`diff`; take a second one with
    :meth:`retake`, which copies again only what changed.

    Example::

        before = snapshot(model, "base")
        model.fit(x, y)
        print(before.diff(before.retake()).report())
    """

    def diff(self, after: Snapshot, *, atol: float = 0.0, rtol: float = 0.0) -> WeightDiff:
        """Compare this snapshot (before) with ``after``: a :class:`WeightDiff`.

        ``after`` must be a snapshot of the same weights of the same model. A weight
        moved when ``allclose(before, after, atol, rtol)`` is false; with the default
        tolerances, any change of value does.
        """
        return WeightDiff(self, after, atol=atol, rtol=rtol)


def take(
    model: Any,
    selectors: Sequence[Any] = (),
    exclude: Any = (),
    observations: Observations | None = None,
    mode: Mode = "auto",
    digest_above: int | None = None,
) -> Snapshot:
    """A :class:`Snapshot` of the selection, carrying ``observations`` (a test's
    context) when given; ``mode``: ``"copy"``, ``"digest"`` or ``"auto"``."""
    return capture(
        Snapshot, model, tuple(selectors), as_selectors(exclude), observations, mode, digest_above
    )


def diff(before: Snapshot, after: Snapshot, *, atol: float = 0.0, rtol: float = 0.0) -> WeightDiff:
    """``before.diff(after)``: what changed between two snapshots of the same weights.

    Example::

        before = snapshot(model)
        model.train_on_batch(x, y)
        print(diff(before, snapshot(model)))
    """
    if not isinstance(before, Capture) or not isinstance(after, Capture):
        raise TypeError(errors.not_snapshots(before, after))
    return WeightDiff(before, after, atol=atol, rtol=rtol)
