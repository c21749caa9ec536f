"""Start-up and rebalance: load the in-memory user index once tables are recovered."""
from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import shutil
from pathlib import Path

from recstream.runtime import Runtime
from tables.codecs import decode_vector

log = logging.getLogger(__name__)
PRODUCER_BUFFER = 10_000
GC_THRESHOLDS = (50_000, 20, 100)


def load_user_vectors(rt: Runtime) -> int:
    """Mirror ``user_vectors`` of this worker's partitions into the user index."""
    count = 0
    for key, raw in rt.tables.user_vectors.items():
        if not raw:
            continue
        try:
            user = int(key)
        except ValueError:
            continue
        bias, vec = decode_vector(raw)
        if vec.shape[0] == rt.settings.n_factors and 0 <= user <= rt.settings.max_user_id:
            rt.users.set_vector(user, bias, vec)
            count += 1
    rt.users.invalidate_all()
    return count


def create_topics(rt: Runtime) -> None:
    """Create our topics with the right partition counts before the consumer subscribes.

    A broker that auto-creates topics on a metadata request (Tansu does) would
    otherwise race Faust and create them with its default partition count,
    breaking co-partitioning with the tables.
    """
    from agents.commands import ensure_topics
    from recstream.topics import partition_counts

    wanted = partition_counts(rt.settings, [t.name for t in rt.tables.all()])
    loop = asyncio.new_event_loop()
    try:
        created = loop.run_until_complete(
            ensure_topics(rt.settings.bootstrap_servers, wanted, rt.settings.replication_factor))
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


def clean_marker(app) -> Path:
    return Path(app.conf.tabledir).parent / "clean-shutdown"


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


def register(app, rt: Runtime, forget_caches) -> None:
    @app.on_worker_init.connect
    def before_worker_starts(app_=None, **kwargs) -> None:
        discard_state_after_crash(app)
        atexit.register(lambda: clean_marker(app).parent.exists()
                        and clean_marker(app).touch())
        create_topics(rt)
        # Table writes queue changelog records in Faust's producer buffer; at
        # 100 queued (its default) every consumed message waits for a drain.
        # Our writers flush a batch's dirty keys at once, so allow a batch.
        app.producer.buffer.max_messages = PRODUCER_BUFFER

    @app.task
    async def declare_topics() -> None:
        for topic in rt.topics.__dict__.values():
            await topic.maybe_declare()

    @app.task
    async def on_recovered() -> None:
        await app.tables.recovery.completed.wait()
        restore_log_level()
        rt.readiness.tables_recovered.set()
        n = load_user_vectors(rt)
        tune_gc()
        rt.readiness.users_loaded.set()
        log.info("tables recovered; %d user vectors loaded", n)

    @app.on_partitions_revoked.connect
    async def on_revoked(app_, revoked, **kwargs) -> None:
        forget_caches()
