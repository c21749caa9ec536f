"""Live quality in a simulator world: the share of the oracle's gain over popularity
that the running service reaches after one simulated day (issue #10).

    .venv/bin/python bench/live_world.py [--users 3000 --movies 3000 --seed 7]

The world's ground truth gives true affinities.  Three runs of the same world (same
seed, same past, same simulated day; ``recstream sim --fast``):

* **ours**: a fresh Tansu broker + one ``recstream worker`` with its default settings;
  the simulator writes ``--backfill-days`` of organic history to the topic at full
  speed, then plays one simulated day whose graders ask the worker's ``/recommend``
  over HTTP (its 600 ms deadline); the worker's movie and user API is the simulator's.
* **popularity** and **oracle**: the simulator's in-process yardsticks
  (``--recommender builtin:popularity|oracle``, no Kafka) on the same world.

From each run's truth file: the mean true rating of what users picked from our lists
(sessions whose pick came from the list, not organic browsing), and the mean true
rating of the lists shown.  Share = (ours - popularity) / (oracle - popularity), over
the whole day and over its last quarter (after the past is ingested and the worker's
own retrains ran).  The live part is a count/quality bench (nice -n 5); it waits for
nothing but the simulator's end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.live_quality import Service, free_port  # noqa: E402

DAY = 86_400.0


def sim_args(args: argparse.Namespace, truth: Path, recommender: str) -> list[str]:
    return [sys.executable, "-m", "recstream.cli", "sim", "--seed", str(args.seed),
            "--users", str(args.users), "--movies", str(args.movies), "--fast",
            "--duration", str(args.duration), "--backfill-days", str(args.backfill_days),
            "--backfill-lines", str(args.backfill_lines), "--truth", str(truth),
            "--recommender", recommender, "--quiet"]


def outcome(truth: Path, duration: float) -> dict[str, dict[str, float]]:
    """Per window (whole day, last quarter): mean true rating of list picks and of lists."""
    sessions = [r for r in map(json.loads, truth.read_text().splitlines())
                if r.get("kind") == "session"]
    if not sessions:
        return {}
    start = min(r["t"] for r in sessions)
    out = {}
    for name, since in (("day", 0.0), ("last quarter", 0.75 * duration)):
        window = [r for r in sessions if r["t"] - start >= since]
        picks = np.array([r["true_rating"] for r in window if r["position"] >= 0])
        shown = np.array([r["served_true_mean"] for r in window
                          if r.get("served_true_mean") is not None])
        oracle = np.array([r["oracle_true_mean"] for r in window
                           if r.get("oracle_true_mean") is not None])
        out[name] = {"sessions": len(window), "list_picks": int(picks.size),
                     "pick_true_mean": float(picks.mean()) if picks.size else float("nan"),
                     "pick_share": picks.size / max(len(window), 1),
                     "shown_true_mean": float(shown.mean()) if shown.size else float("nan"),
                     "oracle_list_true_mean": float(oracle.mean()) if oracle.size
                     else float("nan")}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--movies", type=int, default=3000)
    parser.add_argument("--duration", type=float, default=DAY, help="simulated seconds live")
    parser.add_argument("--backfill-days", type=float, default=30)
    parser.add_argument("--backfill-lines", type=int, default=400_000)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="live-world-"))
    print(f"world: seed {args.seed}, {args.users} users x {args.movies} movies, "
          f"{args.backfill_days:g}-day past ({args.backfill_lines:,} lines), "
          f"{args.duration / 3600:g} simulated hours live; load {os.getloadavg()}; "
          f"work dir {work}", flush=True)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    results: dict[str, dict] = {}
    for name in ("popularity", "oracle"):
        truth = work / f"truth-{name}.jsonl"
        started = time.monotonic()
        subprocess.run([*sim_args(args, truth, f"builtin:{name}"), "--no-kafka", "--no-api"],
                       cwd=ROOT, check=True, timeout=args.timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results[name] = outcome(truth, args.duration)
        print(f"{name}: {time.monotonic() - started:.0f}s {json.dumps(results[name])}",
              flush=True)
    service = Service(work, 4)
    api_port = free_port()
    service.env["RECSTREAM_API_URL"] = f"http://127.0.0.1:{api_port}"
    sim = None
    try:
        service.start()
        truth = work / "truth-ours.jsonl"
        started = time.monotonic()
        log = open(work / "sim.log", "wb")
        sim = subprocess.Popen([*sim_args(args, truth, f"http://127.0.0.1:{service.port}"),
                                "--api-port", str(api_port)], env=service.env, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
        log.close()
        service.wait(lambda: sim.poll() is not None, args.timeout, "the simulated day")
        if sim.returncode != 0:
            raise RuntimeError(f"sim exited {sim.returncode}; see {work / 'sim.log'}")
        report["live_seconds"] = time.monotonic() - started
        report["retrains"] = service.metric("recstream_retrains_total")
        report["generation"] = service.metric("recstream_model_generation")
        report["lines_total"] = service.metric("recstream_lines_total")
        results["ours"] = outcome(truth, args.duration)
        print(f"ours: {report['live_seconds']:.0f}s, retrains {report['retrains']:.0f}, "
              f"generation {report['generation']:.0f} {json.dumps(results['ours'])}",
              flush=True)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        print(f"live_world: cannot measure: {exc}", file=sys.stderr)
        return 1
    finally:
        if sim is not None and sim.poll() is None:
            sim.terminate()
            sim.wait(30)
        service.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load after: {os.getloadavg()}")
    print("| window | popularity pick | oracle pick | ours pick | share of oracle gain (picks) "
          "| popularity list | oracle list | ours list | share (lists) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for window in ("day", "last quarter"):
        p, o, us = (results[n][window] for n in ("popularity", "oracle", "ours"))
        share = (us["pick_true_mean"] - p["pick_true_mean"]) / (o["pick_true_mean"]
                                                               - p["pick_true_mean"])
        lshare = (us["shown_true_mean"] - p["shown_true_mean"]) / (
            o["shown_true_mean"] - p["shown_true_mean"])
        report.setdefault("share", {})[window] = {"picks": share, "lists": lshare}
        print(f"| {window} | {p['pick_true_mean']:.4f} ({p['list_picks']}) | "
              f"{o['pick_true_mean']:.4f} ({o['list_picks']}) | {us['pick_true_mean']:.4f} "
              f"({us['list_picks']}) | {share:.1%} | {p['shown_true_mean']:.4f} | "
              f"{o['shown_true_mean']:.4f} | {us['shown_true_mean']:.4f} | {lshare:.1%} |")
    if args.json:
        report["results"] = results
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
