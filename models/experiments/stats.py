"""Fixed-horizon tests for two-arm experiments, from raw samples or sufficient statistics.

Telemetry arrives as running sums per arm, so every mean test also accepts
:class:`Moments` (n, mean, variance) and never needs the raw rows.  Effects are
always ``treatment - control``.  scipy.stats does the distributions, the
bootstrap and the contingency tables; what is here is the experiment-shaped
glue (Welch on moments, CUPED, SRM, power) that scipy has no single call for.
These p-values are valid only when looked at once, at a planned sample size:
for a dashboard that is watched continuously use :mod:`models.experiments.sequential`.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np
from scipy import stats

SRM_THRESHOLD = 1e-3   # the industry convention: flag a sample-ratio mismatch at p < 0.001


@dataclasses.dataclass(frozen=True, slots=True)
class Moments:
    """What a test of means needs from one arm (``var`` with ddof=1)."""

    n: int
    mean: float
    var: float

    @classmethod
    def of(cls, x: np.ndarray) -> "Moments":
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return cls(0, 0.0, 0.0)
        return cls(int(x.size), float(x.mean()), float(x.var(ddof=1)) if x.size > 1 else 0.0)

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float) -> "Moments":
        """From running ``sum x`` and ``sum x**2`` (what a streaming counter keeps)."""
        mean = total / n
        var = max(total_sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
        return cls(int(n), float(mean), float(var))


@dataclasses.dataclass(frozen=True, slots=True)
class Comparison:
    """treatment − control with a two-sided p-value and a (1 − alpha) CI."""

    effect: float
    ci: tuple[float, float]
    p_value: float
    statistic: float
    se: float
    control_mean: float
    df: float = float("inf")

    @property
    def relative(self) -> float:
        """Effect as a fraction of the control mean (nan when the control mean is 0)."""
        return self.effect / self.control_mean if self.control_mean else float("nan")

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def as_moments(x: "Moments | np.ndarray") -> Moments:
    return x if isinstance(x, Moments) else Moments.of(np.asarray(x))


def welch(control: "Moments | np.ndarray", treatment: "Moments | np.ndarray", *,
          alpha: float = 0.05) -> Comparison:
    """Welch's t-test and CI for a difference of means (unequal variances, Satterthwaite df)."""
    c, t = as_moments(control), as_moments(treatment)
    if c.n < 2 or t.n < 2:
        raise ValueError("Welch's test needs at least 2 units per arm")
    vc, vt = c.var / c.n, t.var / t.n
    se = float(np.sqrt(vc + vt))
    effect = t.mean - c.mean
    df = (vc + vt) ** 2 / (vc ** 2 / (c.n - 1) + vt ** 2 / (t.n - 1)) if se > 0 else float("inf")
    stat = effect / se if se > 0 else (0.0 if effect == 0 else np.copysign(np.inf, effect))
    p = float(2 * stats.t.sf(abs(stat), df))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return Comparison(effect, (effect - half, effect + half), p, float(stat), se, c.mean, float(df))


def bootstrap_diff(control: np.ndarray, treatment: np.ndarray, *, alpha: float = 0.05,
                   method: Literal["percentile", "BCa"] = "BCa", n_resamples: int = 2000,
                   seed: int = 0, paired: bool = False) -> tuple[float, tuple[float, float]]:
    """Bootstrap CI of ``mean(treatment) - mean(control)``: no normality assumed.

    Unpaired resamples each arm on its own (users are independent units);
    ``paired`` resamples rows jointly (the same users measured twice).
    """
    c = np.asarray(control, dtype=np.float64)
    t = np.asarray(treatment, dtype=np.float64)

    def diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)

    res = stats.bootstrap((t, c), diff, paired=paired, vectorized=True, n_resamples=n_resamples,
                          confidence_level=1 - alpha, method=method, rng=np.random.default_rng(seed))
    return float(t.mean() - c.mean()), (float(res.confidence_interval.low), float(res.confidence_interval.high))


def two_proportions(control_successes: int, control_n: int, treatment_successes: int,
                    treatment_n: int, *, alpha: float = 0.05) -> Comparison:
    """Two-proportion z-test (pooled SE for the p-value, unpooled Wald CI for the effect).

    Its z² equals the uncorrected χ² of the 2×2 table, so this is also the χ² test.
    """
    pc, pt = control_successes / control_n, treatment_successes / treatment_n
    pooled = (control_successes + treatment_successes) / (control_n + treatment_n)
    se0 = np.sqrt(pooled * (1 - pooled) * (1 / control_n + 1 / treatment_n))
    effect = pt - pc
    z = effect / se0 if se0 > 0 else 0.0
    p = float(2 * stats.norm.sf(abs(z)))
    se = float(np.sqrt(pc * (1 - pc) / control_n + pt * (1 - pt) / treatment_n))
    half = float(stats.norm.ppf(1 - alpha / 2)) * se
    return Comparison(effect, (effect - half, effect + half), p, float(z), se, pc)


def rates_chi_square(successes: Sequence[int], totals: Sequence[int]) -> tuple[float, float]:
    """χ² test of equal rates across k arms (no continuity correction): (statistic, p)."""
    s = np.asarray(successes, dtype=np.float64)
    table = np.stack([s, np.asarray(totals, dtype=np.float64) - s])
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


@dataclasses.dataclass(frozen=True, slots=True)
class SRMResult:
    statistic: float
    p_value: float
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    flagged: bool


def srm_check(observed: Sequence[int], expected_shares: Sequence[float], *,
              threshold: float = SRM_THRESHOLD) -> SRMResult:
    """Sample-ratio mismatch: χ² goodness of fit of arm counts to the planned shares.

    A mismatch means assignment or logging is broken, so every other number of
    the experiment is suspect; the strict threshold keeps false alarms rare
    when it is checked on every experiment, every day.
    """
    obs = np.asarray(observed, dtype=np.float64)
    shares = np.asarray(expected_shares, dtype=np.float64)
    exp = obs.sum() * shares / shares.sum()
    res = stats.chisquare(obs, exp)
    p = float(res.pvalue)
    return SRMResult(float(res.statistic), p, tuple(int(o) for o in observed),
                     tuple(float(e) for e in exp), p < threshold)


@dataclasses.dataclass(frozen=True, slots=True)
class CupedResult:
    comparison: Comparison
    theta: np.ndarray
    variance_reduction: float   # 1 − var(adjusted) / var(raw), pooled over arms


def cuped(control_y: np.ndarray, control_x: np.ndarray, treatment_y: np.ndarray,
          treatment_x: np.ndarray, *, alpha: float = 0.05) -> CupedResult:
    """CUPED (Deng et al. 2013): Welch on ``y − (x − mean x)·θ`` with pre-period covariates ``x``.

    θ is the pooled least-squares slope of y on x (``cov(x, y) / var(x)`` for
    one covariate) estimated on both arms together; pre-period covariates are
    independent of the assignment, so the estimate stays unbiased while the
    variance shrinks by about the R² of the regression.
    """
    yc, yt = np.asarray(control_y, np.float64), np.asarray(treatment_y, np.float64)
    xc = np.asarray(control_x, np.float64).reshape(len(yc), -1)
    xt = np.asarray(treatment_x, np.float64).reshape(len(yt), -1)
    x_mean = np.vstack([xc, xt]).mean(axis=0)
    # Demean within arms so a real treatment effect does not leak into θ.
    xw = np.vstack([xc - xc.mean(0), xt - xt.mean(0)])
    yw = np.concatenate([yc - yc.mean(), yt - yt.mean()])
    theta = np.linalg.lstsq(xw, yw, rcond=None)[0]
    adj_c = yc - (xc - x_mean) @ theta
    adj_t = yt - (xt - x_mean) @ theta
    raw_var = np.var(yw, ddof=2)
    adj_var = np.var(np.concatenate([adj_c - adj_c.mean(), adj_t - adj_t.mean()]), ddof=2)
    reduction = float(1 - adj_var / raw_var) if raw_var > 0 else 0.0
    return CupedResult(welch(adj_c, adj_t, alpha=alpha), theta, reduction)


def sample_size_per_arm(*, sd: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users per arm for a two-sided test to detect an absolute effect ``mde`` (normal approximation)."""
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return int(np.ceil(2 * (z * sd / mde) ** 2))


def minimum_detectable_effect(*, sd: float, n_per_arm: int, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """The smallest absolute effect a planned ``n_per_arm`` detects with the given power."""
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * sd * np.sqrt(2.0 / n_per_arm))
