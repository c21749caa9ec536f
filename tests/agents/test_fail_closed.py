"""Guardrails fail closed on a worker whose movie and user APIs are down (issue #14).

Real course movie objects were confirmed before the outage (their records are on the
metadata topic); then both APIs go down.  Movies played since — including a fake slug
a sybil wave pushes to the top of every score — are never confirmed; users never get a
profile, so their age is unknown.  Every answer must still be a non-empty 200, contain
only confirmed movies, and nothing unsafe for minors to a minor or a user of unknown age.
"""
from __future__ import annotations

import json

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.metadata import CatalogFetcher
from models.guardrails import safe_for_minors
from recstream.movie_api import normalise
from recstream.records import UserProfile
from recstream.settings import Settings
from tables.codecs import movie_key, user_key
from tests.conftest import free_port, sample_path
from tests.wiring import cold_start, item_follower, routes, user_writer

FAKE = [f"fake+slug+{i}+2024" for i in range(5)]
ADULT_USER, MINOR_USER = 500, 501
UNPROFILED = list(range(1, 41))


@pytest.fixture
def settings(tmp_path) -> Settings:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: both APIs are down
    return Settings.from_mapping({
        "data_dir": str(tmp_path / "data"), "web_host": "127.0.0.1", "web_port": free_port(),
        "partitions": 4, "n_factors": 8, "top_k": 20, "api_url": dead, "api_timeout_s": 0.3,
    })


def real_objects() -> dict[str, dict]:
    """First 400 real movie objects plus one flagged adult (the course data has none)."""
    objs = {}
    with open(sample_path("movies.jsonl"), encoding="utf-8") as f:
        for line in f:
            raw = json.loads(line)
            objs.setdefault(raw["id"], raw)
            if len(objs) == 400:
                break
    adult = dict(next(iter(objs.values())), id="adult+only+2001", adult="True")
    objs[adult["id"]] = adult
    return objs


async def call(rt, path: str) -> tuple[int, str]:
    app = web.Application()
    app.add_routes(routes(rt))
    async with TestClient(TestServer(app)) as client:
        response = await client.get(path)
        return response.status, await response.text()


async def test_apis_down_nothing_unconfirmed_or_unsafe_is_served(rt, recorder, make_event):
    objs = real_objects()
    unsafe_for_minors = {m for m, raw in objs.items() if not safe_for_minors(raw)}
    assert len(unsafe_for_minors) >= 20  # Horror, explicit terms, no genres, the adult one
    follower = item_follower(rt)
    rng = np.random.default_rng(3)
    k = rt.settings.n_factors
    # Before the outage: the catalogue's records as the fetcher published them.
    for i, (movie, raw) in enumerate(objs.items()):
        rt.items.update(movie, bias=0.0, factors=rng.standard_normal(k).astype(np.float32),
                        pop_score=float(i % 50), pop_time=0.0)
        follower.apply(follower.metadata_topic, movie_key(movie), orjson.dumps(normalise(raw)))
    # Unsafe titles score highest for everyone, the fake slugs higher still.
    for movie in unsafe_for_minors:
        rt.items.update(movie, bias=3.0, pop_score=1e4)
    for movie in FAKE:
        rt.items.update(movie, bias=9.0, factors=np.ones(k, np.float32), pop_score=1e6)

    # The outage: the movie API cannot confirm the fake slugs, the user API gives no profile.
    fetcher = CatalogFetcher(settings=rt.settings, catalog=rt.tables.movie_catalog,
                             metadata_topic=rt.topics.movie_metadata,
                             api_calls=rt.metrics.api_calls)
    for movie in FAKE:
        fetcher.want(movie)
    cold = cold_start(rt)
    async with aiohttp.ClientSession() as session:
        await fetcher.fetch(session, sorted(fetcher.pending))
        assert await cold.fetch(session, UNPROFILED) == 0
    assert not recorder.on("movie_metadata") and not recorder.on("user_profiles")
    sample = rt.metrics.registry.get_sample_value
    assert sample("recstream_api_calls_total", {"outcome": "error"}) == 1  # movie API
    assert sample("recstream_api_calls_total", {"outcome": "user_error"}) == 1

    # Known users: learnt vectors, no profile (unknown age); one adult and one minor
    # whose profiles arrived before the outage.
    writer = user_writer(rt)
    batch = []
    for user, age in ((ADULT_USER, 40), (MINOR_USER, 12)):
        profile = UserProfile(time=1.0, user=user, age=age, gender="F", source="none")
        batch.append((make_event(profile, key=user_key(user)), profile))
    await writer.apply(batch)
    for user in UNPROFILED + [ADULT_USER, MINOR_USER]:
        rt.users.set_vector(user, 0.0, np.ones(k, np.float32))
        rt.users.invalidate(rt.users.get_row(user))
    rt.recommender.refresh_fallback()
    rt.readiness.items_loaded.set()

    confirmed = set(objs)
    served_to_adult = set()
    for user in UNPROFILED + [MINOR_USER, ADULT_USER, 99_999, "abc"]:
        status, line = await call(rt, f"/recommend/{user}")
        assert status == 200 and line, user
        ids = line.split(",")
        assert len(ids) == 20
        assert set(ids) <= confirmed - {"adult+only+2001"}, user  # nothing unconfirmed
        if user == ADULT_USER:
            served_to_adult.update(ids)
        else:  # minors, unknown age, unknown users: the minors' rules
            assert not set(ids) & unsafe_for_minors, user
    assert served_to_adult & unsafe_for_minors  # the adult's answers are not over-filtered


def test_unconfirmed_ids_wait_in_bounded_memory(rt):
    """A flood of fake slugs cannot grow the fetcher's waiting sets past the bound."""
    bound = rt.settings.unconfirmed_max
    fetcher = CatalogFetcher(settings=rt.settings, catalog=rt.tables.movie_catalog,
                             metadata_topic=rt.topics.movie_metadata,
                             api_calls=rt.metrics.api_calls)
    fetcher.wake.set = lambda: None  # no event loop task here: only the bookkeeping
    for i in range(bound + 500):
        fetcher.want(f"flood+{i}+2024")
    assert len(fetcher.pending) <= bound
    fetcher.defer([f"flood+{i}+2024" for i in range(bound + 500)], 60.0)
    assert len(fetcher.retry_at) <= bound
    assert "flood+0+2024" not in fetcher.retry_at  # the oldest waiting ids go first
