"""The composition root: the one Faust app, built by :func:`create_app`.

This is the only module that imports ``agents`` and ``web`` (the layering test allows it
and ``recstream.cli`` nothing else): it builds the worker's parts
(:class:`~recstream.parts.WorkerParts`), then :func:`wire_agents` and :func:`wire_web` give
each agent and view only the collaborators it uses, and
:func:`recstream.ops.all_commands.register` adds the operator commands.  To add an agent:
write its module under ``agents/`` with a ``register(app, ...)`` taking what it needs, and
call it from :func:`wire_agents`.

``faust -A recstream.app worker`` (and the ``recstream`` CLI) use the module-level
``app``, configured from the environment.  Building it connects to nothing: Kafka,
RocksDB and the web server start with the worker.
"""
from __future__ import annotations

import sys

import faust

from agents import (attack_watch, experiment_follower, fairness_watch, ingest, item_follower,
                    lifecycle, metadata, model_follower, monitoring, movies, profiles,
                    refresher, user_writer)
from models.detectors import ScrapingDetector, SybilDetector
from models.fairness_live import GroupConversion
from recstream.experiment_metrics import ExperimentMetrics
from recstream.api_checks import ApiObjectGate
from recstream.clean_exit import Worker as CleanExitWorker
from recstream.ops.all_commands import register as register_ops
from recstream.parts import WorkerParts
from recstream.settings import Settings
from recstream.topics import define_topics
from recstream.transport import faust_broker_url
from tables import define_tables
from tables.arms import ArmRanker
from web.guard import ExposureMonitor, Guard, RateLimiter, RouteSigner
from web.routing import OwnerRouter
from web.served_log import ProvenancePublisher
from web.views import register as register_web


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        # kafka:// → recstream-kafka:// (recstream.transport: rebalances lose no record)
        broker=faust_broker_url(settings.broker_url),
        store="recstream-rocksdb://",  # tables.store: no gc.collect() per rebalance
        datadir=str(settings.data_path),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_key_serializer="raw",
        table_value_serializer="raw",
        web_host=settings.web_host,
        web_port=settings.web_port,
        **({"canonical_url": settings.canonical_url} if settings.canonical_url else {}),
        web_in_thread=settings.web_thread,  # serving isolated from ingest (#11)
        producer_linger_ms=20,
        producer_max_batch_size=256 * 1024,
        stream_buffer_maxsize=8192,
        broker_commit_every=5000,
        autodiscover=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        Worker=CleanExitWorker,  # the clean-shutdown marker only on a clean exit (#12)
    )
    tables = define_tables(app, settings)
    topics = define_topics(app, settings)
    rt = WorkerParts.build(app, settings, tables, topics)
    app.recstream = rt  # this app's parts, for tests and benchmarks (parts_of)
    # Issue #13: per-arm series, counted by the view (answers) and the monitor (views, cost).
    rt.monitor.experiments = ExperimentMetrics(rt.metrics.registry, rt.experiments)

    arms = ArmRanker(rt.recommender, rt.experiments)  # #13: the view's rankers (+ cold start)
    scraping = wire_agents(app, rt, arms=arms)
    wire_web(app, rt, scraping=scraping, arms=arms)
    register_ops(app, settings)
    return app


def wire_agents(app: faust.App, rt: WorkerParts,
                arms: ArmRanker | None = None) -> attack_watch.ScrapingWatch | None:
    """Each agent module gets what it reads and writes; the order is the start order.

    Returns the scraping detector's feed, which the recommend view also writes to.
    """
    s = rt.settings
    gate = ApiObjectGate(violations=rt.metrics.api_violations,  # #12 schema enforcement
                         quarantine=lambda rejected: rt.topics.quarantine.send(value=rejected))
    fetcher = metadata.register(app, metadata.CatalogFetcher(
        settings=s, catalog=rt.tables.movie_catalog, metadata_topic=rt.topics.movie_metadata,
        api_calls=rt.metrics.api_calls, gate=gate))
    writer = user_writer.UserWriter(
        settings=s, user_store=rt.user_store, users=rt.users, items=rt.items,
        current_model=rt.current_model, monitor=rt.monitor, clock=rt.recommender,
        metrics=rt.metrics, changelog=rt.changelog, producer=rt.producer,
        movie_updates=rt.topics.movie_updates, sent_answers=rt.sent_answers,
        progress=rt.metrics.pipeline)
    # Issue #14: the live detectors look on as the writer applies each batch.
    scraping: attack_watch.ScrapingWatch | None = None
    sybil: attack_watch.SybilWatch | None = None
    if s.attack_watch:
        scraping = attack_watch.ScrapingWatch(detector=ScrapingDetector(), metrics=rt.metrics)
        def rank_again() -> None:  # a movie was withheld or given back
            rt.users.invalidate_all()
            rt.recommender.refresh_fallback()
        block = attack_watch.AlarmBlock(items=rt.items, clock=lambda: rt.recommender.stream_time,
                                        hold_s=s.sybil_hold_s, blocked=rt.metrics.sybil_blocked,
                                        on_change=rank_again)
        attack_watch.register(app, scraping, block=block)
        sybil = attack_watch.SybilWatch(
            detector=SybilDetector(min_accounts=s.sybil_min_accounts), producer=rt.producer,
            topic=rt.topics.suspects, metrics=rt.metrics, scraping=scraping, block=block)
    fairness = fairness_watch.FairnessWatch(  # #14 phase 3: the live fairness monitor
        monitor=GroupConversion(window_s=s.fairness_window_s), profile_of=rt.user_store.peek,
        metrics=rt.metrics, groups_file=s.fairness_groups_file,
        bound=s.fairness_bound)
    fairness_watch.register(app, fairness)
    watched = attack_watch.WatchedWriter(writer, sybil, observers=(fairness,))
    ingest.register(app, ingest.Ingest(settings=s, writer=watched, metrics=rt.metrics,
                                       producer=rt.producer, topics=rt.topics,
                                       consumer_of=lambda: app.consumer),
                    topics=rt.topics, batch_size=s.ingest_batch, within_s=s.ingest_within_s,
                    progress=rt.metrics.pipeline)
    cold = profiles.register(app, profiles.ColdStart(  # new users: user API → UserProfile records
        settings=s, users=rt.users, items=rt.items, user_store=rt.user_store,
        current_model=rt.current_model, clock=rt.recommender,
        movie_catalog=rt.tables.movie_catalog, user_history=rt.tables.user_history,
        producer=rt.producer, profiles_topic=rt.topics.user_profiles, metrics=rt.metrics,
        describes=rt.experiments.describes, gate=gate),
        writer, readiness=rt.readiness)
    # #13: a cold user's first request may wait (bounded) for the user API.  Not with the
    # server on its own thread (#11): the fetch belongs to the worker's loop and session.
    if arms is not None and s.coldstart and not s.web_thread:
        arms.cold_now = cold.profile_now
    movie_writer = movies.register(app, movies.MovieWriter(
        settings=s, movie_stats=rt.tables.movie_stats, item_factors=rt.tables.item_factors,
        items=rt.items, current_model=rt.current_model, changelog=rt.changelog,
        producer=rt.producer, broadcast_topic=rt.topics.item_broadcast,
        item_steps=rt.metrics.model_updates.labels("item"), on_play=fetcher.want,
        redelivered=rt.metrics.duplicates.labels("MovieUpdate"), progress=rt.metrics.pipeline),
        movie_updates=rt.topics.movie_updates, batch_size=s.ingest_batch,
        within_s=s.ingest_within_s)
    items = item_follower.register(app, item_follower.ItemFollower(
        items=rt.items, current_model=rt.current_model, users=rt.users,
        recommender=rt.recommender, readiness=rt.readiness,
        broadcast=rt.topics.item_broadcast, metadata=rt.topics.movie_metadata,
        bootstrap_servers=s.bootstrap_servers, progress=rt.metrics.pipeline))
    model_follower.register(app, model_follower.ModelFollower(
        settings=s, current_model=rt.current_model, items=rt.items, users=rt.users,
        user_store=rt.user_store, recommender=rt.recommender, metrics=rt.metrics,
        readiness=rt.readiness, on_swap=items.apply_ahead), worker_id=rt.worker_id)
    experiment_follower.register(app, experiment_follower.ExperimentFollower(
        settings=s, book=rt.experiments))
    refresher.register(app, refresher.AnswerRefresher(
        users=rt.users, items=rt.items, recommender=rt.recommender, batch=s.refresh_batch,
        top_k=s.top_k, refreshed=rt.metrics.refreshed),
        readiness=rt.readiness, metrics=rt.metrics, interval_s=s.refresh_interval_s)
    monitoring.register(app, monitoring.MonitoringTimers(
        monitoring.DriftStore(monitor=rt.monitor, table=rt.tables.drift_windows,
                              changelog=rt.changelog),
        app=app, readiness=rt.readiness, metrics=rt.metrics, topics=rt.topics))

    def forget_caches() -> None:
        rt.user_store.forget_cache()
        movie_writer.forget()

    lifecycle.register(app, settings=s, tables=rt.tables, topics=rt.topics, users=rt.users,
                       current_model=rt.current_model, readiness=rt.readiness,
                       forget_caches=forget_caches)
    return scraping


def wire_web(app: faust.App, rt: WorkerParts,
             scraping: attack_watch.ScrapingWatch | None = None,
             arms: ArmRanker | None = None) -> None:
    """The views get only what they read; the answer log and the router are theirs."""
    s = rt.settings
    if s.web_thread:
        @app.task
        async def quick_gil_handover() -> None:
            # Issue #11: the server thread waits at most this long for the interpreter
            # while the worker's loop runs Python (ingest, Faust); only in a worker.
            sys.setswitchinterval(s.serve_switch_ms / 1000.0)
    guard = Guard(signer=RouteSigner(s.route_secret),  # issue #14: web/guard.py
                  limiter=RateLimiter(rate_per_s=s.client_rate_per_s, burst=s.client_burst,
                                      grader_cidrs=s.grader_cidrs),
                  exposure=ExposureMonitor(rt.items, rt.users, rt.metrics), scraping=scraping)
    router = OwnerRouter(app, rt.tables.user_history, partitions=rt.settings.partitions,
                         timeout_s=rt.settings.route_timeout_s, sign=guard.signer.sign)

    @app.timer(60.0, name="exposure_gauges")  # feedback-loop monitors (#14)
    async def exposure_gauges() -> None:
        guard.exposure.sample()
    publisher = ProvenancePublisher(topic=rt.topics.recommendations, producer=rt.producer,
                                    current_model=rt.current_model, stream_clock=rt.recommender,
                                    worker_id=rt.worker_id,
                                    dropped=rt.metrics.provenance_dropped)
    register_web(app, settings=rt.settings, metrics=rt.metrics, recommender=rt.recommender,
                 readiness=rt.readiness, user_store=rt.user_store, users=rt.users,
                 router=router, publisher=publisher, guard=guard,
                 arms=arms or ArmRanker(rt.recommender, rt.experiments), arm_metrics=rt.monitor.experiments,
                 sent_answers=rt.sent_answers)


def parts_of(app: faust.App) -> WorkerParts:
    return app.recstream


app = create_app(Settings.from_env())
