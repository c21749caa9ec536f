"""Keeps precomputed answers fresh: stale users are re-ranked in batches.

Every ``refresh_interval_s`` up to ``refresh_batch`` stale users are scored in
one matrix product in an executor thread (numpy releases the GIL there, so
the event loop keeps serving), then their rows are stored as fresh unless the
user changed again meanwhile.
"""
from __future__ import annotations

import asyncio

import numpy as np

from recstream.runtime import Runtime
from tables.serving import Recommender


async def refresh_once(rt: Runtime) -> int:
    users = rt.users
    if not users.dirty or len(rt.items) == 0:
        return 0
    rows = []
    while users.dirty and len(rows) < rt.settings.refresh_batch:
        rows.append(users.dirty.pop())
    rows_arr = np.array(rows, np.int64)
    rec = rt.recommender
    exclusions = rec.exclusions(rows_arr)
    n = len(rt.items)
    items = rt.items
    # Views, not copies: growth swaps in new arrays and in-place row updates during the
    # product only make that row's scores a moment fresher (see tables.memory).
    args = (users.factors[rows_arr], users.minor[rows_arr], exclusions, items.factors[:n],
            items.bias[:n], rec.prior()[:n], items.safe_for_all[:n], items.safe_for_minors[:n],
            rt.settings.top_k)
    loop = asyncio.get_running_loop()
    answers = await loop.run_in_executor(None, Recommender.score_and_rank, *args)
    still_clean = np.array([r not in users.dirty for r in rows], bool)
    users.store_answers(rows_arr[still_clean], answers[still_clean])
    rt.metrics.refreshed.inc(int(still_clean.sum()))
    return len(rows)


def register(app, rt: Runtime) -> None:
    @app.task
    async def refresh_answers() -> None:
        await rt.readiness.items_loaded.wait()
        while True:
            done = await refresh_once(rt)
            if not done:
                await asyncio.sleep(rt.settings.refresh_interval_s)
            else:
                await asyncio.sleep(0)

    @app.timer(2.0, name="refresh_fallback")
    async def refresh_fallback() -> None:
        rt.recommender.refresh_fallback()
        rt.metrics.table_size.labels("items").set(len(rt.items))
        rt.metrics.table_size.labels("users").set(len(rt.users))
        rt.metrics.ready.set(0 if rt.readiness.missing() else 1)  # also without /readyz calls
