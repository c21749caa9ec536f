"""Experiment specs, the cost-aware penalty and the per-arm telemetry join (pure)."""
from __future__ import annotations

import numpy as np
import pytest

from models.costaware import cost_penalty
from models.experiments.assignment import HOLDOUT
from models.experiments.spec import Arm, ExperimentSpec, parse_arm
from models.experiments.telemetry import Served, Watch, join, watches_from_minutes


def spec(**kw) -> ExperimentSpec:
    base = dict(id="e1", kind="ranker", arms=(parse_arm("control=baseline"),
                                              parse_arm("treatment=cost:0.5")),
                weights=(1.0, 1.0))
    base.update(kw)
    return ExperimentSpec(**base)


def test_arm_syntax_maps_to_policies():
    assert parse_arm("a=baseline") == Arm("a", {"ranker": "baseline"})
    assert parse_arm("a=cost:0.25").policy == {"ranker": "cost", "cost_weight": 0.25}
    assert parse_arm("a=describe:off").policy == {"describe": False}
    assert parse_arm("a=slow:200").policy == {"ranker": "baseline", "fault_delay_ms": 200.0}
    for bad in ("a", "=baseline", "a=nope", "a=describe:maybe"):
        with pytest.raises(ValueError):
            parse_arm(bad)


def test_spec_validates_policies_against_its_kind():
    with pytest.raises(ValueError):
        spec(kind="coldstart")  # ranker arms in a cold-start experiment
    with pytest.raises(ValueError):
        spec(arms=(parse_arm("a=cost:-1"), parse_arm("b=baseline")))
    with pytest.raises(ValueError):
        spec(state="paused")
    ok = spec(kind="coldstart", arms=(parse_arm("on=describe:on"), parse_arm("off=describe:off")))
    assert ok.kind == "coldstart"


def test_json_round_trip_and_versions():
    s = spec(exposure=0.3, note="x")
    back = ExperimentSpec.from_json(s.to_json())
    assert back == s
    later = s.replace(state="stopped")
    assert later.version == s.version + 1 and later.state == "stopped"


def test_assignment_is_the_allocation_and_a_stopped_experiment_assigns_nobody():
    s = spec()
    users = np.arange(5_000)
    expected = s.allocation.assign(users)
    got = np.array([s.arm_index(int(u)) for u in users])
    assert (got == expected).all()
    assert 0.45 < (got == 0).mean() < 0.55
    stopped = s.replace(state="stopped")
    assert all(stopped.arm_index(int(u)) == HOLDOUT for u in users[:100])


def test_cost_penalty_is_relative_to_the_mean_known_cost():
    costs = np.array([1.0, 3.0, np.nan, 2.0])
    p = cost_penalty(costs, weight=0.5)
    assert p == pytest.approx([0.25, 0.75, 0.5, 0.5])  # mean known cost 2; unknown = average
    assert not cost_penalty(costs, weight=0.0).any()
    assert not cost_penalty(np.full(3, np.nan), weight=1.0).any()


def test_join_per_user_metrics_by_hand():
    served = [Served(1, 100.0, "a", ("m1", "m2"), 10.0),
              Served(1, 200.0, "a", ("m3",), 12.0),
              Served(2, 100.0, "b", ("m1",), 30.0),
              Served(3, 100.0, "a", ("m1",), 5.0), Served(3, 150.0, "b", ("m1",), 5.0)]
    watches = watches_from_minutes([(1, "m2", 150.0, 0), (1, "m2", 210.0, 9),  # 10 minutes
                                    (1, "m9", 300.0, 0),                       # organic
                                    (2, "m1", 5000.0, 0),                      # outside window
                                    (1, "m0", 50.0, 0)])                       # before exposure
    ratings = {(1, "m2"): 4, (1, "m9"): 1}
    costs = {"m2": 2.0, "m9": 4.0, "m1": 1.0}
    arms, contaminated = join(served, watches, ratings, costs, window_s=600.0)
    assert contaminated == 1  # user 3 saw both arms
    a, b = arms["a"], arms["b"]
    assert list(a.users) == [1] and list(b.users) == [2]
    assert a.per_user["conversion"][0] == pytest.approx(0.5)  # answer 1 converted, answer 2 not
    assert a.per_user["watch_through_min"][0] == 10
    assert a.per_user["rec_rating"][0] == 4  # the organic m9 rating is not a recommended one
    assert a.per_user["cost_per_view"][0] == pytest.approx(3.0)  # m2 and m9; m0 was before
    assert a.cost_per_hour == pytest.approx(6.0 / (11 / 60))
    assert b.per_user["conversion"][0] == 0.0 and np.isnan(b.per_user["rec_rating"][0])
    assert list(a.latency_ms) == [10.0, 12.0]


def test_watches_collapse_minutes():
    ws = watches_from_minutes([(1, "m", 10.0, 3), (1, "m", 5.0, 0), (1, "m", 20.0, 7)])
    assert ws == [Watch(1, "m", 5.0, 8)]


def test_interleave_policy_syntax_and_validation():
    arm = parse_arm("il=interleave:baseline/cost:2")
    assert arm.policy == {"ranker": "interleave", "a": {"ranker": "baseline"},
                          "b": {"ranker": "cost", "cost_weight": 2.0}}
    spec(arms=(arm, parse_arm("c=baseline")))
    nested = Arm("il", {"ranker": "interleave", "a": arm.policy, "b": {"ranker": "baseline"}})
    with pytest.raises(ValueError):
        spec(arms=(nested, parse_arm("c=baseline")))


def test_interleaving_credit_from_later_watches_and_ratings():
    from models.experiments.interleaving import A, B, TIE
    from models.experiments.telemetry import interleaving_winners
    served = [Served(1, 100.0, "il", ("x", "y", "z"), 1.0, "ABA"),   # y watched: B wins
              Served(2, 100.0, "il", ("x", "y"), 1.0, "AB"),         # x and y watched, x rated 5
              Served(3, 100.0, "il", ("x", "y"), 1.0, "AB"),         # nothing in the window
              Served(4, 100.0, "il", ("x",), 1.0, "")]               # not interleaved: skipped
    watches = [Watch(1, "y", 150.0, 3), Watch(2, "x", 120.0, 5), Watch(2, "y", 130.0, 5),
               Watch(3, "x", 5000.0, 5)]
    rated = {(2, "x"): (200.0, 5)}
    users, winners = interleaving_winners(served, watches, rated, window_s=600.0,
                                          rating_midpoint=3.0)
    assert users.tolist() == [1, 2, 3] and winners.tolist() == [B, A, TIE]
