"""Fixed-horizon statistics against scipy and hand-computed reference values."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from models.experiments.stats import (Moments, bootstrap_diff, cuped, minimum_detectable_effect,
                                      rates_chi_square, sample_size_per_arm, srm_check, two_proportions,
                                      welch)


def test_welch_matches_scipy_on_samples_and_on_moments():
    rng = np.random.default_rng(3)
    control, treatment = rng.normal(0, 1, 400), rng.normal(0.3, 2.5, 150)
    ours = welch(control, treatment)
    ref = stats.ttest_ind(treatment, control, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours.df == pytest.approx(ref.df, rel=1e-12)
    assert ours.ci == pytest.approx((ci.low, ci.high), rel=1e-10)
    sums = [Moments.from_sums(len(x), float(x.sum()), float((x * x).sum())) for x in (control, treatment)]
    assert welch(*sums).p_value == pytest.approx(ref.pvalue, rel=1e-8)


def test_welch_hand_computed():
    # control n=10 mean 5 var 4; treatment n=20 mean 6 var 9:
    # se = sqrt(0.4 + 0.45) = 0.921954; t = 1.084652; df = 0.7225 / (0.16/9 + 0.2025/19) = 25.4082
    r = welch(Moments(10, 5.0, 4.0), Moments(20, 6.0, 9.0))
    assert r.se == pytest.approx(0.9219544, rel=1e-6)
    assert r.statistic == pytest.approx(1.0846523, rel=1e-6)
    assert r.df == pytest.approx(25.4082, rel=1e-4)
    assert r.relative == pytest.approx(0.2)
    with pytest.raises(ValueError):
        welch(Moments(1, 5.0, 0.0), Moments(20, 6.0, 9.0))


def test_two_proportions_hand_computed_and_equal_to_chi_square():
    # 120/1000 vs 150/1000: pooled p = 0.135, se0 = sqrt(.135*.865*.002) = 0.0152824, z = 1.963050
    r = two_proportions(120, 1000, 150, 1000)
    assert r.effect == pytest.approx(0.03)
    assert r.statistic == pytest.approx(1.963050, rel=1e-6)
    chi2, p = rates_chi_square([120, 150], [1000, 1000])
    assert chi2 == pytest.approx(r.statistic ** 2, rel=1e-10)
    assert p == pytest.approx(r.p_value, rel=1e-10)
    half = 1.959964 * np.sqrt(0.12 * 0.88 / 1000 + 0.15 * 0.85 / 1000)
    assert r.ci == pytest.approx((0.03 - half, 0.03 + half), rel=1e-5)


def test_bootstrap_ci_is_seeded_and_agrees_with_welch_on_normal_data():
    rng = np.random.default_rng(5)
    control, treatment = rng.normal(0, 1, 3000), rng.normal(0.1, 1, 3000)
    effect, ci = bootstrap_diff(control, treatment, seed=1, n_resamples=1000)
    assert (effect, ci) == bootstrap_diff(control, treatment, seed=1, n_resamples=1000)
    ref = welch(control, treatment).ci
    assert ci == pytest.approx(ref, abs=0.01)
    _, pct = bootstrap_diff(control, treatment, seed=1, n_resamples=1000, method="percentile")
    assert pct == pytest.approx(ref, abs=0.01)


def test_bca_is_asymmetric_on_skewed_data():
    rng = np.random.default_rng(6)
    control, treatment = rng.lognormal(0, 1.2, 200), rng.lognormal(0, 1.2, 200)
    effect, (lo, hi) = bootstrap_diff(control, treatment, seed=2, n_resamples=3000)
    assert lo < effect < hi
    paired_effect, _ = bootstrap_diff(control, treatment, seed=2, n_resamples=500, paired=True)
    assert paired_effect == pytest.approx(effect)


def test_srm_flags_a_one_percent_skew_and_passes_a_fair_split():
    fair = srm_check([50_100, 49_900], [0.5, 0.5])
    assert not fair.flagged and fair.p_value == pytest.approx(stats.chisquare([50_100, 49_900]).pvalue)
    # 50.5/49.5 on 100k: chi2 = 2 * 500² / 50000 = 10 → p = 0.00157 (not flagged); on 200k: chi2 = 20.
    assert srm_check([50_500, 49_500], [1, 1]).statistic == pytest.approx(10.0)
    assert srm_check([101_000, 99_000], [1, 1]).flagged
    three = srm_check([2000, 1000, 1000], [0.5, 0.25, 0.25])
    assert three.statistic == 0.0 and not three.flagged


def test_cuped_recovers_the_effect_with_the_expected_variance_reduction():
    rng = np.random.default_rng(8)
    n = 20_000
    pre = rng.normal(0, 1, 2 * n)
    y = 0.8 * pre + rng.normal(0, 0.6, 2 * n)          # corr² = 0.64 → ~64% less variance
    y[n:] += 0.05
    res = cuped(y[:n], pre[:n], y[n:], pre[n:])
    plain = welch(y[:n], y[n:])
    assert res.theta[0] == pytest.approx(0.8, abs=0.02)
    assert res.variance_reduction == pytest.approx(0.64, abs=0.02)
    assert res.comparison.se < 0.65 * plain.se
    assert res.comparison.ci[0] < 0.05 < res.comparison.ci[1]
    two = cuped(y[:n], np.c_[pre[:n], rng.normal(size=n)], y[n:], np.c_[pre[n:], rng.normal(size=n)])
    assert two.theta.shape == (2,) and abs(two.theta[1]) < 0.02


def test_power_and_mde_hand_computed():
    # n = 2 (1.959964 + 0.841621)² / 0.1² = 1569.78 → 1570 per arm
    assert sample_size_per_arm(sd=1.0, mde=0.1) == 1570
    assert minimum_detectable_effect(sd=1.0, n_per_arm=1570) == pytest.approx(0.1, rel=1e-3)
    assert sample_size_per_arm(sd=2.0, mde=0.1, power=0.9) > 4 * 1570


def test_planned_power_is_what_simulation_delivers():
    rng = np.random.default_rng(9)
    n = sample_size_per_arm(sd=1.0, mde=0.2)
    hits = sum(welch(rng.normal(0, 1, n), rng.normal(0.2, 1, n)).p_value < 0.05 for _ in range(400))
    assert 0.74 < hits / 400 < 0.86
