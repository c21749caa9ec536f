"""The view serves each user's arm and labels the provenance record with it."""
from __future__ import annotations

import time

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from models.experiments.spec import ExperimentSpec, parse_arm
from recstream.experiments import ExperimentBook
from tables.arms import ArmRanker
from tests.web.test_views import ADULT, MOVIES, R_RATED, fill
from tests.wiring import publisher as publisher_of, routes


def book_with(*arms: str, weights=(1.0, 1.0)) -> ExperimentBook:
    book = ExperimentBook()
    book.apply(ExperimentSpec("x", "ranker", tuple(parse_arm(a) for a in arms), weights))
    return book


@pytest.fixture
def costly(rt):
    """Every title but the five cheapest costs 100 per play, so the cost arm avoids them."""
    fill(rt)
    for i, movie in enumerate(MOVIES):
        rt.items.set_cost(movie, 1.0 if i < 5 else 100.0)
    return rt


async def serve(rt, book, paths):
    publisher = publisher_of(rt)
    app = web.Application()
    app.add_routes(routes(rt, publisher=publisher, arms=ArmRanker(rt.recommender, book)))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        lines = [await (await client.get(p)).text() for p in paths]
    finally:
        await client.close()
    return lines, publisher


async def test_baseline_arm_is_the_service_answer_and_is_labelled(costly):
    rt = costly
    plain = rt.recommender.answer(1)[0]
    (line,), publisher = await serve(rt, book_with("control=baseline", "b=baseline",
                                                   weights=(1.0, 0.0)), ["/recommend/1"])
    assert line == plain
    body = publisher.encode(publisher.pending[0])[1]
    assert b'"arm":"x:control"' in body


async def test_cost_arm_prefers_cheap_titles_within_the_guardrails(costly):
    rt = costly
    plain = rt.recommender.answer(1)[0].split(",")
    (line,), publisher = await serve(rt, book_with("cheap=cost:50", "b=baseline",
                                                   weights=(1.0, 0.0)), ["/recommend/1"])
    got = line.split(",")
    cheap = set(MOVIES[:5])
    assert set(got[:5]) == cheap and set(plain[:5]) != cheap
    assert "adult" not in " ".join(got)  # the unsafe titles stay out
    assert len(got) == len(plain)
    assert b'"arm":"x:cheap"' in publisher.encode(publisher.pending[0])[1]


async def test_a_slow_arm_is_slow_and_its_latency_is_recorded(costly):
    rt = costly
    started = time.perf_counter()
    _, publisher = await serve(rt, book_with("slow=slow:150", "b=baseline", weights=(1.0, 0.0)),
                               ["/recommend/1"])
    assert time.perf_counter() - started >= 0.15
    assert publisher.pending[0][8] >= 150.0  # latency_ms in the provenance record


async def test_unknown_users_get_the_fallback_but_keep_their_arm_label(costly):
    rt = costly
    (line,), publisher = await serve(rt, book_with("cheap=cost:50", "b=baseline",
                                                   weights=(1.0, 0.0)), ["/recommend/424242"])
    assert line == rt.recommender.fallback()
    assert b'"arm":"x:cheap"' in publisher.encode(publisher.pending[0])[1]


def test_the_cost_penalty_is_cached_until_costs_change(costly):
    rt = costly
    arms = ArmRanker(rt.recommender, ExperimentBook())
    first = arms.penalty(1.0)
    assert arms.penalty(1.0) is first
    rt.items.set_cost("new-movie", 5.0)
    assert arms.penalty(1.0) is not first and len(arms.penalty(1.0)) == len(rt.items)
    assert np.isfinite(arms.penalty(1.0)).all()


async def test_per_arm_series_count_answers_views_cost_and_ratings(costly):
    rt = costly
    book = book_with("cheap=cost:50", "b=baseline", weights=(1.0, 0.0))
    arm_metrics = rt.monitor.experiments  # built by create_app on the worker's registry
    arm_metrics.book = book
    app = web.Application()
    app.add_routes(routes(rt, publisher=publisher_of(rt), arms=ArmRanker(rt.recommender, book),
                          arm_metrics=arm_metrics))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        for _ in range(3):
            await client.get("/recommend/1")
    finally:
        await client.close()
    value = rt.metrics.registry.get_sample_value
    labels = {"experiment": "x", "arm": "cheap"}
    assert value("recstream_experiment_answers_total", labels) == 3
    assert value("recstream_experiment_seconds_count", labels) == 3
    arm_metrics.viewed(1, True, 2.5)
    arm_metrics.viewed(1, False, float("nan"))  # unknown cost: a view, no cost
    arm_metrics.rated(1, 4)
    assert value("recstream_experiment_views_total", {**labels, "recommended": "yes"}) == 1
    assert value("recstream_experiment_views_total", {**labels, "recommended": "no"}) == 1
    assert value("recstream_experiment_licence_cost_total", labels) == 2.5
    assert value("recstream_experiment_rating_sum_total", labels) == 4


async def test_an_interleaved_arm_drafts_both_rankers_and_records_the_teams(costly):
    rt = costly
    plain = rt.recommender.answer(1)[0].split(",")
    book = book_with("il=interleave:baseline/cost:50", "b=baseline", weights=(1.0, 0.0))
    cheap = ArmRanker(rt.recommender, book).cost_line(1, 50.0).split(",")
    (line,), publisher = await serve(rt, book, ["/recommend/1"])
    got = line.split(",")
    body = publisher.encode(publisher.pending[0])[1]
    import orjson
    teams = orjson.loads(body)["teams"]
    assert len(teams) == len(got) == len(set(got)) and set(teams) == {"A", "B"}
    for movie, team in zip(got, teams):
        assert movie in (plain if team == "A" else cheap)
    # Each team contributes its rankers' titles in order (team draft).
    a_items = [m for m, t in zip(got, teams) if t == "A"]
    assert a_items == [m for m in plain if m in a_items]


async def test_a_random_arm_serves_random_safe_titles(costly):
    """The canary drill's bad ranker: different lists each time, never an unsafe title."""
    rt = costly
    plain = rt.recommender.answer(1)[0]
    lines, publisher = await serve(rt, book_with("bad=random", "b=baseline", weights=(1.0, 0.0)),
                                   ["/recommend/1"] * 5)
    assert len(set(lines)) > 1 and plain not in lines
    for line in lines:
        got = line.split(",")
        assert len(got) == len(set(got)) == len(plain.split(","))
        assert ADULT not in got and set(got) <= set(MOVIES) | {R_RATED}  # user 1 is an adult
    assert b'"arm":"x:bad"' in publisher.encode(publisher.pending[0])[1]


async def test_a_noisy_arm_is_the_service_ranking_disturbed(costly):
    rt = costly
    plain = rt.recommender.answer(1)[0].split(",")
    arms = ArmRanker(rt.recommender, ExperimentBook())
    heavy = [arms.noisy_line(1, 50.0).split(",") for _ in range(5)]
    assert all(len(h) == len(set(h)) == len(plain) for h in heavy)
    assert len({",".join(h) for h in heavy}) > 1 and any(h != plain for h in heavy)
    assert all(ADULT not in h for h in heavy)


def test_a_noisy_arm_disturbs_the_fallback_of_an_unknown_user(costly):
    """An unknown user's answer is the popularity fallback; the noisy ranker disturbs those
    scores (safe for minors, like the fallback) instead of leaving the answer untouched."""
    rt = costly
    arms = ArmRanker(rt.recommender, ExperimentBook())
    fallback = rt.recommender.fallback().split(",")
    heavy = [arms.noisy_line(424242, 50.0).split(",") for _ in range(5)]
    assert all(len(h) == len(set(h)) == len(fallback) for h in heavy)
    assert any(h != fallback for h in heavy)
    assert all(ADULT not in h and R_RATED not in h for h in heavy)
    assert arms.noisy_line(424242, 0.0).split(",") == fallback  # no noise: the fallback itself


async def test_an_interleaved_arm_acts_on_an_unknown_users_fallback(costly):
    """Before: an unknown user's answer in an interleaving arm was the shared fallback, not
    interleaved (a third of the arm's answers on the worker, phase 4)."""
    rt = costly
    fallback = rt.recommender.fallback().split(",")
    book = book_with("il=interleave:baseline/random", "b=baseline", weights=(1.0, 0.0))
    line, source, _, label, _, teams = ArmRanker(rt.recommender, book).answer(424242)
    got = line.split(",")
    assert source == "fallback" and label == "x:il"
    assert len(teams) == len(got) == len(set(got)) and set(teams) == {"A", "B"}
    a_items = [m for m, t in zip(got, teams) if t == "A"]
    assert a_items == [m for m in fallback if m in a_items]  # team A drafts the fallback
    assert ADULT not in got and R_RATED not in got  # unknown: safe for minors


async def test_an_interleaved_arm_whose_rankers_agree_is_not_interleaved(costly):
    """Identical lists carry no preference: served once, without teams (before: drafted,
    and their coin-flip credit diluted the test)."""
    rt = costly
    plain = rt.recommender.answer(1)[0]
    for arm, user in (("il=interleave:baseline/baseline", 1),
                      ("il=interleave:baseline/cost:50", 424242)):  # no row for the cost ranker
        book = book_with(arm, "b=baseline", weights=(1.0, 0.0))
        line, _, _, _, _, teams = ArmRanker(rt.recommender, book).answer(user)
        assert teams == ""
        assert line == (plain if user == 1 else rt.recommender.fallback())


async def test_a_cold_users_answer_follows_their_arm_interleaved_included(costly):
    """A user without a vector, answered from the cold start's vector: the arm still applies."""
    rt = costly
    vector = np.ones(rt.settings.n_factors, np.float32)

    async def cold_now(user, started=None):
        return vector, 0.0, False
    for arm, check in (("il=interleave:baseline/noisy:50", "teams"), ("bad=random", "random"),
                       ("cheap=cost:50", "cheap")):
        arms = ArmRanker(rt.recommender, book_with(arm, "b=baseline", weights=(1.0, 0.0)))
        arms.cold_now = cold_now
        line, source, guardrails, label, _, teams = await arms.answer_now(424242)
        got = line.split(",")
        assert source == "personal" and "cold_start_now" in guardrails and label
        assert ADULT not in got and len(got) == len(set(got)) > 0
        if check == "teams":
            assert len(teams) == len(got) and set(teams) <= {"A", "B"}
        if check == "cheap":
            assert set(got[:5]) == set(MOVIES[:5])
    arms = ArmRanker(rt.recommender, ExperimentBook())
    assert (await arms.answer_now(424242))[1] == "fallback"  # no cold start wired: unchanged
