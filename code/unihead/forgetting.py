"""The forgetting verdict: per strategy and task, the drops from both baselines and whether the task kept
what it learned; and the continual-learning summaries (average final score, BWT, average forgetting).

Drops and pass/fail are decided here and nowhere else: the engine writes measurements only. Each task is
judged against two baselines: ``stage``, its score right after its own stage (the challenge's definition;
none for the task trained last, whose drop from its own stage is 0 by construction), and ``single``, the
final score of the ``baseline-<task>`` run of the same seed. A baseline that is not at least
``learned_margin`` above the task's chance score gives "not learned", never "pass": a task that was never
learned cannot show that it kept what it learned. Over seeds the scores are averaged before dividing.

Reads the runs' records (:func:`unihead.results.load_runs`: a run folder without one, an unfinished run, is an
error, and so, given the experiment, is a run it lists that is absent, so that no table has a silent gap).
With variants, every table gains a
``variant`` column, and each variant's runs are judged against that variant's own baselines (a variant that
changes the model has its own single-task baselines). Imports no torch, so the workflow's host side can use
it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unihead.config import THRESHOLD_RULES, ExperimentConfig
from unihead.errors import InputError
from unihead.files import atomic_write_text
from unihead.results import RunResult, has_variants, load_runs
from unihead.runs import BASELINE_PREFIX

VARIANT = "variant"
"""The column naming a run's variant, in the tables of an experiment with variants (and only there)."""
PER_SEED_CSV = "forgetting_per_seed.csv"
SUMMARY_CSV = "forgetting_summary.csv"


PASS, FAIL, NOT_LEARNED, NO_BASELINE = "pass", "fail", "not learned", "n/a"
"""The values of a ``verdict_*`` column."""
DEFINITIONS = ("stage", "single")
"""The baseline definitions, the suffix of their columns."""
RULE_DROP = {"relative": "rel_drop", "relative_to_chance": "chance_drop", "absolute": "abs_drop"}
"""The drop column each ``threshold_rule`` compares with the threshold."""
TOLERANCE = 1e-12
"""Slack in the comparisons, so that a drop of exactly the threshold passes despite rounding."""


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def drops(base: float, final: float, chance: float) -> dict[str, float]:
    """The drop of ``final`` from ``base`` three ways: ``rel_drop`` = (base - final) / base,
    ``chance_drop`` = (base - final) / (base - chance) (each NaN where its denominator is not positive),
    and ``abs_drop`` = base - final in points (x100)."""
    lost = base - final
    return {"rel_drop": _ratio(lost, base), "chance_drop": _ratio(lost, base - chance), "abs_drop": 100.0 * lost}


@dataclass(frozen=True)
class Verdict:
    """How a task is judged: the config's ``threshold``, ``threshold_rule`` and ``learned_margin``."""

    threshold: float = ExperimentConfig.threshold
    rule: str = ExperimentConfig.threshold_rule
    learned_margin: float = ExperimentConfig.learned_margin

    def __post_init__(self) -> None:
        if self.rule not in THRESHOLD_RULES:
            raise InputError(f"threshold rule {self.rule!r}: expected one of {list(THRESHOLD_RULES)}")

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> Verdict:
        return cls(config.threshold, config.threshold_rule, config.learned_margin)

    def columns(self) -> dict[str, Any]:
        """The verdict's settings as the columns every forgetting table carries, so that a reader of a table
        (the report's captions) learns how it was judged from the table itself."""
        return {"threshold": self.threshold, "threshold_rule": self.rule, "learned_margin": self.learned_margin}

    @classmethod
    def from_table(cls, table: pd.DataFrame, source: Path) -> Verdict:
        """The settings a forgetting table was judged with (its :meth:`columns`), one value each."""
        values = {}
        for column in cls().columns():
            found = table[column].unique() if column in table else []
            if len(found) != 1:
                raise InputError(f"{source}: expected one value in column {column!r} (written by `unihead "
                                 f"forgetting`), found {list(found)}")
            values[column] = found[0]
        return cls(float(values["threshold"]), str(values["threshold_rule"]), float(values["learned_margin"]))

    def judge(self, base: float, final: float, chance: float) -> str:
        """``n/a`` without a baseline (NaN); ``not learned`` when the baseline is not at least
        ``learned_margin`` above chance; otherwise ``pass`` when the rule's drop is at most the threshold
        (an undefined final score fails)."""
        if math.isnan(base):
            return NO_BASELINE
        if not base - chance >= self.learned_margin - TOLERANCE:
            return NOT_LEARNED
        drop = drops(base, final, chance)[RULE_DROP[self.rule]]
        if self.rule == "absolute":
            drop /= 100.0  # the column is in points, the threshold on the metric's 0..1 scale
        return PASS if drop <= self.threshold + TOLERANCE else FAIL


def _judged(definition: str, base: float, final: float, chance: float, verdict: Verdict) -> dict[str, Any]:
    """The drops and the verdict from one baseline definition, as columns suffixed with its name."""
    row: dict[str, Any] = {f"{name}_{definition}": value for name, value in drops(base, final, chance).items()}
    row[f"verdict_{definition}"] = verdict.judge(base, final, chance)
    return row


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _single_baselines(runs: list[RunResult]) -> dict[tuple[str | None, str, int], float]:
    """Final score of each ``baseline-<task>`` run, by (variant, task, seed)."""
    scores = {}
    for run in runs:
        if run.is_baseline:
            (task,) = run.eval_tasks
            scores[(run.variant, task, run.seed)] = _nan(run.R[-1][0])
    return scores


def forgetting_table(runs: list[RunResult], verdict: Verdict, require_single_baseline: bool = True) -> pd.DataFrame:
    """One row per (strategy, seed, task): final score, chance score, both baselines, intransigence, and per
    baseline definition the three drops (see :func:`drops`) and the verdict.

    ``base_stage`` is NaN for the task trained last; ``intransigence`` = single-task baseline minus the score
    right after the task's own stage (how much less the sequence learned it), in the metric's scale.
    """
    singles = _single_baselines(runs)
    if all(run.is_baseline for run in runs):
        raise InputError(f"only single-task baseline runs ({', '.join(sorted({str(r.path) for r in runs})[:3])}, ...): "
                         "the forgetting tables need at least one strategy run over the task sequence")
    with_variants, rows = has_variants(runs), []
    for run in runs:
        name, seed, variant = run.name, run.seed, run.variant
        if run.is_baseline:
            continue
        R = [[_nan(v) for v in row] for row in run.R]
        for i, task in enumerate(run.eval_tasks):
            own_stage = run.run.tasks.index(task)
            final, chance = R[-1][i], _nan(run.chance[i])
            base_stage = math.nan if own_stage == len(R) - 1 else R[own_stage][i]
            if (variant, task, seed) not in singles and require_single_baseline:
                of = "" if variant is None else f" of variant {variant!r}"
                raise InputError(f"no single-task baseline for {task} seed {seed}{of}: expected "
                                 f"{Path(run.path).parents[2] / (BASELINE_PREFIX + task) / f'seed{seed}'}")
            base_single = singles.get((variant, task, seed), math.nan)
            row = {**({VARIANT: variant} if with_variants else {}), "strategy": name, "seed": seed, "task": task,
                   "metric": run.primary_metric[task],
                   "final": final, "chance": chance, "base_stage": base_stage, "base_single": base_single,
                   "intransigence": base_single - R[own_stage][i]}
            for definition, base in zip(DEFINITIONS, (base_stage, base_single), strict=True):
                row |= _judged(definition, base, final, chance, verdict)
            rows.append(row)
    return pd.DataFrame(rows)


def sequence_summaries(run: RunResult) -> dict[str, float]:
    """Average final score, BWT and average forgetting of one sequence run.

    With T stages and task i trained at stage s_i: BWT = mean over tasks not trained last of
    R[T-1][i] - R[s_i][i]; forgetting = mean over the same tasks of max_{s_i <= t < T-1} R[t][i] - R[T-1][i].
    (No forward transfer: with a separate head per task, a task's score before its own stage is the noise
    of an untrained head, not transfer.)
    """
    R = np.array([[_nan(v) for v in row] for row in run.R])
    own = [run.run.tasks.index(task) for task in run.eval_tasks]
    last = len(R) - 1
    earlier = [i for i, s in enumerate(own) if s < last]
    return {
        "avg_final": float(R[last].mean()),
        "bwt": float(np.mean([R[last, i] - R[own[i], i] for i in earlier])) if earlier else math.nan,
        "avg_forgetting": float(np.mean([R[own[i]:last, i].max() - R[last, i] for i in earlier]))
        if earlier else math.nan,
    }


def summary_table(runs: list[RunResult], verdict: Verdict, require_single_baseline: bool = True) -> pd.DataFrame:
    """Per (strategy, task) over seeds, and per strategy the sequence summaries (task ``all``); with variants,
    per (variant, strategy, task) and (variant, strategy).

    Every number of the per-seed table gets ``<column>_mean`` and ``<column>_std`` (ddof=1, so a single
    seed gives NaN). The verdict is that of the seed-averaged scores: ``rel_drop_stage`` (without suffix)
    = (mean base_stage - mean final) / mean base_stage, and so on, judged like one seed's, gated by the
    mean baseline against the mean chance score; seeds are averaged before dividing, so one seed with a
    tiny baseline cannot dominate. ``pass_rate_*`` is the fraction of seeds whose own verdict is pass.
    """
    table = forgetting_table(runs, verdict, require_single_baseline)
    variant = [VARIANT] if has_variants(runs) else []
    numbers = [column for column in table.columns if column not in (*variant, "strategy", "seed", "task", "metric")
               and not column.startswith("verdict_")]
    grouped = table.groupby([*variant, "strategy", "task", "metric"], sort=False)
    summary = grouped[numbers].agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    summary["seeds"] = grouped.size()
    for definition in DEFINITIONS:
        judged = [_judged(definition, base, final, chance, verdict) for base, final, chance in
                  zip(summary[f"base_{definition}_mean"], summary["final_mean"], summary["chance_mean"], strict=True)]
        summary = summary.join(pd.DataFrame(judged, index=summary.index))
        summary[f"pass_rate_{definition}"] = grouped[f"verdict_{definition}"].agg(
            lambda verdicts: float((verdicts == PASS).mean()))
    summary = summary.reset_index()
    per_run = pd.DataFrame([{**({VARIANT: run.variant} if variant else {}), "strategy": run.name,
                             **sequence_summaries(run)} for run in runs if not run.is_baseline])
    overall = per_run.groupby([*variant, "strategy"], sort=False).agg(["mean", "std"])
    overall.columns = [f"{column}_{stat}" for column, stat in overall.columns]
    overall["seeds"] = per_run.groupby([*variant, "strategy"], sort=False).size()
    overall = overall.reset_index().assign(task="all", metric="")
    return pd.concat([summary, overall], ignore_index=True)


def read_summary(path: Path) -> tuple[pd.DataFrame, Verdict]:
    """The summary table that :func:`write_tables` wrote, with the verdict settings it was judged with (for the
    report, which shows these verdicts rather than computing its own)."""
    if not path.is_file():
        raise InputError(f"{path}: forgetting summary not found; `unihead forgetting` writes it")
    # only empty cells are missing values: "n/a" and "none" are a verdict and a strategy's name; a variant's
    # name is text even where it spells a number
    table = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={VARIANT: str})
    missing = [column for column in ("strategy", "task", "seeds") if column not in table]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; expected the summary `unihead forgetting` writes")
    table["metric"] = table["metric"].fillna("")
    return table, Verdict.from_table(table, path)


def write_tables(sources: Path | Iterable[Path], out_dir: Path, verdict: Verdict,
                 require_single_baseline: bool = True, experiment: ExperimentConfig | None = None) -> list[Path]:
    """Write the per-seed and summary tables as CSV (atomically) and return their paths; with ``experiment``,
    every run it lists must be among the sources (see :func:`load_runs`)."""
    runs = load_runs(sources, experiment)
    tables = {PER_SEED_CSV: forgetting_table(runs, verdict, require_single_baseline),
              SUMMARY_CSV: summary_table(runs, verdict, require_single_baseline)}
    paths = []
    for name, table in tables.items():
        path = Path(out_dir) / name
        atomic_write_text(path, table.assign(**verdict.columns()).to_csv(index=False))
        paths.append(path)
    return paths
