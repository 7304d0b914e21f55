"""Optimizer state of the watched weights: the slots an optimizer keeps for each weight
(momenta, moments, Adafactor factors, EMA copies, gradient accumulators), a copy of them,
what changed, and the two findings about them.

* **frozen slots** — the optimizer holds state for weights that are frozen now: memory a
  user can free by compiling with a new optimizer;
* **stale moments** — a weight starts training with state left from an earlier phase
  (unfrozen without a new optimizer): its first updates follow the old moments.

The slots are found through the optimizer's own bookkeeping
(:func:`pytest_kerasfreeze._keras.tracing.weight_slots`) and hashed where they live (the
digests of :mod:`pytest_kerasfreeze._keras.digests`), only when a check asks for them.

Example::

    before = SlotSnapshot.take(index, index.select(["base"]))
    model.fit(x, y)
    changed = before.changes(before.retake())     # [SlotChange, ...]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_kerasfreeze._keras import digests, tracing
from pytest_kerasfreeze.engine.findings import FROZEN_SLOTS, STALE_MOMENTS, Finding
from pytest_kerasfreeze.engine.messages import explain
from pytest_kerasfreeze.engine.selection import ModelIndex
from pytest_kerasfreeze.engine.sequences import unique


@dataclass(frozen=True)
class SlotChange:
    """One slot of one weight that changed: ``path`` of the weight, ``slot`` its name
    (``"momentums"``, ``"velocities"``), ``optimizer`` the model attribute holding it,
    ``norm_change`` a lower bound of ‖after − before‖ (the slots are hashed, not copied)."""

    path: str
    slot: str
    optimizer: str
    shape: tuple[int, ...]
    norm_change: float


def _value(slot: Any) -> np.ndarray:
    return np.array(slot.numpy() if hasattr(slot, "numpy") else slot, copy=True)


def slots_of(index: ModelIndex, variables: list[Any]) -> list[tuple[str, int, str, Any]]:
    """``(optimizer name, weight id, slot name, slot variable)`` for the slots the
    model's optimizers keep for ``variables``."""
    found = []
    for name, optimizer in tracing.optimizers_of(index.model).values():
        if getattr(optimizer, "inner_optimizer", None) is not None and name.endswith(
            ".inner_optimizer"
        ):
            continue  # the LossScaleOptimizer reads through to it already
        for var_id, slots in tracing.weight_slots(optimizer, variables).items():
            found += [(name, var_id, slot_name, slot) for slot_name, slot in slots]
    return found


class SlotSnapshot:
    """Digests (a hash and a norm, where the value lives: no copy) of the optimizer slots
    of some weights of one model, at one moment."""

    def __init__(self, index: ModelIndex, variables: list[Any]) -> None:
        self.index = index
        self.variables = list(variables)
        tracing.synced_model(index.model)  # JAX keeps them in its training state mid-fit
        raw = index.flavor.raw
        self.digests: dict[tuple[str, int, str], digests.Digest] = {
            (opt, var_id, slot_name): digests.digest_raw(raw(slot))
            for opt, var_id, slot_name, slot in slots_of(index, self.variables)
        }

    def retake(self) -> SlotSnapshot:
        return SlotSnapshot(self.index, self.variables)

    def changes(self, after: SlotSnapshot) -> list[SlotChange]:
        """The slots that changed since this snapshot. A slot created since counts when
        it holds anything but zeros (a new optimizer's moments start at zero)."""
        out = []
        for key, new in after.digests.items():
            old = self.digests.get(key)
            if old is None:
                if new.norm == 0.0 and not new.nonfinite:
                    continue
                moved = math.inf if new.nonfinite else new.norm
            elif digests.same(old, new):
                continue
            else:
                moved = digests.change_lower_bound(old, new)
            opt, var_id, slot_name = key
            path = self.index.info[var_id].path
            out.append(SlotChange(path, slot_name, opt, new.shape, moved))
        return out


def frozen_slots_finding(index: ModelIndex, trainable: set[int]) -> Finding | None:
    """The state the model's optimizers hold for weights that are frozen now
    (``trainable``: ids of the weights that train now)."""
    frozen = [v for v in index.variables if id(v) not in trainable]
    if not frozen:
        return None
    slots = slots_of(index, frozen)
    if not slots:
        return None
    held = unique((var_id for _, var_id, _, _ in slots), key=str)
    nbytes = sum(index.flavor.nbytes(slot) for _, _, _, slot in slots)
    paths = [index.info[i].path for i in held]
    layers = unique((index.info[i].layer_path or index.name for i in held), key=str)
    optimizers = unique((opt for opt, _, _, _ in slots), key=str)
    summary, explanation, fix = explain.frozen_slots(index.name, paths, nbytes, optimizers)
    return Finding(FROZEN_SLOTS, index.name, summary, explanation, fix, layers)


def stale_moments_finding(index: ModelIndex, unfrozen: set[int]) -> Finding | None:
    """Weights about to train again (``unfrozen``: ids trainable now, not at the model's
    previous training call) whose optimizer state is not zero: left from an earlier
    phase."""
    if not unfrozen:
        return None
    variables = [v for v in index.variables if id(v) in unfrozen]
    stale = unique(
        (var_id for _, var_id, _, slot in slots_of(index, variables) if np.any(_value(slot))),
        key=str,
    )
    if not stale:
        return None
    paths = [index.info[i].path for i in stale]
    layers = unique((index.info[i].layer_path or index.name for i in stale), key=str)
    summary, explanation, fix = explain.stale_moments(index.name, paths)
    return Finding(STALE_MOMENTS, index.name, summary, explanation, fix, layers)
