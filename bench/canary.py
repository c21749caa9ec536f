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

Robust on a loaded box (#13 phase 4): the canary is declared only once the worker
serves ranked answers (``--warmup-s``; a starved worker ends the drill with that
verdict, not a ramp on fallbacks), the controller's looks are streamed as they come
(a timeout still shows them), and the worker's answers by source are printed every
30 s beside the load average.  Timing-sensitive: run it holding the bench lock.

    flock /work/bench.lock .venv/bin/python bench/canary.py [--min-units 100] [--delay-ms 200]
    .venv/bin/python bench/canary.py --policy random --quality-window-s 300
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.first_minutes import free_port, read_metrics, wait_ready  # noqa: E402
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
    p.add_argument("--warmup-s", type=float, default=300.0,
                   help="seconds to wait for the worker's first ranked answers")
    p.add_argument("--warmup-answers", type=int, default=50)
    args = p.parse_args()
    print(json.dumps({"load_start": os.getloadavg()}), flush=True)
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
        sim = subprocess.Popen([*exe, "sim", "--api-port", str(api_port), "--quiet", "--users", args.users,
                                "--movies", args.movies, "--rate", args.rate, "--speed", args.speed,
                                *(["--backfill-days", "7", "--backfill-lines", args.backfill_lines]
                                  if args.backfill_lines != "0" else []),
                                "--recommender", f"http://127.0.0.1:{web_port}"],
                               env=env, cwd=ROOT, start_new_session=True,
                               stdout=open(work / "sim.log", "wb"), stderr=subprocess.STDOUT)
        children.append(sim)
        warm = time.monotonic()
        while True:  # the drill needs ranked answers: a starved worker is a verdict of its own
            time.sleep(5)
            try:
                answers, lines = read_metrics(web_port)
            except OSError:
                answers, lines = {}, 0.0
            ranked = answers.get("personal", 0) + answers.get("popular", 0)
            if ranked >= args.warmup_answers:
                break
            if time.monotonic() - warm > args.warmup_s or sim.poll() is not None:
                raise SystemExit(json.dumps({"verdict": "worker served no ranked answers in time",
                                             "answers": answers, "lines": lines,
                                             "load": os.getloadavg()}))
        print(json.dumps({"warmup_s": round(time.monotonic() - warm), "answers": answers,
                          "lines": lines}), flush=True)
        subprocess.run([*exe, "experiment", "start", "canary", "--canary", "--arm",
                        f"bad={args.policy or 'slow:' + args.delay_ms}", "--arm", "control=baseline"],
                       env=env, cwd=ROOT, check=True, capture_output=True)
        started = time.monotonic()
        ramp = subprocess.Popen([*exe, "experiment", "ramp", "canary", "--auto", "--interval", args.interval,
                                 "--min-units", args.min_units, "--quality-window-s", args.quality_window_s],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=open(work / "ramp.err", "wb"), text=True, start_new_session=True)
        children.append(ramp)
        looks, shares, last_status = [], [0.01], time.monotonic()
        lines_out: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines_out.put(x) for x in ramp.stdout], daemon=True).start()
        while True:
            try:
                line = lines_out.get(timeout=0.5)
            except queue.Empty:
                line = ""
            if line:
                looks.append(line.strip())
                print(f"+{round(time.monotonic() - started)}s {line.strip()}", flush=True)
                try:
                    shares.append(float(json.loads(line).get("share", shares[-1])))
                except (ValueError, AttributeError):
                    pass
                continue
            if ramp.poll() is not None and lines_out.empty():
                break
            if time.monotonic() - started > args.timeout:
                ramp.send_signal(2)
                print(json.dumps({"verdict": f"controller still running after {args.timeout:.0f}s",
                                  "max_share": max(shares)}), flush=True)
                break
            if time.monotonic() - last_status > 30:
                last_status = time.monotonic()
                try:
                    answers, lines = read_metrics(web_port)
                except OSError:
                    answers, lines = {}, 0.0
                print(json.dumps({"t": round(last_status - started), "answers": answers, "lines": lines,
                                  "load": os.getloadavg()}), flush=True)
        if ramp.returncode not in (0, None):
            raise SystemExit(f"ramp --auto exited with {ramp.returncode}:\n"
                             f"{(work / 'ramp.err').read_text()[-3000:]}")
        if ramp.returncode == 0 and looks:
            final = json.loads(looks[-1])
            print(json.dumps({"final_state": final["state"], "final_weights": final["weights"],
                              "version": final["version"], "max_share_served": max(shares),
                              "seconds": round(time.monotonic() - started),
                              "load_end": os.getloadavg()}), flush=True)
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
