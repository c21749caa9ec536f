"""Models ranked the way the service ranks them, for the promotion gate and training.

:class:`Fitted` wraps a version fitted elsewhere (the serving one) so evaluation does not
refit it; :class:`AsServed` ranks with the service's item universe, popularity prior,
fallback and (for implicit versions) exact fold-in (issue #10).  The gate's measurements
over them are in ``recstream/ops/promotion.py``.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import scipy.sparse as sp

from models._ids import lookup, top_k
from models.als import ImplicitALS
from models.foldin import fold_in_users
from models.popularity import popularity_prior
from models.ranking import score_users

K = 20


class Fitted:
    """A model fitted elsewhere (the serving version): ``evaluate`` must not refit it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.predicts_ratings = getattr(model, "predicts_ratings", True)

    def fit(self, *args: Any, **kwargs: Any) -> "Fitted":
        return self

    def predict_many(self, users: Iterable, items: Iterable) -> np.ndarray:
        return self.model.predict_many(users, items)

    def recommend(self, user: int, k: int = K, exclude: Iterable = ()) -> list[str]:
        return self.model.recommend(user, k=k, exclude=exclude)


class AsServed:
    """Ranks the way the service ranks, so the gate compares what users would be shown.

    The service scores ``p_u . q_i + b_i + blend * log1p(popularity_i)`` over every movie
    it knows (``tables.serving``, ``models.ranking.score_users``), and answers a user
    without a vector with the popularity order.  Ranking a model's raw ``p . q + b`` instead
    penalises the model that knows more users (the one trained on more data ranks them by
    MF alone, the older one falls back to popularity for them), which made the gate prefer
    the older version.  Here both get the same item universe (the split's training items),
    the same popularity (training counts) and the same fallback; rating predictions are the
    model's own.
    """

    def __init__(self, model: Any, blend: float) -> None:
        self.model = model
        self.blend = blend
        self.predicts_ratings = getattr(model, "predicts_ratings", True)

    def fit(self, users: Iterable, items: Iterable, values: Iterable, *,
            timestamps: Iterable | None = None) -> "AsServed":
        self.model.fit(users, items, values, timestamps=timestamps)
        inner = self.model.model if isinstance(self.model, Fitted) else self.model
        self.item_ids, counts = np.unique(np.asarray(items).astype(str), return_counts=True)
        rows = lookup(np.asarray(inner.item_ids).astype(str), self.item_ids)
        known = rows >= 0
        self.factors = np.zeros((self.item_ids.size, inner.item_factors.shape[1]), np.float32)
        self.factors[known] = inner.item_factors[rows[known]]
        self.bias = np.zeros(self.item_ids.size, np.float32)
        self.bias[known] = inner.item_bias[rows[known]]
        self.popularity = counts.astype(np.float64)
        self.inner = inner
        self.folded = None
        if isinstance(inner, ImplicitALS):  # served as the live path serves it (issue #10)
            self.prior = np.zeros(self.item_ids.size)  # no popularity blend for ials
            self.folded = self._fold_in(np.asarray(users, np.int64),
                                        np.asarray(items).astype(str),
                                        None if timestamps is None else np.asarray(timestamps))
        else:
            self.prior = popularity_prior(self.popularity, self.blend)
        return self

    def _fold_in(self, users: np.ndarray, items: np.ndarray,
                 timestamps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every user's vector by exact fold-in of their training items against the
        model's item factors: what the worker holds after the user's last event (with the
        version's ``recent_half_life``, each movie weighs ``2^(-n/h)``, ``n`` = the user's
        movies first seen after it, as ``ServingModel.fold_in`` weighs them)."""
        inner = self.inner
        half_life = getattr(inner, "recent_half_life", None)
        weight = np.ones(users.size)
        if half_life and users.size:
            first = np.lexsort((np.arange(users.size),
                                np.zeros(users.size) if timestamps is None else timestamps,
                                items, users))
            u, i = users[first], items[first]
            head = np.r_[True, (u[1:] != u[:-1]) | (i[1:] != i[:-1])]  # first sight of a pair
            keep_first = first[head]
            order = keep_first[np.lexsort((keep_first, timestamps[keep_first] if timestamps
                                           is not None else keep_first, users[keep_first]))]
            ou = users[order]
            start = np.r_[0, np.flatnonzero(ou[1:] != ou[:-1]) + 1]
            size = np.diff(np.r_[start, ou.size])
            newer = np.repeat(start + size, size) - 1 - np.arange(ou.size)
            weight = np.zeros(users.size)
            weight[order] = np.exp2(-newer / float(half_life))
        rows = lookup(np.asarray(inner.item_ids).astype(str), items)
        keep = (rows >= 0) & (weight > 0)
        ids, user_rows = np.unique(users[keep], return_inverse=True)
        pairs = sp.csr_matrix((float(inner.alpha) * weight[keep], (user_rows, rows[keep])),
                              shape=(ids.size, inner.item_factors.shape[0]))
        pairs.sum_duplicates()  # one entry per pair (later sightings weigh 0)
        if not half_life:
            pairs.data[:] = float(inner.alpha)  # binary: a repeated pair is one interaction
        return ids, fold_in_users(inner.item_factors, pairs, float(inner.regularization))

    def predict_many(self, users: Iterable, items: Iterable) -> np.ndarray:
        return self.model.predict_many(users, items)

    def recommend(self, user: int, k: int = K, exclude: Iterable = ()) -> list[str]:
        if self.folded is not None:
            ids, vectors = self.folded
            at = int(np.searchsorted(ids, user))
            row = at if at < ids.size and ids[at] == user else -1
            scores = (self.factors @ vectors[row] if row >= 0 else self.popularity.copy()
                      ).astype(np.float64)
            excluded = lookup(self.item_ids, np.asarray(list(exclude), dtype=str))
            scores[excluded[excluded >= 0]] = -np.inf
            return self.item_ids[top_k(scores, k)].tolist()
        row = int(lookup(np.asarray(self.inner.user_ids), np.asarray([user], np.int64))[0])
        if row >= 0:
            scores = score_users(self.inner.user_factors[row][None, :], self.factors,
                                 self.bias, self.prior)[0].astype(np.float64)
        else:
            scores = self.popularity.copy()
        excluded = lookup(self.item_ids, np.asarray(list(exclude), dtype=str))
        scores[excluded[excluded >= 0]] = -np.inf
        return self.item_ids[top_k(scores, k)].tolist()
