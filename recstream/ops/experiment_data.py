"""Reads what an experiment report joins: answers, the movielog and licence costs.

Three topics, each read with a plain consumer up to its current end
(:func:`recstream.ops.provenance.scan`): ``<app>-recommendations`` (answers with
their ``arm`` label), ``movielog`` (watch minutes and ratings) and
``<app>-movie-metadata`` (licence cost per play).  Only answers labelled with the
experiment are kept; the movielog is reduced to those answers' users.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from models.experiments.telemetry import Served, Watch, watches_from_minutes
from recstream.experiments import parse_label
from recstream.ops.provenance import scan
from recstream.parsing import parse_raw
from recstream.records import Rating, RecommendationOutcome, WatchMinute
from recstream.settings import Settings
from recstream.topics import topic_names


@dataclasses.dataclass
class ExperimentData:
    served: list[Served]
    watches: list[Watch]
    ratings: dict[tuple[int, str], int]
    costs: dict[str, float]
    rated_at: dict[tuple[int, str], float] = dataclasses.field(default_factory=dict)


def served_of(values: list[bytes], experiment: str) -> list[Served]:
    out = []
    for raw in values:
        body: dict[str, Any] = orjson.loads(raw)
        arm = parse_label(body.get("arm") or "").get(experiment)
        if arm is None or body.get("user", -1) < 0:
            continue
        out.append(Served(int(body["user"]), float(body.get("stream_time") or body["time"]), arm,
                          tuple(body.get("movies") or ()), float(body.get("latency_ms", 0.0)),
                          str(body.get("teams") or "")))
    return out


def shown_at(served: list[Served], outcomes: dict[tuple[int, tuple], list[float]]
             ) -> list[Served]:
    """Each answer timed by the platform's outcome line for it (same user, same list, first at
    or after the worker's stream clock), which is when the user saw it; a worker that lags
    behind the stream stamps its answers with an older stream time."""
    out = []
    for s in served:
        times = outcomes.get((s.user, s.movies), ())
        later = [t for t in times if t >= s.time]
        out.append(dataclasses.replace(s, time=min(later)) if later else s)
    return out


def events_of(values: list[bytes], users: set[int], settings: Settings
              ) -> tuple[list[Watch], dict[tuple[int, str], int], dict[tuple[int, str], float],
                         dict[tuple[int, tuple], list[float]]]:
    minutes, ratings = [], {}
    outcomes: dict[tuple[int, tuple], list[float]] = {}
    latest: dict[tuple[int, str], float] = {}
    for raw in values:
        event = parse_raw(raw, rating_min=settings.rating_min, rating_max=settings.rating_max,
                          max_user_id=settings.max_user_id)
        if getattr(event, "user", None) not in users:
            continue
        if isinstance(event, WatchMinute):
            minutes.append((event.user, event.movie, event.time, event.minute))
        elif isinstance(event, Rating):
            key = (event.user, event.movie)
            if event.time >= latest.get(key, float("-inf")):
                latest[key] = event.time
                ratings[key] = event.rating
        elif isinstance(event, RecommendationOutcome) and event.status == 200:
            outcomes.setdefault((event.user, tuple(event.movies)), []).append(event.time)
    return watches_from_minutes(minutes), ratings, latest, outcomes


def costs_of(values: list[bytes]) -> dict[str, float]:
    out = {}
    for raw in values:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        cost = record.get("licence_cost")
        if isinstance(cost, (int, float)) and record.get("id"):
            out[record["id"]] = float(cost)
    return out


async def load(settings: Settings, experiment: str) -> ExperimentData:
    names = topic_names(settings)
    tag = f"{experiment}:".encode()
    answers = await scan(settings, names["recommendations"], lambda k, v: tag in v)
    served = served_of([v for _, _, v in answers], experiment)
    users = {s.user for s in served}
    lines = await scan(settings, names["movielog"], lambda k, v: b"/data/m/" in v or
                       b"/rate/" in v or b"recommendation request" in v)
    watches, ratings, rated_at, outcomes = events_of([v for _, _, v in lines], users, settings)
    served = shown_at(served, outcomes)
    meta = await scan(settings, names["movie_metadata"], lambda k, v: True)
    return ExperimentData(served, watches, ratings, costs_of([v for _, _, v in meta]), rated_at)
