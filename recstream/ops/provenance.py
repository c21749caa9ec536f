"""``recstream provenance``: from one served answer to the data and code behind it.

Given a request id (``X-Request-Id`` of our answer), or a user and a time on
the stream's clock (the time of the platform's outcome line), it finds:

1. the answer's record on ``<app>-recommendations`` (published by the worker
   that answered: model version + generation, source, guardrails, latency,
   worker, code version);
2. the platform's outcome line for it in ``movielog`` (same user, same movie
   list, nearest time on the stream clock — the platform does not echo our
   request id, and its clock is the stream's, which the record carries as
   ``stream_time``);
3. the model version's manifest in the registry: training window and topic
   offsets, data hash, code version, hyperparameters, offline metrics, and the
   logged decision that promoted it.

Both topics are keyed by user, so a lookup by user reads one partition of
each; a lookup by request id alone reads every partition of the
recommendations topic.
"""
from __future__ import annotations

import datetime
import time
from typing import Any, Callable, Optional

import orjson
from aiokafka import TopicPartition

from models.registry import Registry, RegistryError
from recstream.modelupdates import ONLINE
from recstream.parsing import parse_line, parse_time
from recstream.records import RecommendationOutcome
from recstream.settings import Settings
from recstream.kafka import end_offsets, reader
from recstream.topics import topic_names
from tables.codecs import user_key
from tables.context import partition_for

MATCH_WINDOW_S = 3600.0  # stream-clock distance beyond which an outcome line is not ours
SCAN_TIMEOUT_S = 120.0


class ScanDeadline(RuntimeError):
    """A scan stopped at its deadline before the end of every partition: results are partial."""

    def __init__(self, topic: str, unread: list[int], timeout_s: float, found: int) -> None:
        super().__init__(f"scan of {topic} stopped at its {timeout_s:.0f}s deadline with "
                         f"partitions {unread} not read to their end ({found} matches so far): "
                         "the answer would be partial")
        self.topic, self.unread, self.found = topic, unread, found


async def scan(settings: Settings, topic: str, keep: Callable[[Optional[bytes], bytes], bool],
               partitions: Optional[list[int]] = None, timeout_s: float = SCAN_TIMEOUT_S
               ) -> list[tuple[int, int, bytes]]:
    """``(partition, offset, value)`` of every record up to the current end that ``keep`` accepts.

    Raises :class:`ScanDeadline` if ``timeout_s`` passes first: a partial scan
    could name the wrong answer or none, so it is never returned as if complete.
    """
    consumer = reader(settings.bootstrap_servers)
    await consumer.start()
    found = []
    try:
        available = consumer.partitions_for_topic(topic)
        if available is None:
            await consumer._client.force_metadata_update()
            available = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(available)
               if partitions is None or p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await end_offsets(consumer, settings, tps)
        deadline = time.monotonic() + timeout_s
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < end[tp] and record.value is not None and \
                            keep(record.key, record.value):
                        found.append((tp.partition, record.offset, record.value))
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        if remaining:
            raise ScanDeadline(topic, sorted(tp.partition for tp in remaining), timeout_s,
                               len(found))
        return found
    finally:
        await consumer.stop()


async def served(settings: Settings, *, request_id: str = "", user: Optional[int] = None,
                 timeout_s: float = SCAN_TIMEOUT_S) -> list[dict[str, Any]]:
    """Provenance records for a request id and/or a user."""
    topic = topic_names(settings)["recommendations"]
    needle = request_id.encode() if request_id else None
    partitions = None if user is None else [partition_for(user_key(user), settings.partitions)]

    def keep(key: Optional[bytes], value: bytes) -> bool:
        return (needle is None or needle in value) and (user is None or key == user_key(user))

    records = [orjson.loads(value) for _, _, value in
               await scan(settings, topic, keep, partitions, timeout_s)]
    return [r for r in records if not request_id or r.get("request_id") == request_id]


async def outcome_lines(settings: Settings, user: int, timeout_s: float = SCAN_TIMEOUT_S
                        ) -> list[dict[str, Any]]:
    """The platform's outcome lines for ``user`` in movielog, parsed, with their offsets."""
    needle = f",{user},recommendation request".encode()
    rows = await scan(settings, settings.topic, lambda k, v: needle in v, timeout_s=timeout_s)
    out = []
    for partition, offset, value in rows:
        line = value.decode("utf-8", "replace")
        parsed = parse_line(line, rating_min=settings.rating_min, rating_max=settings.rating_max)
        if isinstance(parsed, RecommendationOutcome) and parsed.user == user:
            out.append({"line": line, "partition": partition, "offset": offset,
                        "time": parsed.time, "status": parsed.status,
                        "movies": list(parsed.movies), "latency_ms": parsed.latency_ms})
    return out


def nearest(candidates: list[dict[str, Any]], at: float, key: str,
            movies: Optional[list[str]] = None) -> Optional[dict[str, Any]]:
    """The candidate nearest ``at`` on ``key``, preferring those with the same movie list."""
    if movies is not None:
        same = [c for c in candidates if c.get("movies") == movies]
        candidates = same or candidates
    close = [c for c in candidates if abs(float(c.get(key) or 0.0) - at) <= MATCH_WINDOW_S]
    return min(close, key=lambda c: abs(float(c.get(key) or 0.0) - at), default=None)


def model_provenance(registry: Registry, version: str) -> dict[str, Any]:
    if version == ONLINE:
        return {"version": ONLINE, "note": "no promoted batch model yet: vectors were learnt "
                                           "online from their init vectors"}
    base = version.removesuffix("-unloaded")
    try:
        manifest = registry.manifest(base)
    except RegistryError as exc:
        return {"version": version, "error": str(exc)}
    promotions = [d for d in registry.decisions()
                  if d.get("action") in ("promote", "rollback") and d.get("version") == base]
    keys = ("model", "training_window", "topic_offsets", "data_hash", "code_version",
            "hyperparameters", "rows", "metrics", "created_at", "source", "window")
    return {"version": base, **{k: manifest[k] for k in keys if k in manifest},
            "promotions": promotions}


def stream_time(text: str) -> float:
    """An epoch number, or a time as the stream writes it (read as UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    parsed = parse_time(text.strip())
    if parsed is None:
        raise ValueError(f"not a time: {text!r} (epoch seconds or 2026-11-22T20:01:02)")
    return parsed


async def lookup(settings: Settings, *, request_id: str = "", user: Optional[int] = None,
                 at: Optional[float] = None, timeout_s: float = SCAN_TIMEOUT_S
                 ) -> dict[str, Any]:
    if not request_id and (user is None or at is None):
        raise ValueError("give a request id, or a user and a time")
    record: Optional[dict[str, Any]] = None
    outcome: Optional[dict[str, Any]] = None
    if request_id:
        records = await served(settings, request_id=request_id, user=user, timeout_s=timeout_s)
        record = records[0] if records else None
        if record is not None:
            user = int(record["user"])
            lines = await outcome_lines(settings, user, timeout_s)
            outcome = nearest(lines, float(record.get("stream_time") or 0.0), "time",
                              record.get("movies"))
    else:
        lines = await outcome_lines(settings, user, timeout_s)
        outcome = nearest(lines, at, "time")
        records = await served(settings, user=user, timeout_s=timeout_s)
        ref = outcome["time"] if outcome else at
        record = nearest(records, ref, "stream_time",
                         outcome["movies"] if outcome and outcome["status"] == 200 else None)
    result: dict[str, Any] = {"request_id": request_id or (record or {}).get("request_id"),
                              "user": user, "served": record, "outcome": outcome}
    if record is not None:
        result["model"] = model_provenance(Registry(settings.registry_path),
                                           str(record.get("model_version", ONLINE)))
        result["served_at"] = datetime.datetime.fromtimestamp(
            float(record["time"]), datetime.timezone.utc).isoformat()
    return result
