"""Validity and sensitivity of the experiment statistics, measured on the simulator's user model.

(a) A/A under continuous peeking: many experiments that serve the same ranker in
    both arms (users hashed into arms by ``Allocation`` with a fresh salt each);
    after every batch of users both the anytime-valid sequential test and the
    naive fixed-horizon z-test are read, and an experiment counts as a false
    positive if any look rejects.  The SRM check runs on each at the end.
(b) SRM power: a 1% allocation skew (1% of treatment users lost; and a 50.5/49.5
    split) injected into the arm counts; how often p < 0.001 flags it, per size.
(c) Sensitivity: ranker pairs with a known true quality gap.  Every user of a
    pool is simulated under A, under B, and under team-draft interleaving of A
    and B (picks, watch time, completion and ratings from ``recstream.sim``'s
    behaviour; credit by ``interleaving.credit``).  Users needed for 80% power
    at alpha = 0.05: A/B from the per-user metric's effect and spread, the
    interleaving from the per-user vote; each then checked by re-running the
    decision on resampled experiments of that size.

    .venv/bin/python bench/experiments.py [--seed 13] [--aa 300] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.experiments.assignment import Allocation  # noqa: E402
from models.experiments.interleaving import (A, B, TIE, Event, credit, per_user_scores,  # noqa: E402
                                             preference_test, score_test, team_draft)
from models.experiments.sequential import peeking_paths  # noqa: E402
from models.experiments.stats import sample_size_per_arm, srm_check, welch  # noqa: E402

# The simulator, read-only: the only imports from recstream.sim (its files may be renamed).
from recstream.sim import behaviour  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.world import World, build_synthetic  # noqa: E402

K, REQUESTS, ALPHA, POWER = 20, 3, 0.05, 0.8
DAY, WINDOW = 86_400.0, 4 * 3600.0


def ci_text(hits: int, n: int) -> str:
    ci = stats.binomtest(hits, n).proportion_ci(0.95)
    return f"{hits / n:.3f} (95% CI {ci.low:.3f}–{ci.high:.3f}, {hits}/{n})"


def ranked(scores: np.ndarray, world: World, u: int) -> np.ndarray:
    """Best ``K + REQUESTS`` movies by ``scores``, unsafe titles masked for minors (as the service serves)."""
    depth = K + REQUESTS
    scores = scores.astype(np.float64)
    if world.taste.minor[u]:
        scores[world.taste.unsafe_for_minor] = -np.inf
    top = np.argpartition(-scores, depth)[:depth]
    return top[np.argsort(-scores[top])]


def unseen(ranking: np.ndarray, seen: set[int]) -> list[int]:
    return [m for m in ranking.tolist() if m not in seen][:K]


METRICS = {  # per-user A/B metrics: name → (observable in production?, description)
    "conversion": (True, "share of requests with a pick from the list"),
    "watch-through": (True, "mean fraction of the picked movie watched, per request"),
    "stated rating": (True, "mean stated rating of rated picks (users who rated)"),
    "true rating per request": (False, "sum of true ratings of picks / requests"),
    "true rating of picks": (False, "mean true rating of picked movies (users who picked)"),
}


def session(world: World, rng: np.random.Generator, u: int, lists) -> tuple[dict[str, float], list[Event], list]:
    """REQUESTS requests a day apart; ``lists(r, seen)`` → (shown movies, impression or None)."""
    seen: set[int] = set()
    true, watched, stated, events, impressions = [], [], [], [], []
    for r in range(REQUESTS):
        shown, impression = lists(r, seen)
        t0 = r * DAY
        impressions.append((impression, t0))
        pick = behaviour.pick_from_list(world.taste, rng, u, np.asarray(shown), seen)
        if pick is None:
            continue
        seen.add(pick.movie)
        runtime = max(int(world.catalog.runtime[pick.movie]), 1)
        minutes = behaviour.minutes_watched(rng, pick.true_rating, runtime)
        true.append(pick.true_rating)
        watched.append(minutes / runtime)
        events.append(Event(t0 + 60, pick.movie, "watch"))
        if minutes >= runtime:
            events.append(Event(t0 + 60 * minutes, pick.movie, "complete"))
        if rng.random() < behaviour.rating_probability(minutes / runtime):
            stated.append(behaviour.stated_rating(rng, pick.true_rating, 1, 5))
            events.append(Event(t0 + 60 * minutes + 30, pick.movie, "rate", stated[-1]))
    nan = float("nan")
    values = {"conversion": len(true) / REQUESTS, "watch-through": sum(watched) / REQUESTS,
              "stated rating": float(np.mean(stated)) if stated else nan,
              "true rating per request": sum(true) / REQUESTS,
              "true rating of picks": float(np.mean(true)) if true else nan}
    return values, events, impressions


def aa_peeking(world: World, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    popular = np.argsort(-world.catalog.weight)[: K + REQUESTS]
    n_pool = len(world.population)
    conversion = np.empty(n_pool)
    for u in range(n_pool):
        values, _, _ = session(world, rng, u, lambda r, seen: (unseen(popular, seen), None))
        conversion[u] = values["conversion"]
    looks = np.arange(args.batch, args.aa_users + 1, args.batch)
    seq = naive = once = srm = 0
    for e in range(args.aa):
        sample = rng.choice(n_pool, args.aa_users, replace=False)          # arrival order
        arms = Allocation(f"aa-{args.seed}-{e}", ("control", "treatment"), (1, 1)).assign(
            world.population.ids[sample])
        s, n = peeking_paths(conversion[sample], arms, looks, alpha=ALPHA, n_star=args.aa_users)
        seq, naive, once = seq + bool(s.any()), naive + bool(n.any()), once + bool(n[-1])
        srm += srm_check(np.bincount(arms, minlength=2), [0.5, 0.5]).flagged
    print(f"\n## (a) A/A, {args.aa} experiments × {args.aa_users:,} users, a look every {args.batch} users "
          f"({len(looks)} looks); metric: per-user conversion of popularity lists "
          f"(mean {conversion.mean():.3f})")
    print(f"- sequential (asymptotic CS, n*={args.aa_users:,}) false-positive rate: {ci_text(seq, args.aa)}")
    print(f"- naive z-test read at every look:                  {ci_text(naive, args.aa)}")
    print(f"- naive z-test read once at the end:                {ci_text(once, args.aa)}")
    print(f"- SRM false alarms (p < 0.001) on the hashed splits: {srm}/{args.aa}")


def srm_power(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed + 1)
    reps = 200 if args.quick else 1000
    critical = stats.chi2.isf(0.001, 1)
    lam80 = next(lam for lam in np.arange(1, 60, 0.05) if stats.ncx2.sf(critical, 1, lam) >= 0.8)
    print(f"\n## (b) SRM check (χ², p < 0.001) on an injected 1% allocation skew, {reps} experiments per size")
    print("| users | 1% of treatment lost (ratio 0.99) | split 50.5 / 49.5 |\n|---|---|---|")
    for n in (10_000, 100_000, 500_000, 1_000_000, 2_000_000):
        lost = flagged = 0
        for _ in range(reps):
            treated = rng.binomial(n, 0.5)
            kept = treated - rng.binomial(treated, 0.01)
            lost += srm_check([n - treated, kept], [0.5, 0.5]).flagged
            skewed = rng.binomial(n, 0.505)
            flagged += srm_check([n - skewed, skewed], [0.5, 0.5]).flagged
        print(f"| {n:,} | {lost / reps:.2f} | {flagged / reps:.2f} |")
    share_lost = 0.495 / 0.995
    per_user = {"lost": 2 * (share_lost - 0.5) ** 2 / 0.5, "split": 2 * 0.005 ** 2 / 0.5}
    print(f"- users for 80% detection (noncentral χ², λ={lam80:.1f}): 1% lost {lam80 / per_user['lost']:,.0f}; "
          f"50.5/49.5 {lam80 / per_user['split']:,.0f}")


def users_needed_one_sample(votes: np.ndarray) -> float:
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
    return float((z * votes.std(ddof=1) / abs(votes.mean())) ** 2)


def empirical_users(decide, guess: float, rng: np.random.Generator, checks: int) -> tuple[int, float]:
    """Smallest experiment size (users) whose real decision procedure is right ≥ POWER of the time.

    ``decide(n, rng)`` runs one resampled experiment of ``n`` users and returns
    +1 (right), 0 (undecided) or −1 (wrong direction).  Sizes are searched on a
    grid around the normal-approximation ``guess``; returns (users, wrong-direction rate there).
    """
    for factor in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 4.0):
        n = max(4, int(round(guess * factor)))
        outcomes = np.array([decide(n, rng) for _ in range(checks)])
        if np.mean(outcomes == 1) >= POWER:
            return n, float(np.mean(outcomes == -1))
    raise RuntimeError(f"power {POWER} not reached below {4 * guess:.0f} users")


def sensitivity(world: World, name: str, score_b, args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(args.seed + 2)
    n_pool = len(world.population)
    metrics = {arm: np.empty((n_pool, len(METRICS))) for arm in "AB"}
    impressions_won, scores, true_gap = [], np.empty(n_pool), []
    for u in range(n_pool):
        truth = world.taste.ratings(u)
        rank_a, rank_b = ranked(truth, world, u), ranked(score_b(u, truth), world, u)
        true_gap.append(float(truth[rank_a[:K]].mean() - truth[rank_b[:K]].mean()))
        for arm, ranking in (("A", rank_a), ("B", rank_b)):
            values, _, _ = session(world, rng, u, lambda r, seen, rk=ranking: (unseen(rk, seen), None))
            metrics[arm][u] = [values[m] for m in METRICS]

        def mixed(r: int, seen: set[int]) -> tuple[list[int], object]:
            il = team_draft(unseen(rank_a, seen), unseen(rank_b, seen), k=K, seed=f"{name}:{u}:{r}")
            return list(il.items), il
        _, events, impressions = session(world, rng, u, mixed)
        winners = np.array([credit(il, t0, events, window_s=WINDOW).winner for il, t0 in impressions])
        impressions_won.extend(winners.tolist())
        scores[u] = per_user_scores(np.zeros(len(winners)), winners)[0]
    votes = np.sign(scores)
    imp = preference_test(np.array(impressions_won))
    right = A if scores.mean() > 0 else B

    def outcome(decision: int) -> int:
        return 0 if decision == TIE else (1 if decision == right else -1)
    sign_n, sign_wrong = empirical_users(
        lambda n, g: outcome(preference_test(_winners(votes[g.integers(0, n_pool, n)])).decision),
        users_needed_one_sample(votes), rng, args.checks)
    score_n, score_wrong = empirical_users(
        lambda n, g: outcome(score_test(scores[g.integers(0, n_pool, n)]).decision),
        users_needed_one_sample(scores), rng, args.checks)
    print(f"\n### {name}\ntrue gap (mean true rating of each top-{K}, A − B) {np.mean(true_gap):.3f}; "
          f"pool {n_pool:,} users\n")
    print(f"interleaving impressions won by A {imp.wins_a:,} / B {imp.wins_b:,} / tie {imp.ties:,}. "
          f"Users for {POWER:.0%} correct decisions (measured): sign test on per-user votes **{sign_n:,}** "
          f"(wrong direction {sign_wrong:.3f}); t-test on per-user mean credit **{score_n:,}** "
          f"(wrong direction {score_wrong:.3f})\n")
    print("| A/B metric (per user) | observable | A | B | sd | users (normal approx.) | users (measured) "
          "| ÷ interleaving (t-test) |")
    print("|---|---|---|---|---|---|---|---|")
    needed = {}
    for j, (metric, (observable, _)) in enumerate(METRICS.items()):
        a, b = metrics["A"][:, j], metrics["B"][:, j]
        covered = float(np.mean(~np.isnan(a) & ~np.isnan(b)))   # share of users the metric exists for
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        sd = float(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))
        guess = 2 * sample_size_per_arm(sd=sd, mde=abs(a.mean() - b.mean()), alpha=ALPHA, power=POWER) / covered
        sign = np.sign(a.mean() - b.mean())

        def split(n: int, g: np.random.Generator, a=a, b=b, sign=sign, covered=covered) -> int:
            per_arm = max(2, int(g.binomial(n, covered) // 2))     # users of each arm the metric exists for
            r = welch(b[g.integers(0, len(b), per_arm)], a[g.integers(0, len(a), per_arm)], alpha=ALPHA)
            return 0 if r.p_value >= ALPHA else (1 if np.sign(r.effect) == sign else -1)
        measured, _ = empirical_users(split, guess, rng, args.checks)
        needed[metric] = measured
        print(f"| {metric} | {'yes' if observable else 'no (oracle)'} | {a.mean():.4f} | {b.mean():.4f} | "
              f"{sd:.3f} | {guess:,.0f} | {measured:,} | {measured / score_n:.1f}× |")
    best_obs = min(n for m, n in needed.items() if METRICS[m][0])
    return {"observable": best_obs / score_n, "observable_sign": best_obs / sign_n,
            "oracle": min(needed.values()) / score_n}


def _winners(votes: np.ndarray) -> np.ndarray:
    return np.where(votes > 0, A, np.where(votes < 0, B, TIE))


def main() -> None:
    global REQUESTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--users", type=int, default=20_000, help="simulated users (pool)")
    parser.add_argument("--movies", type=int, default=3000)
    parser.add_argument("--aa", type=int, default=300, help="A/A experiments")
    parser.add_argument("--aa-users", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100, help="users between two looks")
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--requests", type=int, default=REQUESTS, help="requests per user")
    parser.add_argument("--parts", default="abc", help="which of (a) A/A, (b) SRM, (c) sensitivity to run")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args()
    REQUESTS = args.requests
    if args.quick:
        args.users, args.aa, args.aa_users, args.checks = 3000, 40, 2000, 50
    started = time.perf_counter()
    world = build_synthetic(SimOptions(users=args.users, movies=args.movies, seed=args.seed, existing_share=1.0))
    print(f"# bench/experiments.py — world: {args.users:,} users × {args.movies:,} movies, seed {args.seed}")
    if "a" in args.parts:
        aa_peeking(world, args)
    if "b" in args.parts:
        srm_power(args)
    if "c" not in args.parts:
        return
    print(f"\n## (c) sensitivity: users to reach the correct decision at alpha={ALPHA}, power={POWER} "
          f"({REQUESTS} requests per user, credit window {WINDOW / 3600:.0f} h)")
    z_pop = np.log(world.catalog.weight)
    z_pop = (z_pop - z_pop.mean()) / z_pop.std()
    noise_rng = np.random.default_rng(args.seed + 3)
    ratios = [
        sensitivity(world, "oracle vs noised oracle (σ=0.5)",
                    lambda u, t: t + noise_rng.normal(0, 0.5, len(t)), args),
        sensitivity(world, "oracle vs oracle/popularity blend (50/50 of z-scores)",
                    lambda u, t: (t - t.mean()) / t.std() + z_pop, args),
    ]
    print("\n## summary: users an A/B test needs ÷ users interleaving needs (both measured)")
    for (name, r) in zip(("noised oracle", "popularity blend"), ratios):
        print(f"- {name}: {r['observable']:.1f}× (best observable A/B metric vs credit t-test; "
              f"{r['observable_sign']:.1f}× vs the sign test), {r['oracle']:.1f}× against the best oracle metric")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
