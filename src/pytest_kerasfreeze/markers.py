"""``@pytest.mark.frozen`` / ``@pytest.mark.trains``: parsing and validation.

A marker is read into a :class:`MarkerSpec`; bad arguments raise
:class:`MarkerUsageError` with a message that says what to write instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze.checklog import selector_text
from pytest_kerasfreeze.compat import flavor_of
from pytest_kerasfreeze.weightdiff import check_tolerances

_KEYWORDS = ("atol", "rtol")


class MarkerUsageError(Exception):
    """A ``frozen``/``trains`` marker was written wrongly."""


@dataclass
class MarkerSpec:
    """One ``frozen``/``trains`` marker of a test and what it has matched so far."""

    kind: str
    layers: tuple[Any, ...]
    atol: float = 0.0
    rtol: float = 0.0
    matched: set[int] = field(default_factory=set)  # indexes into ``layers``
    checks: int = 0

    @property
    def label(self) -> str:
        extra = "".join(f", {k}={v:g}" for k, v in (("atol", self.atol), ("rtol", self.rtol)) if v)
        return f"@pytest.mark.{self.kind}({selector_text(self.layers)}{extra})"

    def unmatched(self) -> list[Any]:
        return [s for i, s in enumerate(self.layers) if i not in self.matched]


def parse_marker(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> MarkerSpec:
    """Validate one marker's arguments."""
    usage = f"@pytest.mark.{name}(*layers, atol=0.0, rtol=0.0)"
    unknown = sorted(set(kwargs) - set(_KEYWORDS))
    if unknown:
        raise MarkerUsageError(
            f"@pytest.mark.{name}: unknown keyword argument(s) {', '.join(unknown)}; "
            f"it takes {usage}"
        )
    if not args:
        raise MarkerUsageError(
            f"@pytest.mark.{name}() needs at least one layer: write {usage} with layer "
            f"names, paths like 'outer/inner' or globs like 'block*', e.g. "
            f"@pytest.mark.{name}('base')"
        )
    for arg in args:
        if not (isinstance(arg, str) and arg.strip()) and flavor_of(arg) is None:
            raise MarkerUsageError(
                f"@pytest.mark.{name}: {arg!r} is not a layer selector; give layer names, "
                f"paths like 'outer/inner', globs like 'block*', or Layer objects"
            )
    try:
        atol, rtol = check_tolerances(kwargs.get("atol", 0.0), kwargs.get("rtol", 0.0))
    except (TypeError, ValueError) as err:
        raise MarkerUsageError(f"@pytest.mark.{name}: {err}") from None
    return MarkerSpec(name, tuple(args), atol, rtol)
