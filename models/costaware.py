"""Cost-aware re-ranking: predicted score traded against the licence cost per play.

The penalty is ``weight * cost / mean(known costs)``, so ``weight`` is in score
units per *average* licence fee and means the same whatever currency or scale
the catalogue uses.  A title whose cost is unknown (no metadata yet) is charged
the average: neither favoured nor shunned.
"""
from __future__ import annotations

import numpy as np


def cost_penalty(costs: np.ndarray, *, weight: float) -> np.ndarray:
    """Per-item amount to subtract from the score (float32, same length as ``costs``)."""
    costs = np.asarray(costs, dtype=np.float64)
    known = np.isfinite(costs) & (costs >= 0)
    if weight == 0 or not known.any():
        return np.zeros(costs.shape, np.float32)
    scale = float(costs[known].mean())
    if scale <= 0:
        return np.zeros(costs.shape, np.float32)
    relative = np.where(known, costs / scale, 1.0)
    return (weight * relative).astype(np.float32)
