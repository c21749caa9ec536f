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
whole item model.

Topic configs (:func:`topic_configs`, applied at startup by
``recstream.kafka.ensure_topics``, verified on Apache Kafka by
``tests/integration/test_topic_configs.py``).  A topic whose latest record per
key *is* state is compacted, so nothing of it is ever deleted by age: every
table changelog, the item broadcast, the movie metadata (the catalogue's
source) and the model-updates pointer.  Logs of events whose effect already
lives in a table are deleted by age: ``events``, ``user-profiles`` and
``movie-updates`` after 7 days; the quarantine and the answer log
(``recommendations``, which ``recstream provenance`` reads) after 30 days.
``movielog`` is the platform's: we never set or change its configs.
Tansu accepts and ignores topic configs (it has no compaction).
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


DAY_MS = 24 * 3600 * 1000
COMPACT = {"cleanup.policy": "compact"}
LOG_RETENTION_DAYS = {"events": 7, "user_profiles": 7, "movie_updates": 7,
                      "quarantine": 30, "recommendations": 30}
COMPACTED = ("item_broadcast", "movie_metadata", "model_updates")


def topic_configs(settings: Settings, table_names: list[str]) -> dict[str, dict[str, str]]:
    """Every topic of ours (never movielog) → the configs it needs (see the module doc)."""
    names = topic_names(settings)
    configs = {names[key]: dict(COMPACT) for key in COMPACTED}
    configs.update({names[key]: {"cleanup.policy": "delete",
                                 "retention.ms": str(days * DAY_MS)}
                    for key, days in LOG_RETENTION_DAYS.items()})
    configs.update({f"{settings.app_id}-{t}-changelog": dict(COMPACT) for t in table_names})
    configs.pop(settings.topic, None)  # the platform's log, whatever it is called
    return configs


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
