"""Deterministic, salted assignment of users to experiment arms.

Every worker must put a user in the same arm without talking to the others, and
a restart must not reshuffle anyone, so the arm is a pure function of
``(salt, user)``: ``blake2b(f"{salt}:{user}")`` read as a uniform number in
[0, 1).  Python's ``hash()`` is salted per process and would break this.

Two independent draws per user and experiment keep ramps honest:

* the *exposure* draw decides whether the user is in the experiment at all
  (``u < exposure``; the rest is the holdout and is served the default), so
  ramping exposure up never moves a user out of the experiment or between arms;
* the *arm* draw picks an arm from the cumulative weights.  The first arm owns
  ``[0, w0)``, so growing its weight (a canary at 1% → 5% → 25% → 50%) only ever
  adds users to it: whoever was already in the canary stays there.

Experiments with different salts are independent because the hash is.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Iterable, Sequence

import numpy as np

CANARY_RAMP = (0.01, 0.05, 0.25, 0.50)
HOLDOUT = -1          # arm index of a user outside the experiment
_SCALE = float(2 ** 64)


def unit_hash(salt: str, user_ids: Iterable[object] | np.ndarray) -> np.ndarray:
    """Uniform [0, 1) per user id, stable across processes, machines and restarts."""
    out = [int.from_bytes(hashlib.blake2b(f"{salt}:{u}".encode(), digest_size=8).digest(), "big")
           for u in _as_keys(user_ids)]
    return np.asarray(out, dtype=np.uint64).astype(np.float64) / _SCALE


def _as_keys(user_ids: Iterable[object] | np.ndarray) -> list[object]:
    """Integers hash by their decimal text (``7`` and ``np.int64(7)`` and ``"7"`` agree)."""
    if isinstance(user_ids, np.ndarray):
        return user_ids.tolist()
    return list(user_ids)


@dataclasses.dataclass(frozen=True, slots=True)
class Allocation:
    """Arms, their relative weights and the exposed share of traffic for one experiment."""

    salt: str
    arms: tuple[str, ...]
    weights: tuple[float, ...]
    exposure: float = 1.0

    def __post_init__(self) -> None:
        if not self.salt:
            raise ValueError("an experiment needs a non-empty salt")
        if len(self.arms) != len(self.weights) or len(self.arms) < 1:
            raise ValueError("arms and weights must be non-empty and of equal length")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"duplicate arm names: {self.arms}")
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        if not 0.0 <= self.exposure <= 1.0:
            raise ValueError("exposure must be within [0, 1]")

    @property
    def shares(self) -> np.ndarray:
        """Expected fraction of *all* users per arm (the holdout is ``1 - shares.sum()``)."""
        w = np.asarray(self.weights, dtype=np.float64)
        return self.exposure * w / w.sum()

    def assign(self, user_ids: Iterable[object] | np.ndarray) -> np.ndarray:
        """Arm index per user (``HOLDOUT`` = not in the experiment); vectorised."""
        keys = _as_keys(user_ids)
        exposed = (np.ones(len(keys), dtype=bool) if self.exposure >= 1.0
                   else unit_hash(f"{self.salt}/exposure", keys) < self.exposure)
        edges = np.cumsum(np.asarray(self.weights, dtype=np.float64))
        edges /= edges[-1]
        arm = np.searchsorted(edges, unit_hash(f"{self.salt}/arm", keys), side="right")
        arm = np.minimum(arm, len(self.arms) - 1)
        return np.where(exposed, arm, HOLDOUT).astype(np.int64)

    def arm_of(self, user_id: object) -> str | None:
        """The arm name of one user, ``None`` in the holdout."""
        index = int(self.assign([user_id])[0])
        return None if index == HOLDOUT else self.arms[index]

    def with_exposure(self, exposure: float) -> "Allocation":
        return dataclasses.replace(self, exposure=exposure)


def canary(salt: str, treatment_share: float, *, treatment: str = "treatment",
           control: str = "control") -> Allocation:
    """Treatment first, so ramping ``treatment_share`` keeps everyone already in it."""
    if not 0.0 < treatment_share < 1.0:
        raise ValueError("a canary's treatment share is within (0, 1)")
    return Allocation(salt, (treatment, control), (treatment_share, 1.0 - treatment_share))


def next_ramp_step(current: float, schedule: Sequence[float] = CANARY_RAMP) -> float | None:
    """The next share on the schedule after ``current``; ``None`` when fully ramped."""
    later = [s for s in schedule if s > current + 1e-12]
    return later[0] if later else None
