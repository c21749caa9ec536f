"""Cold start wired into the service, against the simulator's real user API.

A small synthetic world (``recstream.sim``) serves ``GET /user/<ids>`` on a real
aiohttp server; the worker side is the real app (``create_app``) with Kafka
replaced by recorders (tests/conftest.py).  New accounts are created through the
user writer; the cold-start workers fetch them, produce ``UserProfile`` records,
and those are fed back through the ingest agent's ``apply_profiles`` path to the
user writer, exactly as the user-profiles topic would deliver them.  Answers are judged
by the world's TRUE ratings.
"""
from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager

import numpy as np
import orjson
import pytest
from aiohttp import web

from agents import coldstart_upkeep as upkeep, profiles as cs
from agents.profiles import ColdStart
from recstream.user_api import parse_user, slug_title, users_from_response
from agents.user_writer import UserWriter
from recstream.parsing import parse_line
from recstream.records import UserProfile
from recstream.settings import Settings
from recstream.sim.api import build_app
from recstream.sim.options import SimOptions
from recstream.sim.population import GENDERS
from recstream.sim.world import build_synthetic
from tables.codecs import UserHistory, decode_history, encode_history, movie_key, user_key
from tables.context import as_event, partition_for
from tests.conftest import free_port, sample_path
from tests.wiring import cold_start, ingest as ingest_of, user_writer

FACTORS = 8
NOW = "2025-01-06T10:00:00"                   # stream time of the accounts created below


@pytest.fixture
def api_port() -> int:
    return free_port()


@pytest.fixture
def settings(tmp_path, api_port) -> Settings:
    return Settings.from_mapping({
        "data_dir": str(tmp_path / "data"), "web_host": "127.0.0.1", "web_port": free_port(),
        "partitions": 4, "n_factors": FACTORS, "top_k": 20,
        "api_url": f"http://127.0.0.1:{api_port}", "api_timeout_s": 0.5,
        "coldstart_concurrency": 2,
    })


@pytest.fixture
def world():
    return build_synthetic(SimOptions(seed=5, users=3000, movies=600, factors=FACTORS))


@asynccontextmanager
async def user_api(world, port: int, **options):
    runner = web.AppRunner(build_app(world, SimOptions(seed=5, factors=FACTORS, **options)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


def own_partition(rt, user: int) -> int:
    return partition_for(user_key(user), rt.settings.partitions)


def calls(rt, outcome: str) -> float:
    return rt.metrics.registry.get_sample_value("recstream_api_calls_total",
                                                {"outcome": f"user_{outcome}"}) or 0.0


async def eventually(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def load_items(rt, world, make_event, *, metadata_share: float = 0.5) -> np.ndarray:
    """The serving item model = the world's item factors; plays from organic history.

    Half the movies also get their catalogue metadata (title from the movie API);
    the title index must fall back to the slug for the others.
    """
    cat, taste = world.catalog, world.taste
    hist = world.sample_history(30_000, np.random.default_rng(1))
    plays = np.bincount(hist[:, 1].astype(np.int64), minlength=len(cat))
    now = parse_line(f"{NOW},1,GET /create_account").time
    rt.recommender.observe_time(now)
    for m, slug in enumerate(cat.ids):
        rt.items.update(slug, bias=float(taste.item_bias[m]), factors=taste.Q[m].astype(np.float32),
                        pop_score=float(plays[m]), pop_time=now, plays=int(plays[m]))
        rt.items.set_flags(slug, adult=bool(cat.adult[m]),  # confirmed by the movie API
                           minors_ok=not bool(taste.unsafe_for_minor[m]))
        if m < metadata_share * len(cat):
            key = movie_key(slug)
            meta = {"id": slug, "title": cat.titles[m], "year": int(cat.year[m]) or None}
            event = make_event(b"", key=key, topic="recstream-movie-metadata",
                               partition=partition_for(key, rt.settings.partitions))
            with as_event(event):
                rt.tables.movie_catalog[key] = orjson.dumps(meta)
    rt.current_model.set_global_mean(float(taste.mu))
    return plays


def load_known_users(rt, world, cold: ColdStart, n: int = 300) -> None:
    """Existing users with vectors and demographics: what the prior is fitted on."""
    pop = world.population
    for i in np.flatnonzero(pop.created)[:n]:
        uid = int(pop.ids[i])
        rt.users.set_vector(uid, float(world.taste.user_bias[i]), world.taste.P[i].astype(np.float32))
        cold.demographics[uid] = (int(pop.age[i]), GENDERS[int(pop.gender[i])])


def sign_up(world, n: int, *, describing: bool = True) -> list[int]:
    """Create ``n`` new accounts in the world (those the API then knows)."""
    out = []
    pop = world.population
    while len(out) < n:
        i = pop.sign_up()
        assert i is not None
        if not describing or pop.describes[i]:
            out.append(int(pop.ids[i]))
    return out


async def create_accounts(rt, make_event, writer: UserWriter, users: list[int]) -> None:
    batch = []
    for u in users:
        text = f"{NOW},{u},GET /create_account"
        batch.append((make_event(text.encode(), key=user_key(u), partition=own_partition(rt, u)),
                      parse_line(text)))
    await writer.apply(batch)


async def fetch_all(cold: ColdStart, recorder, expected: int) -> list:
    task = asyncio.create_task(cold.run())
    try:
        await eventually(lambda: len(recorder.on("user_profiles")) >= expected, 60.0)  # nice 19, load 25
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return recorder.on("user_profiles")


async def deliver(rt, make_event, writer: UserWriter, sent: list) -> None:
    """What the user-profiles topic delivers to the partition owner's ``apply_profiles``."""
    events = [make_event(value, key=key, topic="recstream-user-profiles",
                         partition=partition_for(key, rt.settings.partitions))
              for key, value in sent]
    await ingest_of(rt, writer).consume_profiles(events)


def true_mean(world, uid: int, slugs: list[str]) -> float:
    i = world.population.index_of(uid)
    items = np.array([world.catalog.index[s] for s in slugs], np.int64)
    return float(world.taste.ratings(i, items).mean())


async def setup(rt, world, make_event):
    writer = user_writer(rt)
    cold = cold_start(rt)
    writer.on_new_user = cold.want
    load_items(rt, world, make_event)
    load_known_users(rt, world, cold)
    assert await cold.rebuild_titles()
    assert await cold.refit_prior() == 300
    return writer, cold


# -- the whole path -----------------------------------------------------------------------

async def test_new_accounts_get_personal_answers_better_than_the_fallback(
        rt, recorder, make_event, world, api_port):
    writer, cold = await setup(rt, world, make_event)
    new = sign_up(world, 40)
    async with user_api(world, api_port):
        await create_accounts(rt, make_event, writer, new)
        assert cold.pending() == len(new) and not recorder.on("user_profiles")  # only queued
        sent = await fetch_all(cold, recorder, len(new))
    assert calls(rt, "ok") >= 1 and calls(rt, "error") == 0
    profiles = {key: UserProfile.loads(value, serializer="json") for key, value in sent}
    assert sorted(p.user for p in profiles.values()) == sorted(new)
    assert {p.source for p in profiles.values()} <= {"foldin", "prior"}
    assert sum(p.source == "foldin" for p in profiles.values()) >= 30
    # Nothing was written by the fetcher: the writer applies the profiles.
    assert not recorder.writes("user_vectors", user_key(new[0]))
    await deliver(rt, make_event, writer, sent)

    fallback = rt.recommender.fallback().split(",")
    gains, named_hits = [], 0
    for u in new:
        history = decode_history(rt.tables.user_history.get(user_key(u)))
        i = world.population.index_of(u)
        assert history.profiled is not None and history.age == int(world.population.age[i])
        assert history.gender == GENDERS[int(world.population.gender[i])]
        assert len(recorder.writes("user_vectors", user_key(u))) == 1
        line, source = rt.recommender.answer(u)
        assert source == "personal"
        answer = line.split(",")
        assert len(answer) == 20
        named_hits += len(set(answer) & set(history.named))
        gains.append(true_mean(world, u, answer) - true_mean(world, u, fallback))
    assert named_hits == 0                              # named titles are never recommended back
    gains = np.asarray(gains)
    assert gains.mean() > 0.2 and (gains > 0).mean() > 0.75, gains


async def test_redelivered_profiles_change_nothing(rt, recorder, make_event, world, api_port):
    writer, cold = await setup(rt, world, make_event)
    new = sign_up(world, 5)
    async with user_api(world, api_port):
        await create_accounts(rt, make_event, writer, new)
        sent = await fetch_all(cold, recorder, len(new))
    await deliver(rt, make_event, writer, sent)
    writes = len(recorder.changelog)
    vectors = rt.users.factors[[rt.users.get_row(u) for u in new]].copy()
    for _ in range(3):
        await deliver(rt, make_event, writer, sent)
    assert len(recorder.changelog) == writes
    np.testing.assert_array_equal(rt.users.factors[[rt.users.get_row(u) for u in new]], vectors)
    assert rt.metrics.registry.get_sample_value(
        "recstream_duplicate_events_total", {"kind": "UserProfile"}) == 3 * len(new)


async def test_a_learned_vector_is_never_overwritten(rt, recorder, make_event, world, api_port):
    writer, cold = await setup(rt, world, make_event)
    (u,) = sign_up(world, 1)
    async with user_api(world, api_port):
        await create_accounts(rt, make_event, writer, [u])
        sent = await fetch_all(cold, recorder, 1)
    # The user rates something before the profile arrives: that vector is learned state.
    text = f"2025-01-06T10:01:00,{u},GET /rate/{world.catalog.ids[0]}=4"
    await writer.apply([(make_event(text.encode(), key=user_key(u), partition=own_partition(rt, u)),
                         parse_line(text))])
    learned = rt.users.factors[rt.users.get_row(u)].copy()
    n_vector_writes = len(recorder.writes("user_vectors", user_key(u)))
    await deliver(rt, make_event, writer, sent)
    np.testing.assert_array_equal(rt.users.factors[rt.users.get_row(u)], learned)
    assert len(recorder.writes("user_vectors", user_key(u))) == n_vector_writes
    history = decode_history(rt.tables.user_history.get(user_key(u)))
    assert history.profiled is not None and history.ratings   # demographics stored all the same


async def test_a_vector_of_another_model_generation_is_dropped(rt, recorder, make_event):
    writer = user_writer(rt)
    profile = UserProfile(time=1.0, user=77, age=15, gender="F", vector=[0.5] * FACTORS,
                          bias=0.1, source="foldin", generation=rt.current_model.generation + 1,
                          named=["up+2009"])
    await deliver(rt, make_event, writer, [(user_key(77), profile.dumps())])
    row = rt.users.get_row(77)
    assert not rt.users.has_vector[row] and not recorder.writes("user_vectors")
    assert rt.users.minor[row]                                  # 15 years old: minor-safe answers
    history = decode_history(rt.tables.user_history.get(user_key(77)))
    assert history.age == 15 and "up+2009" in history.seen()


# -- the API's failures: quiet, counted, retried later --------------------------------------

async def test_unknown_users_are_a_404_and_not_asked_again(rt, recorder, make_event, world, api_port):
    writer, cold = await setup(rt, world, make_event)
    never = int(world.population.ids[np.flatnonzero(~world.population.created)[-1]])
    async with user_api(world, api_port):
        await create_accounts(rt, make_event, writer, [never])
        task = asyncio.create_task(cold.run())
        await eventually(lambda: calls(rt, "not_found") == 1)
        cold.want(never)
        assert cold.queue.empty()                       # not asked again
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not recorder.on("user_profiles")


async def test_rate_limited_and_slow_calls_give_up_quietly_and_retry_later(
        rt, recorder, make_event, world, api_port, monkeypatch):
    writer, cold = await setup(rt, world, make_event)
    first, second = sign_up(world, 2)
    async with user_api(world, api_port, api_rate_per_s=0.001, api_burst=1):
        cold.want(first)
        sent = await fetch_all(cold, recorder, 1)
        assert len(sent) == 1 and calls(rt, "ok") == 1
        cold.want(second)
        task = asyncio.create_task(cold.run())
        await eventually(lambda: calls(rt, "rate_limited") == 1)
        cold.want(second)
        assert cold.queue.empty()                       # at most one try per RETRY_AFTER_S
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    monkeypatch.setattr(cs, "RETRY_AFTER_S", 0.0)
    monkeypatch.setattr(upkeep, "RETRY_AFTER_S", 0.0)
    async with user_api(world, api_port, scenarios={"api-slow": {"share": 1.0, "delay_s": 1.0}}):
        assert cold.retry_due() == 1
        task = asyncio.create_task(cold.run())
        await eventually(lambda: calls(rt, "error") == 1)  # the 0.5 s timeout
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with user_api(world, api_port):
        assert cold.retry_due() == 1                    # third and last try
        await fetch_all(cold, recorder, 2)
    assert cold.tried[second][0] == cs.MAX_TRIES and cold.retry_due() == 0


async def test_the_api_being_down_never_blocks_ingest(rt, recorder, make_event, world, api_port):
    writer, cold = await setup(rt, world, make_event)
    users = sign_up(world, 20)
    async with user_api(world, api_port, scenarios={"api-slow": {"share": 1.0, "delay_s": 1.0}}):
        task = asyncio.create_task(cold.run())
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        for u in users:           # one account per micro-batch while fetches hang
            await create_accounts(rt, make_event, writer, [u])
        # Waiting on the API would take >= 20 x 0.5 s (the timeout); ingest did not wait
        # (the bound leaves a loaded box its margin below those 10 s).
        assert time.perf_counter() - t0 < 9.0
        await eventually(lambda: calls(rt, "error") >= 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not recorder.on("user_profiles") and len(recorder.writes("user_history")) == len(users)


async def test_first_sight_of_a_user_without_history_queues_one_fetch(rt, make_event, world):
    writer = user_writer(rt)
    cold = cold_start(rt)
    writer.on_new_user = cold.want
    lines = ["2025-01-06T10:00:00,501,GET /data/m/up+2009/0.mpg",
             "2025-01-06T10:00:01,501,GET /data/m/up+2009/1.mpg",
             "2025-01-06T10:00:02,502,recommendation request s1, status 200, result: up+2009, 3 ms"]
    for text in lines * 2:
        record = parse_line(text)
        await writer.apply([(make_event(text.encode(), key=user_key(record.user),
                                        partition=own_partition(rt, record.user)), record)])
    queued = []
    while not cold.queue.empty():
        queued.append(cold.queue.get_nowait())
    assert queued == [501, 502]


# -- pieces ---------------------------------------------------------------------------------

def test_user_json_quirks():
    assert parse_user({"user_id": "21303", "age": "27", "occupation": "null", "gender": "f",
                       "likes": "Up", "dislikes": "null"}) == {
        "user": 21303, "age": 27, "gender": "F", "occupation": "", "likes": "Up", "dislikes": ""}
    assert parse_user({"user_id": 5, "age": "null", "gender": "X"})["age"] == -1
    assert parse_user({"user_id": 5, "age": 300})["age"] == -1
    assert parse_user({"user_id": 5, "gender": None})["gender"] == ""
    assert parse_user({"user_id": 5, "liked_movies": ["Up", "Heat"]})["likes"] == "Up, Heat"
    for bad in ({"id": "7", "message": "user not found"}, {"age": 3}, {"user_id": "x"},
                {"user_id": -1}, [], "null", None):
        assert parse_user(bad) is None
    assert [u["user"] for u in users_from_response(
        [{"user_id": 1}, {"id": "2", "message": "user not found"}, {"user_id": "3"}])] == [1, 3]
    assert users_from_response({"user_id": 9})[0]["user"] == 9


def test_real_user_api_samples_parse():
    lines = sample_path("users.jsonl").read_text().splitlines()[:2000]
    parsed = [parse_user(json.loads(line)) for line in lines]
    assert all(p is not None for p in parsed)
    assert sum(p["age"] > 0 for p in parsed) >= 0.99 * len(parsed)
    assert {p["gender"] for p in parsed} <= {"M", "F", ""}


def test_titles_read_back_from_movie_ids():
    assert slug_title("the+shawshank+redemption+1994") == ("the shawshank redemption", 1994)
    assert slug_title("monsters_+inc.+2001") == ("monsters, inc.", 2001)
    assert slug_title("endeavour+") == ("endeavour", None)


async def test_the_title_index_prefers_metadata_and_rebuilds_only_on_growth(rt, make_event, world):
    cold = cold_start(rt)
    load_items(rt, world, make_event, metadata_share=0.5)
    assert await cold.rebuild_titles()
    cat = world.catalog
    with_meta, without = 0, len(cat) - 1
    assert cold.titles.lookup(cat.titles[with_meta])[0] == cat.ids[with_meta]
    assert cold.titles.keys[cold.titles.ids.index(cat.ids[with_meta])] != ""
    assert not await cold.rebuild_titles()               # nothing new
    for k in range(int(0.03 * len(cat)) + 1):
        rt.items.row(f"new+movie+number+{k}+2020")
    assert await cold.rebuild_titles()
    assert cold.titles.lookup("new movie number 3 (2020)")[0] == "new+movie+number+3+2020"
    assert len(cold.titles) == len(rt.items)
    assert cold.titles.lookup(cat.titles[without]) is not None


def test_history_codec_keeps_old_records_readable_and_round_trips_profiles():
    old = orjson.dumps({"w": {"up+2009": [3, 1.0, 2.0, 3]}, "r": {}, "c": 5.0})
    h = decode_history(old)
    assert h.profiled is None and h.age is None and h.named == [] and h.seen() == {"up+2009"}
    # no profile: the old layout, plus the complete movie set (issue #10) adopted from it
    assert orjson.loads(encode_history(h)) == {**orjson.loads(old), "s": ["up+2009"]}
    h.profiled, h.age, h.gender, h.named = 9.0, 33, "F", ["heat+1995"]
    back = decode_history(encode_history(h))
    assert (back.profiled, back.age, back.gender, back.named) == (9.0, 33, "F", ["heat+1995"])
    assert back.seen() == {"up+2009", "heat+1995"}
    assert decode_history(None) == UserHistory()


async def test_a_profile_on_the_raw_movielog_is_quarantined(rt, recorder, make_event):
    """Only the internal user-profiles topic carries profiles; the platform's topic never does."""
    writer = user_writer(rt)
    forged = UserProfile(time=1.0, user=8, vector=[9.0] * FACTORS, source="foldin").dumps()
    await ingest_of(rt, writer).consume([make_event(forged, key=user_key(8),
                                                 partition=own_partition(rt, 8))], forward=True)
    assert rt.users.get_row(8) < 0 and [v.reason for _, v in recorder.on("quarantine")]
    await deliver(rt, make_event, writer, [(user_key(8), b'{"not": "a profile"}')])
    assert rt.users.get_row(8) < 0 and len(recorder.on("quarantine")) == 2
    assert recorder.on("quarantine")[-1][1].reason == "bad_profile"
    # The re-keyed events topic carries raw lines only: a profile there is a bad line.
    await ingest_of(rt, writer).consume([make_event(forged, key=user_key(8), topic="recstream-events",
                                                 partition=own_partition(rt, 8))], forward=False)
    assert rt.users.get_row(8) < 0 and len(recorder.on("quarantine")) == 3
