"""Online biased matrix factorisation: one SGD step per rating or completed watch.

The step is split in two halves so that a user's owner and a movie's owner can
each apply their own side (SPEC §4: users and movies live in different
partitions).  The user side computes the error once; the item side reuses it.

    r̂(u, i) = μ + b_u + b_i + p_u · q_i

Numerically safe by construction: non-finite inputs leave the state as it
was, the error is clipped to ``max_step`` times the rating range, and vector
norms are capped, so an adversarial stream cannot push factors to inf/NaN.
"""
from __future__ import annotations

import hashlib
from typing import Hashable, Iterable, Sequence

import numpy as np

from models.ranking import top_k

MAX_NORM = 10.0


def init_vector(key: Hashable, n_factors: int, *, scale: float, seed: int) -> np.ndarray:
    """Deterministic small random vector for ``key``: equal in every process."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    return (rng.standard_normal(n_factors) * scale).astype(np.float32)


def _cap_norm(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec if norm <= MAX_NORM else (vec * (MAX_NORM / norm)).astype(np.float32)


def predict(user_vec: np.ndarray, user_bias: float, item_vec: np.ndarray,
            item_bias: float, global_mean: float) -> float:
    return float(global_mean + user_bias + item_bias + np.dot(user_vec, item_vec))


def user_step(user_vec: np.ndarray, user_bias: float, item_vec: np.ndarray, item_bias: float,
              global_mean: float, rating: float, *, lr: float, reg: float, weight: float = 1.0,
              clip: float = 4.0) -> tuple[np.ndarray, float, float]:
    """The user half of one SGD step → ``(user_vec, user_bias, error)``.

    ``error`` is what the item half needs; it is 0.0 when the inputs were not
    finite (the state is returned unchanged).
    """
    if not (np.isfinite(rating) and np.isfinite(weight) and weight > 0
            and np.all(np.isfinite(user_vec)) and np.all(np.isfinite(item_vec))
            and np.isfinite(user_bias) and np.isfinite(item_bias)):
        return user_vec, user_bias, 0.0
    err = float(np.clip(rating - predict(user_vec, user_bias, item_vec, item_bias, global_mean),
                        -clip, clip))
    step = lr * weight
    new_vec = _cap_norm((user_vec + step * (err * item_vec - reg * user_vec)).astype(np.float32))
    new_bias = float(np.clip(user_bias + step * (err - reg * user_bias), -clip, clip))
    return new_vec, new_bias, err


def item_step(item_vec: np.ndarray, item_bias: float, user_vec: np.ndarray, error: float, *,
              lr: float, reg: float, weight: float = 1.0, clip: float = 4.0
              ) -> tuple[np.ndarray, float]:
    """The item half of the step, given the user's vector *before* its update."""
    if not (np.isfinite(error) and np.isfinite(weight) and weight > 0
            and np.all(np.isfinite(user_vec)) and np.all(np.isfinite(item_vec))
            and np.isfinite(item_bias)):
        return item_vec, item_bias
    error = float(np.clip(error, -clip, clip))
    step = lr * weight
    new_vec = _cap_norm((item_vec + step * (error * user_vec - reg * item_vec)).astype(np.float32))
    new_bias = float(np.clip(item_bias + step * (error - reg * item_bias), -clip, clip))
    return new_vec, new_bias


class OnlineMF:
    """A self-contained online MF, for evaluation and tests (river-style API).

    The streaming service applies the same :func:`user_step`/:func:`item_step`
    to vectors kept in tables; this class keeps them in growing arrays.
    Reads never mutate: an unknown user or item gets a declared fallback.
    """

    def __init__(self, *, n_factors: int = 32, learning_rate: float = 0.02,
                 regularization: float = 0.05, init_scale: float = 0.05,
                 global_mean: float = 3.5, max_step: float = 1.0, seed: int = 7,
                 rating_range: float = 4.0) -> None:
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.init_scale = init_scale
        self.global_mean = float(global_mean)
        self.max_step = max_step
        self.seed = seed
        self.rating_range = rating_range
        self._users: dict[Hashable, int] = {}
        self._items: dict[Hashable, int] = {}
        self._item_ids: list[Hashable] = []
        self._P = np.zeros((16, n_factors), np.float32)
        self._Q = np.zeros((16, n_factors), np.float32)
        self._bu = np.zeros(16, np.float64)
        self._bi = np.zeros(16, np.float64)
        self._item_count = np.zeros(16, np.int64)
        self._n_seen = 0

    # -- state growth (only learning grows state) --------------------------------
    def _row(self, table: dict, key: Hashable, user: bool) -> int:
        row = table.get(key)
        if row is not None:
            return row
        row = len(table)
        table[key] = row
        vec = init_vector(("u" if user else "i", key), self.n_factors,
                          scale=self.init_scale, seed=self.seed)
        if user:
            self._P, self._bu = grow(self._P, row), grow(self._bu, row)
            self._P[row] = vec
        else:
            self._Q, self._bi = grow(self._Q, row), grow(self._bi, row)
            self._item_count = grow(self._item_count, row)
            self._Q[row] = vec
            self._item_ids.append(key)
        return row

    def learn_one(self, user: Hashable, item: Hashable, rating: float, weight: float = 1.0) -> float:
        """One SGD step on ``(user, item, rating)``; returns the error before it."""
        u = self._row(self._users, user, True)
        i = self._row(self._items, item, False)
        if np.isfinite(rating):
            self._n_seen += 1
            self.global_mean += (float(rating) - self.global_mean) / (self._n_seen + 10)
        clip = self.max_step * self.rating_range
        old_p = self._P[u].copy()
        p, bu, err = user_step(old_p, self._bu[u], self._Q[i], self._bi[i], self.global_mean,
                               rating, lr=self.learning_rate, reg=self.regularization,
                               weight=weight, clip=clip)
        q, bi = item_step(self._Q[i], self._bi[i], old_p, err, lr=self.learning_rate,
                          reg=self.regularization, weight=weight, clip=clip)
        self._P[u], self._bu[u], self._Q[i], self._bi[i] = p, bu, q, bi
        self._item_count[i] += 1
        return err

    def learn_many(self, users: Iterable, items: Iterable, ratings: Iterable,
                   weights: Iterable | None = None) -> None:
        weights = [1.0] * len(list(ratings)) if weights is None else weights
        for u, i, r, w in zip(users, items, ratings, weights):
            self.learn_one(u, i, float(r), float(w))

    def fit(self, users, items, values, *, timestamps=None, epochs: int = 1) -> "OnlineMF":
        """Time-ordered passes over the data (river's learn_many, for evaluation)."""
        order = np.argsort(timestamps, kind="stable") if timestamps is not None else None
        users, items, values = (np.asarray(a) for a in (users, items, values))
        if order is not None:
            users, items, values = users[order], items[order], values[order]
        for _ in range(epochs):
            for u, i, r in zip(users.tolist(), items.tolist(), values.tolist()):
                self.learn_one(u, i, r)
        return self

    # -- reads ----------------------------------------------------------------------
    def predict_one(self, user: Hashable, item: Hashable) -> float:
        u, i = self._users.get(user), self._items.get(item)
        pred = self.global_mean
        if u is not None:
            pred += self._bu[u]
        if i is not None:
            pred += self._bi[i]
        if u is not None and i is not None:
            pred += float(np.dot(self._P[u], self._Q[i]))
        return pred

    def predict_many(self, users: Sequence, items: Sequence) -> np.ndarray:
        return np.array([self.predict_one(u, i) for u, i in zip(users, items)], np.float64)

    def recommend(self, user: Hashable, k: int = 20, exclude: Iterable = ()) -> list:
        """Top-``k`` items, best first; an unknown user gets the most-rated items."""
        if not self._item_ids:
            return []
        u = self._users.get(user)
        n = len(self._item_ids)
        if u is None:
            scores = self._item_count[:n].astype(np.float64)
        else:
            scores = self._Q[:n] @ self._P[u] + self._bi[:n]
        excluded = [self._items[i] for i in exclude if i in self._items]
        if excluded:
            scores = scores.copy()
            scores[excluded] = -np.inf
        return [self._item_ids[r] for r in top_k(scores, k)]


def grow(array: np.ndarray, row: int) -> np.ndarray:
    """``array`` with room for index ``row`` (capacity doubles: amortised O(1))."""
    if row < array.shape[0]:
        return array
    bigger = np.zeros((max(row + 1, 2 * array.shape[0]),) + array.shape[1:], array.dtype)
    bigger[: array.shape[0]] = array
    return bigger
