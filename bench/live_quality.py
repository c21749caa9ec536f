"""Live quality of the REAL service on a replayed rating history (issue #10).

    .venv/bin/python bench/live_quality.py --dataset ml-latest-small
    .venv/bin/python bench/live_quality.py --dataset ml-100k --limit-users 200   # quick

A fresh embedded Tansu broker and a fresh ``recstream worker`` (their own ports, data and
registry dirs; otherwise the worker's defaults), the time-ordered training part replayed
with ``recstream replay``, a wait until the worker counted every produced line
(``recstream_lines_total``) and its consumer lag is 0, then ``/recommend/<user>`` for
every test user over HTTP.  In the same run the references are fitted on the same
training lines (bench/live_refs.py) and scored on the same test part, and one
``recstream train --promote`` (the CLI, default flags) is run against the worker before
the users are asked again.  Protocol: bench/live_data.py.  Exit code 1 if the service
cannot be run or measured; targets missed only show in the table.
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
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench import live_refs  # noqa: E402
from bench.live_data import (course_lines, load, per_user_split, score_lists,  # noqa: E402
                             table)
from bench.live_data import DATA, movie_objects  # noqa: E402
from bench.procs import free_port  # noqa: E402
from models.gate import bootstrap_mean_ci  # noqa: E402
from tests.integration.movie_api import MovieApi  # noqa: E402
from recstream.broker import start_tansu, stop  # noqa: E402

TOKEN = "live-quality"


class Service:
    """A Tansu broker + one worker process, with the env every CLI call shares."""

    def __init__(self, work: Path, partitions: int) -> None:
        self.work = work
        self.broker_port, self.port = free_port(), free_port()
        run = uuid.uuid4().hex[:8]
        self.env = {**os.environ, "RECSTREAM_BROKER": f"tansu://127.0.0.1:{self.broker_port}",
                    "RECSTREAM_APP_ID": f"live-{run}", "RECSTREAM_TOPIC": f"movielog-{run}",
                    "RECSTREAM_WEB_PORT": str(self.port), "RECSTREAM_WEB_HOST": "127.0.0.1",
                    "RECSTREAM_DATA_DIR": str(work / "data"),
                    "RECSTREAM_REGISTRY_DIR": str(work / "registry"),
                    "RECSTREAM_PARTITIONS": str(partitions),
                    "RECSTREAM_OPERATOR_TOKEN": TOKEN,
                    "RECSTREAM_CANONICAL_URL": f"http://127.0.0.1:{self.port}",
                    "RECSTREAM_API_URL": "http://127.0.0.1:9"}  # no movie API: fail fast
        self.broker = self.worker = None

    def start(self, timeout: float = 180.0) -> None:
        self.broker = start_tansu(self.broker_port, log_path=self.work / "tansu.log")
        log = open(self.work / "worker.log", "ab")
        self.worker = subprocess.Popen([sys.executable, "-m", "recstream.cli", "worker", "-l",
                                        "info"], env=self.env, cwd=ROOT, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.wait(lambda: self.get("/readyz")[0] == 200, timeout, "/readyz")

    def cli(self, *args: str, timeout: float = 1800.0) -> str:
        done = subprocess.run([sys.executable, "-m", "recstream.cli", *args], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"recstream {' '.join(args)} exited {done.returncode}:\n"
                               f"{done.stdout[-2000:]}{done.stderr[-3000:]}")
        return done.stdout

    def get(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 0, b""

    def metric(self, name: str) -> float:
        status, body = self.get("/metrics")
        if status != 200:
            return float("nan")
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker is not None and self.worker.poll() is not None:
                raise RuntimeError(f"worker exited {self.worker.returncode}; see "
                                   f"{self.work / 'worker.log'}")
            if predicate():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")

    def drained(self, produced: int, timeout: float) -> float:
        """Seconds until every produced line is counted, the lag is 0 and effects settle."""
        start = time.monotonic()
        self.wait(lambda: self.metric("recstream_lines_total") >= produced
                  and self.metric("recstream_consumer_lag") == 0, timeout,
                  f"recstream_lines_total >= {produced} and consumer lag 0")
        self.settle("recstream_events_total")
        return time.monotonic() - start

    def settle(self, name: str, quiet: float = 5.0, timeout: float = 600.0) -> None:
        """Until counter ``name`` has not moved for ``quiet`` seconds."""
        last, since = self.metric(name), time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() - since < quiet and time.monotonic() < deadline:
            time.sleep(1.0)
            now = self.metric(name)
            if now != last:
                last, since = now, time.monotonic()

    def retraining(self) -> bool:
        """Whether the worker has a ``recstream train`` child process running now."""
        if self.worker is None:
            return False
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                ppid = next(int(line.split()[1]) for line in status.read_text().splitlines()
                            if line.startswith("PPid:"))
                if ppid != self.worker.pid:
                    continue
                if b"train" in (status.parent / "cmdline").read_bytes().split(b"\0"):
                    return True
            except (OSError, StopIteration, ValueError):
                continue
        return False

    def settle_retrains(self, quiet: float, timeout: float) -> None:
        """Until no retrain has run (counter still, no child) for ``quiet`` seconds: a
        retrain slower than ``quiet`` no longer ends the wait while it runs."""
        last, since = self.metric("recstream_retrains_total"), time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() - since < quiet and time.monotonic() < deadline:
            time.sleep(2.0)
            now = self.metric("recstream_retrains_total")
            if now != last or self.retraining():
                last, since = now, time.monotonic()

    def recommend(self, users: list[int]) -> dict[int, list[str]]:
        def ask(user: int) -> tuple[int, list[str]]:
            status, body = self.get(f"/recommend/{user}")
            if status != 200:
                raise RuntimeError(f"/recommend/{user} answered {status}: {body[:200]!r}")
            return user, [m for m in body.decode().strip().split(",") if m]
        with ThreadPoolExecutor(8) as pool:
            return dict(pool.map(ask, users))

    def close(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        if self.broker is not None:
            stop(self.broker)


def paired(after: dict, before: dict) -> tuple[float, tuple[float, float]]:
    users = sorted(set(after["per_user_recall"]) & set(before["per_user_recall"]))
    diff = np.array([after["per_user_recall"][u] - before["per_user_recall"][u] for u in users])
    return float(diff.mean()), bootstrap_mean_ci(diff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--limit-users", type=int, default=0,
                        help="quick mode: only the first N users (by id)")
    parser.add_argument("--tune", action="store_true",
                        help="tune the references on the validation cut (slower)")
    parser.add_argument("--params", type=Path,
                        help="the validation-chosen params of a bench/live_offline.py --json "
                             "report on the same data set (read when the references are fitted)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--no-wait-retrain", action="store_true",
                        help="ask right after the drain, not after the worker's own retrain")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--drain-timeout", type=float, default=3600.0)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--lock", type=Path,
                        help="hold an exclusive flock on this file (e.g. /work/bench.lock) "
                             "while the service runs only: the offline references after it "
                             "do not depend on speed")
    parser.add_argument("--lists-out", type=Path,
                        help="write the live answers per user (JSON) to compare user by user")
    args = parser.parse_args(argv)
    folder = Path(args.dataset) if Path(args.dataset).is_dir() else None
    name = args.dataset if Path(args.dataset).is_file() else Path(args.dataset).name
    data = load(name, folder)
    if args.limit_users:
        data = data.subset(np.isin(data.users, np.unique(data.users)[:args.limit_users]))
    split = per_user_split(data)
    wanted = split.test_users()
    lines = course_lines(split.train)
    work = Path(tempfile.mkdtemp(prefix="live-quality-"))
    (work / "train.log").write_text("\n".join(lines) + "\n")
    print(f"{args.dataset}: {len(split.train):,} training ratings -> {len(lines):,} lines; "
          f"{len(wanted)} test users; work dir {work}", flush=True)
    service = Service(work, args.partitions)
    movie_api = None
    if not Path(args.dataset).is_file():  # MovieLens: its titles and genres as the movie API
        movie_api = MovieApi(movie_objects(Path(folder or DATA / name)))
        service.env["RECSTREAM_API_URL"] = movie_api.url
    results: dict[str, dict] = {}
    answers: dict[str, dict[int, list[str]]] = {}
    report: dict = {"dataset": args.dataset, "limit_users": args.limit_users,
                    "lines": len(lines)}
    lock = None
    if args.lock:
        import fcntl
        lock = open(args.lock, "a")
        fcntl.flock(lock, fcntl.LOCK_EX)
        report["load_at_lock"] = os.getloadavg()
        print(f"lock {args.lock} held; load {report['load_at_lock']}", flush=True)
    try:
        service.start()
        started = time.monotonic()
        out = service.cli("replay", str(work / "train.log"))
        produced = int(out.split("replayed ", 1)[1].split()[0])
        report["replay_seconds"] = time.monotonic() - started
        report["drain_seconds"] = service.drained(produced, args.drain_timeout)
        report["lines_total"] = service.metric("recstream_lines_total")
        print(f"replayed {produced:,} lines; worker counted {report['lines_total']:,.0f} after "
              f"{report['drain_seconds']:.0f}s more", flush=True)
        if not args.no_wait_retrain:
            # Out of the box the worker retrains by itself (issue #10: by data volume and by
            # time): wait for its retrains to finish before asking (none for 150 s).
            service.wait(lambda: service.metric("recstream_retrains_total") >= 1,
                         args.drain_timeout, "the worker's own retrain")
            service.settle_retrains(quiet=150.0, timeout=args.drain_timeout)
            service.settle("recstream_answers_refreshed_total")
            report["own_retrains"] = service.metric("recstream_retrains_total")
            report["generation_before_train"] = service.metric("recstream_model_generation")
            print(f"the worker's own retrains: {report['own_retrains']:.0f} (generation "
                  f"{report['generation_before_train']:.0f}) after "
                  f"{time.monotonic() - started:.0f}s", flush=True)
        answers = {"live (as replayed)": service.recommend(wanted)}
        results["live (as replayed)"] = score_lists(answers["live (as replayed)"], split)
        print(table(list(results.items()), baseline=""), flush=True)
        if not args.skip_train:
            generation = service.metric("recstream_model_generation")
            out = service.cli("train", "--promote", "--json")
            trained = json.loads(out.strip().splitlines()[-1])
            report["train"] = {k: trained.get(k) for k in ("version", "decision", "promoted",
                                                           "data", "metrics")}
            print(f"train --promote: version {trained.get('version')}, promoted "
                  f"{trained.get('promoted')}, read {trained.get('data')}", flush=True)
            if trained.get("promoted"):
                service.wait(lambda: service.metric("recstream_model_generation") > generation,
                             300, "the worker to swap to the promoted model")
                service.settle("recstream_answers_refreshed_total")
            answers["live after train --promote"] = service.recommend(wanted)
            results["live after train --promote"] = score_lists(
                answers["live after train --promote"], split)
            print(table(list(results.items()), baseline=""), flush=True)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError, IndexError) as exc:
        print(f"live_quality: cannot measure: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.lists_out and answers:
            args.lists_out.write_text(json.dumps(answers))
        service.close()
        if movie_api is not None:
            movie_api.close()
        if lock is not None:
            report["load_at_unlock"] = os.getloadavg()
            print(f"lock released; load {report['load_at_unlock']}", flush=True)
            lock.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.params and args.params.exists():
        params = json.loads(args.params.read_text())["params"]
    else:
        params = {name: (live_refs.tune(name, split) if args.tune else {})
                  for name in live_refs.GRIDS}
    print(f"reference params: {json.dumps(params)}", flush=True)
    refs = [("popularity", score_lists(live_refs.popularity_lists(split.train, wanted), split))]
    for name, fn in live_refs.METHODS.items():
        refs.append((name + " (offline)", score_lists(fn(split.train, wanted, **params[name]),
                                                      split)))
    rows = refs + list(results.items())
    print(table(rows))
    if len(results) == 2:
        mean, (lo, hi) = paired(results["live after train --promote"],
                                results["live (as replayed)"])
        report["train_change_recall"] = {"mean": mean, "ci95": [lo, hi]}
        print(f"train --promote changed live Recall@20 by {mean:+.4f} (paired CI95 "
              f"{lo:+.4f}..{hi:+.4f})")
    if args.json:
        report["scores"] = {n: {k: v for k, v in s.items() if not k.startswith("per_user")}
                            for n, s in rows}
        report["params"] = params
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
