"""Cold start, automated: a new user's first vector from the user API, off the ingest path.

When the user writer first sees a user (an account creation, or a first event of a
user without history) it calls :meth:`ColdStart.want`, which only queues the id (a
just-created account ahead of the rest).  ``coldstart_concurrency`` background workers
fetch ``GET /user/<ids>`` in calls of up to ``api_batch_size``, match the
self-description's titles against the catalogue (:class:`~models.titles.TitleIndex`),
fold a vector in against the serving item vectors plus the demographic prior
(:func:`~models.coldstart.fold_in`) and produce a :class:`~recstream.records.UserProfile`
onto the user-profiles topic; the user writer (the one writer of ``user_vectors``)
applies it while the user has no vector.  Nothing here writes a table.  Issue #13: a
request for a user without a vector may start (or join) the user's fetch and wait up
to ``coldstart_wait_s`` (agents/coldstart_now.py); a profile made is kept in ``fresh``
and serves until the writer has applied it.  The API is asked at most once
per user per ``RETRY_AFTER_S``, at most ``MAX_TRIES`` times (a 404: not retried; 429,
5xx, timeouts: counted in ``recstream_api_calls_total`` and retried).  Queues, title
index, prior: agents/coldstart_upkeep.py.  No model and no prior yet: no vector.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Optional

import aiohttp
import numpy as np

from agents.coldstart_now import ColdStartNow, LoopLag
from agents.coldstart_upkeep import MAX_TRIES, PRIOR_SHRINKAGE, RETRY_AFTER_S, ColdStartUpkeep
from models.coldstart import DemographicPrior, make_profile, relative_reg
from models.guardrails import ADULT, audience
from models.titles import TitleIndex
from recstream.api_checks import ApiObjectGate
from recstream.user_api import UserApiUnavailable, get_users, users_from_response
from recstream.records import UserProfile
from recstream.kafka import AppProducer
from recstream.prometheus import Metrics
from recstream.modelupdates import CurrentModel
from recstream.parts import Readiness
from recstream.settings import Settings
from tables.codecs import user_key
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender
from tables.users import UserStore

log = logging.getLogger(__name__)

COMPLAIN_EVERY_S = 60.0    # at most one log line a minute about an unreachable API
NOT_FOUND_HOLD_S = 86_400.0  # a user the API does not know is not asked for again for a day
QUEUE_LIMIT = 20_000       # ids waiting for a fetch; beyond this new users keep the fallback
MIN_SUPPORT = 5            # plays before an item vector is trusted as a fold-in anchor
REG_RELATIVE = 4.0         # x mean squared item norm (bench/coldstart.py, seed 7)
BIAS_REG = 5.0
PRIOR_REFIT_S = 300.0
TITLES_CHECK_S = 30.0
API_DOWN_HOLD_S = 10.0     # after a failed request-time call, requests do not wait for a while
FRESH_KEEP_S = 120.0       # a profile just made serves requests until the writer applied it
FRESH_LIMIT = 20_000
ANCHORS_TTL_S = 30.0       # supported anchors and the fold-in penalty, recomputed this often


class ColdStart(ColdStartNow, ColdStartUpkeep):
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
        self.urgent: asyncio.Queue[int] = asyncio.Queue(maxsize=QUEUE_LIMIT)  # new accounts
        self._wake = asyncio.Event()
        self.session: Optional[aiohttp.ClientSession] = None   # while run() runs
        self.inflight: dict[int, asyncio.Future] = {}          # request-time fetches
        self.fresh: dict[int, tuple[np.ndarray, float, bool, float]] = {}  # made, maybe unapplied
        self._api_down_until, self._asking = 0.0, 0   # request-time fetches running
        self._paid = 1.0  # moving share of request-time waits that gave a vector in time
        self._anchors: tuple = (None,)
        self.tried: dict[int, tuple[int, float]] = {}   # user -> (tries, monotonic time of last)
        self.titles: Optional[TitleIndex] = None
        self.titles_for = -1                            # catalogue size the index was built for
        self.titles_ready = asyncio.Event()
        self.prior = DemographicPrior(shrinkage=PRIOR_SHRINKAGE)
        self.prior_users = 0
        self.demographics: dict[int, tuple[Optional[int], str]] = {}  # this worker's users
        self.calls = {k: metrics.api_calls.labels(f"user_{k}")
                      for k in ("ok", "not_found", "rate_limited", "error", "dropped",
                                "wait_answered", "wait_empty", "not_waited", "late")}  # #13
        self.lag = LoopLag()  # sampled while run() runs: a request's wait is bounded by it

    # -- the ingest side: never blocks ---------------------------------------------------
    def want(self, user: int) -> None:
        """Queue a fetch of ``user`` unless it was tried recently or too often."""
        if not self.settings.coldstart:
            return
        now = time.monotonic()
        tries, last = self.tried.get(user, (0, -RETRY_AFTER_S))
        if tries >= MAX_TRIES or now - last < RETRY_AFTER_S:
            return
        history = self.user_store.peek(user)  # a just-created account jumps the queue
        new = history is not None and history.created is not None and not history.watches
        try:
            (self.urgent if new else self.queue).put_nowait(user)
        except asyncio.QueueFull:
            self.calls["dropped"].inc()
            return
        self._wake.set()
        self.tried[user] = (tries + 1, now)

    def _done(self, user: int, hold_s: float = RETRY_AFTER_S) -> None:
        """No more tries for ``user`` for ``hold_s`` (profiled, not found, no longer cold)."""
        self.tried[user] = (MAX_TRIES, time.monotonic() + hold_s - RETRY_AFTER_S)

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
            self.session = session
            try:
                await asyncio.gather(self.lag.run(), *(self._worker(session)
                                                       for _ in range(s.coldstart_concurrency)))
            finally:
                self.session = None

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        limit = self.settings.api_batch_size
        while True:
            users = await self._take(limit)
            cold = [u for u in dict.fromkeys(users) if self._cold(u) and u not in self.fresh]
            for u in set(users) - set(cold):
                self._done(u)
            if cold:
                await self.fetch(session, cold)

    async def fetch(self, session: aiohttp.ClientSession, users: list[int]) -> int:
        """One API call for ``users``; produces their profiles → how many.

        While it runs, a request for one of ``users`` waits for it (``inflight``)."""
        done = asyncio.get_running_loop().create_future()
        for u in users:
            self.inflight.setdefault(u, done)
        try:
            return await self._fetch(session, users)
        finally:
            for u in users:
                if self.inflight.get(u) is done:
                    del self.inflight[u]
            done.set_result(None)

    async def _fetch(self, session: aiohttp.ClientSession, users: list[int]) -> int:
        s = self.settings
        try:
            outcome, payload = await get_users(session, s.api_url, users)
        except UserApiUnavailable as exc:
            self.calls["error"].inc()
            self._api_down_until = time.monotonic() + API_DOWN_HOLD_S
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
            self._api_down_until = time.monotonic() + API_DOWN_HOLD_S
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
        # Anchors and their penalty: ~0.1 s for 27k x 64 on a busy box, so reused a while.
        key = (n, self.current_model.generation, int(time.monotonic() // ANCHORS_TTL_S))
        held = self._anchors if self._anchors[0] == key else None

        def compute() -> list[dict]:
            if held is not None:
                supported, reg = held[1], held[2]
            else:
                supported = plays >= MIN_SUPPORT
                if trained:
                    supported |= np.fromiter((m in trained for m in ids), bool, n)
                reg = relative_reg(factors, REG_RELATIVE, rows=np.flatnonzero(supported))
                self._anchors = (key, supported, reg)
            return [make_profile(u, bias_reg=BIAS_REG, titles=titles, row_of=items.row_of, factors=factors,
                                 bias=bias, supported=supported,
                                 prior=prior.prior(u["age"], u["gender"]) if ready else None,
                                 global_mean=mean, like_rating=float(s.rating_max),
                                 dislike_rating=float(s.rating_min), reg=reg) for u in found]

        made = await asyncio.get_running_loop().run_in_executor(None, compute)
        now = self.clock.stream_time or time.time()
        for u, fields in zip(found, made):
            self.demographics[u["user"]] = age = (u["age"] if u["age"] >= 0 else None, u["gender"])
            if len(fields["vector"]) == factors.shape[1] and len(self.fresh) < FRESH_LIMIT:
                self.fresh[u["user"]] = (np.asarray(fields["vector"], np.float32), fields["bias"],
                                         audience(age[0]) != ADULT, time.monotonic() + FRESH_KEEP_S)
            profile = UserProfile(time=now, user=u["user"], age=u["age"], gender=u["gender"],
                                  occupation=u["occupation"], model_version=self.current_model.label,
                                  generation=self.current_model.generation, **fields)
            await self.producer.produce(self.profiles_topic, user_key(u["user"]),
                                        profile.dumps())
        return len(found)


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
                    refit_at = time.monotonic() + (PRIOR_REFIT_S if cold.prior_users
                                                   else TITLES_CHECK_S)  # not ready: soon
                cold.retry_due()
            except (ValueError, RuntimeError, KeyError) as exc:  # keep serving; log and retry
                log.warning("cold start maintenance failed: %s", exc)
            await asyncio.sleep(TITLES_CHECK_S)

    return cold
