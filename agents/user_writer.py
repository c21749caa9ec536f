"""The one writer of ``user_history`` and ``user_vectors``.

Applies a micro-batch of parsed events (all in their user's own partition) to
the users' state, updates each touched user's vector, writes every dirty user
once, and tells the movies' owners what happened to their movies.  The vector:
with an implicit-ALS model serving (issue #10), an exact fold-in of every movie
the user ever watched or rated against its item factors, once per user per batch
whose movie set grew (order-free and idempotent; no item-side steps); otherwise
the user half of an online-MF step per rating or completed watch.

Idempotent: a redelivered minute, rating or account creation changes nothing
and writes nothing.  Each play and rating sent to a movie's owner carries its
source event's mark (topic/partition, offset) and is sent, and acknowledged,
before the user's state is written: the owner's counts are exact under
redelivery and a crash between the two writes (agents.movies.counted).  Watch progress is checkpointed every
``CHECKPOINT_MINUTES`` minutes of progress (and at start and completion)
rather than on every minute; a crash can under-count an ongoing watch's
extent by less than that, never lose a rating, watch start or account.
"""
from __future__ import annotations

import asyncio
from typing import Any

from faust.types import EventT

from recstream.records import MovieUpdate
from recstream.api_checks import SentAnswers
from recstream.kafka import AppProducer
from recstream.prometheus import Metrics
from recstream.modelupdates import CurrentModel
from recstream.monitor import Monitor
from recstream.settings import Settings
from tables.changelog import ChangelogWriter
from tables.codecs import UserHistory, encode_vector, movie_key
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender
from tables.users import UserStore

from agents.user_events import CHECKPOINT_MINUTES, EventKinds

__all__ = ["CHECKPOINT_MINUTES", "UserWriter"]


class UserWriter(EventKinds):
    """Users' state and the user half of online MF; the one writer of the user tables."""

    def __init__(self, *, settings: Settings, user_store: UserStore, users: UserIndex,
                 items: ItemIndex, current_model: CurrentModel, monitor: Monitor,
                 clock: Recommender, metrics: Metrics, changelog: ChangelogWriter,
                 producer: AppProducer, movie_updates: Any,
                 sent_answers: SentAnswers | None = None, progress: Any = None) -> None:
        self.settings, self.user_store, self.users, self.items = settings, user_store, users, items
        self.current_model, self.monitor, self.metrics = current_model, monitor, metrics
        self.clock = clock  # stream time: the Recommender's clock, one policy for all
        self.changelog, self.producer, self.movie_updates = changelog, producer, movie_updates
        self.sent_answers = sent_answers  # #12: outcome lines compared with what we sent
        s = settings
        self.lr, self.reg = s.learning_rate, s.regularization
        self.clip = s.max_step * (s.rating_max - s.rating_min)
        self.pseudo_rating = s.rating_min + 0.8 * (s.rating_max - s.rating_min)
        kinds = ("WatchMinute", "Rating", "AccountCreated", "RecommendationOutcome", "UserProfile")
        # Called (never awaited) with the id of a user seen for the first time: a new
        # account, or a first event of a user without history.  agents.profiles queues a
        # user-API fetch there; the profile comes back as a UserProfile event.
        self.on_new_user = lambda user: None
        self._applied = {k: metrics.events.labels(k) for k in kinds}
        self._unchanged = {k: metrics.duplicates.labels(k) for k in kinds}
        self._user_steps = metrics.model_updates.labels("user")
        self._interactions = metrics.interactions
        self._fold: set[int] = set()
        # One handler per event kind → whether the event changed anything.
        self._handlers = {
            "WatchMinute": self._watch, "Rating": self._rate,
            "AccountCreated": lambda rec, event, dirty, vectors, updates:
                self._created(rec, event, dirty),
            "RecommendationOutcome": lambda rec, event, dirty, vectors, updates:
                self._outcome(rec) or True,
        }
        # Staged by :meth:`stage`, sealed and written by :meth:`seal` (once per micro-batch).
        self._acks: list = []
        self._dirty: dict[int, tuple[EventT, UserHistory]] = {}
        self._vectors: dict[int, EventT] = {}
        self._writing: asyncio.Future | None = None  # the last sealed batch's writes
        # #11: the pipeline counter (recstream.prometheus), optional: movie updates sent.
        self._updates_sent = progress.labels("movie_updates_sent") if progress else None

    async def apply(self, batch: list[tuple[EventT, object]]) -> None:
        """Apply a batch and persist it (:meth:`stage` then :meth:`commit`)."""
        await self.stage(batch)
        await self.commit()

    async def stage(self, batch: list[tuple[EventT, object]]) -> None:
        """Apply events in memory and send their movie updates; the writes wait for commit."""
        dirty: dict[int, tuple[EventT, UserHistory]] = {}
        vectors: dict[int, EventT] = {}
        updates: dict[str, MovieUpdate] = {}
        self._fold: set[int] = set()  # users whose movie set grew (implicit model)
        observe = self.monitor.observe
        applied: dict[str, int] = {}  # counted once per chunk, not per event
        unchanged: dict[str, int] = {}
        handlers = self._handlers
        for event, record in batch:
            kind = type(record).__name__
            applied[kind] = applied.get(kind, 0) + 1
            if kind == "UserProfile":  # ours, not the platform's: no clock, no monitor
                if not self._profile(record, event, dirty, vectors):
                    unchanged[kind] = unchanged.get(kind, 0) + 1
                continue
            self.clock.observe_time(record.time)
            observe(record, event.message.partition, event)
            if not handlers[kind](record, event, dirty, vectors, updates):
                unchanged[kind] = unchanged.get(kind, 0) + 1
        for kind, n in applied.items():
            self._applied[kind].inc(n)
        for kind, n in unchanged.items():
            self._unchanged[kind].inc(n)
        model = self.current_model.model
        for user in self._fold:  # once per user per batch, after all their events
            event, history = dirty[user]
            self.users.set_vector(user, 0.0, model.fold_in(history.interacted()))
            self.users.invalidate(self.users.row(user))
            vectors[user] = event
            self._user_steps.inc()
        self._acks.extend(await self.producer.produce_many(self.movie_updates, [
            (movie_key(movie), update.dumps()) for movie, update in updates.items()]))
        if self._updates_sent is not None and updates:
            self._updates_sent.inc(len(updates))
        self._dirty.update(dirty)
        self._vectors.update(vectors)

    async def commit(self) -> None:
        """Write everything staged so far, once the broker has its movie updates."""
        await self.seal()

    def seal(self) -> asyncio.Future:
        """Snapshot the staged users' state now; write it once its movie updates are acked.

        The movies' owners hear first: after a crash in between, the replayed events
        change the users again and re-send the same marks, which the owner counts once.
        The other order would lose the play or rating (the replay finds it applied).
        The snapshot (encoded bytes) is taken here, so the next batch may be staged in
        memory while this one waits for its acknowledgements (#11: the wait is
        pipelined, not paid in line): what is written never includes a later batch's
        events, whose movie updates may not be acknowledged yet.  Sealed batches are
        written in order (each write waits for the previous one), so a user's older
        snapshot never overwrites a newer one.  The next batch reads its users from the
        store's cache, which must still hold every user of the batch in flight (the
        cache keeps 50k users, a batch touches at most ``ingest_batch`` per agent): a
        user re-read from RocksDB before its pending write would lose that batch.
        → the future of this batch's writes.
        """
        acks, self._acks = self._acks, []
        dirty, self._dirty = self._dirty, {}
        vectors, self._vectors = self._vectors, {}
        store, users = self.user_store, self.users
        histories = [(user, store.encode_history(history), event)
                     for user, (event, history) in dirty.items()]
        generation = self.current_model.generation
        encoded = []
        for user, event in vectors.items():
            row = users.get_row(user)
            encoded.append((user, encode_vector(float(users.bias[row]), users.factors[row],
                                                generation), event))
        previous = self._writing
        self._writing = done = asyncio.ensure_future(
            self._write(previous, acks, histories, encoded))
        return done

    async def _write(self, previous, acks: list, histories: list, vectors: list) -> None:
        if previous is not None:
            # A failed earlier write fails this one too: this snapshot holds that batch's
            # events, whose movie updates may never have reached the broker.
            await previous
        if acks:
            await asyncio.gather(*acks)
        store = self.user_store
        for user, raw, event in histories:
            await store.put_history(user, raw, event)
        for user, raw, event in vectors:
            await store.put_vector(user, raw, event)
        self.changelog.checkpoint()
