"""``kerasfreeze-lint``: the freeze mistakes that can be seen in the source, without running it.

A static check of ``.py`` files and ``.ipynb`` notebooks with Python's ``ast``: it imports
nothing of Keras, TensorFlow, JAX or PyTorch, and nothing of the runtime engine but the
trap table (:mod:`pytest_kerasfreeze.traps`) and the words
(:mod:`pytest_kerasfreeze.engine.messages`).

* :mod:`~pytest_kerasfreeze.lint.sources`: reading scripts and notebooks, ``# noqa``;
* :mod:`~pytest_kerasfreeze.lint.state`, :mod:`~pytest_kerasfreeze.lint.flow`: the flow
  pass (what each name holds, what each model was built from, flags and compiles);
* :mod:`~pytest_kerasfreeze.lint.rules`: KF101 to KF106;
* :mod:`~pytest_kerasfreeze.lint.checker`, :mod:`~pytest_kerasfreeze.lint.cli`: files,
  output, the console script; :mod:`~pytest_kerasfreeze.lint.items`: the pytest items.

Example::

    from pathlib import Path
    from pytest_kerasfreeze.lint import lint_paths

    report = lint_paths([Path("train.py")])
    for finding in report.findings:
        print(finding.text())
"""

from pytest_kerasfreeze.lint.checker import Located, Report, lint_file, lint_paths, lint_source
from pytest_kerasfreeze.lint.rules import RULES, LintFinding
from pytest_kerasfreeze.lint.sources import Source, SourceError, read_source

__all__ = [
    "RULES",
    "LintFinding",
    "Located",
    "Report",
    "Source",
    "SourceError",
    "lint_file",
    "lint_paths",
    "lint_source",
    "read_source",
]
