"""Exact per-user fold-in against fixed item factors: the live path's user update.

With item factors ``Y`` from the latest batch fit of implicit ALS (Hu, Koren and
Volinsky 2008), the user vector that minimises the iALS loss over *all* of a user's
interactions is one ridge solve::

    (Y^T Y + Y_I^T diag(c_I - 1) Y_I + reg I) x = Y_I^T c_I

where ``I`` are the user's items and ``c = 1 + alpha * w`` their confidences.  ``Y^T Y``
(the gram) is shared by every user and computed once per item-factor version, so a
user's update is a ``k x k`` solve over their own items -- exact, order-free and
memoryless: replaying the same interactions gives the same vector, redeliveries included,
and the result equals the user half-step of a batch fit.  Online SGD has none of those
properties, which is why the live path recomputes instead of nudging.

``interaction_confidence`` puts watch minutes and an explicit rating on one scale, so
every event a user produces (a watched minute, a rating) feeds the same solve.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.normal_equations import solve_rows


def item_gram(item_factors: np.ndarray) -> np.ndarray:
    """``Y^T Y`` in float64: computed once per item-factor version, shared by all users."""
    y = np.asarray(item_factors, np.float64)
    return y.T @ y


def fold_in_implicit(item_factors: np.ndarray, gram: np.ndarray, items: np.ndarray,
                     confidences: np.ndarray, reg: float) -> np.ndarray:
    """One user's exact iALS vector from their item rows and ``c - 1`` per item.

    ``items``: row indices into ``item_factors`` (unique); ``confidences``: ``alpha * w``
    for each (the part above the baseline confidence 1).  No items: the zero vector.
    """
    k = item_factors.shape[1]
    items = np.asarray(items, np.int64)
    if items.size == 0:
        return np.zeros(k, np.float32)
    extra = np.asarray(confidences, np.float64)
    y = np.asarray(item_factors[items], np.float64)
    a = gram + (y.T * extra) @ y
    a[np.diag_indices(k)] += reg
    b = y.T @ (1.0 + extra)
    return np.linalg.solve(a, b).astype(np.float32)


def recency_by_rank(n: int, half_life: float | None) -> np.ndarray:
    """Weights of a user's ``n`` interactions, oldest first: ``2^(-newer / half_life)``.

    ``newer`` counts the user's interactions after each one (the newest weighs 1): tastes
    drift, and the newest watches say most about the next one.  Counted in the user's own
    interactions, not in time, so a user back after a year is not discounted as a whole.
    None or 0: all ones (binary).
    """
    if not half_life:
        return np.ones(n)
    return np.exp2(-(n - 1 - np.arange(n, dtype=np.float64)) / float(half_life))


def fold_in_users(item_factors: np.ndarray, confidences: sp.csr_matrix, reg: float
                  ) -> np.ndarray:
    """:func:`fold_in_implicit` for every row of a ``[users, items]`` matrix of ``c - 1``.

    Batched (the same solves, grouped by row length): used to rebuild all user vectors
    when a new item-factor version arrives, and by the offline simulation.
    """
    csr = sp.csr_matrix(confidences)
    csr.sort_indices()
    y = np.asarray(item_factors, np.float64)
    return solve_rows(csr.indptr.astype(np.int64), csr.indices.astype(np.int64),
                      1.0 + csr.data, y, np.full(y.shape[1], reg),
                      gram_weights=csr.data, base=y.T @ y).astype(np.float32)


def interaction_confidence(minutes: np.ndarray, rating: np.ndarray, *, alpha: float,
                           runtime_minutes: float = 90.0, watch_weight: float = 0.0,
                           rating_mid: float = 3.0, rating_weight: float = 0.0) -> np.ndarray:
    """``alpha * w`` for (user, movie) pairs from watched minutes and a rating (NaN: none).

    ``w = 1`` for any interaction (the binary confidence that wins offline on MovieLens)
    ``+ watch_weight * min(minutes / runtime, 1)`` (watching most of a film)
    ``+ rating_weight * max(rating - rating_mid, 0)`` (a liked film counts more; a
    disliked one no more than a plain watch).  Both weights 0: binary.
    """
    minutes = np.asarray(minutes, np.float64)
    rating = np.asarray(rating, np.float64)
    watched = np.clip(minutes / runtime_minutes, 0.0, 1.0)
    liked = np.where(np.isnan(rating), 0.0, np.maximum(rating - rating_mid, 0.0))
    return alpha * (1.0 + watch_weight * watched + rating_weight * liked)
