"""Drift statistics over binned counts: PSI, chi-square and two-sample KS.

Pure functions of two count vectors over the same fixed bins — a reference
window and a recent one — so a stream can keep only histograms (bounded,
mergeable across partitions, storable in a table) and still test them:

* :func:`psi` — population stability index, with epsilon smoothing so an
  empty bin on one side gives a large but finite value.  Identical
  proportions give exactly 0; the usual reading is < 0.1 stable,
  0.1–0.25 moderate shift, > 0.25 major shift.
* :func:`chi2_pvalue` — chi-square test of homogeneity of a 2×k table of
  counts, for categorical features (event kind, rating value).
* :func:`ks_binned` — two-sample Kolmogorov–Smirnov on ordered bins, for
  numeric features kept as histograms (latency, watch depth, activity).  The
  statistic is the largest CDF gap at the bin edges, which is what
  ``scipy.stats.ks_2samp`` returns for the samples the histograms stand for
  (every value replaced by its bin); its p-value is the same asymptotic one.
  Binning can only hide gaps, so it errs towards "no drift".
"""
from __future__ import annotations

import numpy as np
from scipy import stats

DEFAULT_EPSILON = 1e-4


def _counts(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError("counts must be one-dimensional")
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise ValueError("counts must be finite and non-negative")
    return arr


def _pair(reference, recent) -> tuple[np.ndarray, np.ndarray]:
    ref, cur = _counts(reference), _counts(recent)
    if ref.shape != cur.shape:
        raise ValueError(f"bins differ: {ref.shape[0]} vs {cur.shape[0]}")
    return ref, cur


def proportions(counts, epsilon: float = DEFAULT_EPSILON) -> np.ndarray:
    """Smoothed shares: ``(c_i / n + ε) / (1 + k ε)``; uniform when ``n`` is 0."""
    arr = _counts(counts)
    k = arr.shape[0]
    total = arr.sum()
    shares = arr / total if total > 0 else np.full(k, 1.0 / k)
    return (shares + epsilon) / (1.0 + k * epsilon)


def psi(reference, recent, *, epsilon: float = DEFAULT_EPSILON) -> float:
    """``Σ (q_i − p_i) ln(q_i / p_i)``, p = reference shares, q = recent shares."""
    ref, cur = _pair(reference, recent)
    p, q = proportions(ref, epsilon), proportions(cur, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def chi2_pvalue(reference, recent) -> tuple[float, float]:
    """(statistic, p-value) of the chi-square test that both come from one distribution.

    Bins empty on both sides are dropped; with fewer than two bins left, or an
    empty side, there is nothing to test: ``(0.0, 1.0)``.
    """
    ref, cur = _pair(reference, recent)
    keep = (ref + cur) > 0
    if keep.sum() < 2 or ref.sum() == 0 or cur.sum() == 0:
        return 0.0, 1.0
    table = np.vstack([ref[keep], cur[keep]])
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def ks_binned(reference, recent) -> tuple[float, float]:
    """(D, p-value) of the two-sample KS test on ordered histograms (asymptotic p)."""
    ref, cur = _pair(reference, recent)
    n, m = ref.sum(), cur.sum()
    if n == 0 or m == 0:
        return 0.0, 1.0
    gap = np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m)
    d = float(min(gap.max(), 1.0))
    effective = round(n * m / (n + m))
    if effective < 1:
        return d, 1.0
    return d, float(np.clip(stats.kstwo.sf(d, effective), 0.0, 1.0))


def histogram(values, edges) -> np.ndarray:
    """Counts of ``values`` over bins ``[e_0, e_1), …, [e_{k-1}, ∞)`` (below e_0 → bin 0)."""
    idx = np.searchsorted(np.asarray(edges, np.float64), np.asarray(values, np.float64),
                          side="right") - 1
    return np.bincount(np.clip(idx, 0, len(edges) - 1), minlength=len(edges)).astype(np.int64)
