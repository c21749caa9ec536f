"""The soak's faults, injected on a fixed schedule, and how long each took to recover from.

Each fault records when it was injected (``at``), when the injection itself was over
(``done``: the killed worker ready again, the broker serving again, the API unstalled, the
promotion announced) and the movielog end offsets at ``at``.  A sampler thread reads the
worker group's committed offsets every second; recovery of ingest is the first sample at
which every partition has committed past those ends (everything produced before the fault
is consumed).  Recovery of answers is read from the front's per-second counts afterwards.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from aiokafka import TopicPartition

from recstream.kafka import admin, end_offsets, reader
from recstream.settings import Settings

# (fraction of the run, fault)
SCHEDULE = ((0.15, "promotion"), (0.30, "worker_kill9"), (0.45, "broker_restart"),
            (0.60, "api_stall"), (0.75, "promotion"))
CLEAN_RUN_S = 5  # answers recovered = this many seconds in a row all 200 within 600 ms


async def positions(settings: Settings, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """(committed, end) offsets per partition of ``topic`` for the worker group."""
    client, consumer = admin(settings.bootstrap_servers), reader(settings.bootstrap_servers,
                                                                 request_timeout_ms=5000)
    try:  # started inside: a broker that is down must not leave them open
        await client.start()
        await consumer.start()
        committed = await client.list_consumer_group_offsets(settings.app_id)
        parts = await consumer._client._wait_on_metadata(topic)  # Kafka: not in bootstrap
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await end_offsets(consumer, settings, tps)
        return ({tp.partition: committed[tp].offset if tp in committed else 0 for tp in tps},
                {tp.partition: ends[tp] for tp in tps})
    finally:
        await consumer.stop()
        await client.close()


class Faults:
    def __init__(self, settings: Settings, topic: str, workers: list, handle: Any,
                 stall_flag: Path, work: Path, *, seed: int, start_kafka: Callable,
                 stop_kafka: Callable, schedule=SCHEDULE) -> None:
        self.schedule = schedule
        self.settings, self.topic, self.workers, self.handle = settings, topic, workers, handle
        self.stall_flag, self.work, self.seed = stall_flag, work, seed
        self.start_kafka, self.stop_kafka = start_kafka, stop_kafka
        self.events: list[dict[str, Any]] = []
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.stop = threading.Event()

    # -- sampling --------------------------------------------------------------------------
    def _sample_forever(self) -> None:
        while not self.stop.is_set():
            try:
                committed, _ = asyncio.run(asyncio.wait_for(
                    positions(self.settings, self.topic), 10))
                self.samples.append((time.time(), committed))
            except Exception:  # noqa: BLE001 - broker down or restarting: no sample
                pass
            self.stop.wait(1.0)

    def _ends(self) -> dict[int, int]:
        for _ in range(10):
            try:
                return asyncio.run(asyncio.wait_for(positions(self.settings, self.topic), 10))[1]
            except Exception:  # noqa: BLE001
                time.sleep(1)
        return {}

    # -- the schedule ----------------------------------------------------------------------
    def run_schedule(self, started: float, duration_s: float, sim: subprocess.Popen) -> None:
        sampler = threading.Thread(target=self._sample_forever, daemon=True)
        sampler.start()
        try:
            for fraction, name in self.schedule:
                wait = started + fraction * duration_s - time.time()
                if wait > 0:
                    time.sleep(wait)
                event = {"fault": name, "at": time.time(), "ends": self._ends(),
                         "during_traffic": sim.poll() is None}
                print(f"soak: {name} at +{event['at'] - started:.0f}s", file=sys.stderr,
                      flush=True)
                try:
                    event.update(getattr(self, name)())
                except Exception as exc:  # noqa: BLE001 - reported, and the soak goes on
                    event["error"] = repr(exc)[:300]
                event["done"] = time.time()
                self.events.append(event)
            sim.wait(timeout=max(1.0, started + duration_s - time.time()) + 600)
            time.sleep(2)
        finally:
            self.stop.set()
            sampler.join(15)
        for event in self.events:
            event["ingest_recovered"] = next(
                (t for t, c in self.samples if t >= event["at"]
                 and all(c.get(p, 0) >= e for p, e in event["ends"].items())), None)

    def promotion(self) -> dict[str, Any]:
        env = self.workers[0].env
        cli = [sys.executable, "-m", "recstream.cli"]
        out = self.work / "promotions.log"
        before = max(w.metric("recstream_model_generation") for w in self.workers)
        with out.open("ab") as log:
            for attempt in range(5):  # a fresh changelog's metadata can lag: train again
                trained = subprocess.run([*cli, "train", "--source", "state"], env=env,
                                         stdout=log, stderr=subprocess.STDOUT, timeout=900)
                if trained.returncode == 0:
                    break
                time.sleep(3)
            else:
                raise RuntimeError(f"recstream train failed 5 times (see {out})")
            listed = subprocess.run([*cli, "models", "list", "--json"], env=env,
                                    capture_output=True, timeout=300, check=True)
            rows = json.loads(listed.stdout.decode().strip().splitlines()[-1])
            newest = max(rows, key=lambda r: str(r["created_at"]))["version"]
            promote = subprocess.Popen([*cli, "models", "promote", newest, "--force"], env=env,
                                       stdout=log, stderr=subprocess.STDOUT)
        announced = time.time()
        deadline = announced + 300
        served = None
        while time.time() < deadline:  # the workers' swap is the test, not the CLI's exit
            if served is None and min(w.metric("recstream_model_generation")
                                      for w in self.workers) > before:
                served = time.time()
            if served is not None and promote.poll() is not None:
                break
            time.sleep(0.5)
        if promote.poll() is None:  # its announcement is out; a slow Faust shutdown is not
            promote.kill()
            promote.wait(10)
        return {"version": newest, "generation": before + 1, "served_by_all": served,
                "promote_exit": promote.returncode}

    def worker_kill9(self) -> dict[str, Any]:
        victim = self.workers[1]
        victim.kill9()
        killed = time.time()
        victim.start(timeout=300)
        return {"worker": "b", "ready_after_s": round(time.time() - killed, 1)}

    def broker_restart(self) -> dict[str, Any]:
        h = self.handle
        self.stop_kafka(h)
        stopped = time.time()
        self.handle = self.start_kafka(h.port, h.data_dir, controller_port=h.controller_port)
        return {"down_s": round(time.time() - stopped, 1)}

    def api_stall(self) -> dict[str, Any]:
        stall_s = 20.0
        self.stall_flag.touch()
        time.sleep(stall_s)
        self.stall_flag.unlink(missing_ok=True)
        return {"stalled_s": stall_s}


def recovery_report(events: list[dict[str, Any]], secs: dict[int, list[int]]) -> list[dict]:
    """Per fault: failed answers after it and seconds until answers and ingest recovered."""
    out = []
    last = max(secs) if secs else 0
    ats = [int(e["at"]) for e in events]
    for k, event in enumerate(events):
        at = int(event["at"])
        # the misses of the whole window up to the next fault: a stall can come long after
        # the injection (after training, after a restart), past the first clean 5 s
        upto = ats[k + 1] if k + 1 < len(ats) else last + 1
        window = [(s, secs[s]) for s in range(at, upto) if s in secs]
        missed = [(s, row[0] - row[2]) for s, row in window if row[2] < row[0]]
        clean_from, run, failed = None, 0, 0
        for s in range(at, last + 1):
            row = secs.get(s, [0, 0, 0, 0])
            if row[2] == row[0]:
                run += 1
                if run >= CLEAN_RUN_S and clean_from is None:
                    clean_from = s - CLEAN_RUN_S + 1
            else:
                run = 0
                if clean_from is None:
                    failed += row[0] - row[2]
        ingest = event.get("ingest_recovered")
        served = event.get("served_by_all")
        ends = [t for t in (clean_from, ingest, served) if t is not None]
        out.append({
            "fault": event["fault"], "at": round(event["at"], 1),
            "injection_s": round(event["done"] - event["at"], 1),
            "answers_recovered_s": None if clean_from is None else round(clean_from - at, 1),
            "answers_failed_before_recovery": failed,
            "window_requests": sum(row[0] for _, row in window),
            "window_missed": sum(n for _, n in missed),
            "window_seconds_missing": len(missed),
            "window_seconds_none_in_time": sum(1 for _, row in window if row[0] and not row[2]),
            "window_last_miss_s": missed[-1][0] - at if missed else None,
            "ingest_recovered_s": None if ingest is None else round(ingest - event["at"], 1),
            "recovered_s": (round(max(ends) - event["at"], 1) if ingest is not None and
                            (served is not None or event["fault"] != "promotion") else None),
            **{k: v for k, v in event.items() if k in ("version", "generation", "worker", "error",
                                                       "promote_exit", "during_traffic",
                                                       "ready_after_s", "down_s", "stalled_s")},
        })
    return out
