"""``recstream compare``'s measurements: the models, the data, accuracy, and the costs.

Training cost, size and inference cost are measured in a fresh subprocess per model and
measurement (``recstream compare --worker``), so that a process's peak RSS belongs to
one model's fit and inference runs with one BLAS thread.
"""
from __future__ import annotations

import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models import datasets, evaluation
from models.artifact import data_hash, save_version
from models.knn import ItemKNN
from recstream.ops.evaluate import ONLINE_MF_PARAMS, build_model

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "movielens"
MODELS = ("popularity", "online-mf", "als", "ials", "item-knn", "item-knn-pearson")
K = 20
RELEVANCE = 4.0
SPLIT_FRACTION = 0.8
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")}


def make_model(name: str, rating_range: tuple[float, float]) -> Any:
    """Each model with the defaults the service uses (recstream.ops.evaluate's factory + item-kNN)."""
    if name == "item-knn":
        return ItemKNN(rating_range=rating_range)
    if name == "item-knn-pearson":
        return ItemKNN(rating_range=rating_range, similarity="pearson_baseline")
    return build_model(name, rating_range)


def describe_model(name: str) -> str:
    return {
        "popularity": "`PopularityModel()`: most-rated items; rating = mean + damped item bias",
        "online-mf": "`OnlineMF` via `recstream.ops.evaluate.OnePassOnlineMF`, one time-ordered SGD pass, "
                     + ", ".join(f"{k}={v}" for k, v in ONLINE_MF_PARAMS.items()),
        "als": "`BiasedALS()` defaults: explicit ALS-WR with biases",
        "ials": "`ImplicitALS()` defaults: Hu-Koren-Volinsky implicit ALS (no rating prediction)",
        "item-knn": "`ItemKNN()` defaults: binary cosine with shrinkage 100, 100 neighbours "
                    "per item, rating = baseline + weighted residuals of the 40 nearest rated",
        "item-knn-pearson": "`ItemKNN(similarity='pearson_baseline')`: the same with "
                            "shrunk Pearson correlation of baseline residuals",
    }[name]


def _rating_range(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if len(values) else (1.0, 5.0)


# -- data -----------------------------------------------------------------------------------
def load_data(data: Path, quick: bool) -> dict[str, Any]:
    """The splits every model is scored on: rating folds and one time split for ranking."""
    if quick:
        planted = datasets.planted_ratings(400, 300, 16_000, rank=4, noise=0.4, seed=3)
        rng = np.random.default_rng(3)
        fold = rng.integers(0, 2, len(planted))  # two random 50/50 halves, each tested once
        rating_splits = [evaluation.Split(planted.subset(fold != f), planted.subset(fold == f),
                                          f"planted:half{f + 1}") for f in range(2)]
        ranking_data = datasets.planted_ratings(500, 400, 20_000, rank=4, noise=0.4, seed=5)
        return {"rating_splits": rating_splits,
                "rating_name": "planted ratings (400 users x 300 items x 16,000, rank 4), "
                               "two random halves, each tested once",
                "ranking_split": evaluation.time_split(ranking_data, SPLIT_FRACTION),
                "ranking_name": "planted ratings (500 users x 400 items x 20,000, rank 4, "
                                "uniform timestamps), time split 0.8"}
    folder_100k, small = data / "ml-100k", data / "ml-latest-small" / "ratings.csv"
    for path in (folder_100k / "u1.base", small):
        if not path.exists():
            raise SystemExit(f"recstream compare: missing {path} (use --data DIR or --quick)")
    return {"rating_splits": evaluation.ml100k_folds(folder_100k),
            "rating_name": "ml-100k official folds u1-u5 (mean of the five)",
            "ranking_split": evaluation.time_split(datasets.load_mlcsv(small), SPLIT_FRACTION),
            "ranking_name": "ml-latest-small ratings.csv, global time split 0.8"}


# -- accuracy (in this process) ---------------------------------------------------------------
def accuracy(name: str, splits: list, ranking_split) -> dict[str, Any]:
    reports = [evaluation.evaluate(make_model(name, _rating_range(s.train.values)), s, k=K,
                                   relevance_threshold=RELEVANCE) for s in splits]
    folds = reports[0] if len(reports) == 1 else evaluation.mean_report(reports)
    ranked = evaluation.evaluate(
        make_model(name, _rating_range(ranking_split.train.values)), ranking_split, k=K,
        relevance_threshold=RELEVANCE)
    returning = ranked["subpopulations"]["new_users"].get("returning", {})
    return {"rmse": folds["rmse"], "mae": folds["mae"],
            "fold_recall": folds[f"recall_at_{K}"], "fold_ndcg": folds[f"ndcg_at_{K}"],
            "recall": ranked[f"recall_at_{K}"], "ndcg": ranked[f"ndcg_at_{K}"],
            "recall_returning": returning.get(f"recall_at_{K}"),
            "ndcg_returning": returning.get(f"ndcg_at_{K}"),
            "n_ranked": ranked["n_ranked_users"],
            "n_ranked_returning": returning.get("n_ranked_users", 0)}


# -- measurements in a fresh process -----------------------------------------------------------
def artifact_arrays(model: Any) -> dict[str, np.ndarray]:
    """The arrays a model's artifact holds: ``to_arrays()`` where the model has one."""
    if hasattr(model, "to_arrays"):
        return model.to_arrays()
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "_item_ids"):
        # OnlineMF has no public export yet: its learned state, trimmed to the rows in use.
        users = np.asarray(list(inner._users), np.int64)
        n_u, n_i = len(inner._users), len(inner._item_ids)
        return {"user_ids": users, "user_factors": inner._P[:n_u], "user_bias": inner._bu[:n_u],
                "item_ids": np.asarray(inner._item_ids, str), "item_factors": inner._Q[:n_i],
                "item_bias": inner._bi[:n_i], "user_counts": inner._user_count[:n_u],
                "item_counts": inner._item_count[:n_i],
                "global_mean": np.asarray(inner.global_mean)}
    return {"item_ids": np.asarray(model.item_ids, str), "item_counts": model.item_counts,
            "item_bias": model.item_bias, "global_mean": np.asarray(model.global_mean)}


def memory_bytes(obj: Any) -> tuple[int, int]:
    """``(numpy array bytes, deep bytes)`` of everything reachable from ``obj``.

    Each array buffer counts once (a view counts its base's buffer) as ``nbytes``,
    plus a fixed array header in the deep total; every other object counts
    ``sys.getsizeof`` once, walking dict keys and values, list/tuple/set items
    and instance ``__dict__``s.
    """
    header = sys.getsizeof(np.empty(0))
    seen: set[int] = set()
    arrays = deep = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            root = item
            while isinstance(root.base, np.ndarray):
                root = root.base
            deep += header
            if root is not item:
                stack.append(root)
            else:
                arrays += item.nbytes
                deep += item.nbytes
            continue
        deep += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.append(vars(item))
    return arrays, deep


def _current_rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_rss()


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0: ``5`` > ``/proc/self/clear_refs``), so
    ``ru_maxrss`` after the fit is the fit's own peak; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _peak_rss() -> int:
    """Peak RSS of this process: ``VmHWM`` (follows a ``clear_refs`` reset), else ``ru_maxrss``.

    ``ru_maxrss`` also remembers the pre-``exec`` image, i.e. the forking parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kib) * (1 if sys.platform == "darwin" else 1024)


def _load_train(path: Path) -> datasets.Interactions:
    with np.load(path, allow_pickle=False) as npz:
        return datasets.Interactions(npz["users"], npz["items"], npz["values"],
                                     npz["timestamps"])


def worker_fit(name: str, train_path: Path, artifact_root: Path | None) -> dict[str, Any]:
    train = _load_train(train_path)
    model = make_model(name, _rating_range(train.values))
    gc.collect()
    peak_reset = _reset_peak_rss()
    rss_before, peak_before = _current_rss(), _peak_rss()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    model.fit(train.users, train.items, train.values, timestamps=train.timestamps)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    peak_after = _peak_rss()
    out = {"fit_cpu_s": cpu, "fit_wall_s": wall,
           "peak_rss_increase": max(peak_after - rss_before, 0),
           "peak_in_fit": peak_reset or peak_after > peak_before, "rss_before_fit": rss_before}
    if artifact_root is not None:
        arrays = artifact_arrays(model)
        manifest = {"model": name, "data_hash": data_hash(train.users, train.items,
                                                          train.values)}
        target = save_version(artifact_root, name, arrays, manifest)
        out["artifact_bytes"] = sum(p.stat().st_size for p in target.iterdir())
        out["artifact_arrays"] = {k: [str(v.dtype), list(v.shape)] for k, v in arrays.items()}
        out["memory_arrays"], out["memory_deep"] = memory_bytes(model)
    return out


def worker_infer(name: str, train_path: Path, requests: int, passes: int) -> dict[str, Any]:
    train = _load_train(train_path)
    model = make_model(name, _rating_range(train.values))
    model.fit(train.users, train.items, train.values, timestamps=train.timestamps)
    seen: dict[int, list] = {}
    for user, item in zip(train.users.tolist(), train.items.tolist()):
        seen.setdefault(user, []).append(item)
    for user in seen:
        seen[user] = list(dict.fromkeys(seen[user]))
    users = np.asarray(sorted(seen), np.int64)
    rng = np.random.default_rng(11)
    order = np.concatenate([rng.permutation(users)
                            for _ in range(-(-requests // max(users.size, 1)))])[:requests]
    for user in order[:100].tolist():  # warm-up: caches, lazy imports
        model.recommend(user, k=K, exclude=seen[user])
    stats = []
    for _ in range(passes):
        times = np.empty(order.size)
        start, cpu_start = time.perf_counter(), time.process_time()
        for n, user in enumerate(order.tolist()):
            t0 = time.perf_counter_ns()
            answer = model.recommend(user, k=K, exclude=seen[user])
            times[n] = time.perf_counter_ns() - t0
            if len(answer) > K:
                raise AssertionError(f"{name} answered {len(answer)} items")
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        stats.append((float(np.percentile(times, 50)) / 1e3,
                      float(np.percentile(times, 99)) / 1e3, order.size / elapsed,
                      cpu / order.size * 1e6))
    return {"infer_p50_us": statistics.median(s[0] for s in stats),
            "infer_p99_us": statistics.median(s[1] for s in stats),
            "answers_per_s": statistics.median(s[2] for s in stats),
            "infer_cpu_us": statistics.median(s[3] for s in stats),
            "requests": int(order.size), "distinct_users": int(users.size), "passes": passes}


def _spawn(args: list[str], env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(env_extra or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "recstream.ops.compare", "--worker", *args],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"compare worker {args} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def costs(name: str, train_path: Path, workdir: Path, repeats: int, requests: int,
          passes: int) -> dict[str, Any]:
    runs = []
    for n in range(repeats):
        artifact_root = workdir / f"artifacts-{name}-{n}"
        runs.append(_spawn(["fit", name, str(train_path), str(artifact_root)]))
        shutil.rmtree(artifact_root, ignore_errors=True)
    out = {key: statistics.median(r[key] for r in runs)
           for key in ("fit_cpu_s", "fit_wall_s", "peak_rss_increase", "rss_before_fit")}
    out["fit_cpu_runs"] = [r["fit_cpu_s"] for r in runs]
    out["fit_wall_runs"] = [r["fit_wall_s"] for r in runs]
    out["peak_in_fit"] = all(r["peak_in_fit"] for r in runs)
    for key in ("artifact_bytes", "artifact_arrays", "memory_arrays", "memory_deep"):
        out[key] = runs[0][key]
    out.update(_spawn(["infer", name, str(train_path), str(requests), str(passes)], ONE_THREAD))
    return out


