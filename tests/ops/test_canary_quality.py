"""The canary's quality guardrail: per-user conversion over matured, ranker-shaped answers."""
from __future__ import annotations

from models.experiments.canary import breached
from models.experiments.telemetry import Watch
from recstream.ops.experiment_canary import QUALITY, conversion_by_arm


def answer(user: int, t: float, arm: str, movies=("a", "b"), source="personal") -> dict:
    return {"user": user, "stream_time": t, "time": 1e9 + t, "arm": arm,
            "movies": list(movies), "source": source}


def test_conversion_counts_matured_ranked_answers_per_user():
    answers = [answer(1, 10, "t"), answer(1, 100, "t"),          # one of two converted
               answer(2, 10, "c"),                                # converted
               answer(3, 10, "c", source="fallback"),             # same list in every arm: out
               answer(4, 950, "c")]                               # too young to judge: out
    watches = [Watch(1, "a", 30, 10), Watch(2, "b", 60, 10), Watch(3, "a", 20, 10),
               Watch(1, "z", 1000, 5)]                            # the newest watch: t = 1000
    got = conversion_by_arm(answers, watches, window_s=120)
    assert got["t"].n == 1 and got["t"].mean == 0.5
    assert got["c"].n == 1 and got["c"].mean == 1.0
    assert conversion_by_arm(answers, [], window_s=120) == {}


def test_a_ranker_that_users_ignore_breaches_the_quality_guardrail_and_a_good_one_does_not():
    def arm_of(name, users, converts):
        out_a, out_w = [], []
        for u in users:
            out_a.append(answer(u, 1, name))
            if converts(u):
                out_w.append(Watch(u, "a", 10, 10))
        return out_a, out_w
    ca, cw = arm_of("c", range(0, 400), lambda u: u % 10 < 8)           # 80% convert
    ba, bw = arm_of("bad", range(1000, 1060), lambda u: u % 10 < 3)     # 30% convert
    ga, gw = arm_of("good", range(2000, 2060), lambda u: u % 10 < 8)    # 80% convert
    late = [Watch(9999, "z", 10_000, 1)]
    got = conversion_by_arm(ca + ba + ga, cw + bw + gw + late, window_s=120)
    assert breached(QUALITY, got["c"], got["bad"])
    assert not breached(QUALITY, got["c"], got["good"])


def test_answers_stamped_by_a_lagging_worker_are_timed_by_the_platforms_log():
    """The worker's stream clock lagged 500 s: the watch comes 'late' unless re-timed."""
    answers = [answer(1, 100, "t")]
    watches = [Watch(1, "a", 620, 10), Watch(9, "z", 2000, 1)]
    assert conversion_by_arm(answers, watches, window_s=120)["t"].mean == 0.0
    outcomes = {(1, ("a", "b")): [600.0]}
    assert conversion_by_arm(answers, watches, window_s=120, outcomes=outcomes)["t"].mean == 1.0


def test_a_step_waits_while_the_estimate_looks_harmful_and_passes_a_good_arm():
    """#13 phase 4: a count of matured users alone ramped a random-scores arm on noise."""
    import numpy as np
    from models.experiments.stats import Moments
    from recstream.ops.experiment_canary import looks_harmful
    control = Moments.of((np.arange(2000) % 100 < 64).astype(float))      # 64% convert
    worse = Moments.of((np.arange(50) % 2 == 0).astype(float))            # 50%: 14 points down
    slightly = Moments.of((np.arange(50) % 50 < 31).astype(float))        # 62%: within 2.5 pts
    assert looks_harmful(control, worse)
    assert not looks_harmful(control, slightly)
    assert not looks_harmful(None, worse) and not looks_harmful(control, None)
