"""Result tables from run metrics: numbers in CSV, ``mean ± std`` in Markdown and LaTeX (booktabs).

With variants (``workflow.variants``) every table gains a variant column (``variant`` in the CSV, ``Variant``
shown first), and a run is the pair (variant, run name)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unihead.benchmark import conditions_line
from unihead.files import atomic_write_text
from unihead.forgetting import DEFINITIONS, RULE_DROP, VARIANT, Verdict
from unihead.results import RunResult, has_variants
from unihead.runs import BASELINE_PREFIX

TASK_LABELS = {"seg": "Seg mIoU", "det": "Det mAP@0.5", "cls": "Cls top-1"}
DROP_UNITS = {"relative": "%", "relative_to_chance": "% of base - chance", "absolute": "points"}
"""The unit of the drop each threshold rule decides by, for the column headers."""
DROP_NAMES = {"relative": "relative drop (base - final) / base, in %",
              "relative_to_chance": "drop relative to the baseline's margin over chance, (base - final) / "
                                    "(base - chance), in %",
              "absolute": "absolute drop base - final, in points (x100)"}
"""What the shown drop is, for the caption."""


def run_label(name: str) -> str:
    return f"baseline ({name[len(BASELINE_PREFIX):]})" if name.startswith(BASELINE_PREFIX) else name


def run_groups(runs: list[RunResult], kind: str | None = None) -> dict[tuple[str | None, str], list[RunResult]]:
    """The runs (of ``kind``, e.g. ``sequence``; all when None) by (variant, run name), over seeds, in the
    order they come."""
    groups: dict[tuple[str | None, str], list[RunResult]] = {}
    for run in runs:
        if kind is None or run.run.kind == kind:
            groups.setdefault((run.variant, run.name), []).append(run)
    return groups


def _variant_cells(variant: str | None) -> dict[str, Any]:
    """A numbers table's ``variant`` column, first in its row: for runs of a variant only."""
    return {} if variant is None else {VARIANT: variant}


def _score(value: float | None) -> float:
    """A recorded score, NaN where it is undefined (null)."""
    return math.nan if value is None else value


def _mean_std(values: list[float | None]) -> tuple[float, float]:
    array = np.array([math.nan if v is None else v for v in values], dtype=float)
    return float(np.nanmean(array)) if np.isfinite(array).any() else math.nan, \
        float(np.nanstd(array, ddof=1)) if np.isfinite(array).sum() > 1 else math.nan


def cell(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` in points (x100); a single seed (NaN std) shows the mean alone."""
    if math.isnan(mean):
        return "n/a"
    text = f"{mean * scale:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std * scale:.{digits}f}"


def final_metrics(runs: list[RunResult]) -> pd.DataFrame:
    """Final value of every metric of every task, mean and std over seeds, per run name (and variant); beside
    each primary metric its chance score (the same val set for every seed; NaN for the other metrics)."""
    rows = []
    for (variant, name), group in run_groups(runs).items():
        first = group[0]
        for task in first.eval_tasks:
            for metric in first.final[task]:
                mean, std = _mean_std([run.final[task][metric] for run in group])
                primary = metric == first.primary_metric[task]
                rows.append({**_variant_cells(variant), "run": name, "task": task, "metric": metric, "mean": mean,
                             "std": std, "seeds": len(group), "primary": primary,
                             "chance": _score(first.chance_of(task)) if primary else math.nan})
    return pd.DataFrame(rows)


def over_seeds(seeds: int) -> str:
    """How a caption says what a cell holds: a mean and std over several seeds, or one seed's value."""
    return f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed, so no std"


def r_matrices(runs: list[RunResult]) -> pd.DataFrame:
    """Mean R[stage][task] over seeds per sequence run (stage ``initial`` is the untrained model)."""
    rows = []
    for (variant, name), group in run_groups(runs, "sequence").items():
        tasks, stages = group[0].eval_tasks, group[0].run.tasks
        matrices = [("initial", [run.R_initial for run in group])]
        matrices += [(f"after {task}", [run.R[i] for run in group]) for i, task in enumerate(stages)]
        for stage, rows_over_seeds in matrices:
            for j, task in enumerate(tasks):
                mean, std = _mean_std([row[j] for row in rows_over_seeds])
                rows.append({**_variant_cells(variant), "run": name, "stage": stage, "task": task, "mean": mean,
                             "std": std})
    return pd.DataFrame(rows)


def compute(runs: list[RunResult], parameters: dict[str | None, int],
            benchmarks: dict[str | None, dict[str, Any]]) -> pd.DataFrame:
    """Training time, throughput and images forwarded (and backpropagated; their mean over seeds, None where a
    record has no count) per run name (and variant); the model's size and, from ``unihead benchmark``,
    its inference latency (eager and fast path, median ms per batch) and the device they were measured on
    alongside (``parameters`` and ``benchmarks`` by variant, None without variants; not measured: n/a)."""
    rows = []
    for (variant, name), group in run_groups(runs).items():
        minutes = _mean_std([run.train_seconds / 60 for run in group])
        measured = benchmarks.get(variant)
        forward = None if measured is None else measured["forward_ms"]
        rows.append({**_variant_cells(variant), "run": name, "parameters": parameters[variant],
                     "train_minutes": minutes[0], "train_minutes_std": minutes[1],
                     "images_per_s": _mean_std([r.images_per_s for r in group])[0],
                     "images_forwarded": _mean_count([r.images_forwarded for r in group]),
                     "images_backpropagated": _mean_count([r.images_backpropagated for r in group]),
                     "device": group[0].provenance.device,
                     "inference_ms": None if forward is None else forward["eager"]["median_ms"],
                     "inference_fast_ms": None if forward is None else forward["fast"]["median_ms"],
                     "inference_device": None if measured is None else measured["conditions"]["device"]})
    return pd.DataFrame(rows)


def _mean_count(counts: list[int | None]) -> float | None:
    """The mean of a count over a run's seeds, or None when a seed's record has none."""
    return None if None in counts else sum(counts) / len(counts)


def _with_variant(table: pd.DataFrame, numbers: pd.DataFrame) -> pd.DataFrame:
    """A display table with the numbers' variant as its first column, ``Variant``, when they have one."""
    if VARIANT in numbers:
        table.insert(0, "Variant", list(numbers[VARIANT]))
    return table


LATENCY_BUDGET = ("The budget the paper's challenge sets is 150 ms per image on an NVIDIA T4; the latencies here "
                  "were measured on the device named, which is a T4 only where it says so.")


def compute_caption(benchmarks: dict[str | None, dict[str, Any]]) -> str:
    """What the compute table shows, with the conditions the inference latency was measured under (those of
    the first variant's measurement; the variants' measurements differ only in the model)."""
    caption = ("Model size, training time and throughput per run (training minutes and images/s as the workflow's "
               "training jobs measured them, on a machine they shared with each other: timings under load, not "
               "benchmarks), and what each run's strategy cost: the images its networks were called on while it "
               "trained (the student's batches, replayed samples, a teacher's inputs, EWC's Fisher samples; not "
               "evaluation), and of them those a backward pass followed, in thousands")
    if not benchmarks:
        return caption + "."
    first = next(iter(benchmarks.values()))
    cond = first["conditions"]
    fast = f"inference mode, channels_last, {cond['compute_dtype']}"
    each = ", each variant's model" if len(benchmarks) > 1 else ""
    return (f"{caption}; inference latency of one batch of {cond['batch']} at {cond['image_size']} px, all heads"
            f"{each}, eager (fp32) and fast path ({fast}), from unihead benchmark: {conditions_line(first)}. "
            f"{LATENCY_BUDGET}")


def _final_display(final: pd.DataFrame) -> pd.DataFrame:
    """Runs as rows (the index; with variants the columns Variant and Run), tasks' primary metrics as columns."""
    primary = final[final["primary"]]
    cells: dict[tuple[str | None, str], dict[str, str]] = {}
    for row in primary.to_dict("records"):
        cells.setdefault((row.get(VARIANT), row["run"]), {})[row["task"]] = cell(row["mean"], row["std"])
    tasks = {label: task for task, label in TASK_LABELS.items() if task in set(primary["task"])}
    columns = {label: [cell.get(task, "n/a") for cell in cells.values()] for label, task in tasks.items()}
    if VARIANT in primary:
        return pd.DataFrame({"Variant": [v for v, _ in cells], "Run": [run_label(r) for _, r in cells], **columns})
    return pd.DataFrame(columns, index=[run_label(r) for _, r in cells])


def _interval_cell(value: float, low: float, high: float, scale: float) -> str:
    """``value [low, high]`` in the drop's unit; the interval left out where it is undefined."""
    if math.isnan(value):
        return "n/a"
    text = f"{value * scale:.1f}"
    return text if math.isnan(low) or math.isnan(high) else f"{text} [{low * scale:.1f}, {high * scale:.1f}]"


def forgetting_display(summary: pd.DataFrame, verdict: Verdict) -> pd.DataFrame:
    """Per strategy and task: final and chance scores (x100), and per baseline definition the drop the rule
    decides by (that of the seed-averaged scores, with its bootstrap interval, or without intervals ± the std
    of the per-seed drops) and its verdict; intransigence (x100)."""
    rows = summary[summary["task"] != "all"]
    drop, unit = RULE_DROP[verdict.rule], DROP_UNITS[verdict.rule]
    scale = 1.0 if verdict.rule == "absolute" else 100.0  # abs_drop is in points already
    out = pd.DataFrame({
        "Strategy": rows["strategy"], "Task": rows["task"],
        "Final": [cell(m, s) for m, s in zip(rows["final_mean"], rows["final_std"], strict=True)],
        "Chance": [cell(m, math.nan) for m in rows["chance_mean"]],  # the same val set for every seed
    })
    for definition in DEFINITIONS:
        column = f"{drop}_{definition}"
        out[f"Drop/{definition} ({unit})"] = [
            _interval_cell(m, low, high, scale) for m, low, high in
            zip(rows[column], rows[f"{column}_low"], rows[f"{column}_high"], strict=True)] if verdict.resamples else [
            cell(m, s, scale) for m, s in zip(rows[column], rows[f"{column}_std"], strict=True)]
        out[f"Verdict ({definition})"] = rows[f"verdict_{definition}"]
    out["Intransigence"] = [cell(m, s) for m, s in zip(rows["intransigence_mean"], rows["intransigence_std"],
                                                         strict=True)]
    return _with_variant(out.reset_index(drop=True), rows)


def forgetting_caption(verdict: Verdict, seeds: int) -> str:
    """What the forgetting table shows and how its verdicts are decided."""
    threshold = f"{100 * verdict.threshold:g} points" if verdict.rule == "absolute" else f"{100 * verdict.threshold:g}%"
    if verdict.resamples:
        level = f"{100 * verdict.confidence:g}%"
        seeds_too = "seeds, then " if seeds > 1 else ""
        decides = (f", with its {level} interval in brackets, from {verdict.resamples} bootstrap resamples of the "
                   f"{seeds_too}validation images (base and final scored on the same images); the interval decides "
                   f"the verdict: pass when all of it is at most {threshold}, fail when all of it is above, "
                   "inconclusive when it straddles the threshold. ")
    else:
        spread = " (± the std of the per-seed drops)" if seeds > 1 else ""
        decides = f"{spread}; it decides the verdict: pass at a drop of at most {threshold}. "
    return (f"Forgetting per strategy and task (scores x100, {over_seeds(seeds)}). Drop/stage is measured from the "
            "task's score right after its own stage, Drop/single from the single-task baseline of the same seed. "
            f"The drop shown is the {DROP_NAMES[verdict.rule]}, computed from the seed-averaged scores{decides}"
            f"'not learned': the baseline is less than {100 * verdict.learned_margin:g} points above the task's "
            "chance score (Chance), so there was nothing to keep; n/a: no baseline (the task trained last has no "
            "drop from its own stage). Intransigence: single-task baseline minus the score right after the task's "
            "own stage.")


def _continual_display(summary: pd.DataFrame) -> pd.DataFrame:
    rows = summary[summary["task"] == "all"]
    return _with_variant(pd.DataFrame({
        "Strategy": rows["strategy"],
        "Avg final": [cell(m, s) for m, s in zip(rows["avg_final_mean"], rows["avg_final_std"], strict=True)],
        "BWT": [cell(m, s) for m, s in zip(rows["bwt_mean"], rows["bwt_std"], strict=True)],
        "Avg forgetting": [cell(m, s) for m, s in zip(rows["avg_forgetting_mean"], rows["avg_forgetting_std"],
                                                       strict=True)],
    }).reset_index(drop=True), rows)


def _r_display(matrices: pd.DataFrame) -> pd.DataFrame:
    out = matrices.assign(value=[cell(m, s) for m, s in zip(matrices["mean"], matrices["std"], strict=True)])
    keys = [VARIANT, "run", "stage"] if VARIANT in matrices else ["run", "stage"]
    table = out.pivot_table(index=keys, columns="task", values="value", aggfunc="first", sort=False)
    table = table[[t for t in TASK_LABELS if t in table.columns]].rename(columns=TASK_LABELS).reset_index()
    return table.rename(columns={VARIANT: "Variant"})


def _compute_display(table: pd.DataFrame) -> pd.DataFrame:
    return _with_variant(pd.DataFrame({
        "Run": [run_label(r) for r in table["run"]],
        "Parameters": [f"{p:,}" for p in table["parameters"]],
        "Training (min)": [cell(m, s, scale=1.0) for m, s in zip(table["train_minutes"], table["train_minutes_std"],
                                                                   strict=True)],
        "Images/s": [f"{v:.1f}" for v in table["images_per_s"]],
        "Forwarded / backpropagated (k images)": [
            "n/a" if forwarded is None or pd.isna(forwarded) else f"{forwarded / 1000:.1f} / {backward / 1000:.1f}"
            for forwarded, backward in zip(table["images_forwarded"], table["images_backpropagated"], strict=True)],
        "Inference eager / fast (ms)": [
            "n/a" if eager is None or pd.isna(eager) else f"{eager:.1f} / {fast:.1f}"
            for eager, fast in zip(table["inference_ms"], table["inference_fast_ms"], strict=True)],
        "Device": table["device"],
    }), table)


def latex_escape(text: str) -> str:
    """Text with LaTeX's special characters escaped (for captions)."""
    for char in "&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text


def latex_table(table: pd.DataFrame, caption: str, label: str, index: bool) -> str:
    """A display table (strings) as booktabs LaTeX with caption and label, special characters escaped."""
    styler = table.style.format(escape="latex").format_index(escape="latex", axis=0) \
        .format_index(escape="latex", axis=1)
    if not index:
        styler = styler.hide(axis="index")
    text = styler.to_latex(hrules=True, caption=latex_escape(caption), label=label, position="htbp",
                           position_float="centering")
    return text.replace("±", r"$\pm$").replace("≤", r"$\leq$")


def write_tables(runs: list[RunResult], summary: pd.DataFrame, verdict: Verdict, out_dir: Path,
                 parameters: dict[str | None, int], benchmarks: dict[str | None, dict[str, Any]], provenance_line: str,
                 label_prefix: str = "") -> list[Path]:
    """Write every table as ``<name>.csv`` (numbers), ``<name>.md`` and ``<name>.tex`` (LaTeX label
    ``tab:<label_prefix><name>``); return the paths. The forgetting and continual tables show ``summary``, the
    forgetting rule's table judged by ``verdict``; ``parameters`` and ``benchmarks`` are by variant (see
    :func:`compute`)."""
    final, matrices, cost = final_metrics(runs), r_matrices(runs), compute(runs, parameters, benchmarks)
    seeds = len({run.seed for run in runs})
    tables = {
        "final_metrics": (final, _final_display(final), not has_variants(runs),
                          f"Final metrics (x100) per strategy, {over_seeds(seeds)}."),
        "forgetting": (summary, forgetting_display(summary, verdict), False, forgetting_caption(verdict, seeds)),
        "continual": (summary[summary["task"] == "all"], _continual_display(summary), False,
                      "Continual-learning summaries (x100): average final score, backward transfer, average "
                      "forgetting."),
        "r_matrices": (matrices, _r_display(matrices), False,
                       f"Accuracy matrix R (x100): each task's primary metric after each stage, {over_seeds(seeds)}."),
        "compute": (cost, _compute_display(cost), False, compute_caption(benchmarks)),
    }
    return [path for name, (numbers, display, index, caption) in tables.items()
            for path in write_table(Path(out_dir) / name, numbers, display, f"{caption} {provenance_line}",
                                    f"tab:{label_prefix}{name}", index)]


def write_table(stem: Path, numbers: pd.DataFrame, display: pd.DataFrame, caption: str, label: str,
                index: bool = False) -> list[Path]:
    """One table as ``<stem>.csv`` (the numbers), ``<stem>.md`` and ``<stem>.tex`` (the display, with its caption;
    LaTeX label ``label``); returns the three paths."""
    atomic_write_text(stem.with_suffix(".csv"), numbers.to_csv(index=False))
    markdown = display.to_markdown(index=index, disable_numparse=True)  # keep "2.0", not "2"
    atomic_write_text(stem.with_suffix(".md"), f"{markdown}\n\n{caption}\n")
    atomic_write_text(stem.with_suffix(".tex"), latex_table(display, caption, label, index))
    return [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".tex")]
