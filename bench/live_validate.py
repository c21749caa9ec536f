"""Choose the service's factors and fold-in recency on validation cuts only (issue #10).

    .venv/bin/python bench/live_validate.py --datasets ml-latest-small,ml-100k

For each rating set: the benchmark's split (bench/live_data.py: per-user earliest 80 %
train), then a *validation* cut inside the training part only (its per-user earliest 80 %
fit, the rest validate; the test part is never read).  On the cut, the service's own
recipe: the trainer's fit (``recstream.ops.fit.make_model``: one row per (user, movie)
with its last event time, the configured regularization/alpha/decay) and the served fold-in
of every user's complete set with recency weights ``2^(-n/h)``; ranked with the seen movies
excluded.  Prints validation Recall@20 / popularity's per (factors, half-life) and the mean
ratio over the sets: the highest mean is the choice (docs/live-path.md §11).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import live_refs  # noqa: E402
from bench.live_data import load, per_user_split, score_lists  # noqa: E402
from bench.live_replica import lists_from  # noqa: E402
from models.foldin import fold_in_users  # noqa: E402
from recstream.ops.fit import make_model  # noqa: E402
from recstream.settings import Settings  # noqa: E402


def validate(name: str, factors: list[int], half_lives: list[float], base: Settings
             ) -> dict[str, float]:
    split = per_user_split(load(name))
    cut = per_user_split(split.train, 0.8, "validation")
    train, wanted = cut.train, cut.test_users()
    users, items, x = live_refs._matrix(train)
    pop = score_lists(live_refs.popularity_lists(train, wanted), cut, resamples=10)["recall"]
    order = np.lexsort((train.timestamps, train.items, train.users))
    u, i, t = train.users[order], train.items[order], train.timestamps[order]
    last = np.r_[(u[1:] != u[:-1]) | (i[1:] != i[:-1]), True]
    out = {}
    for k in factors:
        model = make_model("ials", dataclasses.replace(base, n_factors=k))
        started = time.perf_counter()
        model.fit(u[last], i[last], np.ones(int(last.sum())), timestamps=t[last])
        took = time.perf_counter() - started
        y = model.item_factors[np.searchsorted(model.item_ids, items)]
        for h in half_lives:
            conf = x.tocsr() * model.alpha
            if h:
                conf = conf.multiply(live_refs._recency(train, users, items, h)).tocsr()
            folded = fold_in_users(y, conf, model.regularization)
            recall = score_lists(lists_from(folded @ y.T, users, items, x, wanted), cut,
                                 resamples=10)["recall"]
            out[f"{k}/{h:g}"] = recall / pop
            print(f"{name} factors {k} recency {h:g}: validation Recall@20 {recall:.4f} = "
                  f"{recall / pop:.3f}x popularity {pop:.4f} (fit {took:.0f}s)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="ml-latest-small,ml-100k")
    parser.add_argument("--factors", default="32,64,128")
    parser.add_argument("--half-lives", default="0,5,10,20", help="0: binary")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    base = Settings.from_env()
    factors = [int(v) for v in args.factors.split(",")]
    half_lives = [float(v) for v in args.half_lives.split(",")]
    ratios = {name: validate(name, factors, half_lives, base)
              for name in args.datasets.split(",")}
    points = next(iter(ratios.values())).keys()
    mean = {p: float(np.mean([r[p] for r in ratios.values()])) for p in points}
    for point, value in sorted(mean.items(), key=lambda kv: -kv[1]):
        print(f"factors/recency {point}: mean validation ratio {value:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"ratios": ratios, "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
