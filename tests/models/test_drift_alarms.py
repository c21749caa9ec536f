"""Drift alarms: calibrated false-alarm rate, no alarm on big identical or trivially shifted
windows, alarms on the simulator's drifts (rating scale 1→10, duplicates spike, field loss)."""
from __future__ import annotations

import numpy as np
import pytest

from models.drift import Thresholds, alarm, calibrate, calibrate_rate, psi, rate_alarm

# The real sample's rating histogram (1..5), SOURCES.md: 37 / 803 / 6,643 / 10,262 / 2,740.
RATINGS = np.array([37, 803, 6643, 10262, 2740], float)
P = RATINGS / RATINGS.sum()


def test_the_false_alarm_rate_is_what_was_asked_for():
    rng = np.random.default_rng(11)
    reference = rng.multinomial(20_000, P)
    th = calibrate(reference, 300, alarms_per_day=2.0, windows_per_day=100)  # 2% of windows
    for ordinal in (True, False):
        fired = sum(alarm(reference, rng.multinomial(300, P), th, ordinal=ordinal).fired
                    for _ in range(1500))
        assert fired <= 1500 * th.rate * 1.5 + 5  # 30 allowed by the rate, plus noise
    loose = Thresholds(alpha=0.5, min_psi=0.0, rate=0.5)  # the same windows without calibration
    assert sum(alarm(reference, rng.multinomial(300, P), loose).fired for _ in range(300)) > 100


def test_noise_floor_grows_for_small_windows_and_the_effect_floor_holds_for_big_ones():
    small = calibrate(RATINGS, 50, tests=5)
    big = calibrate(RATINGS, 1_000_000, tests=5)
    assert small.min_psi > 0.1 and big.min_psi == 0.1
    assert small.alpha == big.alpha == pytest.approx(1 / (288 * 5))
    with pytest.raises(ValueError):
        calibrate([0, 0], 10)
    with pytest.raises(ValueError):
        calibrate(RATINGS, 10, alarms_per_day=1000, windows_per_day=1)


def test_no_alarm_on_large_identical_windows():
    rng = np.random.default_rng(5)
    reference = rng.multinomial(2_000_000, P)
    th = calibrate(reference, 1_000_000)
    for _ in range(5):
        result = alarm(reference, rng.multinomial(1_000_000, P), th, ordinal=True)
        assert not result.fired


def test_a_trivial_shift_in_a_huge_window_is_evidence_without_effect():
    rng = np.random.default_rng(6)
    shifted = P.copy()
    shifted[[2, 3]] += [0.01, -0.01]                    # 3 stars +1 point
    reference = rng.multinomial(5_000_000, P)
    th = calibrate(reference, 5_000_000)
    result = alarm(reference, rng.multinomial(5_000_000, shifted), th, ordinal=True)
    assert result.p_value < th.alpha and not result.fired and result.reason == "trivial_effect"


def test_rating_scale_switch_to_ten_points_alarms():
    rng = np.random.default_rng(7)
    reference = np.concatenate([rng.multinomial(20_000, P), np.zeros(5)])  # bins 1..10
    ten = np.clip(np.round(rng.normal(7.0, 2.0, 500)), 1, 10).astype(int)
    recent = np.bincount(ten - 1, minlength=10)
    th = calibrate(reference, 500, tests=10)
    result = alarm(reference, recent, th, ordinal=True)
    assert result.fired and result.reason == "drift" and result.psi > 1.0


def test_duplicates_spike_alarms_and_ordinary_redelivery_does_not():
    rng = np.random.default_rng(8)
    reference = rng.multinomial(100_000, [0.995, 0.005])       # [first delivery, redelivery]
    th = calibrate(reference, 2000, tests=10)
    assert not alarm(reference, rng.multinomial(2000, [0.995, 0.005]), th).fired
    spike = alarm(reference, rng.multinomial(2000, [0.88, 0.12]), th)  # the sim's duplicates scenario
    assert spike.fired


def test_field_loss_alarms():
    rng = np.random.default_rng(9)
    reference = rng.multinomial(18_000, [0.965, 0.035])       # genres present / missing (real: 3.5%)
    th = calibrate(reference, 400, tests=20)
    assert not alarm(reference, rng.multinomial(400, [0.965, 0.035]), th).fired
    lost = alarm(reference, rng.multinomial(400, [0.6, 0.4]), th)
    assert lost.fired and psi(reference, [240, 160]) > th.min_psi


def test_too_few_events_never_alarm():
    th = calibrate(RATINGS, 10)
    result = alarm(RATINGS, [0, 0, 0, 0, 10], th, ordinal=True)
    assert not result.fired and result.reason == "too_few"


# -- rate alarms: a kind of event a clean stream (almost) never has ----------------------
def test_a_rate_alarm_keeps_its_false_alarm_rate():
    rng = np.random.default_rng(21)
    base = 0.002  # the reference's share of the kind (e.g. late lines)
    th = calibrate_rate(rng.binomial(300_000, base), 300_000, alarms_per_day=2.0,
                        windows_per_day=100, floor_share=0.0, floor_ratio=0.0)  # 2% of windows
    fired = sum(rate_alarm(rng.binomial(5_000, base), 5_000, th).fired for _ in range(2000))
    assert fired <= 2000 * th.rate * 1.5 + 5
    loose = calibrate_rate(600, 300_000, alarms_per_day=50, windows_per_day=100,
                           floor_share=0.0, floor_ratio=0.0)  # the same windows, alpha 0.5
    assert sum(rate_alarm(rng.binomial(5_000, base), 5_000, loose).fired
               for _ in range(300)) > 60


def test_a_new_kind_of_event_alarms_at_two_percent_and_a_trivial_one_does_not():
    th = calibrate_rate(0, 400_000, tests=5)  # the clean reference never had one
    assert th.base_share == pytest.approx(0.5 / 400_001)
    hit = rate_alarm(140, 7_000, th)  # 2% of a window
    assert hit.fired and hit.reason == "drift" and hit.statistic == pytest.approx(0.02)
    few = rate_alarm(3, 7_000, th)  # strong evidence (0 expected), but 0.04% of the window
    assert few.p_value < th.alpha and not few.fired and few.reason == "trivial_effect"
    assert rate_alarm(1, 20, th).reason == "too_few"
    noisy = calibrate_rate(2_000, 400_000, tests=5)  # 0.5% in the reference already
    assert noisy.min_share == pytest.approx(3 * 2_000.5 / 400_001)
    assert not rate_alarm(45, 7_000, noisy).fired  # 0.64%: above the base, not 3x it
    with pytest.raises(ValueError):
        calibrate_rate(5, 0)
    with pytest.raises(ValueError):
        rate_alarm(8, 5, th)
