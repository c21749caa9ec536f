"""Keeps precomputed answers fresh: stale users are re-ranked in batches.

Every ``refresh_interval_s`` up to ``refresh_batch`` stale users are scored in
one matrix product in an executor thread (numpy releases the GIL there, so
the event loop keeps serving), then their rows are stored as fresh unless the
user changed again meanwhile.
"""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from recstream.prometheus import Metrics
from recstream.parts import Readiness
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender


class AnswerRefresher:
    """Re-ranks stale users' answers: reads the indexes, writes only the users' answer rows."""

    def __init__(self, *, users: UserIndex, items: ItemIndex, recommender: Recommender,
                 batch: int, top_k: int, refreshed: Any) -> None:
        self.users, self.items, self.recommender = users, items, recommender
        self.batch, self.top_k, self.refreshed = batch, top_k, refreshed

    async def once(self) -> int:
        users, items, rec = self.users, self.items, self.recommender
        if not users.dirty or len(items) == 0:
            return 0
        rows = []
        while users.dirty and len(rows) < self.batch:
            rows.append(users.dirty.pop())
        rows_arr = np.array(rows, np.int64)
        exclusions = rec.exclusions(rows_arr)
        n = len(items)
        # Views, not copies: growth swaps in new arrays and in-place row updates during the
        # product only make that row's scores a moment fresher (see tables.memory).
        args = (users.factors[rows_arr], users.minor[rows_arr], exclusions, items.factors[:n],
                items.bias[:n], rec.prior()[:n], items.safe_for_all[:n],
                items.safe_for_minors[:n], self.top_k)
        loop = asyncio.get_running_loop()
        answers = await loop.run_in_executor(None, rec.ranker, *args)  # plain or mitigated
        still_clean = np.array([r not in users.dirty for r in rows], bool)
        users.store_answers(rows_arr[still_clean], answers[still_clean])
        self.refreshed.inc(int(still_clean.sum()))
        return len(rows)


def register(app, refresher: AnswerRefresher, *, readiness: Readiness, metrics: Metrics,
             interval_s: float) -> None:
    users, items, recommender = refresher.users, refresher.items, refresher.recommender

    @app.task
    async def refresh_answers() -> None:
        await readiness.items_loaded.wait()
        while True:
            done = await refresher.once()
            if not done:
                await asyncio.sleep(interval_s)
            else:
                await asyncio.sleep(0)

    @app.timer(2.0, name="refresh_fallback")
    async def refresh_fallback() -> None:
        recommender.refresh_fallback()
        metrics.table_size.labels("items").set(len(items))
        metrics.table_size.labels("users").set(len(users))
        metrics.ready.set(0 if readiness.missing() else 1)  # also without /readyz calls
