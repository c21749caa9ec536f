"""Movie counters are exact: each play and rating counted once, whatever is re-sent (#12)."""
from __future__ import annotations

import asyncio

from recstream.parsing import parse_line
from recstream.records import MovieUpdate
from tables.codecs import decode_history, decode_movie_stats
from tests.agents.test_writers import apply_lines, line, own_partition, sample, updates
from tests.wiring import movie_writer, user_writer

MOVIE = "up+2009"


def stats_of(rt):
    return decode_movie_stats(rt.tables.movie_stats.get(MOVIE.encode()))


def movie_event(make_event, update: MovieUpdate):
    return make_event(update, key=MOVIE.encode(), topic="recstream-movie-updates")


def split(update: MovieUpdate, plays: slice, ratings: slice) -> MovieUpdate:
    """Part of ``update``'s entries, with their marks: how a replay may re-batch them."""
    return MovieUpdate(movie=update.movie, time=update.time,
                       plays=len(update.play_marks[plays]), play_marks=update.play_marks[plays],
                       ratings=update.ratings[ratings], rating_marks=update.rating_marks[ratings],
                       steps=[])


async def test_redelivered_and_rebatched_updates_count_each_play_and_rating_once(
        rt, recorder, make_event):
    users = range(1, 7)
    await apply_lines(rt, make_event, user_writer(rt),
                      *[line(u, f"GET /data/m/{MOVIE}/0.mpg") for u in users],
                      *[line(u, f"GET /rate/{MOVIE}={1 + u % 5}", 1) for u in users])
    (update,) = updates(recorder)
    assert update.plays == len(update.play_marks) == 6 and len(update.rating_marks) == 6
    writer = movie_writer(rt)
    want = (6, 6, sum(1 + u % 5 for u in users))

    await writer.apply([movie_event(make_event, update)])
    assert (stats_of(rt).plays, stats_of(rt).ratings, stats_of(rt).rating_sum) == want

    # The same message redelivered (the movie owner crashed before committing), twice.
    await writer.apply([movie_event(make_event, update), movie_event(make_event, update)])
    assert (stats_of(rt).plays, stats_of(rt).ratings, stats_of(rt).rating_sum) == want
    assert sample(rt, "recstream_duplicate_events_total", kind="MovieUpdate") == 24

    # A replay after a user-writer crash re-sends the same events batched differently,
    # and a rebalance makes the writer re-read its state from the table.
    writer.forget()
    await writer.apply([movie_event(make_event, split(update, slice(0, 2), slice(0, 4))),
                        movie_event(make_event, split(update, slice(2, 6), slice(4, 6)))])
    assert (stats_of(rt).plays, stats_of(rt).ratings, stats_of(rt).rating_sum) == want

    # New events after the replayed ones still count.
    await apply_lines(rt, make_event, user_writer(rt), line(9, f"GET /rate/{MOVIE}=5", 2))
    newer = updates(recorder)[-1]
    await writer.apply([movie_event(make_event, newer), movie_event(make_event, newer)])
    assert (stats_of(rt).ratings, stats_of(rt).rating_sum) == (7, want[2] + 5)


async def test_the_movie_update_is_acknowledged_before_the_users_state_is_written(
        rt, recorder, make_event):
    """A crash between the two writes must not lose a play: the update goes out first,
    and the user's state is written only once the broker acknowledged it."""
    order = []
    produce = rt.producer.produce
    loop = asyncio.get_running_loop()

    async def acked_produce(topic, key, value):
        await produce(topic, key, value)
        if topic is not rt.topics.movie_updates:
            return None
        order.append("movie_update sent")
        ack = loop.create_future()

        def acknowledge():
            order.append("movie_update acknowledged")
            ack.set_result(None)

        loop.call_later(0.05, acknowledge)  # the broker answers a little later
        return ack

    rt.producer.produce = acked_produce
    store = rt.user_store
    put_history = store.put_history

    async def recorded_put(user, raw, event):
        order.append(f"user {user} written")
        await put_history(user, raw, event)

    store.put_history = recorded_put
    await apply_lines(rt, make_event, user_writer(rt), line(3, f"GET /data/m/{MOVIE}/0.mpg"))
    assert order == ["movie_update sent", "movie_update acknowledged", "user 3 written"]


async def test_a_batch_is_written_as_sealed_while_the_next_one_is_staged(rt, make_event):
    """#11 pipelining: batch 2 is staged while batch 1 waits for its acks; what batch 1
    writes is its own snapshot (never batch 2's events, whose updates are not acked yet),
    and batch 2 is written only after its own acks and after batch 1."""
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
    writer = user_writer(rt)

    def batch(*texts):
        return [(make_event(t.encode(), key=b"3", partition=own_partition(rt, 3)), parse_line(t))
                for t in texts]

    def stored():
        raw = rt.tables.user_history.get(b"3")
        return None if raw is None else sorted(decode_history(raw).items)

    await writer.stage(batch(line(3, f"GET /data/m/{MOVIE}/0.mpg")))
    first = writer.seal()
    await writer.stage(batch(line(3, "GET /rate/alien+1979=4", 1)))
    second = writer.seal()
    await asyncio.sleep(0.01)
    assert stored() is None and not first.done() and not second.done()
    acks[1].set_result(None)  # the later batch's ack first: still nothing may be written
    await asyncio.sleep(0.01)
    assert stored() is None and not second.done()
    acks[0].set_result(None)
    await first
    await second
    assert stored() == sorted(["alien+1979", MOVIE])


async def test_the_first_batch_alone_is_written_when_only_its_ack_arrived(rt, make_event):
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
    writer = user_writer(rt)
    event = make_event(b"x", key=b"3", partition=own_partition(rt, 3))
    await writer.stage([(event, parse_line(line(3, f"GET /data/m/{MOVIE}/0.mpg")))])
    first = writer.seal()
    await writer.stage([(event, parse_line(line(3, "GET /rate/alien+1979=4", 1)))])
    second = writer.seal()
    acks[0].set_result(None)
    await first
    assert decode_history(rt.tables.user_history.get(b"3")).items == [MOVIE]
    assert not second.done()
    acks[1].set_result(None)
    await second
    assert decode_history(rt.tables.user_history.get(b"3")).items == [MOVIE, "alien+1979"]
