"""The issue-21 measurement: ``with assert_frozen(model, mode=...): pass`` against the
hand-written baseline (``before = model.get_weights(); after = model.get_weights();``
``np.array_equal`` on each pair), in one process, median of interleaved pairs.

    KERAS_BACKEND=tensorflow python benchmarks/with_block.py            # 6 x Dense(4096)
    KERAS_BACKEND=jax python benchmarks/with_block.py --width 2048 --pairs 7

Rows: digest and copy mode on the big model (nothing moves: the block is empty), the
floor of a digest on this machine (two reads of the bytes on two threads, no plugin
code), and the cost per variable on a model of 2,000 small variables (1,000 Dense(1) side by side).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pairs(first, second, n):
    """Medians of ``n`` interleaved runs of each, after one untimed run of each."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def floor_of(model):
    """The least a digest ``with`` block can cost on the host: on entry each weight's
    bytes hashed (XXH3-128) and their squares summed in one read, 1 MiB at a time (the
    norm a digest keeps); on exit hashed again; two weights at a time on two threads, as
    the plugin does. Plain numpy and xxhash, none of the plugin's code: what reading the
    bytes twice costs on this machine, nothing else."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import xxhash

    arrays = [np.ascontiguousarray(w).reshape(-1) for w in model.get_weights()]

    def entry(flat):
        hasher, sq, per = xxhash.xxh3_128(), 0.0, (1 << 20) // flat.itemsize
        for start in range(0, flat.size, per):
            piece = flat[start : start + per]
            hasher.update(piece.view(np.uint8))
            sq += float(np.vdot(piece, piece))
        return hasher.digest(), sq

    def leaving(flat):
        return xxhash.xxh3_128(flat.view(np.uint8)).digest()

    def run():
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(entry, arrays))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(leaving, arrays))

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()

    import keras
    import numpy as np

    from pytest_kerasfreeze import assert_frozen

    def baseline_of(model):
        def run():
            before, after = model.get_weights(), model.get_weights()
            assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))

        return run

    def ours_of(model, mode):
        def run():
            with assert_frozen(model, mode=mode):
                pass

        return run

    layers = [keras.Input((args.width,))]
    layers += [keras.layers.Dense(args.width, name=f"dense_{i}") for i in range(args.depth)]
    big = keras.Sequential(layers, name="big")
    print(
        f"Keras {keras.__version__}, {keras.backend.backend()} backend: {args.depth} x "
        f"Dense({args.width}), {big.count_params() / 1e6:.1f}M parameters; "
        f"median of {args.pairs} interleaved pairs"
    )
    for mode in ("digest", "copy"):
        base, ours = pairs(baseline_of(big), ours_of(big, mode), args.pairs)
        print(f"{mode:7} {ours / base:5.2f}x  ({ours * 1e3:.0f} ms vs {base * 1e3:.0f} ms)")
    base, floor = pairs(baseline_of(big), floor_of(big), args.pairs)
    print(
        f"floor   {floor / base:5.2f}x  ({floor * 1e3:.0f} ms: the bytes read twice on two "
        "threads, hashed and squares summed, then hashed: no digest with a norm goes below)"
    )
    del big

    inputs = keras.Input((2,))
    branches = [keras.layers.Dense(1, name=f"d{i}")(inputs) for i in range(1000)]
    small = keras.Model(inputs, keras.layers.Add()(branches), name="many")
    n = len(small.weights)
    base, ours = pairs(baseline_of(small), ours_of(small, None), args.pairs)
    print(
        f"per-variable {ours / base:5.2f}x  ({ours / n * 1e6:.1f} µs vs {base / n * 1e6:.1f} µs "
        f"per variable, {n} variables)"
    )


if __name__ == "__main__":
    main()
