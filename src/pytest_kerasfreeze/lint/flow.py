"""The flow pass: one walk through each scope, statement by statement, in order.

It follows what names hold (models, layers, tensors of a functional graph, ``model.layers``
and slices of it), which layers and sub-models each model was built from (a Sequential's
list, ``add()``, functional calls, ``Model(inputs, outputs)``), and tells :class:`Rules`
each event: a ``trainable`` assignment, ``compile()``, a training call, weights created.
``if``/``else`` are walked both ways and merged; a loop body is walked twice (its second
turn sees what the first left); small local functions are followed into at their calls
(``make_trainable(net, False)``), and a class's methods start from what ``__init__`` built.
What it cannot follow is not known, and the rules say nothing about it.

Example::

    tree = ast.parse(text)
    findings = Flow(tree).run()
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from pytest_kerasfreeze.lint.builders import LOADERS, KerasNames, construct, through
from pytest_kerasfreeze.lint.rules import TRAINING_CALLS, LintFinding, Rules
from pytest_kerasfreeze.lint.state import (
    Class,
    Const,
    Creation,
    Func,
    Items,
    LayerList,
    Obj,
    State,
    Tensor,
    Value,
    Where,
)

CALLBACK_BASES = ("Callback", "LambdaCallback")
MAX_DEPTH = 4


class Flow:
    """The flow pass over one module."""

    def __init__(self, tree: ast.Module, label: Callable[[int], str] = "line {}".format) -> None:
        self.tree = tree
        self.rules = Rules(label)
        self.names = KerasNames(tree)
        self.functions: dict[str, ast.FunctionDef] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.followed: set[ast.FunctionDef] = set()
        self.stack: list[ast.FunctionDef] = []
        self.site: Where | None = None  # the helper call events are reported at
        self.seq = 0
        self.state = State()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                self.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node

    def run(self) -> list[LintFinding]:
        """Walk the module, then each function and class nobody called, and return the
        findings in the order of the file."""
        self.block(self.tree.body)
        for function in self.functions.values():
            if function not in self.followed:
                self.state = State()
                self.call_function(function, [], {}, None)
        for cls in self.classes.values():
            self.class_methods(cls)
        return sorted(self.rules.findings, key=lambda f: (f.line, f.col, f.code))

    # -- classes -----------------------------------------------------------------------
    def class_methods(self, cls: ast.ClassDef) -> None:
        """A class: its ``train_step`` (KF104) and callback methods (KF106) as written,
        then each method from what ``__init__`` built (``self.discriminator``)."""
        methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
        callback = any(self.names.dotted(b, "").endswith(CALLBACK_BASES) for b in cls.bases)
        for method in methods:
            if method.name == "train_step":
                self.rules.train_step(cls, method)
            if callback and method.name.startswith("on_"):
                self.rules.callback(cls, method)
        self.state = State()
        me = self.instance(cls, [], {})
        after_init = self.state
        for method in methods:
            if method.name != "__init__" and method not in self.followed:
                self.state = after_init.copy()
                self.call_function(method, [], {}, me)

    def is_model_class(self, cls: ast.ClassDef, depth: int = 0) -> bool:
        """A subclass of Keras' ``Model`` (directly, or through local classes)."""
        for base in cls.bases:
            name = self.names.dotted(base, "")
            if name.split(".")[-1] in ("Model", "Sequential", "Functional"):
                return True
            local = self.classes.get(name)
            if (
                local is not None
                and local is not cls
                and depth < 3
                and self.is_model_class(local, depth + 1)
            ):
                return True
        return False

    def instance(self, cls: ast.ClassDef, args: list[Value], kwargs: dict[str, Value]) -> Obj:
        """``GAN()``: an object of a local class, built by following its ``__init__``."""
        obj = Obj("instance", cls.name, cls.lineno, cls=cls)
        if self.is_model_class(cls):
            obj.kind = "model"
        init = next(
            (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
            None,
        )
        if init is not None:
            self.call_function(init, args, kwargs, obj)
        return obj

    # -- statements --------------------------------------------------------------------
    def block(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign):
            value = self.eval(node.value)
            for target in node.targets:
                self.bind(target, value, node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self.bind(node.target, self.eval(node.value), node.value)
        elif isinstance(node, ast.AugAssign):
            self.eval(node.value)
            self.bind(node.target, None, node.value)
        elif isinstance(node, ast.Expr):
            self.eval(node.value)
        elif isinstance(node, ast.If):
            self.branches(node)
        elif isinstance(node, (ast.For, ast.While)):
            self.loop(node)
        elif isinstance(node, ast.With):
            for item in node.items:
                self.eval(item.context_expr)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, None, item.context_expr)
            self.block(node.body)
        elif isinstance(node, ast.Try):
            self.block(node.body)
            self.block(node.orelse)
            self.block(node.finalbody)
        elif isinstance(node, ast.FunctionDef):
            self.state.env[node.name] = Func(node)
        elif isinstance(node, ast.ClassDef):
            self.state.env[node.name] = Class(node)
        elif isinstance(node, ast.Return) and node.value is not None:
            value = self.eval(node.value)
            self.state.env.setdefault("<return>", value)

    def branches(self, node: ast.If) -> None:
        self.eval(node.test)
        test = ast.unparse(node.test)
        if test in ("__name__ == '__main__'", '__name__ == "__main__"', "True"):
            self.block(node.body)
            return
        before = self.state
        self.state = before.copy()
        self.block(node.body)
        taken = self.state
        self.state = before.copy()
        self.block(node.orelse)
        self.state = taken.merge(self.state)

    def loop(self, node: ast.For | ast.While) -> None:
        if isinstance(node, ast.For):
            items = self.eval(node.iter)
            element: Value = None
            if isinstance(items, LayerList):
                element = items.owner.part(items.spec)
            elif isinstance(items, Items) and len(items.values) == 1:
                element = items.values[0]
            for _ in range(2):
                self.bind(node.target, element, node.iter)
                self.block(node.body)
        else:
            self.eval(node.test)
            for _ in range(2):
                self.block(node.body)
        self.block(node.orelse)

    def bind(self, target: ast.expr, value: Value, source: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.name(value, target.id)
            self.state.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = value.values if isinstance(value, Items) else ()
            for i, element in enumerate(target.elts):
                self.bind(element, values[i] if len(values) == len(target.elts) else None, source)
        elif isinstance(target, ast.Attribute):
            if target.attr == "trainable":
                self.assign_trainable(target, source)
                return
            owner = self.eval(target.value)
            if isinstance(owner, Obj):
                if isinstance(value, Obj):
                    self.name(value, ast.unparse(target))
                    if owner.kind == "model" and value.kind in ("model", "layer"):
                        owner.members.append(value)
                owner.attrs[target.attr] = value

    def name(self, value: Value, name: str) -> None:
        """Call an object by the name the outermost code gives it (the caller's
        ``discriminator``, not the helper's ``model``)."""
        if isinstance(value, Obj) and value.kind != "part" and len(self.stack) < value.named_at:
            value.name, value.named_at = name, len(self.stack)

    def assign_trainable(self, target: ast.Attribute, source: ast.expr) -> None:
        obj = self.eval(target.value)
        if isinstance(obj, LayerList):  # `model.layers[2:].trainable = False` sets nothing
            return
        if not isinstance(obj, Obj):
            return
        value = self.eval(source)
        flag = value.value if isinstance(value, Const) and isinstance(value.value, bool) else None
        where = self.where(target)
        text = ast.unparse(target.value) if not where.via else obj.name
        self.seq += 1
        self.rules.trainable(self.state, obj, flag, where, text, self.seq)

    def where(self, node: ast.expr) -> Where:
        if self.site is not None:
            return self.site
        return Where(node.lineno, node.col_offset + 1)

    # -- expressions -------------------------------------------------------------------
    def eval(self, node: ast.expr | None) -> Value:
        if node is None:
            return None
        if isinstance(node, ast.Name):
            if node.id in self.state.env:
                return self.state.env[node.id]
            if node.id in self.functions:
                return Func(self.functions[node.id])
            if node.id in self.classes:
                return Class(self.classes[node.id])
            return None
        if isinstance(node, ast.Constant):
            return Const(node.value)
        if isinstance(node, (ast.List, ast.Tuple)):
            return Items(tuple(self.eval(e) for e in node.elts))
        if isinstance(node, ast.Attribute):
            return self.attribute(self.eval(node.value), node.attr)
        if isinstance(node, ast.Subscript):
            return self.subscript(self.eval(node.value), node.slice)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            value = self.eval(node.operand)
            return Const(not value.value) if isinstance(value, Const) else None
        for child in ast.iter_child_nodes(node):  # calls inside any other expression
            if isinstance(child, ast.expr):
                self.eval(child)
        return None

    def attribute(self, base: Value, name: str) -> Value:
        if isinstance(base, Obj):
            if name == "layers" and base.kind in ("model", "part"):
                return LayerList(base, "layers", tuple(base.members) if base.complete else None)
            if name in ("output", "outputs") and base.kind in ("model", "layer"):
                return Tensor(frozenset({base}))  # `Dense(5)(model1.output)` goes through it
            if name in base.attrs:
                return base.attrs[name]
            if base.cls is not None:
                method = self.method_of(base.cls, name)
                if method is not None:
                    return Func(method, base)
            elif base.kind == "model" and not base.complete and not base.members:
                # a loaded or preset model's sub-models are its attributes
                # (`causal_lm.backbone`): a part of it, whatever it is
                return base.part(name)
        return None

    def method_of(self, cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
        for node in cls.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return node
        return None

    def subscript(self, base: Value, index: ast.expr) -> Value:
        if isinstance(base, Items) and isinstance(index, ast.Constant):
            if isinstance(index.value, int) and -len(base.values) <= index.value < len(base.values):
                return base.values[index.value]
            return None
        if not isinstance(base, LayerList):
            return None
        spec = f"{base.spec}[{ast.unparse(index)}]"
        if isinstance(index, ast.Slice):
            bounds = [self.eval(b) for b in (index.lower, index.upper, index.step)]
            known = all(b is None or isinstance(b, Const) for b in bounds)
            items = None
            if base.items is not None and known:
                numbers = [b.value if isinstance(b, Const) else None for b in bounds]
                ints = [n for n in numbers if isinstance(n, int) or n is None]
                if len(ints) == 3:
                    items = base.items[slice(*ints)]
            return LayerList(base.owner, spec, items)
        value = self.eval(index)
        if isinstance(value, Const) and isinstance(value.value, int) and base.items is not None:
            if -len(base.items) <= value.value < len(base.items):
                return base.items[value.value]
            return None
        return base.owner.part(spec)

    def call(self, node: ast.Call) -> Value:
        func = node.func
        receiver: Value = None
        if isinstance(func, ast.Attribute):
            receiver = self.eval(func.value)
            callee: Value = self.attribute(receiver, func.attr)
        else:
            callee = self.eval(func)
        args = [self.eval(a.value if isinstance(a, ast.Starred) else a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg}
        if isinstance(func, ast.Attribute) and isinstance(receiver, Obj):
            handled, result = self.method(receiver, func.attr, node, args, kwargs)
            if handled:
                return result
        if isinstance(callee, Func):
            if callee.bound is not None and not _on_self(func):
                return None  # a method called from outside: walked from its class
            return self.call_function(callee.node, args, kwargs, callee.bound, node)
        if isinstance(callee, Class):
            return self.instance(callee.node, args, kwargs)
        if isinstance(callee, Obj) and callee.kind in ("model", "layer"):
            return Tensor(through(args, kwargs) | {callee})
        name = self.names.dotted(func)
        built = construct(name, node, args, kwargs)
        flag = kwargs.get("trainable")
        if isinstance(built, Obj) and isinstance(flag, Const) and isinstance(flag.value, bool):
            self.state.flags[built] = flag.value  # `Dense(3, trainable=False)`
        elif isinstance(built, Obj) and name.split(".")[-1] in LOADERS:
            self.state.flags[built] = None  # a loaded model's flags are what was saved
        return built

    def method(
        self, obj: Obj, name: str, node: ast.Call, args: list[Value], kwargs: dict[str, Value]
    ) -> tuple[bool, Value]:
        """Keras' own methods of a known object: compile, training calls, add, get_layer,
        enable_lora."""
        if obj.kind in ("model", "part") and name == "compile":
            self.seq += 1
            self.state.compile(obj, self.seq, self.where(node).line)
            return True, None
        if obj.kind in ("model", "part") and name in TRAINING_CALLS:
            self.seq += 1
            self.rules.train(self.state, obj, self.where(node).line, name, self.seq)
            return True, None
        if obj.kind == "model" and name == "add" and args and isinstance(args[0], Obj):
            obj.members.append(args[0])
            return True, None
        if obj.kind in ("model", "part") and name == "get_layer":
            wanted = kwargs.get("name", args[0] if args else None)
            if isinstance(wanted, Const):
                for member in obj.members:
                    if member.layer_name == wanted.value:
                        return True, member
            if isinstance(wanted, Const) or "index" in kwargs:
                shown = ast.unparse(node.args[0]) if node.args else ""
                return True, obj.part(f"get_layer({shown})")
            return True, None
        if name in ("enable_lora", "add_weight") and obj.kind in ("model", "layer", "part"):
            self.seq += 1
            target = ast.unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""
            creation = Creation(self.seq, self.where(node), target or obj.name, name)
            self.rules.create(self.state, obj, creation)
            return True, None
        return False, None

    def call_function(
        self,
        function: ast.FunctionDef,
        args: list[Value],
        kwargs: dict[str, Value],
        bound: Obj | None,
        node: ast.Call | None = None,
    ) -> Value:
        """Follow a local function into its body with the arguments bound; a helper given
        a known object reports its events at the call (``set by make_trainable()``)."""
        if function in self.stack or len(self.stack) >= MAX_DEPTH:
            return None
        self.followed.add(function)
        names = [a.arg for a in function.args.posonlyargs + function.args.args]
        env: dict[str, Value] = {}
        if bound is not None and names:
            env[names.pop(0)] = bound
        for name, value in zip(names, args, strict=False):
            env[name] = value
        for name, value in kwargs.items():
            if name in names:
                env[name] = value
        defaults = function.args.defaults
        for name, default in zip(names[len(names) - len(defaults) :], defaults, strict=True):
            if name not in env and isinstance(default, ast.Constant):
                env[name] = Const(default.value)
        helper = any(isinstance(v, (Obj, LayerList)) for v in [*args, *kwargs.values()])
        outer_site, outer_env = self.site, self.state.env
        if helper and node is not None and self.site is None:
            self.site = Where(node.lineno, node.col_offset + 1, function.name)
        self.state.env = env
        self.stack.append(function)
        try:
            self.block(function.body)
            return self.state.env.get("<return>")
        finally:
            self.stack.pop()
            self.state.env = outer_env
            self.site = outer_site


def _on_self(func: ast.expr) -> bool:
    """``self.build_discriminator()``: a method of the class being walked."""
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "self"
    )
