"""Every worker follows the item broadcast and the movie catalogue, all partitions.

A plain aiokafka consumer without a consumer group assigns itself every
partition of both topics and reads them from the beginning (the topics are
compacted in production, so that is one record per movie), keeping the
in-memory :class:`~tables.memory.ItemIndex` equal to the movies' owners'
state within a fraction of a second.  ``items_loaded`` is set once the
follower has caught up with the end offsets it saw at start.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from recstream.kafka import reader

from recstream.modelupdates import CurrentModel
from recstream.parts import Readiness
from tables.broadcast import decode_item_state
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender

log = logging.getLogger(__name__)
REANSWER_S = 30.0


class ItemFollower:
    """Every worker's copy of the item model: the broadcast and metadata topics, all partitions."""

    def __init__(self, *, items: ItemIndex, current_model: CurrentModel, users: UserIndex,
                 recommender: Recommender, readiness: Readiness, broadcast: Any,
                 metadata: Any, bootstrap_servers: Any, progress: Any = None) -> None:
        self.items, self.current_model, self.users = items, current_model, users
        self.recommender, self.readiness = recommender, readiness
        self.topics = (broadcast, metadata)
        self.bootstrap_servers = bootstrap_servers
        self.broadcast_topic = broadcast.get_topic_name()
        self.metadata_topic = metadata.get_topic_name()
        self.applied = 0
        # #11: the pipeline counter (recstream.prometheus), optional: broadcasts applied.
        self._broadcasts = progress.labels("broadcast_applied") if progress else None
        # Item states of a newer model generation than this worker serves yet: applied
        # when it swaps to that generation (see agents.model_follower).
        self.ahead: dict[str, tuple[int, float, np.ndarray]] = {}
        # Movies newly confirmed by the movie API since answers were last invalidated:
        # they may now enter answers ranked without them (at most every REANSWER_S).
        self.confirmed = 0
        self._reanswered_at = 0.0

    def apply(self, topic: str, key: bytes, value: bytes) -> None:
        if value is None or key is None:
            return
        movie = key.decode()
        items = self.items
        if topic == self.broadcast_topic:
            bias, factors, pop, pop_time, plays, generation = decode_item_state(value)
            current = self.current_model.generation
            if generation > current:
                self.ahead[movie] = (generation, bias, factors)
            if generation != current:  # another model's factor space: popularity only
                bias = factors = None
            items.update(movie, bias=bias, factors=factors, pop_score=pop, pop_time=pop_time,
                         plays=plays)
            if self._broadcasts is not None:
                self._broadcasts.inc()
        else:
            meta = orjson.loads(value)
            # Confirmed by the movie API; flags computed from its raw object when it was
            # normalised (recstream.movie_api).  A record without them fails closed.
            row = items.row(movie)
            was_safe = bool(items.safe_for_all[row])
            items.set_flags(movie, adult=meta.get("safe_for_all") is not True,
                            minors_ok=meta.get("safe_for_minors") is True)
            self.confirmed += bool(items.safe_for_all[row]) and not was_safe
            items.set_cost(movie, meta.get("licence_cost"))  # normalised: float or None
        self.applied += 1

    def apply_ahead(self, generation: int) -> int:
        """After a swap to ``generation``: apply the states that arrived before it."""
        ahead, self.ahead = self.ahead, {}
        applied = 0
        for movie, (gen, bias, factors) in ahead.items():
            if gen == generation:
                self.items.update(movie, bias=bias, factors=factors)
                applied += 1
            elif gen > generation:
                self.ahead[movie] = (gen, bias, factors)
        return applied

    async def run(self) -> None:
        readiness = self.readiness
        await readiness.model_loaded.wait()  # factors are applied by generation
        for topic in self.topics:
            await topic.maybe_declare()
        consumer = reader(self.bootstrap_servers)
        await consumer.start()
        try:
            tps = await self._all_partitions(consumer)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            caught_up = not any(end.values())
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batches.items():
                    for record in records:
                        try:
                            self.apply(tp.topic, record.key, record.value)
                        except (ValueError, orjson.JSONDecodeError) as exc:
                            log.warning("bad record on %s: %s", tp.topic, exc)
                if self.confirmed and readiness.items_loaded.is_set() and \
                        time.monotonic() - self._reanswered_at > REANSWER_S:
                    self.confirmed, self._reanswered_at = 0, time.monotonic()
                    self.recommender.refresh_fallback()
                    self.users.invalidate_all()
                if not caught_up:
                    positions = {tp: await consumer.position(tp) for tp in tps}
                    caught_up = all(positions[tp] >= end[tp] for tp in tps)
                if caught_up and not readiness.items_loaded.is_set():
                    self.recommender.refresh_fallback()
                    self.users.invalidate_all()
                    readiness.items_loaded.set()
                    log.info("item follower caught up: %d movies", len(self.items))
                await asyncio.sleep(0)
        finally:
            await consumer.stop()

    async def _all_partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        tps = []
        for topic in (self.broadcast_topic, self.metadata_topic):
            for _ in range(100):
                parts = consumer.partitions_for_topic(topic)
                if parts:
                    break
                await consumer._client.force_metadata_update()  # topic just created
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"topic {topic} has no partitions")
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        return tps


def register(app, follower: ItemFollower) -> ItemFollower:

    @app.task
    async def follow_items() -> None:
        await follower.run()

    return follower
