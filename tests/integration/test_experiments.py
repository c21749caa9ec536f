"""Experiment lifecycle on real brokers: start → every answer labelled → ramp → stop."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from recstream.experiments import parse_label
from models.experiments.spec import ExperimentSpec
from tests.integration.conftest import ROOT, hostport, produce, wait_for
from tests.integration.test_pipeline import sample_lines


def experiment(worker, *args: str) -> dict | list:
    out = subprocess.run([sys.executable, "-m", "recstream.cli", "experiment", *args],
                         env=worker.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def labels(broker: str, app_id: str, since: float = 0.0) -> list[tuple[int, str]]:
    """(user, arm label) of the answers published after ``since`` (wall clock), in time order."""
    from tests.integration.test_pipeline import consume_all
    bodies = [json.loads(v) for v in consume_all(hostport(broker), f"{app_id}-recommendations")]
    return [(b["user"], b["arm"]) for b in sorted(bodies, key=lambda b: b["time"])
            if b["time"] > since]


def test_experiment_lifecycle(make_worker):
    worker = make_worker()
    lines = sample_lines()
    produce(make_worker.broker, make_worker.topic, lines)
    wait_for(lambda: worker.metric("recstream_lines_total") >= len(lines), 180, "ingest")
    started = experiment(worker, "start", "it-cost", "--arm", "control=baseline",
                         "--arm", "cheap=cost:1.0")
    spec = ExperimentSpec.from_json(json.dumps(started))
    assert spec.version == 1 and spec.running
    users = list(range(1, 60))

    def all_labelled() -> bool:
        since = time.time()
        for u in users:
            worker.get(f"/recommend/{u}")
        got = [parse_label(a).get("it-cost")
               for _, a in labels(make_worker.broker, make_worker.app_id, since)]
        return len(got) == len(users) and None not in got

    wait_for(all_labelled, 60, "answers labelled with the experiment", interval=1.0)
    seen = {u: parse_label(a)["it-cost"] for u, a in labels(make_worker.broker, make_worker.app_id)
            if "it-cost" in parse_label(a)}
    assert seen and all(arm == spec.allocation.arm_of(u) for u, arm in seen.items())
    status = experiment(worker, "status", "it-cost")
    assert status[0]["version"] == 1

    ramped = experiment(worker, "ramp", "it-cost", "--exposure", "0.5")
    assert ramped["version"] == 2 and ramped["exposure"] == 0.5
    stopped = experiment(worker, "stop", "it-cost")
    assert stopped["state"] == "stopped" and stopped["version"] == 3

    def unlabelled_again() -> bool:
        since = time.time()
        worker.get("/recommend/1")
        fresh = labels(make_worker.broker, make_worker.app_id, since)
        return fresh and fresh[-1][1] == ""

    wait_for(unlabelled_again, 60, "answers unlabelled after stop", interval=1.0)
