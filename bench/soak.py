"""Fault soak (issue #12): two workers on Apache Kafka behind a retrying front, the simulator
driving requests and its stream, faults injected on a seeded schedule, everything accounted for.

Loopback only, bounded (``--minutes``), seeded (``--seed`` drives the world and the fault
order).  What runs (ports from ``--port-base``, the h12 block 24000-24099 by default):

* Apache Kafka (KRaft, ``deploy/kafka/kafka.sh``), two ``recstream worker`` processes;
* ``bench/soak_front.py``: deploy/nginx's retry policy in front of the workers, and the
  workers' user/movie API proxied to the simulator through a switch that can stall it;
* the simulator (``recstream.sim``) with 1% malformed lines, its graders' loop calling the
  front with the 600 ms deadline, its lines also copied to a file (what was produced).

Faults, at fixed fractions of the run: two forced model promotions (``recstream train``
then ``models promote --force``), a worker ``kill -9`` and restart, a broker restart
(stop + start on the same data dir), a stalled API.  Recovery after each = the later of
(a) the front answering every request 200 within 600 ms for 5 s in a row and (b) the
worker group having committed every line produced before the fault (for a promotion:
both workers serving the new generation).  At the end ``bench/soak_check.py`` accounts for
every line and every user's ratings from the broker.

    .venv/bin/python bench/soak.py --minutes 5            # the CI size (tests/bench/test_soak.py)
    .venv/bin/python bench/soak.py --minutes 30 --rate 500 --json var/soak30.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.soak_check import check, pipeline_lag, verdict  # noqa: E402
from bench.soak_explain import explain  # noqa: E402
from bench.soak_faults import SCHEDULE, Faults, recovery_report  # noqa: E402
from bench.soak_load import summarise  # noqa: E402
from recstream.settings import Settings  # noqa: E402
from tests import brokers  # noqa: E402
from tests.brokers import BrokerError, KafkaHandle, stop_kafka  # noqa: E402
from tests.integration.conftest import Worker  # noqa: E402


def _wait_port(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def start_kafka(port: int, data_dir: Path, *, controller_port: int) -> KafkaHandle:
    """kafka.sh start, patient on a loaded box: when its wait runs out but the JVM lives,
    wait for the port; when the JVM was killed, start again (three tries)."""
    brokers.START_TIMEOUT_S = 600.0
    data = Path(data_dir).resolve()
    for attempt in range(3):
        try:
            return brokers.start_kafka(port, data, controller_port=controller_port)
        except BrokerError:
            pid_file = data / "kafka.pid"
            pid = int(pid_file.read_text().strip()) if pid_file.exists() else 0
            deadline = time.monotonic() + 300
            while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                with socket.socket() as sock:
                    sock.settimeout(1.0)
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        return KafkaHandle(port=port, controller_port=controller_port,
                                           data_dir=data, pid=pid)
                time.sleep(2)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def run(args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()
    work = Path(args.work_dir or ROOT / "var" / f"soak-{uuid.uuid4().hex[:6]}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    base = args.port_base
    kafka_port, ctl_port, sim_api, front_port, api_proxy = base, base + 1, base + 10, base + 11, base + 12
    tag = f"soak{args.seed}-{uuid.uuid4().hex[:6]}"
    app_id, topic = f"{tag}", f"movielog-{tag}"
    handle = start_kafka(kafka_port, work / "kafka", controller_port=ctl_port)
    broker = f"kafka://{handle.bootstrap_servers}"
    procs: list[subprocess.Popen] = []
    logs: list = []  # the children's log files, closed at the end
    workers: list[Worker] = []
    stall_flag = work / "api-stalled"
    stats_path = work / "front.json"
    produced = work / "produced.log"
    try:
        for name in ("a", "b"):
            w = Worker(broker, app_id, topic, work / f"data-{name}", work / f"worker-{name}.log",
                       api_url=f"http://127.0.0.1:{api_proxy}")
            # only the soak's own promotions: no scheduled or volume-triggered retrain
            w.env.update(RECSTREAM_RETRAIN_EVERY_H="0", RECSTREAM_RETRAIN_MIN_NEW_INTERACTIONS="0")
            workers.append(w)
        front = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "soak_front.py"), "--port", str(front_port),
             "--workers", ",".join(f"http://127.0.0.1:{w.port}" for w in workers),
             "--api-port", str(api_proxy), "--api-upstream", f"http://127.0.0.1:{sim_api}",
             "--stall-flag", str(stall_flag), "--stats", str(stats_path)],
            stdout=_log(logs, work / "front.log"), stderr=subprocess.STDOUT)
        procs.append(front)
        _wait_port(f"http://127.0.0.1:{front_port}/front/healthz", 30)
        for w in workers:
            w.start(timeout=400)
        env = {**workers[0].env}
        sim_cmd = [sys.executable, str(ROOT / "bench" / "soak_sim.py"),
                   "--seed", str(args.seed), "--users", str(args.users), "--rate", str(args.rate),
                   "--movies", str(args.movies),
                   "--speed", str(args.speed), "--duration", str(args.minutes * 60 * args.speed),
                   "--scenario-file", str(_scenarios(work, args)), "--api-port", str(sim_api),
                   "--recommender", f"http://127.0.0.1:{front_port}", "--out", str(produced),
                   "--no-oracle", "--topic", topic]
        sim = subprocess.Popen(sim_cmd, env=env, stdout=_log(logs, work / "sim.log"),
                               stderr=subprocess.STDOUT)
        procs.append(sim)
        _wait_traffic(sim, f"http://127.0.0.1:{sim_api}/user/1", timeout=600)  # world built
        load_stats = work / "load.json"
        if args.load_rate > 0:  # the graders' bulk load, from lighter processes (bench/soak_load.py)
            procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "soak_load.py"), "--url",
                 f"http://127.0.0.1:{front_port}" if args.load_via_front
                 else ",".join(f"http://127.0.0.1:{w.port}" for w in workers), "--rate", str(args.load_rate), "--procs",
                 str(args.load_procs), "--seconds", str(args.minutes * 60), "--users", str(args.users),
                 "--seed", str(args.seed), "--ramp-s", str(args.load_ramp_s), "--stats", str(load_stats)],
                stdout=_log(logs, work / "load.log"), stderr=subprocess.STDOUT))
        settings = Settings.from_env(workers[0].env)
        faults = Faults(settings, topic, workers, handle, stall_flag, work, seed=args.seed,
                        start_kafka=start_kafka, stop_kafka=stop_kafka,
                        schedule=() if args.no_faults else SCHEDULE)
        started = time.time()
        faults.run_schedule(started, args.minutes * 60, sim)
        handle = faults.handle  # the broker restart made a new handle
        sim.wait(timeout=args.minutes * 60 + 600)
        if args.load_rate > 0:
            try:
                procs[-1].wait(timeout=120)
            except subprocess.TimeoutExpired:
                procs[-1].terminate()  # its children dump their counts on SIGTERM
                procs[-1].wait(60)
        ended = time.time()
        drained = _drain(settings, topic, timeout=args.drain_s)
        for w in workers:
            w.stop()
        report = asyncio.run(check(settings, produced))
        if any(report["detail"].values()):  # where each loss came from (bench/soak_explain.py)
            report["explained"] = asyncio.run(explain(settings, report["detail"]))
        front.terminate()
        front.wait(30)
        answers = json.loads(stats_path.read_text())
        load = json.loads(load_stats.read_text()) if args.load_rate > 0 and load_stats.exists() else None
        secs = {int(k): v for k, v in answers["seconds"].items() if started <= int(k) <= ended}
        total = sum(v[0] for v in secs.values())
        ok = sum(v[2] for v in secs.values())
        result = {
            "minutes": args.minutes, "seed": args.seed, "users": args.users, "movies": args.movies,
            "sim_rate": args.rate, "speed": args.speed, "work_dir": str(work),
            "load_before": load_before, "load_after": os.getloadavg(),
            "requests": total, "requests_per_s": round(total / max(ended - started, 1), 1),
            "answered_200": sum(v[1] for v in secs.values()), "answered_200_in_600ms": ok,
            "share_ok": ok / total if total else 0.0,
            "retried": sum(v[3] for v in secs.values()),
            "slowest_s": answers["slowest"][-5:],
            "drained_s": drained,
            "faults": recovery_report(faults.events, secs),
            "load": summarise(load, started, ended) if load else None,
            "load_faults": recovery_report(faults.events, {
                int(k): v for k, v in load["seconds"].items() if started <= int(k) <= ended})
            if load else None,
            "accounting": report, "problems": verdict(report),
        }
        return result
    finally:
        for w in workers:
            w.stop()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        stall_flag.unlink(missing_ok=True)
        stop_kafka(handle)
        for f in logs:
            f.close()


def _log(logs: list, path: Path):
    f = open(path, "wb")
    logs.append(f)
    return f


def _wait_traffic(sim: subprocess.Popen, api_url: str, timeout: float) -> None:
    """Until the simulator's API answers (it starts right before the graders' loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sim.poll() is not None:
            raise RuntimeError(f"the simulator exited {sim.returncode} before its traffic")
        try:
            with urllib.request.urlopen(api_url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer: the API is up
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"no simulator traffic within {timeout:.0f}s")


def _scenarios(work: Path, args: argparse.Namespace) -> Path:
    path = work / "scenarios.json"
    path.write_text(json.dumps({"scenarios": {"malformed": {"share": args.malformed}}}))
    return path


def _drain(settings: Settings, topic: str, timeout: float) -> float | None:
    """Seconds until the group has committed every line on every hop — movielog, re-keyed
    events, profiles, movie updates (None: not within ``timeout``).  Waiting for the
    movielog alone stopped the workers with ratings still in the events topic (#12 phase 5:
    34,353 re-keyed events and 203 movie updates unconsumed, read as 113 ratings lost)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if not any(asyncio.run(pipeline_lag(settings, topic)).values()):
                return round(time.monotonic() - started, 1)
        except Exception:  # noqa: BLE001 - broker hiccup: ask again
            pass
        time.sleep(1.0)
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=60.0, help="simulator arrivals (requests) per second")
    p.add_argument("--load-rate", type=float, default=0.0,
                   help="graders' requests per second from bench/soak_load.py, beside the simulator's")
    p.add_argument("--load-procs", type=int, default=2)
    p.add_argument("--load-via-front", action="store_true",
                   help="send the load through bench/soak_front.py (default: to the workers, "
                        "with the front's retry policy in the client)")
    p.add_argument("--load-ramp-s", type=float, default=0.0, help="capacity probe: ramp the load")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--movies", type=int, default=27_000)
    p.add_argument("--malformed", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--port-base", type=int, default=24000)
    p.add_argument("--drain-s", type=float, default=300.0)
    p.add_argument("--work-dir", default="")
    p.add_argument("--no-faults", action="store_true", help="the same run without faults")
    p.add_argument("--json", default="", help="also write the result here")
    return p


def summary(result: dict) -> str:
    """A few lines for a log or a test failure."""
    a = result["accounting"]
    g = a["graders"]
    lines = [f"front: requests {result['requests']} ({result['requests_per_s']}/s), 200 within "
             f"600 ms {result['share_ok']:.4%}; graders (outcome lines): {g.get('requests', 0)}, "
             f"200 within 600 ms {g['share_ok']:.4%}; load {result['load_before'][0]:.1f}->"
             f"{result['load_after'][0]:.1f}",
             f"lines {a['lines_in_topic']} (valid {a['valid']}, rejected {a['rejected']}, "
             f"quarantined {a['quarantined']}), unconsumed {a['unconsumed']}, ratings "
             f"{a['ratings_expected']} of {a['users_with_ratings']} users: lost "
             f"{a['ratings_lost']} wrong {a['ratings_wrong']} extra {a['ratings_extra']}, "
             f"movie counters wrong {a['movie_counters_wrong']}"]
    if result.get("load"):
        ld = result["load"]
        lines.append(f"graders' load (bench/soak_load.py): {ld['requests']} ({ld['requests_per_s']}/s), "
                     f"200 within 600 ms {ld['share_ok']:.4%}, timeouts {ld['timeouts']}, errors "
                     f"{ld['errors']}, not sent {ld['not_sent_client_behind']}, send lag ms "
                     f"{ld['send_lag_ms']}")
        for f in result["load_faults"]:
            lines.append(f"  load after {f['fault']}: {f['window_missed']} of {f['window_requests']} "
                         f"missed until the next fault ({f['window_seconds_missing']} s with a miss, "
                         f"{f['window_seconds_none_in_time']} with none in time, last "
                         f"+{f['window_last_miss_s']} s)")
    for f in result["faults"]:
        lines.append(f"{f['fault']}: recovered {f['recovered_s']} s (answers "
                     f"{f['answers_recovered_s']} s, {f['answers_failed_before_recovery']} failed;"
                     f" ingest {f['ingest_recovered_s']} s){' ' + f['error'] if f.get('error') else ''}")
    return "\n".join(lines + [f"problems: {result['problems'] or 'none'}"])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop everything it started
    random.seed(args.seed)
    result = run(args)
    text = json.dumps(result, indent=2, default=str)
    print(text)
    print(summary(result))
    if args.json:
        Path(args.json).write_text(text)
    return 0 if not result["problems"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
