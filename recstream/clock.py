"""The stream's clock: the newest event time, robust to a stray far-future line.

Popularity decay, monitoring windows and provenance all run on event time.
One line with a far-future timestamp must not drag the clock years ahead
(every decayed score would collapse to zero and every window would empty),
so a jump of more than ``max_jump_s`` is not taken at once.  But a stream
that really moves on — a replay of old data followed by live traffic — must
not freeze the clock either: a jump is taken once ``confirm`` events in a row
are all beyond it, to the earliest of them.
"""
from __future__ import annotations

MAX_JUMP_S = 86_400.0
CONFIRM = 100


class StreamClock:
    def __init__(self, max_jump_s: float = MAX_JUMP_S, confirm: int = CONFIRM) -> None:
        self.max_jump_s = max_jump_s
        self.confirm = confirm
        self.now = 0.0
        self._ahead = 0  # consecutive events beyond the jump limit
        self._ahead_min = 0.0

    def observe(self, t: float) -> float:
        """Advance to event time ``t`` if it is believable; → the clock's time."""
        now = self.now
        if t <= now:
            self._ahead = 0
            return now
        if now == 0.0 or t - now <= self.max_jump_s:
            self.now = t
            self._ahead = 0
            return t
        self._ahead_min = t if self._ahead == 0 else min(self._ahead_min, t)
        self._ahead += 1
        if self._ahead >= self.confirm:
            self.now = self._ahead_min
            self._ahead = 0
        return self.now
