"""Issue #10: the trainer's and ``models promote``'s gate cannot promote a worse model.

A candidate fitted on 2% of the serving version's data is refused before any metric;
an inconclusive paired comparison is refused; so is a manual promotion compared with a
version that no longer serves.
"""
from __future__ import annotations

import asyncio
import json
import io

import numpy as np
import pytest

from models.registry import Registry, gate
from recstream.ops import fit as training
from recstream.ops.fit import Progress, TrainRequest
from recstream.ops.promotion import paired_gate
from recstream.ops.registry_commands import promote as manual_promote
from recstream.ops.training_data import TopicRange
from recstream.settings import Settings
from tests.ops.test_training import S, Announcements, planted_histories


def run(tmp_path, monkeypatch, histories, settings=S):
    async def fake_load(settings, source, hours, progress):
        return histories, TopicRange("t", {0: (0, 42)})

    monkeypatch.setattr(training, "load", fake_load)
    registry = Registry(tmp_path / "models")
    report = asyncio.run(training.train(settings, TrainRequest(promote=True), registry=registry,
                                        progress=Progress(io.StringIO()), gate=gate,
                                        announce=Announcements()))
    return report, registry


def test_a_candidate_trained_on_2_percent_of_the_data_is_refused(tmp_path, monkeypatch):
    full = planted_histories()
    first, registry = run(tmp_path, monkeypatch, full)
    assert first["promoted"]
    # The same users, 2% of their ratings (what a truncated read looks like).
    rng = np.random.default_rng(0)
    thin = {}
    for user, history in full.items():
        kept = type(history)()
        for movie, (stars, at) in history.ratings.items():
            if rng.random() < 0.02:
                kept.rate(movie, stars, at)
        thin[user] = kept
    second, registry = run(tmp_path, monkeypatch, thin)
    assert not second["promoted"]
    (reason,) = second["decision"]["reasons"]
    assert "truncated read" in reason
    assert second["decision"]["compared"]["data_fraction"] < 0.05
    assert registry.serving()["version"] == first["version"]


def per_user(values) -> dict:
    return {m: {str(u): float(v) for u, v in enumerate(values)}
            for m in ("recall_at_20", "ndcg_at_20")}


def test_an_inconclusive_paired_comparison_is_refused():
    rng = np.random.default_rng(1)
    serving = rng.uniform(0.1, 0.5, 150)
    noisy = np.clip(serving + rng.normal(0, 0.3, 150), 0, 1)  # same mean, wide interval
    entry = {"version": "v1", "interactions": 1000, "n_test": 150,
             "paired": {"users": 150, "per_user": {"candidate": per_user(noisy),
                                                   "serving": per_user(serving)}}}
    decision = paired_gate({"interactions": 1000}, entry, S)
    assert not decision["passed"]
    assert all("inconclusive" in r for r in decision["reasons"]), decision["reasons"]
    # The same candidate measured without noise passes: the test can fail.
    entry["paired"]["per_user"]["candidate"] = per_user(serving + 0.01)
    assert paired_gate({"interactions": 1000}, entry, S)["passed"]
    # A version serving with no holdout user in common with the candidate: inconclusive.
    lone = paired_gate({"interactions": 1000}, {"version": "v1", "interactions": 1000,
                                                "n_test": 0}, S)
    assert not lone["passed"] and "0 users in common" in lone["reasons"][0]


def test_manual_promote_uses_the_same_paired_gate(tmp_path, monkeypatch):
    histories = planted_histories()
    first, registry = run(tmp_path, monkeypatch, histories)
    strict = Settings.from_mapping({"n_factors": 8, "registry_dir": str(tmp_path / "models"),
                                    "gate_min_users": 10_000})
    second, _ = run(tmp_path, monkeypatch, histories, settings=strict)
    assert not second["promoted"] and "inconclusive" in second["decision"]["reasons"][0]
    again = manual_promote(strict, second["version"])
    assert not again["promoted"] and "inconclusive" in again["decision"]["reasons"][0]
    lenient = strict.replace(gate_min_users=10)
    decided = manual_promote(lenient, second["version"])
    assert decided["decision"]["compared"]["recall_at_20"]["users"] >= 10


def test_the_ials_holdout_is_per_user_so_the_gate_can_pair_enough_users():
    from recstream.ops.data_window import holdout_split, window_data
    histories = planted_histories()
    data = window_data(histories, hours=0, settings=S)
    split, info = holdout_split(data, "ials")
    eligible = {u for u, h in histories.items() if len(h.ratings) >= 5}
    assert info["per_user"] and set(split.test.users.tolist()) == eligible
    assert info["test_users"] == len(eligible) > 100
    newest = {}
    for u, i, t in zip(split.test.users.tolist(), split.test.items.tolist(),
                       split.test.timestamps.tolist()):
        newest[u] = min(newest.get(u, t), t)
    for u, i, t in zip(split.train.users.tolist(), split.train.items.tolist(),
                       split.train.timestamps.tolist()):
        assert t < newest.get(u, float("inf"))  # nothing from the user's own future
    assert not set(zip(split.test.users.tolist(), split.test.items.tolist())) & set(
        zip(split.train.users.tolist(), split.train.items.tolist()))


def test_ials_is_compared_only_on_users_whose_holdout_the_serving_version_never_saw(
        tmp_path, monkeypatch):
    from recstream.ops.data_window import holdout_split, window_data

    def ials(histories, settings=S):
        async def fake_load(settings, source, hours, progress):
            return histories, TopicRange("t", {0: (0, 42)})
        monkeypatch.setattr(training, "load", fake_load)
        return asyncio.run(training.train(
            settings, TrainRequest(model="ials", promote=True),
            registry=Registry(tmp_path / "models"), progress=Progress(io.StringIO()),
            gate=gate, announce=Announcements()))

    full = planted_histories(n_users=400, n=16000)
    times = sorted(t for h in full.values() for _, t in h.ratings.values())
    early_end = times[len(times) // 2]
    for user in range(0, 400, 3):  # a third of the users were active only before early_end
        history = full[user]
        history.ratings = {m: [r, t - (times[-1] - times[0]) - 1.0]
                           for m, (r, t) in history.ratings.items()}
        history.items, history.watches = list(history.ratings), {}
    early = {}
    for user, history in full.items():
        kept = type(history)()
        for movie, (stars, at) in history.ratings.items():
            if at <= early_end:
                kept.rate(movie, stars, at)
        early[user] = kept
    first = ials(early)
    assert first["promoted"], first["decision"]
    # A candidate with newer data but no more of it than the serving version (a shorter
    # window, a restore): more data would be compared against a refit (next test).  The
    # others' older ratings are thinned until it holds no more interactions than ``early``.
    size = lambda hs: sum(len(h.ratings) for h in hs.values())  # noqa: E731
    rng = np.random.default_rng(5)
    later = {}
    for user, history in full.items():
        kept = type(history)()
        newest = sorted(history.ratings.items(), key=lambda kv: kv[1][1])
        for j, (movie, (stars, at)) in enumerate(newest):
            if user % 3 == 0 or j >= len(newest) - 4 or rng.random() < 0.2:
                kept.rate(movie, stars, at)
        later[user] = kept
    assert size(later) <= size(early)
    second = ials(later)
    assert not second["metrics"]["serving"]["refitted_without_holdout"]
    split, _ = holdout_split(window_data(later, hours=0, settings=S), "ials")
    newest_unseen = {u for u in set(split.test.users.tolist())
                     if split.test.timestamps[split.test.users == u].min() > early_end}
    paired = second["metrics"]["serving"]["paired"]
    assert 0 < paired["users"] <= len(newest_unseen) < len(set(split.test.users.tolist()))
    assert set(map(int, paired["per_user"]["serving"]["recall_at_20"])) <= newest_unseen


@pytest.mark.parametrize("served, grown", [(60, 160), (150, 200)])
def test_a_candidate_with_more_data_is_paired_on_every_holdout_user(tmp_path, monkeypatch,
                                                                   served, grown):
    """Issue #10 phase 4 (the 64-factor anomaly): users arrive in bursts (a replay), the
    first retrain is promoted on the first users' data, and its successor has too few
    users whose holdout is newer than the serving data to be compared, so every successor
    was refused as inconclusive and the service stayed on the sliver.  With more data than
    the serving version every holdout user is paired, against the serving version's recipe
    refitted on its own data minus the holdout.  Phase 5: (150, 200) is 1.33x the data;
    the phase-4 rule (>= 2x) refused it, and an ml-100k replay stayed on a version fitted on
    60% of the stream (candidates with 1.2-1.7x its data refused as inconclusive)."""
    def ials(histories, settings):
        async def fake_load(settings, source, hours, progress):
            return histories, TopicRange("t", {0: (0, 42)})
        monkeypatch.setattr(training, "load", fake_load)
        return asyncio.run(training.train(
            settings, TrainRequest(model="ials", promote=True),
            registry=Registry(tmp_path / "models"), progress=Progress(io.StringIO()),
            gate=gate, announce=Announcements()))

    full = planted_histories(n_users=400, n=16000)
    for user, history in full.items():  # each user active in one burst, users in turn
        start = 1e9 + user * 86_400.0
        history.ratings = {m: [r, start + j * 60.0]
                           for j, (m, (r, _)) in enumerate(sorted(history.ratings.items(),
                                                                  key=lambda kv: kv[1][1]))}
        history.items, history.watches = list(history.ratings), {}
    sliver = {u: h for u, h in full.items() if u < served}
    more = {u: h for u, h in full.items() if u < grown}
    size = lambda hs: sum(len(h.ratings) for h in hs.values())  # noqa: E731
    assert size(more) > size(sliver)
    settings = S.replace(registry_dir=str(tmp_path / "models"), gate_min_users=100)
    first = ials(sliver, settings.replace(gate_min_users=20))
    assert first["promoted"], first["decision"]
    second = ials(more, settings)
    paired = second["metrics"]["serving"]["paired"]
    newer = paired["users"] - sum(1 for u in map(int, paired["per_user"]["serving"][
        "recall_at_20"]) if u < served)
    assert newer < 100 <= paired["users"], (newer, paired["users"])  # today: inconclusive
    assert "every holdout user" in second["metrics"]["serving"]["compared_on"]
    # ... against the serving recipe refitted without the holdout (the stored version
    # memorised the older users' test pairs and refused its successors as "worse").
    assert second["metrics"]["serving"]["refitted_without_holdout"]
    # Decided on the paired numbers, never for want of users; with 2.7x the data it wins.
    assert not any("users in common" in r for r in second["decision"]["reasons"])
    if grown / served > 2:
        assert second["promoted"], json.dumps(second["decision"]["compared"])
