"""``recstream experiment report``: the analysis as markdown plus three plots.

Written to ``docs/experiments/<id>.md`` with ``docs/experiments/img/<id>-*.png``:
effects with their CIs (fixed-horizon and anytime-valid), the anytime-valid CI of
each metric over time, and the arms' metrics side by side; the SRM verdict heads
the report because a flagged experiment's other numbers are not to be trusted.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np

LABELS = {"conversion": "conversion (answers followed by a watch of a listed title)",
          "watch_through_min": "minutes watched per recommended-then-watched title",
          "rec_rating": "stated rating of recommended-then-watched titles",
          "cost_per_view": "licence cost per view",
          "latency_ms": "latency (ms, per request)",
          "true_rating": "true rating of picks (simulator ground truth)",
          "stated_rating": "stated rating (simulator sessions)",
          "served_true_mean": "mean true rating of the served list (ground truth)"}


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def plots(result: dict[str, Any], img_dir: Path) -> dict[str, Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    exp = result["experiment"]
    paths = {}
    effects = result["effects"]
    rows = [(arm, m, e) for arm, per in effects.items() for m, e in per.items() if e]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
        for i, (arm, m, e) in enumerate(rows):
            scale = abs(e["control_mean"]) or 1.0
            lo, hi = (np.array(e["seq_ci"]) / scale) * 100
            flo, fhi = (np.array(e["ci"]) / scale) * 100
            ax.plot([lo, hi], [i, i], color="0.7", lw=6, solid_capstyle="butt")
            ax.plot([flo, fhi], [i, i], color="C0", lw=2)
            ax.plot(e["effect"] / scale * 100, i, "ko", ms=4)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(rows)), [f"{a}: {m}" for a, m, _ in rows], fontsize=8)
        ax.set_xlabel("effect, % of control mean (blue: 95% CI; grey: anytime-valid)")
        ax.set_title(f"{exp}: effects vs {result['control']}")
        fig.tight_layout()
        paths["effects"] = img_dir / f"{exp}-effects.png"
        fig.savefig(paths["effects"], dpi=110)
        plt.close(fig)
    over = result["over_time"]
    metrics = [m for m in result["metrics"] if m != "latency_ms"]
    if any(over.values()):
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            for k, (arm, looks) in enumerate(over.items()):
                pts = [(l["time"], l[m]) for l in looks if l.get(m)]
                if not pts:
                    continue
                t0 = pts[0][0]
                x = [(t - t0) / 60 for t, _ in pts]
                ax.fill_between(x, [e["seq_ci"][0] for _, e in pts], [e["seq_ci"][1] for _, e in pts],
                                alpha=0.25, color=f"C{k}")
                ax.plot(x, [e["effect"] for _, e in pts], color=f"C{k}", label=arm)
            ax.axhline(0, color="k", lw=0.8)
            ax.set_title(m, fontsize=9)
            ax.set_xlabel("stream minutes")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{exp}: anytime-valid CI of the effect over time", fontsize=10)
        fig.tight_layout()
        paths["over_time"] = img_dir / f"{exp}-over-time.png"
        fig.savefig(paths["over_time"], dpi=110)
        plt.close(fig)
    table = result["table"]
    if table:
        names = list(table)
        fig, axes = plt.subplots(1, len(metrics), figsize=(3 * len(metrics), 2.8), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            vals = [table[n].get(m) for n in names]
            ax.bar(range(len(names)), [v or 0 for v in vals], color=[f"C{i}" for i in range(len(names))])
            ax.set_xticks(range(len(names)), names, fontsize=7, rotation=20)
            ax.set_title(m, fontsize=9)
        fig.tight_layout()
        paths["arms"] = img_dir / f"{exp}-arms.png"
        fig.savefig(paths["arms"], dpi=110)
        plt.close(fig)
    return paths


def markdown(result: dict[str, Any], images: dict[str, Path], out_dir: Path,
             preface: str = "") -> str:
    exp, srm = result["experiment"], result["srm"]
    lines = [f"# Experiment `{exp}`", ""]
    if preface:
        lines += [preface, ""]
    lines += [f"Version {result['version']}, state **{result['state']}**, kind {result['kind']}, "
              f"exposure {result['exposure']:.0%}, control arm `{result['control']}`; report "
              f"written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.", ""]
    lines += ["| arm | policy | weight |", "|---|---|---|"]
    for (name, policy), w in zip(result["arms"].items(), result["weights"]):
        lines.append(f"| {name} | `{json.dumps(policy)}` | {w:g} |")
    lines.append("")
    if srm is None:
        lines.append("**SRM:** no users yet.")
    else:
        verdict = "**FLAGGED — assignment or logging is broken; do not trust the numbers below**" \
            if srm["flagged"] else "no mismatch"
        lines.append(f"**SRM check** (χ², flag at p < 0.001): users per arm {srm['observed']} vs "
                     f"expected {[round(e, 1) for e in srm['expected']]}, p = {srm['p_value']:.3g}: "
                     f"{verdict}. Contaminated users (answered under two arms): "
                     f"{result['contaminated']}.")
    lines += ["", "## Arms", ""]
    metrics = result["metrics"]
    served = any(row["answers"] for row in result["table"].values())  # telemetry, not truth
    head = ["arm", "users"] + (["answers", "views"] if served else []) + metrics + \
        (["cost/hour", "p99 ms"] if served else [])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in result["table"].items():
        cells = [name, row["users"]] + ([row["answers"], row["views"]] if served else []) + \
            [_fmt(row.get(m)) for m in metrics] + \
            ([_fmt(row["cost_per_hour"]), _fmt(row["latency_p99_ms"])] if served else [])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "## Effects (treatment − control, per user)", "",
              "| arm | metric | control | treatment | effect | 95% CI | p | anytime-valid CI |",
              "|---|---|---|---|---|---|---|---|"]
    for arm, per in result["effects"].items():
        for m, e in per.items():
            if e is None:
                lines.append(f"| {arm} | {m} | – | – | – | too few users | | |")
                continue
            lines.append(
                f"| {arm} | {LABELS.get(m, m)} | {_fmt(e['control_mean'])} | "
                f"{_fmt(e['treatment_mean'])} | {_fmt(e['effect'])} ({_fmt(100 * e['relative'], 3)}%) | "
                f"[{_fmt(e['ci'][0])}, {_fmt(e['ci'][1])}] | {_fmt(e['p_value'], 3)} | "
                f"[{_fmt(e['seq_ci'][0])}, {_fmt(e['seq_ci'][1])}] |")
    lines.append("")
    for arm, il in (result.get("interleaving") or {}).items():
        if il is None:
            lines += [f"**Interleaving `{arm}`:** no interleaved answers yet.", ""]
            continue
        policy = result["arms"][arm]
        lines += [f"## Interleaving: arm `{arm}` (A = `{json.dumps(policy['a'])}`, "
                  f"B = `{json.dumps(policy['b'])}`)", "",
                  f"{il['impressions']} interleaved answers from {il['users']} users. Mean "
                  f"per-user credit (+1 = every answer won by A) {il['mean_credit']:+.4f}, 95% CI "
                  f"[{il['ci'][0]:+.4f}, {il['ci'][1]:+.4f}], p = {il['p_value']:.3g}: "
                  f"**{il['decision']}**. Users preferring A / B / tied: {il['user_wins_a']} / "
                  f"{il['user_wins_b']} / {il['user_ties']} (sign test p = {il['sign_p']:.3g}).", ""]
    for key, title in (("effects", "Effects"), ("over_time", "CI over time"), ("arms", "Arms")):
        if key in images:
            lines += [f"![{title}]({images[key].relative_to(out_dir).as_posix()})", ""]
    lines += ["Method: users are the unit (assignment is by user); Welch's t on per-user values, "
              "read once at the end; the anytime-valid CI (asymptotic confidence sequence, "
              "docs/experiments.md §3) stays valid under continuous monitoring. Latency is "
              "compared per request (a guardrail).", ""]
    return "\n".join(lines)


def write(result: dict[str, Any], out_dir: Path, preface: str = "") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    images = plots(result, out_dir / "img")
    path = out_dir / f"{result['experiment']}.md"
    path.write_text(markdown(result, images, out_dir, preface))
    (out_dir / f"{result['experiment']}.json").write_text(json.dumps(result, indent=1, default=float))
    return path
