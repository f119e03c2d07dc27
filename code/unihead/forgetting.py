"""The forgetting table: per strategy and task, drops from both baselines against the threshold,
and the continual-learning summaries (BWT, average forgetting, forward transfer) over seeds.

Reads the runs' ``metrics.json`` files (``runs/<name>/seed<N>/metrics.json``); imports no torch, so
the workflow's host side can use it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unihead.errors import InputError
from unihead.files import atomic_write_text

BASELINE_PREFIX = "baseline-"
REQUIRED_KEYS = ("run", "eval_tasks", "primary_metric", "R")
PER_SEED_CSV = "forgetting_per_seed.csv"
SUMMARY_CSV = "forgetting_summary.csv"


def load_runs(sources: Path | Iterable[Path]) -> list[dict[str, Any]]:
    """Run results from ``metrics.json`` files, or from every ``<run>/seed<N>/metrics.json`` under a folder;
    each is checked for the keys the tables need."""
    paths: list[Path] = []
    for source in [sources] if isinstance(sources, (str, Path)) else sources:
        source = Path(source)
        if source.is_dir():
            paths += sorted(source.glob("*/seed*/metrics.json"))
        elif source.suffix == ".json":
            paths.append(source)
        else:
            raise InputError(f"{source}: neither a folder of runs nor a metrics.json file")
    if not paths:
        raise InputError(f"{sources}: no run results (expected <run>/seed<N>/metrics.json)")
    runs = []
    for path in paths:
        try:
            metrics = json.loads(path.read_text())
        except FileNotFoundError as err:
            raise InputError(f"{path}: run results not found") from err
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON ({err})") from err
        missing = [key for key in REQUIRED_KEYS if key not in metrics]
        if missing:
            raise InputError(f"{path}: missing key(s) {missing}")
        metrics["path"] = str(path)
        runs.append(metrics)
    seen: dict[tuple[str, int], str] = {}
    for run in runs:
        key = (run["run"]["name"], run["run"]["seed"])
        if key in seen:
            raise InputError(f"{run['path']} and {seen[key]}: both are run {key[0]!r} seed {key[1]}; "
                             "give each run once")
        seen[key] = run["path"]
    return runs


def drop(base: float, final: float, threshold: float) -> tuple[float, float, bool]:
    """(relative drop, absolute drop in points, pass). A zero or undefined base gives a NaN relative
    drop, which fails: a task that never learned cannot show that it kept what it learned."""
    undefined = base is None or final is None or not math.isfinite(base) or base <= 0
    relative = math.nan if undefined else (base - final) / base
    absolute = math.nan if base is None or final is None else 100.0 * (base - final)
    return relative, absolute, (not math.isnan(relative)) and relative <= threshold + 1e-12


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _single_baselines(runs: list[dict]) -> dict[tuple[str, int], float]:
    """Final score of each ``baseline-<task>`` run, by (task, seed)."""
    scores = {}
    for run in runs:
        if run["run"]["name"].startswith(BASELINE_PREFIX):
            (task,) = run["eval_tasks"]
            scores[(task, run["run"]["seed"])] = _nan(run["R"][-1][0])
    return scores


def forgetting_table(runs: list[dict], threshold: float = 0.05, require_single_baseline: bool = True) -> pd.DataFrame:
    """One row per (strategy, seed, task): final score, both baselines, both drops and pass/fail."""
    singles = _single_baselines(runs)
    if all(run["run"]["name"].startswith(BASELINE_PREFIX) for run in runs):
        raise InputError(f"only single-task baseline runs ({', '.join(sorted({r['path'] for r in runs})[:3])}, ...): "
                         "the forgetting tables need at least one strategy run over the task sequence")
    rows = []
    for run in runs:
        name, seed = run["run"]["name"], run["run"]["seed"]
        if name.startswith(BASELINE_PREFIX):
            continue
        R = [[_nan(v) for v in row] for row in run["R"]]
        stages = run["run"]["tasks"]
        for i, task in enumerate(run["eval_tasks"]):
            own_stage = stages.index(task)
            final, base_stage = R[-1][i], R[own_stage][i]
            if (task, seed) not in singles and require_single_baseline:
                raise InputError(f"no single-task baseline for {task} seed {seed}: expected "
                                 f"{Path(run['path']).parents[2] / (BASELINE_PREFIX + task) / f'seed{seed}'}")
            base_single = singles.get((task, seed), math.nan)
            rel_stage, abs_stage, pass_stage = drop(base_stage, final, threshold)
            rel_single, abs_single, pass_single = drop(base_single, final, threshold)
            rows.append({"strategy": name, "seed": seed, "task": task, "metric": run["primary_metric"][task],
                         "final": final, "base_stage": base_stage, "base_single": base_single,
                         "rel_drop_stage": rel_stage, "abs_drop_stage": abs_stage, "pass_stage": pass_stage,
                         "rel_drop_single": rel_single, "abs_drop_single": abs_single, "pass_single": pass_single})
    return pd.DataFrame(rows)


def sequence_summaries(run: dict) -> dict[str, float]:
    """Average final score, BWT, average forgetting and forward transfer of one sequence run.

    With T stages and task i trained at stage s_i: BWT = mean over tasks not trained last of
    R[T-1][i] - R[s_i][i]; forgetting = mean over the same tasks of max_{s_i <= t < T-1} R[t][i] - R[T-1][i];
    forward transfer = mean over tasks not trained first of R[s_i - 1][i] - R_initial[i].
    """
    R = np.array([[_nan(v) for v in row] for row in run["R"]])
    stages = run["run"]["tasks"]
    own = [stages.index(task) for task in run["eval_tasks"]]
    last = len(R) - 1
    earlier = [i for i, s in enumerate(own) if s < last]
    later = [i for i, s in enumerate(own) if s > 0]
    summary = {
        "avg_final": float(R[last].mean()),
        "bwt": float(np.mean([R[last, i] - R[own[i], i] for i in earlier])) if earlier else math.nan,
        "avg_forgetting": float(np.mean([R[own[i]:last, i].max() - R[last, i] for i in earlier]))
        if earlier else math.nan,
        "forward_transfer": math.nan,
    }
    if run.get("R_initial") is not None and later:
        initial = [_nan(v) for v in run["R_initial"]]
        summary["forward_transfer"] = float(np.mean([R[own[i] - 1, i] - initial[i] for i in later]))
    return summary


def summary_table(runs: list[dict], threshold: float = 0.05, require_single_baseline: bool = True) -> pd.DataFrame:
    """Mean and std over seeds per (strategy, task), and per strategy the sequence summaries (task ``all``).

    ``pass_*`` is whether the mean relative drop is within the threshold; ``pass_rate_*`` the fraction
    of seeds that pass. Standard deviations use ddof=1, so a single seed gives NaN.
    """
    table = forgetting_table(runs, threshold, require_single_baseline)
    columns = ["final", "base_stage", "base_single", "rel_drop_stage", "abs_drop_stage", "rel_drop_single",
               "abs_drop_single"]
    grouped = table.groupby(["strategy", "task", "metric"], sort=False)
    summary = grouped[columns].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    summary["seeds"] = grouped.size()
    for definition in ("stage", "single"):
        summary[f"pass_rate_{definition}"] = grouped[f"pass_{definition}"].mean()
        mean = summary[f"rel_drop_{definition}_mean"]
        summary[f"pass_{definition}"] = mean.notna() & (mean <= threshold + 1e-12)
    summary = summary.reset_index()
    per_run = pd.DataFrame([{"strategy": run["run"]["name"], **sequence_summaries(run)} for run in runs
                            if not run["run"]["name"].startswith(BASELINE_PREFIX)])
    overall = per_run.groupby("strategy", sort=False).agg(["mean", "std"])
    overall.columns = [f"{column}_{stat}" for column, stat in overall.columns]
    overall["seeds"] = per_run.groupby("strategy", sort=False).size()
    overall = overall.reset_index().assign(task="all", metric="")
    return pd.concat([summary, overall], ignore_index=True)


def write_tables(sources: Path | Iterable[Path], out_dir: Path, threshold: float = 0.05,
                 require_single_baseline: bool = True) -> list[Path]:
    """Write the per-seed and summary tables as CSV (atomically) and return their paths."""
    runs = load_runs(sources)
    tables = {PER_SEED_CSV: forgetting_table(runs, threshold, require_single_baseline),
              SUMMARY_CSV: summary_table(runs, threshold, require_single_baseline)}
    paths = []
    for name, table in tables.items():
        path = Path(out_dir) / name
        atomic_write_text(path, table.to_csv(index=False))
        paths.append(path)
    return paths
