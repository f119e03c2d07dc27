"""Result figures (matplotlib): each saved as PDF for the paper and PNG for the README.

Every figure stays readable in greyscale: series differ by hatch, marker and line style as well as
by colour, and heatmaps use a colour map whose lightness changes monotonically.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from unihead.report.tables import TASK_LABELS, r_matrices, run_label

HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "--", "++", "**"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h"]
LINES = ["-", "--", ":", "-."]
GREYSCALE_SAFE_CMAP = "viridis"


def save(figure: Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.pdf", out_dir / f"{name}.png"]
    figure.savefig(paths[0], bbox_inches="tight")
    figure.savefig(paths[1], bbox_inches="tight", dpi=150)
    return paths


def final_metrics_figure(final: pd.DataFrame) -> Figure:
    """Bars: final primary metric per task and run, error bars = std over seeds."""
    primary = final[final["primary"]]
    runs = list(dict.fromkeys(primary["run"]))
    tasks = [t for t in TASK_LABELS if t in set(primary["task"])]
    figure = Figure(figsize=(7.5, 3.4))
    axis = figure.subplots()
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        rows = primary[primary["run"] == run].set_index("task")
        x = [tasks.index(t) + (i - (len(runs) - 1) / 2) * width for t in rows.index if t in tasks]
        means = [100 * rows.loc[t, "mean"] for t in rows.index if t in tasks]
        stds = [0.0 if math.isnan(rows.loc[t, "std"]) else 100 * rows.loc[t, "std"] for t in rows.index if t in tasks]
        axis.bar(x, means, width, yerr=stds, capsize=2, label=run_label(run), hatch=HATCHES[i % len(HATCHES)],
                 edgecolor="black", linewidth=0.6)
    axis.set_xticks(range(len(tasks)), [TASK_LABELS[t] for t in tasks])
    axis.set_ylabel("final score (x100)")
    axis.legend(fontsize=7, ncol=3, frameon=False)
    axis.grid(axis="y", alpha=0.3)
    return figure


def stages_figure(runs: list[dict]) -> Figure:
    """Each task's primary metric after every stage, one line per strategy (mean over seeds)."""
    matrices = r_matrices(runs)
    tasks = [t for t in TASK_LABELS if t in set(matrices["task"])]
    figure = Figure(figsize=(3.2 * len(tasks), 3.0))
    axes = figure.subplots(1, len(tasks), sharex=True, squeeze=False)
    for j, task in enumerate(tasks):
        axis = axes[0, j]
        for i, run in enumerate(dict.fromkeys(matrices["run"])):
            rows = matrices[(matrices["run"] == run) & (matrices["task"] == task)]
            axis.plot(range(len(rows)), 100 * rows["mean"], marker=MARKERS[i % len(MARKERS)],
                      linestyle=LINES[i % len(LINES)], label=run)
            axis.set_xticks(range(len(rows)), list(rows["stage"]), rotation=30, fontsize=7)
        axis.set_title(TASK_LABELS[task], fontsize=9)
        axis.set_xlabel("evaluated after stage")
        axis.set_ylabel("score (x100)")
        axis.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


def r_heatmaps_figure(runs: list[dict]) -> Figure:
    """The accuracy matrix R of each strategy (mean over seeds), values printed in the cells."""
    matrices = r_matrices(runs)
    names = list(dict.fromkeys(matrices["run"]))
    columns = min(3, len(names))
    rows_n = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.3 * columns, 2.8 * rows_n))
    axes = figure.subplots(rows_n, columns, squeeze=False)
    for axis in axes.flat[len(names):]:
        axis.axis("off")
    for axis, name in zip(axes.flat, names, strict=False):
        table = matrices[matrices["run"] == name].pivot_table(index="stage", columns="task", values="mean", sort=False)
        table = table[[t for t in TASK_LABELS if t in table.columns]]
        image = axis.imshow(100 * table.to_numpy(), cmap=GREYSCALE_SAFE_CMAP, vmin=0, vmax=100)
        for (r, c), value in np.ndenumerate(100 * table.to_numpy()):
            axis.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=7,
                      color="white" if value < 50 else "black")
        axis.set_xticks(range(table.shape[1]), [TASK_LABELS[t].replace(" ", "\n") for t in table.columns], fontsize=7)
        axis.set_yticks(range(table.shape[0]), list(table.index), fontsize=7)
        axis.set_title(name, fontsize=9)
    figure.colorbar(image, ax=axes.ravel().tolist(), label="score (x100)", shrink=0.8)
    return figure


def training_curves_figure(histories: dict[str, Path]) -> Figure:
    """Total training loss per epoch of each run (one seed), with the stage boundaries marked."""
    figure = Figure(figsize=(7.0, 3.2))
    axis = figure.subplots()
    boundaries: set[int] = set()
    for i, (name, path) in enumerate(histories.items()):
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        epochs = [int(r["epoch"]) + 1 for r in rows]
        axis.plot(epochs, [float(r["loss"]) for r in rows], marker=MARKERS[i % len(MARKERS)], markersize=3,
                  linestyle=LINES[i % len(LINES)], label=run_label(name))
        boundaries |= {int(r["epoch"]) + 1 for r, nxt in zip(rows, rows[1:], strict=False)
                       if r["stage"] != nxt["stage"]}
    for x in sorted(boundaries):
        axis.axvline(x + 0.5, color="grey", linewidth=0.8, linestyle=":")
    axis.set_yscale("log")
    axis.set_xlabel("epoch")
    axis.set_ylabel("training loss (all terms)")
    axis.legend(fontsize=7, ncol=3, frameon=False)
    axis.grid(alpha=0.3)
    return figure
