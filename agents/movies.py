"""The one writer of ``movie_stats`` and ``item_factors``, and the item broadcaster.

Consumes :class:`MovieUpdate` (keyed by movie, so each movie has exactly one
owner), applies the item half of each online-MF step to the authoritative
item vector, counts plays/viewers/ratings, and every ``BROADCAST_EVERY_S``
publishes the changed movies' state to the broadcast topic that every
worker's :mod:`agents.item_follower` follower applies to its in-memory model.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import numpy as np
from faust.types import EventT

from models.online import item_step
from models.popularity import add_event
from recstream.records import MovieUpdate
from recstream.kafka import AppProducer
from recstream.modelupdates import CurrentModel
from recstream.settings import Settings
from tables.codecs import (
    MovieStats,
    decode_movie_stats,
    decode_vector_generation,
    encode_movie_stats,
    encode_vector,
    movie_key,
)
from tables.context import as_event
from tables.broadcast import encode_item_state
from tables.changelog import ChangelogWriter
from tables.memory import ItemIndex

BROADCAST_EVERY_S = 0.25
RATING_POPULARITY_WEIGHT = 0.5


class MovieWriter:
    """The one writer of ``movie_stats`` and ``item_factors``; broadcasts what changed."""

    def __init__(self, *, settings: Settings, movie_stats: Any, item_factors: Any,
                 items: ItemIndex, current_model: CurrentModel, changelog: ChangelogWriter,
                 producer: AppProducer, broadcast_topic: Any, item_steps: Any,
                 redelivered: Any, on_play: Callable[[str], None] = lambda movie: None,
                 progress: Any = None) -> None:
        self.movie_stats, self.item_factors = movie_stats, item_factors
        self.items, self.current_model = items, current_model
        self.changelog, self.producer, self.broadcast_topic = changelog, producer, broadcast_topic
        self.item_steps = item_steps  # the metric counter of item-side MF steps
        self.on_play = on_play
        self.redelivered = redelivered  # the counter of plays/ratings already counted
        s = settings
        self.lr, self.reg = s.learning_rate, s.regularization
        self.clip = s.max_step * (s.rating_max - s.rating_min)
        self.half_life_s = s.popularity_half_life_h * 3600.0
        self.stats: dict[str, MovieStats] = {}
        self.vectors: dict[str, tuple[float, np.ndarray]] = {}
        self.to_broadcast: set[str] = set()
        self.progress = progress  # #11: the pipeline counter (recstream.prometheus), optional

    # Reads happen as the movie's own event: Faust's store reads the partition of
    # the current event, which inside a micro-batch is the batch's last one.
    def _stats(self, movie: str, event: EventT) -> MovieStats:
        stats = self.stats.get(movie)
        if stats is None:
            with as_event(event):
                raw = self.movie_stats.get(movie_key(movie))
            stats = self.stats[movie] = decode_movie_stats(raw)
        return stats

    def _vector(self, movie: str, event: EventT | None = None) -> tuple[float, np.ndarray]:
        vec = self.vectors.get(movie)
        if vec is None:
            if event is not None:
                with as_event(event):
                    raw = self.item_factors.get(movie_key(movie))
            else:  # outside any stream: Faust looks in every local partition
                raw = self.item_factors.get(movie_key(movie))
            # A vector learnt under an earlier promoted model lives in another factor
            # space: the current model's (or the init) vector replaces it.
            stored = decode_vector_generation(raw) if raw else None
            if stored is not None and stored[2] == self.current_model.generation:
                vec = stored[:2]
            else:
                vec = self.items.vector(movie)
            vec = self.vectors[movie] = (vec[0], np.array(vec[1], np.float32))
        return vec

    async def apply(self, batch: list[EventT]) -> None:
        stats_dirty: dict[str, EventT] = {}
        vectors_dirty: dict[str, EventT] = {}
        queued = len(self.to_broadcast)
        for event in batch:
            update: MovieUpdate = event.value
            if not isinstance(update, MovieUpdate):
                continue
            movie = update.movie
            stats = self._stats(movie, event)
            plays, ratings = counted(update, stats)
            if len(plays) < update.plays or len(ratings) < len(update.ratings):
                self.redelivered.inc(update.plays - len(plays)
                                     + len(update.ratings) - len(ratings))
            if plays:
                with as_event(event):
                    self.on_play(movie)
                stats.plays += len(plays)
                stats.viewers += len(plays)
                stats.popularity, stats.popularity_time = add_event(
                    stats.popularity, stats.popularity_time, update.time, float(len(plays)),
                    self.half_life_s)
            for rating, old_rating in ratings:
                if old_rating is None:
                    stats.ratings += 1
                    stats.rating_sum += rating
                    stats.rating_sumsq += rating ** 2
                else:
                    stats.rating_sum += rating - old_rating
                    stats.rating_sumsq += rating ** 2 - old_rating ** 2
            if ratings:
                stats.popularity, stats.popularity_time = add_event(
                    stats.popularity, stats.popularity_time, update.time,
                    RATING_POPULARITY_WEIGHT * len(ratings), self.half_life_s)
            stats.last_time = max(stats.last_time, update.time)
            stats_dirty[movie] = event
            if update.steps and update.generation == self.current_model.generation:
                # A step learnt under a replaced model (the writer lags: a backlog of
                # generation-0 steps met an implicit-ALS version on a replay) belongs to
                # another factor space; applied, it drifted the new item factors.
                bias, vec = self._vector(movie, event)
                for step in update.steps:
                    user_vec = np.asarray(step[2:], np.float32)
                    if user_vec.shape != vec.shape:
                        continue
                    vec, bias = item_step(vec, bias, user_vec, float(step[0]), lr=self.lr,
                                          reg=self.reg, weight=float(step[1]), clip=self.clip)
                    self.item_steps.inc()
                self.vectors[movie] = (bias, vec)
                vectors_dirty[movie] = event
            self.to_broadcast.add(movie)
        put = self.changelog.put
        for movie, event in stats_dirty.items():
            await put(self.movie_stats, movie_key(movie), encode_movie_stats(self.stats[movie]),
                      event)
        for movie, event in vectors_dirty.items():
            await put(self.item_factors, movie_key(movie),
                      encode_vector(*self.vectors[movie], self.current_model.generation), event)
        self.changelog.checkpoint()
        if self.progress is not None:
            self.progress.labels("movie_updates_applied").inc(len(batch))
            self.progress.labels("broadcast_queued").inc(len(self.to_broadcast) - queued)

    async def broadcast(self) -> int:
        """Publish the state of every movie changed since the last call."""
        movies, self.to_broadcast = self.to_broadcast, set()
        topic = self.broadcast_topic
        for movie in movies:
            stats = self.stats.get(movie) or MovieStats()
            bias, vec = self._vector(movie)
            await self.producer.produce(topic, movie_key(movie), encode_item_state(
                bias, vec, stats.popularity, stats.popularity_time, stats.plays,
                self.current_model.generation))
        if self.progress is not None:
            self.progress.labels("broadcast_sent").inc(len(movies))
        return len(movies)

    def forget(self) -> None:
        """Partitions moved: re-read from the tables next time."""
        self.stats.clear()
        self.vectors.clear()


def counted(update: MovieUpdate, stats: MovieStats) -> tuple[list, list]:
    """The plays (marks) and ratings of ``update`` not counted yet; advances the watermarks.

    Every play and rating carries its source event's mark ``[source, offset]``.
    Events of one source reach a movie in offset order (one writer per source
    partition, one partition per movie), so one offset per source says what was
    counted.  Newness is judged against the watermarks as they were before this
    update, then they advance.  Entries without a mark (updates from before
    marks existed) are counted as before.
    """
    applied = stats.applied
    before = dict(applied)

    def new(mark: Any) -> bool:
        if not mark:
            return True
        source, offset = mark[0], int(mark[1])
        applied[source] = max(applied.get(source, -1), offset)
        return offset > before.get(source, -1)

    play_marks = list(update.play_marks or []) or [None] * update.plays
    plays = [m for m in play_marks[:update.plays] if new(m)]
    marks = list(update.rating_marks or [])
    ratings = [pair for i, pair in enumerate(update.ratings)
               if new(marks[i] if i < len(marks) else None)]
    return plays, ratings


def register(app, writer: MovieWriter, *, movie_updates: Any, batch_size: int,
             within_s: float) -> MovieWriter:
    """``apply_movie_updates`` and the broadcast timer; caches dropped on a model swap."""
    writer.current_model.on_swap(writer.forget)

    @app.agent(movie_updates, name="apply_movie_updates")
    async def apply_movie_updates(stream) -> None:
        async for batch in stream.take_events(batch_size, within_s):
            await writer.apply(batch)
            await asyncio.sleep(0)

    @app.timer(BROADCAST_EVERY_S, name="broadcast_items")
    async def broadcast_items() -> None:
        if writer.to_broadcast:
            await writer.broadcast()

    return writer
