"""``recstream compare``: the model comparison report (accuracy, training cost, inference
cost, size), written as markdown with PNG plots.

    recstream compare [--data DIR] [--out docs/model-comparison.md] [--quick]

``--data`` is the MovieLens folder holding ``ml-100k/`` and ``ml-latest-small/``
(default ``../shared/data/movielens`` beside the checkout; read in place).
``--quick`` uses small planted data instead (seconds; what the unit test runs).
The plots go to ``img/compare-*.png`` next to the report.  Every quality is
defined in the report itself (metric, data, operationalisation); the same
splits are used for every model.

Training cost, size and inference cost are measured in a fresh subprocess per
model and measurement (``--worker``, internal), so that a process's peak RSS
belongs to one model's fit and inference runs with one BLAS thread.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from models import datasets, evaluation
from models.artifact import data_hash, save_version
from models.knn import ItemKNN
from recstream.evaluate_cli import ONLINE_MF_PARAMS, build_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "movielens"
MODELS = ("popularity", "online-mf", "als", "ials", "item-knn", "item-knn-pearson")
K = 20
RELEVANCE = 4.0
SPLIT_FRACTION = 0.8
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")}
PLOTS = ("accuracy", "training", "inference", "size", "tradeoff")


def make_model(name: str, rating_range: tuple[float, float]) -> Any:
    """Each model with the defaults the service uses (evaluate_cli's factory + item-kNN)."""
    if name == "item-knn":
        return ItemKNN(rating_range=rating_range)
    if name == "item-knn-pearson":
        return ItemKNN(rating_range=rating_range, similarity="pearson_baseline")
    return build_model(name, rating_range)


def describe_model(name: str) -> str:
    return {
        "popularity": "`PopularityModel()`: most-rated items; rating = mean + damped item bias",
        "online-mf": "`OnlineMF` via `evaluate_cli.OnePassOnlineMF`, one time-ordered SGD pass, "
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
    result = subprocess.run([sys.executable, "-m", "recstream.compare_cli", "--worker", *args],
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


# -- the whole comparison ----------------------------------------------------------------------
def run(args: argparse.Namespace, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    started = time.perf_counter()
    load_start = os.getloadavg()
    data = load_data(args.data, args.quick)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="recstream-compare-") as tmp:
        workdir = Path(tmp)
        train = data["ranking_split"].train
        train_path = workdir / "train.npz"
        np.savez(train_path, users=train.users, items=train.items, values=train.values,
                 timestamps=train.timestamps)
        for name in args.models:
            log(f"{name}: accuracy")
            row = accuracy(name, data["rating_splits"], data["ranking_split"])
            log(f"{name}: training cost, size, inference cost")
            row.update(costs(name, train_path, workdir, repeats, args.requests, args.passes))
            row["predicts_ratings"] = row["rmse"] is not None
            rows[name] = row
    split = data["ranking_split"]
    return {"rows": rows, "data": data, "repeats": repeats,
            "ranking_sizes": {"train": len(split.train), "test": len(split.test),
                              "train_users": int(np.unique(split.train.users).size),
                              "train_items": int(np.unique(split.train.items).size)},
            "load_start": load_start, "load_end": os.getloadavg(),
            "seconds": time.perf_counter() - started, "machine": machine_facts()}


def machine_facts() -> dict[str, str]:
    import scipy
    facts = {"cores (os.cpu_count)": str(os.cpu_count()),
             "cores usable (sched_getaffinity)": str(len(os.sched_getaffinity(0)))
             if hasattr(os, "sched_getaffinity") else "?",
             "platform": platform.platform(),
             "Python": platform.python_version(),
             "numpy": np.__version__, "scipy": scipy.__version__}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        if names:
            facts["CPU"] = names[0]
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(handle.readline().split()[1])
        facts["memory"] = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        facts["BLAS"] = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: not essential
        pass
    try:
        import matplotlib
        facts["matplotlib"] = matplotlib.__version__
    except ImportError:
        pass
    return facts


# -- plots -------------------------------------------------------------------------------------
def plot(results: dict[str, Any], img_dir: Path) -> dict[str, Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    rows = results["rows"]
    names = list(rows)
    x = np.arange(len(names))
    colours = [plt.get_cmap("tab10")(n) for n in range(len(names))]
    paths: dict[str, Path] = {}

    def bars(ax, values, title, ylabel, fmt="{:.3g}", log=False):
        vals = [np.nan if v is None else float(v) for v in values]
        drawn = ax.bar(x, [0 if np.isnan(v) else v for v in vals], color=colours)
        for rect, v in zip(drawn, vals):
            label = "n/a" if np.isnan(v) else fmt.format(v)
            ax.annotate(label, (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                        textcoords="offset points")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.15)

    def save(fig, key):
        fig.tight_layout()
        path = img_dir / f"compare-{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[key] = path

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    bars(axes[0], [rows[n]["rmse"] for n in names], "RMSE, rating folds (lower is better)",
         "RMSE", "{:.4f}")
    rated = [rows[n]["rmse"] for n in names if rows[n]["rmse"] is not None]
    if rated:
        axes[0].set_ylim(min(rated) * 0.95, max(rated) * 1.03)
    bars(axes[1], [rows[n]["recall"] for n in names], f"Recall@{K}, time split, all users",
         f"Recall@{K}", "{:.3f}")
    bars(axes[2], [rows[n]["recall_returning"] for n in names],
         f"Recall@{K}, time split, returning users", f"Recall@{K}", "{:.3f}")
    bars(axes[3], [rows[n]["ndcg"] for n in names], f"NDCG@{K}, time split, all users",
         f"NDCG@{K}", "{:.3f}")
    save(fig, "accuracy")

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    bars(axes[0], [rows[n]["fit_cpu_s"] for n in names], "fit CPU seconds (median)", "s",
         "{:.2f}")
    bars(axes[1], [rows[n]["fit_wall_s"] for n in names], "fit wall seconds (median)", "s",
         "{:.2f}")
    bars(axes[2], [rows[n]["peak_rss_increase"] / 2**20 for n in names],
         "peak RSS increase during fit", "MiB", "{:.1f}")
    save(fig, "training")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.38
    p50 = [rows[n]["infer_p50_us"] for n in names]
    p99 = [rows[n]["infer_p99_us"] for n in names]
    axes[0].bar(x - width / 2, p50, width, label="p50", color="tab:blue")
    axes[0].bar(x + width / 2, p99, width, label="p99", color="tab:orange")
    for xs, vals in ((x - width / 2, p50), (x + width / 2, p99)):
        for xi, v in zip(xs, vals):
            axes[0].annotate(f"{v:.0f}", (xi, v), ha="center", va="bottom", fontsize=7,
                             xytext=(0, 2), textcoords="offset points")
    axes[0].set_yscale("log")
    axes[0].set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    axes[0].set_title(f"µs per top-{K} answer (one thread)", fontsize=9)
    axes[0].set_ylabel("µs (log)", fontsize=8)
    axes[0].legend(fontsize=8)
    bars(axes[1], [rows[n]["answers_per_s"] for n in names], "answers per second, one thread",
         "answers/s", "{:.0f}")
    save(fig, "inference")

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    bars(axes[0], [rows[n]["artifact_bytes"] / 2**20 for n in names],
         "saved artifact on disk", "MiB", "{:.2f}")
    bars(axes[1], [rows[n]["memory_arrays"] / 2**20 for n in names],
         "numpy arrays in memory", "MiB", "{:.2f}")
    bars(axes[2], [rows[n]["memory_deep"] / 2**20 for n in names],
         "whole model object in memory", "MiB", "{:.2f}")
    save(fig, "size")

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for n, name in enumerate(names):
        size = rows[name]["artifact_bytes"] / 2**20
        ax.scatter(rows[name]["infer_p50_us"], rows[name]["recall"], s=40 + 60 * np.sqrt(size),
                   color=colours[n], label=f"{name} ({size:.1f} MiB)", alpha=0.8,
                   edgecolors="black")
        ax.annotate(name, (rows[name]["infer_p50_us"], rows[name]["recall"]), fontsize=8,
                    xytext=(6, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"inference: µs per top-{K} answer, p50 (log)", fontsize=9)
    ax.set_ylabel(f"Recall@{K}, time split, all users", fontsize=9)
    ax.set_title("accuracy vs inference cost (marker area ~ artifact size)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    save(fig, "tradeoff")
    return paths


# -- report ------------------------------------------------------------------------------------
def _f(value: Any, fmt: str = "{:.4f}") -> str:
    return "–" if value is None else fmt.format(value)


def _mib(value: float) -> str:
    return f"{value / 2**20:.2f}"


def _best(rows: dict[str, dict], key: str, low: bool) -> str:
    have = {n: r[key] for n, r in rows.items() if r.get(key) is not None}
    if not have:
        return "–"
    name = (min if low else max)(have, key=have.get)
    return f"`{name}`"


def render(results: dict[str, Any], out: Path, paths: dict[str, Path], argv: Sequence[str]
           ) -> str:
    rows, data, facts = results["rows"], results["data"], results["machine"]
    sizes = results["ranking_sizes"]
    rel = {key: os.path.relpath(path, out.parent) for key, path in paths.items()}
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rating_name, ranking_name = data["rating_name"], data["ranking_name"]
    first = next(iter(rows.values()))
    lines = [
        "# Model comparison: accuracy, training cost, inference cost, size",
        "",
        "Generated by `recstream compare`; do not edit by hand, rerun it:",
        "",
        "```",
        " ".join(["recstream compare", *argv]),
        "```",
        "",
        f"Generated {when} in {results['seconds']:.0f} s. "
        + ("**Quick mode: small planted data, numbers are for testing the report only.** "
           if "planted" in ranking_name else ""),
        "",
        "## Results",
        "",
        f"| model | RMSE | MAE | Recall@{K} | NDCG@{K} | Recall@{K} returning | "
        f"NDCG@{K} returning | fit CPU s | fit wall s | fit peak RSS +MiB | "
        f"p50 µs | p99 µs | CPU µs/answer | answers/s | artifact MiB | arrays MiB | "
        "object MiB |",
        "|---" * 17 + "|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {_f(r['rmse'])} | {_f(r['mae'])} | {_f(r['recall'])} | "
            f"{_f(r['ndcg'])} | {_f(r['recall_returning'])} | {_f(r['ndcg_returning'])} | "
            f"{r['fit_cpu_s']:.3f} | {r['fit_wall_s']:.3f} | "
            f"{'' if r['peak_in_fit'] else '≤ '}{_mib(r['peak_rss_increase'])} | "
            f"{r['infer_p50_us']:.0f} | {r['infer_p99_us']:.0f} | {r['infer_cpu_us']:.0f} | "
            f"{r['answers_per_s']:.0f} | "
            f"{_mib(r['artifact_bytes'])} | {_mib(r['memory_arrays'])} | "
            f"{_mib(r['memory_deep'])} |")
    lines += [
        "",
        f"RMSE/MAE: {rating_name}. Ranking: {ranking_name} "
        f"({sizes['train']:,} train / {sizes['test']:,} test ratings; {first['n_ranked']} users "
        f"with a relevant test item, {first['n_ranked_returning']} of them returning). "
        f"Costs and size: fitted on that time split's training window ({sizes['train']:,} "
        f"ratings, {sizes['train_users']:,} users, {sizes['train_items']:,} items). "
        "– = the model does not predict ratings.",
        "",
        f"Best per quality: RMSE {_best(rows, 'rmse', True)}, "
        f"Recall@{K} {_best(rows, 'recall', False)}, "
        f"Recall@{K} returning {_best(rows, 'recall_returning', False)}, "
        f"fit CPU {_best(rows, 'fit_cpu_s', True)}, "
        f"p50 latency {_best(rows, 'infer_p50_us', True)}, "
        f"artifact {_best(rows, 'artifact_bytes', True)}.",
        "",
        f"For reference, Recall@{K} / NDCG@{K} on the rating folds (random splits, "
        "easier than a time split): "
        + ", ".join(f"{n} {_f(r['fold_recall'], '{:.3f}')} / {_f(r['fold_ndcg'], '{:.3f}')}"
                    for n, r in rows.items()) + ".",
        "",
        f"![accuracy]({rel['accuracy']})",
        "",
        f"![training cost]({rel['training']})",
        "",
        f"![inference cost]({rel['inference']})",
        "",
        f"![size]({rel['size']})",
        "",
        f"![accuracy vs inference cost]({rel['tradeoff']})",
        "",
        "## The models",
        "",
    ]
    lines += [f"- **{name}**: {describe_model(name)}." for name in rows]
    lines += [
        "",
        "Every model is built exactly as `recstream evaluate` builds it "
        "(`recstream.evaluate_cli.build_model`), plus `models.knn.ItemKNN`; nothing is tuned "
        "here. Each is used only through `fit` / `predict_many` / `recommend`.",
        "",
        "## Definitions (metric / data / operationalisation)",
        "",
        "### Accuracy",
        "",
        "- **Metric.** RMSE = sqrt(mean((r̂ − r)²)) and MAE = mean(|r̂ − r|) over held-out "
        "ratings, predictions clipped to the training rating range; only for models that "
        "predict ratings (`predicts_ratings`; iALS scores are preferences). "
        f"Recall@{K} = |top-{K} ∩ relevant| / |relevant| and NDCG@{K} (binary gains, "
        f"log2 discount, ideal DCG over min(|relevant|, {K}) hits), averaged over users with at "
        f"least one relevant test item; relevant = test rating ≥ {RELEVANCE:g}. Formulas in "
        "`models/metrics.py`.",
        f"- **Data.** Ratings: {rating_name}. Ranking: {ranking_name} — the 80 % quantile of "
        "the timestamps is the cutoff; the model is fitted on ratings strictly before it and "
        "scored on the rest. \"returning\" = test users with at least one training rating (the "
        "others can only receive a fallback list, identical for most models). "
        "The same splits for every model.",
        "- **Operationalisation.** `models.evaluation.evaluate(model, split, k=20, "
        f"relevance_threshold={RELEVANCE:g})`: fit on `split.train`; `predict_many` on every "
        "test (user, item) pair; `recommend(user, k=20, exclude=the user's training items)` for "
        "every user with a relevant test item. Fold numbers are the plain mean over the folds "
        "(`evaluation.mean_report`).",
        "",
        "### Training cost",
        "",
        "- **Metric.** CPU seconds (`time.process_time`, all threads of the process) and wall "
        "seconds (`time.perf_counter`) of one `fit` call; peak RSS increase = the "
        "process's peak resident set after the fit (`VmHWM` in `/proc/self/status`; "
        "`getrusage(RUSAGE_SELF).ru_maxrss` where there is no `/proc`) − its resident set just "
        "before the fit (`/proc/self/statm`), the peak having been reset to the current RSS "
        "just before the fit (`5` written to `/proc/self/clear_refs`, Linux ≥ 4.0). "
        "Where the reset is refused, \"≤\" "
        "marks a fit that never raised the process's earlier peak (an upper bound).",
        f"- **Data.** The time split's training window ({sizes['train']:,} ratings).",
        "- **Operationalisation.** A fresh Python process per model and repetition "
        "(`recstream compare --worker fit`): load the training arrays from an `.npz`, build the "
        "model, `gc.collect()`, read RSS, time `fit`, read the peak. BLAS threads left at their "
        f"default (all cores). {results['repeats']} repetition(s); the table shows the median "
        "(per-run CPU seconds below).",
        "",
        "### Inference cost",
        "",
        f"- **Metric.** Microseconds per top-{K} answer, p50 and p99, answers per second, "
        "single thread, and CPU microseconds per answer (mean; steadier than wall time on a "
        "shared machine).",
        f"- **Data.** The model fitted on the time split's training window; requests for its "
        f"training users ({first['distinct_users']:,} distinct), in a seeded random order, "
        f"repeated to {first['requests']:,} requests.",
        "- **Operationalisation.** A fresh process with `OPENBLAS_NUM_THREADS=OMP_NUM_THREADS="
        "MKL_NUM_THREADS=1` (`--worker infer`): fit, 100 warm-up calls, then "
        f"{first['passes']} passes over the request list, each call timed with "
        f"`time.perf_counter_ns` around `model.recommend(user, k={K}, exclude=the user's "
        "training items)`; answers/s = requests / pass wall time; CPU µs/answer = "
        "`time.process_time` of the pass / requests. The table shows the median "
        "over passes of each pass's p50, p99 and rate. The id → row lookup and the exclusion "
        "are part of the answer, as in serving; HTTP is not.",
        "",
        "### Model size",
        "",
        "- **Metric.** Bytes on disk of the saved artifact; bytes of the model's numpy arrays "
        "in memory; bytes of the whole model object graph in memory.",
        "- **Data.** The model fitted on the time split's training window.",
        "- **Operationalisation.** Artifact: `models.artifact.save_version(root, name, arrays, "
        "manifest)` with the model's `to_arrays()` (popularity: `item_ids`, `item_counts`, "
        "`item_bias`, `global_mean`; online MF, which has no export yet: its factor, bias and "
        "count arrays trimmed to the rows in use, and the id lists) and a two-field manifest; "
        "size = sum of the files of the version directory (`arrays.npz`, uncompressed, + "
        "`manifest.json`). Arrays: sum of `ndarray.nbytes` over every array reachable from the "
        "fitted model object, each buffer once (spare capacity of growable arrays included). "
        "Object: the same walk adding `sys.getsizeof` of every other object (dicts, lists, "
        "ids, the model itself). Item-kNN's artifact includes each user's rated items and "
        "residuals, because it scores from them; the factor models keep user vectors instead.",
        "",
        "## Run details",
        "",
        "Fit CPU seconds per repetition: "
        + "; ".join(f"{n} " + ", ".join(f"{v:.2f}" for v in r["fit_cpu_runs"])
                    for n, r in rows.items()) + ".",
        "",
        "Load average (1/5/15 min) at start {:.2f}/{:.2f}/{:.2f}, at end {:.2f}/{:.2f}/{:.2f}: "
        "with other work on the machine, wall times and latencies are upper bounds; CPU "
        "seconds are the steadier number.".format(*results["load_start"], *results["load_end"]),
        "",
        "| machine | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    lines.append("")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstream compare", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder with ml-100k/ and ml-latest-small/ (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("docs/model-comparison.md"),
                   help="report path; plots go to img/ beside it (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="small planted data (seconds)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--repeats", type=int, default=None,
                   help="fit repetitions per model (default 3, quick 1)")
    p.add_argument("--requests", type=int, default=None,
                   help="timed recommend calls per pass, >= 1000 (default 2000, quick 1000)")
    p.add_argument("--passes", type=int, default=None,
                   help="timed passes over the requests (default 3, quick 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker_main(argv[1:])
    args = parser().parse_args(argv)
    if args.requests is None:
        args.requests = 1000 if args.quick else 2000
    if args.passes is None:
        args.passes = 1 if args.quick else 3
    if args.requests < 1000 or args.passes < 1:
        print("recstream compare: --requests must be >= 1000 and --passes >= 1", file=sys.stderr)
        return 2
    results = run(args, log=lambda msg: print(f"recstream compare: {msg}", file=sys.stderr,
                                              flush=True))
    paths = plot(results, args.out.parent / "img")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, args.out, paths, argv), encoding="utf-8")
    print(f"recstream compare: wrote {args.out} and {len(paths)} plots "
          f"in {results['seconds']:.0f} s", file=sys.stderr)
    return 0


def _worker_main(argv: list[str]) -> int:
    kind, name, train_path = argv[0], argv[1], Path(argv[2])
    if kind == "fit":
        result = worker_fit(name, train_path, Path(argv[3]) if len(argv) > 3 else None)
    elif kind == "infer":
        result = worker_infer(name, train_path, int(argv[3]), int(argv[4]))
    else:
        raise SystemExit(f"unknown worker {kind!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
