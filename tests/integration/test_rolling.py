"""A rolling restart of two workers drops no request.

Graders reach the workers through a front that retries the other worker when
one refuses the connection (deploy/nginx: ``proxy_next_upstream error``); the
client below does exactly that.  Each worker answers for every user: its own
from its tables, the others' by forwarding to their partition owner, with the
popularity fallback if the owner does not answer within ``route_timeout_s``.
While one worker restarts (and the other takes over its partitions) every
request must still get a status-200 line of valid ids within 600 ms.
"""
from __future__ import annotations

import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.conftest import load_scale, produce, wait_for
from tests.integration.test_pipeline import sample_lines

DEADLINE_S = 0.6


ATTEMPT_TIMEOUT_S = 0.25  # deploy/nginx/recstream.conf: proxy_read_timeout


def attempt_timeout() -> float:
    """nginx's per-attempt timeout, stretched like every wait here when the box is loaded.

    The test is about requests dropped by a rolling restart; on a 2-core box running two
    workers, a broker and other jobs, an answer can take over 0.25 s for want of CPU alone.
    """
    return ATTEMPT_TIMEOUT_S * load_scale()


class Front:
    """deploy/nginx's policy: round robin; on an error, a timeout or a 503 the next one, once."""

    def __init__(self, workers) -> None:
        self.workers = workers
        self.results: list[tuple[int, str, float, str]] = []  # status, body, seconds, who
        self.stop = threading.Event()
        self.phase = "both up"

    def ask(self, i: int, user: int) -> None:
        started = time.perf_counter()
        status, body, who = 0, "", ""
        for attempt in range(2):
            worker = self.workers[(i + attempt) % len(self.workers)]
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{worker.port}/recommend/{user}",
                        timeout=attempt_timeout()) as r:
                    status, body = r.status, r.read().decode()
                who = f"{self.phase}: user {user} via worker {(i + attempt) % len(self.workers)}"
                break
            except (urllib.error.URLError, ConnectionError, OSError):  # incl. HTTP 503, timeout
                continue
        self.results.append((status, body, time.perf_counter() - started,
                             who or f"{self.phase}: user {user} unanswered"))

    def run(self, users: list[int]) -> None:
        i = 0
        while not self.stop.is_set():
            self.ask(i, users[i % len(users)])
            i += 1
            time.sleep(0.01)


@pytest.mark.parametrize("broker", ["tansu"], indirect=True)
def test_rolling_restart_of_two_workers_drops_no_request(make_worker):
    lines = sample_lines()
    a = make_worker("a")
    b = make_worker("b")
    produce(make_worker.broker, make_worker.topic, lines)
    wait_for(lambda: a.metric("recstream_lines_total") + b.metric("recstream_lines_total")
             >= len(lines), 120, "both workers to ingest the sample")
    users = sorted({int(line.split(",")[1]) for line in lines[:3000]
                    if line.split(",")[1].isdigit()})[:200]
    for worker in (a, b):  # only movies the movie API confirmed are served (issue #14)
        wait_for(lambda w=worker: bool(w.get(f"/recommend/{users[0]}")[1].strip()), 60,
                 "confirmed movies in every worker's answers")
    front = Front([a, b])
    client = threading.Thread(target=front.run, args=(users,), daemon=True)
    client.start()
    try:
        time.sleep(1.0)
        for name, worker in (("b", b), ("a", a)):  # one at a time, ready in between
            front.phase = f"{name} stopping"
            worker.stop()
            front.phase = f"{name} down"
            time.sleep(1.0)
            front.phase = f"{name} starting"
            worker.start()
            front.phase = f"{name} back"
            time.sleep(1.0)
    finally:
        front.stop.set()
        client.join(10)
    assert len(front.results) > 100
    failed = [r for r in front.results if r[0] != 200 or not r[1]]
    slow = [r for r in front.results if r[2] > DEADLINE_S * load_scale()]
    phases = sorted({r[3].split(":")[0] for r in failed})
    assert not failed, f"{len(failed)} failed answers in phases {phases}, e.g. {failed[:3]}"
    assert not slow, f"{len(slow)} answers over 600 ms, e.g. {slow[:3]}"
    for _, body, _, _ in front.results:
        ids = body.split(",")
        assert 1 <= len(ids) <= 20 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("broker", ["tansu"], indirect=True)
def test_a_stopping_worker_refuses_new_connections_at_once(make_worker):
    """SIGTERM closes the listening socket first: a front retries elsewhere at once.

    Faust stops its web server last, after the consumer, tables and agents (~2 s with
    tables to close); until then the port accepted connections nothing answered in time.
    """
    worker = make_worker("a")
    lines = sample_lines()  # tables of some size: closing them is what takes the time
    produce(make_worker.broker, make_worker.topic, lines)
    wait_for(lambda: worker.metric("recstream_lines_total") >= len(lines), 120, "ingest")
    worker.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + attempt_timeout()  # within one attempt of the front
    refused_at = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", worker.port), timeout=0.2):
                pass
        except ConnectionRefusedError:
            refused_at = time.monotonic()
            break
        except OSError:
            pass
        time.sleep(0.01)
    assert refused_at is not None, "the stopping worker still accepted connections"
    assert worker.proc.wait(30) == 0, worker.tail()
