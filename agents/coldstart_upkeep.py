"""The cold start's upkeep: its queues and retries, the title index, the demographic prior.

A mixin of :class:`agents.profiles.ColdStart` (it reads the same indexes and tables):
the title index is rebuilt in an executor thread when the catalogue has grown by
``TITLES_GROWTH``; the prior is refitted from this worker's users who have both a
vector and known demographics; demographics already stored are read back after a
restart.  Nothing here writes a table.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Optional

import numpy as np
import orjson

from models.coldstart import DemographicPrior
from models.titles import TitleIndex
from recstream.user_api import slug_title
from tables.codecs import decode_history

log = logging.getLogger("agents.profiles")

RETRY_AFTER_S = 300.0      # one try per user per 5 minutes
MAX_TRIES = 3
PRIOR_SHRINKAGE = 20.0
PRIOR_MIN_USERS = 20
PRIOR_SAMPLE = 5_000       # users without demographics sampled into the global mean
TITLES_GROWTH = 0.02       # rebuild the title index when the catalogue grew by 2 %
SCAN_CHUNK = 1_000         # table rows read between two yields to the event loop


class ColdStartUpkeep:
    """Queues, retries, title index, stored demographics, prior (state on the ColdStart)."""

    def pending(self) -> int:
        return self.queue.qsize() + self.urgent.qsize()

    async def _take(self, limit: int) -> list[int]:
        """The next call's ids: new accounts alone (a small, quick call) if any wait."""
        while self.urgent.empty() and self.queue.empty():
            await self._wake.wait()
            self._wake.clear()
        q = self.queue if self.urgent.empty() else self.urgent
        users = [q.get_nowait()]
        while len(users) < limit and not q.empty():
            users.append(q.get_nowait())
        return users

    def retry_due(self) -> int:
        """Re-queue users whose last try failed and whose wait is over; forget old entries."""
        now, again, n = time.monotonic(), [], 0
        for user, (tries, last) in list(self.tried.items()):
            if now - last >= RETRY_AFTER_S:
                if tries < MAX_TRIES:
                    again.append(user)
                else:
                    del self.tried[user]
        stale = time.monotonic()
        self.fresh = {u: f for u, f in self.fresh.items() if f[3] > stale}
        for user in again:
            if self._cold(user):
                self.want(user)
                n += 1
            else:
                del self.tried[user]
        return n

    async def rebuild_titles(self, *, force: bool = False) -> bool:
        """Rebuild the title index if the catalogue grew; → whether it was rebuilt."""
        items = self.items
        n = len(items)
        if not force and self.titles_for >= 0 and n < self.titles_for * (1 + TITLES_GROWTH) + 1:
            return False
        meta: dict[str, tuple[str, Optional[int]]] = {}
        for k, (key, raw) in enumerate(self.movie_catalog.items()):
            if k % SCAN_CHUNK == SCAN_CHUNK - 1:
                await asyncio.sleep(0)
            try:
                record = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("title"), str):
                meta[key.decode() if isinstance(key, bytes) else str(key)] = (
                    record["title"], record.get("year") if isinstance(record.get("year"), int)
                    else None)
        ids = list(items.ids[:n])
        plays = np.asarray(items.plays[:n], np.float64)
        entries = [(m, *(meta.get(m) or slug_title(m))) for m in ids]
        index = await asyncio.get_running_loop().run_in_executor(
            None, lambda: TitleIndex(entries, popularity=plays))
        self.titles, self.titles_for = index, n
        self.titles_ready.set()
        log.info("title index rebuilt: %d movies (%d titles from metadata)", n, len(meta))
        return True

    async def load_demographics(self) -> int:
        """Demographics already stored in ``user_history`` (after a restart)."""
        count = 0
        for k, (key, raw) in enumerate(self.user_history.items()):
            if k % SCAN_CHUNK == SCAN_CHUNK - 1:
                await asyncio.sleep(0)
            if not raw or b'"p":' not in raw:
                continue
            history = decode_history(raw)
            if history.profiled is not None:
                self.demographics[int(key)] = (history.age, history.gender)
                count += 1
        return count

    async def refit_prior(self) -> int:
        """Refit the demographic prior on users with a vector and known demographics."""
        users = self.users
        rows = [(users.get_row(u), a, g) for u, (a, g) in self.demographics.items()]
        rows = [(r, a, g) for r, a, g in rows if r >= 0 and users.has_vector[r]]
        if len(rows) < PRIOR_MIN_USERS:
            return 0
        known = np.fromiter((r for r, _, _ in rows), np.int64, len(rows))
        have = np.flatnonzero(users.has_vector[: users.count])
        others = np.setdiff1d(have, known)
        rng = np.random.default_rng(self.settings.seed)
        others = rng.choice(others, min(PRIOR_SAMPLE, others.size), replace=False)
        all_rows = np.r_[known, others].astype(np.int64)
        ages = [a for _, a, _ in rows] + [None] * others.size
        genders = [g for _, _, g in rows] + [""] * others.size
        V, b = users.factors[all_rows].copy(), users.bias[all_rows].copy()
        prior = await asyncio.get_running_loop().run_in_executor(
            None, lambda: DemographicPrior(shrinkage=PRIOR_SHRINKAGE).fit(V, ages, genders, b))
        self.prior, self.prior_users = prior, len(rows)
        return len(rows)
