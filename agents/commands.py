"""Operator commands on the app (``recstream <command>`` / ``faust -A recstream.app``)."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

import faust
from faust.cli import argument, option
import click

from recstream.runtime import Runtime


def line_key(line: bytes) -> bytes | None:
    """The user id of a movielog line as its Kafka key (None when there is none)."""
    parts = line.split(b",", 2)
    if len(parts) >= 2 and parts[1].isdigit() and len(parts[1]) <= 12:
        return str(int(parts[1])).encode()
    return None


async def ensure_topic(bootstrap: list[str], topic: str, partitions: int,
                       replication: int = 1) -> None:
    await ensure_topics(bootstrap, {topic: partitions}, replication)


async def ensure_topics(bootstrap: list[str], wanted: dict[str, int], replication: int = 1
                        ) -> list[str]:
    """Create the topics in ``wanted`` (name → partitions) that do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    created = []
    try:
        existing = set(await admin.list_topics())
        for name, partitions in wanted.items():
            if name in existing:
                continue
            try:
                await admin.create_topics([NewTopic(name, partitions, replication)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    return created


async def replay_file(bootstrap: list[str], topic: str, partitions: int, path: Path,
                      rate: float = 0.0, limit: int = 0) -> int:
    """Produce each line of ``path`` to ``topic``, keyed by user id; → lines sent."""
    await ensure_topic(bootstrap, topic, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10,
                                max_batch_size=512 * 1024, acks="all")
    await producer.start()
    sent = 0
    start = time.monotonic()
    try:
        with open(path, "rb") as lines:
            for raw in lines:
                line = raw.rstrip(b"\r\n")
                if not line and not raw.strip():
                    continue
                await producer.send(topic, value=line, key=line_key(line))
                sent += 1
                if limit and sent >= limit:
                    break
                if rate > 0 and sent % 100 == 0:
                    ahead = sent / rate - (time.monotonic() - start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def register(app: faust.App, rt: Runtime) -> None:
    s = rt.settings

    @app.command(
        argument("path", type=click.Path(exists=True, dir_okay=False)),
        option("--rate", type=float, default=0.0,
                         help="lines per second (0: as fast as the broker takes them)"),
        option("--limit", type=int, default=0, help="stop after this many lines"),
        name="replay",
    )
    async def replay(self, path: str, rate: float, limit: int) -> None:
        """Produce a movielog file into the movielog topic (keyed by user id)."""
        started = time.monotonic()
        sent = await replay_file(s.bootstrap_servers, s.topic, s.partitions, Path(path),
                                 rate, limit)
        took = time.monotonic() - started
        self.say(f"replayed {sent} lines from {path} to {s.topic} in {took:.1f}s")
