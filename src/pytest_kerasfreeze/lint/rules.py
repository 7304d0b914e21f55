"""The rules KF101 to KF106: what a training call, a ``train_step`` or a callback shows.

:class:`Rules` is told each event of the flow pass (a flag set, a ``compile()``, a
training call, weights created) and answers with :class:`LintFinding` s; the words come
from :mod:`pytest_kerasfreeze.engine.messages.static`. A rule speaks only when every fact it
needs is known on the path: a model's compile, the flag at that compile, the flag now.

Example::

    rules = Rules()
    # ... the flow pass calls rules.trainable(...), rules.compile(...), rules.train(...)
    [f.code for f in rules.findings]  # ['KF102']
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from pytest_kerasfreeze.engine.messages import static
from pytest_kerasfreeze.lint.state import (
    BOTH,
    Assignment,
    Compiled,
    Creation,
    Flag,
    Obj,
    State,
    Where,
)

RULES = {
    "KF101": "trainable set after compile() and before a training call, no compile between",
    "KF102": "the Keras 2 GAN recipe: the discriminator never trains on Keras 3",
    "KF103": "weights created (enable_lora) after the first training call, no compile between",
    "KF104": "a train_step applies one optimizer to self.trainable_weights, another to a part",
    "KF105": "a frozen model trained with some of its layers set back to trainable",
    "KF106": "trainable set inside a Keras callback, while fit() runs",
}
TRAINING_CALLS = ("fit", "train_on_batch", "fit_generator")


@dataclass(frozen=True)
class LintFinding:
    """One finding: where (1-based line and column), which rule, the message and the fix."""

    code: str
    line: int
    col: int
    message: str
    fix: str


class Rules:
    """Collects the findings of one file, each once."""

    def __init__(self, label: Callable[[int], str] = "line {}".format) -> None:
        # how a line is named in a message: `line 12`, or `cell 3, line 2` in a notebook
        self.label = label
        self.findings: list[LintFinding] = []
        self._seen: set[tuple[str, int, int]] = set()

    def add(self, code: str, where: Where, words: tuple[str, str]) -> None:
        key = (code, where.line, where.col)
        if key not in self._seen:
            self._seen.add(key)
            self.findings.append(LintFinding(code, where.line, where.col, *words))

    # -- events of the flow pass -------------------------------------------------------
    def trainable(
        self, state: State, obj: Obj, value: Flag, where: Where, target: str, seq: int
    ) -> None:
        state.set_flag(obj, value)
        state.assigned[obj] = Assignment(seq, where, value, target)

    def train(self, state: State, model: Obj, line: int, method: str, seq: int) -> None:
        """``model.fit()`` / ``train_on_batch()``: KF105, then KF101/KF102, then KF103."""
        if not self._frozen_parent(state, model, line, method):
            compiled = state.compiled.get(model)
            if compiled is not None:
                self._compile_order(state, model, compiled, line, method)
                for creation in compiled.created:
                    self._created(model, compiled, creation, line, method)
        state.built(model, seq, line)

    def create(self, state: State, obj: Obj, creation: Creation) -> None:
        """``layer.enable_lora()`` / ``add_weight()``: pending for every built model of it."""
        for model, compiled in list(state.compiled.items()):
            if compiled.built is not None and model.contains(obj):
                state.created(model, creation)

    # -- the rules ---------------------------------------------------------------------
    def _frozen_parent(self, state: State, model: Obj, line: int, method: str) -> bool:
        own = state.assigned.get(model)
        if own is None or own.value is not False or state.flag(model) is not False:
            return False
        for obj in model.closure():
            later = state.assigned.get(obj)
            if obj is model or later is None or later.seq < own.seq or later.value is not True:
                continue
            words = static.frozen_parent(
                model=model.name,
                line=self.label(own.where.line),
                via=own.where.via,
                layer=later.target,
                layer_line=self.label(later.where.line),
                train_line=self.label(line),
                method=method,
            )
            self.add("KF105", later.where, words)
            return True
        return False

    def _compile_order(
        self, state: State, model: Obj, compiled: Compiled, line: int, method: str
    ) -> None:
        for obj in model.closure():
            assignment = state.assigned.get(obj)
            if assignment is None or assignment.seq < compiled.seq:
                continue
            then, now = compiled.flag_at_compile(obj), state.flag(obj)
            if then not in (True, False) or now is None or now == then:
                continue
            value = not then if now == BOTH else bool(now)
            after_build = compiled.built is not None and compiled.built[0] < assignment.seq
            combined = None if value or after_build else _combined(state, model, obj, assignment)
            if combined is not None:
                other, other_compiled = combined
                words = static.gan_recipe(
                    model=model.name,
                    target=assignment.target,
                    line=self.label(assignment.where.line),
                    via=assignment.where.via,
                    compile_line=self.label(compiled.line),
                    combined=other.name,
                    combined_line=self.label(other_compiled.line),
                    train_line=self.label(line),
                    method=method,
                )
                self.add("KF102", assignment.where, words)
                continue
            words = static.compile_order(
                model=model.name,
                target=assignment.target,
                value=value,
                line=self.label(assignment.where.line),
                via=assignment.where.via,
                compile_line=self.label(compiled.line),
                built_line=self.label(compiled.built[1]) if compiled.built else None,
                train_line=self.label(line),
                method=method,
                phase="after-build" if after_build else "after-compile",
            )
            self.add("KF101", assignment.where, words)

    def _created(
        self, model: Obj, compiled: Compiled, creation: Creation, line: int, method: str
    ) -> None:
        assert compiled.built is not None
        words = static.created_after_training(
            model=model.name,
            target=creation.target,
            via=creation.method,
            line=self.label(creation.where.line),
            built_line=self.label(compiled.built[1]),
            train_line=self.label(line),
            method=method,
        )
        self.add("KF103", creation.where, words)

    # -- what is seen without the flow: train_step and callbacks ------------------------
    def train_step(self, cls: ast.ClassDef, step: ast.FunctionDef) -> None:
        """KF104: in ``step``, an optimizer applied to ``self.trainable_weights`` while
        another one is applied to ``self.<part>.trainable_weights`` on the same path (not
        in the two branches of an ``if``)."""
        aliases: dict[str, ast.expr] = {}
        for node in ast.walk(step):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                aliases[node.targets[0].id] = node.value
        whole: list[tuple[str, ast.Call, Branches]] = []
        parts: list[tuple[str, str, ast.Call, Branches]] = []
        for node, branches in _calls(step.body, ()):
            if not isinstance(node.func, ast.Attribute):
                continue
            variables = _applied_to(node)
            if variables is None:
                continue
            optimizer = ast.unparse(node.func.value)
            part = _self_part(variables, aliases)
            if part == "":
                whole.append((optimizer, node, branches))
            elif part is not None:
                parts.append((optimizer, part, node, branches))
        for optimizer, node, branches in whole:
            for other, part, part_node, part_branches in parts:
                if other == optimizer or _exclusive(branches, part_branches):
                    continue
                words = static.two_optimizers_in_step(
                    model=cls.name,
                    whole=optimizer,
                    whole_line=self.label(node.lineno),
                    part_optimizer=other,
                    part=part,
                    part_line=self.label(part_node.lineno),
                )
                self.add("KF104", Where(node.lineno, node.col_offset + 1), words)
                break

    def callback(self, cls: ast.ClassDef, method: ast.FunctionDef) -> None:
        """KF106: every ``X.trainable = ...`` inside a callback's ``on_...`` method."""
        for node in ast.walk(method):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if not isinstance(target, ast.Attribute) or target.attr != "trainable":
                    continue
                if isinstance(target.value, ast.Name) and target.value.id == "self":
                    continue  # the callback's own attribute, not a model's flag
                value = node.value.value if isinstance(node.value, ast.Constant) else None
                words = static.callback_flag(
                    cls.name,
                    method.name,
                    ast.unparse(target.value),
                    value if isinstance(value, bool) else None,
                )
                self.add("KF106", Where(target.lineno, target.col_offset + 1), words)


def _combined(
    state: State, model: Obj, obj: Obj, assignment: Assignment
) -> tuple[Obj, Compiled] | None:
    """Another model built from ``model``, compiled after the freeze with the flag as it
    is now: the combined model of the GAN recipe."""
    for other, compiled in state.compiled.items():
        if other is model or compiled.seq < assignment.seq or not other.contains(model):
            continue
        if compiled.flag_at_compile(obj) == state.flag(obj):
            return other, compiled
    return None


# the `if` statements a call is under, and which of their branches (0: body, 1: else)
Branches = tuple[tuple[int, int], ...]


def _calls(body: list[ast.stmt], branches: Branches) -> list[tuple[ast.Call, Branches]]:
    """Every call in ``body`` with the branches it is under."""
    found: list[tuple[ast.Call, Branches]] = []
    for statement in body:
        if isinstance(statement, ast.If):
            found += [(c, branches) for c in _expression_calls(statement.test)]
            found += _calls(statement.body, (*branches, (id(statement), 0)))
            found += _calls(statement.orelse, (*branches, (id(statement), 1)))
            continue
        blocks = [getattr(statement, n, None) for n in ("body", "orelse", "finalbody")]
        nested = [b for b in blocks if isinstance(b, list) and b]
        if not nested:
            found += [(c, branches) for c in _expression_calls(statement)]
            continue
        for field in ("test", "iter", "items"):  # the header of a loop or a `with`
            header = getattr(statement, field, None)
            for part in header if isinstance(header, list) else [header]:
                if isinstance(part, ast.AST):
                    found += [(c, branches) for c in _expression_calls(part)]
        for block in nested:
            found += _calls(block, branches)
    return found


def _expression_calls(node: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call)]


def _exclusive(a: Branches, b: Branches) -> bool:
    """Whether two calls are in different branches of one ``if``: never in one step."""
    taken = dict(a)
    return any(statement in taken and taken[statement] != branch for statement, branch in b)


def _applied_to(call: ast.Call) -> ast.expr | None:
    """The variables an optimizer call updates: ``apply_gradients(zip(g, V))``,
    ``apply(g, V)``, ``minimize(loss, V)``."""
    assert isinstance(call.func, ast.Attribute)
    method = call.func.attr
    keywords = {k.arg: k.value for k in call.keywords}
    if method == "apply_gradients":
        pairs = call.args[0] if call.args else keywords.get("grads_and_vars")
        if isinstance(pairs, ast.Call) and ast.unparse(pairs.func) == "zip":
            return pairs.args[1] if len(pairs.args) == 2 else None
        return None
    if method in ("apply", "minimize"):
        if len(call.args) >= 2:
            return call.args[1]
        return keywords.get("trainable_variables", keywords.get("var_list"))
    return None


def _self_part(expr: ast.expr, aliases: dict[str, ast.expr]) -> str | None:
    """``""`` for ``self.trainable_weights``, ``"discriminator"`` for
    ``self.discriminator.trainable_weights``, None for anything else."""
    for _ in range(3):
        if isinstance(expr, ast.Name) and expr.id in aliases:
            expr = aliases[expr.id]
    if not isinstance(expr, ast.Attribute):
        return None
    if expr.attr not in ("trainable_weights", "trainable_variables"):
        return None
    base = expr.value
    if isinstance(base, ast.Name) and base.id == "self":
        return ""
    if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
        return base.attr if base.value.id == "self" else None
    return None
