"""Comparing two captures of the same weights: :class:`WeightDiff`, and judging it.

A diff is filled once (``before`` vs ``after``); reading it (``moved``, ``by_submodel``,
``report``) never touches Keras again. Its checks (``assert_frozen``, ``assert_trains``,
``assert_trains_only``) give the same answer inside and outside a test: everything
they use comes with the captures — including, for captures the plugin's public API
took during a test, that test's provenance (for the diagnosis) and where to note the
check (for the reports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_kerasfreeze._keras import buffers
from pytest_kerasfreeze._keras.tracing import resolve_by
from pytest_kerasfreeze.engine import multihost, plots, verdicts
from pytest_kerasfreeze.engine.arguments import as_selectors, check_tolerances
from pytest_kerasfreeze.engine.captures import Capture, digest_stats
from pytest_kerasfreeze.engine.changes import Mover, OptimizerRef, WeightChange
from pytest_kerasfreeze.engine.diagnosis import (
    frozen_parent_findings,
    nonfinite_finding,
    reality_findings,
    replica_findings,
    shared_findings,
    two_optimizer_findings,
)
from pytest_kerasfreeze.engine.findings import NONFINITE, Finding, merge
from pytest_kerasfreeze.engine.messages import errors, html, reports, selection_text, selector_text
from pytest_kerasfreeze.engine.pauses import paused_gc
from pytest_kerasfreeze.engine.results import CheckResult, CheckSource, DiffFigures, Expect
from pytest_kerasfreeze.exceptions import FreezeAssertionError, LayerNotFoundError

Selectors = Sequence[Any]


@dataclass(frozen=True)
class CheckRequest:
    """What one check asks of a diff: built by :meth:`WeightDiff.check` from its
    arguments, after they were validated (selectors as tuples, ``by`` resolved)."""

    expect: Expect
    layers: Selectors
    exclude: Selectors
    allow: Selectors
    by: OptimizerRef | None
    atol: float
    rtol: float
    source: CheckSource
    label: str  # names the check in messages: assert_frozen, a marker
    call: str | None  # the training call a marker judged, "gan.fit()"
    findings: Sequence[Finding]
    predicted: Mapping[str, tuple[bool, str]] | None


@dataclass(frozen=True)
class Judgement:
    """A check's answer: the diff it judged (with its tolerances), the result noted in
    the reports, and the error to raise (``None`` when it passed)."""

    diff: WeightDiff
    result: CheckResult
    error: FreezeAssertionError | None


class WeightDiff:
    """The result of comparing two snapshots of the same weights of one model.

    Example::

        d = before.diff(before.retake())
        d.moved("head")                 # the head's weights that moved (WeightChange)
        d.by_submodel()["base"]         # (moved, total) for the sub-model "base"
        d.assert_trains_only("head")    # the head trains, nothing else moves
        print(d.report())
    """

    def __init__(
        self,
        before: Capture | None = None,
        after: Capture | None = None,
        *,
        atol: float = 0.0,
        rtol: float = 0.0,
    ) -> None:
        self.atol, self.rtol = check_tolerances(atol, rtol)
        self._before = before
        self._after: Capture | None = None
        self._changes: list[WeightChange] = []
        self._movers: dict[int, tuple[Mover, ...]] = {}
        self._delays: list[tuple[str, str, Any]] = []
        self._gradients: dict[int, str] = {}
        self._attributed = False  # whether moved_by was filled (a watched interval)
        if after is not None:
            self.fill(after)

    # -- building ------------------------------------------------------------------
    def fill(self, after: Capture) -> None:
        before = self._require_before()
        if after.model is not before.model or [id(v) for v in after.variables] != [
            id(v) for v in before.variables
        ]:
            raise ValueError(errors.different_snapshots())
        self._after = after
        with paused_gc():  # a record per weight, no cycle: see engine.pauses
            self._changes = self._compute(self.atol, self.rtol)

    def _require_before(self) -> Capture:
        if self._before is None:
            raise ValueError("this WeightDiff has no 'before' snapshot")
        return self._before

    def _compute(self, atol: float, rtol: float) -> list[WeightChange]:
        before, after = self._require_before(), self._filled()
        index = before.index
        # weights the 'after' capture found bit-identical need no comparison at all
        same, known = after.known_since(before)
        exact = atol == 0.0 and rtol == 0.0
        if not exact:
            known = {}
        out = []
        digest = before.mode == "digest"
        if digest and not exact:
            raise ValueError(errors.digest_has_no_values(before.model.name))
        combined, drift = multihost.combine(before, after, atol, rtol)  # every process's
        after.drift.update(drift)
        infos, own_trainable, make = index.info, after.own_trainable, WeightChange.from_fields
        layouts = before.layouts()
        for i, (var, trainable) in enumerate(zip(before.variables, after.trainable, strict=True)):
            info = infos[id(var)]
            if i in combined:
                stats = combined[i]
            elif i in same:
                stats = buffers.UNMOVED
            elif digest:
                stats = digest_stats(before.kept(i), after.kept(i))
            elif i in known:  # computed while the 'after' capture copied the weight
                stats = known[i]
            else:
                stats = buffers.compare(before.value(i), after.value(i), atol, rtol)
            shape, dtype = layouts[i]
            out.append(
                make(
                    {
                        "path": info.path,
                        "layer": info.layer,
                        "owners": info.owners,
                        "shape": shape,
                        "dtype": dtype,
                        "trainable": trainable,
                        "declared_trainable": info.declared_trainable,
                        "moved_by": (),
                        "min_rel_delta": None,
                        **stats,
                        "own_trainable": True if i in own_trainable else None,
                    }
                )
            )
        return out

    def _filled(self) -> Capture:
        if self._after is None:
            raise RuntimeError(errors.diff_still_empty())
        return self._after

    def attribute(
        self,
        movers: Mapping[int, tuple[Mover, ...]],
        delays: Sequence[tuple[str, str, Any]] = (),
        gradients: Mapping[int, str] | None = None,
    ) -> None:
        """Say who moved each weight (variable id -> movers), for the weights that moved;
        ``delays``: the settings of the optimizers that ran which delay or skip updates
        (optimizer, setting, value); ``gradients``: variable id -> ``"none"``/``"zero"``
        for the weights an optimizer was handed no gradient or an all-zero one."""
        self._movers = dict(movers)
        self._delays = list(delays)
        self._gradients = dict(gradients or {})
        self._attributed = True
        variables = self._require_before().variables
        self._changes = [
            c.replace(moved_by=movers.get(id(v), ())) if c.moved else c
            for v, c in zip(variables, self._changes, strict=True)
        ]

    def release_values(self, keep_before: bool = False) -> None:
        """Drop the kept values (the figures stay): what a training record keeps."""
        if not keep_before:
            self._require_before().release()
        self._filled().release()

    # -- reading -------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The name of the model the diff is about."""
        return str(self._require_before().model.name)

    @property
    def changes(self) -> list[WeightChange]:
        """Every watched weight, in the model's weight order."""
        self._filled()
        return list(self._changes)

    def select(self, *layers: Any, exclude: Any = ()) -> list[WeightChange]:
        """The changes of the selected weights (all watched weights if no selector).

        Example::

            d.select("encoder", exclude="*/bias")
        """
        self._filled()
        excluded = as_selectors(exclude)
        if not layers and not excluded:
            return list(self._changes)
        before = self._require_before()
        index = before.index
        wanted = {id(v) for v in index.select(layers, excluded)}
        watched = {id(v) for v in before.variables}
        if layers and not wanted & watched and not excluded:
            raise LayerNotFoundError(
                errors.not_watched(selector_text(layers), self._watched_text(), self.model_name)
            )
        paths = {index.info[i].path for i in wanted & watched}
        return [c for c in self._changes if c.path in paths]

    def _watched_text(self) -> str:
        before = self._require_before()
        if not before.selectors and not before.exclude:
            return "all weights"
        return selection_text(before.selectors, before.exclude)

    def moved(self, *layers: Any, exclude: Any = ()) -> list[WeightChange]:
        """The selected weights (all if none) that moved."""
        return [c for c in self.select(*layers, exclude=exclude) if c.moved]

    def unchanged(self, *layers: Any, exclude: Any = ()) -> list[WeightChange]:
        """The selected weights (all if none) that did not move."""
        return [c for c in self.select(*layers, exclude=exclude) if not c.moved]

    def by_submodel(self) -> dict[str, tuple[int, int]]:
        """``{path: (moved, total)}`` for every sub-model and layer holding watched
        weights; a path's last part is the layer's own name (``name#2`` for the second
        of two same-named layers of one container)."""
        self._filled()
        before = self._require_before()
        moved = {id(v) for v, c in zip(before.variables, self._changes, strict=True) if c.moved}
        index = before.index
        nodes = index.node_weights()
        if index.plain and len(before.variables) == len(index.variables):  # all watched
            return {path: (len(ids & moved), len(ids)) for path, ids in nodes.items() if ids}
        watched = {id(v) for v in before.variables}
        counts: dict[str, tuple[int, int]] = {}
        for path, ids in nodes.items():
            held = ids & watched
            if held:
                counts[path] = (len(held & moved), len(held))
        return counts

    def with_tolerance(self, atol: float, rtol: float) -> WeightDiff:
        """The same comparison judged with other tolerances."""
        atol, rtol = check_tolerances(atol, rtol)
        if (atol, rtol) == (self.atol, self.rtol):
            return self
        after = self._filled()
        if self._require_before().released or after.released or after.mode == "digest":
            raise ValueError(errors.values_not_kept(self.model_name, atol, rtol))
        judged = WeightDiff(self._before, after, atol=atol, rtol=rtol)
        if self._attributed:
            judged.attribute(self._movers, self._delays, self._gradients)
        return judged

    def nonfinite_counts(self, changes: Sequence[WeightChange]) -> dict[str, int]:
        """How many elements of each of ``changes`` hold NaN or Inf now (only those with
        any); empty when the values were not kept."""
        before, after = self._require_before(), self._filled()
        if after.released or after.mode == "digest":
            return {}
        position = {before.index.info[id(v)].path: i for i, v in enumerate(before.variables)}
        counts = {}
        for change in changes:
            if after.spread(position[change.path]):  # its values are not all here
                continue
            bad = buffers.nonfinite_count(after.value(position[change.path]))
            if bad:
                counts[change.path] = bad
        return counts

    # -- checks --------------------------------------------------------------------
    def assert_frozen(
        self,
        *layers: Any,
        exclude: Any = (),
        by: Any = None,
        atol: float = 0.0,
        rtol: float = 0.0,
    ) -> WeightDiff:
        """Raise :class:`FreezeAssertionError` if a selected weight (any if none) moved —
        or, with ``by`` (an optimizer, or the name of the model attribute holding it),
        if that optimizer updated one, whatever else moved them.

        Example::

            d.assert_frozen("base", exclude="base/bn")
            d.assert_frozen("discriminator", by="g_optimizer")
        """
        __tracebackhide__ = True
        return self.check(
            "frozen",
            layers,
            exclude=exclude,
            atol=atol,
            rtol=rtol,
            by=by,
            source="diff",
            label="WeightDiff.assert_frozen",
        )

    def assert_trains(
        self, *layers: Any, exclude: Any = (), atol: float = 0.0, rtol: float = 0.0
    ) -> WeightDiff:
        """Raise :class:`FreezeAssertionError` unless every declared-trainable weight of
        the selection (all watched weights if none) moved."""
        __tracebackhide__ = True
        return self.check(
            "trains",
            layers,
            exclude=exclude,
            atol=atol,
            rtol=rtol,
            source="diff",
            label="WeightDiff.assert_trains",
        )

    def assert_trains_only(
        self,
        *layers: Any,
        allow: Any = (),
        exclude: Any = (),
        atol: float = 0.0,
        rtol: float = 0.0,
    ) -> WeightDiff:
        """The fine-tuning invariant: every declared-trainable weight of the selection
        moved, and no other weight of the model moved (``allow`` selects weights outside
        the selection that may move; non-trainable state inside the selection may).

        Example::

            d.assert_trains_only("head", "*/lora_kernel_*", allow="*/moving_*")
        """
        __tracebackhide__ = True
        return self.check(
            "trains_only",
            layers,
            exclude=exclude,
            allow=allow,
            atol=atol,
            rtol=rtol,
            source="diff",
            label="WeightDiff.assert_trains_only",
        )

    def check(
        self,
        expect: Expect,
        layers: Selectors,
        *,
        exclude: Any = (),
        allow: Any = (),
        by: Any = None,
        atol: float = 0.0,
        rtol: float = 0.0,
        source: CheckSource,
        label: str,
        call: str | None = None,
        findings: Sequence[Finding] = (),
        predicted: Mapping[str, tuple[bool, str]] | None = None,
    ) -> WeightDiff:
        """Judge, note the result where the captures say (a test's reports), raise on
        failure. ``label`` names the check in messages (``assert_frozen``, a marker)."""
        __tracebackhide__ = True
        request = CheckRequest(
            expect,
            tuple(layers),
            as_selectors(exclude),
            as_selectors(allow),
            self._by(by),
            atol,
            rtol,
            source,
            label,
            call,
            tuple(findings),
            predicted,
        )
        with paused_gc():
            judgement = self._judge(request)
        observations = self._require_before().observations
        if observations is not None:
            observations.add_check(judgement.result)
        if judgement.error is not None:
            raise judgement.error
        return judgement.diff

    def _judge(self, request: CheckRequest) -> Judgement:
        """The check's diff (with its tolerances), its result, and the error to raise
        when it failed (``None`` when it passed)."""
        expect, layers, exclude, allow = (
            request.expect,
            request.layers,
            request.exclude,
            request.allow,
        )
        label, call, by = request.label, request.call, request.by
        judged = self.with_tolerance(request.atol, request.rtol)
        selected = judged.select(*layers, exclude=exclude)
        target = selection_text(layers, exclude)
        if layers and not selected:
            raise LayerNotFoundError(errors.nothing_left(target, self.model_name))
        if expect != "frozen" and not any(c.declared_trainable for c in selected):
            raise ValueError(errors.no_declared_trainable(label, target, self.model_name))
        allowed: set[str] = set()
        if expect == "trains_only":
            index = self._require_before().index
            allowed = {index.info[id(v)].path for v in index.select_optional(allow)}
        halves = verdicts.halves(expect, selected, judged.changes, allowed, by)
        failed = [h for h in halves if h[1]]
        moved_count = sum(c.moved for c in selected)
        result = CheckResult(
            source=request.source,
            check=label if request.source == "marker" else f"{label}({selector_text(layers)})",
            expect=expect,
            model=self.model_name,
            moved=moved_count,
            total=len(selected),
            passed=not failed,
            call=call,
            layers=[str(getattr(s, "name", s)) for s in layers] or ["<whole model>"],
            atol=judged.atol,
            rtol=judged.rtol,
            by_submodel=judged.by_submodel(),
            movers={c.path: [str(m) for m in c.moved_by] for c in selected if c.moved_by},
        )
        figures = DiffFigures(self.model_name, tuple(judged.changes), result.by_submodel)
        if not failed:
            result.figures = figures
            return Judgement(judged, result, None)
        diagnosis = judged.diagnose(request.findings)
        nonfinite = {}
        stuck = [c for breach, bad, _ in failed if breach is verdicts.Breach.STUCK for c in bad]
        if stuck:
            nonfinite = judged.nonfinite_counts(stuck)
        if nonfinite:  # the real reason they "did not move": say it first
            held = [c for c in stuck if c.path in nonfinite]
            diagnosis = [nonfinite_finding(self.model_name, held, nonfinite)] + [
                f for f in diagnosis if f.kind != NONFINITE
            ]
        title = f"{label} failed" + (f" on {call}" if call else "")
        by_name = by.name if by is not None else None
        expectation = reports.Expectation(
            expect, tuple(layers), judged.atol, judged.rtol, tuple(exclude), by_name
        )
        message = reports.failure_message(
            title,
            self.model_name,
            expectation,
            failed,
            judged.by_submodel(),
            diagnosis,
            nonfinite,
            self._require_before().mode == "digest",
            verdicts.foreseen(failed, request.predicted or {}),
        )
        result.failure = message
        result.figures = DiffFigures(
            figures.model, figures.changes, figures.by_submodel, tuple(diagnosis)
        )
        error = FreezeAssertionError(message, diff=judged, findings=diagnosis)
        return Judgement(judged, result, error)

    def _by(self, by: Any) -> OptimizerRef | None:
        """``by=`` as the optimizer it names (already resolved by a check that started
        before the training, or resolved now), named as the movers name it."""
        if by is None:
            return None
        if not self._attributed:
            raise ValueError(errors.by_needs_attribution(self.model_name))
        ref = by if isinstance(by, OptimizerRef) else resolve_by(self._require_before().model, by)
        if ref.ident is not None:  # the name the watched interval gave it, if it moved any
            for change in self._changes:
                for mover in change.moved_by:
                    if ref.matches(mover):
                        return OptimizerRef(mover.name, ref.ident)
        return ref

    def diagnose(self, findings: Sequence[Finding] = ()) -> list[Finding]:
        """``findings`` plus what this diff shows: weights shared through another
        container (from the provenance its captures carry), flags that disagree with
        what moved, NaN values, drifting replicas."""
        before, after = self._require_before(), self._filled()
        observations = before.observations
        provenance = observations.provenance if observations is not None else None
        changes = self._changes
        stuck = [
            c
            for c, was in zip(changes, before.trainable, strict=True)
            if c.declared_trainable and c.trainable and was and not c.moved
        ]
        return merge(
            list(findings),
            shared_findings(before.index, provenance),
            reality_findings(
                self.model_name,
                changes,
                before.trainable,
                self.nonfinite_counts(stuck),
                self._gradient_by_path(),
                self._delays,
            ),
            frozen_parent_findings(before.index, changes, provenance),
            replica_findings(self.model_name, changes, after.drift),
            two_optimizer_findings(self.model_name, changes),
        )

    def _gradient_by_path(self) -> dict[str, str]:
        before = self._require_before()
        return {
            before.index.info[var_id].path: kind
            for var_id, kind in self._gradients.items()
            if var_id in before.index.info
        }

    def findings(self) -> list[Finding]:
        """What this diff shows by itself (:class:`Finding` entries): weights shared
        through another container, flags that disagree with what moved, NaN values,
        replicas of a distributed weight that drifted apart.

        Example::

            assert [f.kind for f in d.findings()] == []
        """
        return self.diagnose()

    # -- output --------------------------------------------------------------------
    def report(self) -> str:
        """The human-readable report: what moved, by sub-model, with counts, and the
        diagnosis when there is one."""
        text = reports.diff_report(
            self.model_name,
            self.changes,
            self.by_submodel(),
            self.atol,
            self.rtol,
            self._require_before().mode == "digest",
        )
        return "\n".join([text, *reports.findings_lines(self.diagnose())])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form of the diff."""
        return self.figures().to_json(self.atol, self.rtol)

    def figures(self) -> DiffFigures:
        """The figures of this diff (no values): what pictures and HTML tables draw."""
        return DiffFigures(
            self.model_name, tuple(self.changes), self.by_submodel(), tuple(self.diagnose())
        )

    def plot(self, *, title: str | None = None) -> Any:
        """A matplotlib ``Figure``: one bar per sub-model and layer, the share of its
        weights that moved, coloured by flag (trainable, frozen, mixed), trap findings
        marked. Needs the extra ``plot``: ``pip install "pytest-kerasfreeze[plot]"``.

        Example::

            d.plot().savefig("moved.png")
        """
        return plots.figure(self.figures(), title=title)

    def _repr_html_(self) -> str:
        """The report as an HTML table, for notebooks (moved weights first, capped)."""
        return html.diff_table(self.figures())

    def __str__(self) -> str:
        return self.report()

    def __repr__(self) -> str:
        if self._after is None:
            return "<WeightDiff (empty until its watch() block exits)>"
        moved, total = sum(c.moved for c in self._changes), len(self._changes)
        return f"<WeightDiff of model {self.model_name!r}: {moved} of {total} weights moved>"
