"""Batch alternating least squares for explicit ratings (biased ALS, ALS-WR).

Exact ridge solves for all users, then all items, batched by
:func:`models.normal_equations.solve_rows` (no Python loop over users).
Biases ride along as one extra factor column pinned to 1 on the other side,
so a user's solve yields ``[p_u, b_u]`` from ``[q_i, 1]`` and vice versa.
Shared reads and the artifact: :mod:`models.factor_model`; implicit ALS (what serves):
:mod:`models.ials`, re-exported here for the callers that import both from one place.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from models._ids import csr_by
from models.factor_model import ARRAY_NAMES, FactorModel, recency_weights
from models.ials import CONFIDENCES, ImplicitALS
from models.normal_equations import solve_rows

__all__ = ["ARRAY_NAMES", "BiasedALS", "CONFIDENCES", "ImplicitALS", "recency_weights"]


class BiasedALS(FactorModel):
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
