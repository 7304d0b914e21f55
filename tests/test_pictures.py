"""Pictures of a diff (plots.figure) and its HTML table (messages.html.diff_table), on
real models trained for real; read back from the matplotlib Figure (issue 16)."""

import html
import importlib.util
import itertools
import re
import sys
import warnings

import numpy as np
import pytest

from kmodels import BACKEND, LEGACY, compile_, data, keras, seed_containers
from pytest_kerasfreeze import CompileOrderWarning, snapshot
from pytest_kerasfreeze.engine import plots
from pytest_kerasfreeze.engine.changes import Mover, WeightChange
from pytest_kerasfreeze.engine.findings import Finding
from pytest_kerasfreeze.engine.messages import MAX_SUBMODEL_ROWS, MAX_WEIGHT_ROWS, pictures
from pytest_kerasfreeze.engine.messages.html import diff_table
from pytest_kerasfreeze.engine.results import DiffFigures
from pytest_kerasfreeze.traps import TRAP_SEMANTICS

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="matplotlib (the extra 'plot')"
)
TRAINABLE, FROZEN, MIXED, STATE = (
    pictures.TRAINABLE,
    pictures.FROZEN,
    pictures.MIXED,
    pictures.STATE_ONLY,
)


def figures_of(d, findings=None):
    findings = d.findings() if findings is None else findings
    return DiffFigures(d.model_name, tuple(d.changes), d.by_submodel(), tuple(findings))


def every_category_model():
    """A frozen ``base``, a ``body`` half frozen (mixed), BatchNormalization without
    gamma/beta (state only: its statistics move) and a ``head``."""
    base = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, name="base_dense")], name="base"
    )
    base.trainable = False
    body = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(8, activation="tanh", name="body_frozen"),
            keras.layers.Dense(8, name="body_trains"),
        ],
        name="body",
    )
    body.get_layer("body_frozen").trainable = False
    inp = keras.Input((4,))
    stats = keras.layers.BatchNormalization(center=False, scale=False, name="stats")
    out = keras.layers.Dense(1, name="head")(stats(body(base(inp))))
    return compile_(keras.Model(inp, out, name="clf"))


@pytest.fixture(scope="module")
def trained():
    """The figures of one real training of every_category_model (plain data)."""
    keras.utils.set_random_seed(1234)
    model = every_category_model()
    x, y = data()
    before = snapshot(model)
    model.fit(x, y, verbose=0)
    return figures_of(before.diff(before.retake()))


def patch(ax, gid):
    [found] = [p for p in ax.patches if p.get_gid() == gid]
    return found


def hex_of(rgba):
    return "#" + "".join(f"{round(c * 255):02X}" for c in rgba[:3])


def legend_labels(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_rows_of_a_real_model(trained):
    assert trained.by_submodel == {
        "base": (0, 2),
        "base/base_dense": (0, 2),
        "body": (2, 4),
        "body/body_frozen": (0, 2),
        "body/body_trains": (2, 2),
        "stats": (2, 2),
        "head": (2, 2),
    }
    rows = plots.rows(trained)
    assert [(r.path, r.moved, r.total, r.category) for r in rows] == [
        ("base", 0, 2, FROZEN),
        ("base/base_dense", 0, 2, FROZEN),
        ("body", 2, 4, MIXED),
        ("body/body_frozen", 0, 2, FROZEN),
        ("body/body_trains", 2, 2, TRAINABLE),
        ("stats", 2, 2, STATE),
        ("head", 2, 2, TRAINABLE),
    ]
    assert not any(r.trap or r.shared for r in rows)


@needs_matplotlib
def test_figure_bars_labels_colours_and_counts(trained):
    fig = plots.figure(trained)
    [ax] = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == list(trained.by_submodel)
    assert ax.get_title(loc="left") == "Model 'clf': 6 of 10 watched weights moved"
    for path, (moved, total) in trained.by_submodel.items():
        solid, rest = patch(ax, f"moved:{path}"), patch(ax, f"rest:{path}")
        assert solid.get_width() == pytest.approx(moved / total)
        assert rest.get_x() == pytest.approx(moved / total)
        assert solid.get_width() + rest.get_width() == pytest.approx(1.0)
    expected = {"base": FROZEN, "body": MIXED, "body/body_trains": TRAINABLE, "stats": STATE}
    for path, category in expected.items():
        assert hex_of(patch(ax, f"moved:{path}").get_facecolor()) == plots.COLORS[category]
        assert hex_of(patch(ax, f"rest:{path}").get_facecolor()) == plots.lighter(
            plots.COLORS[category]
        )
        assert (patch(ax, f"moved:{path}").get_hatch() or "") == plots.HATCHES[category]
    counts = {t.get_gid(): t.get_text() for t in ax.texts}
    assert counts == {f"counts:{p}": f"{m}/{t}" for p, (m, t) in trained.by_submodel.items()}
    assert legend_labels(fig) == [pictures.CATEGORY_LABELS[c] for c in pictures.CATEGORIES]
    assert type(fig.canvas).__name__ == "FigureCanvasAgg"  # never a window
    assert plots.png(trained).startswith(b"\x89PNG\r\n\x1a\n")


@needs_matplotlib
def test_a_title_replaces_the_default(trained):
    [ax] = plots.figure(trained, title="after epoch 1").axes
    assert ax.get_title(loc="left") == "after epoch 1"


def many_submodels(trained_block=7, blocks=20, layers=10):
    """``blocks`` parallel sub-models of ``layers`` Dense layers each (200 layers);
    only one of them trains."""
    inp = keras.Input((4,))
    outs = []
    for b in range(blocks):
        block = keras.Sequential(
            [keras.Input((4,))] + [keras.layers.Dense(2, name=f"dense_{i}") for i in range(layers)],
            name=f"block_{b:02d}",
        )
        block.trainable = b == trained_block
        outs.append(block(inp))
    model = keras.Model(inp, keras.layers.Add(name="sum")(outs), name="wide")
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)  # no tracing of 200 layers
    return model


@needs_matplotlib
def test_two_hundred_layers_collapse_to_what_moved():
    model = many_submodels()
    x, _ = data()
    before = snapshot(model)
    model.fit(x, np.zeros((32, 2), "float32"), verbose=0)
    figures = figures_of(before.diff(before.retake()))
    assert len(figures.by_submodel) == 220

    fig = plots.figure(figures)
    [ax] = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    trained = ["block_07"] + [f"block_07/dense_{i}" for i in range(10)]
    frozen = [f"block_{b:02d} (10 layers)" for b in range(20) if b != 7]
    assert labels == frozen[:7] + trained + frozen[7:]
    assert len(labels) <= pictures.MAX_PLOT_ROWS
    assert hex_of(patch(ax, "moved:block_07/dense_3").get_facecolor()) == plots.COLORS[TRAINABLE]
    assert patch(ax, "moved:block_07").get_width() == 1.0
    assert patch(ax, "moved:block_03").get_width() == 0.0
    counts = {t.get_gid(): t.get_text() for t in ax.texts}
    assert (counts["counts:block_07"], counts["counts:block_00"]) == ("20/20", "0/20")
    assert fig.get_size_inches()[1] < 14  # 30 rows, readable

    # capped: the most telling rows are kept, then "... N more"
    capped = plots.rows(figures, max_rows=12)
    assert [r.path for r in capped[:-1]] == ["block_07"] + [
        f"block_07/dense_{i}" for i in range(10)
    ]
    assert capped[-1].label == "... 19 more sub-models and layers"
    assert capped[-1].total == 0


@needs_matplotlib
def test_compile_order_trap_layers_are_marked(weight_tracker):
    """The Keras 2 GAN recipe gone wrong: the discriminator is frozen after the
    combined model was compiled, so the flag change is a compile-order trap."""
    discriminator = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh", name="d_hidden"),
            keras.layers.Dense(1, activation="sigmoid", name="d_out"),
        ],
        name="discriminator",
    )
    generator = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(4, name="g_out")], name="generator"
    )
    z = keras.Input((2,))
    combined = keras.Model(z, discriminator(generator(z)), name="combined")
    combined.compile(optimizer="adam", loss="binary_crossentropy")
    discriminator.trainable = False
    noise = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
    if (
        TRAP_SEMANTICS[("tf_keras" if LEGACY else BACKEND, "after-compile", "freeze")][0]
        == "raises"
    ):
        pytest.skip("this Keras raises on the trap: nothing trains, nothing to draw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileOrderWarning)
        combined.train_on_batch(noise, np.ones((16, 1), "float32"))
    record = weight_tracker.records[-1]
    [trap] = [f for f in record.findings if f.kind == "compile-order trap"]
    figures = figures_of(record.diff, record.findings)

    rows = {r.path: r for r in plots.rows(figures)}
    assert {p for p, r in rows.items() if r.trap} == set(trap.layers)
    assert set(trap.layers) == {"discriminator/d_hidden", "discriminator/d_out"}
    fig = plots.figure(figures)
    [ax] = fig.axes
    for path in trap.layers:
        assert hex_of(patch(ax, f"moved:{path}").get_edgecolor()) == plots.TRAP_COLOR
    assert hex_of(patch(ax, "moved:generator").get_edgecolor()) == plots.EDGE.upper()
    markers = [line for line in ax.lines if line.get_marker() == plots.TRAP_MARKER]
    assert sorted(line.get_ydata()[0] for line in markers) == sorted(
        list(rows).index(p) for p in trap.layers
    )
    assert pictures.TRAP_LABEL in legend_labels(fig)


@needs_matplotlib
def test_shared_weights_are_marked(weight_tracker):
    _model_fixed, model_normal, *_ = seed_containers()
    x, y = data()
    model_normal.fit(x, y, verbose=0)
    record = weight_tracker.records[-1]
    figures = figures_of(record.diff, record.findings)
    rows = plots.rows(figures)
    assert [r.path for r in rows if r.shared] == [
        "NormalContainer/shared_1",
        "NormalContainer/shared_2",
    ]
    fig = plots.figure(figures)
    assert [line.get_marker() for line in fig.axes[0].lines] == [plots.SHARED_MARKER] * 2
    assert pictures.SHARED_LABEL in legend_labels(fig)
    assert pictures.TRAP_LABEL not in legend_labels(fig)


def test_category_colours_are_okabe_ito_and_differ_in_greyscale():
    colours = [plots.COLORS[c] for c in pictures.CATEGORIES]
    assert set(colours) <= set(plots.OKABE_ITO.values())
    greys = sorted(plots.grey(c) for c in colours)
    assert min(b - a for a, b in itertools.pairwise(greys)) >= 40
    hatches = [plots.HATCHES[c] for c in pictures.CATEGORIES]
    assert len(set(hatches)) == len(hatches)
    # the light part (did not move) is lighter than the solid part of its category
    for c in colours:
        assert plots.grey(plots.lighter(c)) > plots.grey(c)
    assert plots.grey(plots.TRAP_COLOR) < 200  # the trap outline shows on white


def synthetic(n_moved=2, n_still=2, model="m", extra_findings=()):
    def change(path, moved, trainable=True, declared=True):
        return WeightChange.make(
            path=path, layer=path.split("/")[-2], owners=(path.split("/")[0],), shape=(2, 3),
            dtype="float32", trainable=trainable, declared_trainable=declared, moved=moved,
            max_abs_delta=0.25 if moved else 0.0, rel_delta=0.5 if moved else 0.0,
            changed_fraction=1.0 if moved else 0.0, changed_elements=6 if moved else 0,
            nonfinite=False, moved_by=(Mover("optimizer", "optimizer", "fit()"),) if moved else (),
        )  # fmt: skip

    changes = [change(f"still/d{i}/kernel", False, trainable=False) for i in range(n_still)]
    changes += [change(f"moves/d{i}/kernel", True) for i in range(n_moved)]
    by_submodel = {"still": (0, n_still), "moves": (n_moved, n_moved)}
    by_submodel |= {f"still/d{i}": (0, 1) for i in range(n_still)}
    by_submodel |= {f"moves/d{i}": (1, 1) for i in range(n_moved)}
    return DiffFigures(model, tuple(changes), by_submodel, tuple(extra_findings))


def one_bar_per_category():
    """Four sub-models whose weights all moved: trainable, frozen (moved anyway), mixed
    and state only."""

    def change(path, trainable, declared=True):
        return WeightChange.make(
            path=path, layer=path.split("/")[0], owners=("m",), shape=(2,), dtype="float32",
            trainable=trainable, declared_trainable=declared, moved=True, max_abs_delta=0.1,
            rel_delta=0.1, changed_fraction=1.0, changed_elements=2, nonfinite=False,
        )  # fmt: skip

    changes = (change("t/kernel", True), change("f/kernel", False), change("x/a", True),
               change("x/b", False), change("s/mean", False, declared=False))  # fmt: skip
    return DiffFigures("m", changes, {"t": (1, 1), "f": (1, 1), "x": (2, 2), "s": (1, 1)})


@needs_matplotlib
def test_every_category_reads_apart_in_greyscale():
    """Draw every category, convert the picture to grey as a printer would (ITU-R 601
    luma), and compare the bars pixel by pixel."""
    figures = one_bar_per_category()
    assert [r.category for r in plots.rows(figures)] == [TRAINABLE, FROZEN, MIXED, STATE]
    fig = plots.figure(figures)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba()).astype(float)
    grey = 0.299 * rgba[..., 0] + 0.587 * rgba[..., 1] + 0.114 * rgba[..., 2]
    height = grey.shape[0]
    ax = fig.axes[0]

    def median_grey(gid):
        box = patch(ax, gid).get_window_extent()
        x0, x1 = int(box.x0 + 0.3 * box.width), int(box.x1 - 0.3 * box.width)
        y0, y1 = int(height - box.y1 + 0.3 * box.height), int(height - box.y0 - 0.3 * box.height)
        return float(np.median(grey[y0:y1, x0:x1]))

    seen = {path: median_grey(f"moved:{path}") for path in ("t", "f", "x", "s")}
    values = sorted(seen.values())
    assert min(b - a for a, b in itertools.pairwise(values)) >= 30, seen


def test_missing_matplotlib_says_how_to_install_it(monkeypatch, trained):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert plots.available() is False
    with pytest.raises(ImportError, match=re.escape('pip install "pytest-kerasfreeze[plot]"')):
        plots.figure(trained)
    with pytest.raises(ImportError, match=re.escape('pip install "pytest-kerasfreeze[plot]"')):
        plots.png(trained)


def test_html_table_moved_rows_first(trained):
    page = diff_table(trained)
    assert page.startswith('<div class="kerasfreeze-diff">')
    assert "Weights of model &#x27;clf&#x27;: 6 of 10 watched weights moved" in page
    weights = re.findall(r"<tr[^>]*><td>([^<]*)</td><td>\(", page)
    moved = ["body/body_trains/kernel", "body/body_trains/bias"]
    assert weights[:6] == [*moved, "stats/moving_mean", "stats/moving_variance",
                           "head/kernel", "head/bias"]  # fmt: skip
    assert set(weights[6:]) == {c.path for c in trained.changes if not c.moved}
    for header in ("weight", "shape", "dtype", "max |Δ|", "rel Δ", "changed", "flag", "moved by"):
        assert f"<th>{html.escape(header)}</th>" in page
    assert "<td>body/body_trains</td><td>2 / 2</td>" in page
    assert '<tr class="moved"><td>head/kernel</td><td>(8, 1)</td><td>float32</td>' in page


def test_html_table_escapes_everything():
    finding = Finding("shared weights", "<m>", "a <b>bold</b> & claim", "e", "f", layers=["x"])
    figures = synthetic(model="<script>alert(1)</script>", extra_findings=[finding])
    odd = figures.changes[0].replace(path="still/<d&0>/kernel")
    figures = DiffFigures(figures.model, (odd, *figures.changes[1:]), {"<p>": (0, 1)}, (finding,))
    page = diff_table(figures)
    assert "<script>" not in page and "<b>bold" not in page and "<d&0>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "still/&lt;d&amp;0&gt;/kernel" in page
    assert "<td>&lt;p&gt;</td>" in page
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; claim" in page


def test_html_table_is_capped_like_the_text_report():
    figures = synthetic(n_moved=5, n_still=30)
    page = diff_table(figures)
    rows = re.findall(r"<td>((?:still|moves)/d\d+/kernel)</td>", page)
    assert len(rows) == MAX_WEIGHT_ROWS
    assert rows[:5] == [f"moves/d{i}/kernel" for i in range(5)]
    assert "... and 15 more weights (0 moved)" in page
    hidden = len(figures.by_submodel) - MAX_SUBMODEL_ROWS
    assert f"... and {hidden} more sub-models and layers" in page
    assert "<td>optimizer @ fit()</td>" in page
