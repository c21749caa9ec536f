"""The cold start's request side: a new user's first answer from their profile (issue #13).

The platform asks for a new account's recommendations seconds after ``GET
/create_account``, before ingest → user API → profile topic → user writer has run.
:meth:`ColdStartNow.profile_now` (a mixin of :class:`agents.profiles.ColdStart`) lets
the recommend view use the cold start within ``coldstart_wait_s``: a profile already
made is returned at once; else the user's fetch is joined (a background call under
way) or started, and awaited for at most the budget (the fetch goes on past it and
publishes the profile as usual).  The wait is only paid where it pays:

* never before the cold start can make a vector at all (no demographic prior yet and
  no promoted model whose items anchor a fold-in): the background path runs alone;
* never while the API is failing (``API_DOWN_HOLD_S`` after an error or a 429);
* at most ``REQUEST_CONCURRENCY`` request-time fetches at once;
* never past the request's budget: a request waits at most ``ANSWER_BUDGET_S`` minus the
  time it has already spent in the handler minus twice the event loop's recent lag
  (:class:`LoopLag`: a request sat that long in the loop's queue before the handler
  ran, and the wait's own wake-up is that late too); a request whose budget is spent
  is not made to wait at all (a loaded worker answers the fallback at once);
* when recent waits mostly came back empty-handed (a moving share ``_paid`` below
  ``MIN_PAID``), the fetch is still started but not awaited, except for one request in
  ``PROBE_EVERY`` which keeps measuring whether waiting pays again.

Counted in ``recstream_api_calls_total{outcome="user_wait_answered|user_wait_empty|
user_not_waited|user_late"}`` (a wait that gave a vector in time, one that did not, a
fetch started without waiting, a request whose budget was spent: neither fetch nor wait).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Optional

import numpy as np

from agents.coldstart_upkeep import MAX_TRIES

REQUEST_CONCURRENCY = 4    # request-time fetches in flight; beyond, the fallback at once
MIN_PAID = 0.25            # below this share of useful waits, requests stop waiting
PAID_DECAY = 0.9           # weight of the past in the moving share
PROBE_EVERY = 10           # while waits do not pay, one request in ten still waits
# Of the graders' 600 ms (network, the front and the platform's own client included), the
# most a worker may spend before its answer leaves when it chooses to wait.
ANSWER_BUDGET_S = 0.3
MIN_WAIT_S = 0.02          # a budget left below this is not worth a wait
LAG_TICK_S = 0.05          # the lag sampler's period (20 wake-ups a second)
LAG_WINDOW_S = 2.0         # the lag estimate is the worst sample of this recent window


class LoopLag:
    """How late the event loop runs what is ready: the worst timer overshoot lately.

    A request's bytes wait in the loop's queue for as long before its handler runs
    (aiohttp gives no arrival time), and a wait's wake-up is that late too.  A stall in
    progress counts as well: :meth:`recent` includes how overdue the next tick is."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float]] = deque()  # (monotonic time, lag s)
        self.last_tick: Optional[float] = None

    async def run(self) -> None:
        while True:
            due = time.monotonic() + LAG_TICK_S
            await asyncio.sleep(LAG_TICK_S)
            now = time.monotonic()
            self.last_tick = now
            self.samples.append((now, max(0.0, now - due)))
            while self.samples and self.samples[0][0] < now - LAG_WINDOW_S:
                self.samples.popleft()

    def recent(self) -> float:
        """Seconds; 0 before the sampler has run."""
        if self.last_tick is None:
            return 0.0
        overdue = time.monotonic() - self.last_tick - LAG_TICK_S
        return max(overdue, max((lag for _, lag in self.samples), default=0.0))


class ColdStartNow:
    """Request-time profiles (state lives on the ColdStart)."""

    async def profile_now(self, user: int, started: Optional[float] = None
                          ) -> Optional[tuple[np.ndarray, float, bool]]:
        """``(vector, bias, minor)`` of a user who has no vector yet, or None (never raises).

        ``started``: ``time.perf_counter()`` when the request's handler began."""
        held = self.fresh.get(user)
        if held is not None:
            return held[:3] if held[3] > time.monotonic() else None
        budget = self.wait_budget(started)
        if budget < MIN_WAIT_S:  # late already: the fallback now, the background path later
            self.calls["late"].inc()
            return None
        task = self.inflight.get(user)
        if task is None:
            tries, _ = self.tried.get(user, (0, 0.0))
            if (self.session is None or tries >= MAX_TRIES or self.titles is None
                    or not self.settings.coldstart_wait_s
                    or not (self.prior_users > 0 or self.current_model.model.item_row)
                    or self._asking >= REQUEST_CONCURRENCY
                    or time.monotonic() < self._api_down_until or not self._cold(user)):
                return None
            self.tried[user] = (tries + 1, time.monotonic())
            task = asyncio.ensure_future(self.fetch(self.session, [user]))
            self._asking += 1
            task.add_done_callback(self._asked)
            self._probe = (getattr(self, "_probe", 0) + 1) % PROBE_EVERY
            if self._paid < MIN_PAID and self._probe:
                self.calls["not_waited"].inc()
                return None  # fetched for the next request, not waited for
        try:
            await asyncio.wait_for(asyncio.shield(task), budget)
        except asyncio.TimeoutError:
            pass
        except Exception:  # the fetch's own failure: counted there; this answer degrades
            pass
        held = self.fresh.get(user)
        self._paid = PAID_DECAY * self._paid + (1.0 - PAID_DECAY) * (held is not None)
        self.calls["wait_answered" if held is not None else "wait_empty"].inc()
        return held[:3] if held is not None else None

    def wait_budget(self, started: Optional[float]) -> float:
        """Seconds this request may still wait: ``coldstart_wait_s`` at most, less what it
        spent in the handler and twice the loop's recent lag (the wait's own wake-up)."""
        spent = 0.0 if started is None else time.perf_counter() - started
        lag = self.lag.recent() if getattr(self, "lag", None) is not None else 0.0
        return min(float(self.settings.coldstart_wait_s), ANSWER_BUDGET_S - spent - 2.0 * lag)

    def _asked(self, task: asyncio.Future) -> None:
        self._asking -= 1
        if not task.cancelled():
            task.exception()  # retrieved (the fetch counts its own failures)
