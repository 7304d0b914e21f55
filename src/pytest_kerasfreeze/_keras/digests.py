"""Digests: what a snapshot keeps of a weight in ``mode="digest"``, instead of a copy.

A :class:`Digest` is a 128-bit hash of the weight's bits (C order) and its L2 norm, O(1)
memory per weight. ``moved`` is exact (NaN payloads and the sign of zero count); by how
much is not kept, but | ‖after‖ − ‖before‖ | ≤ ‖after − before‖. No host copy is made:

* on the host: xxh3_128 of zero-copy views, in blocks of :data:`BLOCK` bytes (extra
  memory O(block)), the large weights of a snapshot two at a time on two threads
  (:func:`digest_all`); without the ``xxhash`` package, ``hashlib.blake2b(digest_size=16)``,
  about 20-40x slower (0.6-0.8 GB/s against 16-60). A sharded JAX array: each shard
  where it lives, in index order (``np.asarray(array)`` would gather, and cache the
  copy); its indices are kept, as the combined hash depends on the sharding. Replicas
  (JAX, TF mirrored variables): replica 0, and whether the others differ from it;
* on an accelerator: :func:`device_fingerprint`, computed there; 16 bytes come back.

Example::

    >>> before = digest_raw(np.zeros(3, np.float32))
    >>> same(before, digest_raw(np.array([0.0, -0.0, 0.0], np.float32)))
    False
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pytest_kerasfreeze._keras import buffers
from pytest_kerasfreeze.engine.messages import errors

try:
    _xxhash: Any = importlib.import_module("xxhash")
except ImportError:  # pragma: no cover - the stdlib fallback
    _xxhash = None

BLOCK = 1 << 20  # bytes hashed per update(); float64 work buffers stay at this size
# digest_all: weights of at least PARALLEL_ABOVE bytes go to the threads, when they hold
# PARALLEL_TOTAL bytes together (below, starting two threads costs more than it saves)
PARALLEL_ABOVE, PARALLEL_TOTAL = 1 << 20, 16 << 20
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
FINGERPRINT = "mixsum-4x32"  # the ``algorithm`` of a device fingerprint
SEEDS = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344)  # lane seeds (digits of pi)
_C1, _C2, _M32 = 0x85EBCA6B, 0xC2B2AE35, 0xFFFFFFFF
_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))  # their norm needs no conversion


@dataclass(frozen=True)
class Digest:
    """What a digest snapshot keeps of one weight: ``hash``, 16 bytes (``algorithm``:
    "xxh3_128", "blake2b-128" or :data:`FINGERPRINT`); ``norm`` of the finite values;
    ``nonfinite``: any NaN/Inf; ``shards``: the ``((start, stop), ...)`` index of each
    shard hashed apart (``()``: hashed whole); ``replicas_differ``: a replica other than
    replica 0 holds other bits.

    Example::

        >>> d = digest_raw(np.ones((2, 2), np.float32))
        >>> d.norm, d.shape, d.dtype, d.nbytes
        (2.0, (2, 2), 'float32', 16)
    """

    hash: bytes
    norm: float
    nbytes: int
    shape: tuple[int, ...]
    dtype: str
    nonfinite: bool
    algorithm: str
    shards: tuple[tuple[tuple[int, int], ...], ...] = ()
    replicas_differ: bool = False


def same(before: Digest, after: Digest) -> bool:
    """Whether a weight holds the same bits as when ``before`` was taken; ``ValueError``
    for digests made in different ways (on the host and on a device; other shardings).

    Example::

        >>> same(digest_raw(np.ones(2)), digest_raw(np.ones(2)))
        True
    """
    if (before.shape, before.dtype) != (after.shape, after.dtype):
        return False
    if _key(before)[1:] != _key(after)[1:]:
        raise ValueError(
            errors.incomparable_digests(
                before.algorithm, len(before.shards) or 1, after.algorithm, len(after.shards) or 1
            )
        )
    return before.hash == after.hash


def _key(digest: Digest) -> tuple[Any, ...]:
    return digest.hash, digest.algorithm, digest.shards


def change_lower_bound(before: Digest, after: Digest) -> float:
    """A lower bound on ‖after − before‖: | ‖after‖ − ‖before‖ |. 0.0 for the same bits;
    ``inf`` where shape or dtype changed or only one holds NaN/Inf (a change that the
    statistics call infinite); with NaN/Inf in both, the finite values' norms bound it.
    The norms are rounded (relative ~1e-7): a smaller change may be over-estimated.

    Example::

        >>> change_lower_bound(digest_raw(np.zeros(4)), digest_raw(np.full(4, 0.5)))
        1.0
    """
    if (before.shape, before.dtype) != (after.shape, after.dtype):
        return math.inf
    if _key(before) == _key(after):
        return 0.0
    if before.nonfinite != after.nonfinite:
        return math.inf
    return abs(after.norm - before.norm)


def digest_raw(raw: Any, *, force_device_path: bool = False, since: Digest | None = None) -> Digest:
    """The digest of a raw backend value: a TensorFlow (resource, mirrored) variable or
    tensor, a torch tensor, a JAX array, a numpy array. ``force_device_path=True``: the
    :func:`device_fingerprint` wherever it lives (how it is tested on the CPU).

    ``since``: an earlier digest of the same weight. Where the value is hashed on the
    host in one piece, its bits are hashed first and, when they hash to ``since``'s,
    ``since`` itself is returned: the same bits have the same norm, so the second pass,
    the norm's, is skipped (a retake of a weight that did not move reads it once).

    Example::

        raw = flavor_of(model).raw(model.weights[0])
        before = digest_raw(raw)
        model.fit(x, y)
        moved = not same(before, digest_raw(raw))
    """
    if not force_device_path and (array := _host_array(raw)) is not None:
        return _host_digest(array, since)  # a buffer the host holds whole: hashed in place
    parts = buffers.replicas(raw)
    if parts:  # TF mirrored variable, fully replicated JAX array
        first, *others = (digest_raw(p, force_device_path=force_device_path) for p in parts)
        return replace(first, replicas_differ=any(o.hash != first.hash for o in others))
    if buffers.is_tf_resource(raw):  # on an accelerator: its current buffer, as a tensor
        return _device_digest(buffers.tf_read(raw))
    if force_device_path or _on_accelerator(raw):
        return _device_digest(raw)
    if hasattr(raw, "sharding"):  # JAX, sharded over CPU devices: shard by shard
        return _jax_digest(raw)
    return _host_digest(np.asarray(raw), since)


def digest_all(raws: Sequence[Any], since: Sequence[Digest | None]) -> list[Digest]:
    """:func:`digest_raw` of each of ``raws`` (``since``: an earlier digest of each, or
    ``None``), the same digests, the large host buffers hashed by two threads at once.

    xxhash and BLAS release the GIL, and one thread hashing a host buffer reads it well
    below what the memory gives two cores: 400 MB of float32 weights, hashed and their
    squares summed, take 44 ms in one thread and 25 ms in two on a 2-core machine.
    Only views of buffers the host holds whole go to the threads, each read into numpy
    here first (TensorFlow, torch, JAX calls stay on this thread); a weight is never
    split, so each digest is the one :func:`digest_raw` computes. The threads live as
    long as this call (a pool kept between calls would not survive a fork)."""
    out: list[Digest | None] = [None] * len(raws)
    pending: list[tuple[int, np.ndarray, Digest | None]] = []
    for i, (raw, previous) in enumerate(zip(raws, since, strict=True)):
        array = _host_array(raw)
        if array is None:  # replicas, shards, accelerators
            out[i] = digest_raw(raw, since=previous)
        elif array.nbytes >= PARALLEL_ABOVE:
            pending.append((i, array, previous))
        else:  # what digest_raw does with it, without finding it again
            out[i] = _host_digest(array, previous)
    workers = min(_CPUS, len(pending))
    if workers < 2 or sum(array.nbytes for _, array, _ in pending) < PARALLEL_TOTAL:
        for i, array, previous in pending:
            out[i] = _host_digest(array, previous)
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="kerasfreeze-digest") as pool:
            digests = pool.map(lambda job: _host_digest(job[1], job[2]), pending)
            for (i, _, _), digest in zip(pending, digests, strict=True):
                out[i] = digest
    return [d for d in out if d is not None]


def _host_array(raw: Any) -> np.ndarray | None:
    """The numpy view that :func:`digest_raw` (and :func:`digest_all`) hashes for a value
    the host holds whole — a numpy array, a TensorFlow variable or tensor on the host, a
    torch tensor on the CPU, a JAX array on one CPU device —, without a copy; ``None``
    for anything else (replicas, shards, accelerators), which digest_raw routes on."""
    if isinstance(raw, np.ndarray):
        return raw
    if buffers.is_torch(raw):
        return None if raw.device.type != "cpu" else _torch_view(raw)
    if buffers.is_tf_resource(raw):
        if buffers.replicas(raw) or not buffers.tf_on_host(raw):
            return None
        return buffers.host_view(buffers.tf_read(raw))
    if hasattr(raw, "sharding") and hasattr(raw, "addressable_shards"):  # JAX
        devices = raw.sharding.device_set
        if len(devices) != 1 or any(d.platform != "cpu" for d in devices):
            return None
        return np.asarray(raw)
    if hasattr(raw, "_numpy") and not _on_accelerator(raw):  # a TF tensor on the host
        return buffers.host_view(raw)
    return None


def device_fingerprint(raw: Any) -> bytes:
    """A 128-bit fingerprint of a value's bits, computed where it lives (torch, JAX,
    TensorFlow, numpy): only the 16 bytes come back to the host.

    A keyed mix-sum: ``w_i`` are the bits as 32-bit words in C order (4-, 8-, 16-byte
    dtypes bitcast; 1- and 2-byte ones widened, a word each), ``fmix`` is murmur3's
    finalizer (a bijection), lane ``j`` is ``Σ_i fmix(w_i ^ K_j(i)) mod 2^32`` with
    ``K_j(i) = fmix(i mod 2^32 ^ S_j) ^ H_j(i >> 32)``. Integer operations and a modular
    sum: the same bits on every backend, device, reduction order and sharding. A change
    of ONE word changes every lane, certainly (-0.0 for 0.0, a NaN payload too); keyed
    positions make swaps show. Changes of two or more words collide with probability
    ~2^-32 per lane, ~2^-128 for the four: a heuristic (fmix taken as a random
    permutation), NOT a cryptographic hash: knowing :data:`SEEDS`, anyone can build a
    collision. Never equal to the host hash (``algorithm`` tells them apart).

    Example::

        >>> device_fingerprint(np.float32([1, 2])) == fingerprint_reference(np.float32([1, 2]))
        True
    """
    return digest_raw(raw, force_device_path=True).hash


def fingerprint_reference(array: np.ndarray, offset: int = 0) -> bytes:
    """:func:`device_fingerprint` in numpy: the reference every backend must equal.
    ``offset``: the global position of ``array``'s first word (a multiple of the words per
    element): fingerprints of consecutive parts add up lane-wise to the whole's.

    Example::

        >>> fingerprint_reference(np.float32([-0.0])) != fingerprint_reference(np.float32([0.0]))
        True
    """
    return np.array(_reference_lanes(array, offset), "<u4").tobytes()


# -- the host path ----------------------------------------------------------------------
def _host_algorithm() -> str:
    return "xxh3_128" if _xxhash is not None else "blake2b-128"


def _hasher(data: Any = b"") -> Any:
    return _xxhash.xxh3_128(data) if _xxhash is not None else hashlib.blake2b(data, digest_size=16)


def _pieces(array: np.ndarray, per: int) -> Iterator[np.ndarray]:
    """1-D pieces in C order, ``per`` elements at most: views, or strided copies."""
    if array.flags.c_contiguous:
        flat = array.reshape(-1)
        return (flat[start : start + per] for start in range(0, flat.size, per))
    flags: Any = ["external_loop", "buffered", "zerosize_ok"]
    return (np.ascontiguousarray(p) for p in np.nditer(array, flags, order="C", buffersize=per))


def _squares(piece: np.ndarray, scratch: list[Any]) -> tuple[float, bool]:
    """(sum of squares of the finite values, whether any value is NaN/Inf) of a piece:
    float32/float64 in place (BLAS), anything else through a reused float64 buffer."""
    x = piece if piece.dtype in _NATIVE or piece.dtype.kind == "c" else _widened(piece, scratch)
    sq = float(np.vdot(x, x).real)
    if math.isfinite(sq):
        return sq, False
    finite = np.isfinite(x)
    if finite.all():  # a float32 sum that overflowed: again in float64
        wide = _widened(piece, scratch) if x.dtype == np.float32 else x
        return float(np.vdot(wide, wide)), False
    kept = x[finite] if x.dtype.kind == "c" else x[finite].astype(np.float64)
    return float(np.vdot(kept, kept).real), True


def _widened(piece: np.ndarray, scratch: list[Any]) -> np.ndarray:
    if not scratch or scratch[0].size < piece.size:
        scratch[:] = [np.empty(piece.size, np.float64)]
    out: np.ndarray = scratch[0][: piece.size]
    out[...] = piece
    return out


def _per_block(array: np.ndarray) -> int:
    """Elements per block: BLOCK bytes, or BLOCK / 8 elements where they are widened."""
    if array.dtype.hasobject or array.dtype.kind in "OSUMm":
        raise TypeError(errors.cannot_digest(array.dtype))
    size = array.dtype.itemsize
    return max(1, BLOCK // (size if array.dtype in _NATIVE else max(8, size)))


def _hash_only(array: np.ndarray) -> bytes:
    """The hash of :func:`_hash_and_squares`, without the sum of squares."""
    per = _per_block(array)
    if array.flags.c_contiguous:  # one call: the hasher reads the whole buffer itself
        return bytes(_hasher(array.reshape(-1).view(np.uint8)).digest())
    hasher = _hasher()
    for piece in _pieces(array, per):
        hasher.update(piece.view(np.uint8))
    return bytes(hasher.digest())


def _squares_only(array: np.ndarray) -> tuple[float, bool]:
    """The sum of squares and NaN/Inf of :func:`_hash_and_squares`, without the hash."""
    scratch: list[Any] = []
    sq, nonfinite = 0.0, False
    for piece in _pieces(array, _per_block(array)):
        piece_sq, piece_nonfinite = _squares(piece, scratch)
        sq, nonfinite = sq + piece_sq, nonfinite or piece_nonfinite
    return sq, nonfinite


def _hash_and_squares(array: np.ndarray) -> tuple[bytes, float, bool]:
    """(hash of the bits in C order, sum of squares of the finite values, any NaN/Inf)."""
    per = _per_block(array)
    scratch: list[Any] = []  # the float64 buffer of _widened, made when first needed
    if array.size <= per and array.flags.c_contiguous:  # most weights: one call each
        flat = array.reshape(-1)  # (np.vdot never warns of overflow: no np.errstate)
        return _hasher(flat.view(np.uint8)).digest(), *_squares(flat, scratch)
    hasher, sq, nonfinite = _hasher(), 0.0, False
    for piece in _pieces(array, per):
        hasher.update(piece.view(np.uint8))
        piece_sq, piece_nonfinite = _squares(piece, scratch)
        sq, nonfinite = sq + piece_sq, nonfinite or piece_nonfinite
    return hasher.digest(), sq, nonfinite


def _host_digest(array: np.ndarray, since: Digest | None = None) -> Digest:
    dtype, algorithm = buffers.dtype_name(array), _host_algorithm()
    if (
        since is not None
        and (since.algorithm, since.shards, since.replicas_differ) == (algorithm, (), False)
        and (since.shape, since.dtype) == (array.shape, dtype)
    ):
        hashed = _hash_only(array)
        if hashed == since.hash:
            return since  # the same bits: the same norm, no second pass
        sq, nonfinite = _squares_only(array)
    else:
        hashed, sq, nonfinite = _hash_and_squares(array)
    return Digest(hashed, math.sqrt(sq), array.nbytes, array.shape, dtype, nonfinite, algorithm)


def _torch_view(tensor: Any) -> np.ndarray:
    import torch  # a zero-copy view; bfloat16 and float8 through ml_dtypes

    tensor = tensor.detach()
    name = str(tensor.dtype).removeprefix("torch.")
    if name == "bfloat16" or name.startswith("float8"):
        import ml_dtypes

        as_int = tensor.view(torch.int16 if name == "bfloat16" else torch.uint8)
        return np.asarray(as_int.numpy()).view(getattr(ml_dtypes, name))
    return np.asarray(tensor.numpy())


def _jax_digest(array: Any) -> Digest:
    """A JAX array over several CPU devices (one CPU buffer goes through
    :func:`_host_array`): each addressable shard hashed where it lives (a zero-copy
    view), in global index order; replicas of one index compared with replica 0."""
    groups: dict[tuple[tuple[int, int], ...], list[Any]] = {}
    for shard in array.addressable_shards:
        key = tuple(s.indices(n)[:2] for s, n in zip(shard.index, array.shape, strict=True))
        groups.setdefault(key, []).append(shard)
    keys, hashes, sq, nonfinite, differ = tuple(sorted(groups)), [], 0.0, False, False
    for key in keys:
        replicas = sorted(groups[key], key=lambda shard: shard.replica_id)
        first, *others = (_hash_and_squares(np.asarray(s.data)) for s in replicas)
        differ = differ or any(other[0] != first[0] for other in others)
        hashes.append(first[0])
        sq, nonfinite = sq + first[1], nonfinite or first[2]
    shards = () if keys == (tuple((0, n) for n in array.shape),) else keys
    hashed = hashes[0] if len(hashes) == 1 else _hasher(b"".join(hashes)).digest()
    nbytes, dtype, algorithm = array.size * array.itemsize, str(array.dtype), _host_algorithm()
    return Digest(
        hashed, math.sqrt(sq), nbytes, array.shape, dtype, nonfinite, algorithm, shards, differ
    )


# -- the device path --------------------------------------------------------------------
def _on_accelerator(raw: Any) -> bool:
    if hasattr(raw, "detach"):  # torch
        return bool(raw.device.type != "cpu")
    if hasattr(raw, "sharding"):  # JAX
        return any(d.platform != "cpu" for d in raw.sharding.device_set)
    device = getattr(raw, "device", None)
    return isinstance(device, str) and ("GPU" in device or "TPU" in device)  # TF tensor


def _device_digest(value: Any) -> Digest:
    """The fingerprint, norm and NaN/Inf of a torch tensor, JAX array, TF tensor or numpy
    array, computed by that backend where the value lives."""
    if isinstance(value, np.ndarray):
        lanes, (_, sq, nonfinite) = _reference_lanes(value), _hash_and_squares(value)
    elif hasattr(value, "detach"):
        lanes, sq, nonfinite = _torch_lanes(value)
    else:
        lanes, sq, nonfinite = (_jax_lanes if hasattr(value, "sharding") else _tf_lanes)(value)
    dtype, shape = value.dtype, tuple(int(n) for n in value.shape)
    name = getattr(dtype, "name", None) or str(dtype).removeprefix("torch.")
    nbytes = math.prod(shape) * (getattr(dtype, "itemsize", None) or dtype.size)
    fingerprint = np.array(lanes, "<u4").tobytes()
    return Digest(fingerprint, math.sqrt(sq), nbytes, shape, name, nonfinite, FINGERPRINT)


def _fmix(h: Any, u32: Any = np.uint32) -> Any:
    """murmur3's 32-bit finalizer on numpy or JAX uint32 arrays (``u32``: their uint32)."""
    for shift, factor in ((16, _C1), (13, _C2), (16, 0)):
        h = h ^ (h >> u32(shift))
        h = h * u32(factor) if factor else h
    return h


def _high_key(lane: int, high: int) -> int:
    """H_j(i >> 32): 0 below 2^32 words, so that smaller values need no extra operation."""
    mixed = _fmix(np.array([(high * 0x9E3779B9 ^ SEEDS[lane]) & _M32], np.uint32))
    return int(mixed[0]) if high else 0


def _reference_lanes(array: np.ndarray, offset: int = 0, chunk: int = 1 << 18) -> list[int]:
    flat = np.ascontiguousarray(array).reshape(-1)
    itemsize = flat.dtype.itemsize
    per = max(1, itemsize // 4)  # words per element
    lanes, start, total = [0, 0, 0, 0], 0, flat.size * per
    while start < total:  # blocks never straddle a multiple of 2^32 (chunk divides it)
        at = offset + start
        n = min(total - start, chunk - at % chunk)
        piece = flat[start // per : (start + n) // per]
        words = piece.view(np.uint32 if itemsize >= 4 else f"u{itemsize}").astype(np.uint32)
        index = (np.arange(n, dtype=np.uint64) + np.uint64(at & _M32)).astype(np.uint32)
        for j, seed in enumerate(SEEDS):
            key = _fmix(index ^ np.uint32(seed)) ^ np.uint32(_high_key(j, at >> 32))
            lanes[j] += int(_fmix(words ^ key).sum(dtype=np.uint64))
        start += n
    return [lane & _M32 for lane in lanes]


def _torch_lanes(tensor: Any, chunk: int | None = None) -> tuple[list[int], float, bool]:
    """int64 tensors hold the 32-bit words (torch's uint32 cannot shift or sum); each
    multiply is split into 16-bit halves, so nothing overflows. Blocks of 2^14 words on
    the CPU (larger eager temporaries page-fault), 2^24 on an accelerator."""
    import torch

    def fmix(h: Any) -> Any:
        for shift, c in ((16, _C1), (13, _C2), (16, 0)):
            h = h ^ (h >> shift)
            h = (h * (c & 0xFFFF) + (((h * (c >> 16)) & 0xFFFF) << 16)) & _M32 if c else h
        return h

    flat = tensor.detach().reshape(-1)
    device, size = flat.device, flat.element_size()
    chunk = chunk or (1 << 14 if device.type == "cpu" else 1 << 24)
    per = max(1, size // 4)
    as_int, mask = {1: (torch.uint8, 0xFF), 2: (torch.int16, 0xFFFF)}.get(size, (torch.int32, _M32))
    work = torch.float32 if device.type == "mps" else torch.float64
    lanes = torch.zeros(4, dtype=torch.int64, device=device)
    sq, nonfinite = 0.0, False
    for start in range(0, flat.numel() * per, chunk):
        piece = flat[start // per : (start + chunk) // per]
        words = piece.view(as_int).reshape(-1).to(torch.int64) & mask
        index = torch.arange(words.numel(), dtype=torch.int64, device=device) + (start & _M32)
        for j, seed in enumerate(SEEDS):
            key = fmix(index ^ seed) ^ _high_key(j, start >> 32)
            lanes[j] = (lanes[j] + fmix(words ^ key).sum()) & _M32
        values = (piece.abs() if piece.is_complex() else piece).to(work)
        finite = torch.isfinite(values)
        sq += float(torch.where(finite, values * values, 0).sum())
        nonfinite = nonfinite or not bool(finite.all())
    return [int(v) for v in lanes.cpu()], sq, nonfinite


_JAX_JITTED: list[Any] = []


def _jax_lanes(array: Any) -> tuple[list[int], float, bool]:
    """uint32 throughout, one jitted and fused pass (compiled once per shape and dtype);
    a sharded array is reduced by XLA across its devices, with global positions."""
    import jax

    if array.size * max(1, array.dtype.itemsize // 4) > 1 << 32:
        raise ValueError(errors.fingerprint_too_large(array.size))
    if not _JAX_JITTED:
        _JAX_JITTED.append(jax.jit(_jax_fingerprint))
    lanes, sq, nonfinite = _JAX_JITTED[0](array)
    return [int(v) for v in lanes], float(sq), bool(nonfinite)


def _jax_fingerprint(x: Any) -> Any:
    import jax
    import jax.numpy as jnp

    flat = x.reshape(-1).astype(jnp.uint8) if x.dtype == jnp.bool_ else x.reshape(-1)
    size = flat.dtype.itemsize
    as_int = jnp.uint32 if size >= 4 else (jnp.uint8 if size == 1 else jnp.uint16)
    words = jax.lax.bitcast_convert_type(flat, as_int).reshape(-1).astype(jnp.uint32)
    index = jnp.arange(words.size, dtype=jnp.uint32)
    sums = [(_fmix(words ^ _fmix(index ^ jnp.uint32(s), jnp.uint32), jnp.uint32)) for s in SEEDS]
    lanes = jnp.stack([jnp.sum(lane, dtype=jnp.uint32) for lane in sums])
    values = jnp.abs(flat).astype(jnp.float64 if size >= 8 else jnp.float32)
    finite = jnp.isfinite(values)
    return lanes, jnp.sum(jnp.where(finite, values * values, 0)), ~jnp.all(finite)


def _tf_lanes(tensor: Any) -> tuple[list[int], float, bool]:
    """uint32 ``tf.bitwise`` operations and a wrapping ``reduce_sum``, on the tensor's
    device, over the whole tensor at once."""
    import tensorflow as tf

    u32 = functools.partial(tf.constant, dtype=tf.uint32)

    def fmix(h: Any) -> Any:
        for shift, factor in ((16, _C1), (13, _C2), (16, 0)):
            h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, u32(shift)))
            h = h * u32(factor) if factor else h
        return h

    with tf.device(tensor.device):
        flat = tf.reshape(tensor, [-1])
        size = flat.dtype.size
        if flat.dtype == tf.bool:
            words = tf.cast(flat, tf.uint32)
        else:
            as_int = tf.uint32 if size >= 4 else (tf.uint8 if size == 1 else tf.uint16)
            words = tf.cast(tf.reshape(tf.bitcast(flat, as_int), [-1]), tf.uint32)
        if int(words.shape[0]) > 1 << 32:
            raise ValueError(errors.fingerprint_too_large(int(words.shape[0])))
        index = tf.cast(tf.range(int(words.shape[0]), dtype=tf.int64), tf.uint32)
        keys = [fmix(tf.bitwise.bitwise_xor(index, u32(seed))) for seed in SEEDS]
        lanes = [int(tf.reduce_sum(fmix(tf.bitwise.bitwise_xor(words, k)))) for k in keys]
        values = tf.abs(flat) if flat.dtype.is_complex else flat
        values = tf.cast(values, tf.float64 if size >= 8 else tf.float32)
        finite = tf.math.is_finite(values)
        sq = tf.reduce_sum(tf.where(finite, values * values, tf.zeros_like(values)))
        return lanes, float(sq), not bool(tf.reduce_all(finite))
