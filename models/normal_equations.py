"""Batched ridge solves: one small linear system per user (or item) in one go.

Every ALS half-step solves, for each row ``u`` with observed columns ``J_u``::

    (base + X_J^T diag(w) X_J + diag(reg_u)) theta_u = sum_j t_uj x_j

Looping over 1M users in Python is too slow, and one dense ``nnz x d x d``
tensor is too big, so rows are bucketed by how many observations they have
(powers of two, so padding at most doubles the work), gathered into padded
``[rows, L, d]`` blocks of bounded size and reduced with a batched float32
matmul (BLAS; float64 stacked matmul is ~7x slower here); the ``d x d``
systems are then accumulated and solved in float64 with batched LAPACK.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

BLOCK_ELEMENTS = 1 << 22  # rows * padded length * d per block: ~16 MB float32


def solve_rows(indptr: np.ndarray, indices: np.ndarray, rhs_weights: np.ndarray,
               X: np.ndarray, reg: np.ndarray, *, gram_weights: np.ndarray | None = None,
               base: np.ndarray | None = None, scale_reg_by_count: bool = False,
               reg_fixed: np.ndarray | None = None,
               block_elements: int = BLOCK_ELEMENTS) -> np.ndarray:
    """Solve every row's normal equations; rows without observations get zeros.

    indptr/indices: CSR layout of the observed (row, column) pairs.
    rhs_weights: ``t_uj`` per observation; the right-hand side is ``sum_j t_uj x_j``.
    X: ``[n_columns, d]`` fixed factors of the other side.
    reg: ``[d]`` ridge penalty per coordinate (times the row's count if
    ``scale_reg_by_count``, the ALS-WR weighting).
    gram_weights: ``w_uj >= 0`` per observation (None: all ones).
    base: ``[d, d]`` added to every row's matrix (implicit ALS's ``Y^T Y``).
    reg_fixed: ``[d]`` penalty added whatever the row's count (None: none), e.g. a bias
    shrinkage that must not fade for rows with few observations.
    """
    n_rows = indptr.size - 1
    d = X.shape[1]
    counts = np.diff(indptr)
    rhs = sp.csr_matrix((rhs_weights, indices, indptr), shape=(n_rows, X.shape[0])) @ X
    out = np.zeros((n_rows, d), dtype=np.float64)
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    sqrt_w = None if gram_weights is None else np.sqrt(gram_weights).astype(np.float32)
    reg = np.asarray(reg, dtype=np.float64)
    base = np.zeros((d, d)) if base is None else np.asarray(base, dtype=np.float64)
    diag = np.arange(d)
    for rows in _blocks(counts, d, block_elements):
        n_obs = counts[rows]
        width = int(n_obs.max())
        offsets = np.arange(width)
        valid = offsets < n_obs[:, None]
        pos = np.where(valid, indptr[rows][:, None] + offsets, 0)
        gathered = X32[indices[pos]]
        mask = valid.astype(np.float32) if sqrt_w is None else np.where(valid, sqrt_w[pos], 0)
        gathered *= mask[..., None]
        A = np.matmul(gathered.transpose(0, 2, 1), gathered).astype(np.float64)
        A += base
        penalty = reg * (n_obs[:, None] if scale_reg_by_count else 1.0)
        if reg_fixed is not None:
            penalty = penalty + reg_fixed
        A[:, diag, diag] += penalty
        out[rows] = np.linalg.solve(A, rhs[rows][..., None])[..., 0]
    return out


def _blocks(counts: np.ndarray, d: int, block_elements: int):
    """Yield arrays of row ids with similar counts, each block of bounded padded size."""
    nonempty = np.flatnonzero(counts > 0)
    if nonempty.size == 0:
        return
    order = nonempty[np.argsort(counts[nonempty], kind="stable")]
    bucket = np.floor(np.log2(counts[order])).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], order.size]
    for start, end in zip(starts, ends):
        width = int(counts[order[end - 1]])
        per_block = max(1, block_elements // max(1, width * d))
        for s in range(start, end, per_block):
            yield order[s:min(end, s + per_block)]
