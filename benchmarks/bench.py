"""pytest-kerasfreeze benchmark: the plugin's checks against the hand-written baseline.

The baseline is what users write today (the keras-io guide's idiom, the old Keras memo's
``all_weights``): ``before = model.get_weights()``, train, ``after = model.get_weights()``,
``np.array_equal`` on each pair. Everything is measured in one run, side by side, and
reported as ratios (median of ``--repeat`` runs). Training itself is never timed: the
weights are changed by direct assignment between the two timed halves.

Ours is what users run: ``with assert_frozen(model, mode=...):`` (or ``assert_trains``)
through the public API, creating the check and entering it in the first half, leaving
the block (its check, the report on failure) in the second. A check does more than a
bare snapshot: it resolves the selection when created, foresees the next ``fit()`` for
its message, and judges on exit.

    KERAS_BACKEND=tensorflow python benchmarks/bench.py
    KERAS_BACKEND=jax        python benchmarks/bench.py --repeat 7
    KERAS_BACKEND=torch      python benchmarks/bench.py --quick   # smaller, for a smoke run
    KERAS_BACKEND=torch      python benchmarks/bench.py --only explain   # one group
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGETS = {
    "whole model, nothing moved": ("ratio", 0.4),
    "whole model, nothing moved, all rewritten": ("ratio", 0.75),
    "whole model, everything moved": ("ratio", 1.5),
    "~10% selection vs whole-model baseline": ("ratio", 0.2),
    "per-variable overhead": ("ratio", 0.5),
    "extra peak memory / watched bytes": ("ratio", 1.1),
    "digest: whole model, nothing moved": ("ratio", 0.2),
    "digest: extra peak memory / watched bytes": ("ratio", 0.01),
    "plugin load (pytest --co)": ("ms", 50.0),
    "frozen marker on a small CNN test": ("ratio", 1.10),
    "FreezeGuard on a small CNN fit, 3 epochs": ("ratio", 1.05),
    "100 recorded train_on_batch calls, extra RSS": ("mib", 16.0),
    "scale: quarter of memory, digest, extra peak": ("ratio", 0.01),
    "optimizer_state=True vs the weight check": ("ratio", 1.1),
    "optimizer_state=True, optimizer reused": ("ratio", 1.1),
    "inference_mode marker on a small CNN test": ("ratio", 1.05),
    "explain() / summary(show_trainable=True)": ("ratio", 1.0),
    "explain() per variable, largest / smallest model": ("ratio", 2.0),
    "2 JAX processes, digest check vs 1 process": ("ratio", 1.2),
}


def median_time(fn, repeat):
    """Median wall time of ``fn`` over ``repeat`` runs, after one untimed run (the first
    run of a variant pays for page faults of fresh memory, caches and lazy imports)."""
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        fn()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def big_model(keras, width, depth):
    layers = [keras.Input((width,))]
    layers += [keras.layers.Dense(width, name=f"dense_{i}") for i in range(depth)]
    return keras.Sequential(layers, name="big")


def perturb(model):
    for variable in model.weights:
        variable.assign(variable.value + 1e-3)


def rewrite(model):
    """Write every weight with the value it holds: new buffers, the same bits (what a
    trainable weight whose gradient is zero goes through)."""
    for variable in model.weights:
        variable.assign(variable.numpy())


def bench_engine(args, results):
    import keras
    import numpy as np

    from pytest_kerasfreeze import assert_frozen, assert_trains

    width, depth = (1000, 4) if args.quick else (2900, 12)
    model = big_model(keras, width, depth)
    params = model.count_params()
    watched = sum(int(np.prod(w.shape)) * 4 for w in model.weights)
    print(
        f"model: {depth} Dense({width}) layers, {params / 1e6:.1f}M parameters, "
        f"{watched / 2**20:.0f} MiB",
        flush=True,
    )

    # A check is two timed halves around training: (before training, after training).
    held = {}

    def baseline_before():
        held["before"] = model.get_weights()

    def baseline_after():
        after = model.get_weights()
        held["equal"] = [np.array_equal(a, b) for a, b in zip(held["before"], after, strict=True)]
        return all(held["equal"])

    # `with assert_frozen(model, mode=...):` in two halves: what the with statement runs
    # before the block (create the check, enter it) and after it (leave it).
    def ours_before():
        held["check"] = assert_frozen(model, mode="copy")
        held["check"].__enter__()

    def digest_before():
        held["check"] = assert_frozen(model, mode="digest")
        held["check"].__enter__()

    def trains_before():
        held["check"] = assert_trains(model, mode="copy")
        held["check"].__enter__()

    def ours_after_frozen():
        held["check"].__exit__(None, None, None)  # raises if a weight moved
        return True

    def ours_after_report():
        held["check"].__exit__(None, None, None)  # assert_trains: raises unless all moved
        diff = held["check"].diff
        held["report"] = diff.report()  # every statistic, in the full report
        return not diff.moved()

    def side_by_side(variants, train, unchanged):
        """Median time of each (first, second) check, the variants interleaved run by
        run so that each meets the same state of the machine's memory; one untimed
        round first. Training (``train``) is not timed."""
        times = {name: [] for name in variants}
        for i in range(args.repeat + 1):
            for name, (first, second) in variants.items():
                held.clear()  # free the previous check's copies before timing this one
                start = time.perf_counter()
                first()
                t1 = time.perf_counter() - start
                train(model)
                start = time.perf_counter()
                assert second() is unchanged, name
                if i:
                    times[name].append(t1 + time.perf_counter() - start)
        held.clear()
        return [statistics.median(times[name]) for name in variants]

    cases = [
        # (figure, what training does, the check of ours, its two halves)
        ("whole model, nothing moved", lambda m: None, ours_before, ours_after_frozen, True),
        # The weights not written since the snapshot (frozen ones, in training) are known
        # unchanged on TensorFlow without a comparison; rewritten ones must be compared.
        (
            "whole model, nothing moved, all rewritten",
            rewrite,
            ours_before,
            ours_after_frozen,
            True,
        ),
        ("whole model, everything moved", perturb, trains_before, ours_after_report, False),
    ]
    for figure, train, ours_first, ours_after, unchanged in cases:
        base, ours = side_by_side(
            {"baseline": (baseline_before, baseline_after), "ours": (ours_first, ours_after)},
            train,
            unchanged,
        )
        results[figure] = (ours / base, f"{ours * 1e3:.0f} ms vs {base * 1e3:.0f} ms")
        if figure == "whole model, nothing moved":
            whole_baseline = base
    # digest mode: a hash and a norm per weight, every byte read, no copy kept
    base, ours = side_by_side(
        {"baseline": (baseline_before, baseline_after), "ours": (digest_before, ours_after_frozen)},
        rewrite,
        True,
    )
    results["digest: whole model, nothing moved"] = (
        ours / base,
        f"{ours * 1e3:.0f} ms vs {base * 1e3:.0f} ms (every weight rewritten: every byte hashed)",
    )

    layer = f"dense_{depth // 2}"

    def ours_selection():
        with assert_frozen(model, layer):
            pass

    share = 1 / depth
    sel = median_time(ours_selection, args.repeat)
    results["~10% selection vs whole-model baseline"] = (
        sel / whole_baseline,
        f"{share:.0%} of the weights: {sel * 1e3:.1f} ms vs {whole_baseline * 1e3:.0f} ms",
    )
    model = None  # free the big model before the next one

    n_layers = 1000
    inputs = keras.Input((2,))
    branches = [keras.layers.Dense(1, name=f"d{i}")(inputs) for i in range(n_layers)]
    small = keras.Model(inputs, keras.layers.Add()(branches), name="many")
    n_vars = len(small.weights)

    def ours_many():
        with assert_frozen(small):
            pass

    def baseline_many():
        before, after = small.get_weights(), small.get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))

    ours_many(), baseline_many()  # untimed: caches
    pairs = [
        (median_time(baseline_many, 1), median_time(ours_many, 1)) for _ in range(args.repeat)
    ]  # interleaved run by run: a slow moment of the machine hits both sides
    per_var_base = statistics.median(b for b, _ in pairs) / n_vars
    per_var = statistics.median(o for _, o in pairs) / n_vars
    results["per-variable overhead"] = (
        per_var / per_var_base,
        f"{n_vars} variables: {per_var * 1e6:.1f} µs/variable vs the baseline's "
        f"{per_var_base * 1e6:.1f} µs/variable (with assert_frozen(model): pass)",
    )


MEMORY_PROBE = """
import os, sys, json
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, {bench_dir!r})
import keras, numpy as np
from bench import big_model, perturb
from pytest_kerasfreeze import snapshot
model = big_model(keras, {width}, {depth})
if keras.backend.backend() == "jax":  # JAX computes the initial weights asynchronously
    import jax
    jax.block_until_ready([v.value for v in model.weights])
try:  # measure from here on: building the model has transients of its own
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
except OSError:
    pass
mode = {mode!r}
before = (snapshot(model, mode="digest" if mode == "digest" else "copy")
          if mode != "none" else None)
perturb(model)          # training stands in: every weight changes once
if mode == "diff":      # and the diff keeps a copy of every weight that moved
    before.diff(before.retake()).moved()
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's, across fork)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({{"peak_kib": int(hwm.split()[1])}}))
"""


def bench_memory(args, results):
    width, depth = (1000, 4) if args.quick else (2900, 12)
    watched = depth * (width * width + width) * 4
    peaks = {}
    for mode in ("none", "snapshot", "diff", "digest"):
        code = MEMORY_PROBE.format(
            bench_dir=str(Path(__file__).parent), width=width, depth=depth, mode=mode
        )
        out = (
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        peaks[mode] = json.loads(out)["peak_kib"] * 1024
    extra = peaks["snapshot"] - peaks["none"]
    with_diff = peaks["diff"] - peaks["none"]
    digest_extra = max(0, peaks["digest"] - peaks["none"])
    results["digest: extra peak memory / watched bytes"] = (
        digest_extra / watched,
        f"{digest_extra / 2**20:.1f} MiB for {watched / 2**20:.0f} MiB watched",
    )
    results["extra peak memory / watched bytes"] = (
        extra / watched,
        f"{extra / 2**20:.0f} MiB for {watched / 2**20:.0f} MiB watched (peak RSS of snapshot + "
        f"training vs training alone); with a diff in which every weight moved: "
        f"{with_diff / watched:.2f}x (the diff keeps a copy of each weight that moved)",
    )


SCALE_PROBE = """
import os, sys, json, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, numpy as np
from pytest_kerasfreeze import snapshot
from pytest_kerasfreeze._keras import memory

def status(field):
    return [int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith(field)][0]

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM back to the current RSS

width, depth = {width}, {depth}
layers = [keras.Input((width,))]
layers += [keras.layers.Dense(width, name=f"dense_{{i}}") for i in range(depth)]
model = keras.Sequential(layers, name="scale")
if keras.backend.backend() == "jax":
    import jax
    jax.block_until_ready([v.value for v in model.weights])
watched = sum(int(np.prod(v.shape)) * 4 for v in model.weights)
base = status("VmRSS")
reset_peak()
start = time.perf_counter()
before = snapshot(model)          # mode="auto": the plugin chooses
took = time.perf_counter() - start
peak_snapshot = status("VmHWM") - base
chosen = before.mode
kernel = model.get_layer("dense_3").kernel   # training stands in: one layer moves
kernel.assign(kernel * 0.5)
if keras.backend.backend() == "jax":  # the new value is computed asynchronously
    jax.block_until_ready(kernel.value)
del kernel
base2 = status("VmRSS")
reset_peak()
start = time.perf_counter()
diff = before.diff(before.retake())
took_after = time.perf_counter() - start
peak_diff = status("VmHWM") - base2
moved = sorted({{c.layer for c in diff.changes if c.moved}})
print(json.dumps({{"watched": watched, "chosen": chosen, "took": took, "took_after": took_after,
                  "extra": max(peak_snapshot, peak_diff, 0), "moved": moved,
                  "total": memory.read_available().bytes + base2, "rss": base2}}))
"""


def bench_scale(args, results):
    """Issue 15: a model whose weights take a quarter of this machine's memory, checked
    with the default ``mode="auto"`` (which must choose digest), in a fresh process."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal"))
    width = 8192
    layer = (width * width + width) * 4
    depth = max(1, round(total / 4 / layer))
    out = subprocess.run(
        [sys.executable, "-c", SCALE_PROBE.format(width=width, depth=depth)],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    got = json.loads(out)
    watched, gib = got["watched"], 2**30
    if got["chosen"] != "digest" or got["moved"] != ["dense_3"]:
        raise SystemExit(f"scale probe: wrong answer {got}")
    results["scale: quarter of memory, digest, extra peak"] = (
        got["extra"] / watched,
        f"{watched / gib:.1f} GiB of weights on a {total / gib:.0f} GiB machine; auto chose "
        f"digest; extra peak {got['extra'] / 2**20:.0f} MiB; snapshot {got['took']:.1f} s "
        f"({watched / got['took'] / gib:.1f} GiB/s), retake + diff {got['took_after']:.1f} s, "
        f"found exactly dense_3 moved; copy mode beside the get_weights() baseline would need "
        f"model + copy + before + after = {4 * watched / gib:.1f} GiB",
    )


def bench_load(args, results):
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(20):
            Path(tmp, f"test_m{i}.py").write_text(
                "".join(f"def test_{j}():\n    pass\n\n" for j in range(10))
            )
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

        def run(*extra):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "--co",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    *extra,
                    tmp,
                ],
                capture_output=True,
                check=True,
                env=env,
            )

        run("-p", "kerasfreeze"), run()  # untimed: caches
        # Interleaved run by run, so that a slow moment of the machine hits both sides.
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(max(args.repeat, 7)):
            for plugin in (True, False):
                start = time.perf_counter()
                run(*(("-p", "kerasfreeze") if plugin else ()))
                times[plugin].append(time.perf_counter() - start)
        with_plugin, without = statistics.median(times[True]), statistics.median(times[False])
        heavy = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, pytest_kerasfreeze.plugin; print(sorted(m for m in "
                "('keras','tensorflow','jax','torch','tf_keras') if m in sys.modules))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    results["plugin load (pytest --co)"] = (
        (with_plugin - without) * 1e3,
        f"{with_plugin * 1e3:.0f} ms vs {without * 1e3:.0f} ms for 200 tests; "
        f"heavy imports: {heavy}",
    )


def bench_marker(args, results):
    import keras
    import numpy as np

    from pytest_kerasfreeze.markers import parse_marker
    from pytest_kerasfreeze.session import TestObserver

    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 2, size=(320, 1)).astype("float32")

    def realistic_test():
        base = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.Conv2D(16, 3, activation="relu"),
                keras.layers.BatchNormalization(),
                keras.layers.Conv2D(16, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
            ],
            name="base",
        )
        base.trainable = False
        inputs = keras.Input((16, 16, 3))
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(base(inputs)))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)

    def under(make_run):
        run = make_run()
        run.start()
        try:
            realistic_test()
        finally:
            run.finish()

    variants = {
        "unmarked": lambda: TestObserver([], trap="ignore"),
        "marked": lambda: TestObserver([parse_marker("frozen", ("base",), {})]),
        "light": lambda: TestObserver([]),
    }
    realistic_test()
    # Interleaved, each run after a clear_session() (not timed): a variant measured
    # after the others would otherwise pay for the graphs and memory they left behind.
    times = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, make_run in variants.items():
            keras.backend.clear_session()
            start = time.perf_counter()
            under(make_run)
            times[name].append(time.perf_counter() - start)
    unmarked, marked, light = (statistics.median(times[name]) for name in variants)
    results["frozen marker on a small CNN test"] = (
        marked / unmarked,
        f"{marked * 1e3:.0f} ms vs {unmarked * 1e3:.0f} ms unmarked; unmarked with the trap "
        f"check on: {light / unmarked:.3f}x",
    )


def bench_optimizer_state(args, results):
    """``assert_frozen(model, "base", optimizer_state=True)`` against the same check
    without it, around the same (untimed in both) weight assignment to the head: after a
    fine-tuning stage compiled with a new optimizer (it holds nothing for the base), and
    with the stage-1 optimizer reused (it holds Adam moments for the whole base)."""
    import keras
    import numpy as np

    from pytest_kerasfreeze import assert_frozen

    width, depth = (256, 4) if args.quick else (1024, 8)
    x = np.random.default_rng(0).normal(size=(64, width)).astype("float32")
    figures = {}
    for reused in (False, True):
        keras.backend.clear_session()
        layers = [keras.layers.Dense(width, name=f"dense_{i}") for i in range(depth)]
        base = keras.Sequential([keras.Input((width,)), *layers], name="base")
        inputs = keras.Input((width,))
        model = keras.Model(inputs, keras.layers.Dense(1, name="head")(base(inputs)))
        optimizer = keras.optimizers.Adam(1e-3)
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, x[:, :1], batch_size=64, verbose=0)
        base.trainable = False
        model.compile(optimizer=optimizer if reused else keras.optimizers.Adam(1e-3), loss="mse")
        model.fit(x, x[:, :1], batch_size=64, verbose=0)
        head = model.get_layer("head").kernel

        def check(state, head=head, model=model):
            with assert_frozen(model, "base", mode="copy", optimizer_state=state):
                head.assign(head.value + 1e-3)

        pairs = [(median_time(lambda: check(False), 1), median_time(lambda: check(True), 1))
                 for _ in range(args.repeat)]  # fmt: skip
        plain = statistics.median(p for p, _ in pairs)
        with_state = statistics.median(s for _, s in pairs)
        figures[reused] = (with_state / plain, f"{with_state * 1e3:.1f} ms vs {plain * 1e3:.1f} ms")
    results["optimizer_state=True vs the weight check"] = (
        figures[False][0],
        figures[False][1] + "; a new optimizer after freezing (no base slots)",
    )
    results["optimizer_state=True, optimizer reused"] = (
        figures[True][0],
        figures[True][1] + "; Adam's m and v of every base weight are hashed",
    )


def bench_inference_mode(args, results):
    """The small-CNN fine-tuning test of the marker row, marked frozen('base') alone and
    frozen('base') + inference_mode('base') (the mode recording patched in for each
    training call), interleaved."""
    import keras
    import numpy as np

    from pytest_kerasfreeze.markers import parse_marker
    from pytest_kerasfreeze.session import TestObserver

    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 2, size=(320, 1)).astype("float32")

    def realistic_test():
        base = keras.Sequential(
            [keras.Input((16, 16, 3)), keras.layers.Conv2D(16, 3, activation="relu"),
             keras.layers.BatchNormalization(), keras.layers.Conv2D(16, 3, activation="relu"),
             keras.layers.GlobalAveragePooling2D()], name="base",
        )  # fmt: skip
        base.trainable = False
        inputs = keras.Input((16, 16, 3))
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(base(inputs)))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)

    variants = {
        "marked": lambda: [parse_marker("frozen", ("base",), {})],
        "modes": lambda: [
            parse_marker("frozen", ("base",), {}),
            parse_marker("inference_mode", ("base",), {}),
        ],
    }
    realistic_test()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, markers in variants.items():
            keras.backend.clear_session()
            start = time.perf_counter()
            run = TestObserver(markers())
            run.start()
            try:
                realistic_test()
            finally:
                run.finish()
            times[name].append(time.perf_counter() - start)
    marked, modes = (statistics.median(times[name]) for name in variants)
    results["inference_mode marker on a small CNN test"] = (
        modes / marked,
        f"{modes * 1e3:.0f} ms vs {marked * 1e3:.0f} ms with frozen('base') alone",
    )


def bench_guard(args, results):
    """A realistic fine-tuning fit (a small CNN, 3 epochs) with and without a FreezeGuard
    checking every epoch, interleaved run by run."""
    import keras
    import numpy as np

    from pytest_kerasfreeze import FreezeGuard

    rng = np.random.default_rng(0)
    x = rng.normal(size=(640, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 2, size=(640, 1)).astype("float32")

    def run(guarded):
        keras.utils.set_random_seed(0)
        base = keras.Sequential(
            [
                keras.Input((16, 16, 3)),
                keras.layers.Conv2D(32, 3, activation="relu"),
                keras.layers.BatchNormalization(),
                keras.layers.Conv2D(32, 3, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
            ],
            name="base",
        )
        base.trainable = False
        inputs = keras.Input((16, 16, 3))
        head = keras.layers.Dense(1, activation="sigmoid", name="head")
        model = keras.Model(inputs, head(base(inputs)))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        callbacks = [FreezeGuard(frozen="base", trains="head")] if guarded else []
        start = time.perf_counter()
        model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=callbacks)
        return time.perf_counter() - start

    run(False), run(True)  # untimed: traces, caches
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(2 * args.repeat):  # ABBA order: neither variant always runs second
        for guard in (False, True) if i % 4 in (0, 3) else (True, False):
            keras.backend.clear_session()
            times[guard].append(run(guard))
    plain, guarded = times[False], times[True]
    p, g = statistics.median(plain), statistics.median(guarded)
    results["FreezeGuard on a small CNN fit, 3 epochs"] = (
        g / p,
        f"{g * 1e3:.0f} ms vs {p * 1e3:.0f} ms (every='epoch')",
    )


RECORDS_PROBE = """
import os, sys, json, gc
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, numpy as np
from pytest_kerasfreeze import WeightTracker
from pytest_kerasfreeze.session import TestObserver

try:  # glibc: give freed heap pages back first, so that RSS counts what is alive
    import ctypes
    _trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):
    _trim = lambda pad: 0

def rss():
    _trim(0)
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024

inp = keras.Input((1024,))
model = keras.Model(inp, keras.layers.Dense(1024)(keras.layers.Dense(1024)(inp)))  # 8 MiB
model.compile(optimizer="adam", loss="mse")
x = np.ones((32, 1024), "float32")
observer = TestObserver([])
observer.start()
try:
    tracker = WeightTracker()
    if {records!r}:
        observer.attach_tracker(tracker)
    for _ in range(10):  # warm up: traces, optimizer state, allocator pools
        model.train_on_batch(x, x)
    gc.collect()
    start = rss()
    for _ in range(100):
        model.train_on_batch(x, x)
    gc.collect()
    grown = rss() - start
    records = tracker.records
    size = sum(sys.getsizeof(c) + sum(sys.getsizeof(v) for v in c.__dict__.values())
               for r in records for c in r.diff.changes)
finally:
    observer.finish()
print(json.dumps({{"grown": grown, "records": len(records), "size": size}}))
"""


def bench_records(args, results):
    """Issue 11: RSS growth over 100 recorded train_on_batch() calls on an 8 MiB model,
    against the same loop with the fixture absent (each in a fresh process)."""
    grown = {}
    for records in (False, True):
        out = subprocess.run(
            [sys.executable, "-c", RECORDS_PROBE.format(records=records)],
            capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        grown[records] = json.loads(out)
    extra = (grown[True]["grown"] - grown[False]["grown"]) / 2**20
    results["100 recorded train_on_batch calls, extra RSS"] = (
        max(extra, 0.0),
        f"{extra:+.1f} MiB against the same loop unrecorded (RSS after gc and malloc_trim; "
        f"{grown[True]['records']} records, their changes ~{grown[True]['size'] / 1024:.0f} "
        f"KiB); the model is 8 MiB, so a copy per call would be 800 MiB",
    )


def explain_model(keras, n_layers, per_layer):
    """``n_layers`` parallel layers of ``per_layer`` small weights each, added up: wide
    rather than deep, so building it stays within the backends' recursion limits."""

    class Weights(keras.layers.Layer):
        def build(self, shape):
            self.ws = [self.add_weight(shape=(2,), name=f"w{i}") for i in range(per_layer)]

        def call(self, x):
            return x + self.ws[0]

    inputs = keras.Input((2,))
    branches = [Weights(name=f"layer_{i}")(inputs) for i in range(n_layers)]
    model = keras.Model(inputs, keras.layers.Add()(branches), name="wide")
    model.compile(optimizer="sgd", loss="mse")
    return model


def bench_explain(args, results):
    """Issue 22: explain() reads flags and variable lists, never values — against Keras'
    own table of flags, summary(show_trainable=True) written to a null stream, on the
    same model in the same run; and its cost per variable as the model grows."""
    import keras

    from pytest_kerasfreeze import explain

    sizes = [(10, 10), (100, 10)] if args.quick else [(100, 10), (1000, 10), (1000, 100)]
    per_variable = {}
    with open(os.devnull, "w") as null:
        for n_layers, per_layer in sizes:
            model = explain_model(keras, n_layers, per_layer)
            n_vars = len(model.weights)
            took = median_time(lambda m=model: explain(m), args.repeat)
            per_variable[n_vars] = took / n_vars
            if (n_layers, per_layer) != sizes[1]:
                continue

            def summary(m=model):
                m.summary(show_trainable=True, print_fn=lambda line, *a, **k: null.write(line))

            shown = median_time(summary, args.repeat)
            results["explain() / summary(show_trainable=True)"] = (
                took / shown,
                f"{n_layers} layers, {n_vars} variables: explain() {took * 1e3:.0f} ms, "
                f"summary() {shown * 1e3:.0f} ms",
            )
    smallest, largest = min(per_variable), max(per_variable)
    results["explain() per variable, largest / smallest model"] = (
        per_variable[largest] / per_variable[smallest],
        "; ".join(f"{n} variables: {t * 1e6:.0f} µs/variable" for n, t in per_variable.items()),
    )


MULTIHOST_PROBE = """
import json, os, statistics, sys, time
os.environ["KERAS_BACKEND"] = "jax"
index, port, params, repeat = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import jax
if index >= 0:
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                               process_id=index, initialization_timeout=120)
import keras
from pytest_kerasfreeze import snapshot
from pytest_kerasfreeze.engine import multihost
combining = []
exchange = multihost.exchange
def timed_exchange(*args, **kwargs):
    start = time.perf_counter()
    try:
        return exchange(*args, **kwargs)
    finally:
        combining.append(time.perf_counter() - start)
multihost.exchange = timed_exchange
if index >= 0:
    devices = keras.distribution.list_devices("cpu")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
keras.utils.set_random_seed(0)  # the same initial values in every process
width = int((params / 10) ** 0.5)
inputs = keras.Input((width,))
hidden = inputs
for i in range(10):
    hidden = keras.layers.Dense(width, use_bias=False, name=f"dense_{i}")(hidden)
model = keras.Model(inputs, hidden)
before = snapshot(model, mode="digest")
times = []
for _ in range(repeat):
    start = time.perf_counter()
    before.diff(before.retake()).assert_frozen()
    times.append(time.perf_counter() - start)
combine = statistics.median(combining[-repeat:]) if combining else 0.0
alone = []  # the combine step with both processes arriving together: its own cost
if index >= 0:
    from jax.experimental import multihost_utils
    after = before.retake()
    for _ in range(repeat):
        multihost_utils.sync_global_devices("combine")
        start = time.perf_counter()
        multihost.combine(before, after, 0.0, 0.0)
        alone.append(time.perf_counter() - start)
combine_alone = statistics.median(alone) if alone else 0.0
print(json.dumps({"median": statistics.median(times), "params": model.count_params(),
                  "combine": combine, "alone": combine_alone}))
sys.stdout.flush()
if index >= 0:  # process 0 hosts the coordination service: leave together
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("done")
os._exit(0)
"""


def bench_multihost(args, results):
    """One digest check of a whole model (``snapshot(mode="digest")``, ``retake()``,
    ``diff().assert_frozen()``) in each of two ``jax.distributed`` processes on this
    machine (DataParallel: each holds every weight, so each hashes as much as one
    process alone, and adds the combine step), against the same check in one process.
    The two processes share this machine's cores: on a real job each has its own host."""
    import importlib.util
    import socket

    if importlib.util.find_spec("jax") is None:  # the row needs JAX, whatever the backend
        print("2 JAX processes: not measured, JAX is not installed (pip install jax)")
        return
    params = 10_000_000 if args.quick else 100_000_000
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)  # one CPU device per process

    def probe(index):
        command = [sys.executable, "-c", MULTIHOST_PROBE, str(index), port, str(params)]
        command.append(str(args.repeat))
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)

    def figures(process):  # the JSON line (gloo prints its own lines to stdout)
        lines = process.communicate(timeout=900)[0].splitlines()
        found = [line for line in lines if line.startswith('{"median"')]
        if not found:
            raise RuntimeError(
                f"a multihost probe exited with {process.returncode} and printed no figures "
                "(its error is above)"
            )
        return json.loads(found[0])

    single = figures(probe(-1))
    outputs = [figures(p) for p in [probe(0), probe(1)]]
    multi = max(o["median"] for o in outputs)
    combine = max(o["combine"] for o in outputs)
    alone = max(o["alone"] for o in outputs)
    results["2 JAX processes, digest check vs 1 process"] = (
        multi / single["median"],
        f"{multi * 1e3:.0f} ms vs {single['median'] * 1e3:.0f} ms per check, of which "
        f"{combine * 1e3:.1f} ms in the combine step (waiting for the slower process "
        f"included; {alone * 1e3:.1f} ms when both arrive together); "
        f"{single['params'] / 1e6:.0f}M params, 2 processes sharing this machine's cores",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--quick", action="store_true", help="a small model, for a smoke run")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--scale", action="store_true",
                        help="add the scale row: a model of a quarter of this machine's memory "
                        "checked in digest mode (Linux; takes a minute or two)")  # fmt: skip
    parser.add_argument(
        "--only",
        action="append",
        metavar="GROUP",
        help="run only this group of figures (engine, memory, load, marker, "
        "guard, records, explain, multihost); repeatable",
    )
    args = parser.parse_args()

    import keras

    print(
        f"pytest-kerasfreeze benchmark on Keras {keras.__version__}, "
        f"{keras.backend.backend()} backend, median of {args.repeat}",
        flush=True,
    )
    results = {}
    groups = {
        "engine": bench_engine,
        "memory": bench_memory,
        "load": bench_load,
        "marker": bench_marker,
        "guard": bench_guard,
        "records": bench_records,
        "explain": bench_explain,
        "optimizer_state": bench_optimizer_state,
        "inference_mode": bench_inference_mode,
        "multihost": bench_multihost,
    }
    for name, bench in groups.items():
        if not args.only or name in args.only:
            bench(args, results)
    if args.scale:
        bench_scale(args, results)

    print(f"\n{'figure':42} {'measured':>10} {'target':>9}  ok   detail")
    report = {}
    for name, (unit, limit) in TARGETS.items():
        if name not in results:
            continue
        value, detail = results[name]
        ok = value <= limit
        shown = {"ratio": f"{value:.2f}x", "us": f"{value:.1f} µs", "ms": f"{value:.0f} ms",
                 "mib": f"{value:.1f} MiB"}[unit]  # fmt: skip
        target = {"ratio": f"≤{limit}x", "us": f"≤{limit:g} µs", "ms": f"≤{limit:g} ms",
                  "mib": f"≤{limit:g} MiB"}[unit]  # fmt: skip
        print(f"{name:42} {shown:>10} {target:>9}  {'yes' if ok else 'NO ':3}  {detail}")
        report[name] = {"value": value, "unit": unit, "target": limit, "ok": ok, "detail": detail}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this run: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
