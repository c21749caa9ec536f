"""Attack detectors against the simulator's own attacks and ground truth.

Runs the platform (in process, fast clock, built-in popularity recommender)
for one simulated day with ``sybil`` + ``scraping`` + ``malformed`` on, and a
second clean day, then replays what a worker would see through
:mod:`models.detectors`:

* the movielog lines (parsed by :mod:`recstream.parsing`, malformed ones dropped);
* every ``/recommend`` call with its client: the graders' calls (``grader``)
  and the scraper's (``scraper-1``), recorded by wrapping the two callables
  the platform is given — the platform never logs the scraper's calls, so
  these are the requests our web layer would see — plus constructed benign
  clients (a dashboard, 2,000 app clients), which the simulator does not have.

Scores: sybil recall over the accounts the truth lists as sybil, false
positives over the other ``create_account`` users; requests until the scraper
is flagged; false flags of any client over the clean day.

    .venv/bin/python bench/detectors.py [--users 50000] [--hours 24] [--seed 42]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.detectors import ScrapingDetector, SybilDetector  # noqa: E402
from recstream.parsing import parse_line  # noqa: E402
from recstream.records import AccountCreated, Rating, RecommendationOutcome, WatchMinute  # noqa: E402
from recstream.sim.options import SimOptions  # noqa: E402
from recstream.sim.recommenders import builtin  # noqa: E402
from recstream.sim.sinks import MemorySink, TruthWriter  # noqa: E402
from recstream.sim.traffic import Platform  # noqa: E402
from recstream.sim.world import build_synthetic  # noqa: E402


class Recorded:
    """A recommender that notes who called for which user, at the platform's time."""

    def __init__(self, inner, client: str, log: list) -> None:
        self.inner, self.client, self.log = inner, client, log
        self.platform: Platform | None = None
        self.server = getattr(inner, "server", "builtin:8082")

    async def __call__(self, uid: int) -> list[str]:
        self.log.append((self.platform.now, self.client, int(uid)))  # type: ignore[union-attr]
        return await self.inner(uid)


async def simulate(users: int, hours: float, seed: int, scenarios: dict, truth_path: str):
    options = SimOptions(users=users, seed=seed, fast=True, duration=hours * 3600, kafka=False, api=False,
                         truth_oracle=False, scenarios=scenarios)
    world = build_synthetic(options)
    calls: list = []
    inner = builtin("popularity", world)
    grader, scraper = Recorded(inner, "grader", calls), Recorded(inner, "scraper-1", calls)
    sink, truth = MemorySink(), TruthWriter(truth_path)
    truth.open()
    platform = Platform(world, options, grader, [sink], truth=truth, scraper=scraper)
    grader.platform = scraper.platform = platform
    await platform.run()
    truth.close()
    return sink.lines, calls


def benign_clients(start: float, end: float, seed: int) -> list:
    """Constructed (the simulator has none): a dashboard polling 5 users every 30 s, and
    2,000 app clients each asking 1–30 times for 1–3 users (a household) over the day."""
    rng = np.random.default_rng(seed)
    calls = [(t, "dashboard", 1 + k % 5) for k, t in enumerate(np.arange(start, end, 30.0))]
    for c in range(2000):
        users = rng.integers(1, 50_000, size=int(rng.integers(1, 4)))
        for t in np.sort(rng.uniform(start, end, size=int(rng.integers(1, 31)))):
            calls.append((float(t), f"app-{c}", int(rng.choice(users))))
    return calls


def replay(lines: list[str], calls: list) -> tuple[SybilDetector, ScrapingDetector, dict]:
    events = []
    for line in lines:
        rec = parse_line(line, rating_min=1, rating_max=10)
        if isinstance(rec, (AccountCreated, WatchMinute, Rating, RecommendationOutcome)):
            events.append((rec.time, 1, rec))
    events += [(t, 0, (client, uid)) for t, client, uid in calls]
    events.sort(key=lambda e: (e[0], e[1]))
    sybil, scraping = SybilDetector(), ScrapingDetector()
    accounts: set[int] = set()
    first_flag: dict[str, int] = {}
    started = time.perf_counter()
    for t, kind, rec in events:
        if kind == 0:
            client, uid = rec
            if scraping.request(t, client, uid):
                first_flag.setdefault(client, scraping.clients[client].requests)
        elif isinstance(rec, RecommendationOutcome):
            scraping.outcome(t, rec.user)
        elif isinstance(rec, AccountCreated):
            accounts.add(rec.user)
            sybil.account(t, rec.user)
        elif isinstance(rec, WatchMinute):
            sybil.watch(t, rec.user, rec.movie, rec.minute)
        else:
            sybil.rate(t, rec.user, rec.movie, rec.rating)
    per_event_us = (time.perf_counter() - started) / max(len(events), 1) * 1e6
    return sybil, scraping, {"accounts": accounts, "events": len(events), "per_event_us": per_event_us,
                             "first_flag": first_flag}


def truth_attacks(path: str) -> tuple[set[int], set[str]]:
    users: set[int] = set()
    movies: set[str] = set()
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kind") == "attack" and rec.get("attack") == "sybil":
                users.update(rec["users"])
                movies.add(rec["movie"])
    return users, movies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, scenarios in (("attacked", {"sybil": {}, "scraping": {}, "malformed": {}}),
                                ("clean", {"malformed": {}})):
            truth_path = f"{tmp}/{name}.jsonl"
            started = time.perf_counter()
            lines, calls = asyncio.run(simulate(args.users, args.hours, args.seed, scenarios, truth_path))
            sim_s = time.perf_counter() - started
            start = min(t for t, _, _ in calls)
            calls += benign_clients(start, start + args.hours * 3600, args.seed)
            sybil, scraping, info = replay(lines, calls)
            fake, targets = truth_attacks(truth_path)
            real_new = info["accounts"] - fake
            suspected = set(sybil.suspected_accounts)
            out[name] = {
                "lines": len(lines), "calls": len(calls), "sim_s": round(sim_s, 1),
                "detector_us_per_event": round(info["per_event_us"], 2),
                "sybil_accounts": len(fake), "real_new_accounts": len(real_new),
                "sybil_recall": round(len(suspected & fake) / len(fake), 4) if fake else None,
                "false_positive_rate": round(len(suspected & real_new) / max(len(real_new), 1), 4),
                "false_positives": len(suspected & real_new),
                "pushed_movies_found": sorted(set(sybil.pushed_movies) & targets),
                "other_movies_flagged": sorted(set(sybil.pushed_movies) - targets),
                "flagged_clients": {c: {"requests_until_flag": info["first_flag"].get(c), "why": v[2]}
                                    for c, v in scraping.flagged.items()},
                "false_flags_per_day": round(sum(c != "scraper-1" for c in scraping.flagged)
                                             * 24 / args.hours, 2),
            }
            print(json.dumps({name: out[name]}), flush=True)


if __name__ == "__main__":
    main()
