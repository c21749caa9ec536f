"""Batch alternating least squares: biased ALS for ratings, implicit ALS for watches.

Both alternate exact ridge solves for all users, then all items, batched by
:func:`models.normal_equations.solve_rows` (no Python loop over users).
Biases ride along as one extra factor column pinned to 1 on the other side,
so a user's solve yields ``[p_u, b_u]`` from ``[q_i, 1]`` and vice versa.

Reads never mutate: unknown users or items get the declared fallback
(global mean + known biases; popularity order for ``recommend``: interaction
counts, or with ``popularity_half_life_days`` counts decayed by age as of the
newest training event -- the same time-decayed popularity serving falls back to).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import scipy.sparse as sp

from models._ids import as_items, as_users, csr_by, lookup, top_k
from models.normal_equations import solve_rows
from models.popularity import popularity_prior

ARRAY_NAMES = ("user_ids", "user_factors", "user_bias", "item_ids", "item_factors",
               "item_bias", "global_mean", "item_counts", "item_popularity")
SECONDS_PER_DAY = 86400.0
CONFIDENCES = ("linear", "log", "binary")


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


class _FactorModel:
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


class BiasedALS(_FactorModel):
    """Explicit-rating MF ``r ~ mu + b_u + b_i + p_u . q_i`` fitted by exact ALS.

    ``scale_regularization`` multiplies each row's penalty by its number of
    ratings (ALS-WR, Zhou et al. 2008), which is what lets ALS beat SGD-fitted
    SVD on MovieLens; ``rating_range`` clips predictions to the scale.
    ``bias_shrinkage`` adds a fixed penalty to the bias coordinate that does not fade
    with the count (Koren's baseline shrinkage ``sum(r - mu) / (lambda + n)``): under
    ALS-WR alone a movie with one 5-star rating gets a bias as large as a classic's and
    tops every ranking.  0 keeps plain ALS-WR.
    """

    _param_names = ("n_factors", "regularization", "bias_regularization", "bias_shrinkage",
                    "iterations", "scale_regularization", "init_scale", "rating_range", "seed")

    def __init__(self, *, n_factors: int = 50, regularization: float = 0.12,
                 bias_regularization: float = 0.02, bias_shrinkage: float = 0.0,
                 iterations: int = 10,
                 scale_regularization: bool = True, init_scale: float = 0.1,
                 rating_range: tuple[float, float] | None = (1.0, 5.0),
                 seed: int | None = 0) -> None:
        super().__init__()
        self.n_factors = n_factors
        self.regularization = regularization
        self.bias_regularization = bias_regularization
        self.bias_shrinkage = bias_shrinkage
        self.iterations = iterations
        self.scale_regularization = scale_regularization
        self.init_scale = init_scale
        self.rating_range = None if rating_range is None else tuple(rating_range)
        self.seed = seed

    def fit(self, users: Iterable, items: Iterable, values: Iterable, *,
            timestamps: Iterable | None = None) -> "BiasedALS":
        """Fit on all given ratings (order and timestamps do not matter to ALS)."""
        u, i, r = self._index(users, items, values)
        n_u, n_i, k = self.user_ids.size, self.item_ids.size, self.n_factors
        self.global_mean = float(r.mean()) if r.size else 0.0
        by_user = csr_by(u, n_u, i, r)
        by_item = csr_by(i, n_i, u, r)
        rng = np.random.default_rng(self.seed)
        Q = rng.normal(0.0, self.init_scale, (n_i, k))
        b_i = np.zeros(n_i)
        P, b_u = np.zeros((n_u, k)), np.zeros(n_u)
        reg = np.r_[np.full(k, self.regularization), self.bias_regularization]
        for _ in range(self.iterations):
            P, b_u = self._half_step(by_user, Q, b_i, reg)
            Q, b_i = self._half_step(by_item, P, b_u, reg)
        self.user_factors, self.user_bias = P.astype(np.float32), b_u.astype(np.float32)
        self.item_factors, self.item_bias = Q.astype(np.float32), b_i.astype(np.float32)
        return self

    def _half_step(self, csr, other_factors, other_bias, reg):
        indptr, cols, ratings = csr
        X = np.hstack([other_factors, np.ones((other_factors.shape[0], 1))])
        residual = ratings - self.global_mean - other_bias[cols]
        fixed = None
        if self.bias_shrinkage:
            fixed = np.zeros(X.shape[1])
            fixed[-1] = self.bias_shrinkage
        theta = solve_rows(indptr, cols, residual, X, reg,
                           scale_reg_by_count=self.scale_regularization, reg_fixed=fixed)
        return theta[:, :-1], theta[:, -1]

    def _clip(self, pred: np.ndarray) -> np.ndarray:
        if self.rating_range is None:
            return pred
        return np.clip(pred, *self.rating_range)


class ImplicitALS(_FactorModel):
    """Hu-Koren-Volinsky implicit ALS: preference 1 with confidence ``1 + alpha * w``.

    Unobserved items count as preference 0 with confidence 1 through the shared
    ``Y^T Y`` term, so each solve only touches a row's observed items.
    Duplicate (user, item) pairs are summed (e.g. minutes watched) into ``v``;
    ``w = f(v) * r`` where ``f`` is ``confidence``: ``"binary"`` (1: every
    interaction, whatever its value, is one positive -- the default, chosen for
    explicit ratings, see docs/models-offline.md), ``"linear"`` (``v``) or
    ``"log"`` (``log1p(v / epsilon)``, HKV's scaling for counts such as minutes),
    and ``r = 2^(-age / half_life_days)`` of the pair's latest event (1 without
    ``half_life_days`` or timestamps).

    Ranking adds ``popularity_weight * log1p(item_popularity)`` to ``p_u . q_i``
    (the same prior serving adds), with ``item_popularity`` the interaction counts
    decayed with ``popularity_half_life_days``; unknown users get that popularity
    order.  Scores are preferences, not ratings (``predicts_ratings = False``);
    biases are zero.
    """

    predicts_ratings = False
    _param_names = ("n_factors", "regularization", "alpha", "iterations", "init_scale", "seed",
                    "confidence", "epsilon", "half_life_days", "popularity_weight",
                    "popularity_half_life_days")

    def __init__(self, *, n_factors: int = 64, regularization: float = 10.0,
                 alpha: float = 1.0, iterations: int = 10, init_scale: float = 0.01,
                 seed: int | None = 0, confidence: str = "binary", epsilon: float = 1.0,
                 half_life_days: float | None = 500.0, popularity_weight: float = 0.1,
                 popularity_half_life_days: float | None = 500.0) -> None:
        super().__init__()
        if confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}")
        self.n_factors = n_factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.init_scale = init_scale
        self.seed = seed
        self.confidence = confidence
        self.epsilon = epsilon
        self.half_life_days = half_life_days
        self.popularity_weight = popularity_weight
        self.popularity_half_life_days = popularity_half_life_days

    def fit(self, users: Iterable, items: Iterable, values: Iterable, *,
            timestamps: Iterable | None = None) -> "ImplicitALS":
        u, i, w = self._index(users, items, values, timestamps)
        n_u, n_i, k = self.user_ids.size, self.item_ids.size, self.n_factors
        if np.any(w < 0):
            raise ValueError("implicit weights must be non-negative")
        summed = self.interaction_weights(u, i, w, timestamps)
        by_user = (summed.indptr.astype(np.int64), summed.indices.astype(np.int64), summed.data)
        by_item_m = summed.tocsc()
        by_item = (by_item_m.indptr.astype(np.int64), by_item_m.indices.astype(np.int64),
                   by_item_m.data)
        rng = np.random.default_rng(self.seed)
        P = rng.normal(0.0, self.init_scale, (n_u, k))
        Q = rng.normal(0.0, self.init_scale, (n_i, k))
        reg = np.full(k, self.regularization)
        for _ in range(self.iterations):
            P = self._half_step(by_user, Q, reg)
            Q = self._half_step(by_item, P, reg)
        self.user_factors, self.item_factors = P.astype(np.float32), Q.astype(np.float32)
        self.user_bias = np.zeros(n_u, np.float32)
        self.item_bias = np.zeros(n_i, np.float32)
        self.global_mean = 0.0
        return self

    def interaction_weights(self, u: np.ndarray, i: np.ndarray, w: np.ndarray,
                            timestamps: Iterable | None = None) -> sp.csr_matrix:
        """The ``[users, items]`` matrix of ``w = f(summed value) * recency`` (see the class)."""
        n_u, n_i = self.user_ids.size, self.item_ids.size
        pair, row = np.unique(u * n_i + i, return_inverse=True)
        value = np.bincount(row, weights=w, minlength=pair.size)
        recency = np.zeros(pair.size)
        np.maximum.at(recency, row, recency_weights(
            None if timestamps is None else np.asarray(timestamps), w.size, self.half_life_days))
        if self.confidence == "binary":
            value = np.ones(pair.size)
        elif self.confidence == "log":
            value = np.log1p(value / self.epsilon)
        return sp.csr_matrix((value * recency, (pair // n_i, pair % n_i)), shape=(n_u, n_i))

    def _half_step(self, csr, Y, reg):
        indptr, cols, weights = csr
        confidence_minus_one = self.alpha * weights
        return solve_rows(indptr, cols, 1.0 + confidence_minus_one, Y, reg,
                          gram_weights=confidence_minus_one, base=Y.T @ Y)
