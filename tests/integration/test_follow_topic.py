"""``recstream.kafka.follow_topic`` on real brokers: what the model and experiment
followers read -- every record from the beginning, then the ones produced later."""
from __future__ import annotations

import asyncio
import uuid

from recstream.kafka import ensure_topic, follow_topic, producer
from tests.integration.conftest import hostport, load_scale


async def _follow(servers: list[str], topic: str) -> list[bytes]:
    await ensure_topic(servers, topic, 1, 1)
    out = producer(servers)
    await out.start()
    seen: list[bytes] = []
    both = asyncio.Event()

    async def handle(records: list) -> None:
        seen.extend(r.value for r in records)
        if len(seen) >= 3:
            both.set()

    try:
        for value in (b"one", b"two"):  # before the follower starts
            await out.send_and_wait(topic, value, key=b"k")
        task = asyncio.create_task(follow_topic(servers, topic, handle, timeout_ms=100))
        await asyncio.sleep(1.0)
        await out.send_and_wait(topic, b"three", key=b"k")  # while it follows
        await asyncio.wait_for(both.wait(), 30 * load_scale())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await out.stop()
    return seen


def test_follow_topic_reads_from_the_beginning_then_follows(broker):
    servers = [hostport(broker)]
    topic = f"follow-{uuid.uuid4().hex[:8]}"
    assert asyncio.run(_follow(servers, topic)) == [b"one", b"two", b"three"]
