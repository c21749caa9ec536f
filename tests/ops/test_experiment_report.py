"""The experiment analysis and its markdown report, on synthetic joined data."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.experiments.spec import ExperimentSpec, parse_arm
from models.experiments.telemetry import Served, Watch, join
from recstream.ops.experiment_analysis import analyse
from recstream.ops.experiment_commands import new_spec, with_share
from recstream.ops.experiment_report import write


def synthetic(n_users: int, skew: float = 0.0, seed: int = 0):
    """Users split by the spec; the treatment watches cheaper titles (cost 1 vs 2)."""
    spec = ExperimentSpec("cost-test", "ranker", (parse_arm("control=baseline"),
                                                  parse_arm("cheap=cost:1")), (1.0, 1.0))
    rng = np.random.default_rng(seed)
    served, watches, ratings = [], [], {}
    for u in range(n_users):
        arm = spec.allocation.arm_of(u)
        if skew and arm == "cheap" and rng.random() < skew:
            continue  # lost answers of one arm: what the SRM check must flag
        t = 1000.0 + u
        served.append(Served(u, t, arm, ("a", "b"), 5.0))
        if rng.random() < 0.5:
            movie = "b" if arm == "cheap" else "a"
            watches.append(Watch(u, movie, t + 60, 30))
            ratings[(u, movie)] = int(rng.integers(3, 6))
    return spec, served, watches, ratings, {"a": 2.0, "b": 1.0}


def test_effects_srm_and_report(tmp_path):
    spec, served, watches, ratings, costs = synthetic(2_000)
    arms, contaminated = join(served, watches, ratings, costs, window_s=600)
    result = analyse(spec, arms, contaminated, extra={"true_rating": {u: 1.0 for u in range(2000)}})
    assert result["control"] == "control" and not result["srm"]["flagged"]
    cost = result["effects"]["cheap"]["cost_per_view"]
    assert cost["effect"] == pytest.approx(-1.0) and cost["ci"][1] < 0
    conv = result["effects"]["cheap"]["conversion"]
    assert conv["ci"][0] < 0 < conv["ci"][1]  # same watch probability in both arms
    assert conv["seq_ci"][0] <= conv["ci"][0] and conv["seq_ci"][1] >= conv["ci"][1]
    assert len(result["over_time"]["cheap"]) == 12
    path = write(result, tmp_path)
    text = path.read_text()
    assert "no mismatch" in text and "licence cost per view" in text
    for name in ("effects", "over-time", "arms"):
        assert (tmp_path / "img" / f"cost-test-{name}.png").stat().st_size > 1000
        assert f"img/cost-test-{name}.png" in text


def test_a_lost_share_of_one_arm_is_flagged():
    spec, served, watches, ratings, costs = synthetic(10_000, skew=0.1)
    arms, contaminated = join(served, watches, ratings, costs)
    assert analyse(spec, arms, contaminated)["srm"]["flagged"]


def test_canary_specs_put_the_treatment_first_and_ramp_it():
    spec = new_spec("c", "ranker", ["bad=slow:200", "control=baseline"], None, 1.0, True)
    assert spec.weights == (0.01, 0.99) and spec.canary
    later = with_share(spec, 0.05)
    assert later.weights == (0.05, 0.95) and later.version == 2
    with pytest.raises(ValueError):
        new_spec("c", "ranker", ["a=baseline"], None, 1.0, True)


def test_interleaving_summary_decides_for_the_ranker_users_pick(tmp_path):
    from models.experiments.interleaving import A, B
    from recstream.ops.experiment_analysis import interleaving_summary
    from recstream.ops.experiment_report import markdown
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(200), 3)
    winners = np.where(rng.random(600) < 0.65, A, B)  # A wins 65% of impressions
    summary = interleaving_summary(users, winners)
    assert summary["decision"] == "A" and summary["ci"][0] > 0 and summary["users"] == 200
    assert interleaving_summary(np.zeros(0), np.zeros(0)) is None
    spec, served, watches, ratings, costs = synthetic(200)
    arms, contaminated = join(served, watches, ratings, costs)
    result = analyse(spec, arms, contaminated)
    result["arms"]["cheap"] = {"ranker": "interleave", "a": {"ranker": "baseline"},
                               "b": {"ranker": "cost", "cost_weight": 1.0}}
    result["interleaving"] = {"cheap": summary}
    assert "**A**" in markdown(result, {}, tmp_path)


def test_answers_are_timed_by_the_platforms_outcome_line():
    from recstream.ops.experiment_data import events_of, served_of, shown_at
    from recstream.settings import Settings
    import orjson
    body = {"user": 5, "stream_time": 1000.0, "time": 1.0, "arm": "e:a,f:b", "movies": ["m1", "m2"],
            "latency_ms": 3.0, "teams": "AB"}
    served = served_of([orjson.dumps(body)], "e")
    assert served[0].arm == "a" and served[0].teams == "AB"
    lines = [b"2025-01-06T10:00:00,5,recommendation request r:8082, status 200, result: m1, m2, 12 ms",
             b"2025-01-06T10:05:00,5,GET /data/m/m1/0.mpg", b"2025-01-06T10:06:00,5,GET /rate/m1=4",
             b"2025-01-06T10:05:00,6,GET /data/m/m1/0.mpg"]
    watches, ratings, rated_at, outcomes = events_of(lines, {5}, Settings.from_mapping({}))
    assert [(w.user, w.movie) for w in watches] == [(5, "m1")] and ratings == {(5, "m1"): 4}
    timed = shown_at(served, outcomes)
    assert timed[0].time == list(outcomes.values())[0][0] > 1000.0
    unseen = dataclasses.replace(served[0], movies=("x",))  # no outcome line: stream time kept
    assert shown_at([unseen], outcomes)[0].time == 1000.0
