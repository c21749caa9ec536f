"""``recstream compare``'s PNG plots, one per quality plus the trade-off."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recstream.ops.compare_measure import K

PLOTS = ("accuracy", "training", "inference", "size", "tradeoff")


def plot(results: dict[str, Any], img_dir: Path) -> dict[str, Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    rows = results["rows"]
    names = list(rows)
    x = np.arange(len(names))
    colours = [plt.get_cmap("tab10")(n) for n in range(len(names))]
    paths: dict[str, Path] = {}

    def bars(ax, values, title, ylabel, fmt="{:.3g}", log=False):
        vals = [np.nan if v is None else float(v) for v in values]
        drawn = ax.bar(x, [0 if np.isnan(v) else v for v in vals], color=colours)
        for rect, v in zip(drawn, vals):
            label = "n/a" if np.isnan(v) else fmt.format(v)
            ax.annotate(label, (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                        textcoords="offset points")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.15)

    def save(fig, key):
        fig.tight_layout()
        path = img_dir / f"compare-{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[key] = path

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    bars(axes[0], [rows[n]["rmse"] for n in names], "RMSE, rating folds (lower is better)",
         "RMSE", "{:.4f}")
    rated = [rows[n]["rmse"] for n in names if rows[n]["rmse"] is not None]
    if rated:
        axes[0].set_ylim(min(rated) * 0.95, max(rated) * 1.03)
    bars(axes[1], [rows[n]["recall"] for n in names], f"Recall@{K}, time split, all users",
         f"Recall@{K}", "{:.3f}")
    bars(axes[2], [rows[n]["recall_returning"] for n in names],
         f"Recall@{K}, time split, returning users", f"Recall@{K}", "{:.3f}")
    bars(axes[3], [rows[n]["ndcg"] for n in names], f"NDCG@{K}, time split, all users",
         f"NDCG@{K}", "{:.3f}")
    save(fig, "accuracy")

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    bars(axes[0], [rows[n]["fit_cpu_s"] for n in names], "fit CPU seconds (median)", "s",
         "{:.2f}")
    bars(axes[1], [rows[n]["fit_wall_s"] for n in names], "fit wall seconds (median)", "s",
         "{:.2f}")
    bars(axes[2], [rows[n]["peak_rss_increase"] / 2**20 for n in names],
         "peak RSS increase during fit", "MiB", "{:.1f}")
    save(fig, "training")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.38
    p50 = [rows[n]["infer_p50_us"] for n in names]
    p99 = [rows[n]["infer_p99_us"] for n in names]
    axes[0].bar(x - width / 2, p50, width, label="p50", color="tab:blue")
    axes[0].bar(x + width / 2, p99, width, label="p99", color="tab:orange")
    for xs, vals in ((x - width / 2, p50), (x + width / 2, p99)):
        for xi, v in zip(xs, vals):
            axes[0].annotate(f"{v:.0f}", (xi, v), ha="center", va="bottom", fontsize=7,
                             xytext=(0, 2), textcoords="offset points")
    axes[0].set_yscale("log")
    axes[0].set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    axes[0].set_title(f"µs per top-{K} answer (one thread)", fontsize=9)
    axes[0].set_ylabel("µs (log)", fontsize=8)
    axes[0].legend(fontsize=8)
    bars(axes[1], [rows[n]["answers_per_s"] for n in names], "answers per second, one thread",
         "answers/s", "{:.0f}")
    save(fig, "inference")

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    bars(axes[0], [rows[n]["artifact_bytes"] / 2**20 for n in names],
         "saved artifact on disk", "MiB", "{:.2f}")
    bars(axes[1], [rows[n]["memory_arrays"] / 2**20 for n in names],
         "numpy arrays in memory", "MiB", "{:.2f}")
    bars(axes[2], [rows[n]["memory_deep"] / 2**20 for n in names],
         "whole model object in memory", "MiB", "{:.2f}")
    save(fig, "size")

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for n, name in enumerate(names):
        size = rows[name]["artifact_bytes"] / 2**20
        ax.scatter(rows[name]["infer_p50_us"], rows[name]["recall"], s=40 + 60 * np.sqrt(size),
                   color=colours[n], label=f"{name} ({size:.1f} MiB)", alpha=0.8,
                   edgecolors="black")
        ax.annotate(name, (rows[name]["infer_p50_us"], rows[name]["recall"]), fontsize=8,
                    xytext=(6, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"inference: µs per top-{K} answer, p50 (log)", fontsize=9)
    ax.set_ylabel(f"Recall@{K}, time split, all users", fontsize=9)
    ax.set_title("accuracy vs inference cost (marker area ~ artifact size)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    save(fig, "tradeoff")
    return paths


