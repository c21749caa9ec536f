"""Byte encodings of table values: compact, versionless, never pickled.

Vectors are little-endian float32 ``[bias, f_1 … f_k]``.  Structured values
are orjson.  Keys are the UTF-8 of the user id's decimal form or the movie
slug, i.e. exactly the Kafka message keys, so the default partitioner puts a
key's changelog record in the partition of the events that produced it.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import orjson


def user_key(user: int) -> bytes:
    return str(user).encode()


def movie_key(movie: str) -> bytes:
    return movie.encode()


# A vector learnt on top of a promoted batch model carries the model's generation
# (see models.registry): 8-byte header ``RSV1`` + uint32 LE generation.  Generation
# 0 (the online-only model) keeps the bare layout, which is also how older records read.
GENERATION_MAGIC = b"RSV1"
GENERATION_HEADER = 8


def encode_vector(bias: float, vector: np.ndarray, generation: int = 0) -> bytes:
    out = np.empty(vector.shape[0] + 1, "<f4")
    out[0] = bias
    out[1:] = vector
    if generation:
        return GENERATION_MAGIC + int(generation).to_bytes(4, "little") + out.tobytes()
    return out.tobytes()


def decode_vector(raw: bytes) -> tuple[float, np.ndarray]:
    bias, vector, _ = decode_vector_generation(raw)
    return bias, vector


def decode_vector_generation(raw: bytes) -> tuple[float, np.ndarray, int]:
    """→ ``(bias, factors, generation)``; generation 0 for the bare layout."""
    generation = 0
    if raw[:4] == GENERATION_MAGIC and len(raw) >= GENERATION_HEADER + 4:
        generation = int.from_bytes(raw[4:GENERATION_HEADER], "little")
        raw = raw[GENERATION_HEADER:]
    arr = np.frombuffer(raw, "<f4")
    return float(arr[0]), arr[1:].astype(np.float32), generation


@dataclasses.dataclass(slots=True)
class UserHistory:
    """What one user did: the ``limit`` most recent watches and ratings, and every movie.

    ``watches`` and ``ratings`` are bounded (recency features, the dashboard, training
    values); ``items`` is the *complete* set of movies the user ever watched or rated, in
    first-seen order, never trimmed (issue #10: with only the bounded history, older
    watches fell out of the exclusion set and were served again).  A slug list costs
    ~20 bytes a movie: 20 KB for a 1,000-movie user, in the same changelog record, so it
    is exact after a restore with no second table or global movie index to keep in step.

    ``watches``: movie → ``[max_minute, first_time, last_time, saved_minute]``;
    ``ratings``: movie → ``[rating, time]``.  Updates are idempotent: a
    redelivered minute or rating leaves the record unchanged.  ``saved_minute``
    is the extent last written to the table, so the writer can checkpoint
    progress every few minutes instead of on every minute.
    """

    watches: dict[str, list] = dataclasses.field(default_factory=dict)
    ratings: dict[str, list] = dataclasses.field(default_factory=dict)
    created: Optional[float] = None
    # From the user API (agents.profiles), once: age (None unknown), gender ("" unknown),
    # the movies the self-description named (never recommended back), when it was applied.
    age: Optional[int] = None
    gender: str = ""
    named: list = dataclasses.field(default_factory=list)
    profiled: Optional[float] = None
    items: list = dataclasses.field(default_factory=list)
    _item_set: Optional[set] = dataclasses.field(default=None, init=False, repr=False,
                                                 compare=False)

    def knows(self, movie: str) -> bool:
        """Whether ``movie`` is in the complete set (watched or rated, ever)."""
        if self._item_set is None:
            self._item_set = set(self.items)
        return movie in self._item_set

    def remember(self, movie: str) -> bool:
        """Add ``movie`` to the complete set → True if it was not there."""
        known = self._item_set
        if known is None:
            known = self._item_set = set(self.items)
        if movie in known:
            return False
        known.add(movie)
        self.items.append(movie)
        return True

    def watch(self, movie: str, minute: int, time: float, complete_at: int) -> str | None:
        """Apply one watched minute → ``"start"``, ``"complete"``, ``"progress"`` or None.

        None means nothing changed (a redelivered or earlier minute).
        """
        entry = self.watches.get(movie)
        if entry is None:
            self.remember(movie)
            self.watches[movie] = [minute, time, time, -1]
            return "complete" if minute >= complete_at else "start"
        if minute <= entry[0]:
            if time > entry[2]:
                entry[2] = time
            return None
        crossed = entry[0] < complete_at <= minute
        entry[0] = minute
        entry[2] = max(entry[2], time)
        return "complete" if crossed else "progress"

    def needs_checkpoint(self, movie: str, every: int) -> bool:
        entry = self.watches[movie]
        return entry[0] - entry[3] >= every

    def mark_saved(self) -> None:
        for entry in self.watches.values():
            entry[3] = entry[0]

    def rate(self, movie: str, rating: int, time: float) -> tuple[str | None, int | None]:
        """Apply a rating → (``"new"`` | ``"changed"`` | None, previous rating).

        A rating older than the one held is stale and ignored (out-of-order).
        """
        entry = self.ratings.get(movie)
        if entry is None:
            self.remember(movie)
            self.ratings[movie] = [rating, time]
            return "new", None
        if time < entry[1] or (time == entry[1] and rating == entry[0]):
            return None, entry[0]
        old = entry[0]
        self.ratings[movie] = [rating, time]
        return ("changed" if old != rating else None), old

    def interacted(self) -> list[str]:
        """Every movie watched or rated (the complete set plus anything held)."""
        return list(dict.fromkeys([*self.items, *self.watches, *self.ratings]))

    def seen(self) -> set[str]:
        """Movies not to recommend: watched, rated, or named in the self-description."""
        return set(self.items) | set(self.watches) | set(self.ratings) | set(self.named)

    def rating_stats(self) -> tuple[int, float, float]:
        """(count, mean, variance) of this user's current ratings."""
        values = [r[0] for r in self.ratings.values()]
        if not values:
            return 0, 0.0, 0.0
        mean = sum(values) / len(values)
        return len(values), mean, sum((v - mean) ** 2 for v in values) / len(values)

    def trim(self, limit: int) -> None:
        # By last time: a watch entry's time is at index 2 (its last item is saved_minute).
        for field, at in ((self.watches, 2), (self.ratings, 1)):
            if len(field) > limit:
                newest = sorted(field.items(), key=lambda kv: kv[1][at], reverse=True)[:limit]
                field.clear()
                field.update(newest)


def encode_history(history: UserHistory) -> bytes:
    data = {"w": history.watches, "r": history.ratings, "c": history.created,
            "s": history.items}
    if history.profiled is not None:  # profile fields only once there is one: old layout otherwise
        data.update(a=history.age, g=history.gender, n=history.named, p=history.profiled)
    return orjson.dumps(data)


def decode_history(raw: Optional[bytes]) -> UserHistory:
    if not raw:
        return UserHistory()
    data = orjson.loads(raw)
    watches, ratings = data.get("w", {}), data.get("r", {})
    items = data.get("s")
    if items is None:  # a record from before the complete set: its bounded history
        items = list(dict.fromkeys([*watches, *ratings]))
    return UserHistory(watches=watches, ratings=ratings, created=data.get("c"),
                       age=data.get("a"), gender=data.get("g") or "", named=data.get("n") or [],
                       profiled=data.get("p"), items=items)


@dataclasses.dataclass(slots=True)
class MovieStats:
    """Counts for one movie: plays (watch starts), distinct viewers, ratings."""

    plays: int = 0
    viewers: int = 0
    ratings: int = 0
    rating_sum: float = 0.0
    rating_sumsq: float = 0.0
    popularity: float = 0.0
    popularity_time: float = 0.0
    last_time: float = 0.0
    # "topic/partition" of a source of MovieUpdate marks → the highest offset
    # counted from it: a mark at or below it was counted already.
    applied: dict = dataclasses.field(default_factory=dict)

    @property
    def mean_rating(self) -> float:
        return self.rating_sum / self.ratings if self.ratings else 0.0


def encode_movie_stats(stats: MovieStats) -> bytes:
    return orjson.dumps(dataclasses.asdict(stats))


def decode_movie_stats(raw: Optional[bytes]) -> MovieStats:
    if not raw:
        return MovieStats()
    fields = {f.name for f in dataclasses.fields(MovieStats)}
    return MovieStats(**{k: v for k, v in orjson.loads(raw).items() if k in fields})
