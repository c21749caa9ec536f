"""The promotion gate refuses truncated, inconclusive and worse candidates."""
import numpy as np
import pytest

from models.gate import METRICS, bootstrap_mean_ci, per_user_metrics, promotion_gate


def scores(values: np.ndarray) -> dict[str, dict[int, float]]:
    return {m: {u: float(v) for u, v in enumerate(values)} for m in METRICS}


def test_refuses_a_candidate_trained_on_two_percent_of_the_data():
    rng = np.random.default_rng(0)
    serving = rng.uniform(0, 0.4, 2000)
    better = np.clip(serving + 0.05, 0, 1)  # even a better-scoring candidate
    decision = promotion_gate(scores(better), scores(serving),
                              candidate_interactions=1_600, serving_interactions=80_000)
    assert not decision.passed
    assert "2.0%" in decision.reasons[0] and "truncated" in decision.reasons[0]


def test_refuses_an_inconclusive_comparison():
    rng = np.random.default_rng(1)
    serving = rng.uniform(0, 0.4, 400)
    noise = rng.normal(0.0, 0.2, serving.size)
    candidate = serving + noise - noise.mean()  # same mean, per-user scatter: can't tell
    decision = promotion_gate(scores(candidate), scores(serving),
                              candidate_interactions=80_000, serving_interactions=80_000)
    assert not decision.passed
    assert all("inconclusive" in r for r in decision.reasons)
    lo, hi = decision.compared[METRICS[0]]["ci95"]
    assert lo < decision.compared[METRICS[0]]["floor"] < hi


def test_refuses_too_few_users_in_common():
    serving = np.linspace(0, 0.5, 40)
    decision = promotion_gate(scores(serving + 0.1), scores(serving),
                              candidate_interactions=10, serving_interactions=10)
    assert not decision.passed and "40 users in common" in decision.reasons[0]


def test_refuses_a_clearly_worse_candidate():
    rng = np.random.default_rng(2)
    serving = rng.uniform(0.1, 0.5, 1000)
    decision = promotion_gate(scores(serving * 0.6), scores(serving),
                              candidate_interactions=90_000, serving_interactions=80_000)
    assert not decision.passed and all("worse" in r for r in decision.reasons)


def test_promotes_a_clearly_better_candidate_and_an_identical_one():
    rng = np.random.default_rng(3)
    serving = rng.uniform(0.0, 0.4, 1000)
    better = serving + rng.uniform(0.0, 0.1, serving.size)
    assert promotion_gate(scores(better), scores(serving), candidate_interactions=81_000,
                          serving_interactions=80_000).passed
    assert promotion_gate(scores(serving), scores(serving), candidate_interactions=80_000,
                          serving_interactions=80_000).passed


def test_pairs_only_users_both_sides_scored():
    serving = {m: {u: 0.2 for u in range(200)} for m in METRICS}
    candidate = {m: {u: 0.3 for u in range(100, 400)} for m in METRICS}
    decision = promotion_gate(candidate, serving, candidate_interactions=1,
                              serving_interactions=1)
    assert decision.passed and decision.compared[METRICS[0]]["users"] == 100


def test_bootstrap_interval_covers_the_mean_and_narrows_with_users():
    rng = np.random.default_rng(4)
    small, large = rng.normal(1.0, 1.0, 50), rng.normal(1.0, 1.0, 5000)
    lo_s, hi_s = bootstrap_mean_ci(small)
    lo_l, hi_l = bootstrap_mean_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 5


def test_per_user_metrics_by_hand():
    got = per_user_metrics({1: ["a", "b", "c"], 2: ["x"]}, {1: {"b", "z"}, 2: set(), 3: {"a"}},
                           k=2)
    assert got["recall_at_2"] == {1: 0.5}
    assert got["ndcg_at_2"][1] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
