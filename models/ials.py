"""Implicit ALS (Hu, Koren and Volinsky 2008): the batch fit of the live path's item factors.

Each half step solves every row's ``(Y^T Y + Y_I^T diag(c_I - 1) Y_I + reg I) x = Y_I^T c_I``
either exactly (:func:`models.normal_equations.solve_rows`) or, by default, with a few
conjugate-gradient steps warm-started from the previous iteration
(:func:`models.conjugate_gradient.implicit_cg`, Takacs et al. 2011; what the ``implicit``
package does): O(nnz * k + rows * k^2) per step instead of O(rows * k^3), which is what
makes a 1M-interaction fit take seconds.  Serving folds users in exactly against the
item factors either way (:mod:`models.foldin`).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import scipy.sparse as sp

from models.conjugate_gradient import implicit_cg
from models.factor_model import FactorModel, recency_weights
from models.normal_equations import solve_rows

CONFIDENCES = ("linear", "log", "binary")


class ImplicitALS(FactorModel):
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
    biases are zero.  ``cg_steps`` conjugate-gradient steps per half step (0: exact solves).
    ``recent_half_life`` is how users are folded in against these factors
    (:func:`models.foldin.recency_by_rank`; None: binary); the fit itself does not use it.
    """

    predicts_ratings = False
    _param_names = ("n_factors", "regularization", "alpha", "iterations", "init_scale", "seed",
                    "confidence", "epsilon", "half_life_days", "popularity_weight",
                    "popularity_half_life_days", "cg_steps", "recent_half_life")

    def __init__(self, *, n_factors: int = 64, regularization: float = 10.0,
                 alpha: float = 1.0, iterations: int = 10, init_scale: float = 0.01,
                 seed: int | None = 0, confidence: str = "binary", epsilon: float = 1.0,
                 half_life_days: float | None = 500.0, popularity_weight: float = 0.1,
                 popularity_half_life_days: float | None = 500.0, cg_steps: int = 0,
                 recent_half_life: float | None = None) -> None:
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
        self.cg_steps = int(cg_steps)
        self.recent_half_life = recent_half_life

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
            P = self._half_step(by_user, Q, reg, P)
            Q = self._half_step(by_item, P, reg, Q)
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

    def _half_step(self, csr, Y, reg, start=None):
        """New factors of one side: CG steps from ``start``, or exact solves (no start)."""
        indptr, cols, weights = csr
        confidence_minus_one = self.alpha * weights
        if self.cg_steps > 0 and start is not None:
            return implicit_cg(indptr, cols, confidence_minus_one, Y, float(reg[0]), start,
                               steps=self.cg_steps)
        return solve_rows(indptr, cols, 1.0 + confidence_minus_one, Y, reg,
                          gram_weights=confidence_minus_one, base=Y.T @ Y)
