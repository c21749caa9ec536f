"""``recstream evaluate``: rerun the offline evaluation on any ratings table.

    recstream evaluate --ratings PATH --format {ml100k,mlcsv,movielog}
        --split {time:0.8,folds:ml100k}
        --model {popularity,recent-popularity,online-mf,als,ials} [--json]

Prints a markdown table per subpopulation, or with ``--json`` one JSON object
(``rmse``, ``mae``, ``recall_at_20``, ``ndcg_at_20``, ``map_at_20``,
``coverage``, ``fit_seconds``, ``n_train``, ``n_test``, ...).  For the
ml-100k folds every number is the mean over u1..u5; ``folds`` lists each.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from models import datasets, evaluation
from models._ids import as_items
from models.als import BiasedALS, ImplicitALS, recency_weights
from models.online import OnlineMF
from models.popularity_batch import PopularityModel

MODELS = ("popularity", "recent-popularity", "online-mf", "als", "ials")
# One time-ordered pass (see docs/models-offline.md for how these were chosen).
ONLINE_MF_PARAMS = {"n_factors": 32, "learning_rate": 0.02, "regularization": 0.05,
                    "init_scale": 0.05, "max_step": 1.0, "seed": 7}


class OnePassOnlineMF:
    """``fit`` = one time-ordered pass of the online learner, starting from the train mean."""

    predicts_ratings = True

    def __init__(self, rating_range: tuple[float, float], **params: Any) -> None:
        self.params, self.rating_range, self.model = params, rating_range, None

    def fit(self, users, items, values, *, timestamps=None) -> "OnePassOnlineMF":
        mean = float(sum(values) / len(values)) if len(values) else 3.5
        span = self.rating_range[1] - self.rating_range[0]
        self.model = OnlineMF(global_mean=mean, rating_range=span, **self.params)
        self.model.fit(users, items, values, timestamps=timestamps, epochs=1)
        return self

    def predict_many(self, users, items):
        return np.clip(self.model.predict_many(list(users), list(items)), *self.rating_range)

    def recommend(self, user, k: int = 20, exclude=()):
        return self.model.recommend(user, k=k, exclude=exclude)


class RecentPopularity(PopularityModel):
    """Popularity ranked by time-decayed counts: the list ``ImplicitALS`` gives unknown users
    (same ``popularity_half_life_days``), as a baseline of its own so the iALS gain can be
    split into recency (this) and personalisation (the rest)."""

    def __init__(self, *, half_life_days: float | None =
                 ImplicitALS().popularity_half_life_days, **params: Any) -> None:
        super().__init__(**params)
        self.half_life_days = half_life_days

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "half_life_days": self.half_life_days}

    def fit(self, users, items, values, *, timestamps=None) -> "RecentPopularity":
        super().fit(users, items, values, timestamps=timestamps)
        _, i = np.unique(as_items(items), return_inverse=True)  # the rows of self.item_ids
        decay = recency_weights(None if timestamps is None else np.asarray(timestamps),
                                i.size, self.half_life_days)
        self.item_counts = np.bincount(i, weights=decay, minlength=self.item_ids.size)
        return self


def build_model(name: str, rating_range: tuple[float, float]) -> Any:
    factories: dict[str, Callable[[], Any]] = {
        "popularity": lambda: PopularityModel(rating_range=rating_range),
        "recent-popularity": lambda: RecentPopularity(rating_range=rating_range),
        "als": lambda: BiasedALS(rating_range=rating_range),
        "ials": lambda: ImplicitALS(),
        "online-mf": lambda: OnePassOnlineMF(rating_range, **ONLINE_MF_PARAMS),
    }
    return factories[name]()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstream evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--ratings", required=True, type=Path,
                   help="ratings file, or the ml-100k folder (needed for folds:ml100k)")
    p.add_argument("--format", required=True, choices=("ml100k", "mlcsv", "movielog"))
    p.add_argument("--split", default="time:0.8",
                   help="time:<train fraction> (global time cutoff) or folds:ml100k")
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--k", type=int, default=20, help="list length for ranking metrics")
    p.add_argument("--relevance-threshold", type=float, default=4.0,
                   help="test ratings >= this count as relevant (negative: every test item)")
    p.add_argument("--signal", choices=("rating", "watch"), default="rating",
                   help="movielog only: /rate lines or watch minutes")
    return p


def load(args: argparse.Namespace) -> datasets.Interactions:
    if args.format == "ml100k":
        return datasets.load_ml100k(args.ratings)
    if args.format == "mlcsv":
        return datasets.load_mlcsv(args.ratings)
    return datasets.load_movielog(args.ratings, signal=args.signal)


def run(args: argparse.Namespace) -> dict[str, Any]:
    threshold = None if args.relevance_threshold < 0 else args.relevance_threshold
    if args.split == "folds:ml100k":
        if args.format != "ml100k" or not args.ratings.is_dir():
            raise SystemExit("--split folds:ml100k needs --format ml100k and the ml-100k folder")
        splits, info = evaluation.ml100k_folds(args.ratings), \
            datasets.load_ml100k_users(args.ratings)
    elif args.split.startswith("time:"):
        fraction = float(args.split.split(":", 1)[1])
        splits = [evaluation.time_split(load(args), fraction)]
        folder = args.ratings if args.ratings.is_dir() else args.ratings.parent
        info = datasets.load_ml100k_users(folder) if args.format == "ml100k" else None
    else:
        raise SystemExit(f"unknown --split {args.split!r}: use time:<fraction> or folds:ml100k")
    reports = []
    for split in splits:
        values = split.train.values
        rating_range = (float(values.min()), float(values.max())) if len(values) else (1.0, 5.0)
        model = build_model(args.model, rating_range)
        reports.append(evaluation.evaluate(model, split, k=args.k,
                                           relevance_threshold=threshold, user_info=info))
    report = reports[0] if len(reports) == 1 else evaluation.mean_report(reports)
    report["model"] = args.model
    report["format"] = args.format
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.ratings.exists():
        print(f"recstream evaluate: no such file or folder: {args.ratings}", file=sys.stderr)
        return 2
    report = run(args)
    if args.json:
        print(json.dumps(_finite(report), sort_keys=True))
    else:
        print(evaluation.to_markdown(report))
    return 0


def _finite(value: Any) -> Any:
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    raise SystemExit(main())
