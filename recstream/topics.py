"""Every topic recstream reads or writes, declared on the app in one place.

| topic                         | key   | value                 | partitions | who reads it                 |
|-------------------------------|-------|-----------------------|------------|------------------------------|
| <settings.topic> (movielog)   | any   | raw UTF-8 line        | N          | agents.ingest                |
| <app>-events                  | user  | raw movielog line     | N          | agents.ingest (re-keyed)     |
| <app>-user-profiles           | user  | UserProfile (JSON)    | N          | agents.ingest (apply_profiles) |
| <app>-movie-updates           | movie | MovieUpdate           | N          | agents.movies                |
| <app>-movie-metadata          | movie | catalog JSON (raw)    | N          | agents.metadata               |
| <app>-item-broadcast          | movie | ItemState (raw bytes) | N          | every worker (followers)     |
| <app>-quarantine              | none  | Rejected              | 1          | operators, data-quality jobs |
| <app>-recommendations         | user  | RecommendationServed  | N          | downstream consumers         |
| <app>-model-updates           | "serving" | registry pointer (JSON) | 1      | every worker (agents.model_follower) |
| <app>-suspects                | user  | suspect (JSON)        | 1          | recstream train (excluded ratings), audits |
| <app>-experiments             | exp id | ExperimentSpec (JSON) | 1          | every worker (agents.experiment_follower; created and compacted by recstream.experiments) |

The broadcast topic is read by every worker with a plain consumer that
assigns itself all partitions (no consumer group), so each worker holds the
whole item model; in production it is compacted (``cleanup.policy=compact``).
"""
from __future__ import annotations

import dataclasses

import faust

from recstream.records import MovieUpdate, Rejected, RecommendationServed
from recstream.settings import Settings


@dataclasses.dataclass(frozen=True)
class Topics:
    movielog: faust.TopicT
    events: faust.TopicT
    user_profiles: faust.TopicT
    movie_updates: faust.TopicT
    movie_metadata: faust.TopicT
    item_broadcast: faust.TopicT
    quarantine: faust.TopicT
    recommendations: faust.TopicT
    model_updates: faust.TopicT
    suspects: faust.TopicT  # issue #14: accounts the sybil detector suspects


def topic_names(settings: Settings) -> dict[str, str]:
    prefix = settings.app_id
    return {
        "movielog": settings.topic,
        "events": f"{prefix}-events",
        "user_profiles": f"{prefix}-user-profiles",
        "movie_updates": f"{prefix}-movie-updates",
        "movie_metadata": f"{prefix}-movie-metadata",
        "item_broadcast": f"{prefix}-item-broadcast",
        "quarantine": f"{prefix}-quarantine",
        "recommendations": f"{prefix}-recommendations",
        "model_updates": f"{prefix}-model-updates",
        "suspects": f"{prefix}-suspects",
    }


def partition_counts(settings: Settings, table_names: list[str]) -> dict[str, int]:
    """Every topic of ours (changelogs included) → its partition count."""
    counts = {name: settings.partitions for name in topic_names(settings).values()}
    counts[f"{settings.app_id}-quarantine"] = 1
    counts[f"{settings.app_id}-model-updates"] = 1
    counts[f"{settings.app_id}-suspects"] = 1
    counts.update({f"{settings.app_id}-{t}-changelog": settings.partitions for t in table_names})
    return counts


def define_topics(app: faust.App, settings: Settings) -> Topics:
    names = topic_names(settings)
    n = settings.partitions
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    return Topics(
        movielog=app.topic(names["movielog"], partitions=n, **raw),
        events=app.topic(names["events"], partitions=n, **raw),
        user_profiles=app.topic(names["user_profiles"], partitions=n, **raw),
        movie_updates=app.topic(names["movie_updates"], partitions=n, key_type=bytes,
                                key_serializer="raw", value_type=MovieUpdate),
        movie_metadata=app.topic(names["movie_metadata"], partitions=n, **raw),
        item_broadcast=app.topic(names["item_broadcast"], partitions=n, **raw,
                                 compacting=True),
        quarantine=app.topic(names["quarantine"], partitions=1, value_type=Rejected),
        recommendations=app.topic(names["recommendations"], partitions=n, key_type=bytes,
                                  key_serializer="raw", value_type=RecommendationServed),
        model_updates=app.topic(names["model_updates"], partitions=1, **raw, compacting=True),
        suspects=app.topic(names["suspects"], partitions=1, **raw),
    )
