"""Faults and attacks, each off unless named (``--scenario`` / ``--scenario-file``).

Line-level faults rewrite batches on their way to the sinks; traffic-level
ones change arrival rates or the rating scale; attacks schedule their own
events on the platform's clock.  Every malformed line is built to be one the
stream's parser must reject (a test holds it to that), and every attack
writes what it did to the ground truth so detection can be scored.
"""
from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Awaitable, Callable, Protocol

import numpy as np

from recstream.sim import lines
from recstream.sim.options import SimOptions
from recstream.sim.sinks import TruthWriter
from recstream.sim.telemetry import Telemetry
from recstream.sim.world import World

Batch = list[tuple[int, str]]


class Stage(Protocol):
    """What scenarios need from the platform loop (``traffic.Platform`` is one), so neither imports the other."""

    start: float
    fmt: lines.TimeFormatter
    telemetry: Telemetry
    truth: TruthWriter | None
    scraper: Any

    def at(self, t: float, callback: Callable[[float], Awaitable[None] | None]) -> None: ...
    def emit(self, uid: int, line: str) -> None: ...
    async def call(self, recommender: Any, uid: int) -> tuple[int, str, list[int], int]: ...


def _swap_time(line: str, fn: Callable[[str], str]) -> str:
    time_text, sep, rest = line.partition(",")
    return fn(time_text) + sep + rest


def _swap_user(line: str, user: str) -> str:
    time_text, _, rest = line.partition(",")
    return f"{time_text},{user},{rest.partition(',')[2]}"


def _truncate(line: str, rng: np.random.Generator) -> str:
    """Cut before the part that makes the request whole (``.mpg``, ``=``, ``, status``, ``_account``)."""
    for marker in (".mpg", "=", ", status ", "_account"):
        at = line.find(marker)
        if at > 0:
            start = line.index(",", line.index(",") + 1) + 1
            return line[: int(rng.integers(start, at))] if at > start else line[:start]
    return line[: len(line) // 2]


def corrupt(line: str, rng: np.random.Generator) -> str:
    """One malformed variant of a valid line: the real kinds (SPEC §2.1) and worse."""
    kind = int(rng.integers(0, 17))
    if kind == 0:   # month 170
        return _swap_time(line, lambda s: s[:5] + "170" + s[7:])
    if kind == 1:   # space inside the time
        return _swap_time(line, lambda s: s[:13] + " " + s[13:])
    if kind == 2:   # letter inside the time
        return _swap_time(line, lambda s: s[:13] + "G" + s[13:])
    if kind == 3:   # space after T
        return _swap_time(line, lambda s: s[:11] + " " + s[11:])
    if kind == 4:   # letter in the date
        return _swap_time(line, lambda s: s[:6] + "k" + s[6:])
    if kind == 5:   # negative user id
        return _swap_user(line, f"-{int(rng.integers(1, 99999))}")
    if kind == 6:   # non-numeric user id
        return _swap_user(line, f"{int(rng.integers(10, 99))}f{int(rng.integers(100, 999))}")
    if kind == 7:   # user id out of range
        return _swap_user(line, str(int(rng.integers(5_000_000, 9_999_999))))
    if kind == 8:   # truncated mid-request
        return _truncate(line, rng)
    if kind == 9:   # missing user id field
        time_text, _, rest = line.partition(",")
        return f"{time_text},{rest.partition(',')[2]}"
    if kind == 10:  # epoch seconds and a made-up user, as a unit test once wrote
        return f"{int(rng.integers(1_600_000_000, 1_800_000_000))},user{int(rng.integers(100, 999))},GET /rate/50=4"
    if kind == 11:  # impossible clock
        return _swap_time(line, lambda s: s[:11] + "25" + s[13:])
    if kind == 12:  # bad minute / rating values
        return f"{line.partition(',')[0]},{line.split(',')[1]},GET /data/m/the+matrix+1999/-{int(rng.integers(1, 9))}.mpg"
    if kind == 13:  # rating off the scale or not an integer
        return f"{line.partition(',')[0]},{line.split(',')[1]},GET /rate/the+matrix+1999={('0', '4.5', 'five', '-1')[int(rng.integers(4))]}"
    if kind == 14:  # title instead of slug, upper case and spaces
        return f"{line.partition(',')[0]},{line.split(',')[1]},GET /data/m/The Matrix (1999)/3.mpg"
    if kind == 15:  # an unknown request or an empty line
        return ("", f"{line.partition(',')[0]},{line.split(',')[1]},GET /data/x/unknown", "\t\t")[int(rng.integers(3))]
    return "x" * 70_000 if rng.random() < 0.05 else line.replace(",", ";")  # way too long / wrong separator


class Scenarios:
    """The enabled scenarios of one run, bound to its platform."""

    def __init__(self, options: SimOptions, world: World, platform: Stage) -> None:
        self.options, self.world, self.platform = options, world, platform
        self.rng = np.random.default_rng((options.seed, 3))
        self.malformed = options.scenario("malformed")
        self.duplicates = options.scenario("duplicates")
        self.disorder = options.scenario("out-of-order")
        self.scale10 = options.scenario("rating-scale-10")
        self.flood = options.scenario("flood")
        self.line_level = bool(self.malformed or self.duplicates or self.disorder)
        self.held: list[tuple[float, int, str]] = []   # lines delivered late (out of order)

    # -- traffic-level ------------------------------------------------------------------
    def rating_scale(self, t: float) -> tuple[int, int]:
        if self.scale10 and t - self.platform.start >= float(self.scale10["switch_after_s"]):
            return 1, 10
        return self.options.rating_min, self.options.rating_max

    def arrival_factor(self, t: float) -> float:
        if not self.flood:
            return 1.0
        phase = (t - self.platform.start) % float(self.flood["period_s"])
        return float(self.flood["factor"]) if phase >= float(self.flood["period_s"]) - float(self.flood["burst_s"]) else 1.0

    def schedule(self) -> None:
        start = self.platform.start
        sybil = self.options.scenario("sybil")
        if sybil:
            self.platform.at(start + float(sybil["every_s"]) / 2, self._sybil_wave)
        scraping = self.options.scenario("scraping")
        if scraping and self.platform.scraper is not None:
            self.platform.at(start + 1.0, self._scrape)

    # -- attacks ------------------------------------------------------------------------
    def _sybil_wave(self, t: float) -> None:
        p, cfg, catalog = self.platform, self.options.scenario("sybil") or {}, self.world.catalog
        target = str(cfg["movie"]) or catalog.ids[int(np.argsort(catalog.weight)[len(catalog) // 3])]
        lo, hi = self.rating_scale(t)
        accounts = []
        for k in range(int(cfg["accounts"])):
            i = self.world.population.sign_up()
            if i is None:
                break
            uid = int(self.world.population.ids[i])
            accounts.append(uid)
            at = t + k * 2.0
            p.emit(uid, lines.create_account(p.fmt.seconds(at), uid))
            p.emit(uid, lines.watch(p.fmt.seconds(at + 20), uid, target, 0))
            p.emit(uid, lines.rate(p.fmt.seconds(at + 30), uid, target, hi))
            for m in catalog.sample_popular(self.rng, int(cfg["extra_ratings"])).tolist():
                p.emit(uid, lines.rate(p.fmt.seconds(at + 40), uid, catalog.ids[m], int(self.rng.integers(lo, hi + 1))))
        p.telemetry.attacks["sybil_accounts"] += len(accounts)
        if p.truth is not None:
            p.truth.write({"kind": "attack", "attack": "sybil", "t": t, "movie": target, "users": accounts})
        p.at(t + float(cfg["every_s"]), self._sybil_wave)

    async def _scrape(self, t: float) -> None:
        """A model-extraction client walking user ids; the platform never logs these calls."""
        p, cfg = self.platform, self.options.scenario("scraping") or {}
        uid = int(self.rng.integers(1, len(self.world.population) + 1))
        p.at(t + self.options.speed / float(cfg["requests_per_s"]), self._scrape)
        await p.call(p.scraper, uid)
        p.telemetry.attacks["scrape_requests"] += 1
        if p.truth is not None and p.telemetry.attacks["scrape_requests"] % 100 == 1:
            p.truth.write({"kind": "attack", "attack": "scraping", "t": t, "client": cfg["client"],
                           "requests_so_far": p.telemetry.attacks["scrape_requests"]})

    # -- line-level ---------------------------------------------------------------------
    def transform(self, batch: Batch, now: float) -> Batch:
        if not self.line_level:
            return batch
        rng, out = self.rng, []
        share_bad = float(self.malformed["share"]) if self.malformed else 0.0
        share_dup = float(self.duplicates["share"]) if self.duplicates else 0.0
        share_late = float(self.disorder["share"]) if self.disorder else 0.0
        draws = rng.random((len(batch), 3))
        for (uid, line), (bad, dup, late) in zip(batch, draws):
            if bad < share_bad:
                out.append((uid, corrupt(line, rng)))
                continue
            if late < share_late:
                self._disorder(uid, line, now)
                continue
            out.append((uid, line))
            if dup < share_dup:
                out.extend([(uid, line)] * int(rng.integers(1, int(self.duplicates["max_copies"]))))
        if self.held:
            due = [h for h in self.held if h[0] <= now]
            self.held = [h for h in self.held if h[0] > now]
            out.extend((uid, line) for _, uid, line in due)
        return out

    def _disorder(self, uid: int, line: str, now: float) -> None:
        """Hold the line back (it arrives after newer ones) or stamp it in the future."""
        cfg = self.disorder or {}
        shift = float(self.rng.uniform(1, float(cfg["max_shift_s"])))
        if self.rng.random() < float(cfg["future_share"]):
            def future(text: str) -> str:
                t = (_dt.datetime.fromisoformat(text) - _dt.datetime(1970, 1, 1)).total_seconds()
                return lines.format_time(t + 86400 * math.ceil(shift / 60), 0)
            self.held.append((now, uid, _swap_time(line, future)))
        else:
            self.held.append((now + shift, uid, line))
