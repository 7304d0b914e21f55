"""kerasfreeze-lint (issue 23): the rules on small sources and on the labelled corpus, the
console script as a user runs it, and bad input. Needs no Keras: the lint imports none."""

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_kerasfreeze.lint import Source, lint_paths, lint_source
from pytest_kerasfreeze.lint.rules import RULES

CORPUS = Path(__file__).resolve().parent / "lint_corpus"
CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".py", ".ipynb"))


def codes(text, path="x.py"):
    return [f.finding.code for f in lint_source(Source(path, textwrap.dedent(text)))]


def expected(path):
    """The label of a corpus file: ``# expect: KF102`` or ``# expect: clean``."""
    match = re.search(r"# expect: *([A-Za-z0-9, ]+)", path.read_text())
    assert match, f"{path.name} has no `# expect:` label"
    label = match.group(1).strip()
    return set() if label == "clean" else {c.strip() for c in label.split(",")}


# -- the corpus ----------------------------------------------------------------------------
def test_the_corpus_is_labelled_and_half_of_it_is_clean():
    scripts = [p for p in CORPUS_FILES if p.suffix == ".py"]
    notebooks = [p for p in CORPUS_FILES if p.suffix == ".ipynb"]
    assert len(scripts) >= 40 and len(notebooks) >= 4
    mistakes = [p for p in CORPUS_FILES if expected(p)]
    assert len(mistakes) * 2 == len(CORPUS_FILES)
    assert {c for p in mistakes for c in expected(p)} == set(RULES)
    for path in CORPUS_FILES:
        assert re.search(r"Source: ", path.read_text()), f"{path.name} does not cite its source"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_the_lint_finds_exactly_the_label(path):
    report = lint_paths([path])
    assert report.errors == []
    assert {f.finding.code for f in report.findings} == expected(path)


def test_recall_and_precision_on_the_corpus():
    """The README's figures: every labelled mistake found, nothing found in a clean twin."""
    found = {p: {f.finding.code for f in lint_paths([p]).findings} for p in CORPUS_FILES}
    true_positives = sum(len(found[p] & expected(p)) for p in CORPUS_FILES)
    labelled = sum(len(expected(p)) for p in CORPUS_FILES)
    reported = sum(len(found[p]) for p in CORPUS_FILES)
    assert true_positives / labelled >= 0.95  # recall
    assert true_positives == reported  # precision 100%


# -- the rules on small sources ------------------------------------------------------------
GAN = """
import keras
d = keras.Sequential([keras.layers.Dense(1)])
d.compile(loss="mse")
g = keras.Sequential([keras.layers.Dense(4)])
d.trainable = False
z = keras.Input((2,))
combined = keras.Model(z, d(g(z)))
combined.compile(loss="mse")
for epoch in range(10):
    d.train_on_batch(x, y)
    combined.train_on_batch(z, y)
"""


def test_kf102_names_the_model_the_lines_and_each_keras():
    [found] = lint_source(Source("gan.py", textwrap.dedent(GAN)))
    assert found.position() == "gan.py:6:1"
    message = found.finding.message
    assert message.startswith("d: the Keras 2 GAN recipe: `d.trainable = False` (line 6) after ")
    assert "d.compile() (line 4), then combined.compile() (line 9)" in message
    assert "then d.train_on_batch() (line 11)" in message
    assert "d never trains on Keras 3 (any backend); trains as intended on Keras 2 (tf_keras)" in (
        message
    )
    assert found.finding.fix.startswith("set d.trainable = True right before d.train_on_batch()")
    assert "custom train_step" in found.finding.fix


def test_the_gan_recipe_is_clean_when_the_flag_is_toggled_back():
    toggled = GAN.replace(
        "    d.train_on_batch(x, y)\n    combined",
        "    d.trainable = True\n    d.train_on_batch(x, y)\n    d.trainable = False\n    combined",
    )
    assert codes(toggled) == []


def test_kf101_after_the_first_fit_says_what_each_keras_does():
    text = """
    import keras
    model = keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(loss="mse")
    model.fit(x, y)
    model.layers[0].trainable = False
    model.fit(x, y)
    """
    [found] = lint_source(Source("t.py", textwrap.dedent(text)))
    assert (found.finding.code, found.finding.line) == ("KF101", 6)
    message = found.finding.message
    assert "model: `model.layers[0].trainable = False` (line 6) comes after model.compile()" in (
        message
    )
    assert "its train function was built (line 5) and before model.fit() (line 7)" in message
    assert "Keras 3 on JAX: fit() raises an optimizer ValueError" in message
    assert "Keras 3 on PyTorch: honoured for freezing" in message
    assert found.finding.fix.startswith("set `trainable` first, then call model.compile(...)")


@pytest.mark.parametrize(
    "between",
    [
        "model.compile(loss='mse')",  # recompiled after the change
        # toggled back to its compile-time value before the training call
        "model.layers[0].trainable = True; model.layers[0].trainable = False",
        "",
    ],
)
def test_no_kf101_on_the_correct_forms(between):
    text = f"""
    import keras
    model = keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(1)])
    model.layers[0].trainable = False
    model.compile(loss="mse")
    model.fit(x, y)
    {between}
    model.fit(x, y)
    """
    assert codes(text) == []


def test_no_finding_on_a_model_that_is_not_trained_afterwards():
    text = """
    import keras
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(loss="mse")
    model.fit(x, y)
    model.trainable = False
    model.predict(x)
    """
    assert codes(text) == []


def test_a_model_passed_in_from_elsewhere_is_not_known():
    text = """
    def finetune(model, x, y):
        model.fit(x, y)
        model.trainable = False
        model.fit(x, y)
    """
    assert codes(text) == []


def test_a_flag_set_on_one_path_of_an_if_is_still_a_change():
    text = """
    import keras
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(loss="mse")
    if freeze:
        model.trainable = False
    model.fit(x, y)
    """
    assert codes(text) == ["KF101"]


def test_a_compile_on_one_path_only_makes_the_model_unknown():
    text = """
    import keras
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(loss="mse")
    model.trainable = False
    if again:
        model.compile(loss="mse")
    model.fit(x, y)
    """
    assert codes(text) == []


def test_kf103_only_after_the_train_function_was_built():
    text = """
    import keras
    model = keras.Sequential([keras.layers.Dense(2, name="q"), keras.layers.Dense(1)])
    model.compile(loss="mse")
    {first}
    model.get_layer("q").enable_lora(4)
    model.fit(x, y)
    """
    assert codes(text.format(first="model.fit(x, y)")) == ["KF103"]
    assert codes(text.format(first="pass")) == []


def test_kf103_on_a_preset_model_s_backbone():
    """The KerasHub LoRA guide's call, made after a first fit()."""
    text = """
    import keras_hub
    gemma_lm = keras_hub.models.GemmaCausalLM.from_preset("gemma_2b_en")
    gemma_lm.compile(optimizer="adam")
    gemma_lm.fit(data, epochs=1)
    gemma_lm.backbone.enable_lora(rank=4)
    gemma_lm.fit(data, epochs=1)
    """
    [found] = lint_source(Source("lora.py", textwrap.dedent(text)))
    assert (found.finding.code, found.line) == ("KF103", 6)
    assert found.finding.message.startswith(
        "gemma_lm: gemma_lm.backbone.enable_lora() (line 6) creates weights after gemma_lm's "
        "train function was built (line 5)"
    )
    assert "Keras 3 on JAX: fit() raises an optimizer ValueError" in found.finding.message
    assert found.finding.fix.startswith("create the weights (enable_lora) before gemma_lm.compile")


def test_kf105_on_the_trained_model_not_on_a_nested_one():
    text = """
    import keras
    base = keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(2)])
    base.trainable = False
    base.layers[-1].trainable = True
    x = keras.Input((2,))
    model = keras.Model(x, keras.layers.Dense(1)(base(x)))
    model.compile(loss="mse")
    {trained}.fit(x, y)
    """
    assert codes(text.format(trained="base")) == ["KF105"]
    assert codes(text.format(trained="model")) == []


def test_kf104_needs_two_optimizers():
    text = """
    import keras
    class GAN(keras.Model):
        def train_step(self, data):
            self.d_optimizer.apply_gradients(zip(d, self.discriminator.trainable_weights))
            self.{opt}.apply_gradients(zip(g, self.trainable_weights))
    """
    assert codes(text.format(opt="g_optimizer")) == ["KF104"]
    assert codes(text.format(opt="d_optimizer")) == []


def test_kf104_not_across_the_branches_of_an_if():
    """tf_keras' WideDeepModel.train_step: one optimizer per part, or one for the whole."""
    text = """
    import keras
    class WideDeep(keras.Model):
        def train_step(self, data):
            if isinstance(self.optimizer, (list, tuple)):
                self.optimizer[0].apply_gradients(zip(a, self.linear_model.trainable_variables))
            else:
                self.optimizer.apply_gradients(zip(b, self.trainable_variables))
    """
    assert codes(text) == []


def test_a_loaded_model_has_flags_the_lint_does_not_know():
    text = """
    import keras
    model = keras.models.load_model("saved.keras")
    model.compile(loss="mse")
    model.trainable = False  # maybe it was saved frozen: no change, then
    model.fit(x, y)
    """
    assert codes(text) == []
    assert codes(text.replace('keras.models.load_model("saved.keras")', "keras.Sequential()")) == [
        "KF101"
    ]


def test_kf106_in_a_callback_only():
    text = """
    import keras
    class Unfreeze({base}):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.layers[0].trainable = True
    """
    assert codes(text.format(base="keras.callbacks.Callback")) == ["KF106"]
    assert codes(text.format(base="object")) == []
    own = text.replace("self.model.layers[0].trainable", "self.trainable")
    assert codes(own.format(base="keras.callbacks.Callback")) == []


def test_noqa_silences_the_line_bare_or_with_its_code():
    line = "d.trainable = False"
    assert codes(GAN.replace(line, line + "  # noqa: KF102")) == []
    assert codes(GAN.replace(line, line + "  # noqa")) == []
    assert codes(GAN.replace(line, line + "  # noqa: KF101")) == ["KF102"]


def test_a_file_without_a_trainable_word_is_parsed_but_not_walked():
    assert codes("import keras\nmodel = keras.Sequential()\nmodel.fit(x, y)\n") == []


# -- notebooks -----------------------------------------------------------------------------
def notebook(cells):
    return json.dumps(
        {
            "cells": [
                {"cell_type": kind, "metadata": {}, "source": source} for kind, source in cells
            ],
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def test_a_notebook_is_read_cell_by_cell_in_order(tmp_path):
    path = tmp_path / "train.ipynb"
    lines = GAN.strip().splitlines()
    cells = [
        ("markdown", "# A GAN"),
        ("code", "\n".join(lines[:3])),
        ("markdown", "freeze it"),
        ("code", "!pip install keras\n%matplotlib inline\n" + "\n".join(lines[3:8])),
        ("code", "\n".join(lines[8:])),
    ]
    path.write_text(notebook(cells))
    [found] = lint_paths([path]).findings
    # `d.trainable = False` is the 4th line of the 2nd code cell (after two magics)
    assert (found.cell, found.line, found.finding.col) == (2, 4, 1)
    assert found.position() == f"{path}:2:4:1"
    assert found.to_json()["cell"] == 2


# -- the console script, as a user runs it -------------------------------------------------
def commands():
    found = [[sys.executable, "-m", "pytest_kerasfreeze.lint"]]
    if shutil.which("kerasfreeze-lint"):
        found.append([shutil.which("kerasfreeze-lint")])
    return found


def lint(*args, command=None):
    return subprocess.run(
        [*(command or commands()[0]), *map(str, args)], capture_output=True, text=True
    )


@pytest.fixture
def gan_file(tmp_path):
    path = tmp_path / "gan.py"
    path.write_text(textwrap.dedent(GAN))
    return path


@pytest.mark.parametrize("command", commands(), ids=lambda c: Path(c[-1]).name)
def test_the_console_script_prints_findings_and_exits_1(command, gan_file, tmp_path):
    clean = tmp_path / "clean.py"
    clean.write_text("print('hello')\n")
    result = lint(gan_file, clean, command=command)
    assert result.returncode == 1, result.stderr
    first, fix = result.stdout.splitlines()[:2]
    assert first.startswith(f"{gan_file}:6:1: KF102 d: the Keras 2 GAN recipe")
    assert fix.startswith("    Fix: set d.trainable = True")
    assert "Found 1 finding in 2 files." in result.stderr
    assert lint(clean, command=command).returncode == 0


def test_json_output(gan_file):
    result = lint("--format", "json", gan_file)
    assert result.returncode == 1
    [finding] = json.loads(result.stdout)
    assert set(finding) == {"path", "line", "col", "code", "message", "fix"}
    assert (finding["path"], finding["line"], finding["col"], finding["code"]) == (
        str(gan_file),
        6,
        1,
        "KF102",
    )


def test_bad_inputs_are_told_and_exit_2_while_the_rest_is_checked(gan_file, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import keras\n\ndef f(:\n    pass\n")
    not_json = tmp_path / "bad.ipynb"
    not_json.write_text("{not json")
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\x00\x01\x02keras")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no python here")
    missing = tmp_path / "missing.py"
    result = lint(gan_file, broken, not_json, binary, empty, missing)
    assert result.returncode == 2
    assert f"{gan_file}:6:1: KF102" in result.stdout  # the other files are still checked
    errors = result.stderr
    assert f"kerasfreeze-lint: error: {broken}:3: syntax error: " in errors
    assert f"{not_json}: not a notebook: invalid JSON at line 1 column 2" in errors
    assert f"{binary}: a binary file, not Python source" in errors
    assert f"{empty}: no Python files (.py, .ipynb) in this directory" in errors
    assert f"{missing}: no such file or directory" in errors


def test_a_file_nested_too_deeply_is_told(tmp_path, gan_file):
    deep = tmp_path / "generated.py"
    deep.write_text("model.trainable = False\nx = " + " + ".join(["1"] * 20000) + "\n")
    result = lint(deep, gan_file)
    assert result.returncode == 2
    assert f"{deep}: nested too deeply to be checked" in result.stderr
    assert "KF102" in result.stdout


def test_usage_error_without_paths():
    result = lint()
    assert result.returncode == 2
    assert "the following arguments are required: PATH" in result.stderr


def test_the_lint_imports_no_keras():
    code = (
        "import sys, pytest_kerasfreeze.lint.cli as c; c.main(['--format', 'json', "
        f"{str(CORPUS)!r}]); "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch', 'numpy') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_pre_commit_hook_is_declared():
    text = (Path(__file__).resolve().parent.parent / ".pre-commit-hooks.yaml").read_text()
    assert "- id: kerasfreeze-lint" in text
    assert "entry: kerasfreeze-lint" in text


def test_the_lint_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "lint_bench.py"
    subprocess.run([sys.executable, str(bench), "--quick", "--json", str(out)], check=True)
    rows = {r["tool"]: r for r in json.loads(out.read_text())}
    assert rows["kerasfreeze-lint"]["tree"] == "lint corpus"
    assert rows["kerasfreeze-lint"]["lines"] > 1000 and rows["kerasfreeze-lint"]["seconds"] < 5


def test_the_console_script_is_declared():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"kerasfreeze-lint": "pytest_kerasfreeze.lint.cli:main"}
