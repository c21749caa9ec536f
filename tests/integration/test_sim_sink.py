"""The simulator's Kafka sink on real brokers: idempotent where the broker can be (#12)."""
from __future__ import annotations

import asyncio
import uuid

from recstream.kafka import reader
from recstream.sim.sinks import KafkaSink, idempotence_supported
from tests.integration.conftest import hostport


def test_the_sink_is_idempotent_on_kafka_and_still_writes_on_tansu(broker):
    """Apache Kafka hands out producer ids (a retried batch is written once); Tansu answers
    InitProducerId with an error, so there the sink stays at-least-once — and must still
    deliver every line (an idempotent producer on Tansu would fail every send)."""
    bootstrap = [hostport(broker)]
    topic = f"sink-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[bool, bool, int, int]:
        supported = await idempotence_supported(bootstrap)
        sink = KafkaSink(bootstrap, topic, partitions=2)
        await sink.start()
        await sink.write([(user, f"2025-01-01T00:00:00,{user},GET /rate/m+{user}=4")
                          for user in range(500)])
        await sink.close()
        consumer = reader(bootstrap)
        await consumer.start()
        try:
            consumer.subscribe([topic])
            got = 0
            for _ in range(40):
                batches = await consumer.getmany(timeout_ms=250)
                got += sum(len(records) for records in batches.values())
                if got >= 500 and not batches:
                    break
        finally:
            await consumer.stop()
        return supported, sink.idempotent, sink.failed, got

    supported, idempotent, failed, got = asyncio.run(run())
    assert supported == idempotent == broker.startswith("kafka://")
    assert failed == 0 and got == 500
