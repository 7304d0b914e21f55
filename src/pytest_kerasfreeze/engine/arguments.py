"""Validating what the user passed: tolerances, and selector lists (``exclude=``,
``allow=`` take one selector or a sequence of them).

Example::

    check_tolerances(1e-6, 0.0)      # (1e-06, 0.0)
    as_selectors("head")             # ("head",)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from pytest_kerasfreeze.engine.messages import errors


def as_selectors(value: Any) -> tuple[Any, ...]:
    """``exclude=``/``allow=`` take one selector or a sequence of them."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        return (value,)
    return tuple(value)


def check_tolerances(atol: Any, rtol: Any) -> tuple[float, float]:
    """Validate ``atol``/``rtol``: finite, non-negative real numbers (not ``True``, not
    ``"1e-3"``: numpy's ``allclose`` refuses those too)."""
    out = []
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
            raise TypeError(errors.not_a_real_number(name, value))
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise ValueError(errors.negative_tolerance(name, value))
        out.append(number)
    return out[0], out[1]
