"""The ``recstream`` command.

* ``recstream run`` — the main job: the embedded broker (unless
  ``RECSTREAM_BROKER`` names one), one worker serving on :8082 and the
  platform simulator on :8080, supervised together; Ctrl-C stops all three.
* ``recstream broker`` — the embedded Tansu broker alone, in the foreground.
* ``recstream sim …`` — the platform simulator (see ``recstream sim --help``).
* ``recstream evaluate …`` — offline evaluation (see ``--help``).
* ``recstream compare …`` — the model comparison report (docs/model-comparison.md).
* ``recstream models list|show|promote|rollback|decisions`` — the model registry
  (the Faust command ``registry``: Faust's own ``models`` lists record types).
* anything else is the Faust CLI of the app: ``worker``, ``replay``, ``train``,
  ``provenance``, ``tables``…
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from recstream.settings import Settings, SettingsError

DEMO_RETRAIN_EVERY_H = 0.07  # ~4 minutes
DEFAULT_BACKFILL_DAYS = 30.0  # the simulator's past in `recstream run` (issue #10)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"recstream: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    if command == "run":
        return run(argv[1:])
    if command == "broker":
        return broker()
    if command == "sim":
        from recstream.sim.cli import main as sim_main
        return sim_main(argv[1:])
    if command == "evaluate":
        from recstream.ops.evaluate import main as evaluate_main
        return evaluate_main(argv[1:])
    if command == "compare":
        from recstream.ops.compare import main as compare_main
        return compare_main(argv[1:])
    if command == "models":  # Faust's own `models` lists record types; ours is `registry`
        argv[0] = "registry"
    settings = _settings()  # fail early, with one clear line, on bad configuration
    if not any(a in ("-L", "--loop") or a.startswith("--loop=") for a in argv):
        if settings.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            print("recstream: RECSTREAM_EVENT_LOOP=uvloop but uvloop is not installed "
                  "(pip install uvloop, or use aio)", file=sys.stderr)
            return 2
        os.environ.setdefault("FAUST_LOOP", settings.event_loop)  # read on `import faust`
    from recstream.app import app
    sys.argv = ["recstream", *argv]
    app.main()
    return 0


def broker() -> int:
    from recstream.broker import start_tansu, stop
    # Ctrl-C must stop it even when SIGINT came ignored from the parent (a non-interactive
    # shell's `recstream broker &`, or a test session that ignored it): an ignored
    # disposition is inherited and Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    settings = _settings()
    proc = start_tansu(settings.embedded_broker_port)
    print(f"tansu broker on 127.0.0.1:{settings.embedded_broker_port} (memory only; "
          "Ctrl-C or SIGTERM stops it)", flush=True)

    def terminate(*_):
        raise KeyboardInterrupt  # unwinds to the finally below, which stops Tansu

    signal.signal(signal.SIGTERM, terminate)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)


def sim_argv(extra: list[str]) -> list[str]:
    """The simulator's arguments: a 30-day past first (issue #10) unless the caller set one.

    The course platform's stream carries months of history; without a past almost every
    request comes from a user the worker never saw.  The past is written at full speed
    (recstream/sim/past.py) while the worker already answers with the fallback.
    """
    if any(a == "--backfill-days" or a.startswith("--backfill-days=") for a in extra):
        return list(extra)
    return ["--backfill-days", f"{DEFAULT_BACKFILL_DAYS:g}", *extra]


def run(extra: list[str]) -> int:
    """Broker + worker + simulator, as child processes that stop together."""
    from recstream.broker import start_tansu, stop, wait_for_port
    settings = _settings()
    log_dir = Path(settings.data_dir).parent / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []
    broker_proc = None
    env = dict(os.environ)
    if not settings.broker:
        broker_proc = start_tansu(settings.embedded_broker_port,
                                  log_path=log_dir / "tansu.log")
        print(f"recstream: embedded Tansu broker on 127.0.0.1:{settings.embedded_broker_port} "
              "(memory only)", flush=True)
        env["RECSTREAM_BROKER"] = settings.broker_url
    # The demo retrains every ~4 minutes (the stream clock runs 60x faster) so that
    # promotions and swaps happen while you watch; production sets its own cadence.
    env.setdefault("RECSTREAM_RETRAIN_EVERY_H", str(DEMO_RETRAIN_EVERY_H))
    print(f"recstream: retraining every {float(env['RECSTREAM_RETRAIN_EVERY_H']) * 60:.1f} min "
          f"(RECSTREAM_RETRAIN_EVERY_H); registry in {settings.registry_dir}", flush=True)
    exe = [sys.executable, "-m", "recstream.cli"]
    stopping = False

    def stop_all(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    try:
        worker = subprocess.Popen([*exe, "worker", "-l", "info"], env=env)
        children.append(worker)
        wait_for_port("127.0.0.1", settings.web_port, 120, worker)
        wait_until_ready(f"http://127.0.0.1:{settings.web_port}/readyz", 120, worker)
        print(f"recstream: worker serving http://127.0.0.1:{settings.web_port}/recommend/<user>",
              flush=True)
        sim = subprocess.Popen([*exe, "sim", *sim_argv(extra)], env=env)
        children.append(sim)
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.5)
        failed = [c for c in children if c.poll() not in (None, 0)]
        return failed[0].returncode if failed else 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in reversed(children):
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        if broker_proc is not None:
            stop(broker_proc)


def wait_until_ready(url: str, timeout: float, proc: subprocess.Popen) -> None:
    """Until ``/readyz`` answers 200: the platform's traffic starts when we can answer it."""
    import urllib.error
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"recstream: the worker exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"recstream: the worker was not ready after {timeout:.0f}s ({url})")


if __name__ == "__main__":
    raise SystemExit(main())
