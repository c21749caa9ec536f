"""Explicit schemas for the objects that cross our edges (SPEC §2.2, §3).

The user and movie APIs send JSON with known quirks — numbers as strings
(``"budget":"10000000"``), booleans as ``"True"``/``"False"``, missing values
as ``"null"``, ``""`` or ``[]``, fields that come and go.  A quirk in
*representation* is normalised silently; a value that is missing where we
need it, of the wrong type or out of range is a **violation** ``(field,
reason)``, counted and quarantined by the caller.  An object is **rejected**
(``None``) only when it cannot be keyed (no valid id) or is not an object.
Validation never raises, whatever JSON value it gets (fuzz-tested).

Our own answers are checked too: :func:`check_answer` before a line leaves,
:func:`compare_outcome` when the platform's outcome line for it comes back.

Stdlib only: the kernel's parsing layer, importable anywhere.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Container, Mapping, Sequence

Violation = tuple[str, str]
Result = tuple[dict | None, list[Violation]]

MISSING_MARKERS = frozenset({"", "null", "none", "nan", "n/a"})
MAX_TEXT = 20_000          # longer free text is cut
MAX_ITEMS = 200            # list fields (genres, keywords) beyond this are cut (and reported)
MAX_USER_ID = 10_000_000
MAX_SAFE_INT = 2 ** 53     # exact as a float, and as a number in any JSON reader
_SLUG = re.compile(r"[^\s,/?#]{1,200}")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_IMDB = re.compile(r"tt\d{1,10}")
GENDERS = frozenset({"M", "F"})
MOVIE_STATUS = frozenset({"Released", "Rumored", "Post Production", "In Production", "Planned",
                          "Canceled"})
COST_FIELDS = ("licence_cost", "license_cost", "cost_per_play", "price")
USER_TEXT_FIELDS = ("likes", "dislikes")


class _Bad(Exception):
    """One field's value is unusable; ``reason`` is a stable name for counting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Partial(_Bad):
    """A usable value with something dropped from it."""

    def __init__(self, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.value = value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in MISSING_MARKERS) \
        or (isinstance(value, (list, dict)) and not value)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _Bad("wrong_type")
    if isinstance(value, (int, float)):
        number = float(value) if not isinstance(value, int) or abs(value) < 2 ** 63 else math.inf
    elif isinstance(value, str) and len(value) <= 40:
        try:
            number = float(value.strip())
        except ValueError:
            raise _Bad("not_a_number") from None
    else:
        raise _Bad("wrong_type")
    if not math.isfinite(number):
        raise _Bad("not_finite")
    return number


def integer(lo: float = 0, hi: float = MAX_SAFE_INT) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = _number(value)
        if not number.is_integer():
            raise _Bad("not_an_integer")
        if not lo <= number <= hi:
            raise _Bad("out_of_range")
        return int(number)
    return parse


def real(lo: float = 0.0, hi: float = math.inf) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        number = _number(value)
        if not lo <= number <= hi:
            raise _Bad("out_of_range")
        return number
    return parse


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise _Bad("not_a_boolean")


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad("wrong_type")
    return value[:MAX_TEXT]


def one_of(allowed: frozenset[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad("wrong_type")
        if value.strip() not in allowed:
            raise _Bad("unknown_value")
        return value.strip()
    return parse


def pattern(regex: re.Pattern) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or regex.fullmatch(value.strip()) is None:
            raise _Bad("bad_format")
        return value.strip()
    return parse


def date(value: Any) -> str:
    match = _DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _Bad("bad_format")
    y, m, d = (int(g) for g in match.groups())
    if not (1870 <= y <= 2100 and 1 <= m <= 12 and 1 <= d <= 31):
        raise _Bad("out_of_range")
    return value.strip()


def genres(value: Any) -> list[dict]:
    """``[{id, name}]``; bad items are dropped (and reported once)."""
    if not isinstance(value, list):
        raise _Bad("wrong_type")
    out = []
    for item in value[:MAX_ITEMS]:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
            gid = item.get("id")
            ok = isinstance(gid, int) and not isinstance(gid, bool)
            out.append({"id": gid if ok else None, "name": item["name"].strip()[:100]})
    if len(out) != len(value):
        raise _Bad("bad_items") if not out else _Partial(out, "bad_items")
    return out


def names(value: Any) -> list[str]:
    """Keywords: a list of strings or of ``{name}`` objects."""
    if not isinstance(value, list):
        raise _Bad("wrong_type")
    out = [v if isinstance(v, str) else v.get("name") for v in value[:MAX_ITEMS]
           if isinstance(v, str) or isinstance(v, dict)]
    out = [v[:100] for v in out if isinstance(v, str)]
    if len(out) != len(value):
        raise _Partial(out, "bad_items")
    return out


# field -> (parser, required).  Required and missing → violation "missing"; optional → None.
USER_SCHEMA: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "user_id": (integer(0, MAX_USER_ID), True),
    "age": (integer(0, 120), True),
    "gender": (one_of(GENDERS), True),
    "occupation": (text, True),
}
MOVIE_SCHEMA: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "id": (pattern(_SLUG), True),
    "tmdb_id": (integer(0, 10 ** 9), False),
    "imdb_id": (pattern(_IMDB), False),
    "title": (text, True),
    "original_title": (text, False),
    "adult": (flag, True),
    "genres": (genres, True),
    "release_date": (date, True),
    "runtime": (integer(1, 2000), True),
    "popularity": (real(0.0), False),
    "vote_average": (real(0.0, 10.0), False),
    "vote_count": (integer(0), False),
    "budget": (integer(0), False),
    "revenue": (integer(0), False),
    "original_language": (pattern(re.compile(r"[a-z]{2,3}")), False),
    "status": (one_of(MOVIE_STATUS), False),
    "overview": (text, False),
    "tagline": (text, False),
    "certification": (text, False),
    "keywords": (names, False),
}
KEYS = {"user": "user_id", "movie": "id"}


def _validate(raw: Any, schema: Mapping[str, tuple[Callable, bool]], key: str) -> Result:
    if not isinstance(raw, dict):
        return None, [("$", "not_an_object")]
    out: dict[str, Any] = {}
    violations: list[Violation] = []
    for field, (parse, required) in schema.items():
        value = raw.get(field)
        if _missing(value):
            out[field] = None
            if required:
                violations.append((field, "missing"))
            continue
        try:
            out[field] = parse(value)
        except _Partial as partial:
            out[field] = partial.value
            violations.append((field, partial.reason))
        except _Bad as bad:
            out[field] = None
            violations.append((field, bad.reason))
        except (RecursionError, MemoryError):  # pathological values: unusable, not a crash
            out[field] = None
            violations.append((field, "unparseable"))
    if out[key] is None:
        return None, violations
    return out, violations


def validate_user(raw: Any, *, text_fields: Sequence[str] = USER_TEXT_FIELDS) -> Result:
    """``(user | None, violations)``; ``text_fields`` are the self-description answers."""
    user, violations = _validate(raw, USER_SCHEMA, KEYS["user"])
    if user is not None:
        for field in text_fields:
            value = raw.get(field)
            user[field] = None
            if not _missing(value):
                if isinstance(value, str):
                    user[field] = value[:MAX_TEXT]
                else:
                    violations.append((field, "wrong_type"))
    return user, violations


def validate_movie(raw: Any) -> Result:
    """``(movie | None, violations)``; adds ``year`` and ``licence_cost`` (first cost field set)."""
    movie, violations = _validate(raw, MOVIE_SCHEMA, KEYS["movie"])
    if movie is not None:
        movie["year"] = int(movie["release_date"][:4]) if movie["release_date"] else None
        movie["licence_cost"] = None
        for field in COST_FIELDS:
            if field in raw and not _missing(raw[field]):
                try:
                    movie["licence_cost"] = real(0.0, 1e6)(raw[field])
                    break
                except _Bad as bad:
                    violations.append((field, bad.reason))
    return movie, violations


def check_answer(line: Any, known: Container[str] | None = None, *, max_items: int = 20
                 ) -> list[Violation]:
    """What is wrong with a ``/recommend`` answer before it leaves (``[]``: nothing)."""
    if not isinstance(line, str):
        return [("answer", "not_text")]
    if "\n" in line or "\r" in line:
        return [("answer", "not_one_line")]
    ids = [token.strip() for token in line.split(",")]
    if not line.strip() or not any(ids):
        return [("answer", "empty")]
    problems: list[Violation] = []
    if any(not token for token in ids):
        problems.append(("answer", "blank_id"))
    ids = [token for token in ids if token]
    if len(ids) > max_items:
        problems.append(("answer", "too_many_ids"))
    if len(set(ids)) != len(ids):
        problems.append(("answer", "duplicate_id"))
    if known is not None and any(token not in known for token in ids):
        problems.append(("answer", "unknown_id"))
    return problems


def compare_outcome(sent: Sequence[str], status: int, movies: Sequence[str], error: str = ""
                    ) -> list[Violation]:
    """The platform's outcome line for an answer we sent, against what we sent.

    ``status``/``movies``/``error`` are the fields of a parsed outcome line
    (``RecommendationOutcome``).  Reasons: ``non_200`` (with the platform's
    error text kept by the caller), ``lost_ids``, ``extra_ids``, ``reordered``.
    """
    if status != 200:
        return [("status", "non_200")]
    problems: list[Violation] = []
    sent_list = [s.strip() for s in sent]
    got = list(movies)
    if set(sent_list) - set(got):
        problems.append(("result", "lost_ids"))
    if set(got) - set(sent_list):
        problems.append(("result", "extra_ids"))
    if not problems and got != sent_list:
        problems.append(("result", "reordered"))
    return problems
