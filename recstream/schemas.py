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

import re
from typing import Any, Callable, Container, Mapping, Sequence

from recstream.schema_fields import (MAX_TEXT, BadValue, PartialValue, date, flag, genres,
                                     integer, is_missing, names, one_of, pattern, real, text)

Violation = tuple[str, str]
Result = tuple[dict | None, list[Violation]]

MAX_USER_ID = 10_000_000
_SLUG = re.compile(r"[^\s,/?#]{1,200}")
_IMDB = re.compile(r"tt\d{1,10}")
GENDERS = frozenset({"M", "F"})
MOVIE_STATUS = frozenset({"Released", "Rumored", "Post Production", "In Production", "Planned",
                          "Canceled"})
COST_FIELDS = ("licence_cost", "license_cost", "cost_per_play", "price")
USER_TEXT_FIELDS = ("likes", "dislikes")


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
        if is_missing(value):
            out[field] = None
            if required:
                violations.append((field, "missing"))
            continue
        try:
            out[field] = parse(value)
        except PartialValue as partial:
            out[field] = partial.value
            violations.append((field, partial.reason))
        except BadValue as bad:
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
            if not is_missing(value):
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
            if field in raw and not is_missing(raw[field]):
                try:
                    movie["licence_cost"] = real(0.0, 1e6)(raw[field])
                    break
                except BadValue as bad:
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
