"""Refit one user against fixed item vectors: one weighted ridge solve.

Used when a promoted model never saw a user whose vector was learnt online
under the model it replaced (that vector lives in the old factor space): the
user's own ratings and completed watches, regressed on the new item vectors,
give a vector in the new space — the same normal equations as a biased-ALS
user half-step, for one user.
"""
from __future__ import annotations

import numpy as np


def refit_user(item_factors: np.ndarray, item_bias: np.ndarray, targets: np.ndarray,
               weights: np.ndarray, global_mean: float, *, regularization: float,
               bias_regularization: float) -> tuple[float, np.ndarray]:
    """``(bias, factors)`` minimising the weighted squared error plus ridge penalties.

    Minimises ``sum_i w_i (t_i - mu - b_i - b_u - p.q_i)^2 + reg |p|^2 + bias_reg b_u^2``.
    No observations → ``(0, zeros)`` (the model's answer for an unknown user).
    """
    Q = np.asarray(item_factors, np.float64)
    n, k = Q.shape if Q.ndim == 2 else (0, 0)
    if n == 0:
        return 0.0, np.zeros(k, np.float32)
    w = np.asarray(weights, np.float64)
    y = np.asarray(targets, np.float64) - global_mean - np.asarray(item_bias, np.float64)
    X = np.hstack([Q, np.ones((n, 1))])
    A = X.T @ (X * w[:, None])
    A[np.arange(k), np.arange(k)] += regularization
    A[k, k] += bias_regularization
    theta = np.linalg.solve(A, X.T @ (w * y))
    if not np.all(np.isfinite(theta)):
        return 0.0, np.zeros(k, np.float32)
    return float(theta[k]), theta[:k].astype(np.float32)
