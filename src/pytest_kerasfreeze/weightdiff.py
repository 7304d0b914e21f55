"""Comparing two snapshots: :class:`WeightChange` per variable, :class:`WeightDiff` overall."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_kerasfreeze import checklog
from pytest_kerasfreeze.compat import bit_view, equal_bits
from pytest_kerasfreeze.exceptions import FreezeAssertionError, LayerNotFoundError

if TYPE_CHECKING:
    from pytest_kerasfreeze.snapshots import Snapshot


@dataclass(frozen=True)
class WeightChange:
    """What happened to one weight variable between two snapshots.

    ``moved`` is ``not allclose(before, after, atol, rtol)``; ``max_abs_delta``,
    ``rel_delta`` (‖after−before‖ / ‖before‖) and ``changed_fraction`` (share of
    elements changed) say by how much; ``nonfinite`` that a finite value became NaN/Inf.
    """

    path: str
    layer: str
    owners: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    trainable: bool
    declared_trainable: bool
    moved: bool
    max_abs_delta: float
    rel_delta: float
    changed_fraction: float
    changed_elements: int
    nonfinite: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @classmethod
    def _make(cls, **fields: Any) -> WeightChange:
        # What the generated __init__ does for a frozen dataclass, without its one
        # object.__setattr__ per field: half the cost, paid once per watched weight.
        change = object.__new__(cls)
        change.__dict__.update(fields)
        return change

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["owners"] = list(self.owners)
        data["shape"] = list(self.shape)
        for key in ("max_abs_delta", "rel_delta", "changed_fraction"):
            data[key] = _json_float(data[key])
        return data


def _json_float(value: float) -> float | str:
    # JSON has no NaN/Infinity: keep them readable as strings.
    return value if math.isfinite(value) else str(value)


def check_tolerances(atol: Any, rtol: Any) -> tuple[float, float]:
    """Validate ``atol``/``rtol``: finite, non-negative real numbers (not ``True``, not
    ``"1e-3"``: numpy's ``allclose`` refuses those too)."""
    out = []
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
            raise TypeError(
                f"{name} must be a real number like 1e-6, got {type(value).__name__} {value!r}"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        out.append(number)
    return out[0], out[1]


_CHUNK = 1 << 16  # elements per block: each block is worked on while it is in cache
_UNMOVED = dict(
    moved=False,
    max_abs_delta=0.0,
    rel_delta=0.0,
    changed_fraction=0.0,
    changed_elements=0,
    nonfinite=False,
)


def compare(
    before: np.ndarray,
    after: np.ndarray,
    atol: float,
    rtol: float,
    *,
    copy_into: np.ndarray | None = None,
) -> dict[str, Any]:
    """The statistics of one weight's change, computed block by block.

    Exact (the default): a change is any change of bits (``-0.0`` for ``0.0`` too),
    except that a NaN staying a NaN is none. With ``atol``/``rtol``:
    ``not isclose(after, before, rtol, atol)``.  One pass over both arrays; no
    temporary is larger than a block.  ``copy_into`` (an array like ``after``, written
    block by block) receives a copy of ``after`` in the same pass.
    """
    if before.shape != after.shape:
        if copy_into is not None:
            np.copyto(copy_into, after)
        return dict(moved=True, max_abs_delta=math.inf, rel_delta=math.inf,
                    changed_fraction=1.0, changed_elements=after.size, nonfinite=False)  # fmt: skip
    exact = atol == 0.0 and rtol == 0.0
    if copy_into is None and exact and equal_bits(before, after):  # stops at the first
        return dict(_UNMOVED)  # block that differs
    b_all, a_all = before.reshape(-1), after.reshape(-1)
    copy_all = None if copy_into is None else copy_into.reshape(-1)
    b_bits = bit_view(b_all)
    floating = b_all.dtype.kind == "f" and b_all.dtype.itemsize >= 4
    work = b_all.dtype if floating else np.float64  # ints, bool, float16, bfloat16
    block = min(_CHUNK, b_all.size)
    delta_buffer = np.empty(block, dtype=work)
    mask_buffer = np.empty(block, dtype=bool)
    changed = 0
    max_abs = 0.0
    sum_sq_delta = 0.0
    sum_sq_before = 0.0
    nonfinite = False
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, b_all.size, _CHUNK):
            stop = start + _CHUNK
            a_block = a_all[start:stop]
            if copy_all is not None:  # copy the block, then work on the copy (in cache)
                copy_all[start:stop] = a_block
                a_block = copy_all[start:stop]
            b = b_all[start:stop].astype(work, copy=False)
            a = a_block.astype(work, copy=False)
            size = b.size
            sum_sq_before += float(np.dot(b, b))
            if exact:
                mask = np.not_equal(b_bits[start:stop], bit_view(a_block), out=mask_buffer[:size])
            else:
                mask = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
            n = int(np.count_nonzero(mask))
            if not n:
                continue
            delta = np.subtract(a, b, out=delta_buffer[:size])
            square = float(np.dot(delta, delta))
            if math.isfinite(square):  # the common case: plain numbers
                changed += n
                max_abs = max(max_abs, float(delta.max()), -float(delta.min()))
                sum_sq_delta += square
                continue
            # NaN or Inf involved: a NaN that stays a NaN is no change, nor is an Inf
            # that stays (inf - inf is NaN); any other non-finite difference is infinite
            mask = mask & ~(np.isnan(a) & np.isnan(b))
            changed += int(np.count_nonzero(mask))
            magnitude = np.abs(delta)
            undefined = ~np.isfinite(magnitude)
            magnitude[undefined & mask] = math.inf
            magnitude[undefined & ~mask] = 0.0
            nonfinite = nonfinite or bool(np.any(np.isfinite(b) & ~np.isfinite(a)))
            max_abs = max(max_abs, float(magnitude.max()))
            sum_sq_delta = (
                math.inf
                if not np.isfinite(magnitude).all()
                else sum_sq_delta + float(np.dot(magnitude, magnitude))
            )
    if not math.isfinite(sum_sq_before):  # non-finite before: measure the finite part
        finite = before[np.isfinite(before.astype(np.float64))].astype(np.float64)
        sum_sq_before = float(np.dot(finite, finite))
    if not changed:
        return dict(_UNMOVED)
    norm_delta = math.sqrt(sum_sq_delta)
    norm_before = math.sqrt(sum_sq_before)
    if norm_before > 0:
        rel = norm_delta / norm_before
    else:
        rel = math.inf if norm_delta > 0 else 0.0
    return dict(
        moved=True,
        max_abs_delta=max_abs,
        rel_delta=rel,
        changed_fraction=changed / b_all.size,
        changed_elements=changed,
        nonfinite=nonfinite,
    )


class WeightDiff:
    """The result of comparing two snapshots of the same weights of one model.

    Example::

        d = snapshot(model).diff(snapshot_after)
        d.moved("head")            # WeightChange list of the head's weights that moved
        d.by_submodel()["base"]    # (moved, total) for the sub-model "base"
        print(d.report())
    """

    def __init__(
        self,
        before: Snapshot | None = None,
        after: Snapshot | None = None,
        *,
        atol: float = 0.0,
        rtol: float = 0.0,
    ) -> None:
        self.atol, self.rtol = check_tolerances(atol, rtol)
        self._before = before
        self._after: Snapshot | None = None
        self._changes: list[WeightChange] = []
        if after is not None:
            self._fill(after)

    # -- building ------------------------------------------------------------------
    def _fill(self, after: Snapshot) -> None:
        before = self._require_before()
        if after.model is not before.model or [id(v) for v in after.variables] != [
            id(v) for v in before.variables
        ]:
            raise ValueError(
                "cannot compare snapshots of different weights: take both snapshots of "
                "the same model with the same layers (or use before.retake())"
            )
        self._after = after
        self._changes = self._compute(self.atol, self.rtol)

    def _require_before(self) -> Snapshot:
        if self._before is None:
            raise ValueError("this WeightDiff has no 'before' snapshot")
        return self._before

    def _compute(self, atol: float, rtol: float) -> list[WeightChange]:
        before, after = self._require_before(), self._filled()
        index = before.index
        # weights the 'after' snapshot found bit-identical need no comparison at all
        same = after.same_as_since if after.since is before else set()
        exact = atol == 0.0 and rtol == 0.0
        known = after.stats_since if after.since is before and exact else {}
        out = []
        for i, (var, trainable) in enumerate(zip(before.variables, after.trainable, strict=True)):
            info = index.info[id(var)]
            if i in same:
                stats = dict(_UNMOVED)
            elif i in known:  # computed while the 'after' snapshot copied the weight
                stats = dict(known[i])
            else:
                stats = compare(before.value(i), after.value(i), atol, rtol)
            shape = before.shape_of(i)
            out.append(
                WeightChange._make(
                    path=info.path,
                    layer=info.layer,
                    owners=tuple(info.owners),
                    shape=shape,
                    dtype=before.dtype_of(i),
                    trainable=trainable,
                    declared_trainable=info.declared_trainable,
                    **stats,
                )
            )
        return out

    def _filled(self) -> Snapshot:
        if self._after is None:
            raise RuntimeError(
                "this WeightDiff is still empty: it is filled when its watch() block exits"
            )
        return self._after

    # -- reading -------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return str(self._require_before().model.name)

    @property
    def after_snapshot(self) -> Snapshot:
        return self._filled()

    @property
    def before_trainable(self) -> list[bool]:
        """The trainable flag of each watched weight when the 'before' snapshot was taken."""
        return list(self._require_before().trainable)

    @property
    def changes(self) -> list[WeightChange]:
        """Every watched weight, in the model's weight order."""
        self._filled()
        return list(self._changes)

    def select(self, *layers: Any) -> list[WeightChange]:
        """The changes of the weights held by ``layers`` (all watched weights if none)."""
        self._filled()
        if not layers:
            return list(self._changes)
        before = self._require_before()
        wanted = {id(v) for v in before.index.select(layers)}
        watched = {id(v) for v in before.variables}
        if not wanted & watched:
            names = _selection_text(layers)
            raise LayerNotFoundError(
                f"the weights of {names} were not watched by this diff; it watches "
                f"{_selection_text(before.selectors)} of model {self.model_name!r}"
            )
        paths = {before.index.info[i].path for i in wanted & watched}
        return [c for c in self._changes if c.path in paths]

    def moved(self, *layers: Any) -> list[WeightChange]:
        """The weights (of ``layers``, or all) that moved."""
        return [c for c in self.select(*layers) if c.moved]

    def unchanged(self, *layers: Any) -> list[WeightChange]:
        """The weights (of ``layers``, or all) that did not move."""
        return [c for c in self.select(*layers) if not c.moved]

    def with_tolerance(self, atol: float, rtol: float) -> WeightDiff:
        """The same comparison judged with other tolerances."""
        atol, rtol = check_tolerances(atol, rtol)
        if (atol, rtol) == (self.atol, self.rtol):
            return self
        after = self._filled()
        if self._require_before().released or after.released:
            raise ValueError(
                f"this diff of model {self.model_name!r} kept its figures but not the "
                f"weights' values (weight_tracker.records keep no copies), so it cannot be "
                f"judged again with atol={atol:g}, rtol={rtol:g}. Watch the call with "
                f"weight_tracker.watch(model) to keep the values."
            )
        return WeightDiff(self._before, after, atol=atol, rtol=rtol)

    def nonfinite_counts(self, changes: Sequence[WeightChange]) -> dict[str, int]:
        """How many elements of each of ``changes`` hold NaN or Inf now (only those with
        any). Empty when the values were not kept."""
        before, after = self._require_before(), self._filled()
        if after.released:
            return {}
        position = {before.index.info[id(v)].path: i for i, v in enumerate(before.variables)}
        counts = {}
        for change in changes:
            value = after.value(position[change.path])
            if value.dtype.kind not in "fc" and value.dtype.name != "bfloat16":
                continue
            bad = int(value.size - np.count_nonzero(np.isfinite(value.astype(np.float64))))
            if bad:
                counts[change.path] = bad
        return counts

    def _release_values(self) -> None:
        """Drop the kept values (the figures stay): what a training record keeps."""
        self._require_before().release()
        self._filled().release()

    def by_submodel(self) -> dict[str, tuple[int, int]]:
        """``{path: (moved, total)}`` for every sub-model and layer holding watched weights."""
        self._filled()
        before = self._require_before()
        moved = {id(v) for v, c in zip(before.variables, self._changes, strict=True) if c.moved}
        watched = {id(v) for v in before.variables}
        counts: dict[str, tuple[int, int]] = {}
        for node in before.index.nodes:
            ids = {id(v) for v in before.index.flavor.weights(node.layer)} & watched
            if ids:
                counts[node.path] = (len(ids & moved), len(ids))
        return counts

    # -- checks --------------------------------------------------------------------
    def assert_frozen(self, *layers: Any, atol: float = 0.0, rtol: float = 0.0) -> WeightDiff:
        """Raise :class:`FreezeAssertionError` if a weight of ``layers`` (or any) moved."""
        __tracebackhide__ = True
        return self.check("frozen", layers, atol, rtol, source="WeightDiff.assert_frozen")

    def assert_trains(self, *layers: Any, atol: float = 0.0, rtol: float = 0.0) -> WeightDiff:
        """Raise :class:`FreezeAssertionError` unless every declared-trainable weight of
        ``layers`` (or of all watched layers) moved."""
        __tracebackhide__ = True
        return self.check("trains", layers, atol, rtol, source="WeightDiff.assert_trains")

    def check(
        self,
        expect: str,
        layers: Sequence[Any],
        atol: float,
        rtol: float,
        *,
        source: str,
        call: str | None = None,
        findings: Sequence[Any] = (),
    ) -> WeightDiff:
        """Judge ``expect`` ("frozen" or "trains") on ``layers``; note it in the test's log.

        ``source`` names the check in messages and reports (``assert_frozen``, a marker),
        ``call`` the training call it judged (``"clf.fit()"``), ``findings`` what the
        diagnosis already found about it.  Returns the diff judged with the given
        tolerances; raises :class:`FreezeAssertionError` (with the diagnosis) on failure.
        """
        __tracebackhide__ = True
        from pytest_kerasfreeze.report import Expectation, failure_message

        judged = self.with_tolerance(atol, rtol)
        selected = judged.select(*layers)
        if expect == "frozen":
            offending = [c for c in selected if c.moved]
        else:
            candidates = [c for c in selected if c.declared_trainable]
            if not candidates:
                raise ValueError(
                    f"{source}: the layers selected ({_selection_text(layers)}) of model "
                    f"{self.model_name!r} declare no trainable weights, so nothing can be "
                    f"required to train. Select layers with kernels, biases, embeddings..."
                )
            offending = [c for c in candidates if not c.moved]
        message = None
        if offending:
            diagnosis = judged.diagnose(findings)
            title = f"{source} failed" + (f" on {call}" if call else "")
            expectation = Expectation(expect, tuple(layers), judged.atol, judged.rtol)
            nonfinite = judged.nonfinite_counts(offending) if expect == "trains" else {}
            if nonfinite:  # the real reason they "did not move": say it first
                from pytest_kerasfreeze.diagnosis import NONFINITE, nonfinite_finding

                held = [c for c in offending if c.path in nonfinite]
                diagnosis = [nonfinite_finding(judged.model_name, held, nonfinite)] + [
                    f for f in diagnosis if f.kind != NONFINITE
                ]
            message = failure_message(judged, expectation, offending, title, diagnosis, nonfinite)
        checklog.note_check(source, expect, judged, layers, message, call)
        if message is not None:
            raise FreezeAssertionError(message, diff=judged, findings=diagnosis)
        return judged

    def diagnose(self, findings: Sequence[Any] = ()) -> list[Any]:
        """``findings`` plus what this diff shows: weights shared through another
        container, flags that disagree with what moved."""
        from pytest_kerasfreeze.diagnosis import diff_findings, merge, shared_findings

        log = checklog.current()
        provenance = log.provenance if log is not None else None
        index = self._require_before().index
        return merge(findings, shared_findings(index, provenance), diff_findings(self))

    # -- output --------------------------------------------------------------------
    def report(self) -> str:
        """The human-readable report: what moved, by sub-model, with counts."""
        from pytest_kerasfreeze.report import diff_report

        return diff_report(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form of the diff."""
        changes = self.changes
        return {
            "model": self.model_name,
            "atol": self.atol,
            "rtol": self.rtol,
            "moved": sum(c.moved for c in changes),
            "total": len(changes),
            "weights": [c.to_dict() for c in changes],
            "by_submodel": {
                path: {"moved": m, "total": t} for path, (m, t) in self.by_submodel().items()
            },
        }

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        if self._after is None:
            return "<WeightDiff (empty until its watch() block exits)>"
        changes = self._changes
        return (
            f"<WeightDiff of model {self.model_name!r}: "
            f"{sum(c.moved for c in changes)} of {len(changes)} weights moved>"
        )


def _selection_text(selectors: Sequence[Any]) -> str:
    return checklog.selector_text(selectors) if selectors else "all weights"
