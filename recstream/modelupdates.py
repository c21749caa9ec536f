"""The serving model a worker holds, and the topic that announces promotions.

A promotion (``recstream models promote``, ``rollback`` or a scheduled
retrain) updates the registry's pointer and publishes it, keyed ``serving``,
on ``<app>-model-updates`` (one partition, compacted).  Every worker follows
that topic from the beginning and swaps to the newest generation it sees
(:mod:`agents.model_follower`); the registry directory is where the arrays are read
from, so it must be shared by the workers (a volume; see deploy/).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Iterable, Optional

import numpy as np
import orjson
from aiokafka import TopicPartition

from models.foldin import fold_in_implicit, item_gram, recency_by_rank
from models.registry import Registry
from recstream.kafka import end_offsets, ensure_topic, producer, reader
from recstream.settings import Settings

log = logging.getLogger(__name__)
KEY = b"serving"
ONLINE = "online"


def topic_name(settings: Settings) -> str:
    return f"{settings.app_id}-model-updates"


@dataclasses.dataclass
class ServingModel:
    """A promoted batch model's arrays, looked up by id (the base online learning continues from).

    Generation 0 is the online-only model: no arrays, every vector starts at
    its deterministic init.
    """

    version: str = ONLINE
    generation: int = 0
    promoted_at: float = 0.0
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)
    item_row: dict[str, int] = dataclasses.field(default_factory=dict)
    item_factors: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0),
                                                                                   np.float32))
    item_bias: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    user_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    user_factors: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0),
                                                                                   np.float32))
    user_bias: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    global_mean: Optional[float] = None
    # Implicit ALS (issue #10): users are folded in exactly against ``item_factors``
    # (``models.foldin``) with ``Y^T Y`` computed once here; no popularity blend.
    implicit: bool = False
    gram: Optional[np.ndarray] = None
    regularization: float = 0.0
    alpha: float = 1.0
    recent_half_life: Optional[float] = None

    @classmethod
    def load(cls, registry: Registry, pointer: dict[str, Any], n_factors: int) -> "ServingModel":
        """Read a version's arrays (blocking: call it in an executor)."""
        arrays, manifest = registry.load(pointer["version"])
        item_factors = np.asarray(arrays["item_factors"], np.float32)
        if item_factors.ndim != 2 or item_factors.shape[1] != n_factors:
            raise ValueError(f"model {pointer['version']} has factors of shape "
                             f"{item_factors.shape}; this worker serves {n_factors} factors")
        user_ids = np.asarray(arrays["user_ids"], np.int64)
        order = np.argsort(user_ids, kind="stable")  # sorted for searchsorted lookups
        item_ids = [str(x) for x in arrays["item_ids"].tolist()]
        implicit = manifest.get("model") == "ImplicitALS"
        params = manifest.get("hyperparameters") or {}
        return cls(implicit=implicit, gram=item_gram(item_factors) if implicit else None,
                   regularization=float(params.get("regularization", 0.0)),
                   alpha=float(params.get("alpha", 1.0)),
                   recent_half_life=params.get("recent_half_life"), version=str(pointer["version"]), generation=int(pointer["generation"]),
                   promoted_at=float(pointer.get("promoted_at", time.time())),
                   manifest=manifest, item_row={m: i for i, m in enumerate(item_ids)},
                   item_factors=item_factors,
                   item_bias=np.asarray(arrays["item_bias"], np.float32),
                   user_ids=user_ids[order],
                   user_factors=np.asarray(arrays["user_factors"], np.float32)[order],
                   user_bias=np.asarray(arrays["user_bias"], np.float32)[order],
                   global_mean=float(arrays["global_mean"]))

    @property
    def label(self) -> str:
        """The version served answers are attributed to (online steps ride on top)."""
        return self.version if self.generation else ONLINE

    def item_vector(self, movie: str) -> Optional[tuple[float, np.ndarray]]:
        """A movie's (bias, factors) in this version; one it never saw: None (its online
        init vector), or zeros for implicit ALS -- not ranked by a random vector against
        folded-in users until the next fit (docs/live-path.md §3; an ml-latest-small
        version fitted on 72% of a replay: Recall@20 0.132 with init vectors for the
        1,808 newer movies, 0.137 without, coverage 0.160 vs 0.087)."""
        row = self.item_row.get(movie)
        if row is None:
            if self.implicit:
                return 0.0, np.zeros(self.item_factors.shape[1], np.float32)
            return None
        return float(self.item_bias[row]), self.item_factors[row].copy()

    def fold_in(self, movies: Iterable[str]) -> np.ndarray:
        """The exact implicit-ALS vector of a user who watched or rated ``movies`` (oldest
        first: the newest weigh most with ``recent_half_life``)."""
        every = np.fromiter((self.item_row.get(m, -1) for m in movies), np.int64)
        weights = self.alpha * recency_by_rank(every.size, self.recent_half_life)
        known = every >= 0
        return fold_in_implicit(self.item_factors, self.gram, every[known], weights[known],
                                self.regularization)

    def user_rows(self, users: np.ndarray) -> np.ndarray:
        """Row in the arrays of each user id, -1 when the model never saw them."""
        users = np.asarray(users, np.int64)
        if self.user_ids.size == 0:
            return np.full(users.shape, -1, np.int64)
        pos = np.searchsorted(self.user_ids, users)
        pos = np.minimum(pos, self.user_ids.size - 1)
        return np.where(self.user_ids[pos] == users, pos, -1)

    def user_vector(self, user: int) -> Optional[tuple[float, np.ndarray]]:
        row = int(self.user_rows(np.array([user]))[0])
        if row < 0:
            return None
        return float(self.user_bias[row]), self.user_factors[row].copy()


class CurrentModel:
    """The one owner of the model a worker serves, behind a narrow interface.

    It holds the promoted base (:class:`ServingModel`), the running global rating mean
    the online updater centres on (model state: it follows every rating and is replaced
    by a promoted model's own), the users whose vectors a swap left behind (to refit),
    and who to tell when the model changes.  Agents and views read it; only
    :meth:`learn_rating` (the user writer) and :meth:`install` (the model follower)
    change it.
    """

    def __init__(self, *, global_mean: float) -> None:
        self._model = ServingModel()
        self._global_mean = float(global_mean)
        self._ratings = 0
        self._listeners: list[Callable[[], None]] = []
        self._refit: list[int] = []

    @property
    def model(self) -> ServingModel:
        return self._model

    @property
    def generation(self) -> int:
        return self._model.generation

    @property
    def label(self) -> str:
        return self._model.label

    @property
    def global_mean(self) -> float:
        return self._global_mean

    def learn_rating(self, rating: float) -> None:
        """Follow a new rating: a running mean, its step floored at 1/10,000."""
        self._ratings += 1
        self._global_mean += (rating - self._global_mean) / min(self._ratings + 10, 10_000)

    def set_global_mean(self, value: float) -> None:
        """Start from a known mean (a test's world, or a restored model)."""
        self._global_mean = float(value)

    def install(self, model: ServingModel, stragglers: Iterable[int] = ()) -> None:
        """Make ``model`` the base (synchronous: no request sees half of it), then tell."""
        self._refit.extend(stragglers)
        if model.global_mean is not None:
            self._global_mean = model.global_mean
        self._model = model
        for listener in self._listeners:
            listener()

    def on_swap(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    @property
    def refit_queue(self) -> list[int]:
        """Users to refit against the current model (read-only view for reports and tests)."""
        return list(self._refit)

    def queue_refit(self, user: int) -> None:
        self._refit.append(user)

    @property
    def pending_refits(self) -> int:
        return len(self._refit)

    def next_refit(self) -> Optional[int]:
        return self._refit.pop() if self._refit else None


def encode_pointer(pointer: dict[str, Any]) -> bytes:
    return orjson.dumps(pointer)


async def announce(settings: Settings, pointer: dict[str, Any]) -> None:
    """Publish a registry pointer on the model-updates topic (acks=all)."""
    topic = topic_name(settings)
    await ensure_topic(settings.bootstrap_servers, topic, 1, settings.replication_factor)
    out = producer(settings.bootstrap_servers)
    await out.start()
    try:
        await out.send_and_wait(topic, encode_pointer(pointer), key=KEY)
    finally:
        await out.stop()


async def latest_announced(settings: Settings, timeout_s: float = 10.0
                           ) -> Optional[dict[str, Any]]:
    """The newest pointer on the topic (None if nothing was ever announced)."""
    consumer = reader(settings.bootstrap_servers)
    await consumer.start()
    try:
        tp = TopicPartition(topic_name(settings), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await end_offsets(consumer, settings, [tp]))[tp]
        newest = None
        deadline = time.monotonic() + timeout_s
        while await consumer.position(tp) < end and time.monotonic() < deadline:
            for record in (await consumer.getmany(tp, timeout_ms=200)).get(tp, []):
                pointer = decode_pointer(record.value)
                if pointer and (newest is None or pointer["generation"] >= newest["generation"]):
                    newest = pointer
        return newest
    finally:
        await consumer.stop()


def decode_pointer(raw: Optional[bytes]) -> Optional[dict[str, Any]]:
    if not raw:
        return None
    try:
        pointer = orjson.loads(raw)
        int(pointer["generation"])
        str(pointer["version"])
        return pointer
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("ignoring a malformed model-updates record: %r", raw[:200])
        return None
