"""Quality by group with bootstrap intervals, and a parity bound that alarms on evidence.

A fairness requirement reads "no group's quality (conversion, watch-through,
rating of what we recommended) falls more than ``bound`` below the best
group's".  A point estimate over a small group is noisy, so the decision uses
a bootstrap interval of the gap: the bound is **broken** only when the whole
interval lies beyond it, and a difference is **visible** when the interval
excludes zero.  Everything is a pure function of per-event values and group
labels, so the same code serves the live monitor and the offline audit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AGE_BANDS = ((0, 18, "<18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"),
             (45, 55, "45-54"), (55, 121, "55+"))
MAX_CELLS = 4_000_000  # bootstrap draws per chunk (bounds memory)


def age_band(ages) -> np.ndarray:
    """Band labels for int ages; anything outside 0–120 (e.g. −1) is ``unknown``."""
    ages = np.asarray(ages)
    out = np.full(ages.shape, "unknown", dtype=object)
    for lo, hi, name in AGE_BANDS:
        out[(ages >= lo) & (ages < hi)] = name
    return out


def group_means(values, groups) -> dict:
    """``{group: (mean, n)}`` over finite values."""
    values, groups = _clean(values, groups)
    return {g: (float(values[groups == g].mean()), int((groups == g).sum()))
            for g in np.unique(groups)}


def _clean(values, groups) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(values, np.float64)
    groups = np.asarray(groups)
    if values.shape != groups.shape:
        raise ValueError("values and groups differ in length")
    keep = np.isfinite(values)
    return values[keep], groups[keep]


def _clean_with(values, groups, clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    clusters = np.asarray(clusters)
    if clusters.shape != np.shape(values):
        raise ValueError("values and clusters differ in length")
    keep = np.isfinite(np.asarray(values, np.float64))
    values, groups = _clean(values, groups)
    return values, groups, clusters[keep]


def bootstrap_means(values: np.ndarray, *, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` means of resamples of ``values`` (chunked so memory stays bounded)."""
    n = len(values)
    if n == 0:
        return np.full(n_boot, np.nan)
    out = np.empty(n_boot)
    step = max(1, MAX_CELLS // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        out[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def bootstrap_cluster_means(values: np.ndarray, clusters: np.ndarray, *, n_boot: int,
                            rng: np.random.Generator) -> np.ndarray:
    """Like :func:`bootstrap_means`, resampling whole clusters (e.g. all of a user's answers):
    answers of one user are not independent, so resampling answers understates the spread."""
    _, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse).astype(np.float64)
    c = len(sums)
    if c == 0:
        return np.full(n_boot, np.nan)
    out = np.empty(n_boot)
    step = max(1, MAX_CELLS // c)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        pick = rng.integers(0, c, size=(stop - start, c))
        out[start:stop] = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    return out


def difference_ci(values, groups, a, b, *, n_boot: int = 2000, alpha: float = 0.05,
                  seed: int = 0, clusters=None) -> tuple[float, float, float]:
    """``(mean_a − mean_b, lo, hi)``: percentile bootstrap, each group resampled on its own
    (by whole ``clusters`` when given: one entry per value, e.g. the user of each answer)."""
    if clusters is not None:
        values, groups, clusters = _clean_with(values, groups, clusters)
    else:
        values, groups = _clean(values, groups)
    va, vb = values[groups == a], values[groups == b]
    if len(va) == 0 or len(vb) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if clusters is None:
        diffs = bootstrap_means(va, n_boot=n_boot, rng=rng) - bootstrap_means(vb, n_boot=n_boot, rng=rng)
    else:
        diffs = (bootstrap_cluster_means(va, clusters[groups == a], n_boot=n_boot, rng=rng)
                 - bootstrap_cluster_means(vb, clusters[groups == b], n_boot=n_boot, rng=rng))
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return float(va.mean() - vb.mean()), float(lo), float(hi)


@dataclass(frozen=True, slots=True)
class ParityReport:
    means: dict            # group -> (mean, n)
    best: object
    worst: object
    gap: float             # best − worst (relative to best when ``relative``)
    lo: float
    hi: float
    bound: float
    visible: bool          # the interval of the gap excludes zero
    broken: bool           # the whole interval is beyond the bound


def parity(values, groups, *, bound: float = 0.05, relative: bool = True, min_n: int = 30,
           n_boot: int = 2000, alpha: float = 0.05, seed: int = 0, clusters=None) -> ParityReport:
    """The gap between the best and the worst group (groups under ``min_n`` are left out)."""
    means = {g: m for g, m in group_means(values, groups).items() if m[1] >= min_n}
    if len(means) < 2:
        return ParityReport(means, None, None, 0.0, 0.0, 0.0, bound, False, False)
    best = max(means, key=lambda g: means[g][0])
    worst = min(means, key=lambda g: means[g][0])
    gap, lo, hi = difference_ci(values, groups, best, worst, n_boot=n_boot, alpha=alpha, seed=seed,
                                clusters=clusters)
    if relative:
        scale = abs(means[best][0]) or 1.0
        gap, lo, hi = gap / scale, lo / scale, hi / scale
    return ParityReport(means, best, worst, gap, lo, hi, bound, visible=lo > 0, broken=lo > bound)
