"""Batch popularity baseline with the common model API (the bar every model must clear).

Ranks items by how many training interactions they have; predicts a rating
as the global mean plus a damped item bias ``sum(r - mu) / (n_i + damping)``,
so a movie with two 5-star ratings does not outrank a classic.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from models._ids import as_items, as_users, lookup, top_k


class PopularityModel:
    """Non-personalised: every user gets the same most-interacted items."""

    predicts_ratings = True

    def __init__(self, *, damping: float = 10.0,
                 rating_range: tuple[float, float] | None = (1.0, 5.0)) -> None:
        self.damping = damping
        self.rating_range = None if rating_range is None else tuple(rating_range)
        self.item_ids = np.zeros(0, "<U1")
        self.item_counts = np.zeros(0, np.int64)
        self.item_bias = np.zeros(0, np.float64)
        self.global_mean = 0.0

    def get_params(self) -> dict[str, Any]:
        return {"damping": self.damping, "rating_range": self.rating_range}

    def fit(self, users: Iterable, items: Iterable, values: Iterable, *,
            timestamps: Iterable | None = None) -> "PopularityModel":
        as_users(users)  # validates the ids even though they are not used
        values = np.asarray(values, dtype=np.float64)
        self.item_ids, i = np.unique(as_items(items), return_inverse=True)
        self.global_mean = float(values.mean()) if values.size else 0.0
        self.item_counts = np.bincount(i, minlength=self.item_ids.size).astype(np.int64)
        sums = np.bincount(i, weights=values - self.global_mean, minlength=self.item_ids.size)
        self.item_bias = sums / (self.item_counts + self.damping)
        return self

    def predict_many(self, users: Iterable, items: Iterable) -> np.ndarray:
        i = lookup(self.item_ids, as_items(items))
        pred = np.full(i.shape, self.global_mean)
        pred[i >= 0] += self.item_bias[i[i >= 0]]
        return pred if self.rating_range is None else np.clip(pred, *self.rating_range)

    def recommend(self, user: int, k: int = 20, exclude: Iterable = ()) -> list[str]:
        scores = self.item_counts.astype(np.float64)
        excluded = lookup(self.item_ids, as_items(list(exclude)))
        scores[excluded[excluded >= 0]] = -np.inf
        return self.item_ids[top_k(scores, k)].tolist()
