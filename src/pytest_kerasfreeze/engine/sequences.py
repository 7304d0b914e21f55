"""Order-preserving helpers for sequences (the bottom layer: imports nothing)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")


def unique(items: Iterable[T], key: Callable[[T], Hashable] = id) -> list[T]:
    """``items`` without repeats, first occurrence kept, in order.

    By identity unless ``key`` says otherwise (Keras variables and layers are compared
    by identity: two layers may be equal in every attribute and still differ).

    Example::

        unique([a, b, a]) == [a, b]
        unique(["x", "y", "x"], key=str) == ["x", "y"]
    """
    seen: set[Hashable] = set()
    out = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out
