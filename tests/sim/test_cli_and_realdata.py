"""The entry point end to end (file output, no Kafka) and the real-data worlds."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import orjson
import pytest

from recstream.parsing import parse_line
from recstream.records import Rejected
from recstream.sim.cli import main
from recstream.sim.options import SimOptions
from recstream.sim.sources import build_world

from conftest import data_path


def test_import_has_no_side_effects():
    code = ("import sys, threading; import recstream.sim.cli, recstream.sim.traffic, recstream.sim.api;"
            "assert threading.active_count() == 1; assert 'faust' not in sys.modules, 'sim must not need faust'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_main_writes_parsable_file_and_truth(tmp_path):
    out, truth = tmp_path / "movielog.txt", tmp_path / "truth.jsonl"
    rc = main(["--users", "2000", "--movies", "800", "--fast", "--duration", "1800", "--no-kafka", "--no-api",
               "--recommender", "builtin:random", "--out", str(out), "--truth", str(truth), "--quiet"])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert len(lines) > 200 and not any(isinstance(parse_line(l), Rejected) for l in lines)
    records = [orjson.loads(l) for l in truth.read_text().splitlines()]
    assert records[0]["kind"] == "world" and any(r["kind"] == "session" for r in records)


def test_bad_option_is_a_clear_error(capsys):
    assert main(["--rate", "0", "--no-kafka"]) == 2
    assert "rate must be > 0" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["ml-100k", "ml-latest-small"])
def test_movielens_world_reenacts_real_tastes(name):
    path = data_path("movielens", name)
    world = build_world(SimOptions(movielens=str(path), seed=1))
    assert world.source == f"movielens:{name}"
    # True ratings fitted to the real ones: users' favourite real movies score above their worst.
    if name == "ml-100k":
        real = np.loadtxt(path / "u.data", dtype=np.int64)
        u = np.array([world.population.index_of(int(x)) for x in real[:, 0]])
        i = real[:, 1] - 1
    else:
        import csv
        with open(path / "ratings.csv", newline="") as fh:
            rows = list(csv.reader(fh))[1:]
        ids = {}
        with open(path / "movies.csv", newline="", encoding="utf-8") as fh:
            for k, row in enumerate(list(csv.reader(fh))[1:]):
                ids[int(row[0])] = k
        real = np.array([[int(r[0]), ids[int(r[1])], float(r[2]) * 10] for r in rows], dtype=np.int64)
        u = np.array([world.population.index_of(int(x)) for x in real[:, 0]])
        i = real[:, 1]
    pred = np.array([world.taste.ratings(int(a), np.array([b]))[0] for a, b in zip(u[:5000], i[:5000])])
    assert np.corrcoef(pred, real[:5000, 2])[0, 1] > 0.6


def test_course_json_world_serves_real_objects():
    movies = data_path("mlip-stream-samples", "movies.jsonl")
    users = data_path("mlip-stream-samples", "users.jsonl")
    world = build_world(SimOptions(catalog=str(movies), users_file=str(users), seed=1))
    assert "the+shawshank+redemption+1994" in world.catalog.index or len(world.catalog) > 15_000
    i = world.population.index_of(21303)
    assert world.user_json(i) == {"user_id": 21303, "age": 27, "occupation": "self-employed", "gender": "F"}
    assert world.catalog.raw_json[0].startswith('{"id":"twin+dragons+1992"')
