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


def test_a_saved_run_is_analysed_per_pair(tmp_path, monkeypatch):
    """bench/interleaving_live.analyse on a fabricated two-pair run directory."""
    import json

    import numpy as np

    import bench.interleaving_live as live
    from models.experiments.spec import ExperimentSpec, parse_arm
    arms = ["control=baseline", "degraded0=random", "il0=interleave:baseline/random",
            "degraded1=noisy:2.0", "il1=interleave:baseline/noisy:2.0"]
    spec = ExperimentSpec("ilx", "ranker", tuple(parse_arm(a) for a in arms), (1.0,) * 5)
    (tmp_path / "spec.json").write_bytes(spec.to_json())
    rng = np.random.default_rng(0)
    shift = {"control": 0.0, "degraded0": -0.3, "degraded1": -0.1}
    with open(tmp_path / "truth.jsonl", "w") as f:
        for user in range(3000):
            arm = spec.allocation.arm_of(user)
            f.write(json.dumps({"kind": "session", "t": 1.0, "user": user, "new_user": False,
                                "served_true_mean": 3.4 + shift.get(arm, 0.0)
                                + rng.normal(0, 0.5)}) + "\n")
    with open(tmp_path / "answers.jsonl", "w") as f:
        f.write(json.dumps({"time": 1, "user": 3, "arm": "ilx:il0", "source": "fallback",
                            "teams": "AB"}) + "\n")
    effect = {"effect": -0.1, "ci": [-0.15, -0.05], "n_control": 600, "n_treatment": 600}
    credit = {"mean_credit": 0.25, "users": 400, "ci": [0.18, 0.32], "decision": "A"}
    (tmp_path / "result.json").write_text(json.dumps({
        "table": {a: {"answers": 900} for a in ("control", "degraded0", "il0", "degraded1", "il1")},
        "effects": {"degraded0": {"conversion": effect}, "degraded1": {"conversion": effect}},
        "interleaving": {"il0": credit, "il1": {**credit, "decision": "B"}}}))
    (tmp_path / "run.json").write_text(json.dumps({"experiment": "ilx",
                                                   "degraded": ["random", "noisy:2.0"]}))
    monkeypatch.setattr(live, "OUT", tmp_path)
    out = live.analyse(tmp_path)
    big, small = out["pairs"]["random"], out["pairs"]["noisy:2.0"]
    assert big["arms"] == ["degraded0", "il0"] and small["arms"] == ["degraded1", "il1"]
    assert big["truth_confirms_gap"] and big["truth_gap"]["effect"] == pytest.approx(-0.3, abs=0.08)
    assert big["decision_correct"] and not small["decision_correct"]  # il1 decided for B
    assert big["power"]["best_observable_ab_metric"] == "conversion"
    assert out["answers"]["il0"]["interleaved:fallback"] == 1
    assert (tmp_path / "ilx-live.json").exists()
