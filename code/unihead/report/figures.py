"""Result figures (matplotlib): each saved as PDF for the paper and PNG for the README.

Every figure stays readable in greyscale: series differ by hatch, marker and line style as well as
by colour, and heatmaps use a colour map whose lightness changes monotonically. With variants, each figure
gets one row of panels per variant, titled with its name.
"""

from __future__ import annotations

import csv
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from unihead.forgetting import RULE_DROP, VARIANT, Verdict
from unihead.report.tables import DROP_UNITS, TASK_LABELS, final_metrics, r_matrices, run_label
from unihead.results import RunResult

HATCHES = ["", "//", "..", "xx", "\\\\", "oo", "--", "++", "**"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h"]
LINES = ["-", "--", ":", "-."]
GREYSCALE_SAFE_CMAP = "viridis"


def save(figure: Figure, out_dir: Path, name: str, caption: str) -> list[Path]:
    """Write ``figure`` as ``name``.pdf and .png, with ``caption`` (which data, resolution and weights produced
    it) printed under it, so the figure says so wherever it is shown."""
    figure.text(0.0, 0.0, textwrap.fill(caption, 160), fontsize=6, va="top", ha="left")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.pdf", out_dir / f"{name}.png"]
    figure.savefig(paths[0], bbox_inches="tight")
    figure.savefig(paths[1], bbox_inches="tight", dpi=150)
    return paths


def by_variant(table: pd.DataFrame) -> dict[str | None, pd.DataFrame]:
    """A table's rows per variant, in order; all rows under None for a table without variants."""
    if VARIANT not in table:
        return {None: table}
    return {variant: table[table[VARIANT] == variant] for variant in dict.fromkeys(table[VARIANT])}


def _chance(final: pd.DataFrame, task: str) -> float | None:
    """A task's chance score (x100) from the final-metrics table (rows of one variant), where every figure reads
    it; None where it is not recorded."""
    chance = final[final["primary"] & (final["task"] == task)]["chance"].dropna()
    return 100 * chance.iloc[0] if len(chance) else None


def final_metrics_figure(final: pd.DataFrame) -> Figure:
    """Bars: final primary metric per task and run, error bars = std over seeds (none with one seed); a dotted
    line across each task's bars at its chance score; one panel per variant."""
    panels = by_variant(final[final["primary"]])
    figure = Figure(figsize=(7.5, 3.4 if len(panels) == 1 else 2.6 * len(panels)))
    axes = figure.subplots(len(panels), 1, sharey=True, squeeze=False)[:, 0]
    for axis, (variant, primary) in zip(axes, panels.items(), strict=True):
        runs = list(dict.fromkeys(primary["run"]))
        tasks = [t for t in TASK_LABELS if t in set(primary["task"])]
        width = 0.8 / len(runs)
        for i, run in enumerate(runs):
            rows = primary[primary["run"] == run].set_index("task")
            x = [tasks.index(t) + (i - (len(runs) - 1) / 2) * width for t in rows.index if t in tasks]
            means = [100 * rows.loc[t, "mean"] for t in rows.index if t in tasks]
            stds = [100 * rows.loc[t, "std"] for t in rows.index if t in tasks]
            errors = None if all(math.isnan(std) for std in stds) else [0.0 if math.isnan(v) else v for v in stds]
            axis.bar(x, means, width, yerr=errors, capsize=2, label=run_label(run), hatch=HATCHES[i % len(HATCHES)],
                     edgecolor="black", linewidth=0.6)
        for j, task in enumerate(tasks):
            chance = _chance(primary, task)
            if chance is not None:
                axis.hlines(chance, j - 0.45, j + 0.45, colors="black", linestyles=":", linewidth=1.2,
                            label="chance" if j == 0 else None)
        axis.set_xticks(range(len(tasks)), [TASK_LABELS[t] for t in tasks])
        axis.set_ylabel("final score (x100)")
        axis.grid(axis="y", alpha=0.3)
        if variant is not None:
            axis.set_title(f"variant {variant}", fontsize=9)
    if len(panels) == 1:
        axes[0].legend(fontsize=7, ncol=3, frameon=False)
    else:  # beside the panels, where it hides no bar; the same runs in every panel
        axes[0].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figure.tight_layout()
    return figure


def drops_figure(summary: pd.DataFrame, verdict: Verdict) -> Figure:
    """Bars: each strategy's drop from the single-task baseline per task (the drop the verdict reads, from the
    seed-averaged scores), error bars = its bootstrap interval (none without intervals); a dashed line at the
    threshold; tasks not learned are left empty; one panel per variant."""
    rows = summary[(summary["task"] != "all") & (summary["verdict_single"] != "not learned")]
    panels = by_variant(rows)
    column, scale = f"{RULE_DROP[verdict.rule]}_single", 1.0 if verdict.rule == "absolute" else 100.0
    figure = Figure(figsize=(7.5, 3.4 if len(panels) == 1 else 2.6 * len(panels)))
    axes = figure.subplots(len(panels), 1, sharey=True, squeeze=False)[:, 0]
    tasks = [t for t in TASK_LABELS if t in set(summary["task"])]
    for axis, (variant, table) in zip(axes, panels.items(), strict=True):
        strategies = list(dict.fromkeys(summary["strategy"]))
        width = 0.8 / len(strategies)
        for i, strategy in enumerate(strategies):
            mine = table[table["strategy"] == strategy].set_index("task")
            shown = [t for t in tasks if t in mine.index]
            x = [tasks.index(t) + (i - (len(strategies) - 1) / 2) * width for t in shown]
            drops = np.array([scale * mine.loc[t, column] for t in shown])
            errors = None
            if verdict.resamples:
                low = np.array([scale * mine.loc[t, f"{column}_low"] for t in shown])
                high = np.array([scale * mine.loc[t, f"{column}_high"] for t in shown])
                errors = np.nan_to_num(np.vstack([drops - low, high - drops]))
            axis.bar(x, drops, width, yerr=errors, capsize=2, label=run_label(strategy),
                     hatch=HATCHES[i % len(HATCHES)], edgecolor="black", linewidth=0.6)
        axis.axhline(100.0 * verdict.threshold, color="black", linestyle="--", linewidth=1.0, label="threshold")
        axis.axhline(0.0, color="black", linewidth=0.6)
        axis.set_xticks(range(len(tasks)), [TASK_LABELS[t] for t in tasks])
        axis.set_ylabel(f"drop from single-task baseline ({DROP_UNITS[verdict.rule]})")
        axis.grid(axis="y", alpha=0.3)
        if variant is not None:
            axis.set_title(f"variant {variant}", fontsize=9)
    if len(panels) == 1:
        axes[0].legend(fontsize=7, ncol=4, frameon=False)
    else:
        axes[0].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figure.tight_layout()
    return figure


def stages_figure(runs: list[RunResult]) -> Figure:
    """Each task's primary metric after every stage, one line per strategy (mean over seeds), a dotted line at
    the task's chance score; one row of panels per variant."""
    final = by_variant(final_metrics(runs))
    panels = by_variant(r_matrices(runs))
    tasks = [t for t in TASK_LABELS if any(t in set(m["task"]) for m in panels.values())]
    figure = Figure(figsize=(3.2 * len(tasks), 3.0 * len(panels)))
    axes = figure.subplots(len(panels), len(tasks), sharex=True, squeeze=False)
    for row, (variant, matrices) in enumerate(panels.items()):
        for j, task in enumerate(tasks):
            axis = axes[row, j]
            for i, run in enumerate(dict.fromkeys(matrices["run"])):
                rows = matrices[(matrices["run"] == run) & (matrices["task"] == task)]
                axis.plot(range(len(rows)), 100 * rows["mean"], marker=MARKERS[i % len(MARKERS)],
                          linestyle=LINES[i % len(LINES)], label=run)
                axis.set_xticks(range(len(rows)), list(rows["stage"]), rotation=30, fontsize=7)
            chance = _chance(final[variant], task)
            if chance is not None:
                axis.axhline(chance, color="black", linestyle=":", linewidth=1.0, label="chance")
            axis.set_title(TASK_LABELS[task] if variant is None else f"{TASK_LABELS[task]}, variant {variant}",
                           fontsize=9)
            axis.set_xlabel("evaluated after stage")
            axis.set_ylabel("score (x100)")
            axis.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure


def r_heatmaps_figure(runs: list[RunResult]) -> Figure:
    """The accuracy matrix R of each strategy (mean over seeds), values printed in the cells."""
    matrices = r_matrices(runs)
    keys = [VARIANT, "run"] if VARIANT in matrices else ["run"]
    names = list(dict.fromkeys(matrices[keys].itertuples(index=False, name=None)))
    columns = min(3, len(names))
    rows_n = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.3 * columns, 3.3 * rows_n))
    # room between rows for the two-line task names under a panel and the title of the panel below
    axes = figure.subplots(rows_n, columns, squeeze=False, gridspec_kw={"hspace": 0.8})
    for axis in axes.flat[len(names):]:
        axis.axis("off")
    for axis, name in zip(axes.flat, names, strict=False):
        selected = (matrices[keys] == name).all(axis=1)
        table = matrices[selected].pivot_table(index="stage", columns="task", values="mean", sort=False)
        table = table[[t for t in TASK_LABELS if t in table.columns]]
        image = axis.imshow(100 * table.to_numpy(), cmap=GREYSCALE_SAFE_CMAP, vmin=0, vmax=100)
        for (r, c), value in np.ndenumerate(100 * table.to_numpy()):
            axis.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=7,
                      color="white" if value < 50 else "black")
        axis.set_xticks(range(table.shape[1]), [TASK_LABELS[t].replace(" ", "\n") for t in table.columns], fontsize=7)
        axis.set_yticks(range(table.shape[0]), list(table.index), fontsize=7)
        axis.set_title(": ".join(name), fontsize=9)
    figure.colorbar(image, ax=axes.ravel().tolist(), label="score (x100)", shrink=0.8)
    return figure


def training_curves_figure(histories: dict[str | None, dict[str, Path]]) -> Figure:
    """Total training loss per epoch of each run (one seed), with the stage boundaries marked; ``histories``
    holds each run's ``history.csv`` by variant (None without variants) and run name: one panel per variant."""
    figure = Figure(figsize=(7.0, 3.2 * len(histories)))
    axes = figure.subplots(len(histories), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (variant, runs) in zip(axes, histories.items(), strict=True):
        boundaries: set[int] = set()
        for i, (name, path) in enumerate(runs.items()):
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
        axis.grid(alpha=0.3)
        if variant is not None:
            axis.set_title(f"variant {variant}", fontsize=9)
    axes[0].legend(fontsize=7, ncol=3, frameon=False)
    return figure
