"""Time-decayed popularity: recent plays count more, old hits fade.

Each item keeps ``(score, last_time)``; an event at time ``t`` decays the score
to ``t`` by ``2^(-(t - last)/half_life)`` and adds its weight.  Reading at time
``now`` decays every score to ``now`` in one vectorised step, so ranking cost
does not depend on how many events were seen.
"""
from __future__ import annotations

import math

import numpy as np


def decay_to(score: float, last_time: float, now: float, half_life_s: float) -> float:
    if now <= last_time:
        return score
    return score * math.exp2(-(now - last_time) / half_life_s)


def add_event(score: float, last_time: float, time: float, weight: float,
              half_life_s: float) -> tuple[float, float]:
    """Fold one event into ``(score, last_time)``; late events are decayed back."""
    if time >= last_time:
        return decay_to(score, last_time, time, half_life_s) + weight, time
    return score + weight * math.exp2(-(last_time - time) / half_life_s), last_time


def decayed_scores(scores: np.ndarray, last_times: np.ndarray, now: float,
                   half_life_s: float) -> np.ndarray:
    """Every item's score as of ``now`` (vectorised :func:`decay_to`)."""
    age = np.maximum(now - last_times, 0.0)
    return scores * np.exp2(-age / half_life_s)


def popularity_prior(scores: np.ndarray, blend: float) -> np.ndarray:
    """A ranking prior from popularity: ``blend · log1p(score)``, float32."""
    return (blend * np.log1p(np.maximum(scores, 0.0))).astype(np.float32)
