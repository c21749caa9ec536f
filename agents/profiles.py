"""Cold start, automated: a new user's first vector from the user API, off the ingest path.

When the user writer first sees a user (an account creation, or a first event of a
user without history) it calls :meth:`ColdStart.want`, which only queues the id.
``coldstart_concurrency`` background workers take queued ids in calls of up to
``api_batch_size``, fetch ``GET /user/<ids>`` (timeout ``api_timeout_s``), match the
self-description's liked / disliked titles against the catalogue
(:class:`~models.titles.TitleIndex`), fold a vector in against the serving item
vectors plus the demographic prior (:func:`~models.coldstart.fold_in`), and produce a
:class:`~recstream.records.UserProfile` keyed by the user onto the user-profiles topic.
The user writer - the one writer of ``user_vectors`` - applies it only while the
user has no vector, and invalidates the user's answer, so the next request is
personalised.  Nothing here writes a table.

The API is asked at most once per user per ``RETRY_AFTER_S`` and at most
``MAX_TRIES`` times: a 404 means no profile (not retried); a 429, a 5xx or a timeout
is counted in ``recstream_api_calls_total{outcome="user_..."}`` and retried later.
The title index is rebuilt in an executor thread when the catalogue has grown; the
prior is refitted every ``PRIOR_REFIT_S`` from this worker's users who have both a
vector and known demographics.  No factor model and no prior yet: no vector, the
user keeps the popularity fallback (demographics and named titles are still stored).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Optional

import aiohttp
import numpy as np
import orjson

from models.coldstart import DemographicPrior, make_profile, relative_reg
from models.titles import TitleIndex
from recstream.api_checks import ApiObjectGate
from recstream.user_api import UserApiUnavailable, get_users, slug_title, users_from_response
from recstream.records import UserProfile
from recstream.kafka import AppProducer
from recstream.prometheus import Metrics
from recstream.modelupdates import CurrentModel
from recstream.parts import Readiness
from recstream.settings import Settings
from tables.codecs import decode_history, user_key
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender
from tables.users import UserStore

log = logging.getLogger(__name__)

RETRY_AFTER_S = 300.0      # one try per user per 5 minutes
COMPLAIN_EVERY_S = 60.0    # at most one log line a minute about an unreachable API
MAX_TRIES = 3
NOT_FOUND_HOLD_S = 86_400.0  # a user the API does not know is not asked for again for a day
QUEUE_LIMIT = 20_000       # ids waiting for a fetch; beyond this new users keep the fallback
MIN_SUPPORT = 5            # plays before an item vector is trusted as a fold-in anchor
REG_RELATIVE = 4.0         # x mean squared item norm (bench/coldstart.py, seed 7)
BIAS_REG = 5.0
PRIOR_SHRINKAGE = 20.0
PRIOR_REFIT_S = 300.0
PRIOR_MIN_USERS = 20
PRIOR_SAMPLE = 5_000       # users without demographics sampled into the global mean
TITLES_CHECK_S = 30.0
TITLES_GROWTH = 0.02       # rebuild the title index when the catalogue grew by 2 %
SCAN_CHUNK = 1_000         # table rows read between two yields to the event loop


class ColdStart:
    """Queue, fetch, match, fold in, publish; reads the indexes and tables, writes none."""

    def __init__(self, *, settings: Settings, users: UserIndex, items: ItemIndex,
                 user_store: UserStore, current_model: CurrentModel, clock: Recommender,
                 movie_catalog: Any, user_history: Any, producer: AppProducer,
                 profiles_topic: Any, metrics: Metrics,
                 describes: Callable[[int], bool] = lambda user: True,
                 gate: ApiObjectGate | None = None) -> None:
        self.describes = describes  # issue #13: False = this user's arm ignores the description
        self._last_complaint = -COMPLAIN_EVERY_S
        self.gate = gate  # #12: user API objects checked against their schema
        self.settings, self.users, self.items, self.user_store = settings, users, items, user_store
        self.current_model, self.clock = current_model, clock
        self.movie_catalog, self.user_history = movie_catalog, user_history
        self.producer, self.profiles_topic = producer, profiles_topic
        self.queue: asyncio.Queue[int] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.tried: dict[int, tuple[int, float]] = {}   # user -> (tries, monotonic time of last)
        self.titles: Optional[TitleIndex] = None
        self.titles_for = -1                            # catalogue size the index was built for
        self.titles_ready = asyncio.Event()
        self.prior = DemographicPrior(shrinkage=PRIOR_SHRINKAGE)
        self.prior_users = 0
        self.demographics: dict[int, tuple[Optional[int], str]] = {}  # this worker's users
        self.calls = {k: metrics.api_calls.labels(f"user_{k}")
                      for k in ("ok", "not_found", "rate_limited", "error", "dropped")}

    # -- the ingest side: never blocks ---------------------------------------------------
    def want(self, user: int) -> None:
        """Queue a fetch of ``user`` unless it was tried recently or too often."""
        if not self.settings.coldstart:
            return
        now = time.monotonic()
        tries, last = self.tried.get(user, (0, -RETRY_AFTER_S))
        if tries >= MAX_TRIES or now - last < RETRY_AFTER_S:
            return
        try:
            self.queue.put_nowait(user)
        except asyncio.QueueFull:
            self.calls["dropped"].inc()
            return
        self.tried[user] = (tries + 1, now)

    def _done(self, user: int, hold_s: float = RETRY_AFTER_S) -> None:
        """No more tries for ``user`` for ``hold_s`` (profiled, not found, no longer cold)."""
        self.tried[user] = (MAX_TRIES, time.monotonic() + hold_s - RETRY_AFTER_S)

    def retry_due(self) -> int:
        """Re-queue users whose last try failed and whose wait is over; forget old entries."""
        now, again, n = time.monotonic(), [], 0
        for user, (tries, last) in list(self.tried.items()):
            if now - last >= RETRY_AFTER_S:
                if tries < MAX_TRIES:
                    again.append(user)
                else:
                    del self.tried[user]
        for user in again:
            if self._cold(user):
                self.want(user)
                n += 1
            else:
                del self.tried[user]
        return n

    # -- fetching ------------------------------------------------------------------------
    def _cold(self, user: int) -> bool:
        """Still worth a fetch: no vector and no profile applied yet."""
        row = self.users.get_row(user)
        if row >= 0 and self.users.has_vector[row]:
            return False
        history = self.user_store.peek(user)
        return history is None or history.profiled is None

    async def run(self) -> None:
        s = self.settings
        await self.titles_ready.wait()
        timeout = aiohttp.ClientTimeout(total=s.api_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._worker(session) for _ in range(s.coldstart_concurrency)))

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        limit = self.settings.api_batch_size
        while True:
            users = [await self.queue.get()]
            while len(users) < limit and not self.queue.empty():
                users.append(self.queue.get_nowait())
            cold = [u for u in dict.fromkeys(users) if self._cold(u)]
            for u in set(users) - set(cold):
                self._done(u)
            if cold:
                await self.fetch(session, cold)

    async def fetch(self, session: aiohttp.ClientSession, users: list[int]) -> int:
        """One API call for ``users``; produces their profiles → how many."""
        s = self.settings
        try:
            outcome, payload = await get_users(session, s.api_url, users)
        except UserApiUnavailable as exc:
            self.calls["error"].inc()
            now = time.monotonic()
            if now - self._last_complaint >= COMPLAIN_EVERY_S:  # one line, not one per batch
                self._last_complaint = now
                log.info("user API unavailable (%s); users are retried later (counted in "
                         "recstream_api_calls_total)", exc)
            return 0
        if outcome == "not_found":
            self.calls["not_found"].inc()
            for u in users:
                self._done(u, NOT_FOUND_HOLD_S)
            return 0
        if outcome != "ok":
            self.calls[outcome].inc()
            return 0
        self.calls["ok"].inc()
        wanted = set(users)
        if self.gate is not None:  # counted and quarantined; parse_user drops unusable ones
            for raw in payload if isinstance(payload, list) else [payload]:
                await self.gate.check("user", raw)
        found = [u if self.describes(u["user"]) else dict(u, likes="", dislikes="")
                 for u in users_from_response(payload) if u["user"] in wanted]
        got = {u["user"] for u in found}
        for u in users:  # answered: found ones are profiled, the others have no profile
            self._done(u, RETRY_AFTER_S if u in got else NOT_FOUND_HOLD_S)
        if not found:
            return 0
        items, n = self.items, len(self.items)
        # Snapshots taken on the loop (growth swaps arrays in; see tables.memory).
        factors, bias, plays, ids = items.factors[:n], items.bias[:n], items.plays[:n], items.ids[:n]
        # A promoted batch model: its items are trained anchors too.
        trained = self.current_model.model.item_row
        prior, titles, mean = self.prior, self.titles, float(self.current_model.global_mean)
        ready = self.prior_users > 0 and prior.global_vector.shape[0] == factors.shape[1]

        def compute() -> list[dict]:
            supported = plays >= MIN_SUPPORT
            if trained:
                supported |= np.fromiter((m in trained for m in ids), bool, n)
            reg = relative_reg(factors, REG_RELATIVE, rows=np.flatnonzero(supported))
            return [make_profile(u, bias_reg=BIAS_REG, titles=titles, row_of=items.row_of, factors=factors,
                                 bias=bias, supported=supported,
                                 prior=prior.prior(u["age"], u["gender"]) if ready else None,
                                 global_mean=mean, like_rating=float(s.rating_max),
                                 dislike_rating=float(s.rating_min), reg=reg) for u in found]

        made = await asyncio.get_running_loop().run_in_executor(None, compute)
        now = self.clock.stream_time or time.time()
        for u, fields in zip(found, made):
            self.demographics[u["user"]] = (u["age"] if u["age"] >= 0 else None, u["gender"])
            profile = UserProfile(time=now, user=u["user"], age=u["age"], gender=u["gender"],
                                  occupation=u["occupation"], model_version=self.current_model.label,
                                  generation=self.current_model.generation, **fields)
            await self.producer.produce(self.profiles_topic, user_key(u["user"]),
                                        profile.dumps())
        return len(found)

    # -- the title index and the prior, off the hot path -----------------------------------
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


def register(app, cold: ColdStart, writer: Any, *, readiness: Readiness) -> ColdStart:
    """Hook the cold start into ``writer`` (the user writer) and start its tasks."""
    if not cold.settings.coldstart:
        return cold
    writer.on_new_user = cold.want

    @app.task
    async def fetch_profiles() -> None:
        await cold.run()

    @app.task
    async def maintain_coldstart() -> None:
        await readiness.tables_recovered.wait()
        await readiness.items_loaded.wait()
        await cold.load_demographics()
        refit_at = 0.0
        while True:
            try:
                await cold.rebuild_titles()
                if time.monotonic() >= refit_at:
                    await cold.refit_prior()
                    refit_at = time.monotonic() + PRIOR_REFIT_S
                cold.retry_due()
            except (ValueError, RuntimeError, KeyError) as exc:  # keep serving; log and retry
                log.warning("cold start maintenance failed: %s", exc)
            await asyncio.sleep(TITLES_CHECK_S)

    return cold
