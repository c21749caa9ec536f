"""recstream's tables: every ``app.Table``, its key → value meaning, its one writer.

All tables are RocksDB-backed (rocksdict) with a changelog topic, keyed by the
raw bytes of the Kafka message key (see :mod:`tables.codecs`), values encoded
by us (raw serializer) so the hot path pays for one orjson/numpy call, not a
codec chain.

| table              | key   | value                                   | writer agent          |
|--------------------|-------|-----------------------------------------|-----------------------|
| user_history       | user  | UserHistory (watches, ratings, created) | agents.user_writer          |
| user_vectors       | user  | float32 [bias, p_u]                     | agents.user_writer          |
| movie_stats        | movie | MovieStats (plays, viewers, ratings)    | agents.movies         |
| item_factors       | movie | float32 [bias, q_i] (authoritative)     | agents.movies         |
| movie_catalog      | movie | normalised metadata (JSON)              | agents.metadata       |
| drift_windows      | partition/feature/slice | int64 histogram (LE)            | agents.monitoring     |
"""
from __future__ import annotations

import dataclasses

import faust

from recstream.settings import Settings

__all__ = ["Tables", "define_tables"]


@dataclasses.dataclass(frozen=True)
class Tables:
    user_history: faust.Table
    user_vectors: faust.Table
    movie_stats: faust.Table
    item_factors: faust.Table
    movie_catalog: faust.Table
    drift_windows: faust.Table

    def all(self) -> list[faust.Table]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


def define_tables(app: faust.App, settings: Settings) -> Tables:
    """Declare every table on ``app`` (nothing is opened until the worker starts)."""

    def table(name: str, help: str) -> faust.Table:
        return app.Table(
            name,
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            help=help,
        )

    return Tables(
        user_history=table(
            "user_history",
            "user id -> recent watches (max minute, first/last time), ratings, account creation",
        ),
        user_vectors=table("user_vectors", "user id -> float32 [bias, factors] of the online MF"),
        movie_stats=table(
            "movie_stats",
            "movie id -> plays, unique viewers, rating count/sum/sumsq, decayed popularity",
        ),
        item_factors=table(
            "item_factors", "movie id -> float32 [bias, factors]; the one authoritative copy"
        ),
        movie_catalog=table("movie_catalog", "movie id -> normalised metadata from the movie API"),
        drift_windows=table(
            "drift_windows",
            "<partition>|<feature>|<slice start> -> int64 histogram of one drift feature over "
            "one slice of stream time in that partition (recstream.windows)",
        ),
    )
