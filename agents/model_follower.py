"""The serving model: follow promotions, swap atomically, refit stragglers, retrain on schedule.

* :class:`ModelFollower` reads ``<app>-model-updates`` from the beginning with a
  plain consumer (every worker, no group).  At start it adopts the newest
  pointer (topic or registry file, whichever generation is higher) before the
  item follower and the user index load, so every stored vector is read
  against the right generation; ``model_loaded`` gates both.
* :func:`swap` installs a loaded model in one synchronous step on the event
  loop: no request can run between its first and last line, so none sees a
  half-swapped model.  The arrays are read from disk in an executor first.
  Precomputed answers are marked stale and recomputed by the refresher (a
  request for a stale user is ranked on the spot with the new model).
* Users whose vector belongs to the replaced model are refit from their history
  against the new item vectors (:mod:`agents.model_swap`): histories read a few hundred
  per loop turn, the fold-ins solved thousands per batched call in an executor; a
  request for a user still queued folds them in on the spot.
* The leader worker runs ``recstream train --promote`` every
  ``retrain_every_h`` hours as a child process (off the event loop and out of
  its GIL); the trainer gates, promotes and announces, and every worker —
  this one included — swaps when the announcement arrives.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, Callable, Optional

from recstream.kafka import follow_topic

from agents.model_swap import (REFIT_BATCH, REFIT_SOLVE, apply_refits, merge_refits,
                               refit_some, refit_user_now, solve_refits, swap, take_refits)
from models.registry import Registry
from recstream.modelupdates import (CurrentModel, ServingModel, decode_pointer,
                                    latest_announced, topic_name)
from recstream.prometheus import Metrics
from recstream.parts import Readiness
from recstream.settings import Settings
from tables.memory import ItemIndex, UserIndex
from tables.serving import Recommender
from tables.users import UserStore

log = logging.getLogger(__name__)
__all__ = ["ModelFollower", "REFIT_BATCH", "refit_some", "swap"]


class ModelFollower:
    """The one writer of the current model: follows announcements, swaps, refits stragglers."""

    def __init__(self, *, settings: Settings, current_model: CurrentModel, items: ItemIndex,
                 users: UserIndex, user_store: UserStore, recommender: Recommender,
                 metrics: Metrics, readiness: Readiness,
                 on_swap: Callable[[int], Any] = lambda generation: None) -> None:
        self.settings, self.current_model, self.metrics = settings, current_model, metrics
        self.readiness = readiness
        self.items, self.users, self.user_store = items, users, user_store
        self.recommender = recommender
        self.registry = Registry(settings.registry_path)
        self.on_swap = on_swap
        self.topic = topic_name(settings)
        recommender.refit_now = self.refit_now

    def refit_now(self, user: int) -> bool:
        return refit_user_now(user, current_model=self.current_model, users=self.users,
                              user_store=self.user_store)

    async def refit_batch(self, solve: int = REFIT_SOLVE, gather: int = REFIT_BATCH) -> int:
        """Refit up to ``solve`` queued users: histories read on the loop ``gather`` at a
        time (yielding between slices), implicit-ALS fold-ins solved in one executor call."""
        current_model = self.current_model
        if not current_model.model.implicit:
            return self.refit_some(gather)
        slices = []
        taken = 0
        while current_model.pending_refits and taken < solve:
            part = take_refits(current_model=current_model, users=self.users,
                               user_store=self.user_store, limit=gather)
            slices.append(part)
            taken += len(part.users)
            await asyncio.sleep(0)
        done = 0
        batch = merge_refits(slices) if slices else None
        if batch is not None and batch.generation == current_model.generation:
            vectors = await asyncio.get_running_loop().run_in_executor(
                None, solve_refits, current_model.model, batch)
            done = apply_refits(batch, vectors, current_model=current_model, users=self.users)
        self.metrics.refits.inc(done)
        self.metrics.refits_pending.set(current_model.pending_refits)
        return done

    def swap(self, model: ServingModel) -> None:
        swap(model, items=self.items, users=self.users, current_model=self.current_model,
             recommender=self.recommender)

    def refit_some(self, limit: int = REFIT_BATCH) -> int:
        return refit_some(settings=self.settings, current_model=self.current_model,
                          users=self.users, items=self.items, user_store=self.user_store,
                          limit=limit)

    async def switch(self, pointer: dict[str, Any]) -> bool:
        """Load ``pointer``'s arrays off the loop, then swap; False if they cannot be read."""
        metrics = self.metrics
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(None, ServingModel.load, self.registry, pointer,
                                               self.settings.n_factors)
        except Exception:
            log.exception("cannot load model %s (generation %s) from %s", pointer.get("version"),
                          pointer.get("generation"), self.registry.root)
            metrics.model_swaps.labels("failed").inc()
            return False
        if model.generation <= self.current_model.generation:
            return False  # a newer one was installed while this one loaded
        previous = self.current_model.label
        self.swap(model)
        self.on_swap(model.generation)
        took = time.perf_counter() - started
        metrics.model_swaps.labels("ok").inc()
        metrics.model_swap_seconds.set(took)
        metrics.model_info.clear()
        metrics.model_info.labels(model.label).set(1)
        metrics.model_generation.set(model.generation)
        log.info("serving model %s (generation %d, was %s): loaded and swapped in %.3fs",
                 model.label, model.generation, previous, took)
        return True

    async def start(self) -> None:
        """Adopt the newest promoted model, then let the indexes load against it."""
        announced = None
        try:
            announced = await latest_announced(self.settings)
        except Exception:  # the topic may not exist yet on a fresh cluster
            log.warning("could not read %s; using the registry file only", self.topic,
                        exc_info=True)
        pointers = [p for p in (announced, self.registry.serving()) if p]
        if pointers:
            newest = max(pointers, key=lambda p: int(p["generation"]))
            if not await self.switch(newest):
                # Keep the fleet's generation even without the arrays: vectors learnt
                # under it stay valid; the rest start from their init vectors.
                self.current_model.install(ServingModel(version=f"{newest['version']}-unloaded",
                                                      generation=int(newest["generation"])))
        self.metrics.model_info.labels(self.current_model.label).set(1)
        self.metrics.model_generation.set(self.current_model.generation)
        self.readiness.model_loaded.set()

    async def follow(self) -> None:
        await follow_topic(self.settings.bootstrap_servers, self.topic, self.apply_batch)

    async def apply_batch(self, records: list[Any]) -> None:
        """Swap to the newest generation in ``records`` above the one serving."""
        newest: Optional[dict[str, Any]] = None
        for record in records:
            pointer = decode_pointer(record.value)
            if pointer and int(pointer["generation"]) > self.current_model.generation and (
                    newest is None or pointer["generation"] > newest["generation"]):
                newest = pointer
        if newest is not None:
            await self.switch(newest)


RETRAIN_CHECK_S = 60.0


def retrain_due(s: Settings, elapsed_s: float, new_interactions: float) -> bool:
    """Time since the last retrain or the new data since then calls for another."""
    by_time = s.retrain_every_h > 0 and elapsed_s >= s.retrain_every_h * 3600.0
    by_volume = (s.retrain_min_new_interactions > 0
                 and new_interactions >= s.retrain_min_new_interactions)
    return by_time or by_volume


async def retrain_once(s: Settings, *, timeout_s: float = 3600.0) -> str:
    """Run ``recstream train --promote`` as a child process → promoted|rejected|failed."""
    argv = [sys.executable, "-m", "recstream.cli", "train", "--source", "state",
            "--model", s.retrain_model,
            "--window-hours", str(s.retrain_window_h), "--promote", "--json"]  # 0: all
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        log.error("retrain timed out after %.0fs", timeout_s)
        return "failed"
    if proc.returncode != 0:
        log.error("retrain failed (exit %s): %s", proc.returncode,
                  err.decode(errors="replace").strip().splitlines()[-1:] or "")
        return "failed"
    result = _last_json(out.decode(errors="replace"))
    decision = (result or {}).get("decision") or {}
    outcome = "promoted" if (result or {}).get("promoted") else "rejected"
    log.info("retrain %s in %.1fs: version %s; %s", outcome, time.monotonic() - started,
             (result or {}).get("version"), "; ".join(decision.get("reasons", [])))
    return outcome


def _last_json(text: str) -> Optional[dict[str, Any]]:
    import json
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def register(app, follower: ModelFollower, *, worker_id: str) -> ModelFollower:
    """Following, refitting, the model-age gauge and (if configured) scheduled retraining."""
    s, current_model, metrics = follower.settings, follower.current_model, follower.metrics
    readiness = follower.readiness

    @app.task
    async def follow_models() -> None:
        await follower.start()
        await follower.follow()

    @app.task
    async def refit_users() -> None:
        await readiness.users_loaded.wait()
        while True:
            if current_model.pending_refits:
                await follower.refit_batch()
                await asyncio.sleep(0)
            else:
                metrics.refits_pending.set(0)
                await asyncio.sleep(0.5)

    @app.timer(10.0, name="model_age")
    async def model_age() -> None:
        promoted = current_model.model.promoted_at
        metrics.model_age.set(time.time() - promoted if promoted else 0.0)

    if s.retrain_every_h > 0 or s.retrain_min_new_interactions > 0:
        learnt = metrics.interactions  # new (user, movie) pairs watched or rated

        @app.task
        async def scheduled_retrain() -> None:
            """By time *and* by data volume (issue #10): a stale item model costs recall."""
            await readiness.users_loaded.wait()
            last_at, last_count = time.monotonic(), learnt._value.get()
            while True:
                await asyncio.sleep(RETRAIN_CHECK_S)
                if not retrain_due(s, time.monotonic() - last_at,
                                   learnt._value.get() - last_count):
                    continue
                designated = (worker_id == s.retrain_on_worker) if s.retrain_on_worker \
                    else app.is_leader()
                if not designated:
                    continue
                last_at, last_count = time.monotonic(), learnt._value.get()
                result = await retrain_once(s)  # a child process: serving never waits
                metrics.retrains.labels(result).inc()

    return follower
