"""Nothing lost, nothing wrong through a broker restart and a worker ``kill -9`` (issue #12).

The soak's integrity half, small and on its own Apache Kafka (it is restarted, so it cannot
be the session's shared broker): two workers ingest the real sample lines (1% corrupted the
way the simulator corrupts them) produced at a steady rate by the simulator's own Kafka
sink, while the broker is stopped and started on its data dir and one worker is killed and
restarted.  Then ``bench/soak_check.py`` accounts for everything from the broker: every
line produced is in the topic exactly once, every rejected line is quarantined, every
user's ratings and watch starts are held, every movie counter is exact.

Opt-in (``RECSTREAM_INTEGRITY_FAULTS=1``): it takes 15-25 minutes on the shared box and it
does not pass yet.  On main it failed with 83 rejected lines of one partition missing from
the quarantine and the pipeline's later hops unconsumed; on #12 phase 5's branch one worker,
after five rebalances in four minutes, never resumed its movie-updates partitions and stopped
committing one movielog partition (Faust's livelock warnings for 15+ minutes), not diagnosed
(docs/benchmarks.md, "Issue #12 phase 5").
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from bench.soak_check import check, pipeline_lag, verdict
from bench.soak_explain import explain
from recstream.kafka import line_key
from recstream.settings import Settings
from recstream.sim.scenarios import corrupt
from recstream.sim.sinks import KafkaSink
from bench.soak import start_kafka  # patient: a loaded box starts Kafka slowly
from tests.brokers import free_port, stop_kafka
from tests.conftest import sample_path
from tests.integration.conftest import Worker, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get("RECSTREAM_INTEGRITY_FAULTS"),
                                 reason="opt-in, does not pass yet: RECSTREAM_INTEGRITY_FAULTS=1")]
RATE = 1000.0  # lines per second


def lines_to_produce(seed: int = 12) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = [l for l in sample_path("movielog_lines.txt").read_text().split("\n") if l.strip()]
    return [corrupt(l, rng) if rng.random() < 0.01 else l for l in lines]


def produce(bootstrap: str, topic: str, lines: list[str], out: Path, done: dict) -> None:
    """The simulator's sink at ``RATE`` lines/s; every line also written to ``out``."""
    async def run() -> None:
        sink = KafkaSink([bootstrap], topic, partitions=4)
        await sink.start()
        started = time.monotonic()
        with out.open("w") as f:
            for k in range(0, len(lines), 100):
                batch = [(int(key) if (key := line_key(l.encode())) else 0, l)
                         for l in lines[k:k + 100]]
                await sink.write(batch)
                f.write("".join(l + "\n" for _, l in batch))
                ahead = (k + 100) / RATE - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await sink.close()
        done["failed"] = sink.failed

    asyncio.run(run())


def test_a_broker_restart_and_a_kill9_lose_and_duplicate_nothing(tmp_path, movie_api):
    port = free_port()
    handle = start_kafka(port, tmp_path / "kafka", controller_port=free_port())
    broker = f"kafka://{handle.bootstrap_servers}"
    run = uuid.uuid4().hex[:8]
    app_id, topic = f"integrity-{run}", f"movielog-{run}"
    workers = []
    for name in ("a", "b"):
        w = Worker(broker, app_id, topic, tmp_path / f"data-{name}", tmp_path / f"worker-{name}.log",
                   api_url=movie_api.url)
        w.env.update(RECSTREAM_RETRAIN_EVERY_H="0", RECSTREAM_RETRAIN_MIN_NEW_INTERACTIONS="0")
        workers.append(w)
    produced = tmp_path / "produced.log"
    try:
        for w in workers:
            w.start(timeout=240)
        lines = lines_to_produce()
        done: dict = {}
        producer = threading.Thread(target=produce, args=(handle.bootstrap_servers, topic, lines,
                                                          produced, done))
        producer.start()
        time.sleep(12)
        stop_kafka(handle)  # the broker restart: down while lines keep coming
        time.sleep(3)
        handle = start_kafka(port, handle.data_dir, controller_port=handle.controller_port)
        time.sleep(10)
        workers[1].kill9()  # and a worker dies and comes back on its own disk
        workers[1].start(timeout=240)
        producer.join(600)
        assert not producer.is_alive() and done.get("failed") == 0, done
        settings = Settings.from_env(workers[0].env)
        wait_for(lambda: not any(asyncio.run(pipeline_lag(settings, topic)).values()), 300,
                 "the workers to consume and commit every line, on every hop")
        # Lines keyed by user land in their user's partition: applied where they are read,
        # by the group's leader and by the other worker alike (none re-keyed).
        assert [w.metric("recstream_rekeyed_total") for w in workers] == [0, 0]
        for w in workers:
            w.stop()
        report = asyncio.run(check(settings, produced))
        problems = verdict(report)
        explained = asyncio.run(explain(settings, report["detail"])) if problems else None
        assert not problems, (problems, explained)
        assert report["lines_in_topic"] == len(lines) and report["rejected"] > 300
        assert report["ratings_expected"] > 1000 and report["movie_counters_checked"] > 1000
    finally:
        for w in workers:
            w.stop()
        stop_kafka(handle)
