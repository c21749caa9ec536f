"""EASE (Steck 2019): a closed-form item-item ranking model, the benchmark's strongest
reference on MovieLens-sized catalogues.

``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + reg I)^-1`` over the binary
user x item matrix ``X``; a user's scores are ``x_u B``.  Exact fold-in is free (a new
interaction adds one row of ``B`` to the user's scores), but ``B`` is dense
``items x items`` (27k movies: 2.9 GB float32), so it serves here as a yardstick and as
the validation of the iALS live path, not as that path.  ``max_items`` keeps the most
interacted items (the rest are never recommended) so the inverse fits in memory.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import scipy.sparse as sp

from models._ids import as_items, as_users, lookup, top_k


class EASE:
    """Keyword-only ``reg`` (L2 on ``B``) and ``max_items``; deterministic (no seed needed)."""

    predicts_ratings = False

    def __init__(self, *, reg: float = 300.0, max_items: int = 6000) -> None:
        self.reg = reg
        self.max_items = max_items
        self.user_ids = np.zeros(0, np.int64)
        self.item_ids = np.zeros(0, "<U1")
        self.weights = np.zeros((0, 0), np.float32)
        self.popularity = np.zeros(0, np.float64)
        self._rows: sp.csr_matrix | None = None

    def fit(self, users: Iterable, items: Iterable, values: Iterable | None = None, *,
            timestamps: Iterable | None = None) -> "EASE":
        users, items = as_users(users), as_items(items)
        all_items, counts = np.unique(items, return_counts=True)
        keep = np.sort(np.argsort(-counts, kind="stable")[: self.max_items])
        self.item_ids = all_items[keep]
        self.popularity = counts[keep].astype(np.float64)
        self.user_ids, u = np.unique(users, return_inverse=True)
        i = lookup(self.item_ids, items)
        known = i >= 0
        x = sp.csr_matrix((np.ones(int(known.sum()), np.float32), (u[known], i[known])),
                          shape=(self.user_ids.size, self.item_ids.size))
        x.data[:] = 1.0  # duplicates count once
        self._rows = x
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.reg
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        self.weights = b.astype(np.float32)
        return self

    def scores_for_items(self, item_rows: np.ndarray) -> np.ndarray:
        """``x_u B`` for a user given as the rows of their items (the live fold-in)."""
        rows = np.asarray(item_rows, np.int64)
        return self.weights[rows].sum(axis=0, dtype=np.float64)

    def recommend(self, user: int, k: int = 20, exclude: Iterable = ()) -> list[str]:
        """Top-``k`` for a training user; an unknown user gets popularity order."""
        row = int(lookup(self.user_ids, np.asarray([user], np.int64))[0])
        if row >= 0 and self._rows is not None:
            items = self._rows.indices[self._rows.indptr[row]:self._rows.indptr[row + 1]]
            scores = self.scores_for_items(items)
        else:
            scores = self.popularity.copy()
        excluded = lookup(self.item_ids, as_items(list(exclude)))
        scores[excluded[excluded >= 0]] = -np.inf
        return self.item_ids[top_k(scores, k)].tolist()
