"""The platform's loop on a simulated clock: arrivals → /recommend → pick → watch → rate.

A discrete-event simulation: one heap of (sim time, seq, kind, payload).
Paced mode maps the simulated clock onto the wall clock (``speed`` sim
seconds per real second) and calls the recommender concurrently, like the
real platform; fast mode jumps from event to event and awaits each call in
turn, which is what tests and the benchmark use.  Every watched minute is one
heap event, so lines come out minute by minute and roughly time-ordered.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from typing import Any, Callable, Sequence

import aiohttp
import numpy as np

from recstream.sim import behaviour, lines
from recstream.sim.options import SimOptions
from recstream.sim.recommenders import Recommender, RecommenderHTTPError
from recstream.sim.scenarios import Scenarios
from recstream.sim.sinks import Sink, TruthWriter
from recstream.sim.telemetry import Telemetry
from recstream.sim.world import World

ARRIVAL, WATCH, RATE, CALLBACK = 0, 1, 2, 3
MAX_SHOWN = 20
FLUSH_EVERY = 4096


class Session:
    """One user watching one movie."""

    __slots__ = ("uid", "slug", "minute", "minutes", "rating", "rate_delay")

    def __init__(self, uid: int, slug: str, minutes: int, rating: int | None, rate_delay: float) -> None:
        self.uid, self.slug, self.minute, self.minutes = uid, slug, 0, minutes
        self.rating, self.rate_delay = rating, rate_delay


class Platform:
    """Drives one world against one recommender and writes the movielog."""

    def __init__(self, world: World, options: SimOptions, recommender: Recommender, sinks: Sequence[Sink], *,
                 truth: TruthWriter | None = None, telemetry: Telemetry | None = None,
                 server: str | None = None, scraper: Recommender | None = None,
                 seen: dict[int, set[int]] | None = None) -> None:
        self.world, self.options, self.recommender, self.sinks = world, options, recommender, list(sinks)
        self.truth, self.telemetry = truth, telemetry or Telemetry()
        self.server = server or getattr(recommender, "server", "recommender:8082")
        self.scraper = scraper
        self.rng = np.random.default_rng((options.seed, 1))
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = itertools.count()
        self.out: list[tuple[int, str]] = []
        self.fmt = lines.TimeFormatter()
        self.start = lines.parse_start(options.start)
        self.now = self.start
        self.end = self.start + options.duration if options.duration > 0 else math.inf
        self.seen = {i: set(movies) for i, movies in (seen or {}).items()}  # user index → watched (own copy)
        self.stopped = False
        self.max_lines = 0
        self.tasks: set[asyncio.Task] = set()
        self.gate = asyncio.Semaphore(options.concurrency) if not options.fast else None
        self.scenarios = Scenarios(options, world, self)
        self._users = np.zeros(0, dtype=np.int64)
        self._signups = 0
        self.emitted = 0

    # -- scheduling -------------------------------------------------------------------
    def push(self, t: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), kind, payload))

    def at(self, t: float, callback: Callable[[float], Any]) -> None:
        """Call ``callback(t)`` at sim time ``t`` (scenarios' own events; may be a coroutine)."""
        self.push(t, CALLBACK, callback)

    def emit(self, uid: int, line: str) -> None:
        self.out.append((uid, line))

    def arrival_rate(self, t: float) -> float:
        """Arrivals per simulated second: ``rate`` per real second, diurnal, scenario floods."""
        hour = (t % 86400) / 3600
        diurnal = 1 + self.options.diurnal * math.sin(2 * math.pi * (hour - 14) / 24)
        return self.options.rate / self.options.speed * diurnal * self.scenarios.arrival_factor(t)

    def _next_arrival(self, t: float) -> None:
        self.push(t + self.rng.exponential(1 / max(self.arrival_rate(t), 1e-9)), ARRIVAL, None)

    def _draw_user(self) -> tuple[int, bool]:
        pop = self.world.population
        if self.rng.random() < self.options.new_user_share:
            i = pop.sign_up()
            if i is not None:
                self._signups += 1
                return i, True
        if len(self._users) == 0:
            if self._signups:
                pop.refresh_weights()
                self._signups = 0
            self._users = pop.sample_active(self.rng, 1024)
        i, self._users = int(self._users[0]), self._users[1:]
        return i, False

    # -- the visit ----------------------------------------------------------------------
    async def call(self, recommender: Recommender, uid: int) -> tuple[int, str, list[int], int]:
        """Ask, with the deadline; → (status, result text, shown movie indices, measured ms)."""
        deadline = self.options.deadline_s
        started = time.perf_counter()
        shown: list[int] = []
        try:
            async with asyncio.timeout(deadline):
                answer = await recommender(uid)
            tokens = [str(a).strip() for a in answer][:MAX_SHOWN]
            index = self.world.catalog.index
            unknown = next((tok for tok in tokens if tok not in index), None)
            if unknown is not None:
                status, result = 400, f"movie {unknown} not found"
            else:
                status, result, shown = 200, ", ".join(tokens), [index[tok] for tok in tokens]
        except TimeoutError:
            status = 0
            result = (f"java.util.concurrent.TimeoutException: Request timeout to {self.server.split(':')[0]}"
                      f"/{self.server} after {int(deadline * 1000)} ms")
        except RecommenderHTTPError as error:
            status, result = error.status, " ".join(error.body.split())[:300]
        except (aiohttp.ClientConnectionError, ConnectionError, OSError):
            status, result = 0, f"Connection refused: {self.server.split(':')[0]}/{self.server}"
        except Exception as error:  # a broken recommender is an outcome to log, not a crash
            status, result = 0, f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"
        ms = int(round((time.perf_counter() - started) * 1000))
        outcome = "200" if status == 200 else ("timeout" if result.startswith("java.util") else str(status))
        self.telemetry.requests[outcome] += 1
        self.telemetry.observe_latency(ms)
        return status, result, shown, ms

    async def visit(self, t: float, i: int, new: bool) -> None:
        world, rng, pop = self.world, self.rng, self.world.population
        uid = int(pop.ids[i])
        if new:
            self.emit(uid, lines.create_account(self.fmt.seconds(t), uid))
            self.telemetry.lines["account"] += 1
            if self.truth is not None and pop.describes[i]:
                likes, dislikes = world.self_description(i)
                self.truth.write({"kind": "account", "t": t, "user": uid, "likes": likes, "dislikes": dislikes})
            t += float(rng.uniform(5, 60))
        status, result, shown_list, ms = await self.call(self.recommender, uid)
        t_out = t + ms / 1000
        self.emit(uid, lines.recommendation(self.fmt.millis(t_out), uid, self.server, status, result, ms))
        self.telemetry.lines["recommendation"] += 1
        shown = np.asarray(shown_list, dtype=np.int64)
        seen = self.seen.get(i)
        pick = behaviour.pick_from_list(world.taste, rng, i, shown, seen) if len(shown) else None
        source = "reco" if pick is not None else "organic"
        if pick is None:
            pick = behaviour.pick_organic(world.taste, world.catalog, rng, i, seen)
        runtime = int(world.catalog.runtime[pick.movie])
        minutes = behaviour.minutes_watched(rng, pick.true_rating, runtime)
        lo, hi = self.scenarios.rating_scale(t_out)
        rating = None
        if rng.random() < behaviour.rating_probability(minutes / max(runtime, 1)):
            rating = behaviour.stated_rating(rng, pick.true_rating, lo, hi)
        slug = world.catalog.ids[pick.movie]
        self.push(t_out + float(rng.uniform(3, 90)), WATCH,
                  Session(uid, slug, minutes, rating, float(rng.uniform(5, 180))))
        if seen is None:
            seen = self.seen[i] = set()
        seen.add(pick.movie)
        self.telemetry.sessions[source] += 1
        unsafe = world.taste.unsafe_for_minor
        minor = bool(world.taste.minor[i])
        unsafe_shown = int(unsafe[shown].sum()) if minor and len(shown) else 0
        if unsafe_shown:
            self.telemetry.safety["unsafe_shown"] += unsafe_shown
        if minor and unsafe[pick.movie]:
            self.telemetry.safety["unsafe_picked"] += 1
        if self.truth is not None:
            self._write_truth(t_out, i, uid, status, shown, pick, source, minutes, runtime, rating,
                              (lo, hi), minor, unsafe_shown, new)

    def _write_truth(self, t: float, i: int, uid: int, status: int, shown: np.ndarray, pick: behaviour.Pick,
                     source: str, minutes: int, runtime: int, rating: int | None, scale: tuple[int, int],
                     minor: bool, unsafe_shown: int, new: bool) -> None:
        taste, catalog = self.world.taste, self.world.catalog
        record: dict[str, Any] = {
            "kind": "session", "t": round(t, 3), "user": uid, "status": status, "n_shown": int(len(shown)),
            "served_true_mean": round(float(taste.ratings(i, shown).mean()), 4) if len(shown) else None,
            "source": source, "movie": catalog.ids[pick.movie], "position": pick.position,
            "true_rating": round(pick.true_rating, 4), "minutes": minutes, "runtime": runtime,
            "watch_through": round(minutes / max(runtime, 1), 4), "rating": rating, "scale": scale,
            "cost": round(float(catalog.cost[pick.movie]), 2), "minor": minor, "unsafe_shown": unsafe_shown,
            "unsafe_picked": bool(minor and taste.unsafe_for_minor[pick.movie]),
            "group": int(self.world.population.group[i]), "new_user": new,
        }
        if self.options.truth_oracle:
            seen = self.seen.get(i, set()) - {pick.movie}
            top = taste.oracle_top(i, MAX_SHOWN, exclude=seen)
            record["oracle_true_mean"] = round(float(taste.ratings(i, top).mean()), 4)
        self.truth.write(record)  # type: ignore[union-attr]

    # -- the loop -----------------------------------------------------------------------
    async def run_until(self, until: float) -> None:
        """Process every event due by ``until`` (sim time)."""
        heap, out, fmt, seq = self.heap, self.out, self.fmt, self.seq
        watched = rated = 0
        while heap and heap[0][0] <= until and not self.stopped:
            t, _, kind, obj = heapq.heappop(heap)
            self.now = t
            if kind == WATCH:
                out.append((obj.uid, f"{fmt.seconds(t)},{obj.uid},GET /data/m/{obj.slug}/{obj.minute}.mpg"))
                watched += 1
                obj.minute += 1
                if obj.minute < obj.minutes:
                    heapq.heappush(heap, (t + 60.0, next(seq), WATCH, obj))
                elif obj.rating is not None:
                    heapq.heappush(heap, (t + obj.rate_delay, next(seq), RATE, obj))
            elif kind == RATE:
                out.append((obj.uid, f"{fmt.seconds(t)},{obj.uid},GET /rate/{obj.slug}={obj.rating}"))
                rated += 1
            elif kind == ARRIVAL:
                if t < self.end:
                    self._next_arrival(t)
                i, new = self._draw_user()
                if self.gate is None:
                    await self.visit(t, i, new)
                else:
                    self._spawn(self._gated_visit(t, i, new))
            else:
                result = obj(t)
                if asyncio.iscoroutine(result):
                    if self.gate is None:
                        await result
                    else:
                        self._spawn(result)
            if len(out) >= FLUSH_EVERY:
                await self.flush()
        self.telemetry.lines["watch"] += watched
        self.telemetry.lines["rate"] += rated
        self.telemetry.sim_time = self.now

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _gated_visit(self, t: float, i: int, new: bool) -> None:
        assert self.gate is not None
        async with self.gate:
            await self.visit(t, i, new)

    async def flush(self) -> None:
        if not self.out:
            return
        batch, self.out = self.out, []
        batch = self.scenarios.transform(batch, self.now)
        self.emitted += len(batch)
        for sink in self.sinks:
            await sink.write(batch)
        if self.max_lines and self.emitted >= self.max_lines:
            self.stopped = True

    async def run(self, *, max_lines: int = 0, on_tick: Callable[[], None] | None = None) -> None:
        """Run for ``duration`` sim seconds (or ``max_lines`` lines, or until ``stop()``)."""
        self.max_lines = max_lines
        self.push(self.start, ARRIVAL, None)
        self.scenarios.schedule()
        if self.options.fast:
            while self.heap and not self.stopped and self.heap[0][0] < self.end:
                await self.run_until(min(self.heap[0][0] + 60.0, self.end))
                await self.flush()
                await asyncio.sleep(0)
        else:
            wall0 = time.monotonic()
            while not self.stopped:
                now = self.start + (time.monotonic() - wall0) * self.options.speed
                await self.run_until(min(now, self.end))
                await self.flush()
                if now >= self.end:
                    break
                if on_tick is not None:
                    on_tick()
                ahead = (self.heap[0][0] - now) / self.options.speed if self.heap else 0.05
                await asyncio.sleep(min(max(ahead, 0.002), 0.05))
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=self.options.deadline_s + 1)
        await self.flush()

    def stop(self) -> None:
        self.stopped = True
