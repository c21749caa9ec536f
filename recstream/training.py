"""Batch retraining (``recstream train``): read a window, fit, evaluate, store, maybe promote.

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
import importlib.metadata
import itertools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

import numpy as np

from models import evaluation
from models.als import BiasedALS, ImplicitALS
from models.artifact import data_hash, new_version_id, training_manifest
from models.datasets import Interactions
from models._ids import lookup, top_k
from models.metrics import ndcg_at_k, recall_at_k
from models.popularity import popularity_prior
from models.ranking import score_users
from models.popularity_batch import PopularityModel
from recstream.training_data import TopicRange, read_changelog, read_movielog
from recstream.settings import Settings
from tables.codecs import UserHistory

HOLDOUT_FRACTION = 0.1
K = 20
MODELS = ("als", "ials")
SOURCES = ("state", "movielog")
METRIC_KEYS = ("rmse", "mae", f"recall_at_{K}", f"ndcg_at_{K}", "n_test", "n_users",
               "n_ranked_users", "n_train", "fit_seconds")


# The serving model ranks by its item biases: without a shrinkage that holds for rarely
# rated movies, one 5-star rating puts a movie above every classic.  ml-100k u1-u5
# (bench: docs/benchmarks.md): shrinkage 0 -> RMSE 0.9135, Recall@20 0.017; 10 -> 0.9172,
# 0.106.
BIAS_SHRINKAGE = 10.0


class NoData(Exception):
    """Nothing to train on in the window (the command exits non-zero with this line)."""


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


# -- from per-user histories to training rows ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class WindowData:
    """The window's rows; each table sorted by (user, item) so hashes are reproducible."""

    ratings: Interactions   # explicit: the latest rating per (user, movie), time in window
    watches: Interactions   # value = furthest minute, time = last watch time, in window
    pseudo: Interactions    # completed watches the user never rated → pseudo-rating
    start: float
    end: float
    hours: float

    def as_dict(self) -> dict[str, Any]:
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        return {"start": self.start, "end": self.end, "hours": self.hours,
                "start_utc": iso(self.start), "end_utc": iso(self.end),
                "clock": "event time; ends at the newest event read"}


def pseudo_rating(settings: Settings) -> float:
    """What the online updater learns from a completed, unrated watch (agents.users)."""
    return settings.rating_min + 0.8 * (settings.rating_max - settings.rating_min)


def window_data(histories: Mapping[int, UserHistory], *, hours: float,
                settings: Settings) -> WindowData:
    """The rows of the ``hours`` before the newest event time held in ``histories``."""
    ratings, watches = _Columns(), _Columns()
    rated: list[bool] = []
    for user, history in histories.items():
        held = history.ratings
        ratings.extend(user, held.keys(), list(held.values()))
        watches.extend(user, history.watches.keys(), list(history.watches.values()))
        rated.extend([movie in held for movie in history.watches])
    r, w = ratings.table(0, 1), watches.table(0, 2)  # [rating, time]; [max minute, _, last, _]
    end = float(max(r.timestamps.max(initial=0.0), w.timestamps.max(initial=0.0)))
    start = end - hours * 3600.0
    in_window = w.timestamps >= start
    completed = in_window & (w.values >= settings.watch_complete_minutes) & ~np.asarray(rated,
                                                                                       bool)
    pseudo = w.subset(completed)
    pseudo = Interactions(pseudo.users, pseudo.items,
                          np.full(len(pseudo), pseudo_rating(settings)), pseudo.timestamps)
    return WindowData(_canonical(r.subset(r.timestamps >= start)),
                      _canonical(w.subset(in_window)), _canonical(pseudo), start, end, hours)


class _Columns:
    """Rows gathered column-wise (one Python pass over the histories, then numpy)."""

    def __init__(self) -> None:
        self.users: list[int] = []
        self.items: list[str] = []
        self.entries: list[list] = []

    def extend(self, user: int, items: Iterable[str], entries: list[list]) -> None:
        self.users.extend([user] * len(entries))
        self.items.extend(items)
        self.entries.extend(entries)

    def table(self, value: int, time_at: int) -> Interactions:
        """Fields ``value`` and ``time_at`` of the entries as values and timestamps.

        Built with ``fromiter`` over the flattened entries and item codes: converting a
        million small lists or strings one by one with ``np.asarray`` took ~5 s.
        """
        widths = set(map(len, self.entries))
        if len(widths) == 1:
            width = widths.pop()
            flat = np.fromiter(itertools.chain.from_iterable(self.entries), np.float64,
                               count=width * len(self.entries))
            grid = flat.reshape(-1, width)[:, [value, time_at]]
        else:  # none, or ragged: gather the two fields one by one
            grid = np.asarray([(e[value], e[time_at]) for e in self.entries], np.float64)
            grid = grid.reshape(-1, 2)
        codes: dict[str, int] = {}
        index = np.fromiter((codes.setdefault(m, len(codes)) for m in self.items), np.int64,
                            count=len(self.items))
        names = np.asarray(list(codes), dtype=str) if codes else np.zeros(0, "<U1")
        return Interactions(np.asarray(self.users, np.int64), names[index], grid[:, 0].copy(),
                            grid[:, 1].copy())


def _canonical(table: Interactions) -> Interactions:
    """Sorted by (user, item): the same rows give the same arrays and hash from any source."""
    return table.subset(np.lexsort((table.items, table.users)))


def _concat(*tables: Interactions) -> Interactions:
    return Interactions(np.concatenate([t.users for t in tables]),
                        np.concatenate([t.items.astype(str) for t in tables]),
                        np.concatenate([t.values for t in tables]),
                        np.concatenate([t.timestamps for t in tables]))


def training_rows(data: WindowData, model: str) -> Interactions:
    """What a model of kind ``model`` fits on: ratings + pseudo-ratings, or watch minutes."""
    return _concat(data.ratings, data.pseudo) if model == "als" else data.watches


# -- holdout -------------------------------------------------------------------------------
def holdout_split(data: WindowData, model: str, fraction: float = HOLDOUT_FRACTION
                  ) -> tuple[evaluation.Split, dict[str, Any]]:
    """Train on the window before the cutoff, test on the explicit ratings at or after it.

    The cutoff is the ``1 - fraction`` quantile of every event time in the window (ratings
    and watches, the rule of :func:`models.evaluation.time_split`).  Pseudo-ratings are
    never test rows (they are not what the user said).  For ``ials`` the watches of the
    test's (user, movie) pairs are left out of training too, or every test item would be
    excluded from the lists as already seen.
    """
    times = np.sort(np.concatenate([data.ratings.timestamps, data.watches.timestamps]))
    if times.size == 0:
        raise NoData("no ratings or watches in the window")
    cutoff = float(times[min(int(times.size * (1.0 - fraction)), times.size - 1)])
    test = data.ratings.subset(data.ratings.timestamps >= cutoff)
    rows = training_rows(data, model)
    train = rows.subset(rows.timestamps < cutoff)
    if model != "als" and len(test):
        held = set(zip(test.users.tolist(), test.items.tolist()))
        keep = np.fromiter(((u, i) not in held for u, i in
                            zip(train.users.tolist(), train.items.tolist())), bool, len(train))
        train = train.subset(keep)
    info = {"rule": f"newest {fraction:.0%} of the window's event times", "cutoff": cutoff,
            "fraction": fraction, "test": "explicit ratings at or after the cutoff",
            "train_rows": len(train), "test_rows": len(test)}
    return evaluation.Split(train, test, f"holdout:{fraction:g}"), info


def relevance_threshold(settings: Settings) -> float:
    """Ratings ≥ 75 % of the scale count as relevant (4 on 1–5, as the offline reports)."""
    return settings.rating_min + 0.75 * (settings.rating_max - settings.rating_min)


# -- models --------------------------------------------------------------------------------
def make_model(kind: str, settings: Settings) -> BiasedALS | ImplicitALS:
    if kind == "als":  # bias shrinkage: see BIAS_SHRINKAGE
        return BiasedALS(n_factors=settings.n_factors, seed=settings.seed,
                         bias_shrinkage=BIAS_SHRINKAGE,
                         rating_range=(float(settings.rating_min), float(settings.rating_max)))
    if kind == "ials":  # watch minutes: log confidence keeps how long someone watched
        return ImplicitALS(n_factors=settings.n_factors, seed=settings.seed, confidence="log")
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


class Fitted:
    """A model fitted elsewhere (the serving version): ``evaluate`` must not refit it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.predicts_ratings = getattr(model, "predicts_ratings", True)

    def fit(self, *args: Any, **kwargs: Any) -> "Fitted":
        return self

    def predict_many(self, users: Iterable, items: Iterable) -> np.ndarray:
        return self.model.predict_many(users, items)

    def recommend(self, user: int, k: int = K, exclude: Iterable = ()) -> list[str]:
        return self.model.recommend(user, k=k, exclude=exclude)


class AsServed:
    """Ranks the way the service ranks, so the gate compares what users would be shown.

    The service scores ``p_u . q_i + b_i + blend * log1p(popularity_i)`` over every movie
    it knows (``recstream.serving``, ``models.ranking.score_users``), and answers a user
    without a vector with the popularity order.  Ranking a model's raw ``p . q + b`` instead
    penalises the model that knows more users (the one trained on more data ranks them by
    MF alone, the older one falls back to popularity for them), which made the gate prefer
    the older version.  Here both get the same item universe (the split's training items),
    the same popularity (training counts) and the same fallback; rating predictions are the
    model's own.
    """

    def __init__(self, model: Any, blend: float) -> None:
        self.model = model
        self.blend = blend
        self.predicts_ratings = getattr(model, "predicts_ratings", True)

    def fit(self, users: Iterable, items: Iterable, values: Iterable, *,
            timestamps: Iterable | None = None) -> "AsServed":
        self.model.fit(users, items, values, timestamps=timestamps)
        inner = self.model.model if isinstance(self.model, Fitted) else self.model
        self.item_ids, counts = np.unique(np.asarray(items).astype(str), return_counts=True)
        rows = lookup(np.asarray(inner.item_ids).astype(str), self.item_ids)
        known = rows >= 0
        self.factors = np.zeros((self.item_ids.size, inner.item_factors.shape[1]), np.float32)
        self.factors[known] = inner.item_factors[rows[known]]
        self.bias = np.zeros(self.item_ids.size, np.float32)
        self.bias[known] = inner.item_bias[rows[known]]
        self.popularity = counts.astype(np.float64)
        self.prior = popularity_prior(self.popularity, self.blend)
        self.inner = inner
        return self

    def predict_many(self, users: Iterable, items: Iterable) -> np.ndarray:
        return self.model.predict_many(users, items)

    def recommend(self, user: int, k: int = K, exclude: Iterable = ()) -> list[str]:
        row = int(lookup(np.asarray(self.inner.user_ids), np.asarray([user], np.int64))[0])
        if row >= 0:
            scores = score_users(self.inner.user_factors[row][None, :], self.factors,
                                 self.bias, self.prior)[0].astype(np.float64)
        else:
            scores = self.popularity.copy()
        excluded = lookup(self.item_ids, np.asarray(list(exclude), dtype=str))
        scores[excluded[excluded >= 0]] = -np.inf
        return self.item_ids[top_k(scores, k)].tolist()


def score(model: Any, split: evaluation.Split, settings: Settings) -> dict[str, Any]:
    """RMSE, MAE, Recall@20, NDCG@20 (+ counts) of ``model`` on the split's test rows."""
    report = evaluation.evaluate(model, split, k=K,
                                 relevance_threshold=relevance_threshold(settings))
    return {key: report.get(key) for key in METRIC_KEYS}


def serving_model(registry: Any) -> tuple[dict, Any, dict] | None:
    """``(pointer, model, manifest)`` of the serving version, or None when none serves."""
    pointer = registry.serving()
    if not pointer:
        return None
    arrays, manifest = registry.load(pointer["version"])
    kind = ImplicitALS if manifest.get("model") == "ImplicitALS" else BiasedALS
    rating_range = (manifest.get("hyperparameters") or {}).get("rating_range")
    params = {"rating_range": tuple(rating_range)} if kind is BiasedALS and rating_range else {}
    return pointer, kind.from_arrays(arrays, params), manifest


def score_serving(registry: Any, split: evaluation.Split, holdout: dict[str, Any],
                  settings: Settings, progress: Progress, candidate: Any = None
                  ) -> dict[str, Any] | None:
    """The serving version's metrics on the candidate's holdout (None when none serves).

    Compared on the test users *both* versions were trained on (``common``): a user only
    the candidate knows would be ranked by the serving version's popularity fallback
    offline, but in the service they have an online vector; comparing on them measured the
    fallback, not the model (the older version won every gate by knowing fewer users).
    ``candidate_common`` holds the candidate's metrics on the same users.  Its training
    window may overlap the holdout (it was trained earlier on data that included part of
    it); that flatters it, which only makes the gate stricter, and is recorded as
    ``window_overlaps_holdout``.
    """
    try:
        current = serving_model(registry)
    except (OSError, KeyError, ValueError) as exc:
        pointer = registry.serving() or {}
        return {"version": pointer.get("version"), "error": f"cannot load: {exc}"}
    if current is None:
        return None
    pointer, model, manifest = current
    progress.stage(f"scoring the serving version {pointer['version']} on the holdout")
    window = manifest.get("window") or {}
    known = np.asarray(model.user_ids, np.int64)
    if candidate is not None:
        known = np.intersect1d(known, np.asarray(candidate.user_ids, np.int64))
    test = split.test
    common = evaluation.Split(train=split.train, test=test.subset(np.isin(test.users, known)),
                              name=f"{split.name}, users both versions know")
    result = {"version": pointer["version"], "model": manifest.get("model"),
              "window_overlaps_holdout": float(window.get("end", -np.inf)) >= holdout["cutoff"],
              "compared_on": "test users both versions were trained on"}
    if len(common.test) == 0:
        return {**result, **{key: None for key in METRIC_KEYS}, "n_test": 0}
    served = AsServed(Fitted(model), settings.popularity_blend)
    result.update(score(served, common, settings))
    if candidate is not None:
        challenger = AsServed(Fitted(candidate), settings.popularity_blend)
        result["candidate_common"] = score(challenger, common, settings)
        result["paired"] = paired_ranking(challenger, served, common, settings)
    return result


def paired_ranking(candidate: "AsServed", serving: "AsServed", split: evaluation.Split,
                   settings: Settings, *, resamples: int = 2000, seed: int = 0
                   ) -> dict[str, Any]:
    """Per-user Recall@20 / NDCG@20 differences (candidate - serving) with bootstrap CIs.

    The same users, the same exclusions and the same relevant items for both versions, so
    the comparison is paired: on a small holdout this separates a real regression from
    which users happened to be in it.  95% percentile intervals of the mean difference.
    """
    threshold = relevance_threshold(settings)
    seen: dict[int, set] = {}
    for user, item in zip(split.train.users.tolist(), split.train.items.tolist()):
        seen.setdefault(user, set()).add(item)
    relevant: dict[int, set] = {}
    keep = split.test.values >= threshold
    for user, item in zip(split.test.users[keep].tolist(), split.test.items[keep].tolist()):
        relevant.setdefault(user, set()).add(item)
    users = sorted(relevant)
    out: dict[str, Any] = {"users": len(users), "resamples": resamples}
    if not users:
        return out
    diffs = {f"recall_at_{K}": [], f"ndcg_at_{K}": []}
    for user in users:
        exclude = seen.get(user, ())
        a = candidate.recommend(user, K, exclude)
        b = serving.recommend(user, K, exclude)
        diffs[f"recall_at_{K}"].append(recall_at_k(a, relevant[user], K)
                                       - recall_at_k(b, relevant[user], K))
        diffs[f"ndcg_at_{K}"].append(ndcg_at_k(a, relevant[user], K)
                                     - ndcg_at_k(b, relevant[user], K))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(users), size=(resamples, len(users)))
    for name, values in diffs.items():
        arr = np.asarray(values, np.float64)
        means = arr[picks].mean(axis=1)
        out[name] = {"mean_difference": float(arr.mean()),
                     "ci95": [float(np.quantile(means, 0.025)),
                              float(np.quantile(means, 0.975))]}
    return out


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


# -- provenance ----------------------------------------------------------------------------
def code_version() -> str:
    """``git describe --always --dirty`` of this checkout, else the installed version."""
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root,
                                  capture_output=True, text=True, timeout=20, check=True)
            if done.stdout.strip():
                return "git:" + done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return "recstream==" + importlib.metadata.version("recstream")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def hyperparameters(settings: Settings) -> dict[str, Any]:
    names = ("n_factors", "rating_min", "rating_max", "watch_complete_minutes",
             "implicit_weight", "retrain_window_h", "gate_tolerance", "seed", "history_limit",
             "app_id", "topic", "partitions")
    return {name: getattr(settings, name) for name in names}


# -- the pipeline --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TrainRequest:
    source: str = "state"
    window_hours: float | None = None  # None: settings.retrain_window_h
    model: str = "als"
    promote: bool = False


async def load(settings: Settings, source: str, hours: float, progress: Progress
               ) -> tuple[dict[int, UserHistory], TopicRange]:
    if source == "state":
        return await read_changelog(settings, progress)
    if source == "movielog":
        return await read_movielog(settings, hours, progress)
    raise ValueError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")


async def train(settings: Settings, request: TrainRequest, *, registry: Any,
                progress: Progress | None = None, announce: Any = None,
                gate: Any = None) -> dict[str, Any]:
    """The whole command: → the report printed by ``recstream train`` (JSON-able)."""
    progress = progress or Progress()
    hours = request.window_hours or settings.retrain_window_h
    timings: dict[str, float] = {}
    started = time.perf_counter()
    progress.stage(f"reading {request.source} (window {hours:g} h of event time)")
    histories, read = await load(settings, request.source, hours, progress)
    data = window_data(histories, hours=hours, settings=settings)
    rows = training_rows(data, request.model)
    if len(rows) == 0:
        what = "ratings or completed watches" if request.model == "als" else "watches"
        raise NoData(f"no {what} in the {hours:g} h window of {request.source} "
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
                                candidate=fitted)
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
        "serves": request.model == "als",
        "data": {"ratings": len(data.ratings), "pseudo_ratings": len(data.pseudo),
                 "watches": len(data.watches), "users_read": len(histories),
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


def comparable(candidate: dict, serving: dict | None) -> tuple[dict, dict | None]:
    """(candidate metrics, serving metrics) measured on the same test users.

    The serving version is scored on the users both versions know (see
    :func:`score_serving`), next to the candidate's ``candidate_common`` metrics.  With
    no such user the versions cannot be compared: the candidate stands on its own.
    """
    if not serving or not serving.get("n_test") or not serving.get("candidate_common"):
        return candidate, None
    return {**serving["candidate_common"], "paired": serving.get("paired")}, serving


async def promote(settings: Settings, registry: Any, version: str, model: str,
                  candidate: dict | None, serving: dict | None, *, gate: Any, announce: Any
                  ) -> tuple[dict[str, Any], dict | None]:
    """Gate the candidate against the serving version; promote and announce if it passes."""
    if model != "als":
        return {"passed": False, "reasons": [f"{model} versions are for comparison: only als "
                                             "versions can serve"]}, None
    if candidate is None:
        decision = {"passed": False, "reasons": ["no holdout metrics (too little data in the "
                                                 "window to split)"]}
    elif serving is not None and "error" in serving:
        decision = {"passed": False, "reasons": [f"serving version {serving['version']} could "
                                                 f"not be scored: {serving['error']}"]}
    else:
        decision = gate(*comparable(candidate, serving),
                        tolerance=settings.gate_tolerance).as_dict()
    if not decision["passed"]:
        registry.record({"action": "reject", "version": version, "decision": decision,
                         "actor": "train"})
        return decision, None
    pointer = registry.promote(version, decision=decision, actor="train")
    await announce(settings, pointer)
    return decision, pointer
