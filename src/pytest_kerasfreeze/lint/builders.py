"""What a Keras call builds, read from its name through the file's imports.

``layers.Dense(4)`` is a layer, ``keras.Sequential([...])`` a model made of the layers
listed, ``keras.Model(inputs, outputs)`` a model made of what its tensors went through,
``keras.applications.MobileNetV2(...)`` or ``load_model(...)`` a model whose layers are not
known, ``keras.Input(...)`` a tensor; any other call passes its arguments' tensors on.

Example::

    names = KerasNames(ast.parse("from keras import layers"))
    names.dotted(ast.parse("layers.Dense", mode="eval").body)  # 'keras.layers.Dense'
"""

from __future__ import annotations

import ast

from pytest_kerasfreeze.lint.state import Const, Items, Obj, Tensor, Value

KERAS_ROOTS = ("keras", "tensorflow", "tf_keras", "keras_hub", "keras_nlp", "keras_cv")
LOADERS = ("load_model", "clone_model", "model_from_json", "model_from_config", "from_preset")


class KerasNames:
    """The file's imports: what each imported name stands for."""

    def __init__(self, tree: ast.Module) -> None:
        self.imports: dict[str, str] = {}
        self.star: list[str] = []
        for each in _statements(tree.body):
            if isinstance(each, ast.Import):
                for alias in each.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(each, ast.ImportFrom) and each.module and not each.level:
                for alias in each.names:
                    if alias.name == "*":
                        self.star.append(each.module)
                    else:
                        self.imports[alias.asname or alias.name] = f"{each.module}.{alias.name}"

    def dotted(self, node: ast.expr, default: str | None = None) -> str:
        """``layers.Dense`` -> ``keras.layers.Dense`` through the imports."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return default or ""
        head = self.imports.get(node.id)
        if head is None:
            star = next((m for m in self.star if m.split(".")[0] in KERAS_ROOTS), None)
            head = f"{star}.{node.id}" if star and not parts else node.id
        return ".".join([head, *reversed(parts)])


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Every statement, in blocks and function bodies too (imports are statements: the
    expressions, most of a tree's nodes, need not be walked)."""
    found: list[ast.stmt] = []
    stack = list(reversed(body))
    while stack:
        statement = stack.pop()
        found.append(statement)
        for name in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(statement, name, None)
            if isinstance(block, list):
                stack.extend(reversed([s for s in block if isinstance(s, ast.stmt)]))
        for handler in getattr(statement, "handlers", []):
            stack.extend(reversed(handler.body))
    return found


def construct(name: str, node: ast.Call, args: list[Value], kwargs: dict[str, Value]) -> Value:
    """Keras constructors: layers, ``Input``, ``Sequential``, ``Model``, applications
    and loaders; any other call passes its tensors through."""
    parts = name.split(".")
    last = parts[-1]
    keras = parts[0] in KERAS_ROOTS or "keras" in parts
    passed = through(args, kwargs)
    if keras and last == "Input":
        return Tensor(frozenset())
    if keras and last == "Sequential":
        model = Obj("model", "<model>", node.lineno, complete=True)
        listed = args[0] if args else kwargs.get("layers")
        if isinstance(listed, Items):
            for item in listed.values:
                if isinstance(item, Obj):
                    model.members.append(item)
                elif not isinstance(item, Tensor):
                    model.complete = False
        elif listed is not None:
            model.complete = False
        return model
    if keras and last in ("Model", "Functional") and passed:
        return Obj("model", "<model>", node.lineno, members=list(passed))
    if keras and ("applications" in parts or last in LOADERS):
        return Obj("model", "<model>", node.lineno)
    if keras and "layers" in parts[:-1] and last[:1].isupper() and last != "InputLayer":
        layer = Obj("layer", "<layer>", node.lineno)
        layer_name = kwargs.get("name")
        if isinstance(layer_name, Const) and isinstance(layer_name.value, str):
            layer.layer_name = layer_name.value
        return layer
    return Tensor(passed) if passed else None


def through(args: list[Value], kwargs: dict[str, Value]) -> frozenset[Obj]:
    """The layers and models the tensors among the arguments went through."""
    found: set[Obj] = set()
    stack: list[Value] = [*args, *kwargs.values()]
    while stack:
        value = stack.pop()
        if isinstance(value, Tensor):
            found |= value.through
        elif isinstance(value, Items):
            stack.extend(value.values)
    return frozenset(found)
