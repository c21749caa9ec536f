"""Live quality in a simulator world: the share of the oracle's gain over popularity
that the running service reaches after one simulated day (issue #10).

    .venv/bin/python bench/live_world.py [--users 3000 --movies 3000 --seed 7]

The world's ground truth gives true affinities.  Three runs of the same world (same
seed, same simulated day, ``recstream sim --fast``):

* **ours**: the world's past (``--backfill-days`` of organic history, written once to a
  file by the simulator) is replayed into a fresh Tansu broker + one ``recstream worker``
  with its default settings; once the worker has counted every line and its own
  retrains are done (as bench/live_quality.py waits), the simulator plays one simulated
  day whose graders ask the worker's ``/recommend`` over HTTP (its 600 ms deadline) and
  whose lines the worker keeps learning from; the movie and user API is the simulator's.
* **popularity** and **oracle**: the simulator's in-process yardsticks
  (``--recommender builtin:popularity|oracle``, no Kafka) on the same day.

The live day runs without the past in the simulator (``--backfill-days 0``): the worker
knows the past, the simulated users do not carry its re-watch penalty -- the same for all
three runs.  From each run's truth file: the mean true rating of what users picked from the
lists (sessions whose pick came from the list, not organic browsing), and the mean true
rating of the lists shown.  Share = (ours - popularity) / (oracle - popularity), over the
whole day and its last quarter.  A count/quality bench (nice -n 5).
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


def sim_args(args: argparse.Namespace, truth: Path | None, recommender: str,
             past: bool = False) -> list[str]:
    out = [sys.executable, "-m", "recstream.cli", "sim", "--seed", str(args.seed),
           "--users", str(args.users), "--movies", str(args.movies), "--fast",
           "--recommender", recommender, "--quiet"]
    if past:  # the past alone (and one simulated second of live traffic), to a file
        return out + ["--duration", "1", "--backfill-days", str(args.backfill_days),
                      "--backfill-lines", str(args.backfill_lines), "--no-kafka", "--no-api",
                      "--no-oracle"]
    return out + ["--duration", str(args.duration), "--backfill-days", "0",
                  "--truth", str(truth), "--rate", str(args.rate)]


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
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--movies", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=DAY, help="simulated seconds live")
    parser.add_argument("--rate", type=float, default=2.0,
                        help="the simulator's --rate (arrivals per real second at its default "
                             "speed 60: 2 -> ~2,900 sessions a simulated day)")
    parser.add_argument("--backfill-days", type=float, default=30)
    parser.add_argument("--backfill-lines", type=int, default=60_000)
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
    with open(work / "past.log", "wb") as past:
        subprocess.run([*sim_args(args, None, "builtin:popularity", past=True), "--out", "-"],
                       cwd=ROOT, check=True, timeout=args.timeout, stdout=past,
                       stderr=subprocess.DEVNULL)
    service = Service(work, 4)
    api_port = free_port()
    service.env["RECSTREAM_API_URL"] = f"http://127.0.0.1:{api_port}"
    sim = api = None
    try:
        # The simulator's movie/user API for the past's movies while it is replayed.
        api = subprocess.Popen([sys.executable, "-m", "recstream.cli", "sim", "--seed",
                                str(args.seed), "--users", str(args.users), "--movies",
                                str(args.movies), "--recommender", "builtin:random",
                                "--no-kafka", "--api-port", str(api_port), "--duration", "0",
                                "--rate", "0.001", "--no-oracle", "--quiet"],
                               cwd=ROOT, env=service.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        service.start()
        out = service.cli("replay", str(work / "past.log"))
        produced = int(out.split("replayed ", 1)[1].split()[0])
        report["past_lines"] = produced
        report["past_drain_seconds"] = service.drained(produced, args.timeout)
        # A small past (a few thousand interactions) is under the worker's volume trigger
        # (5,000) and its hourly timer: one `train --promote`, as an operator would run it.
        service.settle_retrains(quiet=30.0, timeout=args.timeout)
        trained = json.loads(service.cli("train", "--promote", "--json").strip()
                             .splitlines()[-1])
        report["train"] = {k: trained.get(k) for k in ("version", "promoted", "decision")}
        report["train"]["interactions"] = (trained.get("data") or {}).get("interactions")
        print(f"train --promote: promoted {trained.get('promoted')}, "
              f"{(trained.get('decision') or {}).get('reasons')}", flush=True)
        if trained.get("promoted"):
            service.wait(lambda: service.metric("recstream_model_generation") >= 1, 300,
                         "the swap")
        report["generation_before_day"] = service.metric("recstream_model_generation")
        print(f"past: {produced:,} lines drained in {report['past_drain_seconds']:.0f}s; "
              f"serving generation {report['generation_before_day']:.0f}", flush=True)
        api.terminate()
        api.wait(30)
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
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        print(f"live_world: cannot measure: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in (sim, api):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
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
