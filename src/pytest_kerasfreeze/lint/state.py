"""What the static pass knows at one point of a scope: the objects the code built, the
flags it set, and each model's last ``compile()``.

Objects are the models, layers and sub-models the code creates (``Obj``); a *part* stands
for layers reached through an index the pass cannot resolve (``base.layers[:100]``,
``model.get_layer("block5")`` on a model whose layers it does not know). Values a name can
hold: an :class:`Obj`, a :class:`Tensor` (the objects a functional graph went through), a
:class:`LayerList` (``model.layers`` or a slice of it), a :class:`Const` (a literal), a
:class:`Items` (a literal list or tuple), or ``None``: not known — and what is not known is
never reported on.

Example::

    state = State()
    base = Obj("layer", "base", 3)
    state.set_flag(base, False)
    assert state.flag(base) is False
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from typing import Literal

# A flag: True, False, BOTH (differs between paths of an `if`), or None (not known)
Flag = bool | Literal["both"] | None
BOTH: Flag = "both"


@dataclass(eq=False)
class Obj:
    """A model, layer, sub-model, part of a model, or instance of a local class."""

    kind: Literal["model", "layer", "part", "instance"]
    name: str
    line: int
    members: list[Obj] = field(default_factory=list)
    # whether `members` is the whole of `.layers`, in order (a Sequential from a list)
    complete: bool = False
    owner: Obj | None = None
    layer_name: str | None = None  # its `name=` argument
    attrs: dict[str, Value] = field(default_factory=dict)
    parts: dict[str, Obj] = field(default_factory=dict)
    cls: ast.ClassDef | None = None
    # how deep in followed calls it got its name: a name given by a caller wins
    named_at: int = 1 << 30

    def part(self, spec: str) -> Obj:
        """The part of this model reached by ``spec`` (``layers[:3]``), the same each time."""
        if spec not in self.parts:
            self.parts[spec] = Obj("part", f"{self.name}.{spec}", self.line, owner=self)
        return self.parts[spec]

    def closure(self) -> list[Obj]:
        """This object, its members and parts, recursively (each once)."""
        seen: dict[int, Obj] = {}
        stack = [self]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen[id(obj)] = obj
            stack.extend(obj.members)
            stack.extend(obj.parts.values())
        return list(seen.values())

    def contains(self, other: Obj) -> bool:
        return any(o is other for o in self.closure())


@dataclass(frozen=True)
class Tensor:
    """A symbolic tensor: the layers and models it went through."""

    through: frozenset[Obj]


@dataclass(frozen=True)
class LayerList:
    """``owner.layers``, or a slice of it; ``items`` when the layers are known."""

    owner: Obj
    spec: str
    items: tuple[Obj, ...] | None


@dataclass(frozen=True)
class Const:
    value: object


@dataclass(frozen=True)
class Items:
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Func:
    """A local function or method (``bound``: the object it was read from, for methods)."""

    node: ast.FunctionDef
    bound: Obj | None = None


@dataclass(frozen=True)
class Class:
    node: ast.ClassDef


Value = Obj | Tensor | LayerList | Const | Items | Func | Class | None


@dataclass(frozen=True)
class Where:
    """A position in the file, and the helper that was called there (``via``)."""

    line: int
    col: int
    via: str = ""


@dataclass(frozen=True)
class Assignment:
    """A ``trainable`` assignment on an object itself (not reached through its owner)."""

    seq: int
    where: Where
    value: Flag
    target: str


@dataclass(frozen=True)
class Creation:
    seq: int
    where: Where
    target: str
    method: str


@dataclass(frozen=True)
class Compiled:
    """A model's last ``compile()``: the flags then, and its first training call since."""

    seq: int
    line: int
    flags: tuple[tuple[Obj, Flag], ...]
    built: tuple[int, int] | None = None  # (seq, line) of the first training call
    created: tuple[Creation, ...] = ()

    def flag_at_compile(self, obj: Obj) -> Flag:
        for known, flag in self.flags:
            if known is obj:
                return flag
        if obj.owner is not None:  # a part first reached after compile()
            return self.flag_at_compile(obj.owner)
        return None


@dataclass
class State:
    """The flow-sensitive facts of one path through a scope."""

    env: dict[str, Value] = field(default_factory=dict)
    flags: dict[Obj, Flag] = field(default_factory=dict)
    assigned: dict[Obj, Assignment] = field(default_factory=dict)
    compiled: dict[Obj, Compiled] = field(default_factory=dict)

    def copy(self) -> State:
        return State(dict(self.env), dict(self.flags), dict(self.assigned), dict(self.compiled))

    def flag(self, obj: Obj) -> Flag:
        """The flag now: set by the code, reached through an owner, or True (Keras' default)."""
        if obj in self.flags:
            return self.flags[obj]
        if obj.owner is not None:
            return self.flag(obj.owner)
        return True

    def set_flag(self, obj: Obj, value: Flag) -> None:
        """``obj.trainable = value``: Keras sets it on every layer below, too."""
        for below in obj.closure():
            self.flags[below] = value

    def compile(self, model: Obj, seq: int, line: int) -> None:
        flags = tuple((o, self.flag(o)) for o in model.closure())
        self.compiled[model] = Compiled(seq, line, flags)

    def built(self, model: Obj, seq: int, line: int) -> None:
        compiled = self.compiled.get(model)
        if compiled is not None and compiled.built is None:
            self.compiled[model] = replace(compiled, built=(seq, line))

    def created(self, model: Obj, creation: Creation) -> None:
        compiled = self.compiled[model]
        self.compiled[model] = replace(compiled, created=(*compiled.created, creation))

    def merge(self, other: State) -> State:
        """The facts true on both paths (``if``/``else``); what differs is not known."""
        env = {k: v for k, v in self.env.items() if k in other.env and other.env[k] == v}
        flags: dict[Obj, Flag] = {}
        for obj in self.flags.keys() | other.flags.keys():
            a, b = self.flag(obj), other.flag(obj)
            flags[obj] = a if a == b else None if a is None or b is None else BOTH
        assigned = dict(other.assigned)
        for obj, mine in self.assigned.items():
            other_one = assigned.get(obj)
            if other_one is None or mine.seq > other_one.seq:
                assigned[obj] = mine
        compiled = {
            m: c
            for m, c in self.compiled.items()
            if m in other.compiled and other.compiled[m].seq == c.seq
        }
        for m, c in compiled.items():
            theirs = other.compiled[m]
            built = c.built or theirs.built
            created = c.created + tuple(x for x in theirs.created if x not in c.created)
            compiled[m] = replace(c, built=built, created=created)
        return State(env, flags, assigned, compiled)
