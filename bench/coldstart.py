"""Does a self-description improve a new user's first list? Measured in the simulator.

Builds a synthetic world (``recstream.sim``), samples organic ratings of the
existing accounts, fits ``BiasedALS`` on them (the item vectors a worker would
hold), fits a ``DemographicPrior`` on the fitted user vectors, then takes the
accounts that do not exist yet and asks the simulator's own generator for what
they would write at sign-up (``World.user_json``: ``likes``/``dislikes`` text).
For every new user naming >= 3 catalogue movies they like, the top-20 of each
arm is scored by the user's TRUE ratings (the world's taste, never seen by the
models).  Every vector arm is ranked the way the service ranks
(``tables.serving``: ``p.q_i + b_i + blend * log1p(popularity_i)``):

* ``popularity``   : global play counts (what an unknown user is served);
* ``segment``      : age band x gender play counts (``segment_popularity``);
* ``prior``        : the demographic prior vector alone;
* ``foldin``       : ``fold_in`` on the titles ``TitleIndex.match`` found;
* ``foldin-truth`` : ``fold_in`` on the movies actually meant (upper bound for matching);
* ``foldin-unblended`` : ``foldin`` ranked by ``p.q_i + b_i`` only (the earlier, wrong
  measurement: explicit MF without the serving popularity prior).

Movies the user named are excluded from every arm.  Effects are paired per-user
differences with a percentile bootstrap 95 % CI (10k resamples) and a t CI.
``known_users`` checks the factor model itself on 300 existing users.

    .venv/bin/python bench/coldstart.py [--users 40000] [--movies 27000] [--ratings 800000] [--seed 7]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models._ids import lookup, top_k  # noqa: E402
from models.als import BiasedALS  # noqa: E402
from models.coldstart import (DemographicPrior, fold_in, relative_reg, segment_of,  # noqa: E402
                              segment_popularity)
from models.popularity import popularity_prior  # noqa: E402
from models.ranking import score_users  # noqa: E402
from models.titles import TitleIndex  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.population import GENDERS  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402

K = 20


def bootstrap_ci(diff: np.ndarray, rng: np.random.Generator, n: int = 10_000) -> tuple[float, float]:
    means = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def t_ci(diff: np.ndarray) -> tuple[float, float]:
    from scipy import stats
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return float(diff.mean() - half), float(diff.mean() + half)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=40_000)
    ap.add_argument("--movies", type=int, default=27_000)
    ap.add_argument("--ratings", type=int, default=800_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--min-count", type=int, default=10, help="items need this many training ratings")
    ap.add_argument("--reg", type=float, default=4.0,
                    help="x mean squared item norm (relative_reg); chosen from {0.5, 1, 2, 4, 8} "
                         "on seed 7, 20k x 10k")
    ap.add_argument("--bias-reg", type=float, default=5.0)
    ap.add_argument("--blend", type=float, default=0.15,
                    help="popularity prior weight of the serving ranker (settings.popularity_blend)")
    ap.add_argument("--item-vectors", choices=("als", "true"), default="als",
                    help="als: fitted on simulated ratings; true: the world's own item factors/biases")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    world = build_synthetic(SimOptions(seed=args.seed, users=args.users, movies=args.movies))
    cat, pop, taste = world.catalog, world.population, world.taste
    rng = np.random.default_rng(args.seed)
    hist = world.sample_history(args.ratings, rng)
    u_idx, m_idx, stated = hist[:, 0].astype(np.int64), hist[:, 1].astype(np.int64), hist[:, 2]
    slugs = np.asarray(cat.ids)
    als = BiasedALS(n_factors=args.factors, seed=args.seed).fit(pop.ids[u_idx], slugs[m_idx], stated)
    t_fit = time.perf_counter() - t0

    # Item side as the worker sees it: catalogue row -> ALS row (or -1), support filter.
    als_row = lookup(als.item_ids, slugs)
    counts = np.bincount(m_idx, minlength=len(cat)).astype(np.float64)
    eligible = (als_row >= 0) & (counts >= args.min_count)
    known = lookup(pop.ids, als.user_ids)  # ALS user rows -> population index
    if args.item_vectors == "true":   # isolates matching + fold-in from the factor model's quality
        Q, bias, mu = taste.Q.astype(np.float64), taste.item_bias.astype(np.float64), float(taste.mu)
        user_vectors, user_bias = taste.P[known], taste.user_bias[known]
        als_row = np.arange(len(cat))
    else:
        Q = np.zeros((len(cat), args.factors), np.float64)
        bias = np.zeros(len(cat))
        Q[als_row >= 0] = als.item_factors[als_row[als_row >= 0]]
        bias[als_row >= 0] = als.item_bias[als_row[als_row >= 0]]
        mu, user_vectors, user_bias = als.global_mean, als.user_factors, als.user_bias
    prior = DemographicPrior(shrinkage=20.0).fit(
        user_vectors, pop.age[known].tolist(), [GENDERS[g] for g in pop.gender[known]],
        biases=user_bias)
    seg_counts: dict[tuple[str, str], np.ndarray] = {}
    seg_of_row = [segment_of(int(pop.age[u]), GENDERS[int(pop.gender[u])]) for u in u_idx]
    for key in set(seg_of_row):
        mask = np.fromiter((s == key for s in seg_of_row), bool, len(seg_of_row))
        seg_counts[key] = np.bincount(m_idx[mask], minlength=len(cat)).astype(np.float64)
    pop_counts = np.where(eligible, counts, 0.0)
    pop_prior = popularity_prior(pop_counts, args.blend).astype(np.float64)
    reg = relative_reg(Q, args.reg, rows=np.flatnonzero(eligible))

    def served(p: np.ndarray) -> np.ndarray:
        """The service's score (tables.serving / models.ranking.score_users)."""
        return score_users(np.asarray(p, np.float64)[None, :], Q, bias, pop_prior)[0]

    # The factor model itself on known users: does it beat popularity, with and without the prior?
    known_scores: dict[str, list[float]] = {"popularity": [], "model-unblended": [], "model-served": []}
    for j in np.random.default_rng(args.seed + 1).choice(len(known), 300, replace=False):
        mask = eligible.copy()
        mask[m_idx[u_idx == known[j]]] = False
        for arm, s in (("popularity", pop_counts), ("model-unblended", Q @ user_vectors[j] + bias),
                       ("model-served", served(user_vectors[j]))):
            known_scores[arm].append(float(taste.ratings(int(known[j]),
                                                         top_k(np.where(mask, s, -np.inf), K)).mean()))

    index = TitleIndex(zip(cat.ids, cat.titles, cat.year.tolist()), popularity=cat.weight)
    row_of = cat.index
    t1 = time.perf_counter()
    arms = ("popularity", "segment", "prior", "foldin", "foldin-truth", "foldin-unblended")
    scores: dict[str, list[float]] = {a: [] for a in arms}
    tp = fp = fn = 0
    n_new = n_desc = 0
    match_s = 0.0
    for i in np.flatnonzero(~pop.created):
        n_new += 1
        user = world.user_json(int(i))
        if "likes" not in user:
            continue
        n_desc += 1
        likes, dislikes = world.self_description(int(i))
        true_l = [row_of[m["movie"]] for m in likes["mentions"] if m["movie"]]
        true_d = [row_of[m["movie"]] for m in dislikes["mentions"] if m["movie"]]
        ts = time.perf_counter()
        got_l = index.match(user["likes"])
        got_d = index.match(user["dislikes"])
        match_s += time.perf_counter() - ts
        for got, true in ((got_l, true_l), (got_d, true_d)):
            ids = {row_of[m] for m, _ in got}
            tp += len(ids & set(true))
            fp += len(ids - set(true))
            fn += len(set(true) - ids)
        if len(true_l) < 3:
            continue
        named = set(true_l) | set(true_d) | {row_of[m] for m, _ in got_l + got_d}
        mask = eligible.copy()
        mask[list(named)] = False
        p0, b0 = prior.prior(int(pop.age[i]), user["gender"])

        def vector(liked: list[int], disliked: list[int], wl=None, wd=None) -> np.ndarray:
            keep_l = [k for k, m in enumerate(liked) if als_row[m] >= 0]
            keep_d = [k for k, m in enumerate(disliked) if als_row[m] >= 0]
            liked, disliked = [liked[k] for k in keep_l], [disliked[k] for k in keep_d]
            wl = None if wl is None else [wl[k] for k in keep_l]
            wd = None if wd is None else [wd[k] for k in keep_d]
            p, _ = fold_in(Q[liked], Q[disliked], p0, liked_bias=bias[liked], disliked_bias=bias[disliked],
                           liked_weight=wl, disliked_weight=wd, prior_bias=b0,
                           global_mean=mu, reg=reg, bias_reg=args.bias_reg)
            return p.astype(np.float64)

        def top(score: np.ndarray) -> np.ndarray:
            return top_k(np.where(mask, score, -np.inf), K)

        keep_l = [(row_of[m], s) for m, s in got_l if als_row[row_of[m]] >= 0]
        keep_d = [(row_of[m], s) for m, s in got_d if als_row[row_of[m]] >= 0]
        p_match = vector([m for m, _ in keep_l], [m for m, _ in keep_d],
                         [s for _, s in keep_l], [s for _, s in keep_d])
        lists = {
            "popularity": top(pop_counts),
            "segment": segment_popularity(
                np.where(mask, seg_counts.get(segment_of(int(pop.age[i]), user["gender"]), 0.0), 0.0),
                np.where(mask, pop_counts, 0.0), k=K, exclude=np.flatnonzero(~mask).tolist()),
            "prior": top(served(p0)),
            "foldin": top(served(p_match)),
            "foldin-truth": top(served(vector(true_l, true_d))),
            "foldin-unblended": top(Q @ p_match + bias),
        }
        for arm, items in lists.items():
            scores[arm].append(float(taste.ratings(int(i), items).mean()))
    res = {a: np.asarray(v) for a, v in scores.items()}

    def effect(a: str, b: str) -> dict:
        d = res[a] - res[b]
        lo, hi = bootstrap_ci(d, np.random.default_rng(args.seed))
        tlo, thi = t_ci(d)
        return {"mean": round(float(d.mean()), 4), "ci95_bootstrap": [round(lo, 4), round(hi, 4)],
                "ci95_t": [round(tlo, 4), round(thi, 4)],
                "cohens_dz": round(float(d.mean() / max(d.std(ddof=1), 1e-12)), 3),
                "share_users_better": round(float((d > 0).mean()), 3)}

    out = {
        "world": {"users": args.users, "movies": args.movies, "ratings": args.ratings, "seed": args.seed,
                  "factors": args.factors, "reg_relative": args.reg, "reg": round(reg, 4),
                  "bias_reg": args.bias_reg, "blend": args.blend,
                  "min_count": args.min_count, "item_vectors": args.item_vectors},
        "new_users": n_new, "described": n_desc, "evaluated_ge3_likes": int(len(res["foldin"])),
        "match": {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
                  "ms_per_description": 1e3 * match_s / max(2 * n_desc, 1)},
        "mean_true_rating_top20": {a: round(float(v.mean()), 4) for a, v in res.items()},
        "known_users_mean_true_rating_top20": {a: round(float(np.mean(v)), 4)
                                               for a, v in known_scores.items()},
        "foldin_minus_popularity": effect("foldin", "popularity"),
        "foldin_minus_segment": effect("foldin", "segment"),
        "foldin_minus_prior": effect("foldin", "prior"),
        "prior_minus_popularity": effect("prior", "popularity"),
        "foldin_unblended_minus_popularity": effect("foldin-unblended", "popularity"),
        "fit_s": round(t_fit, 1), "eval_s": round(time.perf_counter() - t1, 1),
    }
    if args.json:
        print(json.dumps(out))
        return
    for key, value in out.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
