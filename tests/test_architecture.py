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
    {"exceptions", "sequences", "traps", "memory"},
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
    {"flavors", "plots", "arguments", "messages.plan"},
    {"buffers", "tracing"},
    {"results", "digests"},
    {"selection", "provenance", "attribution"},
    {"diagnosis"},
    {"captures", "prediction"},
    {"weightdiff", "plan"},
    {"snapshots"},
    {"context"},
    {"checks"},
    {"tracker", "guard"},
    {"interception", "markers"},
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
    rest = name[len("pytest_kerasfreeze") :].lstrip(".")
    if rest in LAYER_OF:
        return rest
    head = rest.split(".")[0]
    return head if head in LAYER_OF else None


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


def test_no_module_is_too_long():
    too_long = {module_name(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > 450}
    assert too_long == {}


def test_no_hidden_per_test_state_outside_context():
    """Module-level mutable state that holds "the current test" lives in context.py only."""
    for path in MODULES:
        text = path.read_text()
        if module_name(path) != "context":
            assert "ContextVar" not in text and "_ACTIVE" not in text, module_name(path)
