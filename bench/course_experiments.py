"""The course's two experiments, run through the real worker and the graders' loop.

Starts an embedded Tansu broker, a ``recstream worker`` and ``recstream sim`` (its
graders' loop calls ``/recommend`` over HTTP with the 600 ms deadline; its user
and movie APIs serve the worker's cold start and catalogue), all on free ports in
a private directory; declares the experiments with ``recstream experiment start``
*before* the simulator's traffic starts, runs ``--sim-seconds`` simulated seconds,
then:

* ``recstream experiment report`` for each experiment (telemetry joined from the
  recommendations topic and movielog: docs/experiments/<id>.md);
* the course reports, which add the simulator's ground truth (read only here, never
  by the worker): docs/experiments/course-a-self-descriptions.md and
  course-b-cost-aware.md.  Arms are recomputed from the spec (a pure function of
  experiment id and user), i.e. intention to treat; the SRM check compares the
  users the worker actually labelled with the planned shares.

(a) ``desc``: new accounts' cold start with vs without their self-description;
    units: new accounts that wrote one.  (b) ``cost``: the baseline ranker vs the
    cost-aware re-ranker at two trade-off weights; units: every user answered.

    .venv/bin/python bench/course_experiments.py [--sim-seconds 7200] [--rate 30]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.first_minutes import free_port, read_metrics, wait_ready  # noqa: E402
from models.experiments.spec import ExperimentSpec  # noqa: E402
from models.experiments.stats import minimum_detectable_effect, sample_size_per_arm  # noqa: E402
from models.experiments.telemetry import ArmData  # noqa: E402
from recstream.broker import start_tansu, stop, wait_for_port  # noqa: E402
from recstream.ops.experiment_analysis import analyse  # noqa: E402
from recstream.ops.experiment_report import write  # noqa: E402

OUT = ROOT / "docs" / "experiments"


def cli(env, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "recstream.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"recstream {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def truth_arms(spec: ExperimentSpec, sessions: dict[int, list[dict]], metrics: dict[str, callable]
               ) -> dict[str, ArmData]:
    """Per-user ground-truth metrics grouped by the spec's assignment (intention to treat)."""
    by_arm: dict[str, list] = {}
    for user, rows in sessions.items():
        arm = spec.allocation.arm_of(user)
        if arm is not None:
            by_arm.setdefault(arm, []).append((user, min(r["t"] for r in rows),
                                               {m: f(rows) for m, f in metrics.items()}))
    out = {}
    for arm, rows in by_arm.items():
        out[arm] = ArmData(users=np.array([r[0] for r in rows]), first_seen=np.array([r[1] for r in rows]),
                           per_user={m: np.array([r[2][m] for r in rows], float) for m in metrics},
                           latency_ms=np.zeros(0))
    return out


def mean_of(key: str, where=lambda r: True):
    def f(rows):
        vals = [r[key] for r in rows if where(r) and r.get(key) is not None]
        return float(np.mean(vals)) if vals else np.nan
    return f


def truth_result(spec, sessions, metrics, labelled_counts: list[int]):
    result = analyse(spec, truth_arms(spec, sessions, metrics), 0, metrics=tuple(metrics),
                     latency=False)
    from models.experiments.stats import srm_check
    srm = srm_check(labelled_counts, spec.weights)
    result["srm"] = {"observed": list(srm.observed), "expected": list(srm.expected),
                     "p_value": srm.p_value, "flagged": srm.flagged}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sim-seconds", type=float, default=7200.0)
    p.add_argument("--speed", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--movies", type=int, default=5_000)
    p.add_argument("--new-user-share", type=float, default=0.25)
    p.add_argument("--backfill-days", default="7")
    p.add_argument("--backfill-lines", default="150000")
    p.add_argument("--weights", default="0.5,2.0", help="the cost arms' trade-off weights")
    p.add_argument("--seed", default="13")
    p.add_argument("--planning-sd", type=float, default=0.59,
                   help="per-user SD of (a)'s primary metric (mean true rating of the served lists) "
                        "assumed by the power plan; 0.59 = phase 3's run")
    p.add_argument("--planning-mde", type=float, default=0.1,
                   help="the effect (a) should detect with 80%% power at alpha 0.05 (stars)")
    args = p.parse_args()
    plan = power_plan(args)
    print(json.dumps({"plan": plan}), flush=True)
    work = Path(tempfile.mkdtemp(prefix="course-exp-"))
    broker_port, web_port, api_port = free_port(), free_port(), free_port()
    tansu = start_tansu(broker_port, log_path=work / "tansu.log")
    env = {**os.environ, "RECSTREAM_BROKER": f"tansu://127.0.0.1:{broker_port}",
           "RECSTREAM_WEB_PORT": str(web_port), "RECSTREAM_WEB_HOST": "127.0.0.1",
           "RECSTREAM_CANONICAL_URL": f"http://127.0.0.1:{web_port}",
           "RECSTREAM_DATA_DIR": str(work / "data"), "RECSTREAM_REGISTRY_DIR": str(work / "models"),
           "RECSTREAM_API_URL": f"http://127.0.0.1:{api_port}", "RECSTREAM_APP_ID": "course"}
    exe = [sys.executable, "-m", "recstream.cli"]
    children: list[subprocess.Popen] = []
    w1, w2 = args.weights.split(",")
    desc_arms = ["on=describe:on", "off=describe:off"]
    cost_arms = ["control=baseline", f"cost-{w1}=cost:{w1}", f"cost-{w2}=cost:{w2}"]
    try:
        worker = subprocess.Popen([*exe, "worker", "-l", "warn"], env=env, cwd=ROOT, start_new_session=True,
                                  stdout=open(work / "worker.log", "wb"), stderr=subprocess.STDOUT)
        children.append(worker)
        wait_for_port("127.0.0.1", web_port, 120, worker)
        wait_ready(web_port, worker)
        desc = ExperimentSpec.from_json(json.dumps(json.loads(cli(
            env, "experiment", "start", "desc", "--kind", "coldstart",
            *sum((["--arm", a] for a in desc_arms), [])))))
        cost = ExperimentSpec.from_json(json.dumps(json.loads(cli(
            env, "experiment", "start", "cost", *sum((["--arm", a] for a in cost_arms), [])))))
        time.sleep(3)  # the worker's follower polls every 0.5 s
        truth = work / "truth.jsonl"
        started = time.monotonic()
        sim = subprocess.Popen([*exe, "sim", "--api-port", str(api_port), "--quiet", "--seed", args.seed,
                                "--users", str(args.users), "--movies", str(args.movies),
                                "--speed", str(args.speed), "--rate", str(args.rate),
                                "--duration", str(args.sim_seconds), "--new-user-share", str(args.new_user_share),
                                "--backfill-days", args.backfill_days, "--backfill-lines", args.backfill_lines,
                                "--truth", str(truth), "--no-oracle",
                                "--recommender", f"http://127.0.0.1:{web_port}"],
                               env=env, cwd=ROOT, start_new_session=True,
                               stdout=open(work / "sim.log", "wb"), stderr=subprocess.STDOUT)
        children.append(sim)
        while sim.poll() is None:
            time.sleep(15)
            answers, lines = read_metrics(web_port)
            print(json.dumps({"real_s": round(time.monotonic() - started), "lines": lines,
                              "answers": answers}), flush=True)
        sim_real_s = time.monotonic() - started
        time.sleep(3)  # the last answers' provenance
        reports = {e: cli(env, "experiment", "report", e, "--out", str(OUT)) for e in ("desc", "cost")}
        print(json.dumps({"sim_real_s": round(sim_real_s), "reports": reports}), flush=True)
        labelled = {e: json.load(open(OUT / f"{e}.json"))["srm"]["observed"] if
                    json.load(open(OUT / f"{e}.json"))["srm"] else [0] * 2 for e in ("desc", "cost")}
        records = [json.loads(l) for l in open(truth)]
        sessions: dict[int, list[dict]] = {}
        for r in records:
            if r.get("kind") == "session":
                sessions.setdefault(r["user"], []).append(r)
        described = {r["user"] for r in records if r.get("kind") == "account" and not r.get("past")}
        new_sessions = {u: rows for u, rows in sessions.items() if u in described}
        later = {u: [r for r in rows if r is not min(rows, key=lambda x: x["t"])]
                 for u, rows in new_sessions.items()}
        later = {u: rows for u, rows in later.items() if rows}
        first_sources = first_answer_sources(env, desc, described)
        print(json.dumps({"new_describers_first_answer_source": first_sources}), flush=True)
        setup = (f"Run: `.venv/bin/python bench/course_experiments.py {' '.join(sys.argv[1:])}` — "
                 f"Tansu + `recstream worker` + `recstream sim` (seed {args.seed}, {args.users} users × "
                 f"{args.movies} movies, {args.backfill_days} days of past, new-user share "
                 f"{args.new_user_share}, {args.sim_seconds / 60:.0f} simulated minutes at speed "
                 f"{args.speed}, rate {args.rate}/s) on free ports; {sum(len(v) for v in sessions.values())} "
                 f"sessions in {sim_real_s:.0f} s real time. Load: `{os.popen('uptime').read().strip()}`. "
                 f"Ground truth from the simulator's truth file (never read by the worker). "
                 f"The SRM line counts users the worker labelled (telemetry report: `{{e}}.md`)")
        a_metrics = {"served_true_mean": mean_of("served_true_mean"),
                     "true_rating": mean_of("true_rating", lambda r: r["source"] == "reco"),
                     "stated_rating": mean_of("rating")}
        res_a = truth_result(desc, new_sessions, a_metrics, labelled["desc"])
        got = (res_a["effects"].get("on") or {}).get("served_true_mean") or {}
        if got:
            n = min(got["n_control"], got["n_treatment"])
            sd = (got["ci"][1] - got["ci"][0]) / (2 * 1.959964) / np.sqrt(
                1 / got["n_control"] + 1 / got["n_treatment"])
            plan["achieved"] = {"units_per_arm": n, "sd": round(float(sd), 3), "mde": round(
                minimum_detectable_effect(sd=float(sd), n_per_arm=n), 3)}
        print(json.dumps({"plan": plan}), flush=True)
        write_named(res_a, "course-a-self-descriptions",
                    f"**Power plan, before the start:** {plan['text']} "
                    + (f"Achieved: {plan['achieved']['units_per_arm']} units in the smaller arm, per-user SD "
                       f"{plan['achieved']['sd']}, so the MDE was {plan['achieved']['mde']} star. "
                       if "achieved" in plan else "") +
                    "**(a) Self-descriptions for new users, on vs off.** Units: new accounts that wrote a "
                    "self-description, all their sessions (a first answer is personal when the cold "
                    "start had the profile by then, or made it within the request's wait). "
                    f"Users with a later session: {len(later)}. Source of each new "
                    f"describer's first answer, by arm (from the provenance records): {first_sources}. "
                    + setup.replace("{e}", "desc"))
        res_a2 = truth_result(desc, later, a_metrics, labelled["desc"])
        res_a2["experiment"] = "desc-later"
        write_named(res_a2, "course-a-self-descriptions-later-sessions",
                    "(a) restricted to each new account's sessions after its first one. " + setup.replace("{e}", "desc"))
        b_metrics = {"cost_per_view": mean_of("cost"),
                     "served_true_mean": mean_of("served_true_mean"),
                     "true_rating": mean_of("true_rating"),
                     "stated_rating": mean_of("rating"),
                     "watch_through": mean_of("watch_through")}
        res_b = truth_result(cost, sessions, b_metrics, labelled["cost"])
        write_named(res_b, "course-b-cost-aware",
                    "**(b) Cost-aware ranker vs baseline.** Units: every user with a session; cost per view "
                    "= mean licence cost of the user's picks (any source). " + setup.replace("{e}", "cost"))
        print(json.dumps({e: {arm: {m: (v["effect"], v["ci"]) for m, v in per.items() if v}
                              for arm, per in r["effects"].items()}
                          for e, r in (("a", res_a), ("a_later", res_a2), ("b", res_b))}, default=float))
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(2)
        for child in reversed(children):
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        stop(tansu)
        print(f"logs in {work}", file=sys.stderr)


DESCRIBERS_PER_ARRIVAL = 0.139  # new describers per (rate x sim-second x new-user share): phase 3


def power_plan(args: argparse.Namespace) -> dict:
    """Units and MDE of (a) before the start (the issue asks for power before a start)."""
    units = int(DESCRIBERS_PER_ARRIVAL * args.rate * args.sim_seconds * args.new_user_share / 2)
    need = sample_size_per_arm(sd=args.planning_sd, mde=args.planning_mde)
    mde = minimum_detectable_effect(sd=args.planning_sd, n_per_arm=max(units, 2))
    text = (f"expected ~{units} new describers per arm ({DESCRIBERS_PER_ARRIVAL} per arrival x rate "
            f"{args.rate}/s x {args.sim_seconds:.0f} sim-s x new-user share {args.new_user_share} / 2 arms); "
            f"assumed per-user SD {args.planning_sd} star (served lists' true mean, phase 3); "
            f"detecting {args.planning_mde} star with 80% power at alpha 0.05 needs {need} per arm; "
            f"the planned MDE is {mde:.3f} star.")
    return {"units_per_arm": units, "sd": args.planning_sd, "needed_per_arm": need,
            "mde": round(mde, 3), "text": text}


def first_answer_sources(env: dict, spec: ExperimentSpec, users: set[int]) -> dict:
    """arm → {source: count} of each user's first answer (read from the recommendations topic)."""
    import asyncio
    import orjson
    from recstream.ops.provenance import scan
    from recstream.settings import Settings
    settings = Settings.from_env(env)
    rows = asyncio.run(scan(settings, f"{settings.app_id}-recommendations", lambda k, v: True))
    first: dict[int, tuple[float, str]] = {}
    for _, _, raw in rows:
        body = orjson.loads(raw)
        u = body.get("user")
        if u in users and (u not in first or body["time"] < first[u][0]):
            first[u] = (body["time"], body["source"])
    out: dict[str, dict[str, int]] = {}
    for u, (_, source) in first.items():
        arm = spec.allocation.arm_of(u)
        out.setdefault(arm, {}).setdefault(source, 0)
        out[arm][source] += 1
    return out


def write_named(result, name: str, preface: str) -> None:
    result = dict(result, experiment=name)
    print(write(result, OUT, preface), flush=True)


if __name__ == "__main__":
    main()
