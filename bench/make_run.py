"""`make run` for N minutes: does the worker keep up, and do known users get personal answers?

Starts exactly what ``make run`` starts (``recstream run``: the embedded Tansu broker, one
worker, the platform simulator with its 30-day past and default traffic), on free ports and
in a fresh directory, samples it every ``--sample-s`` seconds, stops it with SIGINT (as
Ctrl-C does) and prints one JSON line.  Per sample:

- ``lag_lines``: lines on the ``movielog`` topic (its true end offsets, read from the
  log: Tansu's ListOffsets is wrong) minus the lines the worker has counted
  (``recstream_lines_total``), and the worker's own ``recstream_consumer_lag`` gauge
  (committed offsets, so it also holds up to one commit interval);
- ``lag_s``: ``lag_lines`` in seconds of stream, i.e. divided by the stream's arrival
  rate over the last ``--rate-window-s`` (lines appended to the topic per second);
- the answers the worker gave returning users (``recstream_answers_by_user``), by source.

The summary gives, after the first ``--warmup-min`` minutes: the largest and the last
lag in seconds of stream, and the share of personal answers for returning (known) users
over that period; plus the simulator's graders' view (its last summary line: status mix,
latency).  Issue #11's bar: lag < 30 s of stream and ≥ 90% personal after 5 minutes.

    flock /work/bench.lock nice -n 0 .venv/bin/python bench/make_run.py --minutes 30
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import cpu_seconds, free_port  # noqa: E402


def scrape(port: int) -> dict:
    """The worker's counters this bench reads."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict = {"lines": 0.0, "gauge_lag": None, "answers": {}}
    for line in text.splitlines():
        if line.startswith("recstream_lines_total{"):
            out["lines"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith('recstream_consumer_lag{topic="movielog"}'):
            out["gauge_lag"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("recstream_answers_by_user_total{"):
            source = re.search(r'source="([^"]*)"', line).group(1)
            user = re.search(r'user="([^"]*)"', line).group(1)
            out["answers"][f"{user}/{source}"] = float(line.rsplit(" ", 1)[1])
    return out


async def topic_end(bootstrap: str, topic: str) -> int:
    """Lines on ``topic`` (sum of its partitions' true end offsets)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from recstream.kafka import true_end_offsets
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        if topic not in await consumer.topics():  # also refreshes the metadata
            return 0
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return 0
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return sum((await true_end_offsets(bootstrap, ends)).values())


def returning_share(a: dict, b: dict) -> tuple[float | None, int]:
    """Personal share of returning users' answers between two samples (and their count)."""
    keys = {k for k in list(a) + list(b) if k.startswith("returning/")}
    total = sum(b.get(k, 0) - a.get(k, 0) for k in keys)
    personal = b.get("returning/personal", 0) - a.get("returning/personal", 0)
    return (personal / total if total else None), int(total)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--warmup-min", type=float, default=5.0)
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--rate-window-s", type=float, default=60.0)
    p.add_argument("--keep", default="", help="keep the run's directory (logs) here")
    p.add_argument("sim_args", nargs="*", help="extra simulator arguments (after --)")
    args = p.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="make-run-"))
    work.mkdir(parents=True, exist_ok=True)
    broker_port, web_port, api_port = free_port(), free_port(), free_port()
    env = {**os.environ, "RECSTREAM_EMBEDDED_BROKER_PORT": str(broker_port),
           "RECSTREAM_WEB_PORT": str(web_port), "RECSTREAM_DATA_DIR": str(work / "var/data"),
           "RECSTREAM_REGISTRY_DIR": str(work / "var/models"),
           "RECSTREAM_API_URL": f"http://127.0.0.1:{api_port}",
           # the code beside this file, whatever the venv's editable install points at
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("RECSTREAM_BROKER", None)
    topic = env.get("RECSTREAM_TOPIC", "movielog")
    bootstrap = f"127.0.0.1:{broker_port}"
    load_before = os.getloadavg()
    log = open(work / "run.log", "w")
    run = subprocess.Popen([sys.executable, "-m", "recstream.cli", "run", "--api-port",
                            str(api_port), *args.sim_args], env=env, cwd=str(work),
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    samples: list[dict] = []
    ends: list[tuple[float, int]] = []
    try:
        while time.monotonic() - started < args.minutes * 60 and run.poll() is None:
            time.sleep(args.sample_s)
            now = time.monotonic() - started
            try:
                metrics = scrape(web_port)
                end = asyncio.run(topic_end(bootstrap, topic))
            except (OSError, Exception) as exc:  # noqa: BLE001 - not up yet: next sample
                samples.append({"t": round(now), "error": repr(exc)[:200]})
                continue
            ends.append((now, end))
            window = [(t, e) for t, e in ends if now - t <= args.rate_window_s]
            rate = ((window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
                    if len(window) > 1 and window[-1][0] > window[0][0] else None)
            lag = max(0.0, end - metrics["lines"])
            samples.append({"t": round(now), "end": end, "lines": metrics["lines"],
                            "lag_lines": lag, "gauge_lag": metrics["gauge_lag"],
                            "rate": round(rate, 1) if rate else None,
                            "lag_s": round(lag / rate, 2) if rate else None,
                            "answers": metrics["answers"], "load": os.getloadavg()[0],
                            "worker_cpu_s": _worker_cpu(run.pid)})
            print(json.dumps({k: v for k, v in samples[-1].items() if k != "answers"}),
                  file=sys.stderr, flush=True)
    finally:
        code = run.poll()
        if code is None:
            os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C on `make run` sends
            try:
                run.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(10)
        log.close()
    print(json.dumps(summary(samples, args, work, code, load_before)), flush=True)


def _worker_cpu(run_pid: int) -> float | None:
    """CPU seconds of the worker child of ``recstream run`` (None if not found)."""
    try:
        children = open(f"/proc/{run_pid}/task/{run_pid}/children").read().split()
        for pid in children:
            if "worker" in open(f"/proc/{pid}/cmdline").read():
                return round(cpu_seconds(int(pid)), 1)
    except OSError:
        pass
    return None


def summary(samples: list[dict], args, work: Path, code, load_before) -> dict:
    good = [s for s in samples if "lag_s" in s]
    after = [s for s in good if s["t"] >= args.warmup_min * 60]
    lags = [s["lag_s"] for s in after if s["lag_s"] is not None]
    share, answered = (returning_share(after[0]["answers"], after[-1]["answers"])
                       if len(after) > 1 else (None, 0))
    sim_lines = [line for line in (work / "run.log").read_text(errors="replace").splitlines()
                 if line.startswith("sim ")]
    return {
        "minutes": args.minutes, "warmup_min": args.warmup_min, "exit_code_before_stop": code,
        "samples": len(good), "max_lag_s_after_warmup": max(lags) if lags else None,
        "last_lag_s": lags[-1] if lags else None,
        "max_lag_lines_after_warmup": max((s["lag_lines"] for s in after), default=None),
        "mean_rate_lines_per_s": (round((good[-1]["end"] - good[0]["end"]) /
                                        max(good[-1]["t"] - good[0]["t"], 1), 1)
                                  if len(good) > 1 else None),
        "personal_share_returning_after_warmup": round(share, 4) if share is not None else None,
        "returning_answers_after_warmup": answered,
        "answers_total": good[-1]["answers"] if good else {},
        "worker_cpu_s": good[-1]["worker_cpu_s"] if good else None,
        "sim_last": sim_lines[-1] if sim_lines else None,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "dir": str(work),
        "lag_s_series": [(s["t"], s["lag_s"]) for s in good],
    }


if __name__ == "__main__":
    main()
