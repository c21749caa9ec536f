"""Field parsers of the API-object schemas (``recstream/schemas.py``).

Each parser takes one JSON value and returns it normalised (``"10000000"`` → ``10000000``,
``"False"`` → ``False``) or raises :class:`BadValue` with a stable reason for counting;
:class:`PartialValue` carries a usable value with something dropped from it.  A new field
type of a schema goes here; which fields an object has and which are required stay in
``schemas.py``.

Stdlib only: the kernel's parsing layer, importable anywhere.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

MISSING_MARKERS = frozenset({"", "null", "none", "nan", "n/a"})
MAX_TEXT = 20_000          # longer free text is cut
MAX_ITEMS = 200            # list fields (genres, keywords) beyond this are cut (and reported)
MAX_SAFE_INT = 2 ** 53     # exact as a float, and as a number in any JSON reader
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


class BadValue(Exception):
    """One field's value is unusable; ``reason`` is a stable name for counting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PartialValue(BadValue):
    """A usable value with something dropped from it."""

    def __init__(self, value: Any, reason: str) -> None:
        super().__init__(reason)
        self.value = value


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in MISSING_MARKERS) \
        or (isinstance(value, (list, dict)) and not value)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise BadValue("wrong_type")
    if isinstance(value, (int, float)):
        number = float(value) if not isinstance(value, int) or abs(value) < 2 ** 63 else math.inf
    elif isinstance(value, str) and len(value) <= 40:
        try:
            number = float(value.strip())
        except ValueError:
            raise BadValue("not_a_number") from None
    else:
        raise BadValue("wrong_type")
    if not math.isfinite(number):
        raise BadValue("not_finite")
    return number


def integer(lo: float = 0, hi: float = MAX_SAFE_INT) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = _number(value)
        if not number.is_integer():
            raise BadValue("not_an_integer")
        if not lo <= number <= hi:
            raise BadValue("out_of_range")
        return int(number)
    return parse


def real(lo: float = 0.0, hi: float = math.inf) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        number = _number(value)
        if not lo <= number <= hi:
            raise BadValue("out_of_range")
        return number
    return parse


def flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise BadValue("not_a_boolean")


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise BadValue("wrong_type")
    return value[:MAX_TEXT]


def one_of(allowed: frozenset[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise BadValue("wrong_type")
        if value.strip() not in allowed:
            raise BadValue("unknown_value")
        return value.strip()
    return parse


def pattern(regex: re.Pattern) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or regex.fullmatch(value.strip()) is None:
            raise BadValue("bad_format")
        return value.strip()
    return parse


def date(value: Any) -> str:
    match = _DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise BadValue("bad_format")
    y, m, d = (int(g) for g in match.groups())
    if not (1870 <= y <= 2100 and 1 <= m <= 12 and 1 <= d <= 31):
        raise BadValue("out_of_range")
    return value.strip()


def genres(value: Any) -> list[dict]:
    """``[{id, name}]``; bad items are dropped (and reported once)."""
    if not isinstance(value, list):
        raise BadValue("wrong_type")
    out = []
    for item in value[:MAX_ITEMS]:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
            gid = item.get("id")
            ok = isinstance(gid, int) and not isinstance(gid, bool)
            out.append({"id": gid if ok else None, "name": item["name"].strip()[:100]})
    if len(out) != len(value):
        raise BadValue("bad_items") if not out else PartialValue(out, "bad_items")
    return out


def names(value: Any) -> list[str]:
    """Keywords: a list of strings or of ``{name}`` objects."""
    if not isinstance(value, list):
        raise BadValue("wrong_type")
    out = [v if isinstance(v, str) else v.get("name") for v in value[:MAX_ITEMS]
           if isinstance(v, str) or isinstance(v, dict)]
    out = [v[:100] for v in out if isinstance(v, str)]
    if len(out) != len(value):
        raise PartialValue(out, "bad_items")
    return out
