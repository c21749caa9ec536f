"""recstream.batches: the raw-batch queue and the drain's per-partition bookkeeping (#11)."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

from aiokafka import TopicPartition
from faust.types import TP
from mode.utils.queues import FlowControlEvent

from recstream.batches import BatchedDrain, BatchQueue, batched_url

TP0, TP1 = TP("movielog", 0), TP("movielog", 1)


class Consumer:
    def __init__(self) -> None:
        self.full: list[TP] = []
        self.dropped: list[TP] = []
        self._paused_partitions: set[TP] = set()
        self._buffered_partitions: set[TP] = set()

    def on_buffer_full(self, tp: TP) -> None:
        assert type(tp) is TP  # Faust asserts it of its active partitions
        self.full.append(tp)

    def on_buffer_drop(self, tp: TP) -> None:
        assert type(tp) is TP
        self.dropped.append(tp)


def fake_app() -> SimpleNamespace:
    return SimpleNamespace(flow_control=FlowControlEvent(), consumer=Consumer(),
                           monitor=SimpleNamespace(stream_inbound_time={}))


def events(tp: TP, offsets) -> list:
    return [SimpleNamespace(message=SimpleNamespace(tp=tp, offset=o)) for o in offsets]


def offsets(batch) -> list[tuple[int, int]]:
    return [(e.message.tp.partition, e.message.offset) for e in batch]


async def test_get_takes_up_to_n_in_order_across_and_within_lists():
    app = fake_app()
    queue = BatchQueue(app, high=100, low=10)
    queue.put(TP0, events(TP0, range(3)))
    queue.put(TP1, events(TP1, range(5)))
    assert offsets(await queue.get(4, 0)) == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert len(queue) == 4
    assert offsets(await queue.get(10, 0)) == [(1, 1), (1, 2), (1, 3), (1, 4)]
    assert len(queue) == 0 and set(app.monitor.stream_inbound_time) == {TP0, TP1}


async def test_get_waits_for_the_first_event_then_at_most_within_s_for_more():
    queue = BatchQueue(fake_app(), high=100, low=10)
    taker = asyncio.ensure_future(queue.get(10, 0.05))
    await asyncio.sleep(0.01)
    assert not taker.done()
    queue.put(TP0, events(TP0, [0]))
    await asyncio.sleep(0)
    queue.put(TP0, events(TP0, [1]))  # within the wait: same batch
    assert offsets(await asyncio.wait_for(taker, 1)) == [(0, 0), (0, 1)]


async def test_a_full_queue_takes_its_partitions_out_of_the_fetch_until_drained():
    app = fake_app()
    queue = BatchQueue(app, high=6, low=2)
    queue.put(TP0, events(TP0, range(4)))
    assert app.consumer.full == []
    queue.put(TopicPartition("movielog", 1), events(TP1, range(4)))  # 8 >= 6: it pauses
    # (the drain's records are keyed by aiokafka's TopicPartition; Faust wants its TP)
    queue.put(TP1, events(TP1, range(4, 6)))  # once
    assert app.consumer.full == [TP1]
    await queue.get(5, 0)  # 5 left: still above low
    assert app.consumer.dropped == []
    await queue.get(4, 0)  # 1 left
    assert app.consumer.dropped == [TP1]


async def test_the_apps_flow_control_clear_drops_the_queue_and_resumes_fetching():
    app = fake_app()
    queue = BatchQueue(app, high=2, low=1)
    queue.put(TP0, events(TP0, range(3)))
    app.flow_control.clear()  # what Faust does at a revocation: unacked, so re-read
    assert len(queue) == 0 and app.consumer.dropped == [TP0]
    queue.put(TP1, events(TP1, [7]))
    assert offsets(await queue.get(5, 0)) == [(1, 7)]


async def test_a_partition_faust_paused_for_a_rebalance_is_not_resumed_by_a_clear():
    app = fake_app()
    queue = BatchQueue(app, high=2, low=1)
    queue.put(TP0, events(TP0, range(3)))
    app.consumer._paused_partitions.add(TP0)  # Faust's pause_partitions(assignment)
    app.consumer._buffered_partitions.add(TP0)
    app.flow_control.clear()
    assert app.consumer.dropped == [] and TP0 not in app.consumer._buffered_partitions


class Drain(BatchedDrain):
    """The drain's bookkeeping over Faust's consumer state, without a broker."""

    def __init__(self) -> None:
        self._read_offset: dict = defaultdict(lambda: None)
        self.gaps: list = []
        self._n_acked, self._commit_every, self.commits = 0, 3, 0
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True))

    async def _add_gap(self, tp, start, end) -> None:
        self.gaps.append((start, end))

    async def commit(self) -> None:
        self.commits += 1

    def _to_message(self, tp, record):
        return SimpleNamespace(tp=tp, offset=record.offset, key=b"k", value=record.value)


def records(*offsets_) -> list:
    return [SimpleNamespace(offset=o, value=b"line %d" % o) for o in offsets_]


async def test_events_of_a_partition_skip_what_was_read_and_note_gaps_as_faust_does():
    drain = Drain()
    first = await drain._events_of(TP0, records(0, 1, 2))
    assert [e.message.offset for e in first] == [0, 1, 2] and first[0].value == b"line 0"
    assert drain._read_offset[TP0] == 2 and drain.gaps == []
    # Offsets before the read offset are dropped (the read offset itself is delivered
    # again, as Faust does); a hole (a control record) is a gap for the commit.
    again = await drain._events_of(TP0, records(1, 2, 3, 5, 6, 9))
    assert [e.message.offset for e in again] == [2, 3, 5, 6, 9]
    assert drain.gaps == [(4, 5), (7, 9)]  # Faust's _add_gap(previous + 1, offset)
    assert drain._read_offset[TP0] == 9
    drain._n_acked = 3  # the commit Faust's drain makes every ``commit_every`` acks
    await drain._events_of(TP0, records(10))
    assert drain.commits == 1 and drain._n_acked == 0
    assert await drain._events_of(TP0, records(3, 4)) == []


def test_kafka_urls_select_the_batched_transport_and_tansu_keeps_its_own():
    assert batched_url("kafka://a:9092;b:9093") == "recstream-kafka://a:9092;b:9093"
    assert batched_url("aiokafka://a:1") == "recstream-kafka://a:1"
    assert batched_url("tansu://127.0.0.1:9092") == "tansu://127.0.0.1:9092"
