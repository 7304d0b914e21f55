"""Run every script and notebook of tests/lint_corpus/ on this Keras and tell, for each,
whether its mistake shows (its ``check()``), as one JSON object on stdout.

    KERAS_BACKEND=jax python tests/corpus_runner.py
    TF_USE_LEGACY_KERAS=1 python tests/corpus_runner.py   # Keras 2: `keras` is tf_keras

A script that raises inside Keras shows its mistake too (the JAX and PyTorch backends
raise where TensorFlow ignores a flag); the error is kept in the answer, and an error
raised elsewhere (a bug of the script) is ``"shows": null``. Scripts whose ``# runs on:``
header does not name this runtime are left out.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import runpy
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
CORPUS = Path(__file__).resolve().parent / "lint_corpus"
RUNTIMES = ("tf_keras", "tensorflow", "jax", "torch")
LIBRARIES = ("keras", "tf_keras", "tensorflow", "jax", "torch")


def runtime() -> str:
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
        return "tf_keras"
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def header(path: Path, key: str) -> str | None:
    match = re.search(rf"^\s*(?:\"# |# ){key}: *([^\n\"\\\\]*)", path.read_text(), re.M)
    return match.group(1).strip() if match else None


def runs_here(path: Path, here: str) -> bool:
    runs = header(path, "runs on")
    return runs is None or here in [r.strip() for r in runs.split(",")]


def use_tf_keras() -> None:
    """``import keras`` in a script gets tf_keras (Keras 2), submodules included."""
    import tf_keras

    for sub in ("layers", "models", "optimizers", "callbacks", "losses"):
        importlib.import_module(f"tf_keras.{sub}")
    for name, module in list(sys.modules.items()):
        if name == "tf_keras" or name.startswith("tf_keras."):
            sys.modules["keras" + name[len("tf_keras") :]] = module
    assert sys.modules["keras"] is tf_keras


def run(path: Path) -> dict[str, object]:
    import numpy as np

    np.random.seed(0)
    keras = sys.modules["keras"]
    keras.utils.set_random_seed(0)
    try:
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
            # IPython's own lines (`%matplotlib inline`, `!pip ...`) are not Python
            code = re.sub(r"(?m)^\s*[%!].*$", "", code)
            namespace: dict[str, object] = {"__name__": "__main__"}
            exec(compile(code, str(path), "exec"), namespace)
        else:
            namespace = runpy.run_path(str(path), run_name="__main__")
        return {"shows": bool(namespace["check"]())}
    except Exception as err:  # noqa: BLE001 - the mistake can be an error of Keras
        raised = f"{type(err).__name__}: {err}"[:300]
        frames = traceback.extract_tb(err.__traceback__)
        where = Path(frames[-1].filename).parts if frames else ()
        by_keras = any(part in LIBRARIES for part in where)
        # an error of the script itself (or of this runner) confirms nothing
        return {"shows": True if by_keras else None, "raised": raised}
    finally:
        keras.backend.clear_session()


def main() -> None:
    here = runtime()
    if here == "tf_keras":
        use_tf_keras()
    else:
        import keras  # noqa: F401
    paths = sorted(p for p in CORPUS.iterdir() if p.suffix in (".py", ".ipynb"))
    results = {p.name: run(p) for p in paths if runs_here(p, here)}
    version = sys.modules["keras"].__version__
    print(json.dumps({"runtime": here, "keras": version, "results": results}))


if __name__ == "__main__":
    main()
