"""The layering stays true: each module imports only the layers below it, no cycle, no
hidden per-test state in the engine (issue 12). Parses the package's imports; needs no
Keras."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "pytest_kerasfreeze"

# Bottom to top. A module may import modules of lower layers only (and, inside the
# `messages` package, the package itself). ARCHITECTURE.md says the same in words.
LAYERS = [
    {"exceptions", "sequences", "traps", "memory", "_keras"},
    {"changes", "findings"},
    {"verdicts"},
    {
        "messages",
        "messages.reports",
        "messages.explain",
        "messages.errors",
        "messages.html",
        "messages.pictures",
    },
    {"messages.static"},
    # the static check (kerasfreeze-lint): beside the engine, on the trap table and the words
    {"lint.sources", "lint.state"},
    {"lint.builders", "lint.rules"},
    {"lint.flow"},
    {"lint.checker"},
    {"lint.cli", "lint.items"},
    {"lint", "lint.__main__"},
    {"flavors", "plots", "arguments", "messages.plan"},
    {"buffers", "tracing"},
    {"results", "digests"},
    {"selection", "provenance", "attribution", "_keras.hosts"},
    {"diagnosis", "optimizer_state"},
    {"captures", "prediction"},
    {"multihost"},
    {"weightdiff", "plan"},
    {"snapshots", "reload"},
    {"context"},
    {"checks"},
    {"tracker", "guard"},
    {"interception", "markers"},
    {"modes"},
    {"observer"},
    {"recording"},
    {"terminal"},
    {"reporting"},
    {"plugin"},
    {"__init__"},
]
LAYER_OF = {module: i for i, layer in enumerate(LAYERS) for module in layer}

# Imported inside functions on purpose: heavy, or absent where the plugin must load.
LAZY_OK = {"keras", "tf_keras", "tensorflow", "jax", "torch", "matplotlib", "ml_dtypes"}
# The plugin loads without numpy or Keras: it imports the engine when a test starts.
LAZY_ENGINE_OK = {"plugin", "reporting"}
# Only the user-facing layer and the observer touch the current test's context.
CONTEXT_USERS = {"checks", "guard", "observer", "plugin", "recording"}


def module_name(path):
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = rel.parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)


def imports(path):
    """(imported pytest_kerasfreeze module, lazily?) for every import in the file."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            lazy = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
                found.append((names, in_function, child.lineno))
            elif isinstance(child, ast.Import):
                found.append(([a.name for a in child.names], in_function, child.lineno))
            visit(child, lazy)

    visit(tree, False)
    return found


def internal(name):
    """``pytest_kerasfreeze.messages.errors`` -> ``messages.errors``."""
    if not name.startswith("pytest_kerasfreeze"):
        return None
    parts = name[len("pytest_kerasfreeze") :].lstrip(".").split(".")
    while parts:  # `lint.cli.main` is a name in lint.cli
        if ".".join(parts) in LAYER_OF:
            return ".".join(parts)
        parts.pop()
    return None


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    names = {module_name(p) for p in MODULES}
    assert names - set(LAYER_OF) == set(), "place new modules in LAYERS (and ARCHITECTURE.md)"
    assert set(LAYER_OF) - names == set()


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_only_go_down(path):
    me = module_name(path)
    for names, lazy, line in imports(path):
        targets = {t for t in (internal(n) for n in names) if t is not None and t != me}
        for target in targets:
            same_package = me.startswith("messages.") and target == "messages"
            assert LAYER_OF[target] < LAYER_OF[me] or same_package, (
                f"{me}:{line} imports {target}, which is not below it"
            )
            if lazy:
                assert me in LAZY_ENGINE_OK or me == "__init__", (
                    f"{me}:{line} imports {target} inside a function: import it at the top"
                )
            if target == "context":
                assert me in CONTEXT_USERS, f"{me}:{line}: the engine must not touch test state"
        if lazy and not targets:
            heads = {n.split(".")[0] for n in names}
            assert heads <= LAZY_OK | {"pytest_kerasfreeze"}, (
                f"{me}:{line} imports {sorted(heads)} inside a function: only heavy "
                f"libraries ({', '.join(sorted(LAZY_OK))}) may be imported lazily"
            )


def test_no_line_is_fitted_with_fmt_skip():
    """A module is as long as its job needs (issue 21): no ``# fmt: skip`` added to fit
    a line cap. Those left from the cap are counted down, never up."""
    skips = sum(p.read_text().count("# fmt: skip") for p in MODULES)
    assert skips <= 45


def test_no_hidden_per_test_state_outside_context():
    """Module-level mutable state that holds "the current test" lives in context.py only."""
    for path in MODULES:
        text = path.read_text()
        if module_name(path) != "context":
            assert "ContextVar" not in text and "_ACTIVE" not in text, module_name(path)


LINT = [p for p in MODULES if module_name(p).split(".")[0] == "lint"]
# What the lint may use of the package: the trap table and the words, nothing that runs.
LINT_MAY_IMPORT = {"traps", "messages", "messages.explain", "messages.static"}
HEAVY = {"keras", "tf_keras", "tensorflow", "jax", "torch", "numpy", "ml_dtypes"}


@pytest.mark.parametrize("path", LINT, ids=module_name)
def test_the_lint_imports_no_keras_and_nothing_of_the_engine(path):
    me = module_name(path)
    for names, _lazy, line in imports(path):
        heads = {n.split(".")[0] for n in names}
        assert not heads & HEAVY, f"{me}:{line} imports {sorted(heads & HEAVY)}"
        for target in {t for t in (internal(n) for n in names) if t is not None}:
            assert target.split(".")[0] == "lint" or target in LINT_MAY_IMPORT, (
                f"{me}:{line} imports {target}: the lint uses only traps and messages"
            )


def test_the_plugin_imports_the_lint_only_when_asked():
    plugin = PACKAGE / "plugin.py"
    lint_imports = [
        lazy
        for names, lazy, _ in imports(plugin)
        if any((internal(n) or "").startswith("lint") for n in names)
    ]
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
