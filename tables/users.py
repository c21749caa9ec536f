"""Typed access to the per-user tables, with a write-back cache of decoded rows.

Ingest applies a micro-batch of events to decoded :class:`UserHistory`
objects and writes each dirty user once, as the last event that touched it.
The cache (bounded, LRU) saves a RocksDB read and a decode per event; it is
cleared on rebalance so a partition that moved away and back is re-read.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import faust
import numpy as np
from faust.types import EventT

from tables.codecs import (
    UserHistory,
    decode_history,
    decode_vector_generation,
    encode_history,
    encode_vector,
    user_key,
)
from tables.changelog import ChangelogWriter
from tables.context import get_in, partition_for


class UserStore:
    def __init__(self, history: faust.Table, vectors: faust.Table, changelog: ChangelogWriter,
                 *, cache_size: int = 50_000, history_limit: int = 200) -> None:
        self.changelog = changelog
        self.history_table = history
        self.vectors_table = vectors
        self.cache_size = cache_size
        self.history_limit = history_limit
        self._cache: OrderedDict[int, UserHistory] = OrderedDict()

    def history(self, user: int, event: EventT) -> UserHistory:
        """The user's history (cached; an unknown user gets an empty one, not stored).

        Read as ``event`` (one of this user's): inside a stream Faust's store
        reads only the partition of the *current* event, which in a micro-batch
        is whichever event came last, not necessarily this user's.
        """
        cached = self._cache.get(user)
        if cached is not None:
            self._cache.move_to_end(user)
            return cached
        history = decode_history(get_in(self.history_table, user_key(user), event))
        self._remember(user, history)
        return history

    def peek(self, user: int) -> Optional[UserHistory]:
        """Read without caching (serving path: no current event, all partitions)."""
        cached = self._cache.get(user)
        if cached is not None:
            return cached
        raw = self._read_own_partition(self.history_table, user_key(user))
        return decode_history(raw) if raw else None

    @staticmethod
    def _read_own_partition(table: faust.Table, key: bytes) -> Optional[bytes]:
        """``table.get(key)`` from the partition ``key`` hashes to, when it is local.

        Every user key is written in its own partition (tables.context), so one RocksDB
        get answers: Faust's read without a current event checks its key index, then every
        local partition, behind the table's sensors and key codec (#11: the monitor and
        cold start peek at first-seen users).  A partition that is not local (or a store
        without partitions) takes Faust's path, which gives the same answer.
        """
        dbs = getattr(table.data, "_dbs", None)
        if dbs is not None:
            partitions = table.changelog_topic.partitions or table.app.conf.topic_partitions
            db = dbs.get(partition_for(key, partitions))
            if db is not None:
                return db.get(key)
        return table.get(key)

    def _remember(self, user: int, history: UserHistory) -> None:
        self._cache[user] = history
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def save_history(self, user: int, history: UserHistory, event: EventT) -> None:
        await self.put_history(user, self.encode_history(history), event)

    def encode_history(self, history: UserHistory) -> bytes:
        """The record to write for ``history`` as it is now (trimmed, progress marked saved)."""
        history.trim(self.history_limit)
        history.mark_saved()
        return encode_history(history)

    async def put_history(self, user: int, raw: bytes, event: EventT) -> None:
        """Write an encoded history (a snapshot taken by :meth:`encode_history`)."""
        await self.changelog.put(self.history_table, user_key(user), raw, event)

    def vector(self, user: int, event: EventT, generation: int = 0
               ) -> Optional[tuple[float, np.ndarray]]:
        """The stored vector if it was learnt under model ``generation`` (else None)."""
        raw = get_in(self.vectors_table, user_key(user), event)
        if not raw:
            return None
        bias, vector, stored_generation = decode_vector_generation(raw)
        return (bias, vector) if stored_generation == generation else None

    async def save_vector(self, user: int, bias: float, vector: np.ndarray,
                          event: EventT, generation: int = 0) -> None:
        await self.put_vector(user, encode_vector(bias, vector, generation), event)

    async def put_vector(self, user: int, raw: bytes, event: EventT) -> None:
        await self.changelog.put(self.vectors_table, user_key(user), raw, event)

    def forget_cache(self) -> None:
        self._cache.clear()
