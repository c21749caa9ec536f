"""The world's past: days of history written at full speed before live traffic starts.

The course platform's stream carries months of history; a world that starts empty makes
nearly every live request come from a user the recommender has never seen.  The past has
the same users acting on the same true tastes as live traffic, but no recommender: every
session is organic browsing (popularity brings candidates to mind, taste chooses; see
``behaviour.organic_many``), so no recommendation lines are made up.  Sessions are watched
minute by minute and rated as live ones are; a share are first visits of new accounts
(``GET /create_account`` just before their first minute).  Lines carry past timestamps,
end before the live start, and are keyed by user like live ones.

Volume is a budget, not a rate.  A session is ~78 lines (the per-minute watch lines
dominate), so the default 400k lines are ~5k sessions and ~2k ratings, spread over the
days with the live day/night swing: a quieter, younger service than the live one.  That
is the trade-off: a worker ingesting 2.5-7k lines/s absorbs it in 1-3 minutes on 2 cores
while it already answers (fallback lines meanwhile); a bigger budget buys more returning
users at the price of a longer catch-up.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Iterator, Sequence

import numpy as np

from recstream.sim import behaviour, lines
from recstream.sim.options import SimOptions
from recstream.sim.sinks import Sink
from recstream.sim.world import World

DAY = 86400.0
LINES_PER_SESSION = 78   # measured on the default world; sizes the draws near the budget
CHUNK = 2048             # sessions drawn per vectorised step
ACCOUNT, WATCH, RATE = 0, 1, 2


@dataclasses.dataclass(slots=True)
class Past:
    """The history, time-ordered, plus what live traffic continues from."""

    times: np.ndarray               # float64 sim seconds, ascending
    keys: np.ndarray                # int64 user id of each line (the Kafka key)
    lines: list[str]
    seen: dict[int, set[int]]       # user index → movie indices watched
    accounts: list[int]             # user indices that signed up in the past, in order
    account_times: list[float]      # ... and when
    sessions: int = 0
    ratings: int = 0
    start: float = 0.0
    end: float = 0.0

    def __len__(self) -> int:
        return len(self.lines)

    def batches(self, size: int = 8192) -> Iterator[list[tuple[int, str]]]:
        keys = self.keys.tolist()
        for at in range(0, len(self.lines), size):
            yield list(zip(keys[at: at + size], self.lines[at: at + size]))

    def summary(self) -> dict[str, float | int]:
        return {"lines": len(self.lines), "sessions": self.sessions, "users": len(self.seen),
                "ratings": self.ratings, "accounts": len(self.accounts),
                "days": round((self.end - self.start) / DAY, 3)}


def make_past(world: World, options: SimOptions, *, end: float, days: float, max_lines: int) -> Past:
    """About ``max_lines`` lines of organic history over ``days`` before ``end`` (sim seconds).

    Signs the past's new accounts up in ``world.population`` (they exist when live
    traffic starts) and returns who watched what, so live users do not re-pick it.
    """
    start = end - days * DAY
    if days <= 0 or max_lines <= 0:
        return Past(np.zeros(0), np.zeros(0, np.int64), [], {}, [], [], start=start, end=end)
    rng = np.random.default_rng((options.seed, 11))
    s = _draw_sessions(world, options, rng, max_lines)
    n = len(s["users"])
    # When: the live day/night swing; a session that would run into the live start moves a day back.
    first = np.where(s["new"], rng.uniform(5, 60, n), 0.0) + rng.uniform(3, 90, n)   # arrival → minute 0
    rate_delay = rng.uniform(5, 180, n)
    length = first + 60.0 * (s["minutes"] - 1) + np.where(s["rated"], rate_delay, 0.0) + 1.0
    t0 = _arrival_times(rng, n, start, end, options.diurnal)
    t0 = np.maximum(t0 - DAY * np.maximum(0, np.ceil((t0 + length - end) / DAY)), start)
    new = np.flatnonzero(s["new"])
    t0[new] = np.sort(t0[new])            # account ids ascend with sign-up time, as the platform's do
    times, kind, which, minute = _events(t0, first, rate_delay, s["minutes"], s["rated"], new)
    uid = world.population.ids[s["users"][which]]
    out = _format(times, kind, uid, s["movies"][which], s["stars"][which], minute, world.catalog.ids)
    seen: dict[int, set[int]] = {}
    for u, m in zip(s["users"].tolist(), s["movies"].tolist()):
        seen.setdefault(u, set()).add(m)
    return Past(times, uid.astype(np.int64), out, seen, s["users"][new].tolist(), t0[new].tolist(), sessions=n,
                ratings=int(s["rated"].sum()), start=start, end=end)


def _events(t0: np.ndarray, first: np.ndarray, rate_delay: np.ndarray, minutes: np.ndarray, rated: np.ndarray,
            new: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every line of every session as (time, kind, session, minute) arrays, in time order."""
    sess = np.repeat(np.arange(len(t0)), minutes)
    minute = np.arange(len(sess)) - np.repeat(np.cumsum(minutes) - minutes, minutes)
    rates = np.flatnonzero(rated)
    times = np.concatenate([t0[new], t0[sess] + first[sess] + 60.0 * minute,
                            t0[rates] + first[rates] + 60.0 * (minutes[rates] - 1) + rate_delay[rates]])
    kind = np.concatenate([np.full(len(new), ACCOUNT), np.full(len(sess), WATCH), np.full(len(rates), RATE)])
    which = np.concatenate([new, sess, rates])
    minute = np.concatenate([np.zeros(len(new), np.int64), minute, np.zeros(len(rates), np.int64)])
    order = np.lexsort((kind, times))
    return times[order], kind[order], which[order], minute[order]


def _format(times: np.ndarray, kind: np.ndarray, uid: np.ndarray, movie: np.ndarray, stars: np.ndarray,
            minute: np.ndarray, slugs: list[str]) -> list[str]:
    """movielog lines, formatted as live ones are (whole seconds, Java-style times)."""
    fmt = lines.TimeFormatter()
    out = []
    for t, k, u, m, r, mi in zip(times.tolist(), kind.tolist(), uid.tolist(), movie.tolist(), stars.tolist(),
                                 minute.tolist()):
        stamp = fmt.seconds(t)
        if k == WATCH:
            out.append(lines.watch(stamp, u, slugs[m], mi))
        elif k == RATE:
            out.append(lines.rate(stamp, u, slugs[m], r))
        else:
            out.append(lines.create_account(stamp, u))
    return out


def _draw_sessions(world: World, options: SimOptions, rng: np.random.Generator,
                   max_lines: int) -> dict[str, np.ndarray]:
    """Organic sessions in vectorised chunks until the line budget is reached (overshoot ≤ a few sessions)."""
    pop, taste, catalog = world.population, world.taste, world.catalog
    parts: list[dict[str, np.ndarray]] = []
    seen: set[tuple[int, int]] = set()
    total = 0
    while total < max_lines:
        n = int(min(CHUNK, max(16, (max_lines - total) // LINES_PER_SESSION)))
        users = pop.sample_active(rng, n)
        new = rng.random(n) < options.new_user_share
        for k in np.flatnonzero(new).tolist():
            i = pop.sign_up()
            if i is None:
                new[k] = False
            else:
                users[k] = i
        movies, true = behaviour.organic_many(taste, catalog, rng, users)
        minutes = behaviour.minutes_watched_many(rng, true, catalog.runtime[movies].astype(np.int64))
        fraction = minutes / np.maximum(catalog.runtime[movies], 1)
        rated = rng.random(n) < behaviour.rating_probability(fraction)
        stars = behaviour.stated_ratings(rng, true, options.rating_min, options.rating_max)
        keep = np.ones(n, dtype=bool)
        for k, pair in enumerate(zip(users.tolist(), movies.tolist())):
            if pair in seen:            # nobody watches the same film twice in the past
                keep[k] = False
            seen.add(pair)
        part = {"users": users, "movies": movies, "minutes": minutes, "rated": rated, "stars": stars, "new": new}
        parts.append({name: values[keep] for name, values in part.items()})
        total += int((minutes + rated + new)[keep].sum())
    pop.refresh_weights()               # the past's sign-ups arrive on their own once live traffic starts
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _arrival_times(rng: np.random.Generator, n: int, start: float, end: float, diurnal: float) -> np.ndarray:
    """``n`` times in [start, end) with the live arrival rate's day/night swing (peak 20:00)."""
    found: list[np.ndarray] = []
    have = 0
    while have < n:
        t = rng.uniform(start, end, 2 * n + 16)
        hour = (t % DAY) / 3600
        accept = rng.random(len(t)) * (1 + diurnal) < 1 + diurnal * np.sin(2 * math.pi * (hour - 14) / 24)
        found.append(t[accept])
        have += len(found[-1])
    return np.concatenate(found)[:n]


async def write_past(past: Past, sinks: Sequence[Sink], *, batch: int = 8192,
                     stopped: Callable[[], bool] = lambda: False) -> None:
    """Every line to every sink in time order, as fast as they take them, then flushed."""
    for lines_batch in past.batches(batch):
        if stopped():
            break
        for sink in sinks:
            await sink.write(lines_batch)
    for sink in sinks:
        await sink.flush()
