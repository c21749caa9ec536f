"""What every batch factor model shares: the fitted arrays, their reads and the artifact.

Reads never mutate: unknown users or items get the declared fallback (global mean + known
biases; popularity order for ``recommend``: interaction counts, or with
``popularity_half_life_days`` counts decayed by age as of the newest training event -- the
same time-decayed popularity serving falls back to).  Fits live in :mod:`models.als`
(biased ALS for ratings) and :mod:`models.ials` (implicit ALS for interactions).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from models._ids import as_items, as_users, lookup, top_k
from models.popularity import popularity_prior

ARRAY_NAMES = ("user_ids", "user_factors", "user_bias", "item_ids", "item_factors",
               "item_bias", "global_mean", "item_counts", "item_popularity")
SECONDS_PER_DAY = 86400.0


def recency_weights(timestamps: np.ndarray | None, n: int,
                    half_life_days: float | None) -> np.ndarray:
    """``2^(-age / half_life)`` per event, age measured from the newest event (1 if off)."""
    if half_life_days is None or timestamps is None or n == 0:
        return np.ones(n)
    if half_life_days <= 0:
        raise ValueError("half-lives must be positive (or None for no decay)")
    ts = np.asarray(timestamps, dtype=np.float64)
    if ts.shape != (n,):
        raise ValueError("timestamps must align with the interactions")
    return np.exp2(-(ts.max() - ts) / (half_life_days * SECONDS_PER_DAY))


class FactorModel:
    """Shared state and reads of a fitted factor model (the artifact's arrays)."""

    predicts_ratings = True
    _param_names: tuple[str, ...] = ()
    popularity_half_life_days: float | None = None
    popularity_weight: float = 0.0

    def __init__(self) -> None:
        self.user_ids = np.zeros(0, np.int64)
        self.item_ids = np.zeros(0, "<U1")
        self.user_factors = np.zeros((0, 0), np.float32)
        self.item_factors = np.zeros((0, 0), np.float32)
        self.user_bias = np.zeros(0, np.float32)
        self.item_bias = np.zeros(0, np.float32)
        self.item_counts = np.zeros(0, np.int64)
        self.item_popularity = np.zeros(0, np.float64)
        self.global_mean = 0.0

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters under their own names (for the manifest and ``clone``)."""
        return {name: getattr(self, name) for name in self._param_names}

    # -- reads ---------------------------------------------------------------
    def predict_many(self, users: Iterable, items: Iterable) -> np.ndarray:
        """Scores for aligned (user, item) pairs; unknown sides fall back to biases/mean."""
        u = lookup(self.user_ids, as_users(users))
        i = lookup(self.item_ids, as_items(items))
        pred = np.full(u.shape, self.global_mean, dtype=np.float64)
        ku, ki = u >= 0, i >= 0
        pred[ku] += self.user_bias[u[ku]]
        pred[ki] += self.item_bias[i[ki]]
        both = ku & ki
        pred[both] += np.einsum("ij,ij->i", self.user_factors[u[both]].astype(np.float64),
                                self.item_factors[i[both]].astype(np.float64))
        return self._clip(pred)

    def recommend(self, user: int, k: int = 20, exclude: Iterable = ()) -> list[str]:
        """Top-``k`` item ids best first; an unknown user gets popularity order.

        A known user's score is ``p_u . q_i + b_i``, plus ``popularity_weight *
        log1p(item_popularity)`` when that weight is set (serving's popularity prior).
        """
        row = int(lookup(self.user_ids, np.asarray([user], dtype=np.int64))[0])
        if row >= 0:
            scores = self.item_factors @ self.user_factors[row] + self.item_bias
            scores = scores.astype(np.float64)
            if self.popularity_weight:
                scores += popularity_prior(self.item_popularity, self.popularity_weight)
        else:
            scores = self.item_popularity.astype(np.float64)
        excluded = lookup(self.item_ids, as_items(list(exclude)))
        scores[excluded[excluded >= 0]] = -np.inf
        return self.item_ids[top_k(scores, k)].tolist()

    def _clip(self, pred: np.ndarray) -> np.ndarray:
        return pred

    # -- artifact ------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The artifact arrays, names and dtypes as the serving side loads them."""
        return {
            "user_ids": self.user_ids.astype(np.int64),
            "user_factors": self.user_factors.astype(np.float32),
            "user_bias": self.user_bias.astype(np.float32),
            "item_ids": self.item_ids.astype(str),
            "item_factors": self.item_factors.astype(np.float32),
            "item_bias": self.item_bias.astype(np.float32),
            "global_mean": np.asarray(self.global_mean, dtype=np.float64),
            "item_counts": self.item_counts.astype(np.int64),
            "item_popularity": self.item_popularity.astype(np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any] | None = None):
        model = cls(**(params or {}))
        for name in ARRAY_NAMES:
            if name in arrays:
                setattr(model, name, np.asarray(arrays[name]))
        model.global_mean = float(model.global_mean)
        if "item_counts" not in arrays:
            model.item_counts = np.zeros(model.item_ids.size, np.int64)
        if "item_popularity" not in arrays:  # artifacts from before the decayed fallback
            model.item_popularity = model.item_counts.astype(np.float64)
        return model

    def _index(self, users: Iterable, items: Iterable, values: Iterable,
               timestamps: Iterable | None = None):
        users, items = as_users(users), as_items(items)
        values = np.asarray(values, dtype=np.float64)
        if not (users.shape == items.shape == values.shape) or users.ndim != 1:
            raise ValueError("users, items and values must be aligned 1-d arrays")
        self.user_ids, u = np.unique(users, return_inverse=True)
        self.item_ids, i = np.unique(items, return_inverse=True)
        self.item_counts = np.bincount(i, minlength=self.item_ids.size).astype(np.int64)
        decay = recency_weights(None if timestamps is None else np.asarray(timestamps),
                                values.size, self.popularity_half_life_days)
        self.item_popularity = np.bincount(i, weights=decay, minlength=self.item_ids.size)
        return u.astype(np.int64), i.astype(np.int64), values
