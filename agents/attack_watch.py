"""Live attack detectors (issue #14) over what this worker ingests and serves.

* :class:`SybilWatch` sees every parsed event the user writer applies (it wraps
  the writer's ``apply``, so it costs no second parse and no second consumer) and
  feeds :class:`models.detectors.SybilDetector`.  Each newly suspected account
  goes once to ``<app>-suspects`` (keyed by user, JSON ``{user, time, movie,
  rating, reason}``); ``recstream train`` drops the suspects' ratings of the
  pushed movie (recstream/ops/suspects.py).
  Once an account is suspected, its later ratings and watches of the pushed
  movie are not applied at all (:meth:`WatchedWriter.stage`): the live path
  stops learning from the wave at once instead of at the next retrain.  And
  the pushed movie itself is withheld from every answer while its alarm is
  active (:class:`AlarmBlock`, ``RECSTREAM_SYBIL_HOLD_S`` of stream time after
  its last suspect): the plays and ratings the wave got in before it was
  recognised still lift its popularity, which is what the fallback lists rank.
* :class:`ScrapingWatch` gets one ``request(client, user)`` per ``/recommend``
  call (an O(1) append) and the platform's outcome lines from the same writer
  wrap; :class:`models.detectors.ScrapingDetector` runs on them in a timer, off
  the request path.  Both sides are on **one clock, the wall clock**: a request at
  its arrival, an outcome line at its Kafka record's timestamp (when the platform
  produced it, right after our answer).  The line's own time is the platform's
  stream time, which a sped-up simulator (or a replay) moves far faster than the
  wall: comparing the two flagged the graders themselves (issue #14 phase 3).

Scope: a worker sees the events of its own partitions, so with N workers a
wave of A accounts shows ~A/N of them to each; ``min_accounts`` is per worker
(docs/responsible-operation.md).  Both detectors keep bounded state.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Callable

import orjson

from models.detectors import ScrapingDetector, SybilDetector
from recstream.records import AccountCreated, Rating, RecommendationOutcome, WatchMinute
from tables.codecs import user_key

log = logging.getLogger(__name__)
MAX_QUEUED_REQUESTS = 100_000  # requests waiting for the scraping timer (oldest dropped)


def produced_at(event: Any) -> float:
    """Wall time the platform produced ``event`` (its Kafka timestamp); now if it has none."""
    message = getattr(event, "message", None)
    stamp = getattr(message, "timestamp", None)
    now = time.time()
    if isinstance(stamp, (int, float)) and 0 < stamp <= now + 60.0:
        return float(stamp)
    return now


class AlarmBlock:
    """Movies under an active sybil alarm are served to nobody (their safety flags held off).

    Uses the read path's own fail-closed flags (``ItemIndex.safe_for_all`` /
    ``safe_for_minors``), so every ranker, the fallback and the exposure re-check
    honour it without a new branch.  :meth:`enforce` runs in a timer: it holds the
    flags off even if the catalogue confirms the movie meanwhile, and gives back the
    flags it took once the alarm is ``hold_s`` of stream time old.
    """

    def __init__(self, *, items: Any, clock: Callable[[], float], hold_s: float,
                 blocked: Any, on_change: Callable[[], None]) -> None:
        self.items, self.clock, self.hold_s = items, clock, hold_s
        self.on_change = on_change              # answers and the fallback ranked again
        self.blocked = blocked                  # gauge: movies withheld now
        self.active: dict[str, float] = {}      # movie -> stream time of its last suspect
        self.saved: dict[str, tuple[bool, bool]] = {}  # movie -> flags it had when taken

    def alarm(self, movie: str, t: float) -> None:
        if self.hold_s > 0:
            self.active[movie] = max(t, self.active.get(movie, t))
            self.enforce()

    def enforce(self) -> None:
        items, now, changed = self.items, self.clock(), False
        for movie, since in list(self.active.items()):
            row = items.row_of.get(movie)
            if now - since > self.hold_s:       # the alarm is over: give the flags back
                del self.active[movie]
                flags = self.saved.pop(movie, None)
                if row is not None and flags is not None and not items.safe_for_all[row] \
                        and not items.safe_for_minors[row]:
                    items.safe_for_all[row], items.safe_for_minors[row] = flags
                    changed = True
                continue
            if row is not None and (items.safe_for_all[row] or items.safe_for_minors[row]):
                self.saved[movie] = (bool(items.safe_for_all[row]),
                                     bool(items.safe_for_minors[row]))
                items.safe_for_all[row] = items.safe_for_minors[row] = False
                changed = True
        if changed:
            self.on_change()
            log.warning("sybil alarm: withholding %s", ", ".join(sorted(self.active)) or "none")
        self.blocked.set(len(self.active))


class SybilWatch:
    def __init__(self, *, detector: SybilDetector, producer: Any, topic: Any, metrics: Any,
                 scraping: "ScrapingWatch | None" = None, block: AlarmBlock | None = None
                 ) -> None:
        self.detector, self.producer, self.topic = detector, producer, topic
        self.block = block
        self.suspected = metrics.sybil_suspected
        self.pushed = metrics.sybil_pushed_movies
        self.skipped = metrics.sybil_skipped_events
        self.scraping = scraping
        self.poisoned: dict[int, set[str]] = {}   # suspect -> the movies its waves pushed

    async def observe(self, batch: list) -> int:
        """Feed one applied batch of ``(event, record)``; publish new suspects → how many."""
        d, new = self.detector, []
        for event, rec in batch:
            if isinstance(rec, WatchMinute):
                d.watch(rec.time, rec.user, rec.movie, rec.minute)
            elif isinstance(rec, Rating):
                new += [(user, rec) for user in d.rate(rec.time, rec.user, rec.movie, rec.rating)]
            elif isinstance(rec, AccountCreated):
                d.account(rec.time, rec.user)
            elif isinstance(rec, RecommendationOutcome) and self.scraping is not None:
                self.scraping.outcome(produced_at(event), rec.user)
        for user, rec in new:
            self.poisoned.setdefault(user, set()).add(rec.movie)
            if self.block is not None:
                self.block.alarm(rec.movie, rec.time)
            value = {"user": user, "time": rec.time, "movie": rec.movie, "rating": rec.rating,
                     "reason": "sybil_wave"}
            await self.producer.produce(self.topic, user_key(user), orjson.dumps(value))
        if new:
            self.suspected.inc(len(new))
            self.pushed.set(len(d.pushed_movies))
            log.warning("sybil wave: %d accounts suspected (movies pushed: %s)", len(new),
                        ", ".join(sorted({rec.movie for _, rec in new})))
        return len(new)

    def keep(self, batch: list) -> list:
        """``batch`` without the suspects' ratings and watches of the movies they pushed."""
        poisoned = self.poisoned
        if not poisoned:
            return batch
        kept = [(event, rec) for event, rec in batch
                if not (type(rec) in (Rating, WatchMinute)
                        and rec.movie in poisoned.get(rec.user, ()))]
        if len(kept) < len(batch):
            self.skipped.inc(len(batch) - len(kept))
        return kept


class WatchedWriter:
    """The user writer with the detectors looking on: observe first, then apply what is kept.

    The detectors see every event (a wave is judged on all of it); the writer gets the
    batch without what suspected accounts did to the movies they pushed.
    """

    def __init__(self, writer: Any, watch: SybilWatch | None, observers: tuple = ()) -> None:
        self.writer, self.watch = writer, watch
        self.observers = observers  # others looking on (``observe(batch)``, e.g. fairness)

    async def _kept(self, batch: list) -> list:
        for observer in self.observers:
            observer.observe(batch)
        if self.watch is None:
            return batch
        await self.watch.observe(batch)
        return self.watch.keep(batch)

    async def apply(self, batch: list) -> Any:
        return await self.writer.apply(await self._kept(batch))

    async def stage(self, batch: list) -> Any:
        return await self.writer.stage(await self._kept(batch))

    def __getattr__(self, name: str) -> Any:  # everything else is the writer's
        return getattr(self.writer, name)


class ScrapingWatch:
    def __init__(self, *, detector: ScrapingDetector, metrics: Any) -> None:
        self.detector = detector
        self.queue: deque = deque(maxlen=MAX_QUEUED_REQUESTS)
        self.flagged = metrics.scraping_flagged
        self.flagged_clients: set[str] = set()

    def request(self, client: str, user: int, outsider: bool = False) -> None:
        """On the request path: one append (the detector runs in :meth:`drain`).

        ``outsider``: the address is not among the configured graders' (the web layer
        knows; the detector then needs no echo from the movielog to judge the client)."""
        self.queue.append((time.time(), client, user, outsider))

    def outcome(self, t: float, user: int) -> None:
        self.detector.outcome(t, user)

    def drain(self) -> list[str]:
        """Run the detector over the queued requests → clients newly flagged."""
        queue, new = self.queue, []
        d = self.detector
        for _ in range(len(queue)):
            d.request(*queue.popleft())  # (t, client, user[, outsider])
        for client in sorted(d.flagged.keys() - self.flagged_clients):  # a request or verdict
            self.flagged_clients.add(client)
            new.append(client)
        if new:
            self.flagged.inc(len(new))
            for client in new:
                _, requests, why = d.flagged[client]
                log.warning("scraping suspected from %s after %d requests (%s)", client,
                            requests, why)
        return new


def register(app, scraping: ScrapingWatch, *, block: AlarmBlock | None = None,
             interval_s: float = 1.0) -> None:
    @app.timer(interval_s, name="detect_scraping")
    async def detect_scraping() -> None:
        scraping.drain()
        if block is not None:
            block.enforce()
        await asyncio.sleep(0)
