"""The house keeps its shape (issue 21): four parts, a few rules, checked by parsing the
package's imports (needs no Keras). ARCHITECTURE.md says the same in words.

- ``_keras/`` is the only code that reads Keras or backend internals or patches them;
- ``engine/`` knows weights only: no pytest, no running test (it never imports the
  test-side modules);
- pytest is imported only by ``plugin`` and the modules only it imports;
- ``lint/`` uses the trap table and the words, nothing that runs or imports Keras;
- no import cycle, no module uses another module's ``_private`` names, heavy libraries
  are imported lazily, the running test's context is touched by the test side only.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "pytest_kerasfreeze"
MODULES = sorted(PACKAGE.rglob("*.py"))

# The test side: what a user calls and what pytest calls (the top-level modules).
TEST_SIDE = {
    "checks", "context", "guard", "markers", "modes", "plugin", "recording",
    "reload", "reporting", "session", "terminal", "tracker",
}  # fmt: skip
# Shared by every part: exceptions and the public trap table.
COMMON = {"__init__", "exceptions", "traps"}
# pytest is imported here only, and these are imported by the plugin only.
PYTEST_USERS = {"plugin", "reporting", "lint.items"}
# Imported inside functions on purpose: heavy, or absent where the plugin must load.
LAZY_OK = {"keras", "tf_keras", "tensorflow", "jax", "torch", "matplotlib", "ml_dtypes"}
# The plugin loads without numpy or Keras: it imports the rest when a test starts.
LAZY_INTERNAL_OK = {"__init__", "plugin", "reporting"}
# The running test's context: the test side only.
CONTEXT_USERS = {"checks", "guard", "session", "plugin", "recording"}
# What reads Keras' or a backend's private modules.
PRIVATE_MODULES = ("keras.src", "tf_keras.src", "tensorflow.python", "jax._src", "torch._")


def module_name(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)


NAMES = {module_name(p) for p in MODULES}


def part(name):
    head = name.split(".")[0]
    if head in ("engine", "_keras", "lint"):
        return head
    return "common" if name in COMMON else "test side"


def imports(path):
    """([imported names], lazily?, line) for every import in the file."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                continue  # types only: never imported when the code runs
            lazy = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
                found.append((names, in_function, child.lineno))
            elif isinstance(child, ast.Import):
                found.append(([a.name for a in child.names], in_function, child.lineno))
            visit(child, lazy)

    visit(ast.parse(path.read_text()), False)
    return found


def internal(name):
    """``pytest_kerasfreeze.engine.messages.errors.X`` -> ``engine.messages.errors``."""
    if not name.startswith("pytest_kerasfreeze"):
        return None
    parts = name[len("pytest_kerasfreeze") :].lstrip(".").split(".")
    while parts:
        if ".".join(parts) in NAMES:
            return ".".join(parts)
        parts.pop()
    return "__init__"


def targets(path):
    """(internal module, lazily?, line) for every import of the package in the file."""
    me = module_name(path)
    for names, lazy, line in imports(path):
        found = {internal(n) for n in names if n.startswith("pytest_kerasfreeze")}
        # `from pytest_kerasfreeze.engine import messages` names the package and the module
        if len(found) > 1:
            found -= {n.rpartition(".")[0] or "__init__" for n in found}
        for target in found - {me}:
            yield target, lazy, line


def test_every_module_is_in_a_part():
    assert {part(n) for n in NAMES} == {"common", "test side", "engine", "_keras", "lint"}
    top = {n for n in NAMES if "." not in n}
    assert top == TEST_SIDE | COMMON | {"engine", "_keras", "lint"}, (
        "a new top-level module: put it in engine/ or _keras/, or name it in TEST_SIDE "
        "(and ARCHITECTURE.md)"
    )


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_each_part_imports_what_it_may(path):
    me = module_name(path)
    for target, lazy, line in targets(path):
        where = f"{me}:{line} imports {target}"
        if part(me) in ("engine", "_keras", "common") and me != "__init__":
            assert part(target) not in ("test side", "lint"), (
                f"{where}: {part(me)} knows weights only, never the running test"
            )
        if part(me) == "common":
            assert part(target) == "common" or me == "__init__", where
        if target == "context":
            assert me in CONTEXT_USERS, f"{where}: only the test side touches test state"
        if target in PYTEST_USERS:
            assert me == "plugin" or target.startswith(me + "."), (
                f"{where}: {target} imports pytest; only the plugin may import it"
            )
        if lazy:
            assert me in LAZY_INTERNAL_OK, f"{where} inside a function: import it at the top"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_pytest_only_in_the_plugin(path):
    me = module_name(path)
    for names, _lazy, line in imports(path):
        if {n.split(".")[0] for n in names} & {"pytest", "_pytest"}:
            assert me in PYTEST_USERS, f"{me}:{line} imports pytest"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_heavy_libraries_are_imported_lazily(path):
    me = module_name(path)
    for names, lazy, line in imports(path):
        heads = {n.split(".")[0] for n in names}
        if lazy and not heads & {"pytest_kerasfreeze"}:
            assert heads <= LAZY_OK, (
                f"{me}:{line} imports {sorted(heads)} inside a function: only heavy "
                f"libraries ({', '.join(sorted(LAZY_OK))}) may be imported lazily"
            )
        if not lazy:
            assert not heads & LAZY_OK, f"{me}:{line} imports {sorted(heads & LAZY_OK)} at load"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_keras_internals_only_in_keras_part(path):
    """Keras' and the backends' private modules are named (imported, or as the strings
    ``importlib`` is handed) only under ``_keras/``."""
    me = module_name(path)
    if part(me) == "_keras":
        return
    for node in ast.walk(ast.parse(path.read_text())):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            text = " ".join([getattr(node, "module", None) or ""] + [a.name for a in node.names])
        if text and not (isinstance(node, ast.Constant) and " " in text.strip()):
            assert not any(text.startswith(p) for p in PRIVATE_MODULES), (
                f"{me}:{node.lineno} names {text!r}: Keras internals live in _keras/"
            )


def test_no_import_cycle():
    graph = {module_name(p): {t for t, _l, _n in targets(p)} for p in MODULES}
    done, path = set(), []

    def visit(node):
        if node in path:
            cycle = [*path[path.index(node) :], node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_no_line_is_fitted_with_fmt_skip():
    """No line cap (issue 21): a module is as long as its job needs."""
    skips = sum(p.read_text().count("# fmt: skip") for p in MODULES)
    assert skips == 0


def test_no_hidden_per_test_state_outside_context():
    """Module-level mutable state that holds "the current test" lives in context.py only."""
    for path in MODULES:
        text = path.read_text()
        if module_name(path) != "context":
            assert "ContextVar" not in text and "_ACTIVE" not in text, module_name(path)


LINT = [p for p in MODULES if part(module_name(p)) == "lint"]
# What the lint may use of the package: the trap table and the words, nothing that runs.
LINT_MAY_IMPORT = {"__init__", "traps", "engine.messages", "engine.messages.explain",
                   "engine.messages.static"}  # fmt: skip
HEAVY = {"keras", "tf_keras", "tensorflow", "jax", "torch", "numpy", "ml_dtypes"}


@pytest.mark.parametrize("path", LINT, ids=module_name)
def test_the_lint_imports_no_keras_and_nothing_of_the_engine(path):
    me = module_name(path)
    for names, _lazy, line in imports(path):
        heads = {n.split(".")[0] for n in names}
        assert not heads & HEAVY, f"{me}:{line} imports {sorted(heads & HEAVY)}"
    for target, _lazy, line in targets(path):
        assert part(target) == "lint" or target in LINT_MAY_IMPORT, (
            f"{me}:{line} imports {target}: the lint uses only traps and messages"
        )


def test_the_plugin_imports_the_lint_only_when_asked():
    lint_imports = [lazy for t, lazy, _ in targets(PACKAGE / "plugin.py") if part(t) == "lint"]
    assert lint_imports and all(lint_imports)


def _private_names_defined():
    """``{_name: {module, ...}}`` for every private function, class and attribute the
    package defines (``def _x``, ``class _X``, ``self._x = ...``, ``_X = ...``)."""
    defined = {}
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names = [node.attr]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    defined.setdefault(name, set()).add(module_name(path))
    return defined


def test_no_module_uses_another_modules_private_names():
    """Objects keep their state to themselves (issue 21): a ``_name`` the package defines
    is read or called only in the module that defines it (Keras' own private names, read
    by the modules that know Keras, are not the package's)."""
    defined = _private_names_defined()
    crossing = []
    for path in MODULES:
        here = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, ast.Attribute) and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            ):
                name = node.attr
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "pytest_kerasfreeze"
            ):
                crossing += [
                    f"{here}:{node.lineno} imports {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
            if name and name.startswith("_") and not name.startswith("__"):
                owners = defined.get(name, set())
                if owners and here not in owners:
                    crossing.append(f"{here}:{node.lineno} uses {name} of {sorted(owners)}")
    assert crossing == []
