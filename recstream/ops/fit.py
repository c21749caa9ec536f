"""Batch retraining (``recstream train``): read a window, fit, evaluate, store, maybe promote.

The window is :mod:`recstream.ops.data_window`, the gate's measurements
:mod:`recstream.ops.promotion`; this module fits and stores.

Data never comes from a worker's RocksDB (the running worker holds its lock): it is read
with a plain consumer up to end offsets fixed at the start, either from the
``<app>-user_history-changelog`` topic (the state the workers accumulated; the last value
per key wins, tombstones delete) or from the raw movielog topic, re-aggregated with the
workers' own rules (:class:`~tables.codecs.UserHistory`: the latest rating per movie, the
furthest minute per watch).  Both sources end as per-user histories, so one function
applies the event-time window and derives the training rows whichever the source.

The serving model is biased MF in the online updater's units (ratings, global mean,
biases, ``settings.n_factors`` factors), so the workers' SGD continues from it.  Quality
is measured on the newest 10 % of the window, for the candidate and the serving version
alike, before the candidate is refitted on the whole window and stored.
"""
from __future__ import annotations

import ctypes
import dataclasses
import sys
import time
from typing import Any, TextIO

from models.als import BiasedALS, ImplicitALS
from models.artifact import data_hash, new_version_id, training_manifest
from models.popularity_batch import PopularityModel
from recstream.ops.data_window import (HOLDOUT_FRACTION, NoData, holdout_split, load,
                                       pseudo_rating, training_rows, window_data)
from recstream.ops.as_served import AsServed, Fitted
from recstream.ops.promotion import METRIC_KEYS, paired_ranking, promote, score, score_serving
from recstream.settings import Settings
from recstream.version import code_version

MODELS = ("als", "ials")
__all__ = ["MODELS", "NoData", "Progress", "TrainRequest", "limit_blas_threads", "make_model",
           "train"]


# The serving model ranks by its item biases: without a shrinkage that holds for rarely
# rated movies, one 5-star rating puts a movie above every classic.  ml-100k u1-u5
# (bench: docs/benchmarks.md): shrinkage 0 -> RMSE 0.9135, Recall@20 0.017; 10 -> 0.9172,
# 0.106.
BIAS_SHRINKAGE = 10.0


# -- progress ------------------------------------------------------------------------------
class Progress:
    """Stages as lines and a ``[#####-----] n/total`` bar on stderr (no dependency).

    On a terminal the bar is redrawn in place; in a log it gets a line per tenth.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open = False
        self._shown = -1

    def stage(self, text: str) -> None:
        self._close()
        self.stream.write(f"train: {text}\n")
        self.stream.flush()

    def bar(self, label: str, done: int, total: int) -> None:
        total = max(total, 1)
        tenth = min(10, 10 * done // total)
        if not self.live and tenth == self._shown:
            return
        self._shown = tenth
        filled = min(self.width, self.width * done // total)
        line = f"  {label} [{'#' * filled}{'-' * (self.width - filled)}] {done}/{total}"
        self.stream.write(("\r" + line) if self.live else (line + "\n"))
        self._open = self.live
        if done >= total:
            self._close()
        self.stream.flush()

    def _close(self) -> None:
        if self._open:
            self.stream.write("\n")
        self._open, self._shown = False, -1


# -- models --------------------------------------------------------------------------------
def make_model(kind: str, settings: Settings) -> BiasedALS | ImplicitALS:
    if kind == "als":  # bias shrinkage: see BIAS_SHRINKAGE
        return BiasedALS(n_factors=settings.n_factors, seed=settings.seed,
                         bias_shrinkage=BIAS_SHRINKAGE,
                         rating_range=(float(settings.rating_min), float(settings.rating_max)))
    if kind == "ials":  # binary confidence: what validation chose on MovieLens (live-path.md).
        # The fit keeps the class's time decay and exact solves: the live service was measured
        # with them; the no-decay fit, CG half steps and recency at fold-in (docs/live-path.md
        # §9) are options until measured on the service (docs/benchmarks.md, #10 phase 3).
        return ImplicitALS(n_factors=settings.n_factors, seed=settings.seed,
                           regularization=settings.ials_regularization,
                           alpha=settings.ials_alpha, confidence="binary",
                           recent_half_life=settings.ials_recent_half_life or None)
    raise ValueError(f"unknown model {kind!r}: use one of {', '.join(MODELS)}")


def with_progress(model: Any, progress: Progress, label: str) -> Any:
    """Tick ``progress`` once per ALS half step (users, then items) during ``fit``.

    The models take no callback, so the instance's half-step method is wrapped; the type,
    parameters and arrays are untouched.  A model without one just shows no bar.
    """
    step = getattr(model, "_half_step", None)
    total = 2 * int(getattr(model, "iterations", 0))
    if step is None or total == 0:
        return model
    done = 0

    def ticking(*args: Any, **kwargs: Any) -> Any:
        nonlocal done
        result = step(*args, **kwargs)
        done = done % total + 1
        progress.bar(f"{label}: ALS iteration {(done + 1) // 2}/{total // 2}", done, total)
        return result

    model._half_step = ticking
    return model


def limit_blas_threads(n: int) -> int:
    """Cap OpenBLAS threads in this process → how many loaded OpenBLAS libraries took it.

    The trainer shares its machine with the worker.  Under contention OpenBLAS's threads
    spin against each other: a 1M-rating ALS fit took 5x longer with numpy's default two
    threads than with one on this 2-core box while other processes ran.  Done through the
    libraries' own setters (no dependency); a platform without /proc changes nothing.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return 0
    limited = 0
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                limited += 1
                break
    return limited


def hyperparameters(settings: Settings) -> dict[str, Any]:
    names = ("n_factors", "rating_min", "rating_max", "watch_complete_minutes",
             "implicit_weight", "retrain_window_h", "gate_tolerance", "seed", "history_limit",
             "ials_regularization", "ials_alpha", "ials_recent_half_life",
             "app_id", "topic", "partitions")
    return {name: getattr(settings, name) for name in names}


# -- the pipeline --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TrainRequest:
    source: str = "state"
    window_hours: float | None = None  # None: settings.retrain_window_h
    model: str = "als"  # the CLI's default is settings.retrain_model
    promote: bool = False


async def train(settings: Settings, request: TrainRequest, *, registry: Any,
                progress: Progress | None = None, announce: Any = None,
                gate: Any = None) -> dict[str, Any]:
    """The whole command: → the report printed by ``recstream train`` (JSON-able)."""
    progress = progress or Progress()
    hours = (settings.retrain_window_h if request.window_hours is None
             else request.window_hours)  # 0: every interaction held
    timings: dict[str, float] = {}
    started = time.perf_counter()
    progress.stage(f"reading {request.source} (window "
                   f"{f'{hours:g} h of event time' if hours > 0 else 'all data'})")
    histories, read = await load(settings, request.source, hours, progress)
    data = window_data(histories, hours=hours, settings=settings)
    rows = training_rows(data, request.model)
    if len(rows) == 0:
        what = "ratings or completed watches" if request.model == "als" else \
            "watches or ratings"
        span = f"the {hours:g} h window" if hours > 0 else "all the data"
        raise NoData(f"no {what} in {span} of {request.source} "
                     f"({read.describe()})")
    timings["load_seconds"] = time.perf_counter() - started

    progress.stage(f"holdout: fitting {request.model} on the older {1 - HOLDOUT_FRACTION:.0%}")
    split, holdout = holdout_split(data, request.model)
    candidate: dict[str, Any] | None = None
    serving: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    if len(split.train) and len(split.test):
        fitted = with_progress(make_model(request.model, settings), progress, "holdout fit")
        candidate = score(AsServed(fitted, settings.popularity_blend), split, settings)
        baseline = score(PopularityModel(rating_range=(float(settings.rating_min),
                                                       float(settings.rating_max))),
                         split, settings)
        serving = score_serving(registry, split, holdout, settings, progress,
                                candidate=fitted, candidate_interactions=len(rows))
        candidate["interactions"] = len(rows)  # the gate's data-fraction check
        if serving is None:  # per-user values for the gate's "nothing serving" branch
            served = AsServed(Fitted(fitted), settings.popularity_blend).fit(
                split.train.users, split.train.items, split.train.values)
            candidate["per_user"] = paired_ranking(served, served, split, settings).get(
                "per_user", {}).get("candidate", {})
    else:
        holdout["skipped"] = "the split left no training or no test rows"
    timings["holdout_seconds"] = time.perf_counter() - started - timings["load_seconds"]

    progress.stage(f"fitting {request.model} on the whole window ({len(rows)} rows)")
    fit_start = time.perf_counter()
    model = with_progress(make_model(request.model, settings), progress, "final fit")
    model.fit(rows.users, rows.items, rows.values, timestamps=rows.timestamps)
    timings["fit_seconds"] = time.perf_counter() - fit_start

    metrics = {**(candidate or {key: None for key in METRIC_KEYS}), "holdout": holdout,
               "serving": serving, "popularity_baseline": baseline}
    manifest = training_manifest(model, rows.users, rows.items, rows.values, rows.timestamps,
                                 code_version=code_version(), topic_offsets=read.as_manifest(),
                                 metrics=metrics)
    manifest.update({
        "source": request.source, "window": data.as_dict(), "settings": hyperparameters(settings),
        "serves": request.model in ("als", "ials"),
        "data": {"ratings": len(data.ratings), "pseudo_ratings": len(data.pseudo),
                 "watches": len(data.watches), "users_read": len(histories),
                 "interactions": len(data.interactions),
                 "ratings_hash": data_hash(data.ratings.users, data.ratings.items,
                                           data.ratings.values),
                 "pseudo_rating": pseudo_rating(settings), "read": read.stats}})
    version = registry.add(model.to_arrays(), manifest, version=new_version_id())
    progress.stage(f"stored version {version} in {settings.registry_dir}")

    decision = pointer = None
    if request.promote:
        decision, pointer = await promote(settings, registry, version, request.model, candidate,
                                          serving, gate=gate, announce=announce)
        progress.stage(f"promotion {'passed' if decision['passed'] else 'refused'}: "
                       + "; ".join(decision["reasons"]))
    timings["total_seconds"] = time.perf_counter() - started
    return {"version": version, "model": request.model, "source": request.source,
            "window": data.as_dict(), "topic_offsets": read.as_manifest(),
            "data": manifest["data"], "data_hash": manifest["data_hash"],
            "code_version": manifest["code_version"], "metrics": metrics,
            "promote": request.promote, "decision": decision, "promoted": pointer is not None,
            "serving": pointer, "timings": timings, "registry": settings.registry_dir}


