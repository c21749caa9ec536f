"""How far a movie pushed by a sybil wave reached into other users' lists, hour by hour.

Issue #14's requirement: the pushed movie never reaches the top-20 of more than 1%
of other users.  "Never" is judged over time: from the push on, in each hour of
stream time, of the other users shown a non-empty list that hour, the share whose
list held a pushed movie.  Lists shown *before* a movie was pushed are its organic
exposure and are reported apart: counting them as reach blames the detector for
what the movie earned honestly (and one reach over the whole run hides an hour in
which the wave got through).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True, slots=True)
class Reach:
    hourly: list[tuple[int, int, int]]   # (hour since the first push, users shown, reached)
    before: tuple[int, int]              # users shown before the first push, reached organically
    after: tuple[int, int]               # distinct users shown from the first push on, reached
    positions: dict = field(default_factory=dict)   # 1-based rank of the first hit -> lists

    def worst(self) -> tuple[float, int, int]:
        """``(share, hour, users)`` of the hour with the highest share (0 when none)."""
        rows = [(r / n, h, n) for h, n, r in self.hourly if n]
        return max(rows, default=(0.0, -1, 0))

    def hours_over(self, bound: float) -> int:
        return sum(1 for _, n, r in self.hourly if n and r / n > bound)


def reach_by_hour(shown: Iterable[tuple[float, int, list]], pushed_at: dict[str, float],
                  exclude: set, *, hour_s: float = 3600.0) -> Reach:
    """``shown``: (time, user, movies) lists on one clock; ``pushed_at``: movie → when its
    push began on that clock; ``exclude``: the wave's own accounts.  Empty lists show
    nothing and are left out."""
    if not pushed_at:
        return Reach([], (0, 0), (0, 0))
    first = min(pushed_at.values())
    users, reached = defaultdict(set), defaultdict(set)
    before, before_hit, after, after_hit = set(), set(), set(), set()
    positions: Counter = Counter()
    for when, user, movies in shown:
        if not movies or user in exclude:
            continue
        if when < first:
            before.add(user)
            if any(m in pushed_at for m in movies):
                before_hit.add(user)
            continue
        hour = int((when - first) // hour_s)
        users[hour].add(user)
        after.add(user)
        hits = [i for i, m in enumerate(movies) if pushed_at.get(m, float("inf")) <= when]
        if hits:
            reached[hour].add(user)
            after_hit.add(user)
            positions[hits[0] + 1] += 1
    hourly = [(h, len(users[h]), len(reached[h])) for h in sorted(users)]
    return Reach(hourly, (len(before), len(before_hit)), (len(after), len(after_hit)),
                 dict(sorted(positions.items())))
