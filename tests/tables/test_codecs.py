"""Table value codecs: idempotent user history, bounded size, byte-exact round trips."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tables.broadcast import decode_item_state, encode_item_state
from tables.codecs import (
    MovieStats,
    UserHistory,
    decode_history,
    decode_movie_stats,
    decode_vector,
    decode_vector_generation,
    encode_history,
    encode_movie_stats,
    encode_vector,
    movie_key,
    user_key,
)
from tables.context import partition_for

COMPLETE = 60


def snapshot(h: UserHistory) -> bytes:
    return encode_history(h)


# -- watches --------------------------------------------------------------------------------

def test_watch_lifecycle():
    h = UserHistory()
    assert h.watch("up+2009", 0, 100.0, COMPLETE) == "start"
    assert h.watch("up+2009", 1, 160.0, COMPLETE) == "progress"
    assert h.watch("up+2009", 59, 200.0, COMPLETE) == "progress"
    assert h.watch("up+2009", 60, 260.0, COMPLETE) == "complete"
    assert h.watch("up+2009", 61, 320.0, COMPLETE) == "progress"  # completes only once
    assert h.watches["up+2009"][:3] == [61, 100.0, 320.0]
    # A first minute past the threshold (we joined late) is a completion straight away.
    assert h.watch("alien+1979", 75, 10.0, COMPLETE) == "complete"
    assert h.seen() == {"up+2009", "alien+1979"}


def test_redelivered_and_earlier_minutes_change_nothing():
    h = UserHistory()
    for minute in range(10):
        h.watch("up+2009", minute, 100.0 + minute, COMPLETE)
    before = snapshot(h)
    for _ in range(5):
        for minute in range(10):
            assert h.watch("up+2009", minute, 100.0 + minute, COMPLETE) is None
    assert snapshot(h) == before


def test_checkpoint_every_n_minutes():
    h = UserHistory()
    h.watch("up+2009", 0, 0.0, COMPLETE)
    h.mark_saved()  # the writer saves every watch start
    for minute in range(1, 5):
        h.watch("up+2009", minute, minute, COMPLETE)
        assert not h.needs_checkpoint("up+2009", 5)
    h.watch("up+2009", 5, 5.0, COMPLETE)
    assert h.needs_checkpoint("up+2009", 5)
    h.mark_saved()
    assert not h.needs_checkpoint("up+2009", 5)


# -- ratings --------------------------------------------------------------------------------

def test_rating_new_changed_duplicate_stale():
    h = UserHistory()
    assert h.rate("up+2009", 4, 10.0) == ("new", None)
    for _ in range(5):
        assert h.rate("up+2009", 4, 10.0) == (None, 4)  # redelivered
    assert h.rate("up+2009", 2, 5.0) == (None, 4)  # older than what we hold: stale
    assert h.ratings["up+2009"] == [4, 10.0]
    assert h.rate("up+2009", 5, 20.0) == ("changed", 4)
    assert h.rate("up+2009", 3, 20.0) == ("changed", 5)  # same time, other value: last wins
    assert h.ratings["up+2009"] == [3, 20.0]
    assert h.rating_stats() == (1, 3.0, 0.0)
    h.rate("alien+1979", 5, 1.0)
    count, mean, var = h.rating_stats()
    assert (count, mean, var) == (2, 4.0, 1.0)


def test_ratings_are_idempotent_in_any_redelivery_order():
    events = [("a+1", 3, 1.0), ("b+2", 5, 2.0), ("a+1", 4, 3.0), ("c+3", 1, 4.0)]
    once = UserHistory()
    for e in events:
        once.rate(*e)
    many = UserHistory()
    for e in events * 5 + events[::-1]:
        many.rate(*e)
    assert many.ratings == once.ratings == {"a+1": [4, 3.0], "b+2": [5, 2.0], "c+3": [1, 4.0]}


# -- bounded size ---------------------------------------------------------------------------

def test_trim_keeps_the_most_recent_watches_and_ratings():
    h = UserHistory()
    # Long watch long ago, short watches recently: recency must decide, not the extent.
    h.watch("old+long", 0, 1.0, COMPLETE)
    h.watch("old+long", 100, 2.0, COMPLETE)
    for i in range(4):
        h.watch(f"new+{i}", 0, 100.0 + i, COMPLETE)
    h.mark_saved()
    for i in range(5):
        h.rate(f"r+{i}", 3, 50.0 - i)
    h.trim(3)
    assert set(h.watches) == {"new+1", "new+2", "new+3"}
    assert set(h.ratings) == {"r+0", "r+1", "r+2"}
    h.trim(100)
    assert len(h.watches) == 3


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 200), st.floats(0, 1e6)),
                max_size=80),
       st.integers(1, 20))
def test_trim_bounds_and_keeps_newest(watches, limit):
    h = UserHistory()
    for movie, minute, t in watches:
        h.watch(f"m+{movie}", minute, t, COMPLETE)
    last = {m: e[2] for m, e in h.watches.items()}
    h.trim(limit)
    assert len(h.watches) == min(limit, len(last))
    if h.watches and len(last) > limit:
        kept = sorted(last.values(), reverse=True)[:limit]
        assert sorted((e[2] for e in h.watches.values()), reverse=True) == kept


# -- round trips ----------------------------------------------------------------------------

def test_history_round_trip():
    h = UserHistory(created=12.5)
    h.watch("m*a*s*h+1970", 3, 1.5, COMPLETE)
    h.rate("+la+mode+1993", 5, 2.0)
    back = decode_history(encode_history(h))
    assert back == h
    assert decode_history(None) == UserHistory() == decode_history(b"")


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e6, 1e6, width=32),
       st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=64))
def test_vector_round_trip(bias, values):
    vec = np.array(values, np.float32)
    raw = encode_vector(bias, vec)
    assert len(raw) == 4 * (len(values) + 1)
    back_bias, back = decode_vector(raw)
    assert back_bias == np.float32(bias)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, vec)
    back[0] = 123.0  # a decoded vector is writable and owns its memory
    assert decode_vector(raw)[1][0] == vec[0]


@settings(max_examples=50, deadline=None)
@given(st.floats(-1e6, 1e6, width=32), st.lists(st.floats(-10, 10, width=32), min_size=1,
                                                max_size=64), st.integers(0, 2**32 - 1))
def test_vector_generation_round_trip(bias, values, generation):
    vec = np.array(values, np.float32)
    raw = encode_vector(bias, vec, generation)
    back_bias, back, back_generation = decode_vector_generation(raw)
    assert (back_bias, back_generation) == (np.float32(bias), generation)
    np.testing.assert_array_equal(back, vec)
    assert decode_vector(raw)[0] == np.float32(bias)


def test_generation_zero_keeps_the_bare_layout_older_records_have():
    bare = np.array([1.0, 2.0, 3.0], "<f4").tobytes()
    assert encode_vector(1.0, np.array([2.0, 3.0], np.float32), 0) == bare
    assert decode_vector_generation(bare)[2] == 0


def test_vector_bytes_are_little_endian_float32():
    assert encode_vector(1.0, np.array([2.0], np.float32)) == \
        np.array([1.0, 2.0], "<f4").tobytes()


def test_movie_stats_round_trip_ignores_unknown_fields():
    stats = MovieStats(plays=3, viewers=3, ratings=2, rating_sum=9, rating_sumsq=41,
                       popularity=1.5, popularity_time=10.0, last_time=11.0)
    assert decode_movie_stats(encode_movie_stats(stats)) == stats
    assert stats.mean_rating == 4.5
    assert MovieStats().mean_rating == 0.0
    assert decode_movie_stats(b'{"plays": 2, "from_the_future": 1}') == MovieStats(plays=2)
    assert decode_movie_stats(None) == MovieStats()


@settings(max_examples=100, deadline=None)
@given(st.floats(-10, 10), st.lists(st.floats(-10, 10, width=32), max_size=64),
       st.floats(0, 1e9), st.floats(0, 4e9), st.integers(0, 2**40), st.integers(0, 2**31))
def test_item_broadcast_round_trip(bias, factors, pop, pop_time, plays, generation):
    raw = encode_item_state(bias, np.array(factors, np.float32), pop, pop_time, plays,
                            generation)
    b, f, p, t, n, g = decode_item_state(raw)
    assert (b, p, t, n, g) == (bias, pop, pop_time, plays, generation)  # float64: exact
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, np.array(factors, np.float32))


def test_item_broadcast_rejects_truncated_state():
    with pytest.raises(ValueError):
        decode_item_state(b"\x00" * 8)


# -- keys -----------------------------------------------------------------------------------

def test_keys_are_the_kafka_message_keys():
    assert user_key(42) == b"42"
    assert movie_key("m*a*s*h+1970") == b"m*a*s*h+1970"
    # Java's murmur2 partitioner (aiokafka's DefaultPartitioner): spread and stable.
    parts = [partition_for(user_key(u), 8) for u in range(1000)]
    assert set(parts) == set(range(8))
    assert parts == [partition_for(user_key(u), 8) for u in range(1000)]
    from aiokafka.partitioner import DefaultPartitioner
    for u in range(50):
        key = user_key(u)
        assert partition_for(key, 8) == DefaultPartitioner()(key, list(range(8)), list(range(8)))
