"""The ingest agents and the two table writers, on the real app with Kafka replaced.

``app``/``rt``/``recorder``/``make_event`` (tests/conftest.py): the app is built by
``create_app``; its topic sends and table changelog writes are recorded instead of produced.
Tables are the real RocksDB stores in the test's tmp dir.  The ``ingest_*`` agents run in
Faust's ``agent.test_context()``; the writers are also driven directly with real events.
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agents.user_writer import CHECKPOINT_MINUTES, UserWriter
from models.online import init_vector, item_step, predict
from recstream.parsing import parse_line
from recstream.records import MovieUpdate, RecommendationOutcome, Rejected
from tables.broadcast import decode_item_state
from tables.codecs import decode_history, decode_movie_stats, decode_vector, user_key
from tables.context import partition_for
from tests.wiring import ingest as ingest_of, movie_writer, user_writer

T0 = "2024-10-14T15:30:"


def line(user: int, request: str, second: int = 0) -> str:
    return f"{T0}{second:02d},{user},{request}"


def sample(rt, name: str, **labels: str) -> float:
    return rt.metrics.registry.get_sample_value(name, labels) or 0.0


def own_partition(rt, user: int) -> int:
    return partition_for(user_key(user), rt.settings.partitions)


async def apply_lines(rt, make_event, writer: UserWriter, *lines: str) -> None:
    """One micro-batch of parsed lines, delivered in each user's own partition."""
    batch = []
    for text in lines:
        record = parse_line(text)
        assert not isinstance(record, Rejected), record
        event = make_event(text.encode(), key=user_key(record.user),
                           partition=own_partition(rt, record.user))
        batch.append((event, record))
    await writer.apply(batch)


def history_of(rt, user: int):
    return decode_history(rt.tables.user_history.get(user_key(user)))


def updates(recorder) -> list[MovieUpdate]:
    """MovieUpdates sent so far: one per movie per user-writer batch."""
    return [value for _, value in recorder.on("movie_updates")]


def summary(update: MovieUpdate) -> tuple:
    """(movie, plays, ratings, weights of the item steps)."""
    return (update.movie, update.plays, [list(r) for r in update.ratings],
            [step[1] for step in update.steps])


def step_vector(step: list) -> np.ndarray:
    """The user vector *before* its step, carried for the item half: [error, weight, *vec]."""
    return np.array(step[2:], np.float32)


# -- UserWriter ---------------------------------------------------------------------------

async def test_a_rating_delivered_five_times_changes_state_once(rt, recorder, make_event):
    writer = user_writer(rt)
    rate = line(42, "GET /rate/up+2009=4")
    await apply_lines(rt, make_event, writer, *[rate] * 5)  # five in one batch
    for _ in range(5):  # and five redeliveries later
        await apply_lines(rt, make_event, writer, rate)
    assert history_of(rt, 42).ratings == {"up+2009": [4, pytest.approx(1728919842.0)]}
    assert len(recorder.writes("user_history", b"42")) == 1
    assert len(recorder.writes("user_vectors", b"42")) == 1
    assert [summary(u) for u in updates(recorder)] == [("up+2009", 0, [[4, None]], [1.0])]
    assert sample(rt, "recstream_events_total", kind="Rating") == 10
    assert sample(rt, "recstream_duplicate_events_total", kind="Rating") == 9
    assert sample(rt, "recstream_model_updates_total", side="user") == 1


async def test_a_minute_delivered_five_times_is_one_play(rt, recorder, make_event):
    writer = user_writer(rt)
    watch = line(7, "GET /data/m/up+2009/0.mpg")
    for _ in range(5):
        await apply_lines(rt, make_event, writer, watch)
    assert [summary(u) for u in updates(recorder)] == [("up+2009", 1, [], [])]
    assert len(recorder.writes("user_history", b"7")) == 1
    assert recorder.writes("user_vectors") == []  # a watch start is not a model step
    assert sample(rt, "recstream_duplicate_events_total", kind="WatchMinute") == 4
    assert history_of(rt, 7).watches["up+2009"][0] == 0
    assert rt.users.get_row(7) in rt.users.dirty  # the user's answer must be recomputed


async def test_a_rating_sends_the_pre_update_user_vector(rt, recorder, make_event):
    s = rt.settings
    writer = user_writer(rt)
    before = init_vector(("u", 42), s.n_factors, scale=s.init_scale, seed=s.seed)
    mean = rt.current_model.global_mean
    await apply_lines(rt, make_event, writer, line(42, "GET /rate/up+2009=5"))
    (update,) = updates(recorder)
    assert summary(update) == ("up+2009", 0, [[5, None]], [1.0])
    np.testing.assert_array_equal(step_vector(update.steps[0]), before)
    item_bias, item_vec = rt.items.vector("up+2009")
    mean += (5 - mean) / 11  # the running mean takes the rating first (n + 10 smoothing)
    expected_error = 5 - predict(before, 0.0, item_vec, item_bias, mean)
    assert update.steps[0][0] == pytest.approx(expected_error, rel=1e-5)
    bias, after = decode_vector(rt.tables.user_vectors.get(b"42"))
    assert not np.array_equal(after, before) and bias > 0  # moved towards a high rating
    np.testing.assert_array_equal(rt.users.factors[rt.users.get_row(42)], after)

    # A changed rating: the next update carries the vector after the first step.
    await apply_lines(rt, make_event, writer, line(42, "GET /rate/up+2009=2", second=9))
    second = updates(recorder)[1]
    assert summary(second) == ("up+2009", 0, [[2, 5]], [1.0])  # a re-rating names the old one
    np.testing.assert_array_equal(step_vector(second.steps[0]), after)
    assert second.steps[0][0] < 0


async def test_watch_progress_is_checkpointed_every_five_minutes(rt, recorder, make_event):
    writer = user_writer(rt)
    for minute in range(13):  # one minute per micro-batch, as a live stream delivers them
        await apply_lines(rt, make_event, writer,
                          line(9, f"GET /data/m/up+2009/{minute}.mpg", second=minute))
    written = [decode_history(raw).watches["up+2009"][0]
               for raw in recorder.writes("user_history", b"9")]
    assert written == [0, CHECKPOINT_MINUTES, 2 * CHECKPOINT_MINUTES]
    # The in-memory history is always current; the table lags by < CHECKPOINT_MINUTES.
    assert rt.user_store.peek(9).watches["up+2009"][0] == 12


async def test_a_whole_watch_in_one_batch_is_written_once(rt, recorder, make_event):
    writer = user_writer(rt)
    await apply_lines(rt, make_event, writer,
                      *[line(9, f"GET /data/m/up+2009/{m}.mpg") for m in range(30)])
    assert len(recorder.writes("user_history", b"9")) == 1
    assert history_of(rt, 9).watches["up+2009"][0] == 29


async def test_a_completed_watch_is_an_implicit_rating_unless_rated(rt, recorder, make_event):
    writer = user_writer(rt)
    done = rt.settings.watch_complete_minutes
    await apply_lines(rt, make_event, writer,
                      line(5, "GET /data/m/up+2009/0.mpg"),
                      line(5, f"GET /data/m/up+2009/{done}.mpg"),
                      line(5, "GET /rate/alien+1979=3"),
                      line(5, "GET /data/m/alien+1979/0.mpg"),
                      line(5, f"GET /data/m/alien+1979/{done + 1}.mpg"))
    implicit = rt.settings.implicit_weight
    assert sorted(summary(u) for u in updates(recorder)) == [
        ("alien+1979", 1, [[3, None]], [1.0]),  # rated first: its completion is no extra step
        ("up+2009", 1, [], [implicit]),  # completed, never rated: one implicit step
    ]


async def test_accounts_and_outcomes(rt, recorder, make_event):
    writer = user_writer(rt)
    create = line(11, "GET /create_account")
    await apply_lines(rt, make_event, writer, create, create)
    await apply_lines(rt, make_event, writer, create)
    assert history_of(rt, 11).created == pytest.approx(1728919800.0)
    assert len(recorder.writes("user_history", b"11")) == 1
    assert sample(rt, "recstream_duplicate_events_total", kind="AccountCreated") == 2
    assert rt.users.get_row(11) >= 0  # a new account is a known (cold) user

    await apply_lines(
        rt, make_event, writer,
        line(11, "recommendation request h:8082, status 200, result: a+1999, b+2000, 55 ms"),
        line(11, 'recommendation request h:8082, status 400, result: movie ["x+2008" not found'
                 ", 26 ms"),
        line(11, "recommendation request h:8082, status 504, result: timeout"))
    assert sample(rt, "recstream_platform_outcomes_total", status="200") == 1
    assert sample(rt, "recstream_platform_outcomes_total", status="400") == 1
    assert sample(rt, "recstream_platform_outcomes_total", status="504") == 1
    assert sample(rt, "recstream_platform_latency_seconds_count") == 2  # 504 had no latency
    assert sample(rt, "recstream_platform_latency_seconds_sum") == pytest.approx(0.081)
    assert len(recorder.writes("user_history", b"11")) == 1  # outcomes are not user state


async def test_writer_state_survives_a_cache_flush(rt, recorder, make_event):
    """After a rebalance the writer re-reads the table: redeliveries are still duplicates."""
    writer = user_writer(rt)
    rate = line(3, "GET /rate/up+2009=4")
    await apply_lines(rt, make_event, writer, rate, line(3, "GET /data/m/up+2009/0.mpg"))
    rt.user_store.forget_cache()
    await apply_lines(rt, make_event, writer, rate, line(3, "GET /data/m/up+2009/0.mpg"))
    assert [summary(u) for u in updates(recorder)] == [("up+2009", 1, [[4, None]], [1.0])]
    assert sample(rt, "recstream_duplicate_events_total", kind="Rating") == 1
    assert sample(rt, "recstream_duplicate_events_total", kind="WatchMinute") == 1


# -- MovieWriter --------------------------------------------------------------------------

def movie_event(make_event, update: MovieUpdate):
    return make_event(update, key=update.movie.encode(), topic="recstream-movie-updates")


async def test_movie_writer_counts_plays_and_ratings(rt, recorder, make_event):
    played = []
    writer = movie_writer(rt, on_play=played.append)
    m = "up+2009"
    batch = [MovieUpdate(movie=m, time=100.0, plays=2, ratings=[], steps=[]),
             MovieUpdate(movie=m, time=110.0, plays=1, ratings=[[4, None], [2, None]], steps=[]),
             MovieUpdate(movie=m, time=140.0, plays=0, ratings=[[5, 4], [3, 5]], steps=[])]
    await writer.apply([movie_event(make_event, u) for u in batch])
    stats = decode_movie_stats(rt.tables.movie_stats.get(m.encode()))
    assert (stats.plays, stats.viewers, stats.ratings) == (3, 3, 2)
    assert (stats.rating_sum, stats.rating_sumsq) == (3 + 2, 9 + 4)
    assert stats.mean_rating == 2.5
    assert stats.last_time == 140.0 and stats.popularity > 3.0
    assert played and set(played) == {m}
    assert len(recorder.writes("movie_stats", m.encode())) == 1  # once per batch
    assert recorder.writes("item_factors") == []  # no user vectors: no item step

    # Continues from the table after the cache is dropped (rebalance).
    writer.forget()
    await writer.apply([movie_event(make_event, MovieUpdate(movie=m, time=150.0, plays=1,
                                                            ratings=[], steps=[]))])
    assert decode_movie_stats(rt.tables.movie_stats.get(m.encode())).plays == 4


async def test_movie_writer_applies_the_item_step(rt, recorder, make_event):
    s = rt.settings
    writer = movie_writer(rt)
    m = "alien+1979"
    user_vec = np.linspace(-0.1, 0.1, s.n_factors).astype(np.float32)
    update = MovieUpdate(movie=m, time=1.0, plays=0, ratings=[[5, None]],
                         steps=[[1.25, 1.0, *user_vec.tolist()]])
    await writer.apply([movie_event(make_event, update)])
    bias0, vec0 = rt.items.vector(m)
    clip = s.max_step * (s.rating_max - s.rating_min)
    want_vec, want_bias = item_step(vec0, bias0, user_vec, 1.25, lr=s.learning_rate,
                                    reg=s.regularization, clip=clip)
    bias, vec = decode_vector(rt.tables.item_factors.get(m.encode()))
    np.testing.assert_allclose(vec, want_vec, rtol=1e-6)
    assert bias == pytest.approx(want_bias)
    assert sample(rt, "recstream_model_updates_total", side="item") == 1

    # A vector of the wrong size (another model's) is ignored, not a crash.
    bad = MovieUpdate(movie=m, time=2.0, plays=0, ratings=[], steps=[[1.0, 1.0, 1.0, 2.0]])
    await writer.apply([movie_event(make_event, bad)])
    assert decode_vector(rt.tables.item_factors.get(m.encode()))[0] == pytest.approx(want_bias)
    assert sample(rt, "recstream_model_updates_total", side="item") == 1

    # The broadcast carries the owner's state to every worker.
    assert await writer.broadcast() == 1
    ((key, raw),) = recorder.on("item_broadcast")
    b, factors, pop, pop_time, plays, generation = decode_item_state(raw)
    assert generation == rt.current_model.generation == 0
    assert key == m.encode() and b == pytest.approx(want_bias) and plays == 0
    np.testing.assert_allclose(factors, want_vec, rtol=1e-6)
    assert await writer.broadcast() == 0  # nothing changed since


async def test_movie_writer_skips_values_that_are_not_updates(rt, recorder, make_event):
    writer = movie_writer(rt)
    await writer.apply([make_event(b"junk", key=b"x", topic="recstream-movie-updates")])
    assert recorder.changelog == []


# -- Ingest -------------------------------------------------------------------------------

async def test_ingest_quarantines_forwards_and_applies(rt, recorder, make_event):
    ingest = ingest_of(rt, user_writer(rt))
    user = 42
    mine = own_partition(rt, user)
    other = (mine + 1) % rt.settings.partitions
    good = line(user, "GET /rate/up+2009=4").encode()
    elsewhere = line(user, "GET /rate/alien+1979=3").encode()
    bad = b"2024-170-14T15:34:12,49623,GET /rate/rude+awakening+1989=2"
    events = [make_event(good, partition=mine, offset=10),
              make_event(elsewhere, partition=other, offset=20),
              make_event(bad, partition=other, offset=21),
              make_event(b"\xff\xfe", partition=mine, offset=11),
              make_event(None, partition=mine, offset=12)]
    await ingest.consume(events, forward=True)

    rejected = [value for _, value in recorder.on("quarantine")]
    assert [(r.reason, r.topic, r.partition, r.offset) for r in rejected] == [
        ("bad_time", "movielog", other, 21), ("not_utf8", "movielog", mine, 11),
        ("empty", "movielog", mine, 12)]
    assert rejected[0].line == bad.decode()
    assert sample(rt, "recstream_rejects_total", reason="bad_time") == 1
    assert sample(rt, "recstream_rejects_total", reason="not_utf8") == 1
    assert sample(rt, "recstream_lines_total", outcome="rejected") == 3
    assert sample(rt, "recstream_lines_total", outcome="valid") == 2

    # The line in the wrong partition is forwarded verbatim, keyed by its user ...
    assert recorder.on("events") == [(b"42", elsewhere)]
    assert sample(rt, "recstream_rekeyed_total") == 1
    # ... and only the local one was applied here.
    assert set(history_of(rt, user).ratings) == {"up+2009"}


async def test_ingest_rekeys_everything_when_not_co_partitioned(rt, recorder, make_event,
                                                               monkeypatch):
    monkeypatch.setattr(rt.app.consumer, "topic_partitions", lambda topic: 2)  # movielog ≠ 4
    ingest = ingest_of(rt, user_writer(rt))
    text = line(42, "GET /rate/up+2009=4").encode()
    await ingest.consume([make_event(text, partition=own_partition(rt, 42))], forward=True)
    assert recorder.on("events") == [(b"42", text)]
    assert rt.tables.user_history.get(b"42") is None


async def test_a_worker_that_is_not_the_group_leader_applies_in_place(rt, recorder, make_event,
                                                                      monkeypatch):
    """#12: Faust's ``topic_partitions`` reads aiokafka's group-coordinator snapshot, which
    only the group's leader fills; on the other workers it is None.  The partition count
    then comes from the client's cluster metadata (as a follower's consumer holds it), and
    a line already in its user's partition is applied here, not re-keyed."""
    import types
    monkeypatch.setattr(rt.app.consumer, "topic_partitions", lambda topic: None)  # a follower
    cluster = types.SimpleNamespace(partitions_for_topic=lambda topic: set(range(4)))
    client = types.SimpleNamespace(cluster=cluster)
    monkeypatch.setattr(rt.app.consumer, "_thread",
                        types.SimpleNamespace(_consumer=types.SimpleNamespace(_client=client)),
                        raising=False)
    ingest = ingest_of(rt, user_writer(rt))
    text = line(42, "GET /rate/up+2009=4").encode()
    await ingest.consume([make_event(text, partition=own_partition(rt, 42))], forward=True)
    assert recorder.on("events") == []
    assert set(history_of(rt, 42).ratings) == {"up+2009"}


async def test_ingest_of_rekeyed_events_applies_in_place(rt, recorder, make_event):
    ingest = ingest_of(rt, user_writer(rt))
    text = line(42, "GET /rate/up+2009=4").encode()
    await ingest.consume([make_event(text, topic="recstream-events",
                                     partition=own_partition(rt, 42))], forward=False)
    assert recorder.on("events") == [] and recorder.on("quarantine") == []
    assert set(history_of(rt, 42).ratings) == {"up+2009"}
    assert sample(rt, "recstream_lines_total", outcome="valid") == 0  # counted once, upstream


@pytest.mark.slow  # real data or a full report: more than a few seconds
async def test_every_real_sample_line_is_ingested_or_quarantined(rt, recorder, make_event,
                                                                sample_lines):
    """The real sample in its users' partitions: bad lines quarantined, the rest applied,
    and a full redelivery of it changes nothing."""
    ingest = ingest_of(rt, user_writer(rt))
    lines = sample_lines[:12_000] + sample_lines[-40:]  # CMU ratings, the McGill tail

    async def deliver(texts: list[str]) -> None:
        events = []
        for text in texts:
            parts = text.split(",", 2)
            key = parts[1].encode() if parts[1].isdigit() else None
            partition = partition_for(key, rt.settings.partitions) if key else 0
            events.append(make_event(text.encode(), key=key, partition=partition))
        for start in range(0, len(events), 1000):
            await ingest.consume(events[start:start + 1000], forward=True)

    await deliver(lines)
    rejected = [(value.reason, value.line) for _, value in recorder.on("quarantine")]
    expected = [(r.reason, r.line) for r in map(parse_line, lines) if isinstance(r, Rejected)]
    assert rejected == expected and len(expected) == 8  # 3 CMU 2024 + 5 McGill team 5
    assert sample(rt, "recstream_rejects_total", reason="bad_time") == 4
    assert sample(rt, "recstream_rejects_total", reason="user_id_out_of_range") == 1
    assert recorder.on("events") == []  # every valid line was already in its partition
    kinds = ("WatchMinute", "Rating", "RecommendationOutcome", "AccountCreated")
    applied = sum(sample(rt, "recstream_events_total", kind=k) for k in kinds)
    assert applied == len(lines) - len(expected)

    # Redeliver everything (a consumer restarting from old offsets): no state changes.
    ratings = sample(rt, "recstream_events_total", kind="Rating")
    assert ratings > 10_000
    writes, sent = len(recorder.changelog), len(recorder.on("movie_updates"))
    before = sum(sample(rt, "recstream_duplicate_events_total", kind=k) for k in kinds)
    await deliver(lines)
    assert len(recorder.changelog) == writes and len(recorder.on("movie_updates")) == sent
    after = sum(sample(rt, "recstream_duplicate_events_total", kind=k) for k in kinds)
    outcomes = sum(isinstance(parse_line(t), RecommendationOutcome) for t in lines)
    assert after - before == applied - outcomes  # outcomes are observations, not state


# -- the registered agents, in Faust's test context ---------------------------------------

async def eventually(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_ingest_agent_in_test_context(app, rt, recorder):
    agent = app.agents["ingest_movielog"]
    user = 42
    mine = own_partition(rt, user)
    other = (mine + 1) % rt.settings.partitions
    good = line(user, "GET /rate/up+2009=4").encode()
    async with agent.test_context() as test_agent:
        for _ in range(5):  # redelivered
            await test_agent.put(good, key=b"42", partition=mine)
        await test_agent.put(b"2022-10-28T04:23:24,24f162,GET /data/m/x+1/2.mpg", key=None,
                             partition=other)
        await test_agent.put(line(7, "GET /create_account").encode(), key=b"7",
                             partition=(own_partition(rt, 7) + 1) % rt.settings.partitions)
        await eventually(lambda: sample(rt, "recstream_events_total", kind="Rating") == 5)
    assert set(history_of(rt, user).ratings) == {"up+2009"}
    assert len(recorder.writes("user_history", b"42")) == 1
    assert sample(rt, "recstream_duplicate_events_total", kind="Rating") == 4
    ((_, rejected),) = recorder.on("quarantine")
    assert (rejected.reason, rejected.topic, rejected.partition, rejected.offset) == (
        "bad_user_id", "movielog", other, 5)
    assert recorder.on("events") == [(b"7", line(7, "GET /create_account").encode())]


async def test_rekeyed_agent_and_movie_agent_in_test_context(app, rt, recorder):
    async with app.agents["ingest_rekeyed"].test_context() as test_agent:
        await test_agent.put(line(8, "GET /data/m/up+2009/0.mpg").encode(), key=b"8",
                             partition=own_partition(rt, 8))
        await eventually(lambda: recorder.on("movie_updates"))
    ((key, update),) = recorder.on("movie_updates")
    assert key == b"up+2009" and summary(update) == ("up+2009", 1, [], [])

    async with app.agents["apply_movie_updates"].test_context() as test_agent:
        for _ in range(2):  # the update and its redelivery count one play
            await test_agent.put(update, key=key, partition=1)
        await eventually(lambda: sample(rt, "recstream_duplicate_events_total",
                                        kind="MovieUpdate") == 1)
    assert decode_movie_stats(rt.tables.movie_stats.get(key)).plays == 1


async def test_reads_use_the_users_own_partition_inside_a_batch(rt, recorder, make_event):
    """Inside a stream the current event is the batch's last one, maybe of another partition.

    Faust's RocksDB store reads only the current event's partition; a read of user A
    while the current event is user B's (another partition) must still find A's state.
    """
    from tables.context import as_event

    a, b = 3, next(u for u in range(4, 100) if own_partition(rt, u) != own_partition(rt, 3))
    writer = user_writer(rt)
    await apply_lines(rt, make_event, writer, line(a, "GET /rate/up+2009=4"))
    rt.user_store.forget_cache()
    other = make_event(b"x", key=user_key(b), partition=own_partition(rt, b))
    with as_event(other):  # what take_events leaves as the current event
        await apply_lines(rt, make_event, writer, line(a, "GET /rate/heat+1995=5", second=5))
    assert sorted(history_of(rt, a).ratings) == ["heat+1995", "up+2009"]


async def test_ingest_batches_are_pipelined_and_acked_only_once_written(rt, make_event):
    """#11: batch 2 is staged while batch 1 waits for its movie-update acks; each batch's
    events are acked (offsets committable) only after its users' state is written."""
    from functools import partial
    from types import SimpleNamespace

    from agents.ingest import run_batches

    acks = []
    produce = rt.producer.produce
    loop = asyncio.get_running_loop()

    async def held_produce(topic, key, value):
        await produce(topic, key, value)
        if topic is not rt.topics.movie_updates:
            return None
        acks.append(loop.create_future())
        return acks[-1]

    rt.producer.produce = held_produce
    ingest = ingest_of(rt, user_writer(rt))
    mine = own_partition(rt, 3)
    batches = [[make_event(line(3, "GET /data/m/up+2009/0.mpg").encode(), key=b"3",
                           partition=mine)],
               [make_event(line(3, "GET /rate/alien+1979=4", 1).encode(), key=b"3",
                           partition=mine)]]
    seen = []

    async def take_events(n, within):
        for batch in batches:
            yield batch
            seen.append(len(acks))  # the next batch is asked for: its acks still pending

    task = asyncio.ensure_future(run_batches(
        SimpleNamespace(take_events=take_events), partial(ingest.stage, forward=True), ingest,
        batch_size=10, within_s=0.01))
    await asyncio.sleep(0.05)
    # batch 2 was asked for and staged (its update sent) before batch 1 was written
    assert seen == [1] and len(acks) == 2 and not task.done()
    assert rt.tables.user_history.get(b"3") is None
    assert not any(e.message.acked for batch in batches for e in batch)
    acks[0].set_result(None)
    await asyncio.sleep(0.02)
    assert batches[0][0].message.acked and not batches[1][0].message.acked
    assert set(history_of(rt, 3).items) == {"up+2009"}  # batch 1's snapshot only
    acks[1].set_result(None)
    await asyncio.wait_for(task, 5)
    assert batches[1][0].message.acked
    assert set(history_of(rt, 3).items) == {"up+2009", "alien+1979"}


async def test_peek_reads_the_users_own_partition_like_faust(rt, recorder, make_event):
    """The serving/monitor read of a user not in the cache: the same answer as Faust's."""
    writer = user_writer(rt)
    rated = list(range(1, 60, 2))
    await apply_lines(rt, make_event, writer, *[line(u, "GET /rate/up+2009=4") for u in rated])
    rt.user_store.forget_cache()
    store, table = rt.user_store, rt.tables.user_history
    assert getattr(table.data, "_dbs", None), "the test needs the RocksDB store"
    for user in range(1, 60):
        peeked, raw = store.peek(user), table.get(user_key(user))
        assert (peeked is not None) == bool(raw) == (user in rated), user
        if raw:
            assert sorted(peeked.ratings) == sorted(decode_history(raw).ratings) == ["up+2009"]
