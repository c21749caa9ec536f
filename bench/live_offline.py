"""Offline simulation of the proposed live path against the references (issue #10, phase 1).

    .venv/bin/python bench/live_offline.py --dataset ml-latest-small
    .venv/bin/python bench/live_offline.py --dataset ml-100k --quick     # no tuning

Protocol in bench/live_data.py.  Every method is tuned on the validation cut of the
training part, refitted on the whole training part and scored once on the test part.
The live path is also scored with its item factors from retrains at earlier points of
the training events (what the worker serves between retrains), with the paired change
between consecutive retrains, and its per-event fold-in cost is measured by replaying
the newest training events one at a time (checked equal to the batch fold-in).
Exit code 0 whether or not targets are met (the table says); non-zero if it cannot run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench import live_refs  # noqa: E402
from bench.live_data import load, per_user_split, score_lists, table  # noqa: E402
from models.als import ImplicitALS  # noqa: E402
from models.foldin import fold_in_implicit, item_gram  # noqa: E402
from models.gate import bootstrap_mean_ci  # noqa: E402

RETRAIN_POINTS = (0.5, 0.75, 0.9, 1.0)


def fold_in_cost(train, params: dict, events: int = 3000) -> dict:
    """µs per event of the exact user update, replaying the newest ``events`` one by one."""
    ordered = train.time_ordered()
    model = ImplicitALS(n_factors=params["factors"], regularization=params["regularization"],
                        alpha=params["alpha"], half_life_days=None, popularity_weight=0.0,
                        popularity_half_life_days=None, seed=0)
    model.fit(ordered.users, ordered.items, np.ones(len(ordered)))
    y = model.item_factors
    gram = item_gram(y)
    rows = np.searchsorted(model.item_ids, ordered.items)
    state: dict[int, dict[int, float]] = {}
    head = len(ordered) - events
    for u, i in zip(ordered.users[:head].tolist(), rows[:head].tolist()):
        state.setdefault(u, {})[i] = params["alpha"]
    took, vectors = [], {}
    for u, i in zip(ordered.users[head:].tolist(), rows[head:].tolist()):
        items = state.setdefault(u, {})
        items[i] = params["alpha"]
        start = time.perf_counter_ns()
        vectors[u] = fold_in_implicit(y, gram, np.fromiter(items, np.int64, len(items)),
                                      np.fromiter(items.values(), np.float64, len(items)),
                                      params["regularization"])
        took.append((time.perf_counter_ns() - start) / 1000.0)
    # The last event's vector equals the batch fit's final user half-step on these items.
    u = int(ordered.users[-1])
    expected = model._half_step(*_one_user(state[u]), y.astype(np.float64),
                                np.full(y.shape[1], params["regularization"]))[0]
    gap = float(np.max(np.abs(vectors[u] - expected)))
    n = np.array([len(v) for v in state.values()])
    return {"events": events, "mean_us": float(np.mean(took)),
            "p99_us": float(np.percentile(took, 99)), "max_abs_diff_vs_batch": gap,
            "median_items_per_user": float(np.median(n)), "max_items_per_user": int(n.max())}


def _one_user(items: dict[int, float]):
    cols = np.fromiter(items, np.int64, len(items))
    return ((np.array([0, cols.size], np.int64), cols, np.ones(cols.size)),)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-latest-small",
                        help="ml-100k, ml-latest-small, or a MovieLens folder")
    parser.add_argument("--quick", action="store_true", help="no tuning: default grid points")
    parser.add_argument("--params", type=Path,
                        help="reuse the validation-chosen params of an earlier --json report")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    folder = Path(args.dataset) if Path(args.dataset).is_dir() else None
    name = args.dataset if Path(args.dataset).is_file() else Path(args.dataset).name
    split = per_user_split(load(name, folder))
    wanted = split.test_users()
    print(f"{args.dataset}: {len(split.train):,} training / {len(split.test):,} test ratings, "
          f"{len(wanted)} test users with a rating >= 4", flush=True)
    if args.params:  # chosen on this data set's validation cut by an earlier run
        params = json.loads(args.params.read_text())["params"]
    else:
        params = {name: ({} if args.quick else live_refs.tune(name, split))
                  for name in live_refs.GRIDS}
    print(f"chosen on validation: {json.dumps(params)}", flush=True)
    rows = [("popularity", score_lists(live_refs.popularity_lists(split.train, wanted), split))]
    for name, fn in live_refs.METHODS.items():
        rows.append((name, score_lists(fn(split.train, wanted, **params[name]), split)))
    retrains = []
    for point in RETRAIN_POINTS[:-1]:
        lists = live_refs.live_path_lists(split.train, wanted, retrain_at=point,
                                          **params["live-path"])
        retrains.append((f"live-path, last retrain at {point:.0%}",
                         score_lists(lists, split)))
    retrains.append(("live-path, last retrain at 100%", dict(rows)["live-path"]))
    print(table(rows + retrains[:-1]))
    print("\nretrain to retrain (paired over test users, CI95 of the mean Recall@20 change):")
    for (a_name, a), (b_name, b) in zip(retrains, retrains[1:]):
        users = sorted(set(a["per_user_recall"]) & set(b["per_user_recall"]))
        diff = np.array([b["per_user_recall"][u] - a["per_user_recall"][u] for u in users])
        lo, hi = bootstrap_mean_ci(diff)
        print(f"  retrain at {a_name.rsplit(' ', 1)[1]} -> {b_name.rsplit(' ', 1)[1]}: "
              f"{diff.mean():+.4f} ({lo:+.4f}..{hi:+.4f})")
    cost = fold_in_cost(split.train, {"factors": 64, "regularization": 10.0, "alpha": 1.0,
                                      **params["live-path"]})
    print(f"\nfold-in per event: mean {cost['mean_us']:.0f} µs, p99 {cost['p99_us']:.0f} µs "
          f"over {cost['events']} events (max |diff| vs batch {cost['max_abs_diff_vs_batch']:.1e}"
          f"; median {cost['median_items_per_user']:.0f}, max {cost['max_items_per_user']} "
          "items per user)")
    scores = dict(rows)
    live, pop, ials = (scores[n]["recall"] for n in ("live-path", "popularity", "implicit-als"))
    print(f"\ntargets: live/popularity {live / pop:.2f}x (>= 1.7: {live >= 1.7 * pop}); "
          f"live {live:.4f} vs implicit ALS {ials:.4f} (>=: {live >= ials}); already-seen "
          f"served {scores['live-path']['seen_served']}; {time.perf_counter() - started:.0f}s")
    if args.json:
        slim = {n: {k: v for k, v in s.items() if not k.startswith("per_user")}
                for n, s in rows + retrains}
        args.json.write_text(json.dumps({"dataset": args.dataset, "params": params,
                                         "scores": slim, "fold_in": cost}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
