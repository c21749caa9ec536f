"""Answers for ``/recommend``: precomputed per user, recomputed when state changes.

A request costs a row lookup and a string join when the user's answer is
fresh; a stale one (the user just rated or watched something) is recomputed
on the spot for that user, so a new rating shows in the very next answer.
The background refresher recomputes stale rows in batches (one matrix
product in an executor thread) so that most requests find a fresh row.
Unknown users get the popularity fallback, which is kept safe for minors.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from models.ranking import mask_rows, score_users, top_k, top_k_rows
from recstream.clock import StreamClock
from recstream.settings import Settings
from tables.codecs import UserHistory
from tables.memory import ItemIndex, UserIndex

Source = str  # "personal" | "popular" (known user, no vector yet) | "fallback" (unknown)
RANK_CHUNK = 512  # users scored per pass in score_and_rank (bounds its transient memory)


class Recommender:
    def __init__(self, settings: Settings, items: ItemIndex, users: UserIndex,
                 history_of: Callable[[int], Optional[UserHistory]]) -> None:
        self.settings = settings
        self.items = items
        self.users = users
        self.history_of = history_of
        self.half_life_s = settings.popularity_half_life_h * 3600.0
        # 0 while an implicit-ALS model serves (its scores already carry popularity).
        self.popularity_blend = settings.popularity_blend
        self.clock = StreamClock()
        self.stream_time = 0.0  # newest believable event time: popularity is decayed to it
        self.fallback_rows: list[int] = []
        self.fallback_line = ""
        self._prior: Optional[np.ndarray] = None
        self._prior_at = -1.0
        # What ranks personal answers (here and in agents.refresher): the plain top-k, or
        # the feedback-loop mitigation when switched on (issue #14, tables/mitigation.py).
        self.ranker = self.score_and_rank
        if settings.feedback_rerank_weight > 0 or settings.feedback_explore_slots > 0:
            from tables.mitigation import MitigatedRanker
            self.ranker = MitigatedRanker(items, self.score_and_rank,
                                          weight=settings.feedback_rerank_weight,
                                          explore_slots=settings.feedback_explore_slots)
        self._prior_blend = self.popularity_blend
        self._short_ranked_over: dict[int, int] = {}  # row → items held when re-ranked short
        # Set by agents.model_follower: folds a user queued for a refit after a swap in on
        # the spot (user id → refit?), so a request never waits for the refit queue.
        self.refit_now: Optional[Callable[[int], bool]] = None

    # -- popularity -------------------------------------------------------------------
    def observe_time(self, event_time: float) -> None:
        """Advance stream time (see :class:`recstream.clock.StreamClock`).

        One line with a far-future timestamp would otherwise decay every
        popularity score to zero and flatten the fallback ranking.
        """
        self.stream_time = self.clock.observe(event_time)

    def prior(self) -> np.ndarray:
        """Popularity prior, recomputed at most once a second of wall time."""
        now = time.monotonic()
        if self._prior is None or now - self._prior_at > 1.0 or self._prior_blend != \
                self.popularity_blend or \
                self._prior.shape[0] != len(self.items):
            self._prior = self.items.prior(self.stream_time, self.half_life_s,
                                           self.popularity_blend)
            self._prior_at = now
            self._prior_blend = self.popularity_blend
        return self._prior

    def refresh_fallback(self) -> None:
        n = len(self.items)
        if n == 0:
            return
        scores = self.items.popularity(self.stream_time, self.half_life_s)
        # Ties (e.g. nothing played yet) fall back to the item bias, then to order.
        scores = scores + 1e-6 * self.items.bias[:n]
        scores = np.where(self.items.safe_for_minors[:n], scores, -np.inf)
        rows = top_k(scores, self.settings.top_k)
        self.fallback_rows = rows
        self.fallback_line = ",".join(self.items.ids[r] for r in rows)

    # -- answers ----------------------------------------------------------------------
    def fallback(self) -> str:
        """The popularity fallback line (computed on first use)."""
        if not self.fallback_line:
            self.refresh_fallback()
        return self.fallback_line

    def answer(self, user: int) -> tuple[str, Source]:
        line, source, _ = self.answer_with_guardrails(user)
        return line, source

    def answer_with_guardrails(self, user: int) -> tuple[str, Source, list[str]]:
        """``(line, source, guardrail actions)``: what was filtered, for provenance."""
        row = self.users.get_row(user)
        if row < 0:
            return self.fallback(), "fallback", ["minor_safe"]
        if not self.users.fresh[row] or (
                int((self.users.answers[row] >= 0).sum()) < self.settings.top_k
                and len(self.items) > self._short_ranked_over.get(row, 0)):
            # Stale, or ranked when the item index held fewer movies than now (items reach
            # it by broadcast, after the user's events): a short list is re-ranked.
            if self.refit_now is not None and self.users.pending[row]:
                self.refit_now(user)
            self.users.store_answers(np.array([row]), self.compute([row]))
            self._short_ranked_over[row] = len(self.items)
            self.users.dirty.discard(row)
        source = "personal" if self.users.has_vector[row] else "popular"
        ids = self.items.ids
        # Flags can change after the row was ranked (metadata arrives late): check again.
        minor = bool(self.users.minor[row])
        safe = self.items.safe_for_minors if minor else self.items.safe_for_all
        ranked = [i for i in self.users.answers[row].tolist() if i >= 0]
        kept = [i for i in ranked if safe[i]]
        if not kept:  # ranked before any movie was confirmed (fail closed, #14): rank again
            self.users.store_answers(np.array([row]), self.compute([row]))
            ranked = [i for i in self.users.answers[row].tolist() if i >= 0]
            kept = [i for i in ranked if safe[i]]
        line = ",".join([ids[i] for i in kept])
        guardrails = ["minor_safe"] if minor else ["no_adult"]
        removed = len(ranked) - len(kept)
        if removed:
            guardrails.append(f"late_flag_removed:{removed}")
        if not line:  # never the plain fallback: it may hold what this user already saw
            return self.fallback_for(row), "fallback", guardrails + ["empty_personal"]
        return line, source, guardrails

    def fallback_for(self, row: int) -> str:
        """The popularity fallback without what user ``row`` saw (issue #10), safe for them.

        Reached when a known user's ranked list came out empty; the plain fallback holds
        the most popular movies, which a heavy user has most likely watched.
        """
        n = len(self.items)
        if n == 0:
            return ""
        scores = self.items.popularity(self.stream_time, self.half_life_s).astype(np.float64)
        scores = scores + 1e-6 * self.items.bias[:n]
        safe = self.items.safe_for_minors if self.users.minor[row] else self.items.safe_for_all
        scores = np.where(safe[:n], scores, -np.inf)
        mask_rows(scores[None, :], self.exclusions([row]))
        rows = [r for r in top_k(scores, self.settings.top_k) if np.isfinite(scores[r])]
        # Seen everything safe: the plain fallback, since an answer is always something.
        return ",".join(self.items.ids[r] for r in rows) or self.fallback()

    def exclusions(self, rows: list[int] | np.ndarray) -> list[np.ndarray]:
        """Item rows each user must not get: already seen (if configured)."""
        out = []
        row_of = self.items.row_of
        for r in rows:
            if not self.settings.exclude_watched:
                out.append(np.empty(0, np.int64))
                continue
            history = self.history_of(int(self.users.user_ids[r]))
            seen = history.seen() if history is not None else ()
            out.append(np.fromiter((row_of[m] for m in seen if m in row_of), np.int64))
        return out

    def compute(self, rows: list[int] | np.ndarray,
                exclusions: Optional[list[np.ndarray]] = None) -> np.ndarray:
        """Top-k item rows for user ``rows`` → int32 ``[len(rows), k]`` (-1 padded)."""
        rows = np.asarray(rows, np.int64)
        n = len(self.items)
        if exclusions is None:
            exclusions = self.exclusions(rows)
        return self.ranker(
            self.users.factors[rows], self.users.minor[rows], exclusions,
            self.items.factors[:n], self.items.bias[:n], self.prior()[:n],
            self.items.safe_for_all[:n], self.items.safe_for_minors[:n], self.settings.top_k)

    @staticmethod
    def score_and_rank(user_factors: np.ndarray, minor: np.ndarray,
                       exclusions: list[np.ndarray], item_factors: np.ndarray,
                       item_bias: np.ndarray, prior: np.ndarray, safe_for_all: np.ndarray,
                       safe_for_minors: np.ndarray, k: int) -> np.ndarray:
        """Pure numpy; safe to run in an executor thread on array snapshots.

        Ranks ``RANK_CHUNK`` users at a time: the same answers as one pass (rows
        are independent), but the transient score/partition arrays stay bounded
        whatever the batch: 2,048 users over 27k movies in one pass peak at ~0.9 GB,
        in chunks of 512 at ~0.25 GB, for the same time.
        """
        n_users = user_factors.shape[0]
        if item_factors.shape[0] == 0:
            return np.full((n_users, k), -1, np.int32)
        unsafe, unsafe_for_minors = ~safe_for_all, ~safe_for_minors
        out = np.empty((n_users, k), np.int32)
        for lo in range(0, n_users, RANK_CHUNK):
            hi = min(lo + RANK_CHUNK, n_users)
            scores = score_users(user_factors[lo:hi], item_factors, item_bias, prior)
            scores[:, unsafe] = -np.inf
            chunk_minor = minor[lo:hi]
            if chunk_minor.any():
                scores[np.ix_(chunk_minor, unsafe_for_minors)] = -np.inf
            mask_rows(scores, exclusions[lo:hi])
            out[lo:hi] = top_k_rows(scores, k)
        return out
