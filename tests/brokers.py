"""Start and stop a real Apache Kafka broker for integration tests.

Plain helpers, not fixtures: conftest wraps them in whatever scope it wants. All the work is
done by ``deploy/kafka/kafka.sh`` (KRaft single node, jars from Maven Central), so a test run
and a developer at a shell get the same broker.

    handle = start_kafka(free_port(), tmp_path_factory.mktemp("kafka"))
    try:
        ...  # handle.bootstrap_servers == "127.0.0.1:<port>", handle.broker_url for Faust
    finally:
        stop_kafka(handle)
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from bench.procs import free_port  # noqa: F401  (re-exported for the integration tests)

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"

# kafka.sh waits 90 s for start-up and 30 s (+ SIGKILL) for stop; leave it room to report.
FETCH_TIMEOUT_S = 600.0
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0


class BrokerError(RuntimeError):
    """kafka.sh failed; the message carries its output (including the broker's log tail)."""


@dataclasses.dataclass(frozen=True)
class KafkaHandle:
    """A running broker started by :func:`start_kafka`."""

    port: int
    controller_port: int
    data_dir: Path
    pid: int

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def broker_url(self) -> str:
        """The form Faust's ``broker=`` setting takes."""
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "kafka.log"


def _run(args: list[str], timeout: float) -> str:
    try:
        done = subprocess.run(
            [str(KAFKA_SH), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ.copy(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"kafka.sh {args[0]} did not finish in {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise BrokerError(
            f"kafka.sh {' '.join(args)} exited {done.returncode}\n"
            f"{done.stdout}{done.stderr}".rstrip()
        )
    return done.stdout


def fetch_kafka() -> Path:
    """Resolve the pinned Kafka jars into the cache (instant once cached); return the cache dir."""
    return Path(_run(["fetch"], FETCH_TIMEOUT_S).strip().splitlines()[-1])


def start_kafka(
    port: int, data_dir: str | os.PathLike[str], *, controller_port: int | None = None
) -> KafkaHandle:
    """Start a single-node broker on 127.0.0.1:``port`` with its state in ``data_dir``.

    Returns once the broker serves. Reusing a ``data_dir`` keeps its topics and offsets.
    """
    fetch_kafka()
    data = Path(data_dir).resolve()
    if controller_port is None:
        controller_port = free_port()
        while controller_port == port:
            controller_port = free_port()
    _run(
        [
            "start",
            "--port", str(port),
            "--controller-port", str(controller_port),
            "--data-dir", str(data),
        ],
        START_TIMEOUT_S,
    )
    pid = int((data / "kafka.pid").read_text().strip())
    return KafkaHandle(port=port, controller_port=controller_port, data_dir=data, pid=pid)


def stop_kafka(handle: KafkaHandle) -> None:
    """Stop the broker (SIGTERM, then SIGKILL after 30 s). Safe to call twice."""
    _run(["stop", "--data-dir", str(handle.data_dir)], STOP_TIMEOUT_S)


def kafka_running(handle: KafkaHandle) -> bool:
    """Whether the broker behind ``handle`` is still up (per kafka.sh status)."""
    try:
        _run(["status", "--data-dir", str(handle.data_dir)], STOP_TIMEOUT_S)
    except BrokerError:
        return False
    return True
