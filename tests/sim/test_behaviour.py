"""Recommendations drive behaviour: a better list yields better picks and longer watching."""
from __future__ import annotations

import numpy as np
from sim_helpers import simulate

from recstream.sim.recommenders import OracleRecommender, PopularityRecommender, RandomRecommender
from recstream.sim.world import build_synthetic


def _outcomes(truth):
    sessions = [r for r in truth.records if r["kind"] == "session"]
    picked = [s for s in sessions if s["source"] == "reco"]
    return {
        "true_rating": float(np.mean([s["true_rating"] for s in picked])),
        "watch_through": float(np.mean([s["watch_through"] for s in picked])),
        "acceptance": len(picked) / len(sessions),
        "regret": float(np.mean([s["oracle_true_mean"] - s["served_true_mean"] for s in sessions])),
        "n": len(picked),
    }


async def test_random_below_popularity_below_oracle(small_options):
    results = {}
    for name, make in (("random", RandomRecommender), ("popularity", PopularityRecommender),
                       ("oracle", OracleRecommender)):
        world = build_synthetic(small_options)          # same seed: the same world for each policy
        _, truth, _ = await simulate(world, small_options.replace(rate=60.0), make(world), duration=1500)
        results[name] = _outcomes(truth)
    r, p, o = results["random"], results["popularity"], results["oracle"]
    assert min(r["n"], p["n"], o["n"]) > 400, results
    print(results)
    assert r["true_rating"] < p["true_rating"] < o["true_rating"], results
    assert r["watch_through"] < p["watch_through"] < o["watch_through"], results
    assert r["acceptance"] < o["acceptance"], results
    assert o["regret"] < 0.05 < p["regret"] < r["regret"], results
