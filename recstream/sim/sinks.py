"""Where lines go: Kafka (keyed by user), a file, or memory; and the ground-truth file.

Every sink takes batches of ``(user_id, line)``.  The Kafka key is the user id
so each user's events land in one partition under the default murmur2
partitioner — the partition the recommender's worker for that user owns.
The producer lingers and batches so it is not the simulator's bottleneck;
delivery failures are counted, not fatal.  ``aiokafka`` is imported only when a
Kafka sink starts, so file and memory runs (tests, ``--no-kafka``) never load it.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import IO, Any, Protocol, Sequence

import orjson

log = logging.getLogger(__name__)
Batch = Sequence[tuple[int, str | bytes]]


class Sink(Protocol):
    async def start(self) -> None: ...
    async def write(self, batch: Batch) -> None: ...
    async def flush(self) -> None: ...
    async def close(self) -> None: ...


class MemorySink:
    """Keeps every line (tests)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.keys: list[int] = []

    async def start(self) -> None:
        pass

    async def write(self, batch: Batch) -> None:
        for key, line in batch:
            self.keys.append(key)
            self.lines.append(line if isinstance(line, str) else line.decode("utf-8", "replace"))

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        pass


class FileSink:
    """One line per record, appended; ``-`` is stdout."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    async def start(self) -> None:
        if self.path == "-":
            self._file = sys.stdout.buffer
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab", buffering=1 << 20)

    async def write(self, batch: Batch) -> None:
        assert self._file is not None
        self._file.write(b"".join((l.encode() if isinstance(l, str) else l) + b"\n" for _, l in batch))

    async def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    async def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            if self.path != "-":
                self._file.close()
            self._file = None


class KafkaSink:
    """aiokafka producer; creates the topic with ``partitions`` partitions when missing."""

    def __init__(self, bootstrap: list[str], topic: str, *, partitions: int = 8,
                 replication: int = 1, linger_ms: int = 20, outage_s: int = 300) -> None:
        self.bootstrap, self.topic, self.outage_s = bootstrap, topic, outage_s
        self.partitions, self.replication, self.linger_ms = partitions, replication, linger_ms
        self.failed = 0
        self.idempotent = False
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        await self.ensure_topic()
        # Idempotent where the broker can (#12): a batch retried after its first send was
        # written but not acknowledged (a broker restart) is written once, not twice (the
        # 30-minute soak found 5 lines twice).  The broker dedupes by producer id and
        # sequence, and aiokafka then retries a batch until it lands (no expiry).  Tansu
        # has no producer ids (InitProducerId answers an error): there the sink stays
        # at-least-once, with ``acks=1`` as before.
        self.idempotent = await idempotence_supported(self.bootstrap)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, linger_ms=self.linger_ms, max_batch_size=1 << 20,
            acks="all" if self.idempotent else 1, enable_idempotence=self.idempotent,
            max_request_size=4 << 20,
            # a batch is retried until it is this old: aiokafka's 40 s default dropped every
            # line produced during a 59 s broker restart (#12 soak: 12,288 lines); a platform
            # producer rides out a broker restart
            request_timeout_ms=self.outage_s * 1000)
        await self._producer.start()

    async def ensure_topic(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            if self.topic not in set(await admin.list_topics()):
                try:
                    await admin.create_topics([NewTopic(self.topic, self.partitions, self.replication)])
                except TopicAlreadyExistsError:
                    pass
        finally:
            await admin.close()

    def _done(self, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            self.failed += 1
            if self.failed in (1, 100, 10_000):
                log.warning("kafka delivery failed (%d so far): %r", self.failed,
                            None if future.cancelled() else future.exception())

    async def write(self, batch: Batch) -> None:
        send = self._producer.send
        for key, line in batch:
            value = line.encode() if isinstance(line, str) else line
            future = await send(self.topic, value, key=str(key).encode())
            future.add_done_callback(self._done)

    async def flush(self) -> None:
        """Until every line sent so far is acknowledged (or failed)."""
        if self._producer is not None:
            await self._producer.flush()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.flush()
            await self._producer.stop()
            self._producer = None


async def idempotence_supported(bootstrap: list[str], patience_s: float = 60.0) -> bool:
    """Whether the broker hands out producer ids (``InitProducerId``).

    A broker that has them but is still loading its transaction coordinator (a fresh or
    just restarted Kafka) answers "load in progress" or "not coordinator": asked again.
    """
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.transaction import InitProducerIdRequest
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    deadline = asyncio.get_running_loop().time() + patience_s
    try:
        await client.bootstrap()
        while True:
            response = await client.send(client.get_random_node(), InitProducerIdRequest(
                transactional_id=None, transaction_timeout_ms=60_000))
            if response.error_code not in COORDINATOR_NOT_READY or \
                    asyncio.get_running_loop().time() > deadline:
                return response.error_code == 0
            await asyncio.sleep(0.5)
    except KafkaError:
        return False
    finally:
        await client.close()


# COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
COORDINATOR_NOT_READY = (14, 15, 16)


class TruthWriter:
    """Ground truth as JSON lines, apart from the stream the recommender reads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab", buffering=1 << 20)

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class MemoryTruth(TruthWriter):
    """Ground truth kept in a list (tests, in-process evaluation)."""

    def __init__(self) -> None:
        super().__init__("")
        self.records: list[dict[str, Any]] = []

    def open(self) -> None:
        pass

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass
