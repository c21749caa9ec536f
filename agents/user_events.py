"""The five event kinds a :class:`agents.user_writer.UserWriter` applies, by role.

Each handler applies one parsed event to its user's in-memory state and says whether it
changed anything (a redelivered minute, rating, account or profile changes nothing): watch
minutes, ratings, account creations, our cold-start profiles and the platform's log of our
answers; plus the user half of an online-MF step and the movie update each play, rating
or step adds for the movie's owner.  Mixed into ``UserWriter``, which owns the state they
touch (``user_store``, ``users``, ``items``, ``current_model``, ``monitor``, ``metrics``,
``settings``) and writes it once per micro-batch.
"""
from __future__ import annotations

import numpy as np
from faust.types import EventT

from models.guardrails import ADULT, audience
from models.online import init_vector, user_step
from recstream.records import (AccountCreated, MovieUpdate, Rating, RecommendationOutcome,
                               UserProfile, WatchMinute)

CHECKPOINT_MINUTES = 5


class EventKinds:
    """One handler per event kind (→ whether the event changed anything)."""

    def _watch(self, rec: WatchMinute, event, dirty, vectors, updates) -> bool:
        history = self.user_store.history(rec.user, event)
        if not history.watches and not history.ratings and history.created is None:
            self.on_new_user(rec.user)
        is_new = rec.movie not in history.watches
        new_pair = not history.knows(rec.movie)
        change = history.watch(rec.movie, rec.minute, rec.time,
                               self.settings.watch_complete_minutes)
        if change is None:
            return False
        if new_pair:
            self._interactions.inc()
        self.monitor.watched(rec, is_new, change == "complete")
        if is_new:
            update = _update(updates, rec.movie, rec.time)
            update.plays += 1
            update.play_marks.append(mark(event))
            self.users.invalidate(self.users.row(rec.user))
        if self.current_model.model.implicit:
            if is_new:
                self._fold.add(rec.user)
        elif change == "complete" and rec.movie not in history.ratings:
            self._learn(rec.user, rec.movie, self.pseudo_rating, self.settings.implicit_weight,
                        rec.time, event, vectors, updates)
        if is_new or change == "complete" or history.needs_checkpoint(rec.movie,
                                                                    CHECKPOINT_MINUTES):
            dirty[rec.user] = (event, history)
        return True

    def _rate(self, rec: Rating, event, dirty, vectors, updates) -> bool:
        history = self.user_store.history(rec.user, event)
        new_pair = not history.knows(rec.movie)
        change, old = history.rate(rec.movie, rec.rating, rec.time)
        if change is None:
            return False
        self.monitor.rated(rec, change == "new")
        if new_pair:
            self._interactions.inc()
        dirty[rec.user] = (event, history)
        self.current_model.learn_rating(rec.rating)
        update = _update(updates, rec.movie, rec.time)
        update.ratings.append([rec.rating, old])
        update.rating_marks.append(mark(event))
        if self.current_model.model.implicit:
            if change == "new":
                self._fold.add(rec.user)
            return True
        self._learn(rec.user, rec.movie, float(rec.rating), 1.0, rec.time, event, vectors,
                    updates)
        return True

    def _created(self, rec: AccountCreated, event, dirty) -> bool:
        history = self.user_store.history(rec.user, event)
        if history.created is not None:
            return False
        history.created = rec.time
        self.users.row(rec.user)
        dirty[rec.user] = (event, history)
        self.on_new_user(rec.user)
        return True

    def _profile(self, rec: UserProfile, event, dirty, vectors) -> bool:
        """Demographics and named movies once; the vector only if the user has none.

        Learned state is never overwritten: a vector in memory, in the table (this
        model generation) or in the promoted batch model wins.  Idempotent: a
        redelivered profile finds ``profiled`` set and changes nothing.
        """
        history = self.user_store.history(rec.user, event)
        if history.profiled is not None:
            return False
        history.profiled = rec.time
        history.age = rec.age if rec.age >= 0 else None
        history.gender = rec.gender
        history.named = list(rec.named)
        dirty[rec.user] = (event, history)
        users = self.users
        row = users.row(rec.user)
        users.minor[row] = audience(history.age) != ADULT  # unknown age: minors' rules
        users.invalidate(row)  # named movies and the minor flag change the answer too
        n = self.settings.n_factors
        if (len(rec.vector) == n and rec.generation == self.current_model.generation
                and not users.has_vector[row]
                and self.user_store.vector(rec.user, event, self.current_model.generation) is None
                and self.current_model.model.user_vector(rec.user) is None):
            users.set_vector(rec.user, rec.bias, np.asarray(rec.vector, np.float32))
            vectors[rec.user] = event
        return True

    def _outcome(self, rec: RecommendationOutcome) -> None:
        if self.users.get_row(rec.user) < 0:  # asked for, never seen: maybe a new account
            self.on_new_user(rec.user)
        m = self.metrics
        m.outcomes.labels(str(rec.status)).inc()
        if self.sent_answers is not None:
            self.sent_answers.compare(rec.user, rec.status, rec.movies, rec.error)
        if rec.latency_ms >= 0:
            m.platform_latency.observe(rec.latency_ms / 1000.0)

    # -- the user half of an MF step ----------------------------------------------------
    def _learn(self, user: int, movie: str, value: float, weight: float, time: float,
               event, vectors, updates) -> None:
        users = self.users
        row = users.row(user)
        if not users.has_vector[row]:
            stored = self.user_store.vector(user, event, self.current_model.generation)
            if stored is None:  # the promoted model's vector, else the init vector
                stored = self.current_model.model.user_vector(user) or (
                    0.0, init_vector(("u", user), self.settings.n_factors,
                                     scale=self.settings.init_scale, seed=self.settings.seed))
            users.set_vector(user, *stored)
        item_bias, item_vec = self.items.vector(movie)
        before = users.factors[row].copy()
        vec, bias, err = user_step(before, float(users.bias[row]), item_vec, item_bias,
                                   self.current_model.global_mean, value, lr=self.lr, reg=self.reg,
                                   weight=weight, clip=self.clip)
        users.set_vector(user, bias, vec)
        users.invalidate(row)
        vectors[user] = event
        self._user_steps.inc()
        update = _update(updates, movie, time)
        update.generation = self.current_model.generation  # the space of ``before``
        update.steps.append([err, weight, *before.tolist()])


def _update(updates: dict[str, MovieUpdate], movie: str, time: float) -> MovieUpdate:
    update = updates.get(movie)
    if update is None:
        update = updates[movie] = MovieUpdate(movie=movie, time=time, plays=0, ratings=[],
                                              steps=[], play_marks=[], rating_marks=[])
    elif time > update.time:
        update.time = time
    return update


def mark(event: EventT) -> list:
    """The source event of a play or rating, for the movie owner's exactly-once count."""
    message = event.message
    return [f"{message.topic}/{message.partition}", message.offset]
