"""Issue #14 phase 3: sybil waves and a scraper against the real worker, detectors on vs off.

For each arm, one embedded Tansu broker, one ``recstream worker``
(``RECSTREAM_ATTACK_WATCH=1`` or ``0``) and ``recstream sim`` (its movie/user API,
its graders' loop calling the worker over HTTP, ``sybil`` + ``scraping`` on, the
ground truth written to a file), all on free ports, same seed.  Afterwards it reads:

* **reach**: from the platform's own outcome lines in the movielog, per simulated
  hour, the share of the other (real, non-sybil) users shown a non-empty list that
  hour whose list held a movie a wave had pushed before the answer; also the share
  before the first wave (the movie's organic exposure).  Lists are empty until the
  movie API confirmed movies (fail closed), which on a loaded box takes the first
  simulated hours: ``first_list_h`` says when lists began;
* **sybil detection** (on arm): the suspects the live detector published on
  ``<app>-suspects`` against the truth's sybil accounts, false positives among
  the real accounts created in the movielog;
* **scraping**: the worker's own log line for each flagged client (requests
  until flagged, why); every client other than the simulator's scraper is a
  false flag.

    .venv/bin/python bench/attack_live.py [--speed 120] [--hours 6] [--arms on,off]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.live_watch import LagSampler, sim_lines, wait_ingested  # noqa: E402
from models.poison_reach import reach_by_hour  # noqa: E402
from recstream.broker import start_tansu, stop  # noqa: E402
from recstream.ops.provenance import scan  # noqa: E402
from recstream.ops.suspects import parse_suspect  # noqa: E402
from recstream.parsing import parse_raw  # noqa: E402
from recstream.records import AccountCreated, RecommendationOutcome  # noqa: E402
from recstream.settings import Settings  # noqa: E402
from tests.brokers import free_port  # noqa: E402
from tests.integration.conftest import Worker  # noqa: E402

FLAG_LINE = re.compile(r"scraping suspected from (.*) after (\d+) requests \((\w+)\)")


def truth_waves(path: Path) -> list[tuple[float, str, list[int]]]:
    waves = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kind") == "attack" and rec.get("attack") == "sybil":
                waves.append((float(rec["t"]), rec["movie"], [int(u) for u in rec["users"]]))
    return sorted(waves)


async def read_run(settings: Settings) -> tuple[list, set[int], set[int]]:
    """Outcome lines, accounts created, suspects published."""
    outcomes, accounts = [], set()
    for _, _, raw in await scan(settings, settings.topic, lambda k, v: True, timeout_s=600):
        rec = parse_raw(raw, rating_min=1, rating_max=10, max_user_id=settings.max_user_id,
                        max_minute=settings.max_minute)
        if isinstance(rec, RecommendationOutcome):
            outcomes.append((rec.time, rec.user, rec.status, rec.movies))
        elif isinstance(rec, AccountCreated):
            accounts.add(rec.user)
    suspects = set()
    for _, _, raw in await scan(settings, f"{settings.app_id}-suspects", lambda k, v: True):
        parsed = parse_suspect(raw)
        if parsed is not None:
            suspects.add(parsed[0])
    return outcomes, accounts, suspects


def reach(outcomes: list, waves: list, fake: set[int]) -> dict:
    """Per simulated hour after the first wave (models/poison_reach.py, what ``recstream
    audit security`` reports): distinct real users shown a non-empty list, and those whose
    list held a movie a wave had pushed before the answer; where in the list it stood."""
    if not waves:
        return {}
    pushed_at: dict[str, float] = {}
    for t, movie, _ in waves:
        pushed_at.setdefault(movie, t)
    shown = [(t, user, movies) for t, user, status, movies in outcomes if status == 200]
    r = reach_by_hour(shown, pushed_at, fake)
    first_list = min((t for t, _, movies in shown if movies), default=None)
    shares = [n_hit / n for _, n, n_hit in r.hourly if n]
    return {"pushed": sorted(pushed_at), "before_first_wave": list(r.before),
            "first_list_h": (round((first_list - min(pushed_at.values())) / 3600, 2)
                             if first_list else None),
            "positions": r.positions, "hourly": r.hourly,
            "max_hourly_share": round(max(shares), 4) if shares else None,
            "mean_hourly_share": round(sum(shares) / len(shares), 4) if shares else None,
            "hours_over_1pct": r.hours_over(0.01),
            "users_after": r.after[0], "users_reached_after": r.after[1],
            "share_ever_reached": round(r.after[1] / max(r.after[0], 1), 4)}


def probe_reach(worker: Worker, truth: Path, n: int) -> dict:
    """Once caught up: ask ``/recommend`` for up to ``n`` real users who had sessions and count
    the lists holding a pushed movie (the answers as they stand at the end of the run)."""
    waves = truth_waves(truth)
    fake = {u for _, _, users in waves for u in users}
    pushed = {m for _, m, _ in waves}
    users = []
    with open(truth) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kind") == "session" and rec["user"] not in fake:
                users.append(int(rec["user"]))
    users = sorted(set(users))[:n]
    shown = reached = 0
    for user in users:
        request = urllib.request.Request(f"http://127.0.0.1:{worker.port}/recommend/{user}",
                                         headers={"User-Agent": "recstream-bench/probe"})
        with urllib.request.urlopen(request, timeout=10) as response:
            movies = [m for m in response.read().decode().strip().split(",") if m]
        shown += bool(movies)
        reached += bool(pushed & set(movies))
    return {"users": len(users), "non_empty": shown, "with_pushed": reached,
            "share": round(reached / max(shown, 1), 4)}


def run_arm(arm: str, args: argparse.Namespace, tmp: Path) -> dict:
    port, api_port = free_port(), free_port()
    tansu = start_tansu(port, log_path=tmp / f"tansu-{arm}.log")
    run = uuid.uuid4().hex[:8]
    worker = Worker(f"tansu://127.0.0.1:{port}", f"atk-{arm}-{run}", f"movielog-{run}",
                    tmp / f"data-{arm}", tmp / f"worker-{arm}.log",
                    api_url=f"http://127.0.0.1:{api_port}")
    worker.env.update({"RECSTREAM_ATTACK_WATCH": "1" if arm == "on" else "0",
                       "RECSTREAM_API_RETRY_S": "2", "RECSTREAM_API_TIMEOUT_S": "1",
                       # phase 4: the graders' address is known, the scraper calls from another
                       "RECSTREAM_GRADER_CIDRS": args.grader_cidrs})
    truth = tmp / f"truth-{arm}.jsonl"
    scenario = tmp / "scenarios.json"
    chosen = {"sybil": {"every_s": args.wave_every_s, "accounts": args.wave_accounts},
              "scraping": {"requests_per_s": args.scrape_rate, "source": args.scraper_source}}
    scenario.write_text(json.dumps({"scenarios": {k: v for k, v in chosen.items()
                                                  if k in args.scenarios.split(",")}}))
    sim = api = None
    load_before = os.getloadavg()
    started = time.monotonic()
    try:
        # The movie/user API from its own simulator process (same seeded world, no traffic
        # of its own): it stays up while the worker catches up after the traffic ends, so
        # the worker can confirm the movies it reads late (lists are empty until it has).
        with open(tmp / f"api-{arm}.log", "wb") as out:
            api = subprocess.Popen(
                [sys.executable, "-m", "recstream.sim", "--users", str(args.users), "--movies",
                 str(args.movies), "--seed", str(args.seed), "--rate", "0.001", "--duration",
                 "0", "--no-kafka", "--no-oracle", "--quiet", "--recommender",
                 "builtin:popularity", "--api-port", str(api_port)],
                env=worker.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        worker.start()
        with open(tmp / f"sim-{arm}.log", "wb") as out:
            sim = subprocess.Popen(
                [sys.executable, "-m", "recstream.sim", "--users", str(args.users), "--movies",
                 str(args.movies), "--speed", str(args.speed), "--rate", str(args.rate),
                 "--seed", str(args.seed), "--duration", str(args.hours * 3600),
                 "--new-user-share", str(args.new_user_share),
                 "--backfill-days", "7", "--backfill-lines", str(args.backfill_lines),
                 "--no-oracle", "--quiet", "--truth", str(truth), "--no-api",
                 "--recommender", f"http://127.0.0.1:{worker.port}",
                 "--topic", worker.env["RECSTREAM_TOPIC"], "--scenario-file", str(scenario)],
                env=worker.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        with LagSampler(worker) as lag:   # the worker must keep up while the traffic runs
            sim.wait(timeout=args.hours * 3600 / args.speed * 4 + 600)
        sim_wall = round(time.monotonic() - started, 1)
        caught_up = wait_ingested(worker, tmp / f"sim-{arm}.log", args.catch_up_s)
        wall = round(time.monotonic() - started, 1)
        metrics = {n: worker.metric(n) for n in (
            "recstream_sybil_suspected_accounts_total", "recstream_sybil_skipped_events_total",
            "recstream_scraping_flagged_clients_total", "recstream_lines_total")}
        settings = Settings.from_env(worker.env)
        outcomes, accounts, suspects = asyncio.run(read_run(settings))
        probe = probe_reach(worker, truth, args.probe_users)
        audit = None
        if args.audit:   # what the operator's command says over the same topics
            report = tmp / f"security-{arm}.md"
            subprocess.run([sys.executable, "-m", "recstream.cli", "audit", "security", "--out",
                            str(report)], env=worker.env, cwd=ROOT, capture_output=True,
                           timeout=900)
            audit = report.read_text() if report.exists() else "(no report)"
    finally:
        for proc in (sim, api):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
        worker.stop()
        stop(tansu)
    (tmp / f"outcomes-{arm}.json").write_text(json.dumps(outcomes))
    waves = truth_waves(truth)
    fake = {u for _, _, users in waves for u in users}
    real_new = accounts - fake
    flags = [m.groups() for m in FLAG_LINE.finditer((tmp / f"worker-{arm}.log").read_text(
        errors="replace"))]
    lag_summary = lag.summary(sim_lines(tmp / f"sim-{arm}.log"), sim_wall)
    return {
        "arm": arm, "wall_s": wall, "consumer_lag": lag_summary, "sim_wall_s": sim_wall, "ingest_caught_up": caught_up, "load_before": [round(x, 1) for x in load_before],
        "load_after": [round(x, 1) for x in os.getloadavg()], "metrics": metrics,
        "outcome_lines": len(outcomes), "answers_200": sum(o[2] == 200 for o in outcomes),
        "waves": len(waves), "sybil_accounts": len(fake), "real_new_accounts": len(real_new),
        "sybil_recall": round(len(suspects & fake) / len(fake), 4) if fake else None,
        "false_positives": len(suspects & real_new),
        "false_positive_rate": round(len(suspects & real_new) / max(len(real_new), 1), 4),
        "scraping_flags": [{"client": c, "requests": int(n), "why": w} for c, n, w in flags],
        "false_flags": sum("scraper" not in c and "probe" not in c for c, _, _ in flags),
        "probe_at_end": probe, "audit_security": audit,
        "reach": reach(outcomes, waves, fake),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", type=float, default=120.0)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--movies", type=int, default=2_000)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--backfill-lines", type=int, default=20_000)
    p.add_argument("--wave-every-s", type=float, default=1800.0)
    p.add_argument("--wave-accounts", type=int, default=50, help="sybil accounts per wave")
    p.add_argument("--scrape-rate", type=float, default=20.0, help="scraper calls per wall second")
    p.add_argument("--new-user-share", type=float, default=0.02,
                   help="arrivals that are new accounts (real ones: the false-positive base)")
    p.add_argument("--scenarios", default="sybil,scraping")
    p.add_argument("--grader-cidrs", default="127.0.0.1/32",
                   help="RECSTREAM_GRADER_CIDRS of the worker ('' = unknown: echo rules only)")
    p.add_argument("--scraper-source", default="127.0.0.2",
                   help="the scraper's own address ('' = the graders' host)")
    p.add_argument("--probe-users", type=int, default=400)
    p.add_argument("--catch-up-s", type=float, default=1500.0,
                   help="wait at most this long for the worker to ingest every line")
    p.add_argument("--audit", action="store_true",
                   help="also run `recstream audit security` over each arm's topics")
    p.add_argument("--arms", default="on,off")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="attack-live-"))
    results = []
    for arm in args.arms.split(","):
        result = run_arm(arm, args, tmp)
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()
