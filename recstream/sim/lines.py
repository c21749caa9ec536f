"""movielog lines exactly as SPEC §2.1 shows them, formatted fast.

Times follow Java's ``LocalDateTime.toString()`` (the platform is Java):
seconds are dropped when they and the fraction are zero (``T01:50``) and the
fraction has 3, 6 or 9 digits.  That rule alone reproduces the ~1.5% of
real lines without seconds.  The ``YYYY-MM-DDTHH:MM`` prefix is cached per
minute because formatting dates is the costliest part of a line.
"""
from __future__ import annotations

import datetime as _dt

_EPOCH = _dt.datetime(1970, 1, 1)


class TimeFormatter:
    """Formats simulated epoch seconds; remembers recent minute prefixes."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def prefix(self, minute: int) -> str:
        head = self._cache.get(minute)
        if head is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            head = self._cache[minute] = format_minute(minute)
        return head

    def seconds(self, t: float) -> str:
        """Whole seconds (watch, rate, account lines)."""
        minute, sec = divmod(int(t), 60)
        head = self.prefix(minute)
        return head if sec == 0 else f"{head}:{sec:02d}"

    def millis(self, t: float) -> str:
        """Millisecond precision (recommendation lines)."""
        s, frac = divmod(int(round(t * 1000)), 1000)
        minute, sec = divmod(s, 60)
        head = self.prefix(minute)
        if frac == 0:
            return head if sec == 0 else f"{head}:{sec:02d}"
        return f"{head}:{sec:02d}.{frac:03d}"


def format_minute(minute: int) -> str:
    return (_EPOCH + _dt.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M")


def format_time(t: float, digits: int = 0) -> str:
    """Any precision (0, 3, 6 or 9 digits), Java style; used where speed does not matter."""
    scale = 10 ** digits
    ticks = int(round(t * scale))
    s, frac = divmod(ticks, scale)
    head = format_minute(s // 60)
    sec = s % 60
    if frac == 0:
        return head if sec == 0 else f"{head}:{sec:02d}"
    return f"{head}:{sec:02d}.{frac:0{digits}d}"


def parse_start(text: str) -> float:
    """``2025-01-06T00:00:00`` (zone-less, read as UTC) or ``now`` → epoch seconds."""
    if text == "now":
        return (_dt.datetime.now() - _EPOCH).total_seconds()  # local wall time, zone-less like the stream
    return (_dt.datetime.fromisoformat(text) - _EPOCH).total_seconds()


def watch(time: str, user: int, movie: str, minute: int) -> str:
    return f"{time},{user},GET /data/m/{movie}/{minute}.mpg"


def rate(time: str, user: int, movie: str, rating: int) -> str:
    return f"{time},{user},GET /rate/{movie}={rating}"


def create_account(time: str, user: int) -> str:
    return f"{time},{user},GET /create_account"


def recommendation(time: str, user: int, server: str, status: int, result: str, ms: int) -> str:
    """``result`` is the ids joined by ``", "`` (status 200) or the error text."""
    return f"{time},{user},recommendation request {server}, status {status}, result: {result}, {ms} ms"
