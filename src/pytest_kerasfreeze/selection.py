"""A model's layer tree, the paths of its weights, and layer selectors.

A selector is a layer name (at any depth), a ``/``-joined path from the model down, a
glob matched against names and paths, or a ``Layer``/``Model`` object that is part of
the model.  Selecting a layer selects every weight it holds, nested layers included.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_kerasfreeze.compat import Flavor, flavor_of, is_model
from pytest_kerasfreeze.exceptions import LayerNotFoundError

_GLOB_CHARS = frozenset("*?[")
_MAX_LISTED_PATHS = 40


@dataclass
class LayerNode:
    """One place of a layer in the tree; a shared layer has one node per path.

    The last part of ``path`` is the layer's name, except where two different layers
    of one container share a name (a subclassed model holding three
    ``Dense(name="hidden")``): those are told apart as ``hidden#1``, ``hidden#2``, ...
    in the order Keras lists them.
    """

    path: str
    layer: Any
    parent_path: str  # "" for the model itself

    @property
    def name(self) -> str:
        return str(self.layer.name)

    @property
    def part(self) -> str:
        """The last part of the path (the name, or ``name#n`` for a repeated name)."""
        return self.path.rsplit("/", 1)[-1]


@dataclass
class VariableInfo:
    """Where a weight variable lives in the model."""

    path: str
    layer: str
    owners: list[str] = field(default_factory=list)
    declared_trainable: bool = False


def describe(obj: Any) -> str:
    """A short description of what the user passed, for error messages."""
    text = repr(obj)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(obj).__name__} {text}"


def require_model(model: Any, what: str = "model") -> tuple[Flavor, list[Any]]:
    """Check that ``model`` is a built Keras layer or model with weights; its flavour
    and its weights."""
    flavor = flavor_of(model)
    if flavor is None:
        raise TypeError(
            f"expected a Keras model (keras.Model, or a tf_keras one), got {describe(model)}. "
            f"Pass the model object whose weights the check should watch."
        )
    # The question is "are there weights", not "is `built` set": the keras-io DCGAN (a
    # Model subclass with a custom train_step and no call()) holds all its weights
    # through its generator and discriminator and is never built itself.
    weights = flavor.weights(model)
    if not weights and not flavor.is_built(model):
        kind = "model" if is_model(model) else "layer"
        raise ValueError(
            f"{kind} {model.name!r} is not built yet, so it has no weights to watch. "
            f"Build it first: give it an Input (keras.Input(shape=...)), call it once on "
            f"a batch of data, or call {model.name}.build(input_shape) if it defines "
            f"call()."
        )
    if not weights:
        raise ValueError(
            f"{what} {model.name!r} has no weights: there is nothing a freeze check could "
            f"watch. Check the layers it is made of (they may all be weightless, like "
            f"Flatten or Dropout)."
        )
    return flavor, weights


class ModelIndex:
    """The layer tree of one model: its nodes, paths and where every weight lives."""

    def __init__(self, model: Any, flavor: Flavor, weights: list[Any] | None = None) -> None:
        self.model = model
        self.flavor = flavor
        self.nodes: list[LayerNode] = []
        self._paths_by_layer: dict[int, list[str]] = {}
        self._by_path: dict[str, Any] = {}
        self._walk(model, prefix="", ancestors=(id(model),))
        self.variables: list[Any] = flavor.weights(model) if weights is None else weights
        self.info: dict[int, VariableInfo] = {}
        self._place_variables()

    # -- the tree ------------------------------------------------------------------
    def _walk(self, layer: Any, prefix: str, ancestors: tuple[int, ...]) -> None:
        children = [c for c in self.flavor.children(layer) if id(c) not in ancestors]
        # (a cycle would be a Keras bug; do not loop on it)
        for child, part in zip(children, _distinct_parts(children), strict=True):
            path = f"{prefix}{part}"
            self.nodes.append(LayerNode(path, child, prefix.rstrip("/")))
            self._by_path[path] = child
            self._paths_by_layer.setdefault(id(child), []).append(path)
            self._walk(child, prefix=f"{path}/", ancestors=(*ancestors, id(child)))

    def _place_variables(self) -> None:
        root = LayerNode("", self.model, "")
        used_paths: set[str] = set()
        for node in [root, *self.nodes]:
            declared = {id(v) for v in self.flavor.declared_trainable(node.layer)}
            # The owner is the sub-model through which this path reaches the variable.
            owner = node.parent_path or self.model.name
            for var in self.flavor.own_variables(node.layer):
                info = self.info.get(id(var))
                if info is None:
                    path = _unique_path(node.path, self.flavor.short_name(var), used_paths)
                    info = VariableInfo(path, node.layer.name)
                    self.info[id(var)] = info
                if id(var) in declared:
                    info.declared_trainable = True
                if owner not in info.owners:
                    info.owners.append(owner)
        # Weights that no layer of the tree claims as its own (odd custom tracking):
        # they still belong to the model and keep a readable path.
        for var in self.variables:
            if id(var) not in self.info:
                path = _unique_path("", self.flavor.short_name(var), used_paths)
                self.info[id(var)] = VariableInfo(
                    path, self.model.name, [self.model.name], bool(getattr(var, "trainable", False))
                )

    def paths(self) -> list[str]:
        return [node.path for node in self.nodes]

    def layer_at(self, path: str) -> Any:
        """The layer at ``path`` (``KeyError`` if there is none)."""
        return self._by_path[path]

    def paths_of(self, layer: Any) -> list[str]:
        """Every path at which ``layer`` sits in the tree (none if it is not in it)."""
        return list(self._paths_by_layer.get(id(layer), []))

    # -- selectors -----------------------------------------------------------------
    def select(self, selectors: Sequence[Any]) -> list[Any]:
        """The variables (in model order) held by the layers the selectors name.

        No selectors select the whole model.  Raises :class:`LayerNotFoundError` for a
        selector that matches nothing or a bare name shared by two different layers.
        """
        if not selectors:
            return list(self.variables)
        chosen: set[int] = set()
        for selector in selectors:
            for layer in self.resolve(selector):
                chosen.update(id(v) for v in self.flavor.weights(layer))
        return [v for v in self.variables if id(v) in chosen]

    def resolve(self, selector: Any, missing_ok: bool = False) -> list[Any]:
        """The layer objects one selector names (several for a glob).

        With ``missing_ok``, a selector that matches nothing gives ``[]`` instead of
        :class:`LayerNotFoundError` (an ambiguous name still raises).
        """
        if isinstance(selector, str):
            return self._resolve_text(selector, missing_ok)
        if flavor_of(selector) is not None:
            if selector is self.model:
                return [self.model]
            if id(selector) in self._paths_by_layer:
                return [selector]
            if missing_ok:
                return []
            raise LayerNotFoundError(
                f"layer {selector.name!r} ({type(selector).__name__}) is not part of model "
                f"{self.model.name!r}. Pass a layer of this model, or its name or path."
                f"{self._listing()}"
            )
        raise TypeError(
            f"a layer selector must be a layer name, a path like 'outer/inner', a glob, or "
            f"a Layer/Model object of the model; got {describe(selector)}"
        )

    def _resolve_text(self, selector: str, missing_ok: bool) -> list[Any]:
        text = selector.strip().strip("/")
        if not text:
            raise LayerNotFoundError(
                f"empty layer selector {selector!r}: name a layer, a path like "
                f"'outer/inner' or a glob like 'block*'.{self._listing()}"
            )
        if text == self.model.name:
            return [self.model]
        if text.startswith(self.model.name + "/"):
            text = text[len(self.model.name) + 1 :]
        if _GLOB_CHARS & set(text):
            nodes = [
                n
                for n in self.nodes
                if fnmatch.fnmatchcase(n.name, text)
                or fnmatch.fnmatchcase(n.part, text)
                or fnmatch.fnmatchcase(n.path, text)
            ]
            kind = "glob"
        elif "/" in text:
            nodes = [n for n in self.nodes if n.path == text]
            kind = "path"
        elif "#" in text:  # one of several same-named layers ("hidden#2"), at any depth
            nodes = [n for n in self.nodes if text in (n.part, n.name)]
            kind = "path"
        else:
            nodes = [n for n in self.nodes if n.name == text]
            kind = "name"
        distinct = _unique_layers(n.layer for n in nodes)
        if kind != "glob" and len(distinct) > 1:
            paths = "\n".join(f"  {n.path}" for n in nodes)
            raise LayerNotFoundError(
                f"layer {kind} {selector!r} is ambiguous in model {self.model.name!r}: "
                f"{len(distinct)} different layers have it, at\n{paths}\n"
                f"Select one by its path (e.g. {nodes[0].path!r})."
            )
        if not nodes:
            if missing_ok:
                return []
            raise LayerNotFoundError(
                f"no layer of model {self.model.name!r} matches the {kind} {selector!r}."
                f"{self._suggest(text)}{self._listing()}"
            )
        return _unique_layers(n.layer for n in nodes)

    def _suggest(self, text: str) -> str:
        candidates = sorted(
            {n.name for n in self.nodes} | {n.part for n in self.nodes} | set(self.paths())
        )
        close = difflib.get_close_matches(text, candidates, n=3, cutoff=0.6)
        if not close:
            return ""
        return " Did you mean " + " or ".join(repr(c) for c in close) + "?"

    def _listing(self) -> str:
        paths = self.paths()
        shown = "\n".join(f"  {p}" for p in paths[:_MAX_LISTED_PATHS])
        more = len(paths) - _MAX_LISTED_PATHS
        if more > 0:
            shown += f"\n  ... and {more} more"
        return f"\nLayers of model {self.model.name!r}:\n{shown or '  (none)'}"


def _unique_layers(layers: Iterable[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for layer in layers:
        if id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)
    return out


def _distinct_parts(children: Sequence[Any]) -> list[str]:
    """The path part of each child: its name, or ``name#n`` where different layers of
    one container share the name."""
    counts: dict[str, int] = {}
    for child in children:
        counts[str(child.name)] = counts.get(str(child.name), 0) + 1
    seen: dict[str, int] = {}
    parts = []
    for child in children:
        name = str(child.name)
        if counts[name] == 1:
            parts.append(name)
            continue
        seen[name] = seen.get(name, 0) + 1
        parts.append(f"{name}#{seen[name]}")
    return parts


def _unique_path(prefix: str, name: str, used: set[str]) -> str:
    base = f"{prefix}/{name}" if prefix else name
    path, n = base, 1
    while path in used:  # two variables of one layer with the same name
        n += 1
        path = f"{base}#{n}"
    used.add(path)
    return path
