"""Requests each design needs, charged alike (bench/interleaving_power.py)."""
from __future__ import annotations

import math

import pytest

from bench.interleaving_power import Z, Z95, answer_breakdown, compare, units_ab, units_il


def test_units_follow_the_normal_approximation():
    # A/B: per-arm variance 0.25 (SE² = 0.25·(1/100 + 1/100)), effect −0.1.
    se = math.sqrt(0.25 * 2 / 100)
    ab = {"effect": -0.1, "ci": [-0.1 - Z95 * se, -0.1 + Z95 * se], "n_control": 100,
          "n_treatment": 100}
    assert units_ab(ab) == pytest.approx(4 * Z ** 2 * 0.25 / 0.01)
    # Interleaving: per-user credit SD 0.8 over 64 users, mean 0.2.
    il = {"mean_credit": 0.2, "users": 64, "ci": [0.2 - Z95 * 0.1, 0.2 + Z95 * 0.1]}
    assert units_il(il) == pytest.approx(Z ** 2 * 0.64 / 0.04)


def test_both_designs_are_charged_their_arms_requests_per_counted_unit():
    se = math.sqrt(0.25 * 2 / 100)
    ab = {"conversion": {"effect": -0.1, "ci": [-0.1 - Z95 * se, -0.1 + Z95 * se],
                         "n_control": 100, "n_treatment": 100},
          "watch_through_min": {"effect": +0.3, "ci": [-0.2, 0.8], "n_control": 50,
                                "n_treatment": 50}}
    il = {"mean_credit": 0.2, "users": 64, "ci": [0.2 - Z95 * 0.1, 0.2 + Z95 * 0.1]}
    out = compare(ab, il, ab_answers=400, il_answers=192)  # 2 per A/B user, 3 per credited user
    conv = out["ab"]["conversion"]
    assert conv["requests_needed"] == pytest.approx(units_ab(ab["conversion"]) * 2)
    assert out["interleaving"]["requests_needed"] == pytest.approx(units_il(il) * 3)
    assert conv["ratio"] == pytest.approx(conv["requests_needed"] / (units_il(il) * 3))
    lo, hi = conv["ratio_ci"]
    assert lo < conv["ratio"] < hi
    # Watch-through moved the wrong way: not evidence, so not the A/B's best metric.
    assert not out["ab"]["watch_through_min"]["right_direction"]
    assert out["best_observable_ab_metric"] == "conversion"


def test_answer_breakdown_says_why_an_answer_was_not_interleaved():
    rows = [{"time": 1, "user": 5, "arm": "il:il", "source": "fallback", "teams": ""},
            {"time": 2, "user": 5, "arm": "il:il", "source": "fallback", "teams": ""},
            {"time": 3, "user": 6, "arm": "il:il", "source": "fallback", "teams": ""},
            {"time": 4, "user": 7, "arm": "il:il", "source": "personal", "teams": "AB"},
            {"time": 5, "user": 8, "arm": "other:il", "source": "personal", "teams": ""},
            {"time": 6, "user": 9, "arm": "il:control", "source": "popular", "teams": ""}]
    out = answer_breakdown(rows, "il", new_users={6})
    assert out["il"] == {"answers": 4, "interleaved": 1, "interleaved:personal": 1,
                         "plain:fallback, first answer": 1, "plain:fallback, later answer": 1,
                         "plain:fallback, new account": 1, "source:fallback": 3,
                         "source:personal": 1}
    assert out["control"]["plain:popular"] == 1
