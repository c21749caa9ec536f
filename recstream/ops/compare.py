"""``recstream compare``: the model comparison report (accuracy, training cost, inference
cost, size), written as markdown with PNG plots.

    recstream compare [--data DIR] [--out docs/model-comparison.md] [--quick]

``--data`` is the MovieLens folder holding ``ml-100k/`` and ``ml-latest-small/``
(default ``../shared/data/movielens`` beside the checkout; read in place).
``--quick`` uses small planted data instead (seconds; what the unit test runs).
The plots go to ``img/compare-*.png`` next to the report.  Every quality is
defined in the report itself (metric, data, operationalisation); the same
splits are used for every model.

Training cost, size and inference cost are measured in a fresh subprocess per
model and measurement (``--worker``, internal), so that a process's peak RSS
belongs to one model's fit and inference runs with one BLAS thread.

The measurements are :mod:`~recstream.ops.compare_measure`, the plots
:mod:`~recstream.ops.compare_plots`, the markdown :mod:`~recstream.ops.compare_report`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recstream.ops.compare_measure import (DEFAULT_DATA, MODELS, accuracy, artifact_arrays,
                                           costs, load_data, make_model, memory_bytes,
                                           worker_fit, worker_infer)
from recstream.ops.compare_plots import PLOTS, plot
from recstream.ops.compare_report import render

__all__ = ["MODELS", "PLOTS", "artifact_arrays", "main", "make_model", "memory_bytes", "run"]


# -- the whole comparison ----------------------------------------------------------------------
def run(args: argparse.Namespace, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    started = time.perf_counter()
    load_start = os.getloadavg()
    data = load_data(args.data, args.quick)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="recstream-compare-") as tmp:
        workdir = Path(tmp)
        train = data["ranking_split"].train
        train_path = workdir / "train.npz"
        np.savez(train_path, users=train.users, items=train.items, values=train.values,
                 timestamps=train.timestamps)
        for name in args.models:
            log(f"{name}: accuracy")
            row = accuracy(name, data["rating_splits"], data["ranking_split"])
            log(f"{name}: training cost, size, inference cost")
            row.update(costs(name, train_path, workdir, repeats, args.requests, args.passes))
            row["predicts_ratings"] = row["rmse"] is not None
            rows[name] = row
    split = data["ranking_split"]
    return {"rows": rows, "data": data, "repeats": repeats,
            "ranking_sizes": {"train": len(split.train), "test": len(split.test),
                              "train_users": int(np.unique(split.train.users).size),
                              "train_items": int(np.unique(split.train.items).size)},
            "load_start": load_start, "load_end": os.getloadavg(),
            "seconds": time.perf_counter() - started, "machine": machine_facts()}


def machine_facts() -> dict[str, str]:
    import scipy
    facts = {"cores (os.cpu_count)": str(os.cpu_count()),
             "cores usable (sched_getaffinity)": str(len(os.sched_getaffinity(0)))
             if hasattr(os, "sched_getaffinity") else "?",
             "platform": platform.platform(),
             "Python": platform.python_version(),
             "numpy": np.__version__, "scipy": scipy.__version__}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        if names:
            facts["CPU"] = names[0]
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(handle.readline().split()[1])
        facts["memory"] = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        facts["BLAS"] = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: not essential
        pass
    try:
        import matplotlib
        facts["matplotlib"] = matplotlib.__version__
    except ImportError:
        pass
    return facts


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstream compare", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder with ml-100k/ and ml-latest-small/ (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("docs/model-comparison.md"),
                   help="report path; plots go to img/ beside it (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="small planted data (seconds)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--repeats", type=int, default=None,
                   help="fit repetitions per model (default 3, quick 1)")
    p.add_argument("--requests", type=int, default=None,
                   help="timed recommend calls per pass, >= 1000 (default 2000, quick 1000)")
    p.add_argument("--passes", type=int, default=None,
                   help="timed passes over the requests (default 3, quick 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker_main(argv[1:])
    args = parser().parse_args(argv)
    if args.requests is None:
        args.requests = 1000 if args.quick else 2000
    if args.passes is None:
        args.passes = 1 if args.quick else 3
    if args.requests < 1000 or args.passes < 1:
        print("recstream compare: --requests must be >= 1000 and --passes >= 1", file=sys.stderr)
        return 2
    results = run(args, log=lambda msg: print(f"recstream compare: {msg}", file=sys.stderr,
                                              flush=True))
    paths = plot(results, args.out.parent / "img")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, args.out, paths, argv), encoding="utf-8")
    print(f"recstream compare: wrote {args.out} and {len(paths)} plots "
          f"in {results['seconds']:.0f} s", file=sys.stderr)
    return 0


def _worker_main(argv: list[str]) -> int:
    kind, name, train_path = argv[0], argv[1], Path(argv[2])
    if kind == "fit":
        result = worker_fit(name, train_path, Path(argv[3]) if len(argv) > 3 else None)
    elif kind == "infer":
        result = worker_infer(name, train_path, int(argv[3]), int(argv[4]))
    else:
        raise SystemExit(f"unknown worker {kind!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

