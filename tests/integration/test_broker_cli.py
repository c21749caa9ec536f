"""``recstream broker`` must take its Tansu child with it, however it is stopped.

The port left taken by an orphaned broker made the next ``make run`` fail with
"127.0.0.1:9092 is already in use".
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from recstream.broker import port_open, wait_for_port
from tests.brokers import free_port


def _start_broker_cli(port: int, *, sigint_ignored: bool = False) -> subprocess.Popen:
    env = {**os.environ, "RECSTREAM_EMBEDDED_BROKER_PORT": str(port)}
    env.pop("RECSTREAM_BROKER", None)
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    proc = subprocess.Popen([sys.executable, "-m", "recstream.cli", "broker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=ignore)
    wait_for_port("127.0.0.1", port, 30, proc)
    return proc


def _released(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_open("127.0.0.1", port):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=lambda s: s.name)
def test_stopping_the_broker_command_stops_tansu(sig):
    port = free_port()
    proc = _start_broker_cli(port)
    try:
        proc.send_signal(sig)
        proc.wait(15)
        assert _released(port), f"Tansu still listens on :{port} after {sig.name} to its parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["pkill", "-f", f"tcp://127.0.0.1:{port}"], check=False)


def test_ctrl_c_stops_the_broker_command_even_when_sigint_came_ignored():
    """A non-interactive shell's `recstream broker &` starts it with SIGINT ignored (so did a
    CI run started in the background: its pytest, and every child, inherited the ignored
    SIGINT); Python then installs no KeyboardInterrupt handler, and SIGINT did nothing."""
    port = free_port()
    proc = _start_broker_cli(port, sigint_ignored=True)
    try:
        time.sleep(0.5)  # past start-up: the command's own handler is in place
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        assert _released(port), f"Tansu still listens on :{port} after SIGINT to its parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["pkill", "-f", f"tcp://127.0.0.1:{port}"], check=False)
