"""Process helpers the benches share: a free loopback port, a process's CPU time, its weight."""
from __future__ import annotations

import os
import socket
import sys


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def autogroup_nice(pid: int, nice: int) -> None:
    """Give ``pid``'s scheduler autogroup (its session) the weight of ``nice``.

    With ``kernel.sched_autogroup_enabled`` every session gets an equal share of the CPU
    whatever its processes' nice values, so a shared box's ``nice -n 19`` jobs in their own
    sessions still take most of it from a bench; this weights the bench's session and the
    broker's (a session of its own) as a CPU policy means them to be.
    """
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError as exc:
        print(f"autogroup nice not set for {pid}: {exc}", file=sys.stderr)
