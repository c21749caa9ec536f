"""Anytime-valid inference: confidence sequences you may look at after every user.

A fixed-horizon t-test promises a 5% false-positive rate only if it is read
once; stopping the first time it says p < 0.05 while watching a dashboard
inflates that several-fold.  A *confidence sequence* covers the true effect at
every sample size simultaneously with probability 1 − alpha, so continuous
peeking is allowed.

We use the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha,
Kennedy & Ramdas (2023, "Time-uniform central limit theory"), the method behind
GrowthBook's sequential mode.  It is the Gaussian-mixture boundary of Robbins:
with a N(0, ρ²) mixture over the drift, the mixture martingale of the
standardised sum ``S_t`` is

    M_t = (tρ² + 1)^(-1/2) · exp(ρ² S_t² / (2(tρ² + 1)))

and Ville's inequality bounds P(sup_t M_t ≥ 1/α) ≤ α.  Inverting ``M_t < 1/α``
gives the half-width ``σ · sqrt(2(tρ² + 1) / (t²ρ²) · log(sqrt(tρ² + 1) / α))``.
``M_t`` is also the mSPRT statistic of Johari, Pekelis & Walsh (2017) with
a normal mixing distribution, so ``1 / M_t`` is an always-valid p-value.

For a two-arm difference of means ``t`` is the total number of units and σ² is
``t · Var(diff)`` (the per-unit variance of the difference estimator), as in
GrowthBook.  ρ is tuned so the sequence is tightest near a planned ``n_star``;
the guarantee holds at every ``t`` whatever ``n_star`` is.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from models.experiments.stats import Moments, as_moments


def optimal_rho2(n_star: float, alpha: float = 0.05) -> float:
    """ρ² minimising the half-width at ``t = n_star`` (Waudby-Smith et al., eq. for ρ_opt)."""
    la = -2.0 * np.log(alpha)
    return float((la + np.log(la + 1.0)) / n_star)


def mixture_margin(t: np.ndarray | float, *, rho2: float, alpha: float = 0.05) -> np.ndarray:
    """Half-width of the two-sided confidence sequence for a unit-variance mean after ``t`` units."""
    t = np.asarray(t, dtype=np.float64)
    return np.sqrt(2.0 * (t * rho2 + 1.0) / (t * t * rho2) * np.log(np.sqrt(t * rho2 + 1.0) / alpha))


def mixture_log_martingale(z: np.ndarray | float, t: np.ndarray | float, *, rho2: float) -> np.ndarray:
    """log M_t from the ordinary z-statistic ``z = effect / se`` after ``t`` units (``S_t² = t z²``)."""
    z, t = np.asarray(z, np.float64), np.asarray(t, np.float64)
    return -0.5 * np.log1p(t * rho2) + rho2 * t * z * z / (2.0 * (t * rho2 + 1.0))


@dataclasses.dataclass(frozen=True, slots=True)
class SequentialResult:
    effect: float
    ci: tuple[float, float]
    p_value: float          # always-valid p at this look (callers keep the running minimum)
    units: int

    @property
    def reject(self) -> bool:
        """The sequence excludes zero (equivalently ``p_value < alpha``)."""
        return self.ci[0] > 0.0 or self.ci[1] < 0.0


def sequential_diff(control: "Moments | np.ndarray", treatment: "Moments | np.ndarray", *,
                    alpha: float = 0.05, n_star: float = 10_000) -> SequentialResult:
    """Anytime-valid CI and p-value for ``mean(treatment) - mean(control)`` at the current look."""
    c, t = as_moments(control), as_moments(treatment)
    units = c.n + t.n
    se = float(np.sqrt(c.var / c.n + t.var / t.n))
    effect = t.mean - c.mean
    rho2 = optimal_rho2(n_star, alpha)
    half = float(se * np.sqrt(units) * mixture_margin(units, rho2=rho2, alpha=alpha))
    if se > 0:
        log_m = float(mixture_log_martingale(effect / se, units, rho2=rho2))
        p = float(min(1.0, np.exp(-log_m)))
    else:
        p = 1.0 if effect == 0 else 0.0
    return SequentialResult(effect, (effect - half, effect + half), p, units)


def peeking_paths(values: np.ndarray, arms: np.ndarray, looks: np.ndarray, *,
                  alpha: float = 0.05, n_star: float = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Reject-at-each-look flags (sequential, naive z) for units arriving in order.

    ``values[i]`` is the metric of the i-th unit to arrive and ``arms[i]`` its
    arm (0 = control, 1 = treatment); ``looks[j]`` is the number of units that
    have arrived at look ``j``.  Vectorised over looks with cumulative sums, so
    hundreds of simulated experiments with a look after every batch stay
    cheap.  The naive test is the normal-theory fixed-horizon test a dashboard
    would show, applied at every look.
    """
    from scipy import stats

    x = np.asarray(values, np.float64)
    treated = np.asarray(arms) == 1
    idx = np.asarray(looks) - 1

    def cum(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = np.cumsum(mask)[idx].astype(np.float64)
        s1, s2 = np.cumsum(np.where(mask, x, 0.0))[idx], np.cumsum(np.where(mask, x * x, 0.0))[idx]
        safe = np.maximum(n, 2.0)
        mean = s1 / np.maximum(n, 1.0)
        return n, mean, np.maximum(s2 - n * mean * mean, 0.0) / (safe - 1)

    (nc, mc, vc), (nt, mt, vt) = cum(~treated), cum(treated)
    ready = (nc >= 2) & (nt >= 2)
    se = np.sqrt(vc / np.maximum(nc, 1) + vt / np.maximum(nt, 1))
    z = np.divide(mt - mc, se, out=np.zeros_like(se), where=ready & (se > 0))
    naive = np.abs(z) > stats.norm.ppf(1 - alpha / 2)
    rho2 = optimal_rho2(n_star, alpha)
    seq = mixture_log_martingale(z, nc + nt, rho2=rho2) >= np.log(1.0 / alpha)
    return seq, naive
