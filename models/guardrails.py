"""Age-appropriateness of movies and audiences, failing closed.

The course movie objects carry no ``certification`` (every real record has
``"adult": "False"``), so a rule that only reads certification lets everything
through.  The policy here (docs/safety.md) decides on the fields that exist:

1. ``adult`` true → shown to nobody.
2. Unknown metadata — no object, an ``adult`` flag that is missing or not a
   boolean, no genres — → not shown to minors or to users of unknown age;
   for adults such a movie is not *confirmed* either (it may not exist), so it
   is not shown at all.
3. A recognised ``certification`` is authoritative for minors (a human rating
   beats a heuristic): R, NC-17, 18, TV-MA ... block; G, PG, PG-13 ... pass.
4. Without one: a blocked genre (Horror by default) or an explicit-content
   term in the title, tagline, overview or keywords blocks.

Users: ``audience(age)`` is ``minor`` below 18, ``adult`` for a plausible age,
``unknown`` otherwise — and unknown is treated like a minor.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

MINOR_AGE = 18
MAX_AGE = 120
RESTRICTED_CERTS = frozenset({"R", "NC-17", "X", "18", "18+", "R18", "R-18", "TV-MA", "NC17",
                              "M18", "R21"})
PERMISSIVE_CERTS = frozenset({"G", "PG", "PG-13", "U", "TV-Y", "TV-Y7", "TV-G", "TV-PG", "TV-14",
                              "0", "6", "7", "10", "12", "12A", "13", "PG13"})
BLOCKED_GENRES = ("Horror",)
STRICT_GENRES = ("Horror", "Thriller", "Crime", "War")  # a stricter option, for comparison
EXPLICIT_TERMS = re.compile(
    r"\b(sex|sexual|sexually|erotic|erotica|porn\w*|nude|nudity|rape[ds]?|raping|"
    r"prostitut\w*|stripper|orgy|incest|brothel|gore|slasher|cannibal\w*|"
    r"torture[ds]?|serial killer|drug addict\w*|heroin)\b", re.IGNORECASE)
TEXT_FIELDS = ("title", "tagline", "overview")

MINOR, ADULT, UNKNOWN = "minor", "adult", "unknown"


def _flag(value: Any) -> bool | None:
    """``True``/``False`` from a bool or the API's ``"True"``/``"False"``; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"true", "1", "yes"}:
            return True
        if text in {"false", "0", "no"}:
            return False
    return None


def _genre_names(meta: Mapping) -> list[str] | None:
    genres = meta.get("genres")
    if not isinstance(genres, list):
        return None
    names = []
    for g in genres:
        name = g.get("name") if isinstance(g, Mapping) else g
        if isinstance(name, str) and name.strip():
            names.append(name.strip())
    return names


def _text(meta: Mapping) -> str:
    parts = [meta.get(f) for f in TEXT_FIELDS]
    keywords = meta.get("keywords")
    if isinstance(keywords, list):
        parts += [k.get("name") if isinstance(k, Mapping) else k for k in keywords]
    return " ".join(p for p in parts if isinstance(p, str))


def block_reason(meta: Any, *, blocked_genres: Sequence[str] = BLOCKED_GENRES) -> str | None:
    """Why a movie is not for minors (``None``: it is).  Reasons are stable names."""
    if not isinstance(meta, Mapping):
        return "unknown"
    adult = _flag(meta.get("adult"))
    if adult is None:
        return "unknown"
    if adult:
        return "adult"
    cert = meta.get("certification")
    if isinstance(cert, str) and cert.strip():
        code = cert.strip().upper()
        if code in RESTRICTED_CERTS:
            return "certification"
        if code in PERMISSIVE_CERTS:
            return None
    names = _genre_names(meta)
    if not names:
        return "unknown"
    if set(names) & set(blocked_genres):
        return "genre"
    if EXPLICIT_TERMS.search(_text(meta)):
        return "explicit_terms"
    return None


def safe_for_all(meta: Any) -> bool:
    """May be shown to a confirmed adult: known metadata and not flagged ``adult``."""
    return isinstance(meta, Mapping) and _flag(meta.get("adult")) is False


def safe_for_minors(meta: Any, *, blocked_genres: Sequence[str] = BLOCKED_GENRES) -> bool:
    """May be shown to a minor or to a user of unknown age."""
    return block_reason(meta, blocked_genres=blocked_genres) is None


def flags(metas: Iterable[Any], *, blocked_genres: Sequence[str] = BLOCKED_GENRES
          ) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised: ``(safe_for_all, safe_for_minors)`` bool arrays, one entry per meta."""
    metas = list(metas)
    everyone = np.fromiter((safe_for_all(m) for m in metas), bool, len(metas))
    minors = np.fromiter((safe_for_minors(m, blocked_genres=blocked_genres) for m in metas),
                         bool, len(metas))
    return everyone, minors & everyone


def audience(age: Any) -> str:
    """``minor`` / ``adult`` / ``unknown`` (missing, non-integer or implausible age)."""
    if isinstance(age, bool):
        return UNKNOWN
    if isinstance(age, str):
        age = age.strip()
        if not age.isdigit():
            return UNKNOWN
        age = int(age)
    if isinstance(age, float):
        if age != age or not age.is_integer():
            return UNKNOWN
        age = int(age)
    if not isinstance(age, (int, np.integer)) or age < 0 or age > MAX_AGE:
        return UNKNOWN
    return MINOR if age < MINOR_AGE else ADULT


def needs_minor_filter(ages: np.ndarray) -> np.ndarray:
    """Vectorised over int ages (−1 or any out-of-range value = unknown): True → minor rules."""
    ages = np.asarray(ages)
    return (ages < MINOR_AGE) | (ages > MAX_AGE)


def allowed(audience_name: str, safe_all: np.ndarray, safe_minors: np.ndarray) -> np.ndarray:
    """The item mask for one audience; anything but ``adult`` gets the minors' mask."""
    return np.asarray(safe_all if audience_name == ADULT else safe_minors, bool)
