"""``@pytest.mark.frozen`` / ``trains`` / ``trains_only``: parsing and validation.

A marker is read into a :class:`MarkerSpec`; bad arguments raise
:class:`MarkerUsageError` with a message that says what to write instead. Nothing here
imports pytest: a mark is anything with ``name``, ``args`` and ``kwargs``.

Example::

    spec = parse_marker("frozen", ("base",), {"atol": 1e-6})
    assert spec.label == "@pytest.mark.frozen('base', atol=1e-06)"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze._keras.flavors import flavor_of
from pytest_kerasfreeze.engine.arguments import as_selectors, check_tolerances
from pytest_kerasfreeze.engine.messages import errors, selector_text
from pytest_kerasfreeze.engine.results import Expect

_KEYWORDS = {
    "frozen": ("exclude", "by", "atol", "rtol", "optimizer_state"),
    "trains": ("exclude", "atol", "rtol"),
    "trains_only": ("allow", "exclude", "atol", "rtol"),
    "inference_mode": ("exclude",),
}


class MarkerUsageError(Exception):
    """A ``frozen``/``trains``/``trains_only`` marker was written wrongly."""


@dataclass
class MarkerSpec:
    """One marker of a test and what it has matched so far."""

    kind: Expect
    layers: tuple[Any, ...]
    atol: float = 0.0
    rtol: float = 0.0
    exclude: tuple[Any, ...] = ()
    allow: tuple[Any, ...] = ()
    by: Any = None  # frozen: the optimizer that must not update the selection
    optimizer_state: bool = False  # frozen: the optimizer's slots must not change either
    matched: set[int] = field(default_factory=set)  # indexes into ``layers``
    checks: int = 0

    @property
    def label(self) -> str:
        extra = "".join(
            f", {k}={selector_text(v) if len(v) == 1 else '(' + selector_text(v) + ')'}"
            for k, v in (("allow", self.allow), ("exclude", self.exclude))
            if v
        )
        if self.by is not None:
            extra += f", by={self.by if isinstance(self.by, str) else type(self.by).__name__!r}"
        if self.optimizer_state:
            extra += ", optimizer_state=True"
        extra += "".join(f", {k}={v:g}" for k, v in (("atol", self.atol), ("rtol", self.rtol)) if v)
        args = f"{selector_text(self.layers)}{extra}" if self.layers else extra[2:]
        return f"@pytest.mark.{self.kind}({args})"

    @property
    def whole_model(self) -> bool:
        """``exclude=`` alone: the selection is every weight of the model but those."""
        return not self.layers

    @property
    def named(self) -> tuple[Any, ...]:
        """What a model must hold for the marker to check it: its layers, or what
        ``exclude=`` alone names."""
        return self.layers or self.exclude

    def unmatched(self) -> list[Any]:
        return [s for i, s in enumerate(self.layers) if i not in self.matched]


def _is_selector(arg: Any) -> bool:
    if isinstance(arg, str):
        return bool(arg.strip())
    return flavor_of(arg) is not None or (hasattr(arg, "assign") and hasattr(arg, "shape"))


def parse_marker(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> MarkerSpec:
    """Validate one marker's arguments."""
    usage = "@pytest.mark." + errors.MARKER_USAGE[name]
    unknown = sorted(set(kwargs) - set(_KEYWORDS[name]))
    if unknown:
        raise MarkerUsageError(errors.marker_unknown_keywords(name, unknown, usage))
    exclude = as_selectors(kwargs.get("exclude", ()))
    if not args and not exclude and name != "inference_mode":  # exclude= alone: all but those
        raise MarkerUsageError(errors.marker_needs_layers(name, usage))
    allow = as_selectors(kwargs.get("allow", ()))
    for arg in (*args, *exclude, *allow):
        if not _is_selector(arg):
            raise MarkerUsageError(errors.marker_bad_selector(name, arg))
    try:
        atol, rtol = check_tolerances(kwargs.get("atol", 0.0), kwargs.get("rtol", 0.0))
    except (TypeError, ValueError) as err:
        raise MarkerUsageError(f"@pytest.mark.{name}: {err}") from None
    by = kwargs.get("by")
    if by is not None and not isinstance(by, str) and not hasattr(by, "apply_gradients"):
        raise MarkerUsageError(errors.marker_bad_by(name, by))
    optimizer_state = kwargs.get("optimizer_state", False)
    if not isinstance(optimizer_state, bool):
        raise MarkerUsageError(
            f"@pytest.mark.{name}: {errors.optimizer_state_bool(optimizer_state)}"
        )
    return MarkerSpec(name, tuple(args), atol, rtol, exclude, allow, by, optimizer_state)  # type: ignore[arg-type]
