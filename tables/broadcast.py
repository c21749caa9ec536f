"""Encoding of the item-state broadcast that every worker follows.

float64 little-endian ``[bias, popularity, popularity_time, plays, generation,
q_1 … q_k]`` (float64 so epoch times keep sub-second precision).  ``generation``
is the promoted model the vector belongs to (0: online only); a follower applies
factors only of its own generation.
"""
from __future__ import annotations

import numpy as np

HEADER = 5


def encode_item_state(bias: float, factors: np.ndarray, popularity: float,
                      popularity_time: float, plays: int, generation: int = 0) -> bytes:
    out = np.empty(HEADER + factors.shape[0], "<f8")
    out[:HEADER] = (bias, popularity, popularity_time, plays, generation)
    out[HEADER:] = factors
    return out.tobytes()


def decode_item_state(raw: bytes) -> tuple[float, np.ndarray, float, float, int, int]:
    """→ ``(bias, factors float32, popularity, popularity_time, plays, generation)``."""
    arr = np.frombuffer(raw, "<f8")
    if arr.shape[0] < HEADER:
        raise ValueError("item state too short")
    return (float(arr[0]), arr[HEADER:].astype(np.float32), float(arr[1]), float(arr[2]),
            int(arr[3]), int(arr[4]))
