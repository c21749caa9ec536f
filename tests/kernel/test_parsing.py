"""movielog parsing (SPEC §2.1): every input is a record or a reject with a known reason."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest
from hypothesis import example, given, settings, strategies as st

from recstream.parsing import REASONS, parse_line, parse_raw, parse_time, valid_movie_id
from recstream.records import (
    AccountCreated,
    Rating,
    RecommendationOutcome,
    Rejected,
    WatchMinute,
)

EVENTS = (WatchMinute, Rating, AccountCreated, RecommendationOutcome)


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def check_total(result) -> None:
    """The parser's contract for one input: one event, or a reject with a known reason."""
    assert isinstance(result, EVENTS + (Rejected,)), type(result)
    if isinstance(result, Rejected):
        assert result.reason in REASONS
        assert isinstance(result.line, str)


# -- the real sample ------------------------------------------------------------------------

# Every malformed line of the sample (SOURCES.md "Malformed lines kept in the file"), and the
# one reason each must get.  Uppercase letters injected into slugs are malformed too.
KNOWN_BAD = {
    "2024-10-14T15:30:42,447681,GET /rate/riot+in+Ccell+block+11+1954=3": "bad_movie_id",
    "2024-170-14T15:34:12,49623,GET /rate/rude+awakening+1989=2": "bad_time",
    "2024-10-14T15 :42:39,172236,GET /rate/robots+2005=3": "bad_time",
    "2024-10-14T16:08:08,512901,GET /rate/the+princess+diaYries+2001=2": "bad_movie_id",
    "2024-10-14T16G:55:12,484541,GET /rate/el+dorado+1988=4": "bad_time",
    "2022-10-28T 04:23:23,531789,GET /data/m/the+shawshank+redemption+1994/85.mpg": "bad_time",
    "2022-10-28T04:23:23,-25611,GET /data/m/the+shawshank+redemption+1994/100.mpg":
        "bad_user_id",
    "2022-1k0-28T04:23:23,90586,GET /data/m/the+lord+of+the+rings+the+fellowship+of+the+ring"
    "+2001/155.mpg": "bad_time",
    "2022-10-28T04:23:24,5521777,GET /data/m/the+shawshank+redemption+1994/69.mpg":
        "user_id_out_of_range",
    "2022-10-28T04:23:24,24f162,GET /data/m/the+shawshank+redemption+1994/2.mpg": "bad_user_id",
}


def test_every_real_sample_line_is_handled(sample_lines):
    kinds: Counter = Counter()
    rejected = {}
    for line in sample_lines:
        result = parse_line(line)
        check_total(result)
        if isinstance(result, Rejected):
            rejected[line] = result.reason
        else:
            kinds[type(result).__name__] += 1
    # Exactly the known malformed lines are rejected, each for its own reason.
    assert rejected == KNOWN_BAD
    # The profile in SOURCES.md (36,777 watch, 20,485 rate, 372 recommendation lines in all).
    assert kinds["WatchMinute"] == 36_777 - 5
    assert kinds["Rating"] == 20_485 - 5
    assert kinds["RecommendationOutcome"] == 372


def test_real_recommendation_lines(sample_lines):
    outcomes = [r for r in map(parse_line, sample_lines) if isinstance(r, RecommendationOutcome)]
    by_status = Counter(o.status for o in outcomes)
    assert by_status == {400: 370, 200: 2}
    for o in outcomes:
        assert 5 <= o.latency_ms <= 141
        if o.status == 200:
            assert len(o.movies) == 20 and o.error == ""
            assert all(valid_movie_id(m) for m in o.movies)
        else:
            assert o.movies == [] and o.error.startswith('movie ["')


def test_odd_but_real_slugs_are_valid():
    for slug in ("the+shawshank+redemption+1994", "monsters_+inc.+2001", "m*a*s*h+1970",
                 "harry+potter+and+the+half-blood+prince+2009", "+la+mode+1993",
                 "10th++wolf+2006", "endeavour+", "la+moiti%C3%A9+gauche+du+frigo+2000"):
        assert valid_movie_id(slug), slug
        line = f"2022-10-07T14:21:31,7,GET /data/m/{slug}/3.mpg"
        assert parse_line(line) == WatchMinute(time=utc(2022, 10, 7, 14, 21, 31), user=7,
                                               movie=slug, minute=3)
    for slug in ("", "Upper+1999", "a b", "x/y", "a,b", "é+2001", "a" * 201, "%zz"):
        assert not valid_movie_id(slug), slug


# -- timestamps ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("2022-10-07T14:21:31", utc(2022, 10, 7, 14, 21, 31)),
    ("2022-10-07T14:21:02.071", utc(2022, 10, 7, 14, 21, 2) + 0.071),
    ("2023-03-20T08:12:38.176557", utc(2023, 3, 20, 8, 12, 38) + 0.176557),
    ("2025-10-17T01:33:45.122692921", utc(2025, 10, 17, 1, 33, 45) + 0.122692921),
    ("2024-02-27T01:50", utc(2024, 2, 27, 1, 50)),
    ("2024-02-29T23:59:59", utc(2024, 2, 29, 23, 59, 59)),
    ("1970-01-01T00:00", 0.0),
])
def test_time_formats(text, expected):
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", [
    "2024-170-14T15:34:12", "2024-10-14T15 :42:39", "2024-10-14T16G:55:12",
    "2022-10-28T 04:23:23", "2022-1k0-28T04:23:23", "2023-02-29T00:00:00", "2022-13-01T00:00",
    "2022-10-07T24:00:00", "2022-10-07T12:60", "2022-10-07T12:00:60", "2022-10-07T12:00:5",
    "2022-10-07T12:00:05.", "2022-10-07T12:00:05.1234567890", "2022-10-07 12:00:05",
    "2022-10-07T12:00:05Z", "2022-10-07T12", "1700000000", "", "١٢٣٤-10-07T12:00",
])
def test_bad_times(text):
    assert parse_time(text) is None
    assert parse_line(f"{text},1,GET /create_account").reason == "bad_time"


# -- each request kind --------------------------------------------------------------------

def test_request_kinds():
    t = utc(2022, 10, 7, 14, 21, 31)
    assert parse_line("2022-10-07T14:21:31,21303,GET /data/m/m*a*s*h+1970/0.mpg\n") == \
        WatchMinute(time=t, user=21303, movie="m*a*s*h+1970", minute=0)
    assert parse_line("2022-10-07T14:21:31,0,GET /rate/up+2009=5\r\n") == \
        Rating(time=t, user=0, movie="up+2009", rating=5)
    assert parse_line("2022-10-07T14:21:31,9,GET /create_account") == AccountCreated(time=t,
                                                                                     user=9)


@pytest.mark.parametrize("line, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("2022-10-07T14:21:31,9", "too_few_fields"),
    ("2022-10-07T14:21:31,,GET /create_account", "bad_user_id"),
    ("2022-10-07T14:21:31,1000001,GET /create_account", "user_id_out_of_range"),
    ("2022-10-07T14:21:31,1234567890123,GET /create_account", "bad_user_id"),
    ("2022-10-07T14:21:31,９,GET /create_account", "bad_user_id"),
    ("2022-10-07T14:21:31,1,GET /data/m/up+2009/3", "bad_minute"),
    ("2022-10-07T14:21:31,1,GET /data/m/up+2009/-3.mpg", "bad_minute"),
    ("2022-10-07T14:21:31,1,GET /data/m/up+2009/1441.mpg", "bad_minute"),
    ("2022-10-07T14:21:31,1,GET /data/m/up+2009/x.mpg", "bad_minute"),
    ("2022-10-07T14:21:31,1,GET /data/m/Up+2009/3.mpg", "bad_movie_id"),
    ("2022-10-07T14:21:31,1,GET /data/m//3.mpg", "bad_movie_id"),
    ("2022-10-07T14:21:31,1,GET /rate/up+2009", "bad_movie_id"),
    ("2022-10-07T14:21:31,1,GET /rate/=4", "bad_movie_id"),
    ("2022-10-07T14:21:31,1,GET /rate/up+2009=", "bad_rating"),
    ("2022-10-07T14:21:31,1,GET /rate/up+2009=4.5", "bad_rating"),
    ("2022-10-07T14:21:31,1,GET /rate/up+2009=9999999", "bad_rating"),
    ("2022-10-07T14:21:31,1,GET /rate/up+2009=0", "rating_out_of_scale"),
    ("2022-10-07T14:21:31,1,GET /rate/up+2009=6", "rating_out_of_scale"),
    ("2022-10-07T14:21:31,1,GET /rate/up+2009=-2", "rating_out_of_scale"),
    ("2022-10-07T14:21:31,1,GET /create_account/x", "unknown_request"),
    ("2022-10-07T14:21:31,1,POST /rate/up+2009=4", "unknown_request"),
    ("2022-10-07T14:21:31,1,recommendation request x:8082 status 200", "bad_recommendation_line"),
    ("2022-10-07T14:21:31,1,recommendation request , status 200, result: a, 5 ms",
     "bad_recommendation_line"),
    ("2022-10-07T14:21:31,1,recommendation request x:8082, status OK, result: a, 5 ms",
     "bad_recommendation_line"),
    ("1700000000,user123,GET /rate/50=4", "bad_time"),  # the synthetic lines SOURCES.md drops
    ("x" * 70_000, "too_long"),
])
def test_rejects(line, reason):
    result = parse_line(line)
    assert isinstance(result, Rejected)
    assert result.reason == reason
    assert result.line == line.rstrip("\r\n")[:65_536]


def test_rating_scale_is_a_setting():
    line = "2022-10-07T14:21:31,1,GET /rate/up+2009=8"
    assert parse_line(line).reason == "rating_out_of_scale"
    assert parse_line(line, rating_min=1, rating_max=10).rating == 8
    assert parse_line(line.replace("=8", "=11"), rating_min=1,
                      rating_max=10).reason == "rating_out_of_scale"
    assert parse_line(line.replace("=8", "=0"), rating_min=0, rating_max=10).rating == 0
    big_user = line.replace(",1,", ",2000000,").replace("=8", "=3")
    assert parse_line(big_user).reason == "user_id_out_of_range"
    assert parse_line(big_user, max_user_id=5_000_000).user == 2_000_000
    watch = "2022-10-07T14:21:31,1,GET /data/m/up+2009/2000.mpg"
    assert parse_line(watch).reason == "bad_minute"
    assert parse_line(watch, max_minute=3000).minute == 2000


# -- recommendation lines -----------------------------------------------------------------

def test_recommendation_ok():
    ids = [f"movie+{i}+1999" for i in range(20)]
    line = ("2022-10-07T14:21:02.071,613693,recommendation request 17645-team05.isri.cmu.edu:8082"
            ", status 200, result: " + ", ".join(ids) + ", 55 ms")
    out = parse_line(line)
    assert isinstance(out, RecommendationOutcome)
    assert (out.user, out.status, out.movies, out.error, out.latency_ms) == (613693, 200, ids, "",
                                                                             55)
    assert out.server == "17645-team05.isri.cmu.edu:8082"
    assert out.time == pytest.approx(utc(2022, 10, 7, 14, 21, 2) + 0.071)


def test_recommendation_error_with_unbalanced_brackets():
    line = ('2022-10-07T14:21:02.071,1,recommendation request fall2022-comp585-3.cs.mcgill.ca:8082'
            ', status 400, result: movie ["winter+in+wartime+2008" not found, 26 ms')
    out = parse_line(line)
    assert (out.status, out.movies, out.latency_ms) == (400, [], 26)
    assert out.error == 'movie ["winter+in+wartime+2008" not found'


def test_recommendation_without_latency_and_with_garbage_ids():
    out = parse_line("2022-10-07T14:21:02,1,recommendation request h:8082, status 200, "
                     "result: a+1999, b+2000")
    assert (out.movies, out.latency_ms, out.error) == (["a+1999", "b+2000"], -1, "")
    out = parse_line("2022-10-07T14:21:02,1,recommendation request h:8082, status 504, "
                     "result: timeout, 600 ms")
    assert (out.status, out.movies, out.error, out.latency_ms) == (504, [], "timeout", 600)
    # A 200 whose result is not all ids keeps the valid ids and the raw text as the error.
    out = parse_line("2022-10-07T14:21:02,1,recommendation request h:8082, status 200, "
                     "result: a+1999, <html>Oops, 7 ms")
    assert out.movies == ["a+1999"] and out.error == "a+1999, <html>Oops" and out.latency_ms == 7


@pytest.mark.parametrize("line", [
    # Huge numbers must not reach int() (Python refuses > 4300 digits with ValueError).
    "2022-10-07T14:21:02,1,recommendation request h:8082, status " + "2" * 5000 +
    ", result: a, 5 ms",
    "2022-10-07T14:21:02,1,recommendation request h:8082, status 200, result: a, " +
    "9" * 5000 + " ms",
])
def test_recommendation_huge_numbers_never_raise(line):
    check_total(parse_line(line))


# -- properties ---------------------------------------------------------------------------

PIECES = st.sampled_from([
    "2022-10-07T14:21:31", "2024-02-27T01:50", "2025-10-17T01:33:45.122692921", "2024-170-14",
    ",", ",,", "1", "-1", "99999999999999999999", "GET /data/m/", "GET /rate/", "=",
    "GET /create_account", "recommendation request ", ", status ", ", result: ", " ms", ".mpg",
    "/", "up+2009", "Up", "%C3%A9", "\x00", "\r\n", "١٢", "T", ":", ".", " ", "9" * 4400,
])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.lists(PIECES, max_size=14).map("".join)))
@example("2022-10-07T14:21:31,1,GET /rate/up+2009=" + "9" * 5000)
@example("2022-10-07T14:21:31," + "9" * 5000 + ",GET /create_account")
def test_any_text_is_an_event_or_a_reasoned_reject(text):
    check_total(parse_line(text))
    check_total(parse_line(text, rating_min=1, rating_max=10))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
@example(b"\xff\xfe2022-10-07T14:21:31,1,GET /create_account")
def test_any_bytes_are_an_event_or_a_reasoned_reject(raw):
    result = parse_raw(raw)
    check_total(result)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert result.reason == "not_utf8"


SLUG = st.from_regex(r"[a-z0-9+_.*'&!\-:]{1,40}", fullmatch=True)
TIMES = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1))


def format_time(dt: datetime, digits: int, with_seconds: bool) -> str:
    text = dt.strftime("%Y-%m-%dT%H:%M")
    if with_seconds:
        text += dt.strftime(":%S")
        if digits:
            text += "." + f"{dt.microsecond:06d}{0:03d}"[:digits]
    return text


@settings(max_examples=300, deadline=None)
@given(TIMES, st.sampled_from([0, 3, 6, 9]), st.booleans(),
       st.integers(0, 1_000_000), SLUG, st.integers(0, 1_440), st.integers(1, 5))
def test_well_formed_lines_parse_to_their_fields(dt, digits, with_seconds, user, slug, minute,
                                                 rating):
    text = format_time(dt, digits, with_seconds)
    expected = dt.replace(tzinfo=timezone.utc)
    if not with_seconds:
        expected = expected.replace(second=0, microsecond=0)
    else:
        keep = 10 ** (6 - min(digits, 6))
        expected = expected.replace(microsecond=dt.microsecond // keep * keep)
    when = expected.timestamp()
    assert parse_time(text) == pytest.approx(when, abs=1e-6)
    watch = parse_line(f"{text},{user},GET /data/m/{slug}/{minute}.mpg")
    assert isinstance(watch, WatchMinute)
    assert (watch.user, watch.movie, watch.minute) == (user, slug, minute)
    assert watch.time == pytest.approx(when, abs=1e-6)
    rate = parse_line(f"{text},{user},GET /rate/{slug}={rating}")
    assert isinstance(rate, Rating)
    assert (rate.user, rate.movie, rate.rating) == (user, slug, rating)
