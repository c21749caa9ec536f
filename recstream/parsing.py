"""Parse ``movielog`` lines (SPEC §2.1) into records, or reject them with a reason.

``parse_line`` never raises: any input yields exactly one of the four event
records or a :class:`~recstream.records.Rejected` whose ``reason`` is one of
:data:`REASONS`.  It is on the ingest hot path, so it splits strings instead
of running one big regular expression, and validates every field it keeps.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Any, Union

from recstream.records import (
    AccountCreated,
    Rating,
    RecommendationOutcome,
    Rejected,
    WatchMinute,
)

Event = Union[WatchMinute, Rating, AccountCreated, RecommendationOutcome]
Parsed = Union[Event, Rejected]

REASONS = (
    "not_utf8",
    "empty",
    "too_long",
    "too_few_fields",
    "bad_time",
    "bad_user_id",
    "user_id_out_of_range",
    "bad_movie_id",
    "bad_minute",
    "bad_rating",
    "rating_out_of_scale",
    "bad_recommendation_line",
    "unknown_request",
)

MAX_LINE = 65_536
MAX_SLUG = 200
_WATCH = "GET /data/m/"
_RATE = "GET /rate/"
_CREATE = "GET /create_account"
_RECO = "recommendation request "
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Lower-case slug characters seen in the platform's ids, plus %XX escapes.
_SLUG = re.compile(r"(?:[a-z0-9+_.*'&!\-:]|%[0-9A-Fa-f]{2})+")


# Hot-path memos (#11), bounded: cleared when full, so any input stays O(1) memory.
# Stream times share their minute (``YYYY-MM-DDTHH:MM``) with their neighbours, and
# a catalogue has ~27k slugs: the date arithmetic and the slug regex run once each.
MEMO_LIMIT = 1 << 16
_minute_memo: dict[str, float | None] = {}
_slug_memo: set[str] = set()


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_time(text: str) -> float | None:
    """``YYYY-MM-DDTHH:MM[:SS[.fffffffff]]`` (zone-less, read as UTC) → epoch seconds."""
    n = len(text)
    if n < 16 or n > 29:
        return None
    head = text[:16]
    base = _minute_memo.get(head, -1.0)
    if base == -1.0:
        base = _parse_minute(head)
        if len(_minute_memo) >= MEMO_LIMIT:
            _minute_memo.clear()
        _minute_memo[head] = base
    if base is None:
        return None
    if n == 16:
        return base
    if text[16] != ":" or n < 19 or not _digits(text[17:19]):
        return None
    seconds = int(text[17:19])
    if n > 19:
        frac = text[20:]
        if text[19] != "." or not frac or not _digits(frac):
            return None
        seconds += int(frac) / 10 ** len(frac)
    if seconds >= 60:
        return None
    return base + seconds


def _parse_minute(text: str) -> float | None:
    """``YYYY-MM-DDTHH:MM`` → epoch seconds of that minute (None when it is not one)."""
    if text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":":
        return None
    year, month, day, hour, minute = text[0:4], text[5:7], text[8:10], text[11:13], text[14:16]
    if not (_digits(year) and _digits(month) and _digits(day) and _digits(hour) and _digits(minute)):
        return None
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        return None
    y = int(year)
    if not 1970 <= y <= 2200:
        return None
    try:
        days = date(y, int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    return float(days * 86400 + h * 3600 + m * 60)


def valid_movie_id(slug: str) -> bool:
    if slug in _slug_memo:
        return True
    if 0 < len(slug) <= MAX_SLUG and _SLUG.fullmatch(slug) is not None:
        if len(_slug_memo) >= MEMO_LIMIT:
            _slug_memo.clear()
        _slug_memo.add(slug)
        return True
    return False


def _record(cls: type, fields: dict) -> Any:
    """``cls(**fields)`` for our flat event records, without Faust's per-field descriptors.

    What Faust's generated ``__init__`` leaves behind for these records (no coercion,
    validation or ``__post_init__``): the field values and an empty
    ``__evaluated_fields__`` in the instance dict (tests/kernel/test_parsing_fast.py
    checks equality, serialisation and that the options stay so).
    """
    record = cls.__new__(cls)
    fields["__evaluated_fields__"] = set()
    record.__dict__.update(fields)
    return record


def parse_raw(raw: bytes | str, *, rating_min: int = 1, rating_max: int = 5,
              max_user_id: int = 1_000_000, max_minute: int = 1_440) -> Parsed:
    """Like :func:`parse_line` but accepts the raw Kafka value."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return Rejected(reason="not_utf8", line=bytes(raw).decode("utf-8", "replace"))
    return parse_line(raw, rating_min=rating_min, rating_max=rating_max,
                      max_user_id=max_user_id, max_minute=max_minute)


def parse_line(line: str, *, rating_min: int = 1, rating_max: int = 5,
               max_user_id: int = 1_000_000, max_minute: int = 1_440) -> Parsed:
    """One movielog line → one event record, or a ``Rejected`` with a reason."""
    if not isinstance(line, str):
        return Rejected(reason="not_utf8", line=repr(line)[:MAX_LINE])
    line = line.rstrip("\r\n")
    if len(line) > MAX_LINE:
        return Rejected(reason="too_long", line=line[:MAX_LINE])
    if not line.strip():
        return Rejected(reason="empty", line=line)
    parts = line.split(",", 2)
    if len(parts) < 3:
        return Rejected(reason="too_few_fields", line=line)
    time_text, user_text, request = parts
    time = parse_time(time_text)
    if time is None:
        return Rejected(reason="bad_time", line=line)
    if not _digits(user_text) or len(user_text) > 12:
        return Rejected(reason="bad_user_id", line=line)
    user = int(user_text)
    if user > max_user_id:
        return Rejected(reason="user_id_out_of_range", line=line)

    if request.startswith(_WATCH):
        body = request[len(_WATCH):]
        if not body.endswith(".mpg"):
            return Rejected(reason="bad_minute", line=line)
        movie, _, minute_text = body[:-4].rpartition("/")
        if not valid_movie_id(movie):
            return Rejected(reason="bad_movie_id", line=line)
        if not _digits(minute_text) or len(minute_text) > 6 or int(minute_text) > max_minute:
            return Rejected(reason="bad_minute", line=line)
        return _record(WatchMinute, {"time": time, "user": user, "movie": movie,
                                      "minute": int(minute_text)})

    if request.startswith(_RATE):
        movie, sep, rating_text = request[len(_RATE):].rpartition("=")
        if not sep or not valid_movie_id(movie):
            return Rejected(reason="bad_movie_id", line=line)
        negative = rating_text.startswith("-")
        if not _digits(rating_text[negative:]) or len(rating_text) > 6:
            return Rejected(reason="bad_rating", line=line)
        rating = int(rating_text)
        if not rating_min <= rating <= rating_max:
            return Rejected(reason="rating_out_of_scale", line=line)
        return _record(Rating, {"time": time, "user": user, "movie": movie, "rating": rating})

    if request == _CREATE:
        return _record(AccountCreated, {"time": time, "user": user})

    if request.startswith(_RECO):
        return _parse_recommendation(line, time, user, request[len(_RECO):])

    return Rejected(reason="unknown_request", line=line)


def _parse_recommendation(line: str, time: float, user: int, body: str) -> Parsed:
    server, sep, rest = body.partition(", status ")
    if not sep or not server.strip():
        return Rejected(reason="bad_recommendation_line", line=line)
    code_text, sep, result = rest.partition(", result: ")
    if not sep or not _digits(code_text.strip()) or len(code_text.strip()) > 6:
        return Rejected(reason="bad_recommendation_line", line=line)
    status = int(code_text.strip())
    latency_ms = -1
    head, sep, tail = result.rpartition(", ")
    tail = tail.strip()
    if sep and tail.endswith("ms") and _digits(tail[:-2].strip()) and len(tail) <= 14:
        latency_ms = int(tail[:-2].strip())
        result = head
    movies: list[str] = []
    error = ""
    if status == 200:
        movies = [m.strip() for m in result.split(",") if m.strip()]
        if not all(valid_movie_id(m) for m in movies):
            error = result
            movies = [m for m in movies if valid_movie_id(m)]
    else:
        error = result
    return _record(RecommendationOutcome, {"time": time, "user": user, "server": server.strip(),
                                           "status": status, "movies": movies, "error": error,
                                           "latency_ms": latency_ms})
