"""Windows over stream (event) time for the monitor: O(1) per event, bounded memory.

* :class:`SlidingCounts` — a ring of fixed-width time buckets holding a few
  counters each; "the last 5 minutes" is the last ``span / width`` buckets up to
  and including the one stream time is in.  Late events land in their own
  bucket while it is in the ring; older (or future) ones are refused.
* :class:`DriftWindows` — per-partition histograms of the drift features in
  slices of ``window / SLICES`` of stream time, the unit persisted in the
  ``drift_windows`` table (key ``<partition>|<feature>|<slice start>``, value
  little-endian int64 counts).  The recent window is the last ``SLICES``
  complete slices, the reference window the ``SLICES`` before them.
"""
from __future__ import annotations

import bisect
import math
from typing import Iterable, Iterator

import numpy as np

SLICES = 6  # slices per drift window: the comparison slides every window / 6
ACTIVITY_BINS = 10  # events per active user in a slice: 1, 2-3, 4-7, ..., >= 512
MAX_ACTIVE_USERS = 50_000  # per partition and open slice (~70 B each); beyond: uncounted
KINDS = ("WatchMinute", "Rating", "AccountCreated", "RecommendationOutcome")
LATENCY_EDGES_MS = (0, 10, 25, 50, 100, 200, 300, 400, 500, 600, 800, 1000, 2000, 5000)
WATCH_EDGES_MIN = (0, 5, 10, 15, 20, 30, 45, 60, 90, 120, 150, 180, 240)
# feature -> test used for its p-value ("chi2": categorical, "ks": ordered bins)
FEATURES = {"event_kind": "chi2", "rating": "chi2", "watch_length": "ks",
            "latency_ms": "ks", "user_activity": "ks"}
EVENT_KIND, RATING, WATCH_LENGTH, LATENCY, ACTIVITY = range(5)


class SlidingCounts:
    """``n_fields`` counters summed over the last ``span_s`` of stream time."""

    def __init__(self, n_fields: int, *, span_s: float, width_s: float) -> None:
        self.width = float(width_s)
        self.n = max(1, math.ceil(span_s / width_s))
        self.n_fields = n_fields
        self.ids: list[int | None] = [None] * self.n
        self.rows = [[0.0] * n_fields for _ in range(self.n)]

    def bucket(self, t: float) -> int:
        return int(t // self.width)

    def row(self, t: float, now: float) -> list[float] | None:
        """The counters of the bucket of time ``t``; None when it is outside the window."""
        b = int(t // self.width)
        head = int(now // self.width)
        if b > head or b <= head - self.n:
            return None
        slot = b % self.n
        if self.ids[slot] != b:
            self.ids[slot] = b
            self.rows[slot] = [0.0] * self.n_fields
        return self.rows[slot]

    def add(self, t: float, field: int, amount: float, now: float) -> bool:
        """Count ``amount`` at time ``t``; False when ``t`` is outside the window at ``now``."""
        row = self.row(t, now)
        if row is None:
            return False
        row[field] += amount
        return True

    def totals_between(self, lo: float, hi: float, now: float) -> list[float]:
        """Sums over the buckets whose start lies in ``[lo, hi)`` (and in the window)."""
        head = int(now // self.width)
        first, last = math.ceil(lo / self.width), math.ceil(hi / self.width)
        out = [0.0] * self.n_fields
        for b, row in zip(self.ids, self.rows):
            if b is not None and head - self.n < b <= head and first <= b < last:
                for i, v in enumerate(row):
                    out[i] += v
        return out

    def totals(self, now: float) -> list[float]:
        head = int(now // self.width)
        out = [0.0] * self.n_fields
        for b, row in zip(self.ids, self.rows):
            if b is not None and head - self.n < b <= head:
                for i, v in enumerate(row):
                    out[i] += v
        return out


class Slice:
    """Drift histograms of one partition over one slice of stream time."""

    __slots__ = ("counts", "users", "dirty")

    def __init__(self, sizes: list[int]) -> None:
        self.counts = [[0] * n for n in sizes]
        self.users: dict[int, int] | None = {}  # events per user; dropped once closed
        self.dirty = False

    def active(self, user: int) -> None:
        users = self.users
        if users is None:
            return
        c = users.get(user)
        if c is None:
            if len(users) >= MAX_ACTIVE_USERS:
                return
            users[user] = 1
            self.counts[ACTIVITY][0] += 1
            return
        users[user] = c = c + 1
        if c & (c - 1) == 0:  # a power of two starts the next log2 bin
            old = (c - 1).bit_length() - 1
            if old < ACTIVITY_BINS - 1:
                hist = self.counts[ACTIVITY]
                hist[old] -= 1
                hist[old + 1] += 1


class DriftWindows:
    """Per-partition drift slices kept for the last two windows of stream time."""

    def __init__(self, window_s: float, rating_min: int, rating_max: int) -> None:
        self.slice_s = window_s / SLICES
        self.rating_min = rating_min
        self.sizes = [len(KINDS), rating_max - rating_min + 1, len(WATCH_EDGES_MIN),
                      len(LATENCY_EDGES_MS), ACTIVITY_BINS]
        self.slices: dict[tuple[int, int], Slice] = {}
        self.stored: set[tuple[int, int]] = set()  # (partition, slice) written to the table
        self._last: tuple[int, int, Slice | None] = (-1, -1, None)

    def slice_for(self, partition: int, t: float, now: float) -> Slice | None:
        """The slice event time ``t`` counts in, or None when it is out of the kept range."""
        s = int(t // self.slice_s)
        last_p, last_s, last = self._last
        if s == last_s and partition == last_p:
            return last
        head = int(now // self.slice_s)
        if s > head or s < head - 2 * SLICES:
            return None
        found = self.slices.get((partition, s))
        if found is None:
            found = self.slices[(partition, s)] = Slice(self.sizes)
            self._drop_old(head)  # a new slice is rare (one per partition per slice)
        self._last = (partition, s, found)
        return found

    def _drop_old(self, head: int) -> None:
        for (p, s), sl in list(self.slices.items()):
            if s < head - 2 * SLICES:
                del self.slices[(p, s)]
            elif s < head - 1:
                sl.users = None  # closed: no late event will need per-user counts

    # -- features of one event (called with the slice from slice_for) -----------------
    def rating(self, sl: Slice, rating: int) -> None:
        hist = sl.counts[RATING]
        i = rating - self.rating_min
        if 0 <= i < len(hist):
            hist[i] += 1

    @staticmethod
    def watch_minute(sl: Slice, minute: int) -> None:
        sl.counts[WATCH_LENGTH][bisect.bisect_right(WATCH_EDGES_MIN, minute) - 1] += 1

    @staticmethod
    def latency(sl: Slice, latency_ms: int) -> None:
        sl.counts[LATENCY][bisect.bisect_right(LATENCY_EDGES_MS, latency_ms) - 1] += 1

    # -- windows -------------------------------------------------------------------------
    def advance(self, now: float) -> list[tuple[int, int]]:
        """Drop slices older than the reference window; → the dropped ones that were stored."""
        head = int(now // self.slice_s)
        self._last = (-1, -1, None)
        self._drop_old(head)
        gone = [(p, s) for (p, s) in self.stored if s < head - 2 * SLICES]
        self.stored.difference_update(gone)
        return gone

    def windows(self, now: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(reference, recent) counts per feature, summed over the partitions held."""
        head = int(now // self.slice_s)
        ref = [np.zeros(n, np.int64) for n in self.sizes]
        cur = [np.zeros(n, np.int64) for n in self.sizes]
        for (_, s), sl in self.slices.items():
            if head - SLICES <= s < head:
                target = cur
            elif head - 2 * SLICES <= s < head - SLICES:
                target = ref
            else:
                continue
            for f, counts in enumerate(sl.counts):
                target[f] += counts
        return ref, cur

    def forget(self, keep: set[int]) -> None:
        """Keep only the partitions in ``keep`` (after a rebalance)."""
        self._last = (-1, -1, None)
        for key in [k for k in self.slices if k[0] not in keep]:
            del self.slices[key]
        self.stored = {k for k in self.stored if k[0] in keep}

    # -- the drift_windows table ---------------------------------------------------------
    def key(self, partition: int, feature: str, s: int) -> bytes:
        return f"{partition}|{feature}|{s * self.slice_s:.3f}".encode()

    def dirty(self) -> Iterator[tuple[int, int, Slice]]:
        for (p, s), sl in self.slices.items():
            if sl.dirty:
                yield p, s, sl

    def encode(self, sl: Slice) -> Iterator[tuple[str, bytes]]:
        for name, counts in zip(FEATURES, sl.counts):
            yield name, np.asarray(counts, "<i8").tobytes()

    def load(self, items: Iterable[tuple[bytes, bytes]], partitions: set[int],
             now: float) -> list[bytes]:
        """Merge stored slices of ``partitions`` into memory (adding counts).

        → keys that are stale (out of range, unknown feature or bin layout) for
        the caller to delete.
        """
        head = int(now // self.slice_s)
        names = list(FEATURES)
        stale = []
        for key, value in items:
            try:
                p_text, feature, start = key.decode().split("|")
                p, s = int(p_text), round(float(start) / self.slice_s)
                f = names.index(feature)
            except ValueError:
                continue
            if p not in partitions:
                continue
            counts = np.frombuffer(value or b"", "<i8")
            out_of_range = now > 0.0 and not head - 2 * SLICES <= s <= head  # 0: no clock yet
            if (counts.shape[0] != self.sizes[f] or out_of_range
                    or abs(s * self.slice_s - float(start)) > 1e-3):
                stale.append(key)
                continue
            sl = self.slices.get((p, s))
            if sl is None:
                sl = self.slices[(p, s)] = Slice(self.sizes)
                if s < head - 1:
                    sl.users = None  # closed; per-user counts are not stored, open ones restart
            hist = sl.counts[f]
            for i, c in enumerate(counts.tolist()):
                hist[i] += c
            self.stored.add((p, s))
        self._last = (-1, -1, None)
        return stale
