"""Publishes the provenance of every answer on ``<app>-recommendations``.

The view only appends a tuple to a bounded deque (a few hundred nanoseconds);
a task drains it every ``DRAIN_EVERY_S``, encodes the records and hands them
to the producer, so Kafka never sits on the request path.  When the deque is
full (the broker has been unreachable for a long while) the oldest records
are dropped and counted in ``recstream_provenance_dropped_total``: serving
never waits for telemetry.

Records are JSON with Faust's record metadata, so downstream consumers can
read them as plain JSON or as :class:`recstream.records.RecommendationServed`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import Any

import orjson

from recstream.kafka import AppProducer
from recstream.modelupdates import CurrentModel
from tables.codecs import user_key

log = logging.getLogger(__name__)
DRAIN_EVERY_S = 0.05
MAX_PENDING = 50_000
NAMESPACE = {"ns": "recstream.RecommendationServed"}


def new_request_id() -> str:
    return os.urandom(8).hex()


class ProvenancePublisher:
    """Answers queued by the view, published by a task to ``topic`` (see the module doc)."""

    def __init__(self, *, topic: Any, producer: AppProducer, current_model: CurrentModel,
                 stream_clock: Any, worker_id: str, dropped: Any,
                 max_pending: int = MAX_PENDING) -> None:
        self.topic = topic
        self.producer = producer
        self.current_model = current_model
        self.stream_clock = stream_clock  # has .stream_time (the Recommender's clock)
        self.worker_id = worker_id
        self.pending: deque = deque()
        self.max_pending = max_pending
        self.code_version = ""
        self.published = 0
        self._dropped = dropped

    def record(self, request_id: str, user: int, line: str, source: str, latency_ms: float,
               guardrails: list[str], fallback_reason: str = "", *, arm: str = "",
               teams: str = "") -> None:
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self._dropped.inc()
        model = self.current_model
        self.pending.append((request_id, time.time(), self.stream_clock.stream_time, user, line,
                             model.label, model.generation, source, latency_ms, guardrails,
                             fallback_reason, arm, teams))

    def encode(self, item: tuple) -> tuple[bytes, bytes]:
        (request_id, at, stream_time, user, line, version, generation, source, latency_ms,
         guardrails, reason) = item[:11]
        arm, teams = item[11:13] if len(item) > 12 else ("", "")
        body = {"request_id": request_id, "time": at, "stream_time": stream_time, "user": user,
                "movies": line.split(",") if line else [], "model_version": version,
                "generation": generation, "source": source,
                "latency_ms": round(latency_ms, 3), "worker": self.worker_id,
                "fallback_reason": reason, "guardrails": guardrails, "arm": arm, "teams": teams,
                "code_version": self.code_version, "__faust": NAMESPACE}
        return user_key(user) if user >= 0 else b"", orjson.dumps(body)

    async def drain(self) -> int:
        topic = self.topic
        sent = 0
        while self.pending:
            item = self.pending[0]
            key, value = self.encode(item)
            await self.producer.produce(topic, key or None, value)
            if self.pending and self.pending[0] is item:  # (not dropped meanwhile)
                self.pending.popleft()
            sent += 1
        self.published += sent
        return sent


def register(app, publisher: ProvenancePublisher, users_loaded: asyncio.Event
             ) -> ProvenancePublisher:
    """Drain ``publisher`` in a task once the worker's users are loaded."""

    @app.task
    async def publish_provenance() -> None:
        from recstream.version import code_version
        loop = asyncio.get_running_loop()
        publisher.code_version = await loop.run_in_executor(None, code_version)
        await users_loaded.wait()
        while True:
            try:
                await publisher.drain()
            except Exception:  # the producer is down: keep the records, retry later
                log.warning("provenance publish failed; %d pending", len(publisher.pending),
                            exc_info=True)
                await asyncio.sleep(1.0)
            await asyncio.sleep(DRAIN_EVERY_S)

    return publisher
