"""Where does the live service lose against its offline replica?  (issue #10, phase 4)

    .venv/bin/python bench/live_replica.py --dataset ml-latest-small [--live lists.json]

Offline, on the same split and training lines as bench/live_quality.py, the service's
pieces one at a time -- each row changes one thing from the row above:

* ``offline live path``: bench/live_refs.live_path_lists at the service's factors/reg/alpha
  (no time decay in the fit, every user folded in, no guardrails);
* ``trainer fit, fold-in``: the trainer's own model (``recstream.ops.fit.make_model``, its
  fit with the pair timestamps as ``train`` passes them), every user folded in;
* ``trainer fit, fit's user vectors``: what a quiet user is served after a swap when only
  stragglers are refolded (the fit's own user factors);
* ``... + guardrails (unknown age)``: the minors' rules the worker applies to users whose
  age it does not know (MovieLens replays have no user API), over the movie API objects
  bench/live_quality.py serves.

With ``--live`` (bench/live_quality.py ``--lists-out``) the live answers are scored beside
them and compared user by user (mean overlap of the top 20 with each replica).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from bench import live_refs  # noqa: E402
from bench.live_data import DATA, K, load, movie_objects, per_user_split, score_lists, table  # noqa: E402,E501
from models.foldin import fold_in_users  # noqa: E402
from models.guardrails import safe_for_minors  # noqa: E402
from models.ranking import top_k_rows  # noqa: E402
from recstream.ops.fit import make_model  # noqa: E402
from recstream.settings import Settings  # noqa: E402


def lists_from(scores: np.ndarray, users: np.ndarray, items: np.ndarray, x: sp.csr_matrix,
               wanted: list[int], allowed: np.ndarray | None = None) -> dict[int, list[str]]:
    rows = np.searchsorted(users, wanted)
    s = np.array(scores[rows], np.float64, copy=True)
    s[x[rows].nonzero()] = -np.inf
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    return {u: [items[j] for j in row if j >= 0] for u, row in zip(wanted, top_k_rows(s, K))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--limit-users", type=int, default=0)
    parser.add_argument("--live", type=Path, help="bench/live_quality.py --lists-out file")
    parser.add_argument("--train-fraction", type=float, default=0.8,
                        help="per-user time split (another split to check generalisation)")
    args = parser.parse_args(argv)
    data = load(args.dataset)
    if args.limit_users:
        data = data.subset(np.isin(data.users, np.unique(data.users)[:args.limit_users]))
    split = per_user_split(data, args.train_fraction)
    wanted = split.test_users()
    settings = Settings.from_env()
    train = split.train
    users, items, x = live_refs._matrix(train)
    rows: list[tuple[str, dict]] = [
        ("popularity", score_lists(live_refs.popularity_lists(train, wanted), split))]
    lists: dict[str, dict[int, list[str]]] = {}
    lists["offline live path"] = live_refs.live_path_lists(
        train, wanted, factors=settings.n_factors, regularization=settings.ials_regularization,
        alpha=settings.ials_alpha)
    # The trainer's fit: one row per (user, movie), the pair's last event time.
    order = np.lexsort((train.timestamps, train.items, train.users))
    u, i, t = train.users[order], train.items[order], train.timestamps[order]
    last = np.r_[(u[1:] != u[:-1]) | (i[1:] != i[:-1]), True]
    model = make_model("ials", settings)
    model.fit(u[last], i[last], np.ones(int(last.sum())), timestamps=t[last])
    col = np.searchsorted(model.item_ids, items)
    assert np.array_equal(model.item_ids[col], items)
    y = np.zeros((items.size, model.n_factors), np.float32)
    y[:] = model.item_factors[col]
    conf = x.tocsr() * model.alpha
    if settings.ials_recent_half_life:
        conf = conf.multiply(live_refs._recency(train, users, items,
                                                settings.ials_recent_half_life)).tocsr()
    folded = fold_in_users(y, conf, model.regularization)
    lists["trainer fit, fold-in"] = lists_from(folded @ y.T, users, items, x, wanted)
    fit_rows = np.searchsorted(model.user_ids, users)
    own = model.user_factors[fit_rows]
    lists["trainer fit, fit's user vectors"] = lists_from(own @ y.T, users, items, x, wanted)
    objects = {slug: json.loads(raw) for slug, raw in movie_objects(DATA / args.dataset).items()}
    minors = np.array([safe_for_minors(objects.get(m)) for m in items.tolist()])
    print(f"minors' rules allow {minors.mean():.1%} of the {items.size:,} training movies",
          flush=True)
    lists["trainer fit, fold-in + guardrails (unknown age)"] = lists_from(
        folded @ y.T, users, items, x, wanted, minors)
    lists["trainer fit, fit's vectors + guardrails"] = lists_from(
        own @ y.T, users, items, x, wanted, minors)
    for name, got in lists.items():
        rows.append((name, score_lists(got, split)))
    if args.live:
        live = {name: {int(k): v for k, v in got.items()}
                for name, got in json.loads(args.live.read_text()).items()}
        for name, got in live.items():
            rows.append((name, score_lists(got, split)))
            for ref, ref_lists in lists.items():
                common = [u for u in got if u in ref_lists]
                overlap = np.mean([len(set(got[u][:K]) & set(ref_lists[u][:K])) / K
                                   for u in common])
                print(f"{name} vs {ref}: mean top-{K} overlap {overlap:.3f} ({len(common)} "
                      "users)")
    print(f"{args.dataset}, per-user split {args.train_fraction:.0%}, {len(wanted)} test users; "
          f"load {os.getloadavg()}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
