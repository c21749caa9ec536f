"""Anytime-valid inference: reference values, consistency, and validity under continuous peeking."""
from __future__ import annotations

import numpy as np
import pytest

from models.experiments.sequential import (mixture_log_martingale, mixture_margin, optimal_rho2,
                                           peeking_paths, sequential_diff)
from models.experiments.stats import Moments, welch


def test_margin_hand_computed():
    # t = 100, rho² = 0.01, alpha = 0.05 (unit variance):
    # 2(tρ²+1)/(t²ρ²) = 4 / 100 = 0.04; log(sqrt 2 / 0.05) = 3.342367; sqrt(0.04 · 3.342367) = 0.365642
    assert float(mixture_margin(100, rho2=0.01, alpha=0.05)) == pytest.approx(0.365642, rel=1e-5)
    # rho²_opt(n*=1000, α=.05) = (5.991465 + log 6.991465) / 1000 = 0.0079361
    assert optimal_rho2(1000, 0.05) == pytest.approx(0.0079361, rel=1e-4)


def test_rho_opt_minimises_the_width_at_n_star():
    rho2 = optimal_rho2(5000)
    widths = [float(mixture_margin(5000, rho2=r)) for r in (rho2 * 0.5, rho2, rho2 * 2)]
    assert widths[1] < widths[0] and widths[1] < widths[2]


def test_sequence_is_wider_than_the_fixed_horizon_ci_and_consistent_with_its_p_value():
    rng = np.random.default_rng(2)
    control, treatment = rng.normal(0, 1, 4000), rng.normal(0.08, 1, 4000)
    seq, fixed = sequential_diff(control, treatment), welch(control, treatment)
    assert seq.effect == pytest.approx(fixed.effect)
    assert seq.ci[0] < fixed.ci[0] and seq.ci[1] > fixed.ci[1]
    assert seq.reject == (seq.p_value < 0.05)
    # the boundary: 1/M_t = alpha exactly where the CI touches 0
    z = float(mixture_margin(8000, rho2=optimal_rho2(10_000)) * np.sqrt(8000))
    assert float(np.exp(-mixture_log_martingale(z, 8000, rho2=optimal_rho2(10_000)))) == pytest.approx(0.05)


def test_sequential_detects_a_real_effect():
    rng = np.random.default_rng(4)
    r = sequential_diff(Moments.of(rng.normal(0, 1, 20_000)), Moments.of(rng.normal(0.1, 1, 20_000)))
    assert r.reject and r.ci[0] < 0.1 < r.ci[1]


def test_continuous_peeking_keeps_the_false_positive_rate_and_naive_peeking_does_not():
    rng = np.random.default_rng(11)
    looks = np.arange(100, 10_001, 100)      # a look after every 100 users: 100 looks
    runs = 400
    seq = naive = 0
    for _ in range(runs):
        arms = rng.integers(0, 2, 10_000)
        s, n = peeking_paths(rng.exponential(1.0, 10_000), arms, looks, n_star=4000)
        seq += bool(s.any())
        naive += bool(n.any())
    assert seq / runs <= 0.05 + 0.02           # ≤ alpha up to simulation noise (sd ≈ 0.011)
    assert naive / runs > 0.15                 # peeking at a fixed-horizon test inflates it ≥ 3×


def test_peeking_paths_agree_with_sequential_diff_at_a_look():
    rng = np.random.default_rng(12)
    arms = rng.integers(0, 2, 6000)
    values = rng.normal(0, 1, 6000) + 0.1 * arms
    looks = np.array([1000, 6000])
    seq, naive = peeking_paths(values, arms, looks, n_star=4000)
    for j, n in enumerate(looks):
        c, t = values[:n][arms[:n] == 0], values[:n][arms[:n] == 1]
        r = sequential_diff(c, t, n_star=4000)
        assert seq[j] == r.reject
        assert naive[j] == (abs(welch(c, t).statistic) > 1.959964)
    assert seq[-1] and not seq[0]       # the effect is found, but not yet at 1,000 units
