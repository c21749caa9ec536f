"""Start-up and rebalance: load the in-memory user index once tables are recovered."""
from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from recstream.clean_exit import clean_marker
from recstream.modelupdates import CurrentModel
from recstream.parts import Readiness
from recstream.settings import Settings
from recstream.topics import Topics
from tables import Tables
from models.guardrails import ADULT, audience
from tables.memory import UserIndex
from tables.codecs import decode_history, decode_vector_generation

log = logging.getLogger(__name__)
PRODUCER_BUFFER = 10_000
GC_THRESHOLDS = (50_000, 20, 100)


LOAD_CHUNK = 2_000  # vectors mirrored per event-loop turn


async def load_user_vectors(*, user_vectors: Any, users: UserIndex, current_model: CurrentModel,
                            settings: Settings, keep_loaded: bool = False) -> int:
    """Mirror ``user_vectors`` of this worker's partitions into the user index.

    A vector learnt under an earlier promoted model is replaced by the serving
    model's vector of that user (or, if the model never saw them, by a refit
    from their history, queued for agents.model_follower).  Yields to the event loop
    every ``LOAD_CHUNK`` vectors, so serving goes on while a worker that took
    over partitions loads their users.  ``keep_loaded`` skips users already
    held (their in-memory vector is at least as new as the table's).
    """
    count = 0
    generation = current_model.generation
    seen = 0
    for key, raw in user_vectors.items():
        seen += 1
        if seen % LOAD_CHUNK == 0:
            await asyncio.sleep(0)
        if not raw:
            continue
        try:
            user = int(key)
        except ValueError:
            continue
        if not 0 <= user <= settings.max_user_id:
            continue
        if keep_loaded and (row := users.get_row(user)) >= 0 and users.has_vector[row]:
            continue
        bias, vec, stored_generation = decode_vector_generation(raw)
        if stored_generation != generation:
            base = current_model.model.user_vector(user)
            if base is None:
                users.row(user)
                current_model.queue_refit(user)
                continue
            bias, vec = base
        if vec.shape[0] == settings.n_factors:
            users.invalidate(users.set_vector(user, bias, vec))
            count += 1
    return count


async def restore_minor_flags(*, user_history: Any, users: UserIndex, settings: Settings) -> int:
    """Clear ``minor`` (the minors' rules) for users whose stored profile says adult.

    Every user row starts under the minors' rules (fail closed, issue #14); the
    age lives in the user's history (``a``, written by agents.profiles's
    profile), so after a restart or a partition move it is read back from
    there.  Histories without a profile keep the minors' rules and are skipped
    without decoding.
    """
    count = seen = 0
    for key, raw in user_history.items():
        seen += 1
        if seen % LOAD_CHUNK == 0:
            await asyncio.sleep(0)
        if not raw or b'"a":' not in raw:
            continue
        history = decode_history(raw)
        try:
            user = int(key)
        except ValueError:
            continue
        if 0 <= user <= settings.max_user_id:
            row = users.row(user)
            minor = audience(history.age) != ADULT
            if users.minor[row] != minor:
                users.minor[row] = minor
                users.invalidate(row)
                count += 1
    return count


def create_topics(settings: Settings, table_names: list[str]) -> None:
    """Create our topics with the right partition counts before the consumer subscribes.

    A broker that auto-creates topics on a metadata request (Tansu does) would
    otherwise race Faust and create them with its default partition count,
    breaking co-partitioning with the tables.  Each gets the configs it needs
    (compacted state, retention of logs: ``recstream.topics.topic_configs``);
    on Apache Kafka existing topics with other values are altered to them.
    """
    from recstream.kafka import ensure_topics
    from recstream.topics import partition_counts, topic_configs

    wanted = partition_counts(settings, table_names)
    loop = asyncio.new_event_loop()
    try:
        created = loop.run_until_complete(ensure_topics(
            settings.bootstrap_servers, wanted, settings.replication_factor,
            configs=topic_configs(settings, table_names),
            reconcile=not settings.broker_url.startswith("tansu://")))
    finally:
        loop.close()
    if created:
        log.info("created topics: %s", ", ".join(created))


def tune_gc() -> None:
    """Keep full garbage collections rare: each one holds the event loop.

    A worker holds millions of long-lived objects (Faust, caches, indexes);
    a gen-2 collection over them took ~70 ms in bench/serve.py's stall trace,
    blocking every request behind it.  Start-up objects are moved out of the
    collector's reach (``gc.freeze``) and the older generations run less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])


def restore_log_level() -> None:
    """Undo the root logger's DEBUG level left behind by Faust's start-up spinner.

    With ``-l warn`` (the default) Faust's worker sets the root logger to DEBUG
    so its spinner sees every record, and never sets it back: every debug call
    in aiokafka/Faust then builds a LogRecord that the handlers drop (~5% of
    ingest CPU).  The handlers keep the level the operator asked for.
    """
    root = logging.getLogger()
    levels = [h.level for h in root.handlers if type(h).__name__ != "SpinnerHandler" and h.level]
    if root.level == logging.DEBUG and levels:
        root.setLevel(min(levels))


def discard_state_after_crash(app) -> bool:
    """Wipe the local table stores unless the last run shut down cleanly.

    Faust writes RocksDB before the changelog record is acknowledged, so after
    a ``kill -9`` the local store can hold updates the changelog never got.
    Our writers skip no-op updates, so replaying the uncommitted events would
    not re-send them and the changelog would stay short of them forever (a
    worker rebuilt elsewhere would lose them).  Recovering from the changelog
    alone and re-applying the uncommitted events makes both agree again.
    """
    marker = clean_marker(app)
    tabledir = Path(app.conf.tabledir)
    if marker.exists():
        marker.unlink()
        return False
    if tabledir.exists() and any(tabledir.iterdir()):
        log.warning("no clean shutdown recorded: rebuilding tables from their changelogs")
        shutil.rmtree(tabledir)
        return True
    return False


def starting_a_worker(argv: list[str] | None = None) -> bool:
    """Whether this process is a worker (Faust sends ``on_worker_init`` for every command).

    Operator commands (``models``, ``train``, ``provenance``, ``--help``…) must
    neither need a broker to start nor touch the local tables a running worker
    owns: wiping them as "not shut down cleanly" would destroy its state.
    """
    args = sys.argv[1:] if argv is None else argv
    return "worker" in args


def register(app, *, settings: Settings, tables: Tables, topics: Topics, users: UserIndex,
             current_model: CurrentModel, readiness: Readiness,
             forget_caches: Callable[[], None]) -> None:
    """Topics before subscribing, state after a crash, recovery, rebalances, shutdown."""
    def load_vectors(keep_loaded: bool = False):
        return load_user_vectors(user_vectors=tables.user_vectors, users=users,
                                 current_model=current_model, settings=settings,
                                 keep_loaded=keep_loaded)

    def restore_minors():
        return restore_minor_flags(user_history=tables.user_history, users=users,
                                   settings=settings)

    @app.on_worker_init.connect
    def before_worker_starts(app_=None, **kwargs) -> None:
        if not starting_a_worker():
            return
        discard_state_after_crash(app)  # recstream.clean_exit writes the marker on a clean exit
        create_topics(settings, [t.name for t in tables.all()])
        # Table writes queue changelog records in Faust's producer buffer; at
        # 100 queued (its default) every consumed message waits for a drain.
        # Our writers flush a batch's dirty keys at once, so allow a batch.
        app.producer.buffer.max_messages = PRODUCER_BUFFER

    @app.task
    async def declare_topics() -> None:
        for topic in topics.__dict__.values():
            await topic.maybe_declare()

    @app.task
    async def on_recovered() -> None:
        await app.tables.recovery.completed.wait()
        await readiness.model_loaded.wait()  # vectors are read against its generation
        restore_log_level()
        readiness.tables_recovered.set()
        n = await load_vectors()
        minors = await restore_minors()
        tune_gc()
        readiness.users_loaded.set()
        log.info("tables recovered; %d user vectors loaded, %d minors flagged", n, minors)

    @app.on_partitions_revoked.connect
    async def on_revoked(app_, revoked, **kwargs) -> None:
        forget_caches()

    @app.on_rebalance_complete.connect
    async def on_rebalanced(app_=None, **kwargs) -> None:
        """Partitions taken over from another worker: serve their users personally."""
        if readiness.users_loaded.is_set():
            app.add_future(_load_taken_over())

    async def _load_taken_over() -> None:
        try:
            n = await load_vectors(keep_loaded=True)
            await restore_minors()
        except Exception:  # a rebalance closed a partition's store mid-read: next one will
            log.warning("loading user vectors after a rebalance failed", exc_info=True)
            return
        if n:
            log.info("rebalance: %d user vectors of newly assigned partitions loaded", n)
