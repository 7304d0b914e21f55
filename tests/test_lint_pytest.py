"""``pytest --kerasfreeze-lint`` (issue 23): one ``path::kerasfreeze-lint`` item per
``.py``/``.ipynb`` file, failing with the findings; off by default; the ini twin; xdist."""

import json
import textwrap

import pytest

GAN = textwrap.dedent(
    """
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
).lstrip()
CLEAN_TEST = "def test_ok():\n    assert True\n"


@pytest.fixture
def project(pytester):
    pytester.makepyfile(gan=GAN, test_ok=CLEAN_TEST)
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# notes"]},
            {"cell_type": "code", "metadata": {}, "source": GAN},
        ],
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (pytester.path / "train.ipynb").write_text(json.dumps(notebook))
    return pytester


def test_one_item_per_file(project):
    result = project.runpytest("--kerasfreeze-lint", "--collect-only", "-q")
    lines = set(result.stdout.lines)
    assert {
        "gan.py::kerasfreeze-lint",
        "test_ok.py::kerasfreeze-lint",
        "test_ok.py::test_ok",
        "train.ipynb::kerasfreeze-lint",
    } <= lines


def test_the_failing_item_shows_the_findings(project):
    result = project.runpytest("--kerasfreeze-lint", "-rf")
    result.assert_outcomes(passed=2, failed=2)
    # pytest 9 puts a text failure's first line on the summary line; older pytest only
    # when the failure carries a traceback, which a lint finding has none of
    summary = "FAILED gan.py::kerasfreeze-lint"
    if int(pytest.__version__.split(".")[0]) >= 9:
        summary += " - gan.py:5:1: KF102 *"
    result.stdout.fnmatch_lines([summary])
    result.stdout.fnmatch_lines(
        [
            "*_ kerasfreeze-lint: gan.py _*",
            "gan.py:5:1: KF102 d: the Keras 2 GAN recipe: `d.trainable = False` (line 5)*",
            "    Fix: set d.trainable = True right before d.train_on_batch()*",
            "*_ kerasfreeze-lint: train.ipynb _*",
            "train.ipynb:1:5:1: KF102 d: the Keras 2 GAN recipe*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_clean_file_passes(project):
    result = project.runpytest("--kerasfreeze-lint", "-v", "test_ok.py")
    result.stdout.fnmatch_lines(["test_ok.py::kerasfreeze-lint PASSED*"])
    result.assert_outcomes(passed=2)


def test_off_by_default(project):
    result = project.runpytest("--collect-only", "-q")
    assert "kerasfreeze-lint" not in result.stdout.str()
    result.stdout.fnmatch_lines(["test_ok.py::test_ok"])


def test_the_ini_turns_it_on(project):
    project.makeini("[pytest]\nkerasfreeze_lint = true\n")
    result = project.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["gan.py::kerasfreeze-lint"])


def test_a_syntax_error_fails_its_item_only(project):
    project.makepyfile(broken="def f(:\n    pass\n")
    result = project.runpytest("--kerasfreeze-lint")
    result.stdout.fnmatch_lines(
        ["*_ kerasfreeze-lint: broken.py _*", "broken.py:1: syntax error: *"]
    )
    result.assert_outcomes(passed=2, failed=3)


def test_with_xdist(project):
    result = project.runpytest("--kerasfreeze-lint", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*gan.py:5:1: KF102*"])
