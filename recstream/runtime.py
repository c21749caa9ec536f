"""The parts one worker shares between its agents and its web views.

Built once per app by :func:`recstream.app.create_app`; agents and views get
it passed in rather than importing globals, so tests can build several.
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import Any

import faust

from recstream.metrics import Metrics
from recstream.monitor import Monitor
from recstream.modelupdates import ServingModel
from tables.serving import Recommender
from recstream.settings import Settings
from recstream.topics import Topics
from tables import Tables
from tables.changelog import ChangelogWriter
from tables.memory import ItemIndex, UserIndex
from tables.users import UserStore


@dataclasses.dataclass
class Readiness:
    """``/readyz`` is 200 only when every part below is set."""

    tables_recovered: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    items_loaded: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    users_loaded: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    model_loaded: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def missing(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if not getattr(self, f.name).is_set()]


@dataclasses.dataclass
class Runtime:
    settings: Settings
    app: faust.App
    tables: Tables
    topics: Topics
    metrics: Metrics
    items: ItemIndex
    users: UserIndex
    user_store: UserStore
    recommender: Recommender
    readiness: Readiness
    global_mean: float
    changelog: ChangelogWriter
    worker_id: str = dataclasses.field(default_factory=socket.gethostname)
    # The promoted base model (generation 0: online only); replaced whole by agents.model_follower.
    model: ServingModel = dataclasses.field(default_factory=ServingModel)
    on_model_swap: list = dataclasses.field(default_factory=list)
    # Users whose vector belongs to a replaced model the new one never saw: refit them.
    refit_queue: list = dataclasses.field(default_factory=list)
    provenance: Any = None  # web.served_log.ProvenancePublisher, set when the web app mounts
    # Availability, online quality, licence cost and drift from the stream; set by build.
    monitor: Monitor = None  # type: ignore[assignment]

    @property
    def model_version(self) -> str:
        return self.model.label

    async def produce(self, topic: faust.TopicT, key: bytes | None, value: bytes) -> None:
        """Queue one already-encoded message on the app's producer.

        Skips Faust's channel/buffer layers (per-message futures and callbacks)
        that cost more than the work itself on the ingest path; delivery and
        ordering are the producer's (idempotent, acks=all in production).
        """
        await self.app.producer.send(topic.get_topic_name(), key, value, None, None, None)

    @classmethod
    def build(cls, app: faust.App, settings: Settings, tables: Tables, topics: Topics
              ) -> "Runtime":
        items = ItemIndex(settings.n_factors, init_scale=settings.init_scale, seed=settings.seed)
        users = UserIndex(settings.n_factors, settings.top_k, settings.max_user_id)
        changelog = ChangelogWriter(app)
        store = UserStore(tables.user_history, tables.user_vectors, changelog,
                          history_limit=settings.history_limit)
        recommender = Recommender(settings, items, users, store.peek)
        midpoint = (settings.rating_min + settings.rating_max) / 2
        metrics = Metrics()
        return cls(settings=settings, app=app, tables=tables, topics=topics, metrics=metrics,
                   changelog=changelog, monitor=Monitor(settings, metrics, items.cost_of),
                   items=items, users=users, user_store=store, recommender=recommender,
                   readiness=Readiness(), global_mean=midpoint + 0.1 * (settings.rating_max
                                                                        - settings.rating_min))
