"""Batch retraining without Kafka: aggregation, window, pseudo-ratings, holdout, pipeline."""
from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest

from models.artifact import data_hash
from models.datasets import planted_ratings
from models.registry import Registry, gate
from recstream.ops import fit as training
from recstream.ops.data_window import NoData, holdout_split, pseudo_rating, window_data
from recstream.ops.fit import Progress, TrainRequest, make_model, with_progress
from recstream.ops.as_served import Fitted
from recstream.settings import Settings
from recstream.ops.training_data import (
    LogAggregator,
    TopicRange,
    histories_from_changelog,
    latest_values,
)
from tables.codecs import UserHistory, encode_history

S = Settings.from_mapping({"n_factors": 8, "watch_complete_minutes": 60})
DAY = 86_400.0


def rate(t: str, user: int, movie: str, stars: int) -> str:
    return f"{t},{user},GET /rate/{movie}={stars}"


def watch(t: str, user: int, movie: str, minute: int) -> str:
    return f"{t},{user},GET /data/m/{movie}/{minute}.mpg"


def aggregate(lines: list[str], settings: Settings = S) -> LogAggregator:
    agg = LogAggregator(settings)
    for line in lines:
        agg.add(line.encode())
    return agg


# -- movielog aggregation -----------------------------------------------------------------
def test_latest_rating_by_event_time_wins_whatever_the_arrival_order():
    agg = aggregate([
        rate("2024-01-01T10:00:00", 7, "heat+1995", 2),
        rate("2024-01-03T10:00:00", 7, "heat+1995", 5),   # the newest
        rate("2024-01-02T10:00:00", 7, "heat+1995", 1),   # late, older: ignored
        rate("2024-01-03T10:00:00", 7, "heat+1995", 5),   # redelivered
        rate("2024-01-01T09:00", 8, "heat+1995", 3),      # no seconds
    ])
    assert agg.users[7].ratings["heat+1995"][0] == 5
    assert agg.users[8].ratings["heat+1995"][0] == 3
    assert agg.counts["ratings"] == 5


def test_watches_keep_the_furthest_minute_and_bad_lines_are_counted():
    agg = aggregate([
        watch("2024-01-01T10:00:00", 7, "up+2009", 1),
        watch("2024-01-01T10:05:00", 7, "up+2009", 70),
        watch("2024-01-01T10:03:00", 7, "up+2009", 30),   # out of order
        "2024-170-1T10:00:00,7,GET /rate/up+2009=4",       # bad time
        "2024-01-01T10:00:00,24f162,GET /rate/up+2009=4",  # bad user
        rate("2024-01-01T10:00:00", 7, "up+2009", 9),      # off the 1-5 scale
        "2024-01-01T10:00:00,7,GET /create_account",
    ])
    entry = agg.users[7].watches["up+2009"]
    assert entry[0] == 70 and entry[2] == pytest.approx(entry[1] + 300)
    assert "up+2009" not in agg.users[7].ratings
    assert agg.counts == {"lines": 7, "ratings": 0, "watch_minutes": 3, "rejected": 3,
                          "other": 1}


# -- changelog view -----------------------------------------------------------------------
def test_changelog_last_value_wins_and_tombstones_delete():
    a1, a2, b = UserHistory(), UserHistory(), UserHistory()
    a1.rate("x", 1, 10.0)
    a2.rate("x", 4, 20.0)
    b.rate("y", 3, 30.0)
    records = [(b"1", encode_history(a1)), (b"2", encode_history(b)), (b"1", encode_history(a2)),
               (b"2", None), (None, b"junk"), (b"3", encode_history(b)), (b"3", None),
               (b"3", encode_history(b)), (b"not-a-user", encode_history(b))]
    latest = latest_values(records)
    assert set(latest) == {b"1", b"3", b"not-a-user"}
    histories = histories_from_changelog(latest)
    assert set(histories) == {1, 3}
    assert histories[1].ratings == {"x": [4, 20.0]}


def test_topic_range_reports_exact_offsets():
    read = TopicRange("t", {1: (5, 9), 0: (0, 3)})
    assert read.as_manifest() == {"t": {"0": {"start": 0, "end": 3},
                                        "1": {"start": 5, "end": 9}}}
    assert "7 offsets" in read.describe()


# -- window and pseudo-ratings -------------------------------------------------------------
def histories_for_window() -> dict[int, UserHistory]:
    end = 100 * DAY
    u1, u2 = UserHistory(), UserHistory()
    u1.rate("old", 2, end - 3 * DAY)            # outside a 48 h window
    u1.rate("new", 5, end - DAY)
    u1.watch("seen-and-rated", 90, end - 2 * 3600, 60)
    u1.rate("seen-and-rated", 3, end - 10 * DAY)  # rated long ago: still no pseudo-rating
    u1.watch("finished", 95, end - 3600, 60)      # completed, unrated: pseudo-rating
    u1.watch("abandoned", 12, end - 3600, 60)     # not completed: watch only
    u2.watch("finished-long-ago", 120, end - 5 * DAY, 60)
    u2.watch("last", 61, end, 60)                 # the newest event: the window's end
    return {1: u1, 2: u2}


def test_window_ends_at_the_newest_event_and_filters_by_event_time():
    data = window_data(histories_for_window(), hours=48, settings=S)
    assert data.end == 100 * DAY and data.start == data.end - 48 * 3600
    rated = set(zip(data.ratings.users.tolist(), data.ratings.items.tolist()))
    assert rated == {(1, "new")}
    watched = set(zip(data.watches.users.tolist(), data.watches.items.tolist()))
    assert watched == {(1, "seen-and-rated"), (1, "finished"), (1, "abandoned"), (2, "last")}
    assert dict(zip(data.watches.items.tolist(), data.watches.values.tolist()))["finished"] == 95


def test_pseudo_ratings_only_for_completed_unrated_watches():
    data = window_data(histories_for_window(), hours=48, settings=S)
    assert set(zip(data.pseudo.users.tolist(), data.pseudo.items.tolist())) == \
        {(1, "finished"), (2, "last")}
    assert np.all(data.pseudo.values == pytest.approx(1 + 0.8 * 4))
    wide = window_data(histories_for_window(), hours=24 * 30, settings=S)
    assert (2, "finished-long-ago") in set(zip(wide.pseudo.users.tolist(),
                                               wide.pseudo.items.tolist()))
    ten = Settings.from_mapping({"rating_max": 10})
    assert pseudo_rating(ten) == pytest.approx(1 + 0.8 * 9)


def test_rows_are_canonical_whatever_the_dict_order():
    hist = histories_for_window()
    a = window_data(hist, hours=1000, settings=S)
    b = window_data(dict(reversed(list(hist.items()))), hours=1000, settings=S)
    for table in ("ratings", "watches", "pseudo"):
        ta, tb = getattr(a, table), getattr(b, table)
        assert data_hash(ta.users, ta.items, ta.values) == data_hash(tb.users, tb.items,
                                                                     tb.values)


# -- holdout -------------------------------------------------------------------------------
def planted_histories(n_users=300, n_items=120, n=6000, seed=1) -> dict[int, UserHistory]:
    data = planted_ratings(n_users, n_items, n, seed=seed)
    histories: dict[int, UserHistory] = {}
    for u, i, r, t in zip(data.users.tolist(), data.items.tolist(), data.values.tolist(),
                          data.timestamps.tolist()):
        history = histories.setdefault(u, UserHistory())
        history.rate(f"m{i}", int(r), t)
        if (u + int(i)) % 7 == 0:  # some completed, unrated watches too
            history.watch(f"w{i}", 80, t, 60)
    return histories


def test_holdout_is_the_newest_tenth_and_tests_only_explicit_ratings():
    data = window_data(planted_histories(), hours=1e6, settings=S)
    split, info = holdout_split(data, "als")
    every = np.sort(np.r_[data.ratings.timestamps, data.watches.timestamps])
    assert info["cutoff"] == every[int(every.size * 0.9)]
    assert split.train.timestamps.max() < info["cutoff"] <= split.test.timestamps.min()
    assert len(split.test) == np.sum(data.ratings.timestamps >= info["cutoff"])
    assert not set(split.test.items.tolist()) & set(data.pseudo.items.tolist())
    assert len(split.train) == np.sum(data.ratings.timestamps < info["cutoff"]) + \
        np.sum(data.pseudo.timestamps < info["cutoff"])
    assert 0.05 < len(split.test) / len(data.ratings) < 0.15


def test_ials_holdout_leaves_the_test_pairs_out_of_training():
    hist = planted_histories()
    for user, history in hist.items():  # every rating was watched first
        for movie, (_, at) in history.ratings.items():
            history.watch(movie, 100, at - 60, 60)
    split, _ = holdout_split(window_data(hist, hours=1e6, settings=S), "ials")
    test_pairs = set(zip(split.test.users.tolist(), split.test.items.tolist()))
    assert test_pairs and not test_pairs & set(zip(split.train.users.tolist(),
                                                   split.train.items.tolist()))


def test_holdout_of_nothing_is_no_data():
    with pytest.raises(NoData):
        holdout_split(window_data({}, hours=1, settings=S), "als")


# -- models and progress -------------------------------------------------------------------
def test_progress_ticks_every_half_step_and_changes_nothing_else():
    data = planted_ratings(80, 40, 1500, seed=3)
    out = io.StringIO()
    watched = with_progress(make_model("als", S), Progress(out), "fit")
    watched.fit(data.users, data.items, data.values)
    plain = make_model("als", S).fit(data.users, data.items, data.values)
    assert type(watched).__name__ == "BiasedALS"
    np.testing.assert_array_equal(watched.item_factors, plain.item_factors)
    lines = out.getvalue().splitlines()
    assert lines[-1].endswith("20/20") and "ALS iteration 10/10" in lines[-1]
    assert len(lines) == 11  # not a terminal: one line per tenth


def test_fitted_wrapper_is_scored_without_refitting():
    data = window_data(planted_histories(), hours=1e6, settings=S)
    split, _ = holdout_split(data, "als")
    model = make_model("als", S).fit(split.train.users, split.train.items, split.train.values)
    before = model.user_factors.copy()
    scored = training.score(Fitted(model), split, S)
    refit = training.score(make_model("als", S), split, S)
    np.testing.assert_array_equal(model.user_factors, before)
    assert scored["rmse"] == pytest.approx(refit["rmse"])
    assert scored["n_test"] == len(split.test)


# -- the pipeline (Kafka replaced by in-memory histories) ---------------------------------
class Announcements(list):
    async def __call__(self, settings, pointer):
        self.append(pointer)


def run(tmp_path, monkeypatch, histories, **request):
    async def fake_load(settings, source, hours, progress):
        return histories, TopicRange("t", {0: (0, 42)})

    monkeypatch.setattr(training, "load", fake_load)
    announce = Announcements()
    registry = Registry(tmp_path / "models")
    report = asyncio.run(training.train(S, TrainRequest(**request), registry=registry,
                                        progress=Progress(io.StringIO()), gate=gate,
                                        announce=announce))
    return report, registry, announce


def test_pipeline_stores_promotes_and_then_gates_against_the_serving_version(
        tmp_path, monkeypatch):
    histories = planted_histories()
    first, registry, announced = run(tmp_path, monkeypatch, histories, promote=True)
    assert first["promoted"] and announced == [registry.serving()]
    arrays, manifest = registry.load(first["version"])
    assert arrays["item_factors"].dtype == np.float32 and arrays["item_factors"].shape[1] == 8
    assert arrays["user_ids"].dtype == np.int64 and arrays["item_ids"].dtype.kind == "U"
    assert manifest["topic_offsets"] == {"t": {"0": {"start": 0, "end": 42}}}
    assert manifest["code_version"].startswith(("git:", "recstream=="))
    assert manifest["model"] == "BiasedALS" and manifest["serves"]
    assert manifest["metrics"]["n_test"] > 0 and manifest["metrics"]["rmse"] < 1.5
    assert manifest["metrics"]["holdout"]["fraction"] == 0.1
    assert manifest["data"]["pseudo_ratings"] > 0
    assert manifest["window"]["hours"] == S.retrain_window_h == 0  # 0: all data
    n_ratings = sum(len(h.ratings) for h in histories.values())
    assert manifest["data"]["ratings"] == n_ratings  # every rating held, none dropped

    second, registry, _ = run(tmp_path, monkeypatch, histories, promote=True)
    serving = second["metrics"]["serving"]
    assert serving["version"] == first["version"] and serving["window_overlaps_holdout"]
    assert serving["rmse"] < second["metrics"]["rmse"]  # it saw the holdout: flattered
    compared = second["decision"]["compared"]  # the paired per-user gate (issue #10)
    assert compared["recall_at_20"]["users"] == serving["paired"]["users"] >= 100
    assert compared["serving_interactions"] == manifest["rows"]["interactions"]
    assert registry.versions() == sorted([first["version"], second["version"]])
    assert second["promoted"] == second["decision"]["passed"]


def test_pipeline_without_promote_never_promotes_and_ials_serves(tmp_path, monkeypatch):
    histories = planted_histories()
    for user, history in histories.items():
        for movie, (_, at) in history.ratings.items():
            history.watch(movie, 100, at - 60, 60)
    plain, registry, announced = run(tmp_path, monkeypatch, histories)
    assert plain["decision"] is None and registry.serving() is None and not announced
    ials, registry, announced = run(tmp_path, monkeypatch, histories, model="ials",
                                    promote=True)
    # issue #10: implicit ALS over the complete sets serves (gated like any candidate)
    assert ials["promoted"] and ials["decision"]["passed"], ials["decision"]
    assert ials["metrics"]["rmse"] is None and ials["metrics"]["recall_at_20"] is not None
    assert registry.manifest(ials["version"])["model"] == "ImplicitALS"
    held = {(u, m) for u, h in histories.items() for m in [*h.watches, *h.ratings]}
    assert ials["data"]["interactions"] == len(held)  # every pair held, none dropped
    assert registry.serving()["version"] == ials["version"] and announced


def test_pipeline_with_nothing_in_the_window_raises_no_data(tmp_path, monkeypatch):
    short = UserHistory()
    short.watch("trailer", 3, 1e9, 60)  # watched, never completed: nothing for als
    with pytest.raises(NoData, match="no ratings or completed watches in all the data"):
        run(tmp_path, monkeypatch, {1: UserHistory(), 2: short})
    with pytest.raises(NoData, match="no watches"):
        run(tmp_path, monkeypatch, {1: UserHistory()}, model="ials")


def test_as_served_ranks_like_the_service_and_falls_back_to_popularity():
    from models.als import BiasedALS
    from models.popularity import popularity_prior
    from recstream.ops.as_served import AsServed, Fitted

    model = BiasedALS.from_arrays({
        "user_ids": np.array([1, 2], np.int64),
        "user_factors": np.array([[1.0, 0.0], [0.0, 1.0]], np.float32),
        "user_bias": np.zeros(2, np.float32),
        "item_ids": np.array(["a", "b", "c"]),
        "item_factors": np.array([[0.1, 0.0], [0.0, 2.0], [0.05, 0.0]], np.float32),
        "item_bias": np.array([0.0, 0.0, 0.2], np.float32),
        "global_mean": np.asarray(3.0)})
    # Training rows: "d" is unknown to the model (newer than it), "a" is the most popular.
    items = ["a", "a", "a", "a", "b", "c", "d", "d"]
    ranker = AsServed(Fitted(model), blend=0.15).fit(np.arange(len(items)), np.array(items),
                                                     np.ones(len(items)))
    prior = dict(zip("abcd", popularity_prior(np.array([4.0, 1.0, 1.0, 2.0]), 0.15)))
    served = {"a": 0.1 + prior["a"], "b": prior["b"], "c": 0.05 + 0.2 + prior["c"],
              "d": prior["d"]}  # user 1: p.q + b + prior; "d" scores by popularity alone
    assert ranker.recommend(1, k=4) == sorted(served, key=lambda m: -served[m])
    assert ranker.recommend(2, k=1) == ["b"]
    assert ranker.recommend(2, k=2, exclude={"b"})[0] != "b"
    assert ranker.recommend(99, k=2) == ["a", "d"]  # never seen: popularity, as served


def test_the_gate_compares_both_versions_on_the_same_users():
    from recstream.ops.promotion import comparable

    candidate = {"rmse": 0.9, "recall_at_20": 0.6, "n_test": 150}
    common = {"rmse": 0.88, "recall_at_20": 0.7, "n_test": 40}
    serving = {"version": "v1", "rmse": 0.92, "recall_at_20": 0.72, "n_test": 40,
               "candidate_common": common}
    assert comparable(candidate, serving) == ({**common, "paired": None}, serving)
    paired = {"users": 40, "recall_at_20": {"ci95": [-0.1, 0.05]}}
    assert comparable(candidate, {**serving, "paired": paired})[0]["paired"] == paired
    # No user in common: nothing to compare against, the candidate stands on its own.
    assert comparable(candidate, {**serving, "n_test": 0}) == (candidate, None)
    assert comparable(candidate, None) == (candidate, None)
