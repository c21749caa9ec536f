"""Suspected sybil ratings kept out of training (issue #14).

The live detector (agents/attack_watch.py) publishes each suspected account once
on ``<app>-suspects`` with the movie its wave pushed.  ``recstream train``
reads that topic whole (one partition, one small record per suspect) and drops
the suspects' ratings *and* watches of the pushed movie from the histories
before the window is cut, so the poisoned signal never reaches a batch model.
Their other activity is kept: a false suspect loses one movie's signal only.
"""
from __future__ import annotations

from typing import Any, Mapping

import orjson

from recstream.ops.training_data import TopicRange, _read_topic
from recstream.settings import Settings
from tables.codecs import UserHistory


def suspects_topic(settings: Settings) -> str:
    return f"{settings.app_id}-suspects"


def parse_suspect(raw: bytes | None) -> tuple[int, str] | None:
    """``(user, movie)`` of one suspect record; None for anything else."""
    try:
        value = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    user, movie = value.get("user"), value.get("movie")
    if isinstance(user, int) and not isinstance(user, bool) and isinstance(movie, str):
        return user, movie
    return None


async def read_suspects(settings: Settings, progress: Any
                        ) -> tuple[dict[int, set[str]], TopicRange]:
    found: dict[int, set[str]] = {}

    def keep(record) -> None:
        parsed = parse_suspect(record.value)
        if parsed is not None:
            found.setdefault(parsed[0], set()).add(parsed[1])

    read = await _read_topic(settings, suspects_topic(settings), keep, progress)
    return found, read


def exclude(histories: Mapping[int, UserHistory], suspects: Mapping[int, set[str]]
            ) -> tuple[dict[int, UserHistory], int]:
    """Histories without the suspects' events on their pushed movies → (histories, dropped)."""
    out, dropped = dict(histories), 0
    for user, movies in suspects.items():
        history = out.get(user)
        if history is None:
            continue
        for movie in movies:
            dropped += history.ratings.pop(movie, None) is not None
            history.watches.pop(movie, None)
    return out, dropped
