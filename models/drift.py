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

:func:`calibrate` and :func:`alarm` turn these into a decision with a stated
false-alarm rate: evidence (a p-value at a Bonferroni level over the day's
windows and features) *and* a practical effect (a PSI floor) are both needed.
"""
from __future__ import annotations

import dataclasses

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


# -- calibrated alarms -------------------------------------------------------------------
# An alarm needs statistical evidence (chi-square for categories, KS for ordered bins, at a
# Bonferroni level over every window and feature tested in a day) *and* a practical effect
# (PSI at least a floor), so a big window does not alarm on a trivial shift and a small one
# does not alarm on noise.  Under no drift, PSI between two multinomial samples of sizes n and
# m is asymptotically (1/n + 1/m) χ²_{k−1} (PSI is the symmetrised KL divergence), which gives
# the noise quantile without simulation; the test suite checks the rate by simulation.

@dataclasses.dataclass(frozen=True, slots=True)
class Thresholds:
    alpha: float          # p-value below which the evidence counts
    min_psi: float        # PSI at or above which the effect counts
    rate: float           # false alarms per tested window this was calibrated to


@dataclasses.dataclass(frozen=True, slots=True)
class Alarm:
    fired: bool
    p_value: float
    psi: float
    statistic: float      # chi-square or KS D
    reason: str           # "drift", "no_evidence", "trivial_effect", "too_few"


def calibrate(reference, window: int, *, alarms_per_day: float = 1.0, windows_per_day: int = 288,
              tests: int = 1, floor_psi: float = 0.1) -> Thresholds:
    """Thresholds for windows of ``window`` events against ``reference`` counts that give at
    most ``alarms_per_day`` false alarms over ``windows_per_day`` × ``tests`` tests a day."""
    ref = _counts(reference)
    if window < 1 or ref.sum() < 1:
        raise ValueError("need a non-empty reference and a window of at least one event")
    rate = alarms_per_day / (windows_per_day * max(tests, 1))
    if not 0 < rate < 1:
        raise ValueError("alarms_per_day must be below the number of tests a day")
    df = max(int((ref > 0).sum()) - 1, 1)
    noise = float(stats.chi2.isf(rate, df)) * (1.0 / ref.sum() + 1.0 / window)
    return Thresholds(alpha=rate, min_psi=max(floor_psi, noise), rate=rate)


def alarm(reference, recent, thresholds: Thresholds, *, ordinal: bool = False,
          min_events: int = 30) -> Alarm:
    """Decide one window: fired only with both evidence and a practical effect."""
    ref, cur = _pair(reference, recent)
    if cur.sum() < min_events or ref.sum() < min_events:
        return Alarm(False, 1.0, 0.0, 0.0, "too_few")
    statistic, p = ks_binned(ref, cur) if ordinal else chi2_pvalue(ref, cur)
    value = psi(ref, cur)
    if p >= thresholds.alpha:
        return Alarm(False, p, value, statistic, "no_evidence")
    if value < thresholds.min_psi:
        return Alarm(False, p, value, statistic, "trivial_effect")
    return Alarm(True, p, value, statistic, "drift")


# -- calibrated rate alarms ----------------------------------------------------------------
# A qualitative change — events of a kind that a clean stream (almost) never has, such as
# lines from minutes in the past or from days in the future — is a tiny shift of a whole
# distribution (PSI far below any floor) but a large change of one rate.  Evidence: the
# one-sided binomial tail of the window's count at the reference share (a half-event
# pseudo-count keeps a reference with none above zero), at the same Bonferroni level;
# practical effect: a share of the window at least ``floor_share`` and ``floor_ratio`` × the
# reference share.

@dataclasses.dataclass(frozen=True, slots=True)
class RateThresholds:
    alpha: float          # p-value below which the evidence counts
    min_share: float      # share of a window's events at or above which the effect counts
    base_share: float     # the reference share the window is tested against
    rate: float           # false alarms per tested window this was calibrated to


def calibrate_rate(ref_count: float, ref_total: float, *, alarms_per_day: float = 1.0,
                   windows_per_day: int = 288, tests: int = 1, floor_share: float = 0.001,
                   floor_ratio: float = 3.0) -> RateThresholds:
    """Thresholds for the share of events of one kind (``ref_count`` of ``ref_total`` in the
    reference) giving at most ``alarms_per_day`` false alarms over the day's tests."""
    if ref_total < 1 or not 0 <= ref_count <= ref_total:
        raise ValueError("need a non-empty reference with 0 <= count <= total")
    rate = alarms_per_day / (windows_per_day * max(tests, 1))
    if not 0 < rate < 1:
        raise ValueError("alarms_per_day must be below the number of tests a day")
    base = (ref_count + 0.5) / (ref_total + 1.0)
    return RateThresholds(alpha=rate, min_share=max(floor_share, floor_ratio * base),
                          base_share=base, rate=rate)


def rate_alarm(count: float, total: float, thresholds: RateThresholds, *,
               min_events: int = 30) -> Alarm:
    """Decide one window's rate: ``statistic`` is the window's share, ``psi`` 0 (unused)."""
    if not 0 <= count <= total:
        raise ValueError("need 0 <= count <= total")
    if total < min_events:
        return Alarm(False, 1.0, 0.0, 0.0, "too_few")
    share = count / total
    p = float(stats.binom.sf(int(count) - 1, int(total), thresholds.base_share))
    if p >= thresholds.alpha:
        return Alarm(False, p, 0.0, share, "no_evidence")
    if share < thresholds.min_share:
        return Alarm(False, p, 0.0, share, "trivial_effect")
    return Alarm(True, p, 0.0, share, "drift")
