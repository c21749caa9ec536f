"""The parser's hot-path shortcuts (#11) give exactly what the plain code gives."""
from __future__ import annotations

import faust
from hypothesis import given, settings, strategies as st

from recstream import parsing
from recstream.parsing import parse_line, parse_time
from recstream.records import AccountCreated, Rating, RecommendationOutcome, WatchMinute

LINES = [
    "2025-01-06T00:00:00.129,56925,GET /data/m/the+shawshank+redemption+1994/12.mpg",
    "2025-01-06T00:00,7,GET /rate/monsters_+inc.+2001=4",
    "2022-10-07T14:21:31,3,GET /create_account",
    "2025-10-17T01:33:45.122692921,9,recommendation request 17-645:8082, status 200, "
    "result: up+2009, +la+mode+1993, 12 ms",
    "2024-02-27T01:50,11,recommendation request x:8082, status 0, result: timeout, 600 ms",
]


def test_records_built_without_descriptors_equal_faust_built_ones():
    for line in LINES:
        fast = parse_line(line)
        plain = type(fast)(**{k: v for k, v in fast.__dict__.items()
                              if not k.startswith("__")})
        assert fast == plain and fast.__dict__ == plain.__dict__
        assert fast.dumps() == plain.dumps()
        assert type(fast).loads(fast.dumps(), serializer="json") == plain


def test_the_records_still_have_nothing_their_init_would_run():
    """The shortcut is only right while Faust's __init__ does nothing but set fields."""
    for cls in (WatchMinute, Rating, AccountCreated, RecommendationOutcome):
        assert issubclass(cls, faust.Record)
        assert not cls._options.validation and not hasattr(cls, "__post_init__")
        assert not cls._options.coerce
        assert all(d.lazy_coercion is False or d._to_python is None
                   for d in cls._options.descriptors.values())


def _slow_time(text: str):
    """parse_time as it was before the minute memo (the oracle)."""
    saved = dict(parsing._minute_memo)
    parsing._minute_memo.clear()
    try:
        return parse_time(text)
    finally:
        parsing._minute_memo.clear()
        parsing._minute_memo.update(saved)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789-T:. x", min_size=14, max_size=31))
def test_memoised_times_match_the_unmemoised_parse(text):
    assert parse_time(text) == _slow_time(text)
    assert parse_time(text) == _slow_time(text)  # second call: from the memo


def test_memo_keeps_bad_minutes_bad_and_stays_bounded(monkeypatch):
    monkeypatch.setattr(parsing, "MEMO_LIMIT", 4)
    assert parse_time("2024-170-14T15:34:12") is None
    assert parse_time("2024-01-14T15:34:12") == parse_time("2024-01-14T15:34") + 12
    assert parse_time("2024-01-14T15:34:60") is None
    for minute in range(10):
        parse_time(f"2024-01-14T15:{minute:02d}:00")
    assert len(parsing._minute_memo) <= 4
    for slug in ("a+1", "b+2", "c+3", "d+4", "e+5", "BAD SLUG"):
        parsing.valid_movie_id(slug)
    assert len(parsing._slug_memo) <= 4 and "BAD SLUG" not in parsing._slug_memo
    assert not parsing.valid_movie_id("BAD SLUG") and parsing.valid_movie_id("a+1")
