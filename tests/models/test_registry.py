"""The model registry: immutable versions, the gate, promotion and rollback, the log."""
from __future__ import annotations

import json
import math
import multiprocessing

import numpy as np
import pytest

from models.artifact import ArtifactExists
from models.registry import Registry, RegistryError, gate


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"item_ids": np.array(["a", "b"]), "item_factors": rng.random((2, 4), np.float32)}


def add(reg: Registry, version: str, **metrics) -> str:
    return reg.add(arrays(), {"model": "BiasedALS", "metrics": metrics}, version=version)


GOOD = {"rmse": 0.90, "recall_at_20": 0.10, "ndcg_at_20": 0.08, "n_test": 100}


# -- gate -----------------------------------------------------------------------------------

def test_gate_passes_a_candidate_no_worse_than_serving_within_tolerance():
    serving = {"rmse": 0.90, "recall_at_20": 0.100, "ndcg_at_20": 0.080}
    within = {"rmse": 0.91, "recall_at_20": 0.099, "ndcg_at_20": 0.079, "n_test": 10}
    assert gate(within, serving, tolerance=0.02).passed


@pytest.mark.parametrize("name,value", [("rmse", 0.95), ("recall_at_20", 0.09),
                                        ("ndcg_at_20", 0.07)])
def test_gate_rejects_a_candidate_worse_on_any_metric(name, value):
    serving = {"rmse": 0.90, "recall_at_20": 0.100, "ndcg_at_20": 0.080}
    big = {"n_test": 100_000, "n_ranked_users": 100_000}  # noise far below the differences
    candidate = {**serving, **big, name: value}
    decision = gate(candidate, serving, tolerance=0.02)
    assert not decision.passed
    assert decision.reasons and name in decision.reasons[0]
    assert decision.as_dict()["compared"][name]["serving"] == serving[name]


def test_on_a_small_holdout_the_gate_allows_for_sampling_noise():
    serving = {"rmse": 0.90, "recall_at_20": 0.80, "ndcg_at_20": 0.40}
    slightly_worse = {"rmse": 0.95, "recall_at_20": 0.75, "ndcg_at_20": 0.37}
    # 120 ranked users: recall allowance 1.96 * sqrt(.8 * .2 / 120) = 0.0716; RMSE on 150
    # rows: 1.96 * 0.9 / sqrt(300) = 0.102.  Both differences are within the noise.
    small = gate({**slightly_worse, "n_test": 150, "n_ranked_users": 120}, serving,
                 tolerance=0.02)
    assert small.passed, small.reasons
    assert small.compared["recall_at_20"]["allowance"] == pytest.approx(0.0716, abs=1e-4)
    much_worse = {**slightly_worse, "recall_at_20": 0.60}
    assert not gate({**much_worse, "n_test": 150, "n_ranked_users": 120}, serving,
                    tolerance=0.02).passed
    # The same drop measured on 100,000 users is real.
    assert not gate({**slightly_worse, "n_test": 10**5, "n_ranked_users": 10**5}, serving,
                    tolerance=0.02).passed


def test_gate_never_passes_an_unevaluated_or_non_finite_candidate():
    assert not gate({"rmse": 0.9, "n_test": 0}, None, tolerance=0.02).passed
    assert not gate({"rmse": math.nan, "recall_at_20": math.inf, "n_test": 5}, None,
                    tolerance=0.02).passed


def test_first_model_must_beat_the_popularity_baseline_it_was_measured_against():
    assert gate({**GOOD, "baseline_recall_at_20": 0.05}, None, tolerance=0.0).passed
    assert not gate({**GOOD, "baseline_recall_at_20": 0.20}, None, tolerance=0.0).passed


# -- versions, pointer, rollback --------------------------------------------------------------

def test_versions_are_immutable_and_listed_in_order(tmp_path):
    reg = Registry(tmp_path)
    add(reg, "v2", **GOOD)
    add(reg, "v1", **GOOD)
    assert reg.versions() == ["v1", "v2"]
    with pytest.raises(ArtifactExists):
        add(reg, "v1", **GOOD)
    loaded, manifest = reg.load("v1")
    np.testing.assert_array_equal(loaded["item_factors"], arrays()["item_factors"])
    assert manifest["version"] == "v1" and manifest["metrics"]["rmse"] == 0.90
    with pytest.raises(RegistryError):
        reg.manifest("../etc")
    with pytest.raises(RegistryError):
        reg.promote("nope", decision={})


def test_promote_and_rollback_move_the_pointer_and_bump_the_generation(tmp_path):
    reg = Registry(tmp_path)
    for v in ("v1", "v2", "v3"):
        add(reg, v, **GOOD)
    assert reg.serving() is None
    with pytest.raises(RegistryError):
        reg.rollback(reason="nothing yet")
    assert reg.promote("v1", decision={"passed": True})["generation"] == 1
    assert reg.promote("v2", decision={"passed": True})["generation"] == 2
    p3 = reg.promote("v3", decision={"passed": True})
    assert (p3["version"], p3["generation"], p3["history"]) == ("v3", 3, ["v1", "v2"])
    back = reg.rollback(reason="bad answers")
    assert (back["version"], back["generation"], back["history"]) == ("v2", 4, ["v1"])
    assert reg.rollback(reason="again")["version"] == "v1"
    with pytest.raises(RegistryError):
        reg.rollback(reason="no more")
    assert reg.serving()["version"] == "v1" and reg.serving()["generation"] == 5
    log = reg.decisions()
    assert [e["action"] for e in log] == ["add"] * 3 + ["promote"] * 3 + ["rollback"] * 2
    assert log[-1]["decision"] == {"reason": "again", "from": "v2"}
    # The pointer file is always complete JSON (replaced by rename).
    json.loads((tmp_path / "serving.json").read_text())


def _promote_many(root: str, version: str, n: int) -> None:
    reg = Registry(root)
    for _ in range(n):
        reg.promote(version, decision={"passed": True})


def test_concurrent_promotions_never_lose_a_generation(tmp_path):
    reg = Registry(tmp_path)
    add(reg, "v1", **GOOD)
    add(reg, "v2", **GOOD)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_promote_many, args=(str(tmp_path), v, 20)) for v in ("v1", "v2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert reg.serving()["generation"] == 40  # the lock serialised all 40 promotions
    gens = [e["generation"] for e in reg.decisions() if e["action"] == "promote"]
    assert sorted(gens) == list(range(1, 41))


def test_paired_intervals_decide_ranking_when_enough_users_are_in_common():
    serving = {"rmse": 0.90, "recall_at_20": 0.50, "ndcg_at_20": 0.40}
    candidate = {"rmse": 0.89, "recall_at_20": 0.45, "ndcg_at_20": 0.30, "n_test": 500,
                 "n_ranked_users": 400}
    worse = {"recall_at_20": {"ci95": [-0.09, -0.02]}, "ndcg_at_20": {"ci95": [-0.15, -0.05]}}
    unclear = {"recall_at_20": {"ci95": [-0.09, 0.01]}, "ndcg_at_20": {"ci95": [-0.15, 0.02]}}
    rejected = gate({**candidate, "paired": {"users": 400, **worse}}, serving, tolerance=0.02)
    assert not rejected.passed and "paired difference CI95" in rejected.reasons[0]
    assert gate({**candidate, "paired": {"users": 400, **unclear}}, serving,
                tolerance=0.02).passed
    few = gate({**candidate, "paired": {"users": 4, **worse}}, serving, tolerance=0.02)
    assert few.passed  # 4 users: inconclusive; RMSE (better) decides
    assert "inconclusive" in few.compared["ndcg_at_20"]
    assert not gate({**candidate, "rmse": 1.2, "paired": {"users": 4, **worse}}, serving,
                    tolerance=0.02).passed
