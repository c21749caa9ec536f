"""Top-k selection over score vectors and matrices, with exclusions.

``argpartition`` then a sort of the k survivors: O(n + k log k) per row,
which is what keeps a 27k-movie ranking well under a millisecond.
"""
from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` highest finite scores, best first (ties: lower index).

    Deterministic at the boundary too: when several items tie at the k-th
    score, the lowest indices are the ones kept.
    """
    if scores.shape[0] == 0 or k <= 0:
        return []
    candidates = np.flatnonzero(np.isfinite(scores))
    if candidates.size > k:
        values = scores[candidates]
        kth = -np.partition(-values, k - 1)[k - 1]
        above = candidates[values > kth]
        tied = candidates[values == kth][: k - above.size]  # ascending: lower indices first
        candidates = np.concatenate([above, tied])
    order = np.lexsort((candidates, -scores[candidates]))
    return [int(i) for i in candidates[order]]


BLOCK = 128  # columns per block for the block-max threshold in top_k_rows


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-wise top-``k`` of a 2-D score matrix → int32 ``[n_rows, k]``, -1 padded.

    Entries whose score is ``-inf`` (excluded) are reported as -1; ties go to the
    lower column.  Instead of partitioning every full row, each row's k-th largest
    *block maximum* (blocks of :data:`BLOCK` columns) bounds its k-th largest
    score from below, so only the few entries at or above it are sorted (at least
    k blocks reach that bound, so the true top-k are always among them).
    """
    n_rows, n_cols = scores.shape
    out = np.full((n_rows, k), -1, np.int32)
    if n_cols == 0 or k <= 0 or n_rows == 0:
        return out
    kk = min(k, n_cols)
    n_blocks = n_cols // BLOCK
    if n_blocks <= 2 * kk:
        out[:, :kk] = _top_k_rows_by_partition(scores, kk)
        return out
    block_max = scores[:, : n_blocks * BLOCK].reshape(n_rows, n_blocks, BLOCK).max(axis=2)
    bound = -np.partition(-block_max, kk - 1, axis=1)[:, kk - 1]
    usable = np.isfinite(bound)
    if not usable.all():  # rows with almost everything excluded: the plain way
        out[~usable, :kk] = _top_k_rows_by_partition(scores[~usable], kk)
    rows_in = np.flatnonzero(usable)
    sub = scores if rows_in.size == n_rows else scores[rows_in]
    rows, cols = np.nonzero(sub >= bound[rows_in, None])
    vals = sub[rows, cols]
    order = np.lexsort((cols, -vals, rows))
    rows, cols = rows[order], cols[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows)  # position within its row
    keep = rank < kk
    out[rows_in[rows[keep]], rank[keep]] = cols[keep]
    return out


def _top_k_rows_by_partition(scores: np.ndarray, kk: int) -> np.ndarray:
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    best = np.take_along_axis(part, order, axis=1).astype(np.int32)
    best_scores = np.take_along_axis(part_scores, order, axis=1)
    best[~np.isfinite(best_scores)] = -1
    return best


def score_users(user_factors: np.ndarray, item_factors: np.ndarray, item_bias: np.ndarray,
                item_prior: np.ndarray | None = None) -> np.ndarray:
    """``U Vᵀ + b`` (+ a per-item prior such as blended popularity), float32."""
    scores = user_factors @ item_factors.T
    scores += item_bias[None, :]
    if item_prior is not None:
        scores += item_prior[None, :]
    return scores


def mask_rows(scores: np.ndarray, exclusions: list[np.ndarray]) -> None:
    """Set ``scores[r, exclusions[r]] = -inf`` in place (already-watched, unsafe…)."""
    for r, cols in enumerate(exclusions):
        if len(cols):
            scores[r, cols] = -np.inf
