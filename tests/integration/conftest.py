"""Real brokers and real worker processes for the integration tests.

``broker`` is parametrised over the embedded Tansu broker and a single-node
Apache Kafka (KRaft) started from ``deploy/kafka/kafka.sh``; both are started
here and stopped at the end of the session.  ``Worker`` runs ``recstream
worker`` as a child process exactly as an operator would, and can be killed
with SIGKILL to test recovery.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest

from recstream.broker import start_tansu, stop
from tests.brokers import free_port, start_kafka, stop_kafka

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "integration-token"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", params=["tansu", "kafka"])
def broker(request, tmp_path_factory) -> str:
    """Broker URL (scheme://host:port) of a running broker of each kind."""
    port = free_port()
    if request.param == "tansu":
        proc = start_tansu(port, log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
        yield f"tansu://127.0.0.1:{port}"
        stop(proc)
    else:
        handle = start_kafka(port, tmp_path_factory.mktemp("kafka"))
        yield f"kafka://{handle.bootstrap_servers}"
        stop_kafka(handle)


def hostport(broker_url: str) -> str:
    return broker_url.split("://", 1)[1]


class Worker:
    """One ``recstream worker`` child process with its own data dir and web port."""

    def __init__(self, broker: str, app_id: str, topic: str, data_dir: Path, log: Path,
                 api_url: str = "http://127.0.0.1:9") -> None:
        self.port = free_port()
        self.log_path = log
        self.env = {**os.environ, "RECSTREAM_BROKER": broker,
                    "RECSTREAM_APP_ID": app_id, "RECSTREAM_TOPIC": topic,
                    "RECSTREAM_WEB_PORT": str(self.port), "RECSTREAM_WEB_HOST": "127.0.0.1",
                    "RECSTREAM_DATA_DIR": str(data_dir), "RECSTREAM_PARTITIONS": "4",
                    # one registry per test, shared by its workers (a shared volume)
                    "RECSTREAM_REGISTRY_DIR": str(data_dir.parent / "registry"),
                    "RECSTREAM_OPERATOR_TOKEN": TOKEN,
                    "RECSTREAM_CANONICAL_URL": f"http://127.0.0.1:{self.port}",
                    "RECSTREAM_API_URL": api_url}  # default: no API, fetches fail fast
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> "Worker":
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "recstream.cli", "worker", "-l",
                                          "info"], env=self.env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        timeout = round(timeout * load_scale(), 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            try:
                if self.get("/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def request_id(self, path: str) -> str:
        """The ``X-Request-Id`` of a 200 answer to ``path``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            assert response.status == 200
            return response.headers.get("X-Request-Id", "")

    def metric(self, name: str) -> float:
        """Sum of every sample of ``name`` (all label sets) on /metrics."""
        _, body = self.get("/metrics")
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    def user(self, user: int) -> dict:
        status, body = self.get(f"/ops/users/{user}", TOKEN)
        assert status == 200, body
        return orjson.loads(body)

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def movie_api():
    """The real course movie objects behind a movie API (only confirmed movies are served)."""
    from tests.integration.movie_api import MovieApi

    api = MovieApi()
    yield api
    api.close()


@pytest.fixture
def make_worker(broker, tmp_path, movie_api):
    """Factory: ``make_worker(name)`` → a started worker; all stopped at teardown."""
    workers: list[Worker] = []
    run = uuid.uuid4().hex[:8]
    app_id, topic = f"it-{run}", f"movielog-{run}"

    def factory(data_name: str = "data") -> Worker:
        worker = Worker(broker, app_id, topic, tmp_path / data_name,
                        tmp_path / f"worker-{len(workers)}.log", api_url=movie_api.url)
        workers.append(worker)
        return worker.start()

    factory.topic = topic
    factory.app_id = app_id
    factory.broker = broker
    yield factory
    for worker in workers:
        worker.stop()


def produce(broker: str, topic: str, lines: list[str]) -> int:
    from recstream.ops.replay import replay_file
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        return asyncio.run(replay_file([hostport(broker)], topic, 4, Path(f.name)))
    finally:
        os.unlink(f.name)


def load_scale() -> float:
    """How much longer waits may take on this box now: the run-queue per core, 1..4.

    The broker, worker and test share the machine with whatever else runs (CI on a shared box,
    other test sessions); a wait that is generous on an idle 2-core machine times out at a load
    of 20.  Scaling only lengthens the wait for a condition that has not come yet, so a passing
    test is never slowed; a failing one reports the scaled timeout it used.
    """
    return min(4.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3):
    timeout = round(timeout * load_scale(), 1)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
