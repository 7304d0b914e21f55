"""Backend buffers: what a snapshot keeps of one variable, and bit-exact comparison.

A *captured* value is what a snapshot keeps of one variable's raw backend value (the
object behind the Keras variable: a TensorFlow resource variable, a JAX array, a torch
tensor):

* on TensorFlow, the buffer one ``ReadVariableOp`` returns. While anyone holds it,
  TensorFlow copies the buffer on the variable's next write (eager, graph, XLA and
  sparse updates alike), so a capture costs one read and no copy until training writes
  the variable; on the host it is kept as a read-only numpy view, on an accelerator as
  the device tensor;
* elsewhere a private numpy copy: JAX donates the old buffers to the next training
  step, torch updates in place.

Comparison is bit for bit (NaN payloads and the sign of zero count), block by block,
stopping at the first block that differs; :func:`compare` computes the statistics of a
change in one pass with block-sized temporaries.

This module knows backends, not Keras: it never reads a Keras attribute.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

BLOCK = 1 << 16  # elements per block: worked on while it is still in the CPU cache
SMALL = 1 << 12  # bytes below which two arrays are compared as bytes, in one call

UNMOVED: dict[str, Any] = dict(
    moved=False,
    max_abs_delta=0.0,
    rel_delta=0.0,
    changed_fraction=0.0,
    changed_elements=0,
    nonfinite=False,
)


# -- TensorFlow resource variables ----------------------------------------------------
# Both questions below are answered by the class and asked once per variable read, so
# each class's answers are kept: {class: (is a TF resource variable, and not distributed)}.
_TF_KINDS: dict[type, tuple[bool, bool]] = {}
_read_variable_op: Any = None


def _tf_kind(raw: Any) -> tuple[bool, bool]:
    cls = type(raw)
    kind = _TF_KINDS.get(cls)
    if kind is None:
        # tf_keras' AutoCastVariable hands ``handle`` on from the variable it wraps
        # (__getattr__), so the instance answers where its class does not; a
        # distributed variable's class has it (its property raises outside a replica).
        resource = hasattr(cls, "read_value") and (hasattr(cls, "handle") or hasattr(raw, "handle"))
        kind = _TF_KINDS[cls] = (resource, resource and not hasattr(cls, "values"))
    return kind


def is_tf_resource(raw: Any) -> bool:
    """Whether ``raw`` is a TensorFlow resource variable (distributed ones included)."""
    return _tf_kind(raw)[0]


def _plain_tf_variable(raw: Any) -> bool:
    """A TensorFlow resource variable that is not distributed (a distributed
    variable's class has ``values``)."""
    return _tf_kind(raw)[1]


_TORCH: dict[type, bool] = {}  # {class: a torch tensor}


def is_torch(raw: Any) -> bool:
    """Whether ``raw`` is a torch tensor (never distributed or sharded: no probing)."""
    cls = type(raw)
    kind = _TORCH.get(cls)
    if kind is None:
        kind = _TORCH[cls] = hasattr(cls, "detach") and cls.__module__.split(".")[0] == "torch"
    return kind


def tf_read(raw: Any) -> Any:
    """The variable's current buffer, as a tensor: one ``ReadVariableOp``, no copy.

    Called directly rather than through ``raw.value()``/``raw.numpy()``: those add an
    ``Identity`` op, gradient-tape bookkeeping and name scopes (~10 µs per variable)."""
    global _read_variable_op
    if _read_variable_op is None:  # imported on first use: TensorFlow is loaded by then
        from tensorflow.python.ops.gen_resource_variable_ops import read_variable_op

        _read_variable_op = read_variable_op
    tensor: Any = _read_variable_op(raw.handle, raw.dtype)
    return tensor


def tf_on_host(raw: Any) -> bool:
    return "GPU" not in raw.handle.device and "TPU" not in raw.handle.device


def host_view(tensor: Any) -> np.ndarray:
    """A read-only numpy view of a host tensor's buffer (``.numpy()`` would copy it);
    the view keeps the buffer alive."""
    array = np.asarray(tensor._numpy())  # an ndarray already, but for exotic scalars
    array.setflags(write=False)
    return array


def _tf_same_bits(a: Any, b: Any) -> bool:
    import tensorflow as tf

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.is_floating:
        as_int = {2: tf.int16, 4: tf.int32, 8: tf.int64}[a.dtype.size]
        a, b = tf.bitcast(a, as_int), tf.bitcast(b, as_int)
    return bool(tf.reduce_all(tf.equal(a, b)))


# -- reading any backend --------------------------------------------------------------
def replicas(raw: Any) -> list[Any]:
    """The per-device copies of a distributed value, or ``[]``."""
    if _plain_tf_variable(raw):
        return []
    values = getattr(raw, "values", None)
    if isinstance(values, tuple) and len(values) > 1:  # tf.distribute mirrored variable
        return list(values)
    shards = getattr(raw, "addressable_shards", None)
    sharding = getattr(raw, "sharding", None)
    if shards and len(shards) > 1 and getattr(sharding, "is_fully_replicated", False):
        return [shard.data for shard in shards]  # replicated JAX array
    return []


def _sharded(raw: Any) -> list[Any] | None:
    """The shards of a JAX array split over devices (``ModelParallel``), or ``None``;
    reading such an array whole would gather it (and cache the gathered copy)."""
    sharding = getattr(raw, "sharding", None)
    if sharding is None or getattr(sharding, "is_fully_replicated", True):
        return None
    shards = list(raw.addressable_shards)
    return shards if len(shards) > 1 else None


def view(raw: Any) -> np.ndarray:
    """The value as numpy, without a copy where the backend allows."""
    if is_torch(raw):  # first: read once or twice per weight per check
        try:  # the numpy view of its memory, for a tensor on the host in a numpy dtype
            direct: np.ndarray = raw.detach().numpy()
            return direct
        except (TypeError, RuntimeError):  # off the host, or bfloat16: below
            pass
    if is_tf_resource(raw):
        return host_view(tf_read(raw))  # the variable's buffer (a copy off the host)
    if hasattr(raw, "detach"):  # torch
        raw = raw.detach().cpu()
        if str(raw.dtype) == "torch.bfloat16":
            import ml_dtypes

            widened: np.ndarray = raw.float().numpy()
            return widened.astype(ml_dtypes.bfloat16)
        array: np.ndarray = raw.numpy()
        return array
    if hasattr(raw, "numpy"):  # a TensorFlow tensor: always a fresh array
        return np.asarray(raw.numpy())
    return np.asarray(raw)  # JAX (read-only view), numpy


def to_numpy(raw: Any) -> np.ndarray:
    """A read-only numpy array of one backend value that nothing else will write into."""
    if is_tf_resource(raw):  # the read buffer: TensorFlow copies it before a write
        return host_view(tf_read(raw))
    if hasattr(raw, "numpy") and not hasattr(raw, "detach"):
        return np.asarray(raw.numpy())  # a TensorFlow tensor: a fresh array already
    shards = _sharded(raw)
    if shards is not None:  # one copy, assembled shard by shard where each lives
        array = np.empty(tuple(raw.shape), dtype=np.asarray(shards[0].data).dtype)
        for shard in shards:
            array[shard.index] = np.asarray(shard.data)
        array.setflags(write=False)
        return array
    # torch shares memory with the tensor the optimizer writes into; JAX with its buffer
    array = np.array(view(raw), copy=True)
    array.setflags(write=False)
    return array


def capture(raw: Any) -> tuple[Any, float]:
    """What a snapshot keeps of a variable's raw value, and how far its replicas drift
    apart (the largest |replica - replica 0|; 0.0 for a value that is not distributed)."""
    if _plain_tf_variable(raw):  # the common TensorFlow case, without the probing
        tensor = tf_read(raw)
        return (host_view(tensor) if tf_on_host(raw) else tensor), 0.0
    if is_torch(raw):  # shares memory with the tensor the optimizer writes into
        array = np.array(view(raw), copy=True)
        array.setflags(write=False)
        return array, 0.0
    if _on_one_device(raw):  # the common JAX case: one copy, without the probing
        array = np.array(raw)  # JAX donates its buffers to the next training step
        array.setflags(write=False)
        return array, 0.0
    parts = replicas(raw)
    if not parts:
        return to_numpy(raw), 0.0
    first, *others = [to_numpy(p) for p in parts]
    return first, max(max_abs_difference(first, other) for other in others)


_IMMUTABLE: dict[type, bool] = {}  # {class: its arrays are immutable (JAX)}
_ONE_DEVICE: dict[type, bool] = {}  # {sharding class: it puts an array on one device}


def _is_jax(raw: Any) -> bool:
    cls = type(raw)
    immutable = _IMMUTABLE.get(cls)
    if immutable is None:
        immutable = _IMMUTABLE[cls] = cls.__module__.split(".", 1)[0] in ("jaxlib", "jax")
    return immutable


def _on_one_device(raw: Any) -> bool:
    """A JAX array held whole by one device (neither replicated nor sharded)."""
    if not _is_jax(raw):
        return False
    cls = type(getattr(raw, "sharding", None))
    one = _ONE_DEVICE.get(cls)
    if one is None:
        one = _ONE_DEVICE[cls] = cls.__name__ == "SingleDeviceSharding"
    return one


def source_ref(raw: Any) -> Any:
    """A weak reference to ``raw`` where it is an immutable array (JAX): holding the same
    object later means holding the same bits. ``None`` for values written in place
    (torch tensors, TensorFlow variables)."""
    if not _is_jax(raw):
        return None
    try:
        return weakref.ref(raw)
    except TypeError:
        return None


def copy_source(raw: Any) -> np.ndarray | None:
    """A zero-copy numpy view of the value where a snapshot keeps a private copy of it
    (JAX, PyTorch), so that the copy can be made block by block along with a
    comparison; ``None`` where a snapshot keeps something else (TensorFlow's buffers,
    distributed values)."""
    if is_tf_resource(raw) or replicas(raw) or _sharded(raw) is not None:
        return None
    return view(raw)


def unchanged(captured: Any, raw: Any) -> bool:
    """Whether the raw value (every replica of it) still holds exactly the captured bits."""
    if is_torch(raw) or _plain_tf_variable(raw):  # the common cases, without probing
        return same_bits(captured, raw)
    return all(same_bits(captured, part) for part in replicas(raw) or [raw])


def same_bits(captured: Any, raw: Any) -> bool:
    """Whether ``raw`` still holds exactly the captured bits (NaNs included)."""
    if not isinstance(captured, np.ndarray):
        return _tf_same_bits(captured, tf_read(raw))
    shards = None if is_torch(raw) else _sharded(raw)
    if shards is not None:
        return tuple(raw.shape) == captured.shape and all(
            equal_bits(np.ascontiguousarray(captured[s.index]), np.asarray(s.data)) for s in shards
        )
    live = view(raw)
    if live.shape != captured.shape or live.dtype != captured.dtype:
        return False
    return equal_bits(captured, live)


def materialize(captured: Any) -> np.ndarray:
    """A numpy array of a captured value (itself, or a host copy of a device tensor)."""
    if isinstance(captured, np.ndarray):
        return captured
    return np.asarray(captured.numpy())


_DTYPE_NAMES: dict[np.dtype[Any], str] = {}


def dtype_name(captured: Any) -> str:
    """The numpy name of a captured value's dtype ("float32", "bfloat16", ...)."""
    if isinstance(captured, np.ndarray):
        name = _DTYPE_NAMES.get(captured.dtype)
        if name is None:  # str(dtype) runs Python code in numpy 2: ~4 µs, once per dtype
            name = _DTYPE_NAMES[captured.dtype] = str(captured.dtype)
        return name
    return str(np.dtype(captured.dtype.as_numpy_dtype))


def nbytes(captured: Any) -> int:
    """Bytes a captured value holds."""
    if isinstance(captured, np.ndarray):
        return int(captured.nbytes)
    return int(np.prod(captured.shape)) * int(captured.dtype.size)


# -- bits and statistics --------------------------------------------------------------
def bit_view(array: np.ndarray) -> np.ndarray:
    """The same memory seen as unsigned integers: equality of bits, NaN payloads too."""
    if array.dtype.kind in "fcV" and array.dtype.itemsize in (1, 2, 4, 8):
        return array.view(f"u{array.dtype.itemsize}")
    return array


def equal_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one shape and dtype hold the same bits (NaN payloads, the
    sign of zero).  The same buffer answers at once; otherwise block by block, stopping
    at the first block that differs, with no temporary as large as the arrays."""
    if a.nbytes <= SMALL:  # most weights of a large model: their bytes, C order
        return a.tobytes() == b.tobytes()
    same_buffer = a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    if same_buffer and a.strides == b.strides:
        return True  # one buffer: on TensorFlow, a variable nothing wrote since the read
    a, b = bit_view(a).reshape(-1), bit_view(b).reshape(-1)
    for start in range(0, a.size, BLOCK):
        if not np.array_equal(a[start : start + BLOCK], b[start : start + BLOCK]):
            return False
    return True


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest |a - b| (0.0 for the same bits, inf where no element is finite)."""
    if equal_bits(a, b):
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        delta = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.nanmax(delta)) if np.isfinite(delta).any() else float("inf")


def compare(
    before: np.ndarray,
    after: np.ndarray,
    atol: float,
    rtol: float,
    *,
    copy_into: np.ndarray | None = None,
) -> dict[str, Any]:
    """The statistics of one weight's change, computed block by block.

    Exact (the default): a change is any change of bits (``-0.0`` for ``0.0`` too),
    except that a NaN staying a NaN is none. With ``atol``/``rtol``:
    ``not isclose(after, before, rtol, atol)``.  One pass over both arrays; no
    temporary is larger than a block.  ``copy_into`` (an array like ``after``, written
    block by block) receives a copy of ``after`` in the same pass.

    ``rel_delta`` is ‖after−before‖ / ‖before‖: ``inf`` for a weight that was all
    zeros and moved (reports say "from 0" there).
    """
    if before.shape != after.shape:
        if copy_into is not None:
            np.copyto(copy_into, after)
        return dict(
            moved=True,
            max_abs_delta=math.inf,
            rel_delta=math.inf,
            changed_fraction=1.0,
            changed_elements=after.size,
            nonfinite=False,
        )
    exact = atol == 0.0 and rtol == 0.0
    if copy_into is None and exact and equal_bits(before, after):  # stops at the first
        return dict(UNMOVED)  # block that differs
    b_all, a_all = before.reshape(-1), after.reshape(-1)
    copy_all = None if copy_into is None else copy_into.reshape(-1)
    b_bits = bit_view(b_all)
    floating = b_all.dtype.kind == "f" and b_all.dtype.itemsize >= 4
    work = b_all.dtype if floating else np.float64  # ints, bool, float16, bfloat16
    block = min(BLOCK, b_all.size)
    delta_buffer = np.empty(block, dtype=work)
    mask_buffer = np.empty(block, dtype=bool)
    changed = 0
    max_abs = 0.0
    sum_sq_delta = 0.0
    sum_sq_before = 0.0
    nonfinite = False
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, b_all.size, BLOCK):
            stop = start + BLOCK
            a_block = a_all[start:stop]
            if copy_all is not None:  # copy the block, then work on the copy (in cache)
                copy_all[start:stop] = a_block
                a_block = copy_all[start:stop]
            b = b_all[start:stop].astype(work, copy=False)
            a = a_block.astype(work, copy=False)
            size = b.size
            sum_sq_before += float(np.dot(b, b))
            if exact:
                mask = np.not_equal(b_bits[start:stop], bit_view(a_block), out=mask_buffer[:size])
            else:
                mask = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
            n = int(np.count_nonzero(mask))
            if not n:
                continue
            delta = np.subtract(a, b, out=delta_buffer[:size])
            square = float(np.dot(delta, delta))
            if math.isfinite(square):  # the common case: plain numbers
                changed += n
                max_abs = max(max_abs, float(delta.max()), -float(delta.min()))
                sum_sq_delta += square
                continue
            # NaN or Inf involved: a NaN that stays a NaN is no change, nor is an Inf
            # that stays (inf - inf is NaN); any other non-finite difference is infinite
            mask = mask & ~(np.isnan(a) & np.isnan(b))
            changed += int(np.count_nonzero(mask))
            magnitude = np.abs(delta)
            undefined = ~np.isfinite(magnitude)
            magnitude[undefined & mask] = math.inf
            magnitude[undefined & ~mask] = 0.0
            nonfinite = nonfinite or bool(np.any(np.isfinite(b) & ~np.isfinite(a)))
            max_abs = max(max_abs, float(magnitude.max()))
            sum_sq_delta = (
                math.inf
                if not np.isfinite(magnitude).all()
                else sum_sq_delta + float(np.dot(magnitude, magnitude))
            )
    if not math.isfinite(sum_sq_before):  # non-finite before: measure the finite part
        finite = before[np.isfinite(before.astype(np.float64))].astype(np.float64)
        sum_sq_before = float(np.dot(finite, finite))
    if not changed:
        return dict(UNMOVED)
    norm_before, norm_delta = math.sqrt(sum_sq_before), math.sqrt(sum_sq_delta)
    if norm_before > 0:
        rel = norm_delta / norm_before
    else:  # from zero: undefined when it moved (inf), none for 0.0 -> -0.0
        rel = math.inf if norm_delta > 0 else 0.0
    return dict(
        moved=True,
        max_abs_delta=max_abs,
        rel_delta=rel,
        changed_fraction=changed / b_all.size,
        changed_elements=changed,
        nonfinite=nonfinite,
    )


def nonfinite_count(array: np.ndarray) -> int:
    """How many elements of ``array`` are NaN or Inf (0 for integer dtypes)."""
    if array.dtype.kind not in "fc" and array.dtype.name != "bfloat16":
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array.astype(np.float64))))
