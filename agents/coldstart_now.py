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
* when recent waits mostly came back empty-handed (a moving share ``_paid`` below
  ``MIN_PAID``), the fetch is still started but not awaited, except for one request in
  ``PROBE_EVERY`` which keeps measuring whether waiting pays again.

Counted in ``recstream_api_calls_total{outcome="user_wait_answered|user_wait_empty|
user_not_waited"}`` (a wait that gave a vector in time, one that did not, a fetch
started without waiting).
"""
from __future__ import annotations

import asyncio
import time
from typing import Optional

import numpy as np

from agents.coldstart_upkeep import MAX_TRIES

REQUEST_CONCURRENCY = 4    # request-time fetches in flight; beyond, the fallback at once
MIN_PAID = 0.25            # below this share of useful waits, requests stop waiting
PAID_DECAY = 0.9           # weight of the past in the moving share
PROBE_EVERY = 10           # while waits do not pay, one request in ten still waits


class ColdStartNow:
    """Request-time profiles (state lives on the ColdStart)."""

    async def profile_now(self, user: int) -> Optional[tuple[np.ndarray, float, bool]]:
        """``(vector, bias, minor)`` of a user who has no vector yet, or None (never raises)."""
        held = self.fresh.get(user)
        if held is not None:
            return held[:3] if held[3] > time.monotonic() else None
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
            await asyncio.wait_for(asyncio.shield(task), self.settings.coldstart_wait_s)
        except asyncio.TimeoutError:
            pass
        except Exception:  # the fetch's own failure: counted there; this answer degrades
            pass
        held = self.fresh.get(user)
        self._paid = PAID_DECAY * self._paid + (1.0 - PAID_DECAY) * (held is not None)
        self.calls["wait_answered" if held is not None else "wait_empty"].inc()
        return held[:3] if held is not None else None

    def _asked(self, task: asyncio.Future) -> None:
        self._asking -= 1
        if not task.cancelled():
            task.exception()  # retrieved (the fetch counts its own failures)
