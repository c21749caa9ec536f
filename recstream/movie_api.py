"""Normalising the platform's movie JSON (SPEC §2.2), quirks included.

Numbers arrive as strings, booleans as ``"True"``/``"False"``, missing values
as the string ``"null"``, ``""`` or ``[]``; fields go missing.  ``normalise``
returns a small dict with typed fields and never raises on a bad field.
"""
from __future__ import annotations

from typing import Any

from models import guardrails

NOT_FOR_MINORS = {"R", "NC-17", "X", "18", "18+"}
COST_FIELDS = ("licence_cost", "license_cost", "cost_per_play", "price")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in {"", "null",
                                                                                  "none", "nan"})


def as_float(value: Any) -> float | None:
    if _missing(value) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in {"true", "1", "yes"}


def is_adult(meta: dict) -> bool:
    return as_bool(meta.get("adult"))


def minors_ok(meta: dict) -> bool:
    cert = meta.get("certification")
    return not is_adult(meta) and not (isinstance(cert, str) and cert.upper() in NOT_FOR_MINORS)


def normalise(raw: dict) -> dict:
    """A typed subset of one movie record (unknown values → None)."""
    genres = raw.get("genres")
    names = [g.get("name") for g in genres if isinstance(g, dict) and g.get("name")] \
        if isinstance(genres, list) else []
    release = raw.get("release_date")
    year = None
    if isinstance(release, str) and len(release) >= 4 and release[:4].isdigit():
        year = int(release[:4])
    cost = next((as_float(raw.get(f)) for f in COST_FIELDS if as_float(raw.get(f)) is not None),
                None)
    cert = raw.get("certification")
    runtime = as_float(raw.get("runtime"))
    return {
        "id": str(raw.get("id", "")),
        "title": raw.get("title") if isinstance(raw.get("title"), str) else None,
        "year": year,
        "genres": names,
        "adult": is_adult(raw),
        "certification": cert if isinstance(cert, str) and not _missing(cert) else None,
        "runtime": int(runtime) if runtime and runtime > 0 else None,
        "popularity": as_float(raw.get("popularity")),
        "vote_average": as_float(raw.get("vote_average")),
        "vote_count": as_float(raw.get("vote_count")),
        "language": raw.get("original_language") if not _missing(raw.get("original_language"))
        else None,
        "licence_cost": cost,
        # Fail-closed guardrails on the raw object (adult flag, genres, overview, keywords;
        # certification when present): what serving may show to adults / minors (#14).
        "safe_for_all": guardrails.safe_for_all(raw),
        "safe_for_minors": guardrails.safe_for_minors(raw),
    }


def records_from_response(payload: Any) -> list[dict]:
    """The movie objects in a bulk API answer: a list, an id→object map or one object."""
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, dict)]
    if isinstance(payload, dict):
        if "id" in payload:
            return [payload]
        return [v for v in payload.values() if isinstance(v, dict)]
    return []
