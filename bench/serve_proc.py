"""bench/serve.py's process plumbing: ports, /proc readings, metrics, the measured client run.

Shared by bench/serve.py's roles and by bench/million.py and bench/scale.py (through
``serve``'s re-exports).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.procs import cpu_seconds, free_port  # noqa: F401 (re-exported to serve.py's users)

SERVE = Path(__file__).resolve().with_name("serve.py")  # every subprocess role runs it
BACKGROUND: list = []  # tasks and processes kept alive until the run ends


# -- helpers -------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of ``pid`` in MB."""
    text = open(f"/proc/{pid}/status").read()
    return {k: int(text.split(k + ":")[1].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` to ``cpu`` (sched_setaffinity is per thread)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric_sum(text: str, name: str) -> dict[str, float]:
    """``name{label="x"} v`` lines → {x: v} (first label value), summed per value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = re.search(r'="([^"]*)"', line)
            key = found.group(1) if found else ""
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def read_ready(proc: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"server exited ({proc.poll()}) before it was ready")
        if line.startswith("READY "):
            return json.loads(line[6:])
    raise SystemExit("server not ready in time")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the measured client run -----------------------------------------------------------------------
def measure(args, port: int, server_pid: int, ids: Path) -> dict:
    """Run the client against ``port``; → its numbers plus the server's CPU over the run."""
    cmd = [sys.executable, str(SERVE), "--role", "client", "--port", str(port), "--ids", str(ids),
           "--rate", str(args.rate), "--duration", str(args.duration), "--warmup",
           str(args.warmup), "--timeout", str(args.timeout), "--max-user-id",
           str(args.max_user_id), "--seed", str(args.seed)] + ([] if args.pin else ["--no-pin"])
    cpu0, t0, busy0 = cpu_seconds(server_pid), time.monotonic(), busy_jiffies()
    profiler = None
    if args.profile:
        profiler = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(server_pid),
             "-f", "raw", "-r", "200", "-o", args.profile], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=args.duration + args.warmup + 300)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
    found = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if not found:
        raise SystemExit("client failed:\n" + out.stderr[-3000:])
    result = json.loads(found.group(1))
    wall = time.monotonic() - t0
    result["server_cpu_share"] = round((cpu_seconds(server_pid) - cpu0) / wall, 2)
    busy1 = busy_jiffies()  # noise check: other work on the box shows as busy cores
    result["machine_busy_cores"] = round(
        (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1) * (os.cpu_count() or 1), 2)
    result["loadavg_1m"] = float(open("/proc/loadavg").read().split()[0])
    return result


def spawn_server(args, role: str, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SERVE), "--role", role] + extra,
                            stdout=subprocess.PIPE, text=True)


def run_baseline(args, ids: Path) -> dict:
    server = spawn_server(args, "const-server", [])
    try:
        port = read_ready(server, 60)["port"]
        if args.pin and os.cpu_count() >= 2:
            pin(server.pid, 0)
        saved, args.duration = args.duration, args.baseline_duration
        try:
            return measure(args, port, server.pid, ids)
        finally:
            args.duration = saved
    finally:
        stop(server)


