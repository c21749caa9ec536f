"""Id <-> row-index maps shared by the batch models.

Users are int64 and items are strings (movie slugs or MovieLens ids as
text), both kept *sorted* so lookups are one vectorised ``searchsorted``
instead of a Python dict walk; unknown ids map to -1 and never grow state.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from models import ranking


def as_items(items: Iterable) -> np.ndarray:
    """Items as a unicode array: ints become their decimal text (``1`` -> ``"1"``)."""
    arr = np.asarray(items)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    return arr.astype(str)


def as_users(users: Iterable) -> np.ndarray:
    return np.asarray(users, dtype=np.int64)


def lookup(sorted_ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row index of each query id in ``sorted_ids``, or -1 where it is unknown."""
    query = np.asarray(query)
    if sorted_ids.size == 0 or query.size == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, query)
    pos = np.minimum(pos, sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == query, pos, -1).astype(np.int64)


def csr_by(rows: np.ndarray, n_rows: int, cols: np.ndarray, vals: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group (row, col, val) triples by row: ``(indptr, cols, vals)`` in CSR layout."""
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, cols[order], vals[order]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest finite scores, best first (see :func:`models.ranking.top_k`)."""
    return np.asarray(ranking.top_k(scores, k), dtype=np.int64)
