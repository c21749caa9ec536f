"""``recstream train`` on a real broker: from the workers' state and from the raw log.

A worker builds its tables from real movielog lines; the trainer then runs as its own
process (never opening the worker's RocksDB), stores a version with its provenance,
promotes it, announces it, and reads the same ratings from the raw topic.  Tansu only:
the reads are plain aiokafka, the same on both brokers, and CI time is dear.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
import urllib.request
import uuid

import pytest

from models.registry import Registry
from recstream.modelupdates import latest_announced
from recstream.parsing import parse_line
from recstream.records import Rating
from recstream.settings import Settings
from recstream.ops.training_data import changelog_topic, read_changelog
from tests.conftest import sample_path
from tests.integration.conftest import ROOT, Worker, produce, wait_for

WINDOW_H = "100000"  # the samples span 2022-2025: take them all


def training_lines() -> list[str]:
    """~450 real lines (ratings, watches, recommendation outcomes) + a few made-up ones."""
    lines = sample_path("movielog_lines.txt").read_text(encoding="utf-8").split("\n")
    chosen = lines[:300] + lines[20254:20274] + lines[20300:20430]
    first = lines[0]  # 2025-02-15T01:49:06,52141,GET /rate/criminal+2004=4
    user = first.split(",")[1]
    return chosen + [
        f"2025-02-15T03:00:00,{user},GET /rate/criminal+2004=1",  # newer: wins
        f"2025-02-15T02:00:00,{user},GET /rate/criminal+2004=5",  # late and older: ignored
        first, first,                                             # redelivered
    ]


def expected_ratings(lines: list[str]) -> dict[tuple[int, str], int]:
    """The oracle: the latest rating per (user, movie) by event time."""
    held: dict[tuple[int, str], tuple[float, int]] = {}
    for line in lines:
        rec = parse_line(line)
        if isinstance(rec, Rating):
            key = (rec.user, rec.movie)
            if key not in held or rec.time >= held[key][0]:
                held[key] = (rec.time, rec.rating)
    return {key: rating for key, (_, rating) in held.items()}


def ratings_of(histories) -> dict[tuple[int, str], int]:
    return {(user, movie): entry[0] for user, history in histories.items()
            for movie, entry in history.ratings.items()}


def train(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recstream.cli", "train", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("broker", ["tansu"], indirect=True)
def test_train_promotes_from_state_and_reads_the_same_ratings_from_the_log(broker, tmp_path,
                                                                           movie_api):
    run = uuid.uuid4().hex[:8]
    worker = Worker(broker, f"it-{run}", f"movielog-{run}", tmp_path / "data",
                    tmp_path / "worker.log", api_url=movie_api.url)  # confirmed movies only
    worker.env["RECSTREAM_REGISTRY_DIR"] = str(tmp_path / "models")
    # This test is about the als path and its reads; the sample has few holdout users.
    worker.env["RECSTREAM_RETRAIN_MODEL"] = "als"
    worker.env["RECSTREAM_GATE_MIN_USERS"] = "5"
    settings = Settings.from_env(worker.env)
    lines = training_lines()
    oracle = expected_ratings(lines)
    assert oracle[(52141, "criminal+2004")] == 1
    worker.start()
    try:
        produce(broker, settings.topic, lines)
        wait_for(lambda: worker.metric("recstream_lines_total") >= len(lines), 120,
                 "the worker to apply every line")
        wait_for(lambda: ratings_of(asyncio.run(read_changelog(settings, None))[0]) == oracle,
                 60, "the user_history changelog to hold every rating")

        stores = sorted(p.name for p in (tmp_path / "data").rglob("*.db"))
        assert stores
        done = train(worker.env, "--source", "state", "--window-hours", WINDOW_H, "--promote",
                     "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        # Same env as the worker, yet its RocksDB stores are left alone (read-only trainer).
        assert sorted(p.name for p in (tmp_path / "data").rglob("*.db")) == stores
        assert not list((tmp_path / "data").rglob("clean-shutdown"))
        assert "ALS iteration 10/10" in done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        registry = Registry(tmp_path / "models")
        manifest = registry.manifest(report["version"])
        offsets = manifest["topic_offsets"][changelog_topic(settings)]
        assert sorted(offsets) == ["0", "1", "2", "3"]
        assert sum(p["end"] - p["start"] for p in offsets.values()) >= len({u for u, _ in oracle})
        assert manifest["window"]["hours"] == float(WINDOW_H)
        assert manifest["window"]["end_utc"] == "2025-02-15T03:00:00Z"
        assert manifest["data_hash"].startswith("sha256:")
        assert manifest["code_version"].startswith(("git:", "recstream=="))
        assert manifest["data"]["ratings"] == len(oracle)
        assert manifest["data"]["pseudo_ratings"] > 0  # completed watches in the 2022 lines
        metrics = manifest["metrics"]
        assert metrics["n_test"] > 0 and metrics["rmse"] is not None
        assert metrics["holdout"]["fraction"] == 0.1 and metrics["serving"] is None
        assert report["promoted"] and registry.serving()["version"] == report["version"]
        assert asyncio.run(latest_announced(settings))["version"] == report["version"]
        assert worker.proc.poll() is None and worker.get("/readyz")[0] == 200
        check_swap_and_provenance(worker, settings, report, manifest)

        from_log = train(worker.env, "--source", "movielog", "--window-hours", WINDOW_H,
                         "--json")
        assert from_log.returncode == 0, from_log.stderr[-3000:]
        log_report = json.loads(from_log.stdout.strip().splitlines()[-1])
        assert log_report["data"]["ratings"] == len(oracle)
        assert log_report["data"]["ratings_hash"] == report["data"]["ratings_hash"]
        read = log_report["topic_offsets"][settings.topic]
        # every line, plus the platform outcome line check_swap_and_provenance emulated
        assert sum(p["end"] - p["start"] for p in read.values()) == len(lines) + 1
        assert log_report["metrics"]["serving"]["version"] == report["version"]
        assert not log_report["promoted"] and registry.serving()["version"] == report["version"]

        empty = train({**worker.env, "RECSTREAM_APP_ID": f"empty-{run}"}, "--json")
        assert empty.returncode != 0 and empty.stdout == ""
        assert empty.stderr.strip().splitlines()[-1].startswith(
            "recstream train: no ratings or completed watches in ")
    finally:
        worker.stop()


def check_swap_and_provenance(worker: Worker, settings: Settings, report: dict,
                              manifest: dict) -> None:
    """The worker swaps to the promoted version; an answer traces back to its data and code."""
    version = report["version"]
    wait_for(lambda: worker.metric("recstream_model_generation") == 1, 60,
             "the worker to swap to the promoted model")
    assert worker.metric(f'recstream_model_info{{version="{version}"}}') == 1
    user = 52141
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/recommend/{user}",
                                timeout=5) as response:
        request_id = response.headers["X-Request-Id"]
        line = response.read().decode()
    assert line and request_id

    def provenance(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "recstream.cli", "provenance", *args],
                              env=worker.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout[done.stdout.index("{"):])

    found = wait_for(lambda: provenance(request_id)["served"], 30,
                     "the answer's provenance record")
    assert found["movies"] == line.split(",") and found["user"] == user
    assert found["model_version"] == version and found["generation"] == 1
    # The platform logs its outcome line on the stream's clock; emulate it.
    at = found["stream_time"]
    stamp = datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S")
    outcome = (f"{stamp},{user},recommendation request 127.0.0.1:{worker.port}, status 200, "
               f"result: {', '.join(line.split(','))}, 12 ms")
    produce(worker.env["RECSTREAM_BROKER"], settings.topic, [outcome])
    traced = provenance("--user", str(user), "--at", stamp)
    assert traced["request_id"] == request_id
    assert traced["outcome"]["line"] == outcome
    model = traced["model"]
    assert model["version"] == version
    assert model["data_hash"] == manifest["data_hash"]
    assert model["code_version"] == manifest["code_version"]
    assert model["topic_offsets"] == manifest["topic_offsets"]
    assert model["hyperparameters"] == manifest["hyperparameters"]
    assert model["promotions"][-1]["action"] == "promote"
