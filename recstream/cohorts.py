"""Watch-through per cohort of recommended views, in state that survives a restart (#12).

A *cohort* is the recommended views (watch starts attributed to one of our answers) that
started in one bucket of stream time, per partition.  Each bucket holds its starts, its
completions, and the views still open (``(user, movie) -> start``), so a completion that
arrives after a restart is still matched to its start and counted in its own cohort.
Buckets are persisted by the monitor's one writer (``agents.monitoring.DriftStore``) in the
``drift_windows`` table next to the drift slices, key ``<partition>|cohort|<bucket start>``,
value JSON ``{"s": starts, "d": done, "v": [[user, movie, start], ...]}``; a restarted
worker merges the buckets of the partitions it is given back (``load``).

Memory and table size are bounded by the kept span (the gauge's hour plus the completion
lag) and by ``max_open`` views per partition; a view beyond that cap still counts as a
start, and its completion is then not seen (counted in ``dropped``).
"""
from __future__ import annotations

import math
from typing import Iterable, Iterator

import orjson

FEATURE = "cohort"


class CohortBucket:
    __slots__ = ("starts", "done", "open", "dirty")

    def __init__(self) -> None:
        self.starts = 0
        self.done = 0
        self.open: dict[tuple[int, str], float] = {}
        self.dirty = False

    def encode(self) -> bytes:
        return orjson.dumps({"s": self.starts, "d": self.done,
                             "v": [[u, m, t] for (u, m), t in self.open.items()]})


class Cohorts:
    """Per-partition buckets of recommended-view starts, their completions and open views."""

    def __init__(self, *, bucket_s: float, keep_s: float, max_open: int = 50_000) -> None:
        self.bucket_s = float(bucket_s)
        self.keep = max(1, math.ceil(keep_s / bucket_s))  # buckets kept behind the head
        self.max_open = max_open
        self.buckets: dict[tuple[int, int], CohortBucket] = {}
        self.where: dict[tuple[int, str], tuple[int, int]] = {}  # open view -> its bucket
        self.open_per_partition: dict[int, int] = {}
        self.stored: set[tuple[int, int]] = set()
        self.dropped = 0

    def _bucket(self, partition: int, t: float, now: float, create: bool) -> CohortBucket | None:
        b = int(t // self.bucket_s)
        head = int(now // self.bucket_s)
        if b > head or b <= head - self.keep:
            return None
        found = self.buckets.get((partition, b))
        if found is None and create:
            found = self.buckets[(partition, b)] = CohortBucket()
        return found

    def start(self, partition: int, user: int, movie: str, t: float, now: float) -> None:
        bucket = self._bucket(partition, t, now, create=True)
        if bucket is None:
            return
        bucket.starts += 1
        bucket.dirty = True
        view = (user, movie)
        if view in self.where or self.open_per_partition.get(partition, 0) >= self.max_open:
            self.dropped += view not in self.where
            return
        bucket.open[view] = t
        self.where[view] = (partition, int(t // self.bucket_s))
        self.open_per_partition[partition] = self.open_per_partition.get(partition, 0) + 1

    def complete(self, user: int, movie: str) -> float | None:
        """A view crossed the completion threshold → its start time if it was a recommended
        view still open (counted once), else None."""
        key = self.where.pop((user, movie), None)
        if key is None:
            return None
        bucket = self.buckets.get(key)
        if bucket is None:
            return None
        start = bucket.open.pop((user, movie), None)
        self.open_per_partition[key[0]] -= 1
        bucket.done += 1
        bucket.dirty = True
        return start

    def totals_between(self, lo: float, hi: float) -> tuple[int, int]:
        """(starts, done) of the buckets whose start lies in ``[lo, hi)``."""
        first, last = math.ceil(lo / self.bucket_s), math.ceil(hi / self.bucket_s)
        starts = done = 0
        for (_, b), bucket in self.buckets.items():
            if first <= b < last:
                starts += bucket.starts
                done += bucket.done
        return starts, done

    # -- persistence (driven by the DriftStore) -----------------------------------------
    def key(self, partition: int, b: int) -> bytes:
        return f"{partition}|{FEATURE}|{b * self.bucket_s:.3f}".encode()

    def dirty(self) -> Iterator[tuple[int, int, CohortBucket]]:
        for (p, b), bucket in self.buckets.items():
            if bucket.dirty:
                yield p, b, bucket

    def advance(self, now: float) -> list[tuple[int, int]]:
        """Drop buckets that left the kept span → the dropped ones that were stored."""
        head = int(now // self.bucket_s)
        gone = [key for key in self.buckets if key[1] <= head - self.keep]
        for key in gone:
            self._drop(key)
        stored = [key for key in self.stored if key[1] <= head - self.keep]
        self.stored.difference_update(stored)
        return stored

    def _drop(self, key: tuple[int, int]) -> None:
        bucket = self.buckets.pop(key)
        for view in bucket.open:
            self.where.pop(view, None)
        self.open_per_partition[key[0]] = self.open_per_partition.get(key[0], 0) - len(bucket.open)

    def forget(self, keep: set[int]) -> None:
        for key in [k for k in self.buckets if k[0] not in keep]:
            self._drop(key)
        self.stored = {k for k in self.stored if k[0] in keep}

    def load(self, items: Iterable[tuple[bytes, bytes]], partitions: set[int],
             now: float) -> list[bytes]:
        """Merge stored buckets of ``partitions`` → keys that are stale (for deletion)."""
        head = int(now // self.bucket_s)
        stale = []
        for key, value in items:
            try:
                p_text, feature, start = key.decode().split("|")
                if feature != FEATURE:
                    continue
                p, b = int(p_text), round(float(start) / self.bucket_s)
                data = orjson.loads(value)
                views = [(int(u), str(m), float(t)) for u, m, t in data["v"]]
                starts, done = int(data["s"]), int(data["d"])
            except (ValueError, KeyError, TypeError):
                stale.append(key)
                continue
            if p not in partitions:
                continue
            if (now > 0.0 and not head - self.keep < b <= head) or \
                    abs(b * self.bucket_s - float(start)) > 1e-3:
                stale.append(key)
                continue
            bucket = self.buckets.setdefault((p, b), CohortBucket())
            bucket.starts += starts
            bucket.done += done
            for user, movie, t in views:
                if (user, movie) not in self.where:
                    bucket.open[(user, movie)] = t
                    self.where[(user, movie)] = (p, b)
                    self.open_per_partition[p] = self.open_per_partition.get(p, 0) + 1
            self.stored.add((p, b))
        return stale
