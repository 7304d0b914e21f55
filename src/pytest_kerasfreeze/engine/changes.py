"""What happened to one weight: :class:`WeightChange`, and who moved it: :class:`Mover`.

Plain data, built by :mod:`pytest_kerasfreeze.engine.weightdiff` and read by everything above it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

MoverKind = Literal["optimizer", "forward", "callback", "outside"]


@dataclass(frozen=True)
class Mover:
    """Who moved a weight during a watched training call.

    ``kind`` is ``"optimizer"`` (``name``: the model attribute holding it, e.g.
    ``"g_optimizer"``, or ``"optimizer"``; ``location``: the ``file:line`` of the
    ``apply``/``apply_gradients`` call, or ``"fit()"`` for Keras' own train step),
    ``"forward"`` (updated by its layer during the forward pass: BatchNormalization
    statistics, an ``assign`` in ``call()``), ``"callback"`` (``name``: e.g.
    ``"Swap.on_epoch_end"``) or ``"outside"`` (none of those).

    Example::

        [mover] = diff.moved("generator/dense/kernel")[0].moved_by
        assert (mover.kind, mover.name) == ("optimizer", "g_optimizer")
    """

    kind: MoverKind
    name: str = ""
    location: str = ""
    # the optimizer object's id (kind "optimizer"): what ``by=`` given as an object
    # matches; not part of equality, so a Mover compares by what it says
    optimizer_id: int | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        if self.kind == "optimizer":
            return f"{self.name} @ {self.location}" if self.location else self.name
        if self.kind == "callback":
            return f"callback {self.name}"
        if self.kind == "outside":
            return f"outside ({self.location})" if self.location else "outside"
        return self.kind

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "location": self.location}


@dataclass(frozen=True)
class OptimizerRef:
    """The optimizer a ``by=`` check is about, resolved when the check starts.

    ``name`` is what messages call it (the model attribute holding it, or its class);
    ``ident`` the id of the optimizer object when one is known: movers are then matched
    by identity, whoever holds the optimizer. With no object (a marker's attribute
    name on a model that does not hold it), movers are matched by name.

    Example::

        ref = OptimizerRef("g_optimizer", id(gan.g_optimizer))
        assert ref.matches(Mover("optimizer", "g_optimizer", "fit()", id(gan.g_optimizer)))
    """

    name: str
    ident: int | None = None

    def matches(self, mover: Mover) -> bool:
        """Whether ``mover`` is this optimizer applying an update."""
        if mover.kind != "optimizer":
            return False
        if self.ident is not None:
            return mover.optimizer_id == self.ident
        return mover.name == self.name


@dataclass(frozen=True)
class WeightChange:
    """What happened to one weight variable between two snapshots.

    ``moved`` is ``not allclose(before, after, atol, rtol)`` (with the default
    tolerances, any change of bits; a NaN staying a NaN is none). ``max_abs_delta``,
    ``rel_delta`` (‖after−before‖ / ‖before‖, ``inf`` for a weight that started at
    zero) and ``changed_fraction`` (share of elements changed) say by how much —
    ``None`` where the values were not kept (digest snapshots); ``nonfinite`` that a
    finite value became NaN/Inf. ``owners`` lists every sub-model path that reaches the
    variable (more than one for a shared weight); ``moved_by`` who moved it;
    ``min_rel_delta`` (digest snapshots only) a lower bound of the relative change,
    | ‖after‖ − ‖before‖ | / ‖before‖; ``own_trainable`` is ``True`` where the variable's
    and its layer's own flags say trainable while ``trainable`` (the effective flag: is it
    among the model's ``trainable_weights``) says frozen — a frozen parent overrules them.

    Example::

        change = diff.moved("head")[0]
        print(change.path, change.shape, change.max_abs_delta, change.moved_by)
    """

    path: str
    layer: str
    owners: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    trainable: bool
    declared_trainable: bool
    moved: bool
    max_abs_delta: float | None
    rel_delta: float | None
    changed_fraction: float | None
    changed_elements: int | None
    nonfinite: bool
    moved_by: tuple[Mover, ...] = ()
    min_rel_delta: float | None = None  # digest snapshots: a lower bound of rel_delta
    # the variable's own flag and its layer's own flag, where they say trainable while
    # the effective flag (``trainable``) says frozen: a frozen parent overrules them
    own_trainable: bool | None = None

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def started_at_zero(self) -> bool:
        """Moved from all zeros: its relative change is undefined (``rel_delta`` inf)."""
        return bool(self.moved and self.rel_delta == math.inf and not self.nonfinite)

    @classmethod
    def make(cls, **fields: Any) -> WeightChange:
        """Build one without the frozen dataclass's per-field ``object.__setattr__``:
        half the cost, paid once per watched weight."""
        change = object.__new__(cls)
        fields.setdefault("moved_by", ())
        fields.setdefault("min_rel_delta", None)
        fields.setdefault("own_trainable", None)
        change.__dict__.update(fields)
        return change

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> WeightChange:
        """:meth:`make` from a dict holding every field, which becomes the record's own
        (the caller hands it over): no copy, no defaults to fill."""
        change = object.__new__(cls)
        object.__setattr__(change, "__dict__", fields)  # frozen: past its __setattr__
        return change

    def replace(self, **fields: Any) -> WeightChange:
        """A copy with some fields changed."""
        return WeightChange.make(**{**self.__dict__, **fields})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN/Inf as strings, tuples as lists, movers as dicts."""
        data = asdict(self)
        data["owners"] = list(self.owners)
        data["shape"] = list(self.shape)
        data["moved_by"] = [m.to_dict() for m in self.moved_by]
        for key in ("max_abs_delta", "rel_delta", "changed_fraction", "min_rel_delta"):
            data[key] = json_float(data[key])
        return data


def json_float(value: float | None) -> float | str | None:
    """JSON has no NaN/Infinity: keep them readable as strings."""
    if value is None or math.isfinite(value):
        return value
    return str(value)
