"""``recstream compare --quick``: the report and its plots are produced, well-formed, and
the numbers in them are sane on planted data."""
from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from models import datasets
from recstream import cli
from recstream.ops import compare as compare_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("compare") / "docs" / "model-comparison.md"
    assert cli.main(["compare", "--quick", "--out", str(out)]) == 0
    return out, out.read_text(encoding="utf-8")


def table(text: str) -> dict[str, dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] in compare_cli.MODELS:
            rows[cells[0]] = dict(zip(header, cells))
    return rows


def number(cell: str) -> float | None:
    cell = cell.replace("≤", "").strip()
    return None if cell == "–" else float(cell)


@pytest.mark.slow  # real data or a full report: more than a few seconds
def test_pngs_are_written_and_well_formed(report):
    out, text = report
    for key in compare_cli.PLOTS:
        path = out.parent / "img" / f"compare-{key}.png"
        blob = path.read_bytes()
        assert blob[:8] == PNG_SIGNATURE
        assert blob[12:16] == b"IHDR"
        width, height = struct.unpack(">II", blob[16:24])
        assert width >= 400 and height >= 300
        assert len(blob) > 10_000  # bars, labels and text, not an empty canvas
        assert blob.rstrip(b"\0").endswith(b"IEND\xaeB`\x82")
        assert f"](img/compare-{key}.png)" in text


@pytest.mark.slow  # real data or a full report: more than a few seconds
def test_report_has_every_model_definition_and_machine_fact(report):
    _, text = report
    rows = table(text)
    assert list(rows) == list(compare_cli.MODELS)
    for heading in ("### Accuracy", "### Training cost", "### Inference cost", "### Model size"):
        section = text.split(heading, 1)[1].split("###", 1)[0]
        for step in ("**Metric.**", "**Data.**", "**Operationalisation.**"):
            assert step in section, (heading, step)
    assert "recstream compare --quick --out" in text
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert f"| numpy | {np.__version__} |" in text
    assert re.search(r"\| Python \| 3\.\d+\.\d+ \|", text)
    assert re.search(r"\| cores \(os.cpu_count\) \| \d+ \|", text)
    assert "Quick mode" in text


@pytest.mark.slow  # real data or a full report: more than a few seconds
def test_numbers_are_sane_on_planted_data(report):
    rows = table(report[1])
    rmse = {name: number(row["RMSE"]) for name, row in rows.items()}
    assert rmse["ials"] is None and number(rows["ials"]["MAE"]) is None
    # planted low-rank ratings: the factor model must beat the item-mean baseline clearly
    assert rmse["als"] < rmse["popularity"] - 0.1
    assert rmse["item-knn-pearson"] < rmse["popularity"]
    for name, row in rows.items():
        for col in ("Recall@20", "NDCG@20", "Recall@20 returning"):
            assert 0.0 <= number(row[col]) <= 1.0, (name, col)
        if rmse[name] is not None:
            assert 0.3 < rmse[name] < 2.0 and 0.2 < number(row["MAE"]) <= rmse[name]
        # CPU time is bounded by wall time on every core (catches swapped or mis-scaled
        # columns); the peak is the fit's own increase, not the worker's whole RSS.
        cpu, wall = number(row["fit CPU s"]), number(row["fit wall s"])
        assert cpu <= wall * (os.cpu_count() or 1) + 0.005, (name, cpu, wall)
        assert number(row["fit peak RSS +MiB"]) < 30, name
        assert 0 < number(row["p50 µs"]) <= number(row["p99 µs"])
        assert number(row["CPU µs/answer"]) > 0 and number(row["answers/s"]) > 0
        assert 0 < number(row["arrays MiB"]) <= number(row["object MiB"])
        assert number(row["artifact MiB"]) > 0
    # the fit's own peak, not the forking parent's (pytest holds far more than this)
    assert number(rows["popularity"]["fit peak RSS +MiB"]) < 30
    # a 400-item catalogue: popularity stores per-item numbers only, ALS adds factors
    assert number(rows["als"]["artifact MiB"]) > number(rows["popularity"]["artifact MiB"])
    assert number(rows["als"]["fit CPU s"]) > number(rows["popularity"]["fit CPU s"])


def test_memory_bytes_counts_each_buffer_once():
    class Holder:
        pass

    holder = Holder()
    holder.a = np.zeros(1000, np.float64)
    holder.view = holder.a[:10]
    holder.same = holder.a
    holder.ids = {"x": 1, "y": 2}
    arrays, deep = compare_cli.memory_bytes(holder)
    assert arrays == 8000
    assert deep > arrays + 2 * 50  # headers, the dict and the instance


def test_artifact_arrays_for_every_model_are_plain_and_sized():
    data = datasets.planted_ratings(60, 40, 800, seed=2)
    for name in compare_cli.MODELS:
        model = compare_cli.make_model(name, (1.0, 5.0))
        model.fit(data.users, data.items, data.values, timestamps=data.timestamps)
        arrays = compare_cli.artifact_arrays(model)
        assert all(isinstance(v, np.ndarray) and v.dtype.kind != "O" for v in arrays.values())
        n_items = np.unique(data.items).size
        assert arrays["item_ids"].size == n_items, name


def test_bad_arguments_exit_cleanly(tmp_path, capsys):
    assert compare_cli.main(["--requests", "10", "--quick"]) == 2
    with pytest.raises(SystemExit):
        compare_cli.main(["--data", str(tmp_path), "--out", str(tmp_path / "r.md")])
    assert not (tmp_path / "r.md").exists()
