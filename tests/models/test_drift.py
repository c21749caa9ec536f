"""Drift statistics: hand-computed cases, scipy as an oracle, and properties."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from models.drift import chi2_pvalue, histogram, ks_binned, proportions, psi

counts = st.lists(st.integers(0, 10_000), min_size=2, max_size=12)


def test_psi_known_answer():
    # shares 0.5/0.5 → 0.9/0.1: 0.4 ln(0.9/0.5) + (−0.4) ln(0.1/0.5) = 0.4 ln 9
    assert psi([50, 50], [90, 10], epsilon=0.0) == pytest.approx(0.4 * math.log(9), rel=1e-12)


def test_psi_of_identical_shares_is_zero_whatever_the_totals():
    assert psi([1, 2, 3], [10, 20, 30]) == 0.0
    assert psi([0, 5, 0], [0, 7, 0]) == 0.0


def test_psi_smoothing_keeps_an_emptied_bin_finite_and_large():
    value = psi([50, 50], [100, 0], epsilon=1e-4)
    eps = 1e-4
    p = np.array([0.5 + eps, 0.5 + eps]) / (1 + 2 * eps)
    q = np.array([1 + eps, eps]) / (1 + 2 * eps)
    assert value == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)
    assert 3.0 < value < 10.0


def test_proportions_are_uniform_for_an_empty_window():
    np.testing.assert_allclose(proportions([0, 0, 0, 0]), [0.25] * 4)


def test_a_shifted_distribution_has_a_large_psi_and_tiny_p_values():
    rng = np.random.default_rng(0)
    edges = np.arange(-4.0, 5.0, 0.5)
    before = histogram(rng.normal(0.0, 1.0, 5000), edges)
    after = histogram(rng.normal(1.0, 1.0, 5000), edges)
    same = histogram(rng.normal(0.0, 1.0, 5000), edges)
    assert psi(before, after) > 0.25
    assert psi(before, same) < 0.02
    assert ks_binned(before, after)[1] < 1e-12
    assert chi2_pvalue(before, after)[1] < 1e-12
    assert ks_binned(before, same)[1] > 1e-3


def test_chi2_known_answer_two_by_two():
    # expected 15 in every cell: 4 × 5² / 15 = 20/3; df 1: p = erfc(sqrt(x / 2))
    stat, p = chi2_pvalue([10, 20], [20, 10])
    assert stat == pytest.approx(20 / 3)
    assert p == pytest.approx(math.erfc(math.sqrt(10 / 3)), rel=1e-9)


def test_chi2_of_identical_counts_is_p_one_and_of_nothing_is_no_evidence():
    assert chi2_pvalue([4, 9, 1, 0], [4, 9, 1, 0]) == (0.0, pytest.approx(1.0))
    assert chi2_pvalue([0, 0], [3, 4]) == (0.0, 1.0)
    assert chi2_pvalue([5, 0], [7, 0]) == (0.0, 1.0)  # one bin left: nothing to test


def test_ks_known_answer():
    # CDFs .25 .5 .75 1 vs 0 0 .5 1: the widest gap is 0.5 (after the second bin)
    d, p = ks_binned([1, 1, 1, 1], [0, 0, 2, 2])
    assert d == 0.5
    assert 0.0 < p < 1.0


def test_ks_matches_scipy_on_the_samples_the_histograms_stand_for():
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 40, 8).astype(np.int64)
    cur = rng.integers(0, 40, 8).astype(np.int64)
    a = np.repeat(np.arange(8), ref)
    b = np.repeat(np.arange(8), cur)
    expected = stats.ks_2samp(a, b, method="asymp")
    d, p = ks_binned(ref, cur)
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        chi2_pvalue([1, -1], [1, 1])
    with pytest.raises(ValueError):
        ks_binned([[1, 2]], [[1, 2]])


def test_histogram_edges_are_left_closed_and_open_ended():
    np.testing.assert_array_equal(histogram([-1, 0, 9.9, 10, 1e9, 100], [0, 10, 100]),
                                  [3, 1, 2])


@settings(max_examples=200, deadline=None)
@given(counts, counts)
def test_properties(a, b):
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    value = psi(a, b)
    assert value >= 0.0 and math.isfinite(value)
    assert value == pytest.approx(psi(b, a), rel=1e-9, abs=1e-12)  # symmetric
    assert psi(a, a) == 0.0
    for test in (chi2_pvalue, ks_binned):
        stat, p = test(a, b)
        assert stat >= 0.0 and 0.0 <= p <= 1.0
        assert test(a, a)[1] == pytest.approx(1.0)
    d, _ = ks_binned(a, b)
    assert d <= 1.0
