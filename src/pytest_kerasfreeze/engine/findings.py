"""The diagnosis entries: :class:`Finding` and its kinds (plain data).

Built by :mod:`pytest_kerasfreeze.engine.diagnosis`; read in failure messages,
``weight_tracker.records[i].findings`` and both reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FindingKind = Literal[
    "compile-order trap",
    "shared weights",
    "flag vs reality",
    "replica drift",
    "NaN values",
    "two optimizers",
    "frozen parent",
    "frozen slots",
    "stale moments",
    "frozen layer in training mode",
]
COMPILE_ORDER: FindingKind = "compile-order trap"
SHARED: FindingKind = "shared weights"
REALITY: FindingKind = "flag vs reality"
REPLICAS: FindingKind = "replica drift"
NONFINITE: FindingKind = "NaN values"
TWO_OPTIMIZERS: FindingKind = "two optimizers"
FROZEN_PARENT: FindingKind = "frozen parent"
FROZEN_SLOTS: FindingKind = "frozen slots"
STALE_MOMENTS: FindingKind = "stale moments"
FROZEN_IN_TRAINING: FindingKind = "frozen layer in training mode"

Outcome = Literal["honoured", "ignored", "raises"]


@dataclass
class Finding:
    """One diagnosis entry: what was found, where it came from, and how to fix it.

    ``kind`` is one of ``"compile-order trap"``, ``"shared weights"``, ``"flag vs
    reality"``, ``"replica drift"``, ``"NaN values"``, ``"two optimizers"``, ``"frozen
    parent"``, ``"frozen slots"``, ``"stale moments"``;
    ``layers`` the paths concerned; ``assignments`` the ``trainable`` assignments
    involved (``{"layer", "value", "location"}``); ``outcome`` (trap only) what this
    Keras does: ``"honoured"``, ``"ignored"`` or ``"raises"``.

    Example::

        [trap] = [f for f in record.findings if f.kind == "compile-order trap"]
        print(trap.summary, trap.assignments[0]["location"], trap.fix)
    """

    kind: FindingKind
    model: str
    summary: str
    explanation: str
    fix: str
    layers: list[str] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    call: str | None = None
    outcome: Outcome | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two findings the same one."""
        return (self.kind, self.model, self.summary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "call": self.call,
            "summary": self.summary,
            "layers": list(self.layers),
            "assignments": list(self.assignments),
            "explanation": self.explanation,
            "fix": self.fix,
            "outcome": self.outcome,
        }

    def __str__(self) -> str:
        return f"[{self.kind}] {self.summary}\n{self.explanation}\nFix: {self.fix}"


def merge(*groups: list[Finding] | tuple[Finding, ...]) -> list[Finding]:
    """Findings without repeats (same kind, model and summary), in order."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for group in groups:
        for finding in group:
            if finding.key not in seen:
                seen.add(finding.key)
                out.append(finding)
    return out
