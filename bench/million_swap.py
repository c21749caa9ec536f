"""bench/million.py's model-swap phase: promote an implicit-ALS version, refresh every user.

The version is written into the worker's registry and announced on the model-updates
topic exactly as ``recstream models promote`` does.  It carries a fold-in recency half-life,
so the swap queues *every* user for a refit from their history (agents/model_swap.py: the
batch fit's own user factors are binary) and every answer is re-ranked: the heaviest
refresh a promotion causes.  Item factors are new random vectors for every movie (a new
fit), user factors for the first half of the users (the rest: users the fit never saw).
"""
from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Callable

import numpy as np


def promote_implicit(registry_dir: Path, movies: list[str], users: np.ndarray,
                     n_factors: int, seed: int, *, recent_half_life: float = 10.0) -> dict:
    from models.registry import Registry
    rng = np.random.default_rng(seed + 1)
    fitted = np.sort(users[: users.size // 2])
    arrays = {"user_ids": fitted,
              "user_factors": rng.normal(0, 0.1, (fitted.size, n_factors)).astype(np.float32),
              "user_bias": np.zeros(fitted.size, np.float32), "item_ids": np.array(movies),
              "item_factors": rng.normal(0, 0.1, (len(movies), n_factors)).astype(np.float32),
              "item_bias": np.zeros(len(movies), np.float32), "global_mean": np.asarray(0.0),
              "item_counts": np.ones(len(movies), np.int64)}
    registry = Registry(registry_dir)
    version = registry.add(arrays, {"model": "ImplicitALS", "metrics": {},
                                    "hyperparameters": {"regularization": 0.1, "alpha": 1.0,
                                                        "recent_half_life": recent_half_life}})
    return registry.promote(version, decision={"passed": True, "reasons": ["bench"]})


def announce(env: dict, pointer: dict) -> None:
    from recstream.modelupdates import announce as publish
    from recstream.settings import Settings
    asyncio.run(publish(Settings.from_env(env), pointer))


def run_swap(args, out: dict, *, env: dict, port: int, pid: int, ids: Path, movies: list[str],
             users: np.ndarray, n_factors: int, ns: argparse.Namespace,
             measure: Callable, metric: Callable) -> None:
    """Announce, load the worker while every user is refit and re-ranked, time both."""
    pointer = promote_implicit(Path(env["RECSTREAM_REGISTRY_DIR"]), movies, users, n_factors,
                               args.seed)
    refreshed0 = metric(port, "recstream_answers_refreshed_total")
    t0 = time.monotonic()
    announce(env, pointer)
    while metric(port, "recstream_model_generation") != pointer["generation"]:
        if time.monotonic() - t0 > 300:
            raise SystemExit("the worker did not swap within 300 s")
        time.sleep(0.2)
    swapped = time.monotonic()
    swap = {"swap_s": round(swapped - t0, 2)}
    swap["during"] = measure(ns, port, pid, ids)
    swap["during"]["refreshed_meanwhile"] = \
        metric(port, "recstream_answers_refreshed_total") - refreshed0
    swap["refits_meanwhile"] = metric(port, "recstream_user_refits_total")  # NaN: no such series
    # Done when the re-rank count has not grown for 5 s and no refit is queued (a tree
    # without the refit gauge: the re-rank count alone).
    done, last, changed = None, -1.0, time.monotonic()
    while time.monotonic() - swapped < args.refresh_timeout:
        count = metric(port, "recstream_answers_refreshed_total")
        pending = metric(port, "recstream_user_refits_pending")
        if count != last:
            last, changed = count, time.monotonic()
        elif not pending > 0 and time.monotonic() - changed > 5.0:
            done = changed
            break
        time.sleep(1.0)
    elapsed = (done or time.monotonic()) - swapped
    swap.update(refresh_s=round(elapsed, 1) if done else None,
                reranked=last - refreshed0, refits=metric(port, "recstream_user_refits_total"),
                users_per_s=round(args.users / elapsed, 1))
    if done:
        swap["at_rest"] = measure(ns, port, pid, ids)
    out["swap"] = swap
