"""Team-draft interleaving and credit assignment."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from models.experiments.interleaving import (A, B, TIE, Event, Interleaved, credit, per_user_scores,
                                             per_user_winners, preference_test, score_test, team_draft)

RANK_A = [f"a{i}" for i in range(30)]
RANK_B = [f"b{i}" for i in range(30)]


def test_team_draft_is_deterministic_complete_and_fair():
    shared_a = RANK_A[:10] + RANK_B[:10] + RANK_A[10:]
    shared_b = RANK_B[:10] + RANK_A[:10] + RANK_B[10:]
    one = team_draft(shared_a, shared_b, k=20, seed="request-17")
    assert one == team_draft(shared_a, shared_b, k=20, seed="request-17")
    assert len(one.items) == 20 and len(set(one.items)) == 20
    counts = np.bincount(one.teams, minlength=2)
    assert abs(counts[0] - counts[1]) <= 1
    # every slot came from its team's best movie not yet shown
    for slot, (item, team) in enumerate(zip(one.items, one.teams)):
        ranking = shared_a if team == A else shared_b
        assert item == next(m for m in ranking if m not in one.items[:slot])


def test_coin_flips_give_each_team_the_first_slot_half_of_the_time():
    firsts = [team_draft(RANK_A, RANK_B, k=20, seed=f"req-{i}").teams[0] for i in range(2000)]
    assert 0.46 < np.mean(firsts) < 0.54


def test_identical_rankings_interleave_to_the_same_list():
    mixed = team_draft(RANK_A, RANK_A, k=20, seed=5)
    assert list(mixed.items) == RANK_A[:20]


def test_short_rankings_fill_from_the_other_team_and_stop_when_both_run_out():
    mixed = team_draft(["x", "y"], RANK_B[:5], k=20, seed=1)
    assert len(mixed.items) == 7 and set(mixed.items) == {"x", "y", *RANK_B[:5]}
    assert mixed.teams.count(A) == 2


def test_credit_counts_picks_within_the_window_once_per_movie():
    il = Interleaved(("m1", "m2", "m3", "m4"), (A, B, A, B))
    events = [Event(10, "m2", "watch"), Event(11, "m2", "watch"),      # one movie, two minute-lines
              Event(12, "m4", "watch"), Event(13, "m1", "watch"),
              Event(5, "m3", "watch"),                                  # before the list was shown
              Event(10_000, "m3", "watch"),                             # after the window
              Event(14, "zz", "watch")]                                 # not in the list
    c = credit(il, 10.0, events, window_s=3600)
    assert c.picks == (1, 2) and c.winner == B


def test_ties_are_broken_by_completions_then_ratings():
    il = Interleaved(("m1", "m2"), (A, B))
    watched = [Event(1, "m1", "watch"), Event(2, "m2", "watch")]
    assert credit(il, 0, watched, window_s=60).winner == TIE
    completed = watched + [Event(30, "m1", "complete")]
    assert credit(il, 0, completed, window_s=60).winner == A
    rated = watched + [Event(40, "m1", "rate", 2.0), Event(41, "m2", "rate", 5.0)]
    c = credit(il, 0, rated, window_s=60)
    assert c.rating == (pytest.approx(-1.0), pytest.approx(2.0)) and c.winner == B
    assert credit(il, 0, [], window_s=60).winner == TIE


def test_preference_test_sign_test_reference_values():
    winners = np.array([A] * 60 + [B] * 40 + [TIE] * 100)
    p = preference_test(winners)
    # two-sided binomial P(X ≥ 60 | n=100, ½) × 2 = 0.056887
    assert (p.wins_a, p.wins_b, p.ties) == (60, 40, 100)
    assert p.p_value == pytest.approx(0.056887, abs=1e-5) and p.decision == TIE
    assert p.delta == pytest.approx(0.1)
    strong = preference_test(np.array([B] * 70 + [A] * 30))
    assert strong.decision == B and strong.p_value < 1e-4


def test_per_user_winners_collapse_impressions_to_one_vote():
    users = np.array([1, 1, 1, 2, 2, 3])
    winners = np.array([A, A, B, B, TIE, TIE])
    assert per_user_winners(users, winners).tolist() == [A, B, TIE]


def test_per_user_scores_and_score_test_reference_values():
    users = np.array([7, 7, 7, 3, 3, 9])
    winners = np.array([A, A, B, B, TIE, TIE])
    assert per_user_scores(users, winners).tolist() == pytest.approx([-0.5, 1 / 3, 0.0])  # users 3, 7, 9
    scores = np.array([1.0, 1.0, 0.0, -1.0, 1.0, 0.5, 1.0, 0.0])
    ref = stats.ttest_1samp(scores, 0.0)
    got = score_test(scores)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-12) and got.mean == pytest.approx(0.4375)
    assert got.ci == pytest.approx(tuple(ref.confidence_interval(0.95)), rel=1e-12)
    assert got.decision == (A if ref.pvalue < 0.05 else TIE)
    assert score_test(np.full(40, -1.0)).decision == B
    assert score_test(np.zeros(10)).decision == TIE
