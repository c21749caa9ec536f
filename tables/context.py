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


def get_in(table, key: bytes, event: EventT) -> bytes | None:
    """``table.get(key)`` as ``event`` reads it (in its partition): one RocksDB get.

    Our tables have raw keys and values (no codec), so this is what Faust's store does
    under :func:`as_event` without the context variable, key codec and existence check
    it pays per call (#11).  Other stores (e.g. ``memory://``) take Faust's path.
    """
    store = table.data
    db_for = getattr(store, "_db_for_partition", None)
    if db_for is None:
        with as_event(event):
            return table.get(key)
    return db_for(event.message.partition).get(key)


def put_in(table, key: bytes, value: bytes, event: EventT) -> None:
    """``table.data[key] = value`` as ``event`` writes it (RocksDB put in its partition)."""
    store = table.data
    db_for = getattr(store, "_db_for_partition", None)
    if db_for is None or not hasattr(store, "_key_index"):
        with as_event(event):
            store[key] = value
        return
    partition = event.message.partition
    store._key_index[key] = partition  # what Faust's Store._set keeps, for reads by key
    db_for(partition).put(key, value)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
