"""The parts of one worker, built once by the composition root (:mod:`recstream.app`).

No agent or view receives this record: :func:`recstream.app.wire_agents` and
:func:`~recstream.app.wire_web` hand each one only the parts it uses.  Tests reach the
parts of their app through ``parts_of(app)`` (the ``rt`` fixture) to build one agent at a
time the same way (tests/wiring.py).
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import faust

from recstream.api_checks import SentAnswers
from recstream.prometheus import Metrics
from recstream.monitor import Monitor
from recstream.experiments import ExperimentBook
from recstream.kafka import AppProducer
from recstream.modelupdates import CurrentModel
from recstream.settings import Settings
from recstream.topics import Topics
from tables import Tables
from tables.changelog import ChangelogWriter
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender
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


@dataclasses.dataclass(frozen=True)
class WorkerParts:
    """The parts of one worker; frozen, so nobody reassigns them.

    Shared state has one owner each: the served model and the running rating mean are
    :class:`~recstream.modelupdates.CurrentModel`'s, the item and user indexes their
    own classes', the tables their writer agents'.
    """

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
    changelog: ChangelogWriter
    producer: AppProducer
    current_model: CurrentModel
    # Availability, online quality, licence cost and drift from the stream.
    monitor: Monitor
    worker_id: str = dataclasses.field(default_factory=socket.gethostname)
    # Issue #13: the experiments this worker serves (followed from <app>-experiments).
    experiments: ExperimentBook = dataclasses.field(default_factory=ExperimentBook)
    # #12: answers sent per user, for the platform's outcome lines (recstream.api_checks)
    sent_answers: SentAnswers | None = None

    @classmethod
    def build(cls, app: faust.App, settings: Settings, tables: Tables, topics: Topics
              ) -> "WorkerParts":
        items = ItemIndex(settings.n_factors, init_scale=settings.init_scale, seed=settings.seed)
        users = UserIndex(settings.n_factors, settings.top_k, settings.max_user_id)
        metrics = Metrics()
        changelog = ChangelogWriter(app, progress=metrics.pipeline)
        store = UserStore(tables.user_history, tables.user_vectors, changelog,
                          history_limit=settings.history_limit)
        recommender = Recommender(settings, items, users, store.peek)
        midpoint = (settings.rating_min + settings.rating_max) / 2
        start_mean = midpoint + 0.1 * (settings.rating_max - settings.rating_min)
        return cls(settings=settings, app=app, tables=tables, topics=topics, metrics=metrics,
                   changelog=changelog, monitor=Monitor(settings, metrics, items.cost_of),
                   items=items, users=users, user_store=store, recommender=recommender,
                   readiness=Readiness(), producer=AppProducer(app),
                   current_model=CurrentModel(global_mean=start_mean),
                   sent_answers=SentAnswers(mismatches=metrics.outcome_mismatches,
                                            compared=metrics.outcomes_compared))
