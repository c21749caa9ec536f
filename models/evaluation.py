"""Offline evaluation: splits, one report per model, broken down by subpopulation.

Leakage is ruled out by construction: the model sees only ``split.train``
(``fit``), and everything it is scored against -- held-out ratings, relevant
items, the users' already-seen items, item popularity for novelty -- is
derived from the split, never from the model's internals.  Models are used
only through ``fit`` / ``predict_many`` / ``recommend`` (+ the optional
``predicts_ratings`` flag: preference scores get no RMSE).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from models import metrics
from models.datasets import Interactions, UserInfo, load_ml100k

AGE_BANDS = ((18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"))
ACTIVITY = ((20, "light(1-19)"), (100, "medium(20-99)"))
SUMMARY_KEYS = ("rmse", "mae", "recall", "ndcg", "map", "coverage", "novelty",
                "popularity_bias")


@dataclass(frozen=True)
class Split:
    train: Interactions
    test: Interactions
    name: str


def time_split(data: Interactions, train_fraction: float = 0.8) -> Split:
    """Everything before the cutoff time trains, everything at or after it tests."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError("train_fraction must be in (0, 1)")
    ordered = np.sort(data.timestamps, kind="stable")
    cutoff = ordered[min(int(len(data) * train_fraction), len(data) - 1)]
    train = data.timestamps < cutoff
    return Split(data.subset(train), data.subset(~train), f"time:{train_fraction:g}")


def ml100k_folds(folder: str | Path) -> list[Split]:
    """The five official ml-100k folds ``u1``..``u5`` (base = train, test = test)."""
    folder = Path(folder)
    return [Split(load_ml100k(folder / f"u{n}.base"), load_ml100k(folder / f"u{n}.test"),
                  f"ml100k:u{n}") for n in range(1, 6)]


def user_groups(train: Interactions, test_users: np.ndarray, info: UserInfo | None
                ) -> dict[str, dict[int, str]]:
    """Subpopulation label of every test user, per dimension."""
    counts = Counter(train.users.tolist())
    groups: dict[str, dict[int, str]] = {"new_users": {}, "activity": {}}
    for user in np.unique(test_users).tolist():
        n = counts.get(user, 0)
        groups["new_users"][user] = "new" if n == 0 else "returning"
        groups["activity"][user] = "new(0)" if n == 0 else _band(n, ACTIVITY, "heavy(100+)")
    if info is not None and info.gender:
        groups["gender"] = {u: info.gender.get(u, "unknown") for u in groups["new_users"]}
    if info is not None and info.age:
        groups["age"] = {u: _band(info.age[u], AGE_BANDS, "55+") if u in info.age else "unknown"
                         for u in groups["new_users"]}
    return groups


def evaluate(model: Any, split: Split, *, k: int = 20, relevance_threshold: float | None = 4.0,
             user_info: UserInfo | None = None) -> dict[str, Any]:
    """Fit ``model`` on the training window and score it on the test window."""
    train, test = split.train, split.test
    start = time.perf_counter()
    model.fit(train.users, train.items, train.values, timestamps=train.timestamps)
    fit_seconds = time.perf_counter() - start

    predicted = None
    if getattr(model, "predicts_ratings", True):
        predicted = np.asarray(model.predict_many(test.users, test.items), np.float64)

    seen: dict[int, set] = defaultdict(set)
    for user, item in zip(train.users.tolist(), train.items.tolist()):
        seen[user].add(item)
    keep = np.ones(len(test), bool) if relevance_threshold is None else \
        test.values >= relevance_threshold
    relevant: dict[int, set] = defaultdict(set)
    for user, item in zip(test.users[keep].tolist(), test.items[keep].tolist()):
        relevant[user].add(item)
    start = time.perf_counter()
    recs = {user: list(model.recommend(user, k=k, exclude=seen.get(user, ())))
            for user in relevant}
    recommend_seconds = time.perf_counter() - start

    popularity = Counter()
    for user_items in seen.values():
        popularity.update(user_items)
    context = _Context(test, predicted, relevant, recs, popularity, len(seen),
                       set(train.items.tolist()), k)
    report = {"model": type(model).__name__, "split": split.name, "k": k,
              **_rename(context.summary(lambda user: True), k),
              "fit_seconds": fit_seconds, "recommend_seconds": recommend_seconds,
              "n_train": len(train), "n_test": len(test), "subpopulations": {}}
    for dimension, labels in user_groups(train, test.users, user_info).items():
        report["subpopulations"][dimension] = {
            label: _rename(context.summary(lambda user, label=label: labels.get(user) == label), k)
            for label in sorted(set(labels.values()))}
    return report


@dataclass
class _Context:
    test: Interactions
    predicted: np.ndarray | None
    relevant: dict[int, set]
    recs: dict[int, list]
    popularity: Counter
    n_train_users: int
    catalogue: set
    k: int

    def summary(self, member: Callable[[int], bool]) -> dict[str, float]:
        rows = np.fromiter((member(u) for u in self.test.users.tolist()), bool, len(self.test))
        users = [u for u in self.recs if member(u)]
        lists = [self.recs[u] for u in users]
        out = {"n_users": len({u for u in self.test.users[rows].tolist()}),
               "n_ranked_users": len(users), "n_test": int(rows.sum()),
               "rmse": None, "mae": None}
        if self.predicted is not None and rows.any():
            out["rmse"] = metrics.rmse(self.predicted[rows], self.test.values[rows])
            out["mae"] = metrics.mae(self.predicted[rows], self.test.values[rows])
        for name, fn in (("recall", metrics.recall_at_k), ("ndcg", metrics.ndcg_at_k),
                         ("map", metrics.average_precision_at_k)):
            values = [fn(self.recs[u], self.relevant[u], self.k) for u in users]
            out[name] = float(np.mean(values)) if values else None
        out["coverage"] = metrics.catalogue_coverage(lists, self.catalogue) if lists else None
        out["novelty"] = metrics.novelty(lists, self.popularity, self.n_train_users) \
            if lists else None
        out["popularity_bias"] = metrics.popularity_bias(lists, self.popularity,
                                                         self.n_train_users) if lists else None
        return out


def mean_report(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Average numeric entries over folds (None where any fold has none); keep each fold."""
    merged = _mean_tree(reports)
    merged["split"] = reports[0]["split"].split(":")[0] + f":{len(reports)}folds"
    merged["folds"] = [{key: value for key, value in r.items() if key != "subpopulations"}
                       for r in reports]
    return merged


def to_markdown(report: dict[str, Any]) -> str:
    """One row per subpopulation, the overall row first."""
    k = report["k"]
    cols = ["n_users", "n_test", "rmse", "mae", f"recall_at_{k}", f"ndcg_at_{k}", f"map_at_{k}",
            "coverage", "novelty", "popularity_bias"]
    lines = [f"{report['model']} on {report['split']} (fit {report['fit_seconds']:.2f} s, "
             f"{report['n_train']} train / {report['n_test']} test ratings)", "",
             "| group | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    rows = [("all", report)] + [(f"{dim}={label}", values)
                                for dim, by_label in report["subpopulations"].items()
                                for label, values in by_label.items()]
    for name, values in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(values.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def _rename(summary: dict[str, Any], k: int) -> dict[str, Any]:
    ranked = {"recall": f"recall_at_{k}", "ndcg": f"ndcg_at_{k}", "map": f"map_at_{k}"}
    return {ranked.get(key, key): value for key, value in summary.items()}


def _band(value: int, bands, last: str) -> str:
    return next((label for bound, label in bands if value < bound), last)


def _mean_tree(items: list[Any]) -> Any:
    first = items[0]
    if isinstance(first, dict):
        keys = [key for key in first if all(isinstance(i, dict) and key in i for i in items)]
        return {key: _mean_tree([i[key] for i in items]) for key in keys}
    if all(i == first for i in items):
        return first
    if all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in items):
        return float(np.mean(items))
    return None


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
