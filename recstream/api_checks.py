"""Schema enforcement where API objects are fetched, answers leave and outcomes come back.

The pure checks are :mod:`recstream.schemas`; this module wires them to the
worker's metrics and quarantine so every interface follows one error policy
(STYLE §9): count each violation by field and reason, quarantine the object
with the reason, keep going.  A bad object never raises out of here and an
object without a usable id is dropped before it can reach a table.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Awaitable, Callable, Optional, Sequence

import orjson

from recstream.records import Rejected
from recstream.schemas import check_answer, compare_outcome, validate_movie, validate_user

MAX_QUARANTINED = 4_000  # characters of an object kept in its quarantine record
VALIDATORS = {"movie": validate_movie, "user": validate_user}


class ApiObjectGate:
    """Validates user/movie API objects; counts and quarantines what breaks the schema."""

    def __init__(self, *, violations: Any,
                 quarantine: Callable[[Rejected], Awaitable[Any]]) -> None:
        self.violations = violations  # Counter with labels (api, field, reason)
        self.quarantine = quarantine

    async def check(self, api: str, raw: Any) -> bool:
        """True when ``raw`` may be used (it has a valid id); violations reported either way."""
        try:
            valid, problems = VALIDATORS[api](raw)
        except Exception as exc:  # a validator bug must not stop the fetcher
            valid, problems = None, [("$", f"validator_error:{type(exc).__name__}")]
        for field, reason in problems:
            self.violations.labels(api, field, reason).inc()
        if problems:
            try:
                text = orjson.dumps(raw, default=str).decode()
            except (TypeError, orjson.JSONEncodeError):
                text = repr(raw)
            reasons = ";".join(f"{field}:{reason}" for field, reason in problems)
            await self.quarantine(Rejected(reason=f"{api}_api:{reasons}"[:500],
                                           line=text[:MAX_QUARANTINED], topic=f"{api}-api"))
        return valid is not None


class SentAnswers:
    """The last answers this worker sent per user, to compare the platform's outcome lines.

    The outcome line of a request reaches the worker owning the user's partition,
    which is the one that answered it (a forwarded request is answered by the
    owner), so a bounded in-memory record is enough.  Answers older than
    ``max_age_s`` or beyond ``max_users`` are forgotten (outcomes not matched).
    """

    def __init__(self, *, mismatches: Any, compared: Any, max_users: int = 200_000,
                 per_user: int = 4, max_age_s: float = 3600.0) -> None:
        self.mismatches, self.compared = mismatches, compared
        self.max_users, self.per_user, self.max_age_s = max_users, per_user, max_age_s
        self._sent: collections.OrderedDict[int, list[tuple[float, list[str]]]] = \
            collections.OrderedDict()

    def record(self, user: int, line: str) -> None:
        answers = self._sent.pop(user, [])
        answers.append((time.monotonic(), [s.strip() for s in line.split(",")]))
        self._sent[user] = answers[-self.per_user:]
        while len(self._sent) > self.max_users:
            self._sent.popitem(last=False)

    def compare(self, user: int, status: int, movies: Sequence[str], error: str = ""
                ) -> Optional[list[tuple[str, str]]]:
        """Problems of the platform's outcome line against what we sent (None: not ours)."""
        answers = self._sent.get(user)
        now = time.monotonic()
        if answers:
            answers[:] = [a for a in answers if now - a[0] <= self.max_age_s]
        if not answers:
            return None
        movies = list(movies)
        for index, (_, sent) in enumerate(answers):
            if not compare_outcome(sent, status, movies, error):
                del answers[index]
                self.compared.inc()
                return []
        _, sent = answers.pop()  # no exact match: judged against the newest answer
        problems = compare_outcome(sent, status, movies, error)
        self.compared.inc()
        for _, reason in problems:
            self.mismatches.labels(reason).inc()
        return problems


def checked_answer(line: str, known: Any, fallback: Callable[[], str],
                   violations: Any) -> tuple[str, list[tuple[str, str]]]:
    """``line`` if it passes :func:`check_answer`, else the fallback; problems counted."""
    problems = check_answer(line, known)
    if not problems:
        return line, []
    for _, reason in problems:
        violations.labels(reason).inc()
    return fallback(), problems
