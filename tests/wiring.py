"""Agents and views built from a test app's parts exactly as recstream.app wires them.

Tests that drive one agent or view directly build it here, so the collaborators each one
receives are spelled out once and match the composition root.
"""
from __future__ import annotations

from typing import Any

from agents.item_follower import ItemFollower
from agents.ingest import Ingest
from agents.lifecycle import load_user_vectors, restore_minor_flags
from agents.monitoring import DriftStore, MonitoringTimers
from agents.model_follower import ModelFollower
from agents.movies import MovieWriter
from agents.profiles import ColdStart
from agents.user_writer import UserWriter
from recstream.parts import WorkerParts
from web.routing import OwnerRouter
from web.served_log import ProvenancePublisher
from web.views import make_routes


def routes(rt: WorkerParts, **extra: Any) -> list:
    return make_routes(settings=rt.settings, metrics=rt.metrics, recommender=rt.recommender,
                       readiness=rt.readiness, user_store=rt.user_store, users=rt.users,
                       **extra)


def router(rt: WorkerParts) -> OwnerRouter:
    return OwnerRouter(rt.app, rt.tables.user_history, partitions=rt.settings.partitions,
                       timeout_s=rt.settings.route_timeout_s)


def publisher(rt: WorkerParts) -> ProvenancePublisher:
    return ProvenancePublisher(topic=rt.topics.recommendations, producer=rt.producer,
                               current_model=rt.current_model, stream_clock=rt.recommender,
                               worker_id=rt.worker_id, dropped=rt.metrics.provenance_dropped)


def item_follower(rt: WorkerParts) -> ItemFollower:
    return ItemFollower(items=rt.items, current_model=rt.current_model, users=rt.users,
                        recommender=rt.recommender, readiness=rt.readiness,
                        broadcast=rt.topics.item_broadcast, metadata=rt.topics.movie_metadata,
                        bootstrap_servers=rt.settings.bootstrap_servers)


def movie_writer(rt: WorkerParts, **extra: Any) -> MovieWriter:
    return MovieWriter(settings=rt.settings, movie_stats=rt.tables.movie_stats,
                       item_factors=rt.tables.item_factors, items=rt.items,
                       current_model=rt.current_model, changelog=rt.changelog,
                       producer=rt.producer, broadcast_topic=rt.topics.item_broadcast,
                       item_steps=rt.metrics.model_updates.labels("item"),
                       redelivered=rt.metrics.duplicates.labels("MovieUpdate"), **extra)


def user_writer(rt: WorkerParts) -> UserWriter:
    return UserWriter(settings=rt.settings, user_store=rt.user_store, users=rt.users,
                      items=rt.items, current_model=rt.current_model, monitor=rt.monitor,
                      clock=rt.recommender, metrics=rt.metrics, changelog=rt.changelog,
                      producer=rt.producer, movie_updates=rt.topics.movie_updates,
                      sent_answers=rt.sent_answers)


def ingest(rt: WorkerParts, writer: UserWriter) -> Ingest:
    return Ingest(settings=rt.settings, writer=writer, metrics=rt.metrics, producer=rt.producer,
                  topics=rt.topics, consumer_of=lambda: rt.app.consumer)


def drift_store(rt: WorkerParts) -> DriftStore:
    return DriftStore(monitor=rt.monitor, table=rt.tables.drift_windows, changelog=rt.changelog)


def monitoring_timers(rt: WorkerParts, store: DriftStore | None = None) -> MonitoringTimers:
    return MonitoringTimers(store or drift_store(rt), app=rt.app, readiness=rt.readiness,
                            metrics=rt.metrics, topics=rt.topics)


def cold_start(rt: WorkerParts) -> ColdStart:
    return ColdStart(settings=rt.settings, users=rt.users, items=rt.items,
                     user_store=rt.user_store, current_model=rt.current_model,
                     clock=rt.recommender, movie_catalog=rt.tables.movie_catalog,
                     user_history=rt.tables.user_history, producer=rt.producer,
                     profiles_topic=rt.topics.user_profiles, metrics=rt.metrics)


def model_follower(rt: WorkerParts) -> ModelFollower:
    return ModelFollower(settings=rt.settings, current_model=rt.current_model, items=rt.items,
                         users=rt.users, user_store=rt.user_store, recommender=rt.recommender,
                         metrics=rt.metrics, readiness=rt.readiness)


async def load_vectors(rt: WorkerParts, *, keep_loaded: bool = False) -> int:
    return await load_user_vectors(user_vectors=rt.tables.user_vectors, users=rt.users,
                                   current_model=rt.current_model, settings=rt.settings,
                                   keep_loaded=keep_loaded)


async def restore_minors(rt: WorkerParts) -> int:
    return await restore_minor_flags(user_history=rt.tables.user_history, users=rt.users,
                                     settings=rt.settings)
