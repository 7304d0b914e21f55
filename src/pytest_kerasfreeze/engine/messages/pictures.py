"""The words and caps of the pictures (:mod:`pytest_kerasfreeze.engine.plots`) and of the
picture options: titles, axis and legend labels, row labels, and what a missing
matplotlib or a bad option is told."""

from __future__ import annotations

from pytest_kerasfreeze.engine.messages import plural

# -- caps -----------------------------------------------------------------------------
MAX_PLOT_ROWS = 40  # bars in one picture, the "... N more" row included
MAX_LABEL_CHARS = 42  # characters of a row label; longer paths keep their end
MAX_FILE_STEM = 120  # characters of a picture's file name, before "-N.png"

PIP_PLOT = 'pip install "pytest-kerasfreeze[plot]"'

# -- the categories of a bar: the flags of the weights its layers declared trainable --
TRAINABLE = "trainable"
FROZEN = "frozen"
MIXED = "mixed"
STATE_ONLY = "state only"
CATEGORIES = (TRAINABLE, FROZEN, MIXED, STATE_ONLY)
CATEGORY_LABELS = {
    TRAINABLE: "trainable",
    FROZEN: "frozen",
    MIXED: "mixed (trainable and frozen)",
    STATE_ONLY: "state only (no trainable weights)",
}
TRAP_LABEL = "compile-order trap"
SHARED_LABEL = "shared weights"
X_LABEL = "share of the weights that moved (solid part; the light part did not move)"


def title(model: str, moved: int, total: int) -> str:
    """``"Model 'clf': 2 of 4 watched weights moved"``."""
    return f"Model {model!r}: {moved} of {plural(total, 'watched weight')} moved"


def counts(moved: int, total: int) -> str:
    """The text next to a bar: ``"2/4"``."""
    return f"{moved}/{total}"


def more_rows(n: int) -> str:
    """The last row of a capped picture."""
    return f"... {n} more sub-model{'' if n == 1 else 's'} and layers"


def row_label(path: str) -> str:
    """A bar's label: the path, its end kept when it is long."""
    if len(path) <= MAX_LABEL_CHARS:
        return path
    return "..." + path[-(MAX_LABEL_CHARS - 3) :]


def collapsed_label(label: str, inside: int) -> str:
    """A sub-model drawn as one bar: ``"block_3 (10 layers)"``."""
    return f"{label} ({plural(inside, 'layer')})"


def check_picture_title(check: str, model: str, moved: int, total: int, passed: bool) -> str:
    """The title of a check's picture: the check's label, its outcome, then the model."""
    outcome = "PASS" if passed else "FAIL"
    return f"{outcome}: {check}\n{title(model, moved, total)}"


def junit_property(check: str, passed: bool, moved: int, total: int) -> str:
    """One check in the JUnit XML: ``"assert_frozen('base'): PASS (0/2)"``."""
    return f"{check}: {'PASS' if passed else 'FAIL'} ({moved}/{total})"


def html_extra_heading(check: str) -> str:
    return f"pytest-kerasfreeze: {check}"


# -- errors ---------------------------------------------------------------------------
def matplotlib_missing(what: str = "Pictures of weight changes") -> str:
    return f"{what} need matplotlib, which is not installed. Install it with: {PIP_PLOT}"


def plot_option_without_matplotlib() -> str:
    return (
        "--kerasfreeze-plot / kerasfreeze_plot: writing pictures of the checks needs "
        f"matplotlib, which is not installed. Install it with: {PIP_PLOT}"
    )


def plot_all_without_dir() -> str:
    return (
        "--kerasfreeze-plot-all / kerasfreeze_plot_all: give the directory the pictures "
        "go to with --kerasfreeze-plot=DIR (or the ini option kerasfreeze_plot)."
    )


def plot_dir_is_a_file(path: object) -> str:
    return (
        f"--kerasfreeze-plot / kerasfreeze_plot: {path} is a file; give a directory "
        "(it is created when missing)."
    )


def plot_write_failed(path: object, err: Exception) -> str:
    return f"kerasfreeze: could not write the picture {path}: {err}"
