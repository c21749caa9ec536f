"""Writing a table on behalf of a particular event.

Faust's RocksDB store and changelog pick the partition of a write from the
*current event* (a context variable set while a stream iterates).  Our agents
take events in micro-batches and write each dirty key once at the end of the
batch, so they set the current event explicitly to the last event that
touched the key.  This module is the one place that touches that Faust
internal; the partition is always the key's own (the ingest agents only apply
events that arrived in the partition their key hashes to).
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Iterator

from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.types import EventT


@contextlib.contextmanager
def as_event(event: EventT) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
