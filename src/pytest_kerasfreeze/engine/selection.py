"""A model's layer tree, the paths of its weights, and selectors.

A selector is, in any mix:

* a layer name (at any depth), a ``/``-joined layer path from the model down, or a
  ``Layer``/``Model`` object of the model: every weight the layer holds, nested layers
  included;
* a weight path (a layer path plus the weight's own name: ``"encoder/query/kernel"``)
  or a Keras variable object of the model: that weight;
* a glob (``"block*"``, ``"*/lora_kernel_*"``, ``"*/bias"``), matched against layer
  names and paths and against weight paths.

``exclude=`` takes the same selectors; the selection is what ``*selectors`` select (the
whole model if none) minus what ``exclude`` selects.

Example::

    index = ModelIndex.of(model)
    index.select(["encoder"], exclude=["*/bias"])   # the encoder's weights but biases
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_kerasfreeze._keras.flavors import Flavor, LayerNode, flavor_of, is_model, walk
from pytest_kerasfreeze.engine.messages import errors, selection_text
from pytest_kerasfreeze.engine.sequences import unique
from pytest_kerasfreeze.exceptions import LayerNotFoundError

_GLOB_CHARS = frozenset("*?[")


@dataclass(slots=True)  # one object per weight: no __dict__ to track
class VariableInfo:
    """Where a weight variable lives in the model."""

    path: str  # the weight path: "outer/dense/kernel"
    layer: str  # the name of the layer that created it
    layer_path: str  # the path of that layer ("" for the model itself)
    owners: tuple[str, ...] = ()  # a tuple of strings: nothing for the collector to track
    declared_trainable: bool = False


def require_model(model: Any, what: str = "model") -> tuple[Flavor, list[Any]]:
    """Check that ``model`` is a Keras layer or model that holds weights; its flavour
    and its weights. The question is "are there weights", not "is ``built`` set": the
    keras-io DCGAN (a Model subclass with a custom train_step and no call()) holds all
    its weights through its generator and discriminator and is never built itself."""
    flavor = flavor_of(model)
    if flavor is None:
        raise TypeError(errors.not_a_model(model))
    return flavor, holding_weights(flavor, model, flavor.weights(model), what)


def holding_weights(flavor: Flavor, model: Any, weights: list[Any], what: str) -> list[Any]:
    """``weights`` (those of ``model``), or the error of :func:`require_model` where
    there are none."""
    if not weights and not flavor.is_built(model):
        raise ValueError(errors.not_built("model" if is_model(model) else "layer", model.name))
    if not weights:
        raise ValueError(errors.no_weights(what, model.name))
    return weights


class ModelIndex:
    """The layer tree of one model: its nodes, paths and where every weight lives."""

    def __init__(
        self,
        model: Any,
        flavor: Flavor,
        weights: list[Any] | None = None,
        nodes: list[LayerNode] | None = None,
        plain: bool = False,
    ) -> None:
        self.model = model
        self.flavor = flavor
        self.nodes: list[LayerNode] = walk(flavor, model) if nodes is None else nodes
        # {id(layer): its paths}; tuples of strings: nothing for the collector to track
        self._paths_by_layer: dict[int, tuple[str, ...]] = {}
        self._by_path: dict[str, Any] = {}
        for node in self.nodes:
            known = self._paths_by_layer.get(id(node.layer), ())
            self._paths_by_layer[id(node.layer)] = (*known, node.path)
            self._by_path[node.path] = node.layer
        self.variables: list[Any] = flavor.weights(model) if weights is None else weights
        # whether every node's weights are its own variables and its children's
        # (Flavor.tree_weights): node_weights() is then read off the tree
        self._plain = plain
        self.info: dict[int, VariableInfo] = {}
        self._own_ids: dict[str, tuple[int, ...]] = {}
        self._place_variables()
        self._by_weight_path = {info.path: var_id for var_id, info in self.info.items()}
        self._node_weights: dict[str, set[int]] | None = None

    @classmethod
    def of(cls, model: Any) -> ModelIndex:
        """Validate ``model`` and index it."""
        flavor = flavor_of(model)
        if flavor is None:
            raise TypeError(errors.not_a_model(model))
        nodes = walk(flavor, model)
        weights, plain = flavor.tree_weights(model, nodes)
        return cls(model, flavor, holding_weights(flavor, model, weights, "model"), nodes, plain)

    def _place_variables(self) -> None:
        root = LayerNode("", self.model, "")
        used_paths: set[str] = set()
        flavor, infos, model_name = self.flavor, self.info, self.model.name
        own_of = self._own_ids  # {layer path: ids of the variables it created}
        for node in [root, *self.nodes]:
            own, declared = flavor.own_and_declared(node.layer)
            own_of[node.path] = tuple(id(v) for v in own)  # ints: untracked
            if not own:
                continue
            # The owner is the sub-model through which this path reaches the variable.
            owner = node.parent_path or model_name
            layer_name, layer_path = node.name, node.path
            for var in own:
                var_id = id(var)
                info = infos.get(var_id)
                if info is None:
                    path = _unique_path(layer_path, flavor.short_name(var), used_paths)
                    info = infos[var_id] = VariableInfo(path, layer_name, layer_path, (owner,))
                elif owner not in info.owners:  # a shared weight: rare
                    info.owners = (*info.owners, owner)
                if var_id in declared:
                    info.declared_trainable = True
        # Weights that no layer of the tree claims as its own (odd custom tracking):
        # they still belong to the model and keep a readable path.
        for var in self.variables:
            if id(var) not in self.info:
                path = _unique_path("", self.flavor.short_name(var), used_paths)
                self.info[id(var)] = VariableInfo(
                    path,
                    self.model.name,
                    "",
                    (self.model.name,),
                    bool(getattr(var, "trainable", False)),
                )

    # -- the tree ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.model.name)

    @property
    def plain(self) -> bool:
        """Whether every node's weights are its own variables and its children's (the
        layers of the tree hold every weight of the model, and nothing else)."""
        return self._plain

    def paths(self) -> list[str]:
        return [node.path for node in self.nodes]

    def weight_paths(self) -> list[str]:
        return [self.info[id(v)].path for v in self.variables]

    def paths_of(self, layer: Any) -> list[str]:
        """Every path at which ``layer`` sits in the tree (none if it is not in it)."""
        return list(self._paths_by_layer.get(id(layer), ()))

    def layer_at(self, path: str) -> Any:
        """The layer at ``path`` (``KeyError`` if there is none)."""
        return self._by_path[path]

    def node_weights(self) -> dict[str, set[int]]:
        """``{layer path: ids of the weights it holds}``, for every node."""
        if self._node_weights is None:
            if self._plain:  # bottom up: a node's own variables and its children's
                below: dict[str, set[int]] = {}
                held: dict[str, set[int]] = {}
                for node in reversed(self.nodes):  # children before their parents
                    ids = below.pop(node.path, set())
                    ids.update(self._own_ids[node.path])
                    held[node.path] = ids
                    if node.parent_path:
                        below.setdefault(node.parent_path, set()).update(ids)
                self._node_weights = {node.path: held[node.path] for node in self.nodes}
            else:
                self._node_weights = {
                    node.path: {id(v) for v in self.flavor.weights(node.layer)}
                    for node in self.nodes
                }
        return self._node_weights

    # -- selectors -----------------------------------------------------------------
    def select(self, selectors: Sequence[Any], exclude: Sequence[Any] = ()) -> list[Any]:
        """The variables (in model order) the selectors select, minus ``exclude``.

        No selectors select the whole model. Raises :class:`LayerNotFoundError` for a
        selector that matches nothing or a bare name shared by two different layers.
        """
        if selectors:
            chosen: set[int] = set()
            for selector in selectors:
                chosen |= self.resolve(selector)
        else:
            chosen = {id(v) for v in self.variables}
        for selector in exclude:
            chosen -= self.resolve(selector, missing_ok=is_glob(selector))
        return [v for v in self.variables if id(v) in chosen]

    def select_optional(self, selectors: Sequence[Any]) -> list[Any]:
        """Like :meth:`select` for ``allow=``-style selectors: a glob that matches
        nothing selects nothing (``allow="*/moving_*"`` on a model without
        BatchNormalization); a name or path that matches nothing is still a typo."""
        chosen: set[int] = set()
        for selector in selectors:
            chosen |= self.resolve(selector, missing_ok=is_glob(selector))
        return [v for v in self.variables if id(v) in chosen]

    def resolve(self, selector: Any, missing_ok: bool = False) -> set[int]:
        """The ids of the variables one selector selects.

        With ``missing_ok``, a selector that matches nothing gives an empty set instead of
        :class:`LayerNotFoundError` (an ambiguous name still raises).
        """
        if isinstance(selector, str):
            return self._resolve_text(selector, missing_ok)
        if id(selector) in self.info:  # a variable of this model
            return {id(selector)}
        if flavor_of(selector) is not None:
            if selector is self.model:
                return {id(v) for v in self.variables}
            if id(selector) in self._paths_by_layer:
                return {id(v) for v in self.flavor.weights(selector)}
            if missing_ok:
                return set()
            raise LayerNotFoundError(
                errors.not_in_model(selector, "layer", self.name, self.paths())
            )
        if hasattr(selector, "assign") and hasattr(selector, "shape"):  # another model's
            if missing_ok:
                return set()
            raise LayerNotFoundError(
                errors.not_in_model(selector, "weight", self.name, self.weight_paths())
            )
        raise TypeError(errors.bad_selector(selector))

    def _resolve_text(self, selector: str, missing_ok: bool) -> set[int]:
        text = selector.strip().strip("/")
        if not text:
            raise LayerNotFoundError(errors.empty_selector(selector, self.name, self.paths()))
        if text == self.name:
            return {id(v) for v in self.variables}
        if text.startswith(self.name + "/"):
            text = text[len(self.name) + 1 :]
        if _GLOB_CHARS & set(text):
            kind = "glob"
            nodes = [
                n
                for n in self.nodes
                if any(fnmatch.fnmatchcase(s, text) for s in (n.name, n.part, n.path))
            ]
            weights = {
                i for path, i in self._by_weight_path.items() if fnmatch.fnmatchcase(path, text)
            }
        else:
            if "/" in text:
                kind, nodes = "path", [n for n in self.nodes if n.path == text]
            elif "#" in text:  # one of several same-named layers ("hidden#2"), any depth
                kind, nodes = "path", [n for n in self.nodes if text in (n.part, n.name)]
            else:
                kind, nodes = "name", [n for n in self.nodes if n.name == text]
            distinct = unique(n.layer for n in nodes)
            if len(distinct) > 1:
                raise LayerNotFoundError(
                    errors.ambiguous(
                        kind, selector, self.name, len(distinct), [n.path for n in nodes]
                    )
                )
            weight = self._by_weight_path.get(text)
            weights = {weight} if weight is not None and not nodes else set()
        chosen = weights | {id(v) for n in nodes for v in self.flavor.weights(n.layer)}
        if not nodes and not weights and not missing_ok:
            candidates = [n.name for n in self.nodes] + [n.part for n in self.nodes]
            candidates += self.paths() + list(self._by_weight_path)
            raise LayerNotFoundError(
                errors.no_match(
                    kind, selector, self.name, errors.did_you_mean(text, candidates), self.paths()
                )
            )
        return chosen

    def describe(self, selectors: Sequence[Any], exclude: Sequence[Any] = ()) -> str:
        return selection_text(selectors, exclude)


def is_glob(selector: Any) -> bool:
    """Whether ``selector`` is a glob (``"*/bias"``, ``"block?"``)."""
    return isinstance(selector, str) and bool(_GLOB_CHARS & set(selector))


def _unique_path(prefix: str, name: str, used: set[str]) -> str:
    base = f"{prefix}/{name}" if prefix else name
    path, n = base, 1
    while path in used:  # two variables of one layer with the same name
        n += 1
        path = f"{base}#{n}"
    used.add(path)
    return path
