"""A canary of a deliberately broken arm (+200 ms per answer, or random scores), on the real worker.

Tansu + ``recstream worker`` + ``recstream sim`` on free ports; ``recstream
experiment start canary --canary --arm bad=slow:200 --arm control=baseline``
(treatment at 1%), then ``recstream experiment ramp canary --auto``: the
controller reads the answers' provenance, checks the guardrails with the
anytime-valid test and ramps 1% → 5% → 25% → 50% after ``--min-units`` clean
treatment answers per step, or rolls back.  Prints the controller's looks and the
final spec: the broken arm must be rolled back before it reaches 25%.
``--policy random --quality-window-s 300`` drills the quality guardrail instead: a
random-scores arm, as fast as the service, caught by conversion (the controller's
``--quality-window-s``), with a week of past traffic so that users are known.

    .venv/bin/python bench/canary.py [--min-units 100] [--delay-ms 200]
    .venv/bin/python bench/canary.py --policy random --quality-window-s 300
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.first_minutes import free_port, wait_ready  # noqa: E402
from recstream.broker import start_tansu, stop, wait_for_port  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--min-units", default="100")
    p.add_argument("--delay-ms", default="200")
    p.add_argument("--policy", default="", help="the bad arm's policy (default slow:DELAY)")
    p.add_argument("--quality-window-s", default="0", help="conversion guardrail (0 = off)")
    p.add_argument("--backfill-lines", default="0", help="past lines (7 days) before live traffic")
    p.add_argument("--speed", default="60")
    p.add_argument("--movies", default="5000")
    p.add_argument("--users", default="20000")
    p.add_argument("--interval", default="5")
    p.add_argument("--rate", default="30")
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="canary-"))
    broker_port, web_port, api_port = free_port(), free_port(), free_port()
    tansu = start_tansu(broker_port, log_path=work / "tansu.log")
    env = {**os.environ, "RECSTREAM_BROKER": f"tansu://127.0.0.1:{broker_port}",
           "RECSTREAM_WEB_PORT": str(web_port), "RECSTREAM_WEB_HOST": "127.0.0.1",
           "RECSTREAM_CANONICAL_URL": f"http://127.0.0.1:{web_port}",
           "RECSTREAM_DATA_DIR": str(work / "data"), "RECSTREAM_REGISTRY_DIR": str(work / "models"),
           "RECSTREAM_API_URL": f"http://127.0.0.1:{api_port}", "RECSTREAM_APP_ID": "canary"}
    exe = [sys.executable, "-m", "recstream.cli"]
    children: list[subprocess.Popen] = []
    try:
        worker = subprocess.Popen([*exe, "worker", "-l", "warn"], env=env, cwd=ROOT, start_new_session=True,
                                  stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT)
        children.append(worker)
        wait_for_port("127.0.0.1", web_port, 120, worker)
        wait_ready(web_port, worker)
        subprocess.run([*exe, "experiment", "start", "canary", "--canary", "--arm",
                        f"bad={args.policy or 'slow:' + args.delay_ms}", "--arm", "control=baseline"],
                       env=env, cwd=ROOT, check=True, capture_output=True)
        sim = subprocess.Popen([*exe, "sim", "--api-port", str(api_port), "--quiet", "--users", args.users,
                                "--movies", args.movies, "--rate", args.rate, "--speed", args.speed,
                                *(["--backfill-days", "7", "--backfill-lines", args.backfill_lines]
                                  if args.backfill_lines != "0" else []),
                                "--recommender", f"http://127.0.0.1:{web_port}"],
                               env=env, cwd=ROOT, start_new_session=True,
                               stdout=open(work / "sim.log", "wb"), stderr=subprocess.STDOUT)
        children.append(sim)
        started = time.monotonic()
        out = subprocess.run([*exe, "experiment", "ramp", "canary", "--auto", "--interval", args.interval,
                              "--min-units", args.min_units, "--quality-window-s", args.quality_window_s],
                             env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=args.timeout)
        for line in out.stdout.strip().splitlines():
            print(line, flush=True)
        if out.returncode != 0:
            raise SystemExit(f"ramp --auto exited with {out.returncode}:\n{out.stderr[-3000:]}")
        final = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"final_state": final["state"], "final_weights": final["weights"],
                          "version": final["version"], "seconds": round(time.monotonic() - started),
                          "uptime": os.popen("uptime").read().strip()}), flush=True)
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(2)
        for child in reversed(children):
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        stop(tansu)
        print(f"logs in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
